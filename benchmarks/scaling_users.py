"""What a growing user base costs: training step, model memory and the serving archive, 10k → 1M users.

    .venv/bin/python benchmarks/scaling_users.py --prepared runs/real/prepared [--users 10000,100000,1000000]

Side by side in one run, each training point a fresh child process (its peak RSS is its own):

* **Training step and model memory.** The ccrs recommender with the history copy term
  (``ccrs_history``: ``history_items``; L = 1) on a synthetic KG of the real size and degree
  distribution (``benchmarks/synthetic_kg.py``, 6,822 items), 8 users × 8 samples × 8 mentions × 16
  history entities per meta-batch, second-order meta-steps (``meta_step``), with N users known to
  the model, three ways:
  ``user_table_dense`` (the paper: one user row each, dense gradient, Adam over every row),
  ``user_table_row_sparse`` (the same table, ``rec_meta.embedding_gradients=row_sparse``) and
  ``no_user_table`` (``recommender.user_table=false``: no per-user state in the model; a user is their
  history). ``model_mb`` is the state dict a serving replica loads.
* **Serving archive.** A local :class:`~ccrs.serving.adaptation_archive.AdaptationArchive` holding
  one history per user (the files of ``ccrs.serving.user_history``, sharded by user id) for N users:
  the median and p99 seconds of 1,000 lookups of random users, and of a put. Files are copies of one
  real history file (what a lookup costs does not depend on its content).

Writes results/scaling_users.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
ITEMS = 6822
WAYS = {
    "user_table_dense": ["rec_meta.embedding_gradients=dense"],
    "user_table_row_sparse": ["rec_meta.embedding_gradients=row_sparse"],
    "no_user_table": ["recommender.user_table=false", "rec_meta.embedding_gradients=row_sparse"],
}


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
    kg = synthetic_kg(np.load(spec["degrees"]) if spec["degrees"] else None, 1, ITEMS, rng)
    n = kg.num_entities
    cfg = load_config(None, ["recommender.history_items=true", *WAYS[spec["way"]]])
    model = Recommender(cfg.recommender, kg, num_users=spec["users"])
    model_mb = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20
    # what serving archives per adapted user under the history model's meta preset (the adapted tensors:
    # rec_meta.inner_only=[user_embedding*, item_bias]; ccrs/serving/recommender_service.py)
    adapted = MAML(model, rec_loss, 1.0, inner_only=("user_embedding*", "item_bias"), outer_only=("entity_embedding*",))
    adaptation_kb = sum(dict(model.named_parameters())[n].numel() * 4 for n in adapted.inner_names) / 2**10
    rss_model_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    maml = MAML.from_config(model, rec_loss, cfg.rec_meta)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.rec_meta.outer_lr)
    rows = RowSparseUpdate(model, opt, maml.inner_names) if cfg.rec_meta.embedding_gradients == "row_sparse" else None
    s, m, h = 8, 8, 16
    items = kg.item_entity_ids.numpy()

    def batch(user):
        return RecBatch(torch.arange(s), torch.from_numpy(rng.integers(0, ITEMS, size=s)), torch.full((s,), user),
                        torch.from_numpy(rng.choice(n, size=(s, m))), torch.arange(m).repeat(s, 1),
                        torch.ones(s, m, dtype=torch.bool), torch.full((s,), m), torch.zeros(s, dtype=torch.bool),
                        history=torch.from_numpy(rng.choice(items, size=(s, h))),
                        history_age=torch.from_numpy(rng.integers(1, 4, size=(s, h))),
                        history_flag=torch.from_numpy(rng.integers(0, 6, size=(s, h))),
                        history_count=torch.ones(s, h, dtype=torch.long), history_mask=torch.ones(s, h, dtype=torch.bool))

    def tasks():  # 8 users drawn from the whole user base
        return [MetaTask(int(u), batch(int(u)), batch(int(u))) for u in rng.integers(1, spec["users"] + 1, size=8)]

    meta_step(maml, tasks(), opt, cfg.rec_meta.grad_clip, rows=rows)  # warm-up
    elapsed = 0.0
    for _ in range(spec["steps"]):
        ts = tasks()
        t0 = time.perf_counter()
        meta_step(maml, ts, opt, cfg.rec_meta.grad_clip, rows=rows)
        elapsed += time.perf_counter() - t0
    return spec | {"seconds_per_step": elapsed / spec["steps"], "model_mb": model_mb, "adaptation_kb": adaptation_kb,
                   "rss_after_model_gb": rss_model_gb,
                   "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def archive_point(users: int, root: Path, lookups: int = 1000) -> dict:
    """Lookups and puts in a local sharded archive of ``users`` histories (module docstring)."""
    import numpy as np

    from ccrs.data.history import HistoryEntry
    from ccrs.serving.adaptation_archive import SHARDS, AdaptationArchive
    from ccrs.serving.user_history import append_conversation

    version = "history"  # serve.deployments.HISTORY: the namespace histories are archived under

    if root.exists():
        shutil.rmtree(root)
    archive = AdaptationArchive(str(root))
    history = append_conversation(None, [HistoryEntry(entity=1000 + i, role=0, liked=1) for i in range(20)])
    archive.save(version, 0, history)
    template = next(root.rglob("*.npz")).read_bytes()
    t0 = time.perf_counter()
    version_dir = root / version
    for shard in range(SHARDS):
        (version_dir / f"{shard:03x}").mkdir(parents=True, exist_ok=True)
    for u in range(1, users):
        (version_dir / f"{u % SHARDS:03x}" / f"{u}.npz").write_bytes(template)
    fill_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    times = []
    for u in rng.integers(0, users, size=lookups):
        t = time.perf_counter()
        got = archive.load(version, int(u))
        times.append(time.perf_counter() - t)
        assert got is not None
    puts = []
    for u in rng.integers(0, users, size=200):
        t = time.perf_counter()
        archive.save(version, int(u), history)
        puts.append(time.perf_counter() - t)
    times.sort()
    puts.sort()
    out = {"users": users, "lookup_median_ms": 1000 * statistics.median(times),
           "lookup_p99_ms": 1000 * times[int(0.99 * len(times))], "put_median_ms": 1000 * statistics.median(puts),
           "files_per_folder": users / SHARDS, "fill_seconds": fill_s, "bytes_per_user": len(template)}
    shutil.rmtree(root)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prepared", default="runs/real/prepared")
    ap.add_argument("--users", default="10000,100000,1000000")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--archive-root", default="/tmp/ccrs_scaling_users_archive")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return 0
    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic_kg import degrees_file, run_child

    degrees = degrees_file(args.prepared)
    sizes = [int(x) for x in args.users.split(",")]
    training, archive = [], []
    for users in sizes:
        for way in WAYS:
            spec = {"way": way, "users": users, "steps": args.steps, "threads": args.threads, "degrees": degrees}
            row = run_child(__file__, spec, ROOT)
            training.append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    for users in sizes:
        archive.append(archive_point(users, Path(args.archive_root)))
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in archive[-1].items()}), flush=True)
    command = "python benchmarks/scaling_users.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scaling_users.json").write_text(json.dumps({"command": command, "training": training,
                                                             "archive": archive}, indent=2) + "\n")
    write_markdown(training, archive, command)
    return 0


def write_markdown(training: list[dict], archive: list[dict], command: str) -> None:
    md = ["# What a growing user base costs (10k → 1M users)", "", f"    {command}", "",
          "Training: ccrs + history copy term, one second-order meta-step of 8 users × 8 samples (16 history "
          "entities each), real-size synthetic KG, 2 threads. Model MB = the state dict a serving replica loads; "
          "adaptation KB = what serving archives per adapted user (the adapted tensors under the history model's "
          "meta preset: the user table and the item bias).", "",
          "| users | way | s / meta-step | model MB | adaptation KB / user | peak RSS GB |", "|---:|---|---:|---:|---:|---:|"]
    for r in training:
        if "error" in r:
            md.append(f"| {r['users']:,} | {r['way']} | {r['error'][:60]} | | | |")
            continue
        md.append(f"| {r['users']:,} | {r['way']} | {r['seconds_per_step']:.3f} | {r['model_mb']:.0f} | "
                  f"{r['adaptation_kb']:,.0f} | {r['peak_rss_gb']:.2f} |")
    md += ["", "Serving archive (local, sharded `<version>/<user mod 4096>/<user>.npz`), one history per user:", "",
           "| users | files / folder | lookup median ms | lookup p99 ms | put median ms | bytes / user |",
           "|---:|---:|---:|---:|---:|---:|"]
    for a in archive:
        md.append(f"| {a['users']:,} | {a['files_per_folder']:.0f} | {a['lookup_median_ms']:.3f} | "
                  f"{a['lookup_p99_ms']:.3f} | {a['put_median_ms']:.3f} | {a['bytes_per_user']:,} |")
    md += ["", "![curves](scaling_users.png) (`python benchmarks/plot_scaling.py`)", "", "Read with `docs/scaling.md`."]
    (RESULTS / "scaling_users.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
