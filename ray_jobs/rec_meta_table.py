"""Table 1 with meta-training: meta-trained ccrs / ccrs_no_turn / kbrd against the plain rows, all 10 folds.

    python -m ray_jobs.rec_meta_table --prepared runs/demo/prepared --plain-runs runs/rec_plain \\
        --storage-path runs/rec_meta --num-workers 2 --save results/rec_meta \\
        --predictions results/predictions/rec_meta

For every fold and model a meta-training run (``ray_jobs.train_recommender``, run name
``<model>-fold<f>``) starts from the plain model's best checkpoint of ``ccrs eval rec``
(``--plain-runs``; ``--from-scratch`` to start from random weights instead, as Algorithm 1 writes it)
and is skipped when its ``eval/result.json`` exists, so rerunning the command resumes the table.
Rows: ``<model>_meta`` for the meta-trained models, plus the plain ``--plain-models`` read from
``--plain-runs``. All rows are scored on the same query samples of the valid/test users; pooled over
the folds, with a paired significance test of ``ccrs_meta`` against the best other row and of every
meta row against its plain model.

``--unadapted-rows`` (default ``ccrs``) adds ``<model>_meta_beta0``: the same meta-trained checkpoint
ranking the same test users with β = 0 (no inner step), tested against the adapted row, and the
label rank shift adaptation causes (``adaptation`` in the report): does the customization customize?
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ccrs import storage
from ccrs.config import load_run_config
from ccrs.experiments import audit_predictions
from ccrs.experiments.rec_table import RunSpec, aggregate, format_markdown, load_predictions, write_report


def _plain_results(plain_runs: str, models: list[str], folds: list[int]) -> dict[RunSpec, dict]:
    out = {}
    root = storage.resolve(plain_runs)
    for model in models:
        for fold in folds:
            loc = root.child("user", model, f"fold{fold}", "result.json")
            if not storage.exists(loc):
                raise SystemExit(f"error: {loc.uri} missing: run `ccrs eval rec` for the plain models first")
            out[RunSpec(model, "user", fold, 0)] = json.loads(storage.read_bytes(loc))["result"]
    return out


def _unadapted(root, name: str, meta_result: dict, prepared: str, fold: int) -> dict:
    """The β = 0 predictions of ``name``'s best meta checkpoint on its test users (written once, reused)."""
    from ccrs.experiments.personalization import unadapted_predictions

    out = root.child(name, "eval_beta0")
    if not storage.exists(out.child("test_metrics.json")):
        ckpt = storage.resolve(meta_result["out"]).child("best.pt").uri
        unadapted_predictions(ckpt, prepared, fold, "test").save(out, "test", {"checkpoint": ckpt, "beta": 0.0})
    metrics = json.loads(storage.read_bytes(out.child("test_metrics.json")))["metrics"]
    return {"out": out.uri, "best_epoch": meta_result["best_epoch"], "test": metrics}


def _rank_shift(results: dict[RunSpec, dict], model: str, folds: list[int]) -> dict:
    """Pooled over ``folds``: how far adaptation moves the labels' ranks (adapted vs β = 0)."""
    from ccrs.eval.rec_comparison import compare_predictions
    from ccrs.meta.rec_tasks import concat_predictions

    def pooled(row: str):
        return concat_predictions([load_predictions(results[RunSpec(row, "user", f, 0)]["out"], "test") for f in folds])

    cmp = compare_predictions(pooled(f"{model}_meta"), pooled(f"{model}_meta_beta0"))
    return {k: v for k, v in cmp.items() if k != "tests"}


