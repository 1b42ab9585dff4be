"""What both meta-training drivers share: the Ray Train worker loop, collectives, trainer, CLI, main.

``ray_jobs/train_recommender.py`` and ``ray_jobs/train_generator.py`` are thin: each gives a
``make_training(config, rank, world, device)`` that builds its stage's
:class:`~ccrs.meta.training.MetaTraining`, and a ``finish(training, config, checksums)`` that
meta-tests the best state and writes ``<storage-path>/<run-name>/eval/``.

Lifecycle per worker: setup (each worker reads the prepared dataset from its URI; rank 0's initial
weights are broadcast, or every rank loads the last checkpoint) → meta-epochs (each rank adapts its
share of every meta-batch's users; gradients are all-reduced, never DDP: DDP has no double
backward) → every ``--eval-every`` epochs rank 0 meta-tests on the valid users and every rank
reports the same metrics, rank 0 with the checkpoint → at the end rank 0 restores the best valid
state and runs ``finish``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ccrs import storage
from ccrs.eval.gen_metrics import format_generation_summary
from ccrs.train.curves import TENSORBOARD_DIR, CurveWriter, curve_metrics

STATE_FILE = "state.pt"


def flat_metrics(prefix: str, metrics: dict) -> dict[str, float]:
    """``{"all": {"ndcg@10": x}}`` → ``{"prefix/all/ndcg@10": x}``; flat dicts → ``prefix/key``."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out |= flat_metrics(f"{prefix}/{k}", v)
        elif isinstance(v, int | float):
            out[f"{prefix}/{k}"] = v
    return out


def allreduce_gradients(model: torch.nn.Module) -> None:
    """Average every parameter's gradient over the ranks (one flat all-reduce; missing grads count as 0).

    Tables under a row-sparse update (``embedding_gradients=row_sparse``) are left out: their rows
    travel in :func:`allreduce_row_gradients`."""
    import torch.distributed as dist

    from ccrs.nn.row_sparse_embedding import RowSparseEmbedding

    sparse = {id(m.weight) for m in model.modules() if isinstance(m, RowSparseEmbedding) and m.row_sparse}
    params = [p for p in model.parameters() if id(p) not in sparse]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    if not torch.isfinite(flat).all():
        names = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
        raise FloatingPointError(f"rank {dist.get_rank()}: non-finite gradients in {names[:5]} before all-reduce")
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p))
        offset += n


def allreduce_row_gradients(grads: list) -> list:
    """Average row-sparse gradients over the ranks (``ccrs.meta.row_sparse``), per table:

    1. all-gather every rank's touched row ids (int64, padded to the largest rank's count) → their
       union U, the same on every rank;
    2. each rank writes its rows into a (|U|, d) buffer, one all-reduce sums the buffers, / world size.

    Bytes per rank: the ids, plus a ring all-reduce of |U| rows (2·|U|·d·4·(W−1)/W), so they follow the
    rows the meta-batch touched, not the table. When U covers half the table or more, the dense
    table is all-reduced instead (same result, one buffer without the scatter)."""
    import torch.distributed as dist

    from ccrs.nn.row_sparse_embedding import RowGradient

    world = dist.get_world_size()
    out = []
    for g in grads:
        n_rows = g.num_rows
        if not torch.isfinite(g.rows).all():
            raise FloatingPointError(f"rank {dist.get_rank()}: non-finite row gradients before the row all-reduce")
        counts = [torch.zeros(1, dtype=torch.long) for _ in range(world)]
        dist.all_gather(counts, torch.tensor([g.ids.numel()], dtype=torch.long))
        k = int(max(int(c) for c in counts))
        ids = torch.full((k,), -1, dtype=torch.long, device=g.ids.device)
        ids[: g.ids.numel()] = g.ids
        all_ids = [torch.empty_like(ids) for _ in range(world)]
        dist.all_gather(all_ids, ids)
        union = torch.unique(torch.cat(all_ids))
        union = union[union >= 0]
        d = g.rows.size(1)
        if 2 * union.numel() >= n_rows:  # most of the table: the dense buffer is as cheap and simpler
            buf = g.rows.new_zeros(n_rows, d)
            buf[g.ids] = g.rows
            dist.all_reduce(buf)
            out.append(RowGradient(union, buf[union] / world, n_rows))
            continue
        buf = g.rows.new_zeros(union.numel(), d)
        buf[torch.searchsorted(union, g.ids)] = g.rows
        dist.all_reduce(buf)
        out.append(RowGradient(union, buf / world, n_rows))
    return out


