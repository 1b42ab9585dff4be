"""Hyperparameter sweeps over both stages with Ray Tune + Optuna (TPE) and ASHA: a thin driver.

Locally (rerunning the same command resumes the sweep; finished trials are not rerun)::

    python -m ray_jobs.tune --stage rec --data runs/demo/prepared --fold 0 --trials 12 \\
        --max-concurrent-trials 2 --num-workers 1 --storage-path runs/tune --run-name tune-rec --save results/tune_rec
    python -m ray_jobs.tune --stage dial --rec-ckpt runs/rec_meta/ccrs-fold0/eval/best.pt ... --run-name tune-dial

On a cluster::

    ray job submit --working-dir . -- python -m ray_jobs.tune --stage both --data s3://bucket/ccrs/prepared \\
        --storage-path s3://bucket/ccrs/tune --run-name sweep1 --trials 32 --max-concurrent-trials 4 --num-workers 2

A trial is a driver function (Ray's "Train inside Tune"): it builds the stage's ``TorchTrainer``
(``ray_jobs.train_recommender`` / ``ray_jobs.train_generator``) with run name ``<trial id>-<stage>``
under ``<storage>/<run-name>/trials`` and a ``TuneReportCallback``, so every valid evaluation reaches
Tune and ASHA can stop the trial. The objective is ``objective`` (higher is better), computed on the
**valid** users after meta-test adaptation, never on test: rec = ``rec_train.select_metric``
(NDCG@10); dial = −ln(valid perplexity), or the ``gen_train.select_metric`` generation metric;
both = rec's best valid NDCG@10 + ``--both-weight`` × the dial objective (reported during the dial
stage; during the rec stage a both-trial reports rec's score alone).

Resources: a trial holds ``--trial-cpus`` for its driver plus its Train workers
(``--num-workers`` × ``--cpus-per-worker``) and, with ``--trial-memory-gb``, that much of Ray's
``memory`` resource; the number of concurrent trials is capped so that all of them fit the cluster at
once, by CPUs and by memory (no trial waits forever for workers another trial holds, and concurrent
trials are not OOM-killed: on the real KG an L=2 worker peaks at ≈6.7 GB, see
``benchmarks/meta_layers_cost.py``).

At the end (under ``<storage>/<run-name>/report/`` and, with ``--save``, beside it): the ranked
trial table (Markdown + JSON), ``best_config.yaml`` (a full config that ``--config`` of every driver
accepts unchanged), PNG plots (objective over trials; objective against each parameter); then the
best config is retrained and evaluated on **test** once (and, with ``--compare-defaults``, the
paper defaults beside it) and the table is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from ccrs import storage
from ccrs.config import dump_config, load_config
from ccrs.tuning.report import (
    TrialRow,
    format_table,
    plot_objective_over_trials,
    plot_objective_vs_params,
    ranked,
)
from ccrs.tuning.search_space import SearchSpace, load_space
from ray_jobs.meta_driver import absolute_uri


def _mlflow_callback(args: argparse.Namespace) -> list:
    """Ray's MLflow logger for the sweep (one MLflow run per trial) when ``--mlflow-tracking-uri`` is set;
    Ray Tune writes TensorBoard files per trial by default (its ``TBXLoggerCallback``)."""
    if not args.mlflow_tracking_uri:
        return []
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    return [MLflowLoggerCallback(tracking_uri=args.mlflow_tracking_uri, experiment_name=args.run_name,
                                 save_artifact=False)]


# -- one trial -------------------------------------------------------------------------------------
def _stage_args(setup: dict, run_name: str, storage_path: str, *extra: str) -> list[str]:
    return ["--data", setup["data"], "--fold", str(setup["fold"]), "--storage-path", storage_path,
            "--run-name", run_name, "--num-workers", str(setup["num_workers"]),
            "--cpus-per-worker", str(setup["cpus_per_worker"]), "-q", *extra]


def _result(storage_path: str, run_name: str) -> dict | None:
    loc = storage.resolve(storage_path).child(run_name, "eval", "result.json")
    return json.loads(storage.read_bytes(loc))["result"] if storage.exists(loc) else None


def run_stages(setup: dict, overrides: list[str], run_prefix: str, storage_path: str,
               callbacks_factory=None) -> dict[str, dict]:
    """Train (or reuse) the configured stages; ``{stage: result.json of the run}``."""
    from ray_jobs import train_generator, train_recommender

    cfg = load_config(setup["config"], overrides)
    out: dict[str, dict] = {}
    stage = setup["stage"]
    rec_ckpt = setup.get("rec_ckpt")
    cb = (lambda: callbacks_factory()) if callbacks_factory else (lambda: None)
    if stage in ("rec", "both"):
        name = f"{run_prefix}-rec"
        if _result(storage_path, name) is None:
            args = train_recommender.parse_args(_stage_args(setup, name, storage_path))
            train_recommender.build_trainer(args, cfg, callbacks=cb()).fit()
        out["rec"] = _result(storage_path, name)
        rec_ckpt = storage.resolve(storage_path).child(name, "eval", "best.pt").uri
    if stage in ("dial", "both"):
        name = f"{run_prefix}-dial"
        extra: dict[str, Any] = {}
        if stage == "both":
            extra = {"objective_base": _rec_score(out["rec"], cfg), "objective_weight": setup["both_weight"]}
        if _result(storage_path, name) is None:
            init = ["--init", setup["dial_init"]] if setup.get("dial_init") else []
            args = train_generator.parse_args(_stage_args(setup, name, storage_path, "--rec-ckpt", rec_ckpt, *init))
            train_generator.build_trainer(args, cfg, extra, callbacks=cb()).fit()
        out["dial"] = _result(storage_path, name)
    return out


def _rec_score(rec_result: dict, cfg) -> float:
    e = rec_result["best_epoch"]  # 0 = the starting point was kept (MetaConfig.eval_start)
    best = rec_result["history"][e - 1] if e else (rec_result.get("start") or rec_result["history"][-1])
    return best["valid"][cfg.rec_train.select_metric]


def trial_driver(params: dict, setup: dict) -> None:
    """One trial: the stages with this point's hyperparameters (Train inside Tune)."""
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    space = SearchSpace(setup["space_params"], setup["space_source"])
    trial_id = ray.tune.get_context().get_trial_id()
    overrides = [*setup["overrides"], *space.overrides(params)]
    run_stages(setup, overrides, trial_id, setup["trials_storage"], lambda: [TuneReportCallback()])


