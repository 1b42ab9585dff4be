"""Meta-steps per second of recommender meta-training: plain process vs Ray Train with 1 and 2 workers.

    .venv/bin/python benchmarks/meta_train.py --prepared runs/demo/prepared [--steps 12 --warmup 2]

One run, side by side, same code (``ccrs.meta.rec_training.RecMetaTraining``), same users, one torch
thread per process (the machine has 2 cores):

(a) the loop in a plain Python process, no Ray;
(b) Ray Train, 1 worker (``TorchTrainer``; the meta-step is timed inside the worker);
(c) Ray Train, 2 workers, users dealt by count (``rec_meta.sharding=count``, round robin);
(d) Ray Train, 2 workers, users dealt by estimated cost (``rec_meta.sharding=cost``, the default).

Reports the median seconds per meta-step, the Ray overhead ratio (b / a; target < 1.10), the
speed-up and scaling efficiency of (c) and (d) against (b), the workers' idle share per step (the
time a rank waits for the slowest at the all-reduce: ``ccrs.meta.training.idle_shares``), and the
start-up cost of each Ray fit separately. Writes results/bench_meta_train.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _timed_steps(training, steps: int, warmup: int, sync) -> tuple[list[float], list[float]]:
    """Seconds per meta-step and this rank's busy seconds (its own work, before the collective)."""
    from ccrs.meta.maml import meta_step

    training.model.train()
    batches = training.meta_batches(1)
    times, busy = [], []
    for i in range(warmup + steps):
        users = batches[i % len(batches)]
        tasks = [training.task(u) for u in users]
        t0 = time.perf_counter()
        stats = meta_step(training.maml, tasks, training.optimizer, training.cfg.rec_meta.grad_clip, sync)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            busy.append(stats["busy_s"])
    return times, busy


def _setup(config: dict, rank: int, world: int):
    from ccrs.config import config_from_dict
    from ccrs.meta.rec_training import RecMetaTraining

    torch.set_num_threads(1)
    return RecMetaTraining(config_from_dict(config["cfg"]), config["prepared"], config["fold"], rank, world)