def worker_time(step_busy: list[float], world_size: int) -> dict[str, Any]:
    """The epoch's worker busy/idle time: every rank's busy seconds per meta-step gathered, and the
    share of the ranks' time spent waiting at the gradient collective (``idle_share``: mean over the
    epoch's steps; ``idle_share_max``: its worst step; ``worker_busy_s``: each rank's total)."""
    from ccrs.meta.training import idle_shares

    if world_size <= 1 or not step_busy:
        return {}
    busy = gather_object(step_busy, world_size)
    shares = idle_shares(busy)
    return {"idle_share": sum(shares) / len(shares), "idle_share_max": max(shares),
            "worker_busy_s": [round(sum(b), 3) for b in busy]}


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers to every rank, so replicas start identical."""
    import torch.distributed as dist

    for t in [*model.parameters(), *model.buffers()]:
        dist.broadcast(t.data, src=0)


def broadcast_object(obj: Any, world_size: int) -> Any:
    if world_size <= 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_across_ranks(stats: dict[str, float], world_size: int) -> dict[str, float]:
    """Globally averaged training statistics (rank 0 reports them for everyone)."""
    if world_size <= 1:
        return stats
    import torch.distributed as dist

    keys = sorted(k for k, v in stats.items() if isinstance(v, float))
    t = torch.tensor([stats[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {**stats, **{k: float(v) / world_size for k, v in zip(keys, t.tolist(), strict=True)}}


def parameter_checksum(*modules: torch.nn.Module) -> str:
    """sha256 of every parameter's bytes: replicas in sync ⇔ equal checksums."""
    import hashlib

    h = hashlib.sha256()
    for module in modules:
        for _, p in sorted(module.state_dict().items()):
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def gather_object(obj: Any, world_size: int) -> list[Any]:
    if world_size <= 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world_size
    dist.all_gather_object(out, obj)
    return out


def maybe_inject_fault(config: dict, epoch: int, rank: int) -> None:
    """Fault injection for the resume/failure tests: fail once, after the checkpoint of ``epoch``."""
    after, marker = config.get("fault_after_epoch"), config.get("fault_marker")
    if after is not None and epoch == after and rank == 0 and marker and not Path(marker).exists():
        Path(marker).write_text(f"failed after epoch {epoch}\n")
        raise RuntimeError(f"injected fault after epoch {epoch}")


def eval_location(config: dict) -> storage.Location:
    return storage.resolve(config["storage_path"]).child(config["run_name"], "eval")


def quiet_train_reports() -> None:
    """Ray Train (2.60) logs every ``ray.train.report`` of every worker as a whole ``TrainingReport``
    dictionary at INFO; the epoch line this loop prints carries what matters. That logger is named
    after its module's file, so it is found through the module (a Ray without it: nothing to do)."""
    try:
        from ray.train.v2._internal.execution import context as train_context
    except ImportError:
        return
    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)


def worker_line(text: str) -> None:
    """Write one line to the worker's stdout, once. Ray Train (2.60) replaces ``print`` in its workers
    by a call to the root logger, whose handlers then echo it to both of the worker's streams: every
    epoch line appeared twice in a job's log."""
    sys.__stdout__.write(text + "\n")
    sys.__stdout__.flush()


