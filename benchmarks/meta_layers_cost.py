"""Cost of one recommender meta-batch against the entity-encoder depth L, for each way to make it fit.

    .venv/bin/python benchmarks/meta_layers_cost.py --prepared runs/real/prepared [--layers 1 2 3] [--cap-gb 16] \
        [--paths shared per_sample first_order cap16]

For each L and path, a fresh child process builds ``RecMetaTraining`` on the prepared data (fold 0,
paper defaults but ``n_heads=8``), runs ``--batches`` MAML meta-batches (8 users each, one worker, no
Ray), and reports seconds per meta-batch and its peak RSS, side by side:

* ``per_sample``: neighbourhoods keyed by sample (the earlier path), second order;
* ``shared``: each user's entities encoded once per batch (``recommender.share_user_neighbourhoods``,
  the default), second order;
* ``first_order``: shared + first-order inner loop (``rec_meta.first_order=true``);
* ``capK`` (e.g. ``cap16``): shared + the fan-out cap ``recommender.max_in_edges=K``, second order.

Each child's address space is capped at ``--cap-gb`` (``RLIMIT_AS``) so a path that does not fit fails
with an allocation error instead of waking the kernel's OOM killer. Writes
results/meta_layers_cost.{json,md}.
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
cap = int(float(sys.argv[4]) * 2**30)
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
from ccrs.config import load_config
from ccrs.meta.rec_training import RecMetaTraining
layers, prepared, n, path = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[5]
out = {"layers": layers, "path": path}
try:
    over = [f"recommender.n_layers={layers}", "recommender.n_heads=8",
            f"recommender.share_user_neighbourhoods={'false' if path == 'per_sample' else 'true'}"]
    if path == "first_order":
        over.append("rec_meta.first_order=true")
    elif path.startswith("cap"):
        over.append(f"recommender.max_in_edges={int(path[3:])}")
    cfg = load_config(None, over)
    training = RecMetaTraining(cfg, prepared, 0)
    batches = training.meta_batches(0)[:n]
    training.meta_batches = lambda epoch: batches  # time exactly n meta-batches
    t0 = time.perf_counter()
    training.train_epoch()
    out.update(seconds_per_meta_batch=(time.perf_counter() - t0) / len(batches), meta_batches=len(batches))
except (MemoryError, RuntimeError) as e:  # torch's allocator raises RuntimeError("... can't allocate memory")
    if not isinstance(e, MemoryError) and "allocate memory" not in str(e):
        raise
    out["error"] = f"out of memory under the {sys.argv[4]} GB cap"
out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prepared", default="runs/demo/prepared")
    ap.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--cap-gb", type=float, default=16.0, help="address-space cap of each child process")
    ap.add_argument("--paths", nargs="+", default=["shared", "per_sample", "first_order", "cap16"],
                    help="shared, per_sample, first_order, capK (K = max in-edges per node)")
    args = ap.parse_args()
    for path in args.paths:
        if path not in ("shared", "per_sample", "first_order") and not (path.startswith("cap") and path[3:].isdigit()):
            ap.error(f"--paths: unknown path {path!r} (shared, per_sample, first_order, capK)")
    rows = []
    for layers in args.layers:
        for path in args.paths:
            proc = subprocess.run([sys.executable, "-c", CHILD, str(layers), args.prepared, str(args.batches),
                                   str(args.cap_gb), path], capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            row = json.loads(lines[-1]) if lines else {"layers": layers, "path": path,
                                                       "error": f"exit {proc.returncode}", "stderr": proc.stderr[-500:]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    for path in args.paths:
        base = next((r["seconds_per_meta_batch"] for r in rows
                     if r["layers"] == 1 and r["path"] == path and "error" not in r), None)
        for r in rows:
            if base and r["path"] == path and "seconds_per_meta_batch" in r:
                r["time_ratio_vs_L1"] = r["seconds_per_meta_batch"] / base
    by = {(r["layers"], r["path"]): r for r in rows}
    for r in rows:
        other = by.get((r["layers"], "per_sample"))
        if r["path"] != "per_sample" and other and "seconds_per_meta_batch" in r and "seconds_per_meta_batch" in other:
            r["speedup_vs_per_sample"] = other["seconds_per_meta_batch"] / r["seconds_per_meta_batch"]
    command = "python benchmarks/meta_layers_cost.py " + " ".join(sys.argv[1:])
    report = {"command": command, "cap_gb": args.cap_gb, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "meta_layers_cost.json").write_text(json.dumps(report, indent=2) + "\n")
    md = ["# Recommender meta-batch cost against L (one process, 8 users per meta-batch, n_heads=8)", "",
          f"    {command}", "", f"Each L in its own process, address space capped at {args.cap_gb} GB. Paths: per_sample = "
          "neighbourhoods per sample, second order; shared = per user (default), second order; first_order = "
          "shared + first-order inner loop; capK = shared + at most K in-edges per KG node, second order.", "",
          "| L | neighbourhoods | s / meta-batch | × L=1 (same path) | speed-up vs per_sample | peak RSS (GB) | outcome |",
          "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        sec = f"{r['seconds_per_meta_batch']:.2f}" if "seconds_per_meta_batch" in r else "—"
        ratio = f"{r['time_ratio_vs_L1']:.1f}" if "time_ratio_vs_L1" in r else "—"
        speed = f"{r['speedup_vs_per_sample']:.2f}x" if "speedup_vs_per_sample" in r else ""
        md.append(f"| {r['layers']} | {r['path']} | {sec} | {ratio} | {speed} | {r.get('peak_rss_gb', float('nan')):.2f} | "
                  f"{r.get('error', 'ok')} |")
    (RESULTS / "meta_layers_cost.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