def main(argv: list[str] | None = None) -> int:
    import ray

    from ray_jobs.train_recommender import absolute_uri, build_trainer, parse_args

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepared", required=True)
    p.add_argument("--plain-runs", required=True, help="the --runs of `ccrs eval rec`")
    p.add_argument("--storage-path", required=True, help="Ray Train storage for the meta runs")
    p.add_argument("--models", default="ccrs,ccrs_no_turn,kbrd")
    p.add_argument("--plain-models", default="kbrd,ccrs,popularity")
    p.add_argument("--folds", default="0,1,2,3,4,5,6,7,8,9")
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--unadapted-rows", default="ccrs",
                   help="meta models that also get a β = 0 row (<model>_meta_beta0), '' for none")
    p.add_argument("--from-scratch", action="store_true", help="do not start from the plain checkpoints")
    p.add_argument("--train-only", action="store_true", help="run the missing meta runs, write no table")
    p.add_argument("--save", help="write <SAVE>.json and <SAVE>.md")
    p.add_argument("--resamples", type=int, default=10_000)
    p.add_argument("--predictions", help="also write every row's pooled test predictions, <DIR>/<row>.parquet "
                                         "(ccrs.experiments.audit_predictions: the table recomputes from them)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for the meta runs")
    args = p.parse_intermixed_args(argv)
    models = [m for m in args.models.split(",") if m]
    folds = [int(f) for f in args.folds.split(",") if f]
    root = storage.resolve(absolute_uri(args.storage_path))
    t0 = time.perf_counter()
    if not ray.is_initialized():
        ray.init(log_to_driver=False)
    meta: dict[RunSpec, dict] = {}
    for fold in folds:  # fold-major: a partial table still pairs every model on the same folds
        for model in models:
            name = f"{model}-fold{fold}"
            done = root.child(name, "eval", "result.json")
            if not storage.exists(done):
                init = None if args.from_scratch else str(Path(args.plain_runs, "user", model, f"fold{fold}", "best.pt"))
                run_args = parse_args(["--data", args.prepared, "--fold", str(fold), "--storage-path", args.storage_path,
                                       "--run-name", name, "--num-workers", str(args.num_workers), "--model", model,
                                       "-q", *(["--init", init] if init else []), *args.overrides])
                cfg = load_run_config(run_args.config, run_args.overrides, run_args.model, run_args.seed)
                build_trainer(run_args, cfg).fit()
            result = json.loads(storage.read_bytes(done))["result"]
            meta[RunSpec(f"{model}_meta", "user", fold, 0)] = result
            t = result["test"]["all"]
            print(f"{name}: test ndcg@10 {t['ndcg@10']:.4f} hit@10 {t['hit@10']:.4f} hit@50 {t['hit@50']:.4f} "
                  f"(best epoch {result['best_epoch']}; {time.perf_counter() - t0:.0f} s total)", file=sys.stderr,
                  flush=True)
    if args.train_only:
        return 0
    unadapted = [m for m in args.unadapted_rows.split(",") if m]
    for model in unadapted:
        if model not in models:
            raise SystemExit(f"error: --unadapted-rows {model}: not among --models {args.models}")
        for fold in folds:
            meta[RunSpec(f"{model}_meta_beta0", "user", fold, 0)] = _unadapted(
                root, f"{model}-fold{fold}", meta[RunSpec(f"{model}_meta", "user", fold, 0)], args.prepared, fold)
    plain_models = [m for m in args.plain_models.split(",") if m]
    results = {**meta, **_plain_results(args.plain_runs, plain_models, folds)}
    first = aggregate(results, [], n_resamples=0)
    pooled = first["table"]["user"]["all"]
    best_other = max((m for m in pooled if m != "ccrs_meta"), key=lambda m: pooled[m]["metrics"]["ndcg@10"])
    compare = [("ccrs_meta", best_other)] if "ccrs_meta" in pooled else []
    # the goal is stated against plain kbrd: always test it, whichever row is best
    if "ccrs_meta" in pooled and "kbrd" in plain_models and ("ccrs_meta", "kbrd") not in compare:
        compare.append(("ccrs_meta", "kbrd"))
    compare += [(f"{m}_meta", m) for m in models if m in plain_models and (f"{m}_meta", m) not in compare]
    # the paper's ablation claim, in the meta setting: ccrs_meta against each meta-trained ablation
    compare += [("ccrs_meta", f"{m}_meta") for m in models if m != "ccrs" and ("ccrs_meta", f"{m}_meta") not in compare]
    compare += [(f"{m}_meta", f"{m}_meta_beta0") for m in unadapted]
    report = aggregate(results, compare, n_resamples=args.resamples)
    report["title"] = "Recommendation with per-user meta-training (MAML) vs plain training, user split"
    report["command"] = "python -m ray_jobs.rec_meta_table " + " ".join(sys.argv[1:] if argv is None else argv)
    report["best_other_row"] = best_other
    report["folds"] = folds
    report["adaptation"] = {m: _rank_shift(results, m, folds) for m in unadapted}
    report["meta_runs"] = {f"{s.model}/fold{s.fold}": {k: v for k, v in r.items() if k != "history"}
                           for s, r in meta.items()}
    if args.predictions:
        per_row: dict[str, dict[int, object]] = {}
        for spec, res in results.items():
            per_row.setdefault(spec.model, {})[spec.fold] = load_predictions(res["out"], "test")
        report["predictions"] = audit_predictions.export(per_row, args.predictions)
    print(format_markdown(report))
    if args.save:
        write_report(report, args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