def run_meta_loop(config: dict, make_training: Callable, finish: Callable) -> None:
    """The body of ``train_loop_per_worker`` for any stage (module docstring)."""
    import ray.train
    from ray.train import Checkpoint

    quiet_train_reports()

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = torch.device("cpu")
    if config["use_gpu"]:
        import ray.train.torch

        device = ray.train.torch.get_device()
    training = make_training(config, rank, world, device)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            training.load_state_dict(torch.load(Path(d) / STATE_FILE, map_location=device, weights_only=True))
        if rank == 0:
            worker_line(f"resumed from the checkpoint of epoch {training.epoch}")
    elif world > 1:
        broadcast_parameters(training.model)
    sync = allreduce_gradients if world > 1 else None
    sync_rows = allreduce_row_gradients if world > 1 else None
    curves = run_curves(config) if rank == 0 else None
    if training.needs_start_evaluation():  # keep the start unless a meta-epoch beats it (eval_start)
        start = training.evaluate("valid").metrics() if rank == 0 else None
        training.record_start(broadcast_object(start, world))
        if rank == 0:
            worker_line(progress_line(training.stage, 0, None, training.summary(start), 0) + "  (the starting point)")
            curves.log(0, curve_metrics({"valid": start}))
    while not training.should_stop():
        stats = training.train_epoch(sync, progress=rank == 0 and config["progress"], sync_rows=sync_rows)
        stats = mean_across_ranks(stats | worker_time(training.step_busy, world), world)
        if training.epoch % config["eval_every"] and not training.should_stop():
            continue
        valid = training.evaluate("valid").metrics() if rank == 0 else None
        valid = broadcast_object(valid, world)  # every rank records the same best epoch → same stopping
        improved = training.record_valid(valid, stats)
        checksums = gather_object(parameter_checksum(training.model, training.maml.meta_module), world)
        # "objective" (higher is better) is what a sweep optimises: the stage's selection score, shifted
        # and scaled for a two-stage trial (ray_jobs/tune.py --stage both).
        objective = config.get("objective_base", 0.0) + config.get("objective_weight", 1.0) * training.best_score
        metrics = {**stats, **flat_metrics("valid", valid), "objective": objective, "best_epoch": training.best_epoch,
                   "improved": improved,
                   "replica_checksums": checksums, "replicas_identical": len(set(checksums)) == 1}
        if rank == 0:
            worker_line(progress_line(training.stage, training.epoch, stats.get("query_loss"), training.summary(valid),
                                      training.best_epoch, stats.get("idle_share")))
            curves.log(training.epoch, curve_metrics({"train": stats, "valid": valid, "objective": objective}))
            with tempfile.TemporaryDirectory() as d:
                torch.save(training.state_dict(), Path(d) / STATE_FILE)
                ray.train.report(metrics, checkpoint=Checkpoint.from_directory(d))
        else:
            ray.train.report(metrics)
        maybe_inject_fault(config, training.epoch, rank)
    checksums = gather_object(parameter_checksum(training.model, training.maml.meta_module), world)
    final: dict[str, Any] = {"epoch": training.epoch, "best_epoch": training.best_epoch, "resumed_at": training.resumed_at,
                             "replica_checksums": checksums, "replicas_identical": len(set(checksums)) == 1}
    if rank == 0:
        curves.close()
        if curves.mlflow is not None:
            curves.mlflow.end_run()
        training.restore_best()
        final |= finish(training, config, checksums)
    ray.train.report(broadcast_object(final, world))


def run_curves(config: dict) -> CurveWriter:
    """Rank 0's curves: TensorBoard event files in ``<storage-path>/<run-name>/tensorboard`` and, with
    ``--mlflow-tracking-uri``, an MLflow run of that name through Ray's integration (``setup_mlflow``)."""
    mlflow = None
    if config.get("mlflow_tracking_uri"):
        from ray.air.integrations.mlflow import setup_mlflow

        params = curve_params(config["cfg"])
        mlflow = setup_mlflow(params, tracking_uri=config["mlflow_tracking_uri"], experiment_name=config["run_name"],
                              run_name=config["run_name"], create_experiment_if_not_exists=True)
    uri = storage.resolve(config["storage_path"]).child(config["run_name"], TENSORBOARD_DIR).uri
    return CurveWriter(uri, mlflow)


def curve_params(cfg: dict, prefix: str = "") -> dict[str, str]:
    """The config as flat ``section.key`` parameters (what MLflow shows beside the curves)."""
    out = {}
    for k, v in cfg.items():
        name = f"{prefix}.{k}" if prefix else k
        out |= curve_params(v, name) if isinstance(v, dict) else {name: str(v)}
    return out


