"""Meta-train the generator (MAML per user, paper §2.3–2.4) on Ray Train: a thin driver around ``ccrs.meta``.

The recommender is loaded (frozen) from ``--rec-ckpt``, a ``best.pt`` of ``ray_jobs.train_recommender``
(``<storage>/<run>/eval/best.pt``) or of ``ccrs train rec``, local or ``s3://``. Locally::

    python -m ray_jobs.train_generator --data runs/demo/prepared --fold 0 \\
        --rec-ckpt runs/ray/rec-meta-fold0/eval/best.pt \\
        --storage-path runs/ray --run-name dial-meta-fold0 --num-workers 2

On a cluster (rerunning the same command resumes the run from its last checkpoint)::

    ray job submit --working-dir . -- python -m ray_jobs.train_generator \\
        --data s3://my-bucket/ccrs/prepared --rec-ckpt s3://my-bucket/ccrs/runs/rec-meta-fold0/eval/best.pt \\
        --storage-path s3://my-bucket/ccrs/runs --run-name dial-meta-fold0 --num-workers 4 --max-failures 3

Same lifecycle, storage, resume and failure behaviour as the recommender driver
(``ray_jobs.meta_driver``); the valid criterion is perplexity after per-user adaptation. At the end
rank 0 meta-tests valid and test users (perplexity + generated responses, BLEU/F1/Dist) and writes
``<storage-path>/<run-name>/eval/``: ``{valid,test}_responses.jsonl``, ``*_gen_metrics.json``,
``best.pt`` (the generator, with its vocabulary) and ``result.json``.
"""

from __future__ import annotations

import argparse
import json
import sys

from ccrs import storage
from ccrs.config import config_from_dict, load_run_config
from ray_jobs.meta_driver import (
    absolute_uri,
    add_common_args,
    eval_location,
    fit_and_report,
    flat_metrics,
    run_meta_loop,
)
from ray_jobs.meta_driver import build_trainer as _build_trainer


def make_training(config: dict, rank: int, world: int, device):
    from ccrs.checkpoint import load_checkpoint
    from ccrs.meta.gen_training import GenMetaTraining

    cfg = config_from_dict(config["cfg"])
    init = load_checkpoint(config["init"]) if config["init"] else None
    return GenMetaTraining(cfg, config["data"], config["fold"], config["rec_ckpt"], rank, world, device, init)


def finish(training, config: dict, checksums: list[str]) -> dict[str, float]:
    from ccrs.checkpoint import save_checkpoint

    out = eval_location(config)
    meta = {"variant": training.cfg.generator.variant, "training": "meta", "fold": training.fold,
            "seed": training.cfg.seed, "best_epoch": training.best_epoch, "resumed_at": training.resumed_at,
            "rec_checkpoint": training.rec_ckpt}
    reports, flat = {}, {}
    for role in ("valid", "test"):
        reports[role] = training.evaluate(role, generate_responses=True).save(out, role, meta)["metrics"]
        flat |= flat_metrics(role, reports[role])
    save_checkpoint(out.child("best.pt"), training.checkpoint_payload())
    result = {**meta, "valid": reports["valid"], "test": reports["test"], "history": training.history,
              "start": training.start, "out": out.uri, "epochs_run": training.epoch, "vocab_size": len(training.data.tokenizer),
              "replica_checksums": checksums, "replicas_identical": len(set(checksums)) == 1}
    storage.write_bytes(out.child("result.json"), json.dumps({"result": result}, indent=2).encode())
    return flat


def train_loop_per_worker(config: dict) -> None:
    run_meta_loop(config, make_training, finish)


def build_trainer(args: argparse.Namespace, cfg, extra: dict | None = None, callbacks: list | None = None):
    return _build_trainer(args, cfg, train_loop_per_worker,
                          {"init": absolute_uri(args.init), "rec_ckpt": absolute_uri(args.rec_ckpt), **(extra or {})},
                          callbacks)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--rec-ckpt", required=True, help="recommender checkpoint URI (frozen; gives p_u and item slots)")
    p.add_argument("--init", help="plain generator checkpoint (best.pt of `ccrs train gen`) to start from")
    p.add_argument("--model", help="= generator.variant (ccrs | only_meta)")
    return p.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_run_config(args.config, [*args.overrides, *([f"generator.variant={args.model}"] if args.model else [])],
                          None, args.seed)
    fit_and_report(args, lambda: build_trainer(args, cfg),
                   ("best_epoch", "epochs_run", "resumed_at", "replicas_identical", "test", "out"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
