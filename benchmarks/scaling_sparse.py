"""Dense vs row-sparse embedding gradients: one recommender meta-step as the KG grows, items fixed.

    .venv/bin/python benchmarks/scaling_sparse.py --prepared runs/real/prepared [--steps 3] [--scales 1,2,4,8,16]

Side by side in one run, each point a fresh child process (its peak RSS is its own): the ccrs
recommender (paper defaults, L = 1) on a synthetic KG with the real degree distribution
(``benchmarks/synthetic_kg.py``) grown 1× → 16× with the item count held at the real 6,822; 8 users ×
8 samples × 8 mentions per meta-batch; ``--steps`` second-order meta-steps (Algorithm 1) after one
warm-up, through ``ccrs.meta.maml.meta_step`` exactly as training runs it:

* ``dense``: ``nn.Embedding`` gradients, Adam over every row, the flat all-reduce of every gradient;
* ``row_sparse``: ``rec_meta.embedding_gradients=row_sparse`` (``ccrs/meta/row_sparse.py``): row
  gradients of the entity and user tables, lazy Adam on the touched rows, an all-reduce of the touched rows.

``allreduce_bytes`` is what one rank contributes to the gradient exchange per step: the flat dense
vector (``ray_jobs.meta_driver.allreduce_gradients``), plus for ``row_sparse`` the touched rows and
their int64 ids (``allreduce_row_gradients``, measured here for one rank; with W ranks the rows are
the union of theirs).

Writes results/scaling_sparse.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
ITEMS = 6822


def child(spec: dict) -> dict:
    import numpy as np
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic_kg import synthetic_kg

    from ccrs.config import load_config
    from ccrs.data.rec_examples import RecBatch
    from ccrs.meta.maml import MAML, MetaTask, meta_step
    from ccrs.meta.rec_tasks import rec_loss
    from ccrs.meta.row_sparse import RowSparseUpdate
    from ccrs.models.recommender import Recommender

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    torch.set_num_threads(spec["threads"])
    degrees = np.load(spec["degrees"]) if spec["degrees"] else None
    kg = synthetic_kg(degrees, spec["scale"], ITEMS, rng)
    n = kg.num_entities
    cfg = load_config(None, [f"rec_meta.embedding_gradients={spec['path']}"])
    model = Recommender(cfg.recommender, kg, num_users=spec["users"] + 1)
    maml = MAML.from_config(model, rec_loss, cfg.rec_meta)
    opt = torch.optim.Adam([*model.parameters(), *maml.meta_parameters()], lr=cfg.rec_meta.outer_lr)
    rows = RowSparseUpdate(model, opt, maml.inner_names) if spec["path"] == "row_sparse" else None
    s, m = spec["samples"], spec["context"]

    def batch(user):
        ctx = torch.from_numpy(rng.choice(n, size=(s, m)))
        return RecBatch(torch.arange(s), torch.from_numpy(rng.integers(0, ITEMS, size=s)), torch.full((s,), user),
                        ctx, torch.arange(m).repeat(s, 1), torch.ones(s, m, dtype=torch.bool), torch.full((s,), m),
                        torch.zeros(s, dtype=torch.bool))

    def tasks():
        return [MetaTask(u, batch(u), batch(u)) for u in range(1, spec["users"] + 1)]

    # the row gradients each step produced, to count what the exchange ships
    touched: list[int] = []
    if rows is not None:
        end = rows.end

        def counting_end():
            grads = end()
            touched.append(sum(g.ids.numel() for g in grads))
            return grads
        rows.end = counting_end
    meta_step(maml, tasks(), opt, cfg.rec_meta.grad_clip, rows=rows)  # warm-up (allocator, lazy CSR index)
    touched.clear()
    elapsed = 0.0
    for _ in range(spec["steps"]):
        ts = tasks()
        t0 = time.perf_counter()
        meta_step(maml, ts, opt, cfg.rec_meta.grad_clip, rows=rows)
        elapsed += time.perf_counter() - t0
    sparse_ids = {id(t.weight) for _, t in rows.tables} if rows is not None else set()
    dense_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if id(p) not in sparse_ids)
    d = cfg.recommender.entity_dim  # the user table's rows are user_dim wide; count both exactly below
    row_bytes = 0
    if rows is not None:
        mean_rows = sum(touched) / len(touched)
        row_bytes = int(mean_rows * (8 + d * 4))  # ids + rows (entity rows dominate; user rows are narrower)
    return spec | {"entities": n, "edges": int(kg.edge_index.size(1)), "n_items": ITEMS,
                   "seconds_per_step": elapsed / spec["steps"],
                   "rows_touched_per_step": (sum(touched) / len(touched)) if touched else None,
                   "allreduce_bytes": dense_bytes + row_bytes,
                   "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prepared", default="runs/real/prepared", help="where the degree distribution comes from")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--scales", default="1,2,4,8,16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--render", action="store_true", help="only rewrite the Markdown from the saved JSON")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return 0
    if args.render:
        write_markdown(json.loads((RESULTS / "scaling_sparse.json").read_text()))
        return 0
    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic_kg import degrees_file, run_child

    degrees = degrees_file(args.prepared)
    steps = []
    for scale in [float(x) for x in args.scales.split(",")]:
        for path in ("dense", "row_sparse"):
            spec = {"path": path, "kg_scale": scale, "scale": scale, "users": 8, "samples": 8, "context": 8,
                    "steps": args.steps, "threads": args.threads, "degrees": degrees}
            row = run_child(__file__, spec, ROOT)
            steps.append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    command = "python benchmarks/scaling_sparse.py " + " ".join(sys.argv[1:])
    out = {"command": command, "steps": steps, "ratios": ratios(steps)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scaling_sparse.json").write_text(json.dumps(out, indent=2) + "\n")
    write_markdown(out)
    return 0


def write_markdown(out: dict) -> None:
    steps, r = out["steps"], out["ratios"]
    md = ["# Dense vs row-sparse embedding gradients as the KG grows (items fixed at 6,822)", "",
          f"    {out['command']}", "",
          "One second-order meta-step (Algorithm 1, `meta_step`), ccrs paper defaults, L = 1, 8 users × 8 samples × "
          "8 mentions, 2 threads; both paths side by side in one run, each point its own process. "
          "`allreduce bytes` = what one rank contributes to the gradient exchange per step.", "",
          "| path | KG × | entities | s / step | rows touched / step | all-reduce MB | peak RSS GB |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    for s in steps:
        if "error" in s:
            md.append(f"| {s['path']} | {s['kg_scale']:g} | | {s['error'][:60]} | | | |")
            continue
        rows = f"{s['rows_touched_per_step']:,.0f}" if s.get("rows_touched_per_step") else "all"
        md.append(f"| {s['path']} | {s['kg_scale']:g} | {s['entities']:,} | {s['seconds_per_step']:.3f} | {rows} | "
                  f"{s['allreduce_bytes'] / 1e6:.1f} | {s['peak_rss_gb']:.2f} |")
    md += ["", f"Largest KG over 1×, own path: dense **{r.get('dense_largest_over_1x', float('nan')):.2f}×**, "
           f"row_sparse **{r.get('row_sparse_largest_over_1x', float('nan')):.2f}×** (goal ≤ 1.3×).",
           "Dense over row_sparse at each scale: " + ", ".join(
               f"{k.split('_at_')[1]} {v:.2f}×" for k, v in r.items() if k.startswith("dense_over")) + ".", ""]
    md += projection(steps)
    if out.get("valid"):
        md += ["## Valid NDCG@10 on the real data (fold 0)", "", out["valid"], ""]
    md.append("Read with `docs/scaling.md`; the update itself: `ccrs/meta/row_sparse.py`.")
    (RESULTS / "scaling_sparse.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


LINK_BYTES_PER_S = 1.25e9  # 10 Gb/s
DENSE_REMAINDER = 1.4e6  # bytes of the gradients outside the embedding tables (encoder, item bias, ...)


def projection(steps: list[dict], users_per_worker: int = 8) -> list[str]:
    """users/s for N data-parallel workers from the measured step and exchange terms (docs/scaling.md):
    N·b / (t_step / (1 − idle) + t_comm). Dense: a ring all-reduce of every gradient, 2·G·(N−1)/N.
    Row-sparse: the ids all-gathered (N·k·8 bytes) and a ring all-reduce of the union of the rows the
    N·b users touched, items + N·b·r (r = rows per user beyond the items, measured), dense once the
    union is half the table. ``idle``: the worker idle share measured at 2 workers (bench_meta_train)."""
    idle = 0.0
    bench = RESULTS / "bench_meta_train.json"
    if bench.is_file():
        idle = json.loads(bench.read_text()).get("worker_idle_share", {}).get("ray_2_cost", {}).get("mean", 0.0)
    ok = {(s["path"], s["kg_scale"]): s for s in steps if "error" not in s}
    scales = sorted({k[1] for k in ok})
    if not scales:
        return []
    lines = ["## Projection to N workers (10 Gb/s links, 8 users per worker)", "",
             f"users/s = N·8 / (measured step / (1 − {idle:.1%} idle, from 2 workers) + exchange); the exchange terms in "
             "`projection()` of this benchmark and in `docs/scaling.md`.", "",
             "| KG × | path | 1 worker | 8 workers | 64 workers | exchange s at 64 |", "|---:|---|---:|---:|---:|---:|"]
    for scale in (scales[0], scales[-1]):
        for path in ("dense", "row_sparse"):
            s = ok.get((path, scale))
            if s is None:
                continue
            n, b = s["entities"], users_per_worker
            dense_bytes = ok[("dense", scale)]["allreduce_bytes"] if ("dense", scale) in ok else s["allreduce_bytes"]
            cells, last = [], 0.0
            for workers in (1, 8, 64):
                if workers == 1:
                    comm = 0.0
                elif path == "dense":
                    comm = 2 * dense_bytes * (workers - 1) / workers / LINK_BYTES_PER_S
                else:
                    k = s["rows_touched_per_step"]
                    per_user = max(k - ITEMS, 0) / b
                    union = min(n, ITEMS + workers * b * per_user)
                    if 2 * union >= n:
                        comm = 2 * dense_bytes * (workers - 1) / workers / LINK_BYTES_PER_S
                    else:
                        d = (s["allreduce_bytes"] - DENSE_REMAINDER) / k - 8  # bytes per row
                        comm = (workers * k * 8 + 2 * (DENSE_REMAINDER + union * d) * (workers - 1) / workers) \
                            / LINK_BYTES_PER_S
                wait = idle if workers > 1 else 0.0
                cells.append(workers * b / (s["seconds_per_step"] / (1 - wait) + comm))
                last = comm
            lines.append(f"| {scale:g} | {path} | " + " | ".join(f"{c:.1f}" for c in cells) + f" | {last:.3f} |")
    return lines + [""]


def ratios(steps: list[dict]) -> dict:
    """Each path's largest-scale step over its own 1× step, and row_sparse over dense at each scale."""
    ok = [s for s in steps if "error" not in s]
    out: dict = {}
    for path in ("dense", "row_sparse"):
        mine = sorted((s for s in ok if s["path"] == path), key=lambda s: s["kg_scale"])
        if len(mine) >= 2:
            out[f"{path}_largest_over_1x"] = mine[-1]["seconds_per_step"] / mine[0]["seconds_per_step"]
    for scale in sorted({s["kg_scale"] for s in ok}):
        pair = {s["path"]: s for s in ok if s["kg_scale"] == scale}
        if len(pair) == 2:
            out[f"dense_over_row_sparse_at_{scale:g}x"] = (pair["dense"]["seconds_per_step"]
                                                          / pair["row_sparse"]["seconds_per_step"])
    return out


if __name__ == "__main__":
    sys.exit(main())