# -- the sweep ---------------------------------------------------------------------------------------
def _tune_space(space: SearchSpace) -> dict:
    from ray import tune

    out = {}
    for key, p in space.params.items():
        if p.kind == "loguniform":
            out[key] = tune.loguniform(p.low, p.high)
        elif p.kind == "uniform":
            out[key] = tune.uniform(p.low, p.high)
        elif p.kind == "randint":
            out[key] = tune.randint(int(p.low), int(p.high) + 1)  # Tune's upper bound is exclusive
        else:
            out[key] = tune.choice(list(p.values))
    return out


def _progress_callback():
    from ray.tune import Callback

    class TrialLines(Callback):
        """One line per finished trial: its parameters and objective."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            res = trial.last_result or {}
            params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.config.items())
            print(f"[tune] trial {trial.trial_id} done: objective {res.get('objective', float('nan')):.5f} "
                  f"({params}; {res.get('time_total_s', 0):.0f} s)", flush=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            print(f"[tune] trial {trial.trial_id} failed ({trial.num_failures} failures so far)", flush=True)

    return TrialLines()


def concurrency(requested: int, total_cpus: float, per_trial: float, total_memory_gb: float = 0.0,
                trial_memory_gb: float = 0.0) -> int:
    """Concurrent trials that fit the cluster at once, by CPUs and (when reserved) memory (≥ 1, or a clear error)."""
    fit = math.floor(total_cpus / per_trial + 1e-9)
    if fit < 1:
        raise SystemExit(f"error: one trial needs {per_trial} CPUs (driver + workers) but the cluster has {total_cpus}")
    if trial_memory_gb > 0:
        fit_mem = math.floor(total_memory_gb / trial_memory_gb + 1e-9)
        if fit_mem < 1:
            raise SystemExit(f"error: one trial reserves {trial_memory_gb} GB of memory (--trial-memory-gb) but the "
                             f"cluster offers {total_memory_gb:.1f} GB to tasks")
        fit = min(fit, fit_mem)
    return max(1, min(requested, fit))


def _rows(grid) -> list[TrialRow]:
    rows = []
    for r in grid:
        trial_id = r.metrics.get("trial_id") if r.metrics else None
        trial_id = trial_id or Path(r.path).name
        df = r.metrics_dataframe
        objective = float(df["objective"].max()) if df is not None and "objective" in df and len(df) else None
        # Tune names a trial's directory "<trainable>_<trial id>_<index>_<params>_<date>": the index is
        # the order trials were created in (stable across restores).
        index = re.search(rf"{re.escape(trial_id)}_(\d+)", Path(r.path).name)
        order = int(index.group(1)) if index else 0
        keep = {k: float(df[k].max()) for k in ("valid/all/ndcg@10", "valid/ppl") if df is not None and k in df}
        if "valid/ppl" in keep:
            keep["valid/ppl"] = float(df["valid/ppl"].min())
        rows.append(TrialRow(trial_id, dict(r.config), objective, float((r.metrics or {}).get("time_total_s", 0.0)),
                             "ERROR" if r.error else "TERMINATED", order, keep))
    return rows


def _trials_wall_seconds(grid) -> float:
    """First trial start to last trial end, from the trials' own results (the same after a resume)."""
    spans = [(m["timestamp"] - m.get("time_total_s", 0.0), m["timestamp"]) for m in (r.metrics for r in grid)
             if m and "timestamp" in m]
    return max(e for _, e in spans) - min(s for s, _ in spans) if spans else 0.0