def ray_loop(config: dict) -> None:
    import ray.train

    from ray_jobs.train_recommender import allreduce_gradients, broadcast_parameters

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    training = _setup(config, rank, world)
    if world > 1:
        broadcast_parameters(training.model)
    times, busy = _timed_steps(training, config["steps"], config["warmup"], allreduce_gradients if world > 1 else None)
    from ray_jobs.meta_driver import gather_object

    busy_by_rank = gather_object(busy, world)
    # Ray keeps only metrics reported with a checkpoint in the Result: attach a tiny one on rank 0.
    import tempfile

    from ray.train import Checkpoint

    with tempfile.TemporaryDirectory() as d:
        Path(d, "times.json").write_text(json.dumps(times))
        ray.train.report({"step_seconds": times, "busy_by_rank": busy_by_rank},
                         checkpoint=Checkpoint.from_directory(d) if rank == 0 else None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prepared", default="runs/demo/prepared")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--meta-batch-size", type=int, default=8)
    ap.add_argument("--storage-path", default="runs/bench_meta_train")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = ap.parse_args()

    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from ccrs.config import load_config

    cfg = load_config(None, [f"rec_meta.meta_batch_size={args.meta_batch_size}", *args.overrides])
    config = {"cfg": cfg.to_dict(), "prepared": str(Path(args.prepared).resolve()), "fold": args.fold, "steps": args.steps,
              "warmup": args.warmup}

    training = _setup(config, 0, 1)
    plain, _ = _timed_steps(training, args.steps, args.warmup, None)
    print(f"(a) plain process: median {statistics.median(plain):.3f} s / meta-step")

    from ccrs.meta.training import idle_shares

    ray.init(num_cpus=2, include_dashboard=True, log_to_driver=False)
    ray_times, fit_seconds, idle = {}, {}, {}
    for key, workers, sharding in (("ray_1", 1, "cost"), ("ray_2_count", 2, "count"), ("ray_2_cost", 2, "cost")):
        run_cfg = load_config(None, [f"rec_meta.meta_batch_size={args.meta_batch_size}", *args.overrides,
                                     f"rec_meta.sharding={sharding}"])
        t0 = time.perf_counter()
        trainer = TorchTrainer(
            ray_loop, train_loop_config=config | {"cfg": run_cfg.to_dict()},
            scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": 1}),
            run_config=RunConfig(name=f"bench-{key}-{int(time.time())}",
                                 storage_path=str(Path(args.storage_path).resolve())),
        )
        result = trainer.fit()
        fit_seconds[key] = time.perf_counter() - t0
        ray_times[key] = result.metrics["step_seconds"]
        shares = idle_shares(result.metrics["busy_by_rank"])
        idle[key] = {"mean": statistics.mean(shares), "max": max(shares), "per_step": shares}
        print(f"Ray Train {key}: median {statistics.median(ray_times[key]):.3f} s / meta-step, workers idle "
              f"{idle[key]['mean']:.1%} (fit {fit_seconds[key]:.1f} s)")
    ray.shutdown()

    med = {"plain": statistics.median(plain), **{k: statistics.median(v) for k, v in ray_times.items()}}
    overhead = med["ray_1"] / med["plain"]
    speedup = {k: med["ray_1"] / med[k] for k in ("ray_2_count", "ray_2_cost")}
    report = {
        "command": "python benchmarks/meta_train.py --prepared " + args.prepared
        + f" --fold {args.fold} --steps {args.steps} --warmup {args.warmup} --meta-batch-size {args.meta_batch_size}"
        + "".join(f" {o}" for o in args.overrides),
        "meta_batch_size": args.meta_batch_size,
        "variant": cfg.recommender.variant,
        "seconds_per_meta_step": {"plain": plain, **ray_times},
        "median_seconds_per_meta_step": med,
        "meta_steps_per_second": {k: 1.0 / v for k, v in med.items()},
        "ray_overhead_ratio": overhead,
        "speedup_2_workers": speedup,
        "scaling_efficiency_2_workers": {k: v / 2 for k, v in speedup.items()},
        "worker_idle_share": idle,
        "fit_wall_seconds_including_startup": fit_seconds,
        "threads_per_process": 1,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_meta_train.json").write_text(json.dumps(report, indent=2) + "\n")
    md = "\n".join([
        "# Meta-training throughput: plain process vs Ray Train (recommender, real data)",
        "",
        f"Regenerate: `{report['command']}`",
        "",
        f"Variant {cfg.recommender.variant}, meta-batch {args.meta_batch_size} users, fold {args.fold}, "
        f"one torch thread per process, 2-core machine; median over {args.steps} meta-steps after {args.warmup} warm-up.",
        "",
        "| setting | s / meta-step | meta-steps / s | speed-up vs (b) | workers idle (mean / worst step) |",
        "|---|---:|---:|---:|---:|",
        f"| (a) plain process | {med['plain']:.3f} | {1 / med['plain']:.2f} | | |",
        f"| (b) Ray Train, 1 worker | {med['ray_1']:.3f} | {1 / med['ray_1']:.2f} | 1.00 | |",
        *(f"| ({tag}) Ray Train, 2 workers, users dealt by {how} | {med[k]:.3f} | {1 / med[k]:.2f} | "
          f"{speedup[k]:.2f} | {idle[k]['mean']:.1%} / {idle[k]['max']:.1%} |"
          for tag, how, k in (("c", "count", "ray_2_count"), ("d", "estimated cost", "ray_2_cost"))),
        "",
        f"Ray overhead (b / a): **{overhead:.3f}** (target < 1.10). Speed-up of 2 workers: "
        f"{speedup['ray_2_count']:.2f}x by count, **{speedup['ray_2_cost']:.2f}x** by cost (scaling efficiency "
        f"{speedup['ray_2_cost'] / 2:.0%}). Workers idle = the share of the ranks' time spent waiting for the "
        "slowest at the all-reduce (`ccrs.meta.training.idle_shares`). Fit wall time including worker start-up: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in fit_seconds.items()) + ".",
        "",
    ])
    (RESULTS / "bench_meta_train.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
