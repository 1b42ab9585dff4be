"""Per-batch cost of the user-guided encoder: batched L-hop neighbourhoods vs. the full KG per user.

    .venv/bin/python benchmarks/neighbourhood_vs_full.py --prepared runs/demo/prepared [--batches 5]

Both sides run the same UserRelationalConv stack (paper defaults: d=128, k=4, L=1) for the same
batch of rec samples, each sample with its own user. "full" must encode the whole graph once per
distinct user in the batch (the layer is user-specific); "neighbourhood" extracts each sample's
L-hop in-neighbourhood (extraction time included) and encodes all of them in one pass, with the CSR
index the model trains with (``InEdgeIndex``) and with the ``k_hop_subgraph`` reference. Writes
results/neighbourhood_vs_full.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from ccrs.data.dataset import PreparedDataset
from ccrs.nn import UserRelationalConv
from ccrs.nn.neighbourhood import InEdgeIndex, batch_neighbourhoods

RESULTS = Path(__file__).resolve().parents[1] / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prepared", default="runs/demo/prepared")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--dim", type=int, default=128)
    args = ap.parse_args()
    torch.manual_seed(0)
    ds = PreparedDataset.open(args.prepared)
    edges = ds.table("kg_edges")
    edge_index = torch.stack([torch.tensor(edges.column("head").to_numpy()), torch.tensor(edges.column("tail").to_numpy())])
    edge_type = torch.tensor(edges.column("relation").to_numpy())
    n = ds.table("entities").num_rows
    n_rel = ds.table("relations").num_rows
    samples = ds.table("rec_samples").select(["context_entity_ids", "user_id"]).to_pylist()
    samples = [s for s in samples if s["context_entity_ids"]]
    gen = torch.Generator().manual_seed(0)
    layers = torch.nn.ModuleList([UserRelationalConv(args.dim, n_rel, args.dim, heads=4) for _ in range(args.layers)])
    emb = torch.randn(n, args.dim)
    times = {"neighbourhood": [], "neighbourhood_k_hop_subgraph": [], "full": []}
    sizes = []
    index = InEdgeIndex(edge_index, edge_type, n)
    with torch.no_grad():
        for _ in range(args.batches):
            idx = torch.randperm(len(samples), generator=gen)[: args.batch_size].tolist()
            contexts = [samples[i]["context_entity_ids"] for i in idx]
            users = torch.randn(len(idx), args.dim)
            for key, extract in (("neighbourhood", lambda c: index.batch(c, args.layers)),
                                 ("neighbourhood_k_hop_subgraph",
                                  lambda c: batch_neighbourhoods(c, edge_index, edge_type, args.layers, n))):
                t0 = time.perf_counter()
                batch = extract(contexts)
                h = emb[batch.node_ids]
                for layer in layers:
                    h = layer(h, batch.edge_index, batch.edge_type, users, batch.edge_sample)
                times[key].append(time.perf_counter() - t0)
                if key == "neighbourhood":
                    sizes.append({"nodes": batch.node_ids.numel(), "edges": batch.edge_index.size(1)})
            t0 = time.perf_counter()
            zeros = torch.zeros(edge_index.size(1), dtype=torch.long)
            for b in range(len(idx)):
                full = emb
                for layer in layers:
                    full = layer(full, edge_index, edge_type, users[b : b + 1], zeros)
            times["full"].append(time.perf_counter() - t0)
            print(f"batch: neighbourhood {times['neighbourhood'][-1]:.3f} s ({sizes[-1]['nodes']} nodes, "
                  f"{sizes[-1]['edges']} edges), full graph x{len(idx)} users {times['full'][-1]:.3f} s")
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "command": f"python benchmarks/neighbourhood_vs_full.py --prepared {args.prepared} --batches {args.batches} "
        f"--batch-size {args.batch_size} --layers {args.layers} --dim {args.dim}",
        "graph": {"entities": n, "edges": int(edge_index.size(1)), "relations": n_rel},
        "seconds": times,
        "median_seconds": med,
        "full_over_neighbourhood": round(med["full"] / med["neighbourhood"], 2),
        "k_hop_subgraph_over_csr": round(med["neighbourhood_k_hop_subgraph"] / med["neighbourhood"], 2),
        "batched_subgraph_sizes": sizes,
        "threads": torch.get_num_threads(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "neighbourhood_vs_full.json").write_text(json.dumps(report, indent=2) + "\n")
    md = "\n".join([
        "# User-guided encoder: batched neighbourhoods vs. full graph per user (forward, CPU)",
        "",
        f"Regenerate: `{report['command']}`",
        "",
        f"Graph: {n} entities, {edge_index.size(1)} directed edges, {n_rel} relations; batch {args.batch_size} samples, "
        f"L={args.layers}, d={args.dim}, k=4, {torch.get_num_threads()} threads.",
        "",
        "| method | median s / batch |",
        "|---|---:|",
        f"| neighbourhood, CSR in-edge index (extraction included; used in training) | {med['neighbourhood']:.3f} |",
        f"| neighbourhood, `k_hop_subgraph` reference (extraction included) | {med['neighbourhood_k_hop_subgraph']:.3f} |",
        f"| full graph, once per user | {med['full']:.3f} |",
        "",
        f"Full / neighbourhood: **{report['full_over_neighbourhood']}x**; k_hop_subgraph / CSR: "
        f"{report['k_hop_subgraph_over_csr']}x. Mean batched subgraph (CSR): "
        f"{statistics.mean(s['nodes'] for s in sizes):.0f} nodes, {statistics.mean(s['edges'] for s in sizes):.0f} edges.",
        "",
    ])
    (RESULTS / "neighbourhood_vs_full.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