def absolute_uri(uri: str | None) -> str | None:
    """Local paths made absolute: Ray Train workers run in their own working directory."""
    if uri is None or "://" in uri:
        return uri
    return str(Path(uri).expanduser().resolve())


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="prepared dataset URI (local path or s3://)")
    p.add_argument("--fold", type=int, default=0, help="test fold of the user split")
    p.add_argument("--storage-path", required=True, help="Ray Train storage (local dir or s3://bucket/prefix)")
    p.add_argument("--run-name", required=True, help="stable name: rerunning the same command resumes")
    p.add_argument("--num-workers", type=int, default=2, help="Ray Train workers (0 = in-process local mode)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--use-gpu", action="store_true")
    p.add_argument("--max-failures", type=int, default=0, help="worker failures tolerated (restart from checkpoint)")
    p.add_argument("--eval-every", type=int, default=1, help="meta-epochs between valid evaluations/checkpoints")
    p.add_argument("--seed", type=int)
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--mlflow-tracking-uri", help="also log the curves to MLflow through Ray's integration "
                                                  "(e.g. sqlite:///mlflow.db or http://host:5000; pip install mlflow)")
    # Fault injection (tests): fail once after the checkpoint of epoch N; the marker file makes it once.
    p.add_argument("--inject-fault-after-epoch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--fault-marker", help=argparse.SUPPRESS)
    p.add_argument("--config", type=Path, help="YAML config")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")


def build_trainer(args: argparse.Namespace, cfg, train_loop: Callable, extra: dict | None = None,
                  callbacks: list | None = None) -> Any:
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    loop_config = {
        "cfg": cfg.to_dict(), "data": absolute_uri(args.data), "fold": args.fold, "use_gpu": args.use_gpu,
        "eval_every": args.eval_every, "storage_path": absolute_uri(args.storage_path), "run_name": args.run_name,
        "progress": not args.quiet, "fault_after_epoch": args.inject_fault_after_epoch,
        "fault_marker": args.fault_marker, "mlflow_tracking_uri": args.mlflow_tracking_uri, **(extra or {}),
    }
    scaling = ScalingConfig(num_workers=args.num_workers, use_gpu=args.use_gpu,
                            resources_per_worker={"CPU": args.cpus_per_worker} if args.num_workers else None)
    run = RunConfig(
        name=args.run_name,
        storage_path=absolute_uri(args.storage_path),
        failure_config=FailureConfig(max_failures=args.max_failures),
        checkpoint_config=CheckpointConfig(num_to_keep=2),
        callbacks=callbacks,
    )
    return TorchTrainer(train_loop, train_loop_config=loop_config, scaling_config=scaling, run_config=run)


def progress_line(stage: str, epoch: int, query_loss: float | None, summary: dict, best_epoch: int,
                  idle_share: float | None = None) -> str:
    """One readable line per meta-epoch: ``[rec] epoch 3: query loss 5.123  valid ndcg@10 0.1180  (best 3)``
    (with several workers, also the share of their time spent waiting for each other)."""
    parts = [f"[{stage}] epoch {epoch}:"]
    if query_loss is not None:
        parts.append(f"query loss {query_loss:.3f}")
    parts += [f"{k.replace('_', ' ', 1)} {v:.4f}" for k, v in summary.items()]
    if idle_share is not None:
        parts.append(f"workers idle {100 * idle_share:.0f}%")
    return "  ".join(parts) + f"  (best epoch {best_epoch})"


def fit_and_report(args: argparse.Namespace, build: Callable[[], Any], keep: tuple[str, ...]) -> dict:
    """Start Ray if needed, fit, print one line (:func:`final_line`) and return the ``keep`` entries of the
    final report rank 0 wrote (``eval/result.json``)."""
    import ray

    if args.storage_path.startswith("s3://"):
        storage.ensure_bucket(args.storage_path)
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=True)
    build().fit()
    # Ray keeps only checkpointed metrics in its Result: the final report is the file rank 0 wrote.
    out = storage.resolve(absolute_uri(args.storage_path)).child(args.run_name, "eval", "result.json")
    final = json.loads(storage.read_bytes(out))["result"]
    print(final_line(args.run_name, final, out.uri), flush=True)  # the whole report is in that file
    return {k: final[k] for k in keep if k in final}


def final_line(run_name: str, final: dict, result_uri: str) -> str:
    """One line with the metric that matters on test, and where the whole report is."""
    test = final.get("test", {})
    if "all" in test:  # recommender
        m = test["all"]
        scores = f"test ndcg@10 {m['ndcg@10']:.4f}  hit@10 {m['hit@10']:.4f}  ({m.get('count', '?')} samples)"
    else:  # generator
        scores = f"test {format_generation_summary(test)}"
    resumed = f"; resumed after epoch(s) {final['resumed_at']}" if final.get("resumed_at") else ""
    return (f"[{run_name}] done: best epoch {final.get('best_epoch')} of {final.get('epochs_run')}{resumed}; "
            f"{scores}; report: {result_uri}")
