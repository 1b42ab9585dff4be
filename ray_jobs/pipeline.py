"""The main job: data → recommender (plain warm-up, then MAML on Ray Train) → generator (same) → report.

Locally (``make demo`` runs the ``small`` preset; 8.6 minutes on 2 CPUs with the real data, 9.9 with the install)::

    python -m ray_jobs.pipeline --preset small --storage-path runs/demo

On a cluster (rerunning the same command resumes: every step is skipped when its output exists)::

    ray job submit --working-dir . -- python -m ray_jobs.pipeline --preset paper \\
        --storage-path s3://my-bucket/ccrs --num-workers 4 --max-failures 3

Everything lands under ``--storage-path`` (local path or ``s3://bucket/prefix``)::

    prepared/                      the prepared dataset (``ccrs data prepare``)
    rec/plain/                     plain recommender warm-up (``ccrs train rec``)
    rec/popularity/, rec/kbrd/     the baselines, trained like the warm-up, scored on the same test samples
    runs/rec-meta-fold<f>/         Ray Train run of the recommender; eval/best.pt, predictions, metrics
    gen/plain/                     plain generator warm-up (``ccrs train gen``)
    runs/dial-meta-fold<f>/        Ray Train run of the generator; eval/best.pt, responses, metrics
    report/report.json, report.md  the evaluation tables of this pipeline run, the model against the baselines

Presets (``KEY=VALUE`` overrides after them win): ``tiny`` (tests and smoke runs: minutes),
``small`` (the demo), ``paper`` (the paper's sizes and epochs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from ccrs import storage
from ccrs.config import load_config
from ccrs.eval.gen_metrics import format_generation_summary

PRESETS: dict[str, list[str]] = {
    "tiny": ["recommender.entity_dim=16", "recommender.user_dim=16", "recommender.n_heads=2",
             "rec_train.max_epochs=1", "rec_meta.epochs=1", "rec_meta.meta_batch_size=4",
             "generator.word_dim=32", "generator.ffn_dim=32", "generator.bias_hidden=32", "generator.min_word_count=1",
             "generator.max_context_tokens=64", "gen_train.max_epochs=1", "gen_train.max_generate=64",
             "dial_meta.epochs=1", "dial_meta.meta_batch_size=4", "dial_meta.max_task_samples=4"],
    # rec_train.lr=0.01: chosen on fold-0 valid for ccrs (results/rec_select_lr0.01.md)
    # Sized for `make demo` in under 10 minutes on 2 CPUs, install included (README): the generator
    # reads the last 64 context tokens, has one plain epoch (2 epochs on 128 tokens took 12.5 of the
    # 18 minutes the demo used to take) and no dropout (one epoch does not overfit; 20% faster).
    "small": ["rec_train.lr=0.01", "rec_train.max_epochs=3", "rec_meta.epochs=1", "generator.word_dim=128",
              "generator.ffn_dim=128", "generator.max_context_tokens=64", "generator.dropout=0.0",
              "gen_train.max_epochs=1",
              "gen_train.max_generate=100", "dial_meta.epochs=1", "dial_meta.max_task_samples=8"],
    "paper": [],
}


#: Plain recommenders the report compares the meta-trained model with, on the same test samples.
BASELINES = ("popularity", "kbrd")


def _log(msg: str) -> None:
    print(f"[pipeline {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _with_threads(fn, threads: int, *args) -> Any:
    import torch

    torch.set_num_threads(threads)  # a reused Ray worker keeps the thread count of its first task
    return fn(*args)


def _remote(fn, *args, num_cpus: float = 1.0) -> Any:
    """Run a plain (non-Ray-Train) step as a Ray task, so on a cluster it lands on a worker node;
    it reserves ``num_cpus`` and runs torch on that many threads."""
    import ray

    return ray.get(ray.remote(num_cpus=num_cpus)(_with_threads).remote(fn, max(1, int(num_cpus)), *args))


def _largest_node_cpus() -> int:
    """CPUs of the largest alive node: a plain (single-process) step may use a whole node."""
    import ray

    return max(int(n["Resources"].get("CPU", 1)) for n in ray.nodes() if n.get("Alive")) or 1


def _prepare(raw: str | None, out: str, overrides: list[str]) -> dict:
    from ccrs.data.locate import resolve_raw_dir
    from ccrs.data.prepare import prepare

    raw_dir, origin = resolve_raw_dir(raw)
    result = prepare(raw_dir, out, load_config(None, overrides).data, progress=False)
    return {"raw": str(raw_dir), "origin": origin, "skipped": result.skipped, "stats": result.manifest.get("stats", {})}


def _train_rec(cfg_overrides: list[str], prepared: str, fold: int, out: str) -> dict:
    from ccrs.train.rec_trainer import train_recommender

    # progress: one line per epoch in the job's log (tqdm bars only on a terminal: ccrs/progress.py)
    return train_recommender(load_config(None, cfg_overrides), prepared, "user", fold, out, progress=True).to_dict()


def _train_gen(cfg_overrides: list[str], prepared: str, rec_ckpt: str, fold: int, out: str) -> dict:
    from ccrs.train.gen_trainer import train_generator

    # the valid/test lines are printed by the driver (a task's lines reach it late, after the next stage's)
    return train_generator(load_config(None, cfg_overrides), prepared, rec_ckpt, fold, out, progress=True,
                           print_results=False)


def _against_baselines(paths: dict[str, str]) -> list[dict]:
    """Popularity, kbrd, the plain warm-up and the meta-trained model on the same test samples, each
    against kbrd (user-level p)."""
    from ccrs.eval.rec_comparison import compare_on_same_samples
    from ccrs.experiments.rec_table import load_predictions

    runs = {"popularity": paths["rec_popularity"], "kbrd": paths["rec_kbrd"], "ccrs (plain warm-up)": paths["rec_plain"],
            "ccrs (meta)": storage.resolve(paths["rec_meta"]).child("eval").uri}
    return compare_on_same_samples({name: load_predictions(uri) for name, uri in runs.items()}, reference="kbrd")


def format_report(report: dict) -> str:
    rec, gen = report["recommender"], report["generator"]
    lines = ["# ccrs pipeline report", "", f"Storage: `{report['storage_path']}`; preset `{report['preset']}`; "
             f"fold {report['fold']} of the user split.", "", "## Recommender (MAML, meta-test on test users)", "",
             "| variant | samples | hit@1 | hit@10 | hit@50 | mrr@10 | ndcg@10 |", "|---|---:|---:|---:|---:|---:|---:|"]
    for variant in ("all", "dedup"):
        m = rec["test"][variant]
        lines.append(f"| {variant} | {m.get('count', '')} | {m['hit@1']:.4f} | {m['hit@10']:.4f} | {m['hit@50']:.4f} | "
                     f"{m['mrr@10']:.4f} | {m['ndcg@10']:.4f} |")
    if report.get("against_baselines"):
        from ccrs.eval.rec_comparison import comparison_markdown

        lines += ["", "## Recommender against the baselines (same test samples; each trained with the warm-up's "
                  "epochs)", "", *comparison_markdown(report["against_baselines"])]
    lines += ["", "## Generator (test)", "",
              "Dist-k = distinct word k-grams ÷ responses: it falls as responses grow, so compare it at equal "
              "counts (the plain warm-up scores its first `gen_train.max_generate` test samples).", "",
              "| model | responses | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | F1 | Dist-2 | Dist-3 | Dist-4 | PPL |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = [("plain warm-up", gen.get("plain_test")), ("MAML, meta-test on test users", gen["test"])]
    for name, g in rows:
        if g:
            lines.append(f"| {name} | {g.get('responses', 0)} | {g['bleu1']:.4f} | {g['bleu2']:.4f} | {g['bleu3']:.4f} | "
                         f"{g['bleu4']:.4f} | {g['f1']:.4f} | {g['dist2']:.4f} | {g['dist3']:.4f} | {g['dist4']:.4f} | "
                         f"{g['ppl']:.2f} |")
    lines += ["", "## Restarts", ""]
    for stage, resumed in report.get("restarts", {}).items():
        lines.append(f"- {stage}: " + (f"restarted, resumed from the checkpoint after epoch(s) {resumed}" if resumed
                                      else "no restart"))
    lines += ["", "## Where things are", ""]
    lines += [f"- {k}: `{v}`" for k, v in report["paths"].items()]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--storage-path", required=True, help="local path or s3://bucket/prefix for everything")
    p.add_argument("--preset", default="small", choices=sorted(PRESETS))
    p.add_argument("--raw", help="raw ReDial directory (default: $CCRS_RAW_DIR, ../shared/data/redial, download)")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--num-workers", type=int, default=2, help="Ray Train workers per meta-training stage")
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--use-gpu", action="store_true")
    p.add_argument("--max-failures", type=int, default=1, help="worker failures each Ray Train run survives")
    p.add_argument("--plain-cpus", type=int, default=0,
                   help="CPUs (and torch threads) of each plain warm-up task (default: the largest node's CPUs)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides after the preset")
    return p


def main(argv: list[str] | None = None) -> int:
    import ray

    from ray_jobs import train_generator, train_recommender
    from ray_jobs.meta_driver import absolute_uri

    p = build_parser()
    args = p.parse_intermixed_args(argv)
    overrides = [*PRESETS[args.preset], *args.overrides]
    load_config(None, overrides)  # reject bad keys before any work
    root = storage.resolve(absolute_uri(args.storage_path))
    if root.is_s3:
        storage.ensure_bucket(root.uri)
    paths = {"prepared": root.child("prepared").uri, "rec_plain": root.child("rec", "plain").uri,
             "rec_meta": root.child("runs", f"rec-meta-fold{args.fold}").uri,
             **{f"rec_{b}": root.child("rec", b).uri for b in BASELINES},
             "gen_plain": root.child("gen", "plain").uri,
             "gen_meta": root.child("runs", f"dial-meta-fold{args.fold}").uri,
             "report": root.child("report", "report.md").uri}
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=True)
    plain_cpus = args.plain_cpus or _largest_node_cpus()
    t0 = time.perf_counter()
    _log(f"1/6 data → {paths['prepared']}")
    data = _remote(_prepare, args.raw, paths["prepared"], overrides)
    _log(f"    raw data: {data['raw']} ({data['origin']}){'; already prepared' if data['skipped'] else ''}")
    _log(f"2/6 recommender: plain warm-up ({plain_cpus} CPUs) → {paths['rec_plain']}")
    _remote(_train_rec, overrides, paths["prepared"], args.fold, paths["rec_plain"], num_cpus=plain_cpus)
    common = ["--data", paths["prepared"], "--fold", str(args.fold), "--storage-path", root.child("runs").uri,
              "--num-workers", str(args.num_workers), "--cpus-per-worker", str(args.cpus_per_worker),
              "--max-failures", str(args.max_failures), "-q", *(["--use-gpu"] if args.use_gpu else [])]
    _log(f"    MAML on Ray Train ({args.num_workers} workers) → {paths['rec_meta']}")
    if not storage.exists(storage.resolve(paths["rec_meta"]).child("eval", "result.json")):
        train_recommender.main([*common, "--run-name", f"rec-meta-fold{args.fold}",
                                "--init", storage.resolve(paths["rec_plain"]).child("best.pt").uri, *overrides])
    rec_ckpt = storage.resolve(paths["rec_meta"]).child("eval", "best.pt").uri
    for baseline in BASELINES:  # trained like the warm-up (same epochs), scored on the same test samples
        _log(f"3/6 baseline {baseline}: plain ({plain_cpus} CPUs) → {paths[f'rec_{baseline}']}")
        _remote(_train_rec, [*overrides, f"recommender.variant={baseline}"], paths["prepared"], args.fold,
                paths[f"rec_{baseline}"], num_cpus=plain_cpus)
    _log(f"4/6 generator: plain warm-up ({plain_cpus} CPUs) → {paths['gen_plain']}")
    plain_gen = _remote(_train_gen, overrides, paths["prepared"], rec_ckpt, args.fold, paths["gen_plain"],
                        num_cpus=plain_cpus)
    for part in ("valid", "test"):
        _log(f"    plain generator {part}: {format_generation_summary(plain_gen[part])}")
    _log(f"5/6 generator: MAML on Ray Train → {paths['gen_meta']}")
    if not storage.exists(storage.resolve(paths["gen_meta"]).child("eval", "result.json")):
        train_generator.main([*common, "--run-name", f"dial-meta-fold{args.fold}", "--rec-ckpt", rec_ckpt,
                              "--init", storage.resolve(paths["gen_plain"]).child("best.pt").uri, *overrides])
    _log("6/6 report")
    rec = json.loads(storage.read_bytes(storage.resolve(paths["rec_meta"]).child("eval", "result.json")))["result"]
    gen = json.loads(storage.read_bytes(storage.resolve(paths["gen_meta"]).child("eval", "result.json")))["result"]
    report = {"preset": args.preset, "overrides": overrides, "fold": args.fold, "storage_path": root.uri,
              "recommender": {"test": rec["test"], "best_epoch": rec["best_epoch"], "resumed_at": rec["resumed_at"]},
              "generator": {"test": gen["test"], "plain_test": plain_gen["test"], "best_epoch": gen["best_epoch"],
                            "resumed_at": gen["resumed_at"]},
              "restarts": {"recommender": rec["resumed_at"], "generator": gen["resumed_at"]},
              "against_baselines": _against_baselines(paths),
              "paths": paths, "seconds": time.perf_counter() - t0}
    text = format_report(report)
    storage.write_bytes(root.child("report", "report.json"), json.dumps(report, indent=2).encode())
    storage.write_bytes(root.child("report", "report.md"), text.encode())
    print(text)
    meta = report["against_baselines"][-1]
    _log(f"ccrs (meta) vs kbrd on the same {meta['samples']} test samples: NDCG@10 {meta['ndcg@10']:.4f} vs "
         f"{meta['ndcg@10'] - meta['diff_ndcg@10']:.4f} ({meta['diff_ndcg@10']:+.4f}, user-level p {meta['p_user']:.3f})")
    _log(f"done in {report['seconds']:.0f} s; checkpoints: {rec_ckpt} and "
         f"{storage.resolve(paths['gen_meta']).child('eval', 'best.pt').uri}; report: {paths['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