def _test_summary(results: dict[str, dict]) -> dict[str, dict]:
    out = {}
    if "rec" in results:
        t = results["rec"]["test"]
        out["rec"] = {"ndcg@10": t["all"]["ndcg@10"], "hit@10": t["all"]["hit@10"], "hit@50": t["all"]["hit@50"],
                      "dedup_ndcg@10": t["dedup"]["ndcg@10"], "count": t["all"].get("count")}
    if "dial" in results:
        t = results["dial"]["test"]
        out["dial"] = {k: t.get(k) for k in ("ppl", "bleu1", "bleu2", "f1", "dist2", "dist3", "dist4", "responses")}
    return out


def _write(loc: storage.Location, name: str, data: bytes | str) -> None:
    storage.write_bytes(loc.child(name), data.encode() if isinstance(data, str) else data)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=["rec", "dial", "both"], required=True)
    p.add_argument("--data", required=True, help="prepared dataset URI")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--rec-ckpt", help="frozen recommender for --stage dial")
    p.add_argument("--dial-init", help="plain generator checkpoint every dial trial warm-starts from (parameters "
                   "whose name and shape match: the seq2seq; style bias fresh), as ray_jobs.gen_table does")
    p.add_argument("--space", type=Path, help="search-space YAML (default: ccrs/tuning/default_space.yaml)")
    p.add_argument("--config", type=Path, help="base config YAML the sweep starts from")
    p.add_argument("--storage-path", required=True)
    p.add_argument("--run-name", required=True, help="stable: rerunning resumes the sweep")
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--max-concurrent-trials", type=int, default=2)
    p.add_argument("--num-workers", type=int, default=1, help="Ray Train workers per trial")
    p.add_argument("--cpus-per-worker", type=float, default=0.5)
    p.add_argument("--trial-cpus", type=float, default=0.25, help="CPUs of a trial's driver")
    p.add_argument("--trial-memory-gb", type=float, default=0.0,
                   help="memory a trial reserves (Ray's logical `memory` resource, held by the trial's driver for its "
                        "whole process tree), so concurrent trials never exceed RAM; 0 = size by CPUs only. Measured "
                        "peaks per worker on the real KG: L=1 ≈0.9 GB, L=2 ≈6.7 GB, L=3 > 16 GB (benchmarks/meta_layers_cost.py)")
    p.add_argument("--max-failures", type=int, default=1, help="retries of a failed trial")
    p.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler")
    p.add_argument("--no-asha", action="store_true", help="no early stopping")
    p.add_argument("--both-weight", type=float, default=0.1, help="weight of the dial objective for --stage both")
    p.add_argument("--no-final", action="store_true", help="skip retraining the best config on test")
    p.add_argument("--compare-defaults", action="store_true", help="also train the base config and test it")
    p.add_argument("--save", help="also write <SAVE>.json, <SAVE>.md, <SAVE>_best_config.yaml, <SAVE>_plots/")
    p.add_argument("--mlflow-tracking-uri", help="also log every trial to MLflow (Ray's MLflowLoggerCallback; e.g. "
                                                  "sqlite:///mlflow.db); TensorBoard files are written either way")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="base config overrides for every trial")
    return p


