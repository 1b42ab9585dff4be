"""Meta-train the recommender (MAML per user, paper §2.4) on Ray Train: a thin driver around ``ccrs.meta``.

Locally (``ray.init()`` starts a local cluster; ``--num-workers 0`` runs in this process)::

    python -m ray_jobs.train_recommender --data runs/demo/prepared --fold 0 \\
        --storage-path runs/ray --run-name rec-meta-fold0 --num-workers 2

On a cluster (rerunning the same command resumes the run from its last checkpoint)::

    ray job submit --working-dir . -- python -m ray_jobs.train_recommender \\
        --data s3://my-bucket/ccrs/prepared --fold 0 --storage-path s3://my-bucket/ccrs/runs \\
        --run-name rec-meta-fold0 --num-workers 4 --use-gpu --max-failures 3

The worker lifecycle is ``ray_jobs.meta_driver.run_meta_loop``. At the end rank 0 restores the best
valid state, meta-tests valid and test users and writes per-sample predictions, metrics and the
recommender checkpoint ``best.pt`` (what ``ray_jobs.train_generator --rec-ckpt`` reads) to
``<storage-path>/<run-name>/eval/``.
"""

from __future__ import annotations

import argparse
import io
import json
import sys

import torch

from ccrs import storage
from ccrs.config import config_from_dict, load_run_config
from ray_jobs.meta_driver import (  # noqa: F401  (re-exported: benchmarks and tests use them from here)
    absolute_uri,
    add_common_args,
    allreduce_gradients,
    broadcast_parameters,
    eval_location,
    fit_and_report,
    flat_metrics,
    parameter_checksum,
    run_meta_loop,
)
from ray_jobs.meta_driver import build_trainer as _build_trainer


def _init_state(uri: str | None) -> dict | None:
    if not uri:
        return None
    from ccrs.checkpoint import load_checkpoint

    return load_checkpoint(uri)["state_dict"]


def make_training(config: dict, rank: int, world: int, device):
    from ccrs.meta.rec_training import RecMetaTraining

    cfg = config_from_dict(config["cfg"])
    return RecMetaTraining(cfg, config["data"], config["fold"], rank, world, device, _init_state(config["init"]))


def finish(training, config: dict, checksums: list[str]) -> dict[str, float]:
    """Meta-test valid and test users with the best state; write predictions, metrics, ``best.pt``."""
    out = eval_location(config)
    meta = {"variant": f"{training.cfg.recommender.variant}_meta", "split": "user", "fold": training.fold,
            "seed": training.cfg.seed, "best_epoch": training.best_epoch, "resumed_at": training.resumed_at}
    flat: dict[str, float] = {}
    reports = {}
    for role in ("valid", "test"):
        reports[role] = training.evaluate(role).save(out, role, meta)["metrics"]
        flat |= flat_metrics(role, reports[role])
    buf = io.BytesIO()
    torch.save({"format": "ccrs.recommender/1", "config": training.cfg.to_dict(), "state_dict": training.best_state,
                "user_ids": list(training.user_index.keys()), "user_rows": list(training.user_index.values()),
                "epoch": training.best_epoch, "fold": training.fold, "meta": True,
                "inner_lrs": training.best_inner_lrs if training.meta_cfg.learn_inner_lr else {},
                "eval_cold_start": training.eval_cold_start}, buf)
    storage.write_bytes(out.child("best.pt"), buf.getvalue())
    result = {**meta, "valid": reports["valid"], "test": reports["test"], "history": training.history,
              "start": training.start, "out": out.uri, "epochs_run": training.epoch, "replica_checksums": checksums,
              "replicas_identical": len(set(checksums)) == 1}
    storage.write_bytes(out.child("result.json"), json.dumps({"result": result}, indent=2).encode())
    return flat


def train_loop_per_worker(config: dict) -> None:
    run_meta_loop(config, make_training, finish)


def build_trainer(args: argparse.Namespace, cfg, extra: dict | None = None, callbacks: list | None = None):
    return _build_trainer(args, cfg, train_loop_per_worker, {"init": absolute_uri(args.init), **(extra or {})},
                          callbacks)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--init", help="plain recommender checkpoint (best.pt of `ccrs train rec`) to start from")
    p.add_argument("--model", help="= recommender.variant (ccrs | ccrs_no_turn | kbrd)")
    return p.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_run_config(args.config, args.overrides, args.model, args.seed)
    fit_and_report(args, lambda: build_trainer(args, cfg),
                   ("best_epoch", "epochs_run", "resumed_at", "replicas_identical", "test", "out"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
