"""Cost curves of one recommender meta-step: against users per meta-batch, context length and KG size.

    .venv/bin/python benchmarks/scaling.py --prepared runs/real/prepared [--steps 3] [--quick]

Synthetic KGs keep the real KG's *degree distribution* and grow its size: a configuration model on
degrees resampled from the prepared DBpedia subgraph (``--prepared``; a log-normal fit without it),
× 1, 4 and 16 (16×: ≥ 500k entities, ≥ 3M directed edges with self-loops), 14 relation types, 21% of
the entities items (the real share). Each point is a fresh child process (peak RSS is its own) that
builds the ccrs recommender (paper defaults, L = 1, n_heads = 4), makes ``users`` MAML tasks
(support and query of ``samples`` samples each, contexts of ``context`` random entities, random
item labels; the last axis grows the graph with the item count held at the real 6,822) and times ``--steps`` second-order meta-steps (Algorithm 1: inner step, query loss,
backward, Adam) after one warm-up step. It also counts the neighbourhood each step encodes (nodes,
edges) and splits the step into the part that follows neighbourhoods (forward + backward) and the
part that follows the graph (Adam over the entity table, the gradient an all-reduce would move).

Writes results/scaling.{json,md} and results/scaling.png; ``docs/scaling.md`` reads them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
spec = json.loads(sys.argv[1])
torch.manual_seed(0); rng = np.random.default_rng(0)
torch.set_num_threads(spec["threads"])
from ccrs.config import load_config
from ccrs.data.rec_examples import RecBatch
from ccrs.meta.maml import MAML, MetaTask, meta_step
from ccrs.meta.rec_tasks import rec_loss
from ccrs.models.recommender import Recommender

sys.path.insert(0, spec["benchmarks"])
from synthetic_kg import synthetic_kg
kg = synthetic_kg(np.load(spec["degrees"]) if spec["degrees"] else None, spec["scale"], spec.get("items"), rng)
n, n_items = kg.num_entities, kg.num_items
head = kg.edge_index[0].numpy()
cfg = load_config(None, [f"recommender.n_layers={spec['layers']}"])
model = Recommender(cfg.recommender, kg, num_users=spec["users"] + 1)
maml = MAML.from_config(model, rec_loss, cfg.rec_meta)
opt = torch.optim.Adam([*model.parameters(), *maml.meta_parameters()], lr=1e-3)

def batch(user, s, m):
    ctx = torch.from_numpy(rng.choice(n, size=(s, m)))
    return RecBatch(torch.arange(s), torch.from_numpy(rng.integers(0, n_items, size=s)), torch.full((s,), user),
                    ctx, torch.arange(m).repeat(s, 1), torch.ones(s, m, dtype=torch.bool), torch.full((s,), m),
                    torch.zeros(s, dtype=torch.bool))

def tasks():
    return [MetaTask(u, batch(u, spec["samples"], spec["context"]), batch(u, spec["samples"], spec["context"]))
            for u in range(1, spec["users"] + 1)]

meta_step(maml, tasks(), opt)  # warm-up (allocator, lazy CSR index)
nb_nodes = nb_edges = 0
fwd_bwd = adam = 0.0
t_all = time.perf_counter()
for _ in range(spec["steps"]):
    ts = tasks()
    for t in ts:
        nb = model.neighbourhoods(t.support)
        nb_nodes += nb.node_ids.numel(); nb_edges += nb.edge_index.size(1)
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=False)
    for t in ts:
        loss, _ = maml.task_loss(t)
        loss.backward()
    t1 = time.perf_counter()
    opt.step()
    t2 = time.perf_counter()
    fwd_bwd += t1 - t0; adam += t2 - t1
steps = spec["steps"]
grad_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
emb_bytes = model.entity_embedding.weight.numel() * 4
print(json.dumps(spec | {
    "entities": n, "edges": int(head.size), "n_items": n_items, "seconds_per_step": (time.perf_counter() - t_all) / steps,
    "forward_backward_s": fwd_bwd / steps, "adam_s": adam / steps,
    "neighbourhood_nodes_per_user": nb_nodes / steps / spec["users"],
    "neighbourhood_edges_per_user": nb_edges / steps / spec["users"],
    "grad_mb": grad_bytes / 2**20, "entity_table_mb": emb_bytes / 2**20,
    "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""

BASE = {"scale": 1, "users": 8, "context": 8, "samples": 8, "layers": 1, "steps": 3, "threads": 2}


def points(quick: bool) -> list[tuple[str, dict]]:
    users = [1, 2, 4, 8] if quick else [1, 2, 4, 8, 16, 32]
    contexts = [2, 8] if quick else [2, 4, 8, 16, 32]
    scales = [1, 4] if quick else [1, 2, 4, 8, 16]
    return ([("users", BASE | {"users": u}) for u in users] + [("context", BASE | {"context": c}) for c in contexts]
            + [("kg_size", BASE | {"scale": s}) for s in scales]
            + [("kg_size_items_fixed", BASE | {"scale": s, "items": 6822}) for s in scales])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prepared", default="runs/real/prepared", help="where the degree distribution comes from")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer points (a smoke run)")
    args = ap.parse_args()
    degrees = ""
    if Path(args.prepared, "manifest.json").is_file():
        import numpy as np

        from ccrs.data.dataset import PreparedDataset

        deg = PreparedDataset.open(args.prepared).table("entities").column("degree").to_numpy()
        degrees = str(Path("/tmp") / "ccrs_scaling_degrees.npy")
        np.save(degrees, np.maximum(deg, 0))  # undirected degree = stubs per node (edges are stored both ways)
    rows = []
    for axis, spec in points(args.quick):
        spec = spec | {"steps": args.steps, "degrees": degrees, "axis": axis, "benchmarks": str(Path(__file__).parent)}
        proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        row = json.loads(lines[-1]) if lines else spec | {"error": f"exit {proc.returncode}: {proc.stderr[-400:]}"}
        rows.append(row)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items() if k != "degrees"}),
              flush=True)
    command = "python benchmarks/scaling.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scaling.json").write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    write_markdown(rows, command)
    plot(rows)
    return 0


def write_markdown(rows: list[dict], command: str) -> None:
    md = ["# Cost of one recommender meta-step (second order, L = 1, 2 threads)", "", f"    {command}", "",
          "Synthetic KGs with the real DBpedia subgraph's degree distribution; one axis varied at a time from "
          "8 users × 8 samples × 8 mentions at 1× the KG (31,874 entities).", "",
          "| axis | users | mentions | KG × | entities | edges | items | s / step | fwd+bwd s | Adam s | nbhd nodes / user "
          "| nbhd edges / user | gradient MB | peak RSS GB |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            md.append(f"| {r['axis']} | {r['users']} | {r['context']} | {r['scale']} | | | {r['error'][:80]} |")
            continue
        md.append(f"| {r['axis']} | {r['users']} | {r['context']} | {r['scale']} | {r['entities']:,} | {r['edges']:,} | "
                  f"{r['n_items']:,} | "
                  f"{r['seconds_per_step']:.3f} | {r['forward_backward_s']:.3f} | {r['adam_s']:.3f} | "
                  f"{r['neighbourhood_nodes_per_user']:.0f} | {r['neighbourhood_edges_per_user']:.0f} | "
                  f"{r['grad_mb']:.0f} | {r['peak_rss_gb']:.2f} |")
    md += ["", "![cost curves](scaling.png)", "", "Read with `docs/scaling.md` (what follows the neighbourhoods, "
           "what follows the graph, and the projection to N GPU workers)."]
    (RESULTS / "scaling.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes = [("users", "users per meta-batch"), ("context", "mentions per sample"),
            ("kg_size", "KG size (×), items 21% of entities"), ("kg_size_items_fixed", "KG size (×), 6,822 items")]
    fig, ax = plt.subplots(2, 4, figsize=(16, 6.5), dpi=110)
    for j, (axis, label) in enumerate(axes):
        rs = [r for r in rows if r.get("axis") == axis and "error" not in r]
        x = [r["users"] if axis == "users" else r["context"] if axis == "context" else r["scale"] for r in rs]
        ax[0, j].plot(x, [r["seconds_per_step"] for r in rs], "o-", label="meta-step")
        ax[0, j].plot(x, [r["forward_backward_s"] for r in rs], "s--", label="forward + backward")
        ax[0, j].plot(x, [r["adam_s"] for r in rs], "^:", label="Adam update")
        ax[0, j].set_ylabel("seconds")
        ax[1, j].plot(x, [r["peak_rss_gb"] for r in rs], "o-", color="C3", label="peak RSS (GB)")
        twin = ax[1, j].twinx()
        twin.plot(x, [r["neighbourhood_edges_per_user"] for r in rs], "s--", color="C4", label="nbhd edges / user")
        twin.set_ylabel("neighbourhood edges / user", color="C4")
        ax[1, j].set_ylabel("peak RSS (GB)", color="C3")
        for a in (ax[0, j], ax[1, j]):
            a.set_xlabel(label)
            a.set_xscale("log", base=2)
            a.grid(alpha=0.3)
        ax[0, j].legend(fontsize=7)
    fig.suptitle("Recommender meta-step cost (second-order MAML, L = 1)")
    fig.tight_layout()
    fig.savefig(RESULTS / "scaling.png")
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