def main(argv: list[str] | None = None) -> int:
    import ray
    from ray import tune
    from ray.tune import TuneConfig, Tuner
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    p = build_parser()
    args = p.parse_intermixed_args(argv)
    if args.stage == "dial" and not args.rec_ckpt:
        p.error("--stage dial needs --rec-ckpt (the frozen recommender)")
    space = load_space(args.space, args.stage)
    base_cfg = load_config(args.config, args.overrides)  # bad keys fail here, before Ray starts
    root = storage.resolve(absolute_uri(args.storage_path)).child(args.run_name)
    if root.is_s3:
        storage.ensure_bucket(root.uri)
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False)
    per_trial = args.trial_cpus + args.num_workers * args.cpus_per_worker
    total = ray.cluster_resources()
    conc = concurrency(args.max_concurrent_trials, total.get("CPU", 0.0), per_trial, total.get("memory", 0.0) / 1e9,
                       args.trial_memory_gb)
    if conc < args.max_concurrent_trials:
        print(f"[tune] {args.max_concurrent_trials} concurrent trials do not fit ({per_trial} CPUs, "
              f"{args.trial_memory_gb} GB each): running {conc}")
    setup = {"stage": args.stage, "data": absolute_uri(args.data), "fold": args.fold,
             "rec_ckpt": absolute_uri(args.rec_ckpt), "config": str(args.config) if args.config else None,
             "dial_init": absolute_uri(args.dial_init) if args.dial_init else None,
             "overrides": list(args.overrides), "num_workers": args.num_workers,
             "cpus_per_worker": args.cpus_per_worker, "trials_storage": root.child("trials").uri,
             "both_weight": args.both_weight, "space_params": space.params, "space_source": space.source}
    trial_resources = {"CPU": args.trial_cpus}
    if args.trial_memory_gb > 0:
        trial_resources["memory"] = args.trial_memory_gb * 1e9
    trainable = tune.with_resources(tune.with_parameters(trial_driver, setup=setup), trial_resources)
    max_t = (base_cfg.rec_meta.epochs if args.stage in ("rec", "both") else 0) + (
        base_cfg.dial_meta.epochs if args.stage in ("dial", "both") else 0)
    t0 = time.perf_counter()
    sweep_path = root.uri
    if Tuner.can_restore(sweep_path):
        print(f"[tune] resuming the sweep at {sweep_path}", flush=True)
        tuner = Tuner.restore(sweep_path, trainable=trainable, resume_errored=True)
    else:
        from optuna.samplers import TPESampler

        tuner = Tuner(
            trainable,
            param_space=_tune_space(space),
            tune_config=TuneConfig(
                metric="objective", mode="max", num_samples=args.trials, max_concurrent_trials=conc,
                search_alg=OptunaSearch(sampler=TPESampler(seed=args.seed)),
                scheduler=None if args.no_asha else ASHAScheduler(time_attr="training_iteration", max_t=max(max_t, 1),
                                                                  grace_period=1, reduction_factor=2),
            ),
            run_config=tune.RunConfig(name=args.run_name, storage_path=str(storage.resolve(
                absolute_uri(args.storage_path)).uri), failure_config=tune.FailureConfig(max_failures=args.max_failures),
                callbacks=[_progress_callback(), *_mlflow_callback(args)], verbose=0),
        )
    grid = tuner.fit()
    rows = _rows(grid)
    best = ranked(rows)[0]
    best_cfg = load_config(args.config, [*args.overrides, *space.overrides(best.params)])
    report: dict[str, Any] = {
        "stage": args.stage, "space": space.source, "trials": [r.__dict__ for r in ranked(rows)],
        "best_trial": best.trial_id, "best_params": best.params, "best_objective": best.objective,
        "command": "python -m ray_jobs.tune " + " ".join(sys.argv[1:] if argv is None else argv),
        "sweep_wall_seconds": _trials_wall_seconds(grid), "this_invocation_seconds": time.perf_counter() - t0,
        "concurrent_trials": conc,
        "resources_per_trial": {"driver_cpus": args.trial_cpus, "workers": args.num_workers,
                                "cpus_per_worker": args.cpus_per_worker, "memory_gb": args.trial_memory_gb},
    }
    out = root.child("report")
    _write(out, "best_config.yaml", dump_config(best_cfg))
    _write(out, "objective_over_trials.png", plot_objective_over_trials(rows))
    plots = {f"objective_vs_{k}.png": v for k, v in plot_objective_vs_params(rows, space).items()}
    for name, png in plots.items():
        _write(out, name, png)
    if not args.no_final:
        import tempfile

        best_yaml = Path(tempfile.mkdtemp(prefix="ccrs-tune-")) / "best_config.yaml"
        best_yaml.write_text(dump_config(best_cfg))  # exactly the file the report holds
        finals = {"best": run_stages({**setup, "config": str(best_yaml)}, [], "best", root.child("final").uri)}
        if args.compare_defaults:
            finals["defaults"] = run_stages(setup, list(args.overrides), "defaults", root.child("final").uri)
        report["test"] = {name: _test_summary(res) for name, res in finals.items()}
    md = _markdown(report, rows, space)
    _write(out, "trials.md", md)
    _write(out, "trials.json", json.dumps(report, indent=2, default=str))
    print(md)
    if args.save:
        save = Path(args.save)
        save.parent.mkdir(parents=True, exist_ok=True)
        save.with_suffix(".md").write_text(md)
        save.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        Path(f"{save}_best_config.yaml").write_text(dump_config(best_cfg))
        plot_dir = Path(f"{save}_plots")
        plot_dir.mkdir(exist_ok=True)
        (plot_dir / "objective_over_trials.png").write_bytes(plot_objective_over_trials(rows))
        for name, png in plots.items():
            (plot_dir / name).write_bytes(png)
    print(f"[tune] report, best_config.yaml and plots: {out.uri}")
    return 0


def _resources_line(report: dict) -> str:
    r = report["resources_per_trial"]
    mem = f", {r['memory_gb']} GB memory reserved" if r["memory_gb"] else " (memory not reserved)"
    return (f"Resources per trial: {r['driver_cpus']} CPU driver + {r['workers']} Train worker(s) × "
            f"{r['cpus_per_worker']} CPU{mem}; {report['concurrent_trials']} trial(s) at once.")


def _markdown(report: dict, rows: list[TrialRow], space: SearchSpace) -> str:
    lines = [f"# Sweep ({report['stage']} stage): {len(rows)} trials", "", "Regenerate / resume with:", "",
             f"    {report['command']}", "", f"Objective: `objective` on the valid users (higher is better). "
             f"Best trial {report['best_trial']}: {report['best_params']} → {report['best_objective']:.5f}.", "",
             _resources_line(report) + f" Trials ran {report['sweep_wall_seconds'] / 60:.1f} min (wall clock).", "",
             format_table(rows, space)]
    for name, stages in report.get("test", {}).items():
        lines += [f"## Test, {name} config (trained once more, evaluated on test once)", ""]
        for stage, m in stages.items():
            lines.append(f"- {stage}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                    for k, v in m.items()))
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
