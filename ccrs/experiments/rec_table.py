"""The paper's Table 1 for plain (non-meta) training: every model on both splits, with significance.

    ccrs eval rec --prepared runs/demo/prepared --runs runs/rec_plain --save results/rec_plain

* ``user`` split: one run per fold (all 10 by default); test metrics are micro-averaged over the
  **pooled** test samples of all folds (each user is a test user exactly once), and the spread
  across folds (mean ± std of the per-fold values, min, max) is reported beside them.
* ``standard`` split: one run per seed (0, 1, 2 by default); mean ± std over seeds.
* Paired significance (:mod:`ccrs.eval.significance`) of each ``--compare A:B`` pair on the pooled
  per-sample values (user split) and on the per-sample values averaged over seeds (standard split).

Runs live in ``<runs>/<split>/<model>/fold<f>|seed<s>/`` and are skipped when finished, so an
interrupted table resumes where it stopped; ``--jobs`` runs several single-process trainings at once.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ccrs import storage
from ccrs.config import CCRSConfig, config_from_dict, load_config, model_overrides
from ccrs.eval.rec_evaluator import RecPredictions
from ccrs.eval.rec_metrics import metrics_from_ranks, per_sample_metrics
from ccrs.eval.significance import paired_tests

COLUMNS = ("hit@1", "hit@10", "hit@50", "mrr@10", "mrr@50", "ndcg@10", "ndcg@50")
HEADERS = ("HR@1", "HR@10", "HR@50", "MRR@10", "MRR@50", "NDCG@10", "NDCG@50")
TEST_METRICS = ("ndcg@10", "hit@10", "hit@50")


@dataclass(frozen=True)
class RunSpec:
    model: str
    split: str
    fold: int | None
    seed: int

    @property
    def key(self) -> str:
        return f"fold{self.fold}" if self.split == "user" else f"seed{self.seed}"


def run_specs(models: list[str], splits: list[str], folds: list[int], seeds: list[int], base_seed: int) -> list[RunSpec]:
    specs = []
    for split in splits:
        for model in models:
            if split == "user":
                specs += [RunSpec(model, split, f, base_seed) for f in folds]
            else:
                specs += [RunSpec(model, split, None, s) for s in seeds]
    return specs


def _run_one(spec: RunSpec, cfg_dict: dict, prepared: str, run_dir: str, threads: int, progress: bool) -> dict:
    from ccrs.train.rec_trainer import train_recommender

    torch.set_num_threads(threads)
    variant = load_config(None, model_overrides(spec.model)).recommender.variant  # a preset names its variant
    cfg = config_from_dict({**cfg_dict, "seed": spec.seed, "recommender": {**cfg_dict["recommender"], "variant": variant}})
    return train_recommender(cfg, prepared, spec.split, spec.fold, run_dir, progress=progress).to_dict()


def run_grid(
    cfg: CCRSConfig | dict[str, CCRSConfig], prepared: str, runs: str, specs: list[RunSpec], jobs: int = 1,
    progress: bool = True,
) -> dict[RunSpec, dict]:
    """Train/evaluate every spec (finished runs are read back, not redone); one line per finished run.

    ``cfg`` is one config for every model or ``{model: config}`` (per-model hyperparameters).
    """
    root = storage.resolve(runs)
    per_model = {s.model: (cfg[s.model] if isinstance(cfg, dict) else cfg).to_dict() for s in specs}
    threads = max(1, (os.cpu_count() or 1) // max(jobs, 1))
    results: dict[RunSpec, dict] = {}
    t0 = time.perf_counter()

    def report(spec: RunSpec, res: dict) -> None:
        results[spec] = res
        t = res["test"]["all"]
        print(f"[{len(results)}/{len(specs)}] {spec.split:8s} {spec.model:15s} {spec.key:6s} "
              f"test ndcg@10 {t['ndcg@10']:.4f} hit@10 {t['hit@10']:.4f} hit@50 {t['hit@50']:.4f} "
              f"(best epoch {res['best_epoch']}, {res['seconds']:.0f} s; {time.perf_counter() - t0:.0f} s total)",
              file=sys.stderr, flush=True)

    dirs = {s: root.child(s.split, s.model, s.key).uri for s in specs}
    if jobs <= 1:
        for spec in specs:
            report(spec, _run_one(spec, per_model[spec.model], prepared, dirs[spec], threads, progress))
        return results
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_run_one, s, per_model[s.model], prepared, dirs[s], threads, False): s for s in specs}
        for fut in as_completed(futures):
            report(futures[fut], fut.result())
    return {s: results[s] for s in specs}


def load_predictions(run_dir: str, part: str = "test") -> RecPredictions:
    return RecPredictions.from_table(storage.read_parquet(storage.resolve(run_dir).child(f"{part}_predictions.parquet")))


def _spread(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def aggregate(
    results: dict[RunSpec, dict], compare: list[tuple[str, str]], n_resamples: int = 10_000, part: str = "test"
) -> dict:
    """Pooled / averaged metrics per (split, variant, model) and paired tests (module docstring).

    ``part="valid"`` aggregates the valid predictions instead (for choosing hyperparameters).
    """
    by_split_model: dict[tuple[str, str], list[RunSpec]] = defaultdict(list)
    for spec in results:
        by_split_model[(spec.split, spec.model)].append(spec)
    table: dict[str, dict[str, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
    per_sample: dict[tuple[str, str, str], dict[str, np.ndarray]] = {}
    for (split, model), specs in by_split_model.items():  # in the order the runs were listed
        preds = [(s, load_predictions(results[s]["out"], part)) for s in specs]
        for variant in ("all", "dedup"):
            sel = [(s, p.ranks[~p.label_in_context] if variant == "dedup" else p.ranks,
                    p.sample_ids[~p.label_in_context] if variant == "dedup" else p.sample_ids) for s, p in preds]
            users = [np.asarray(p.user_ids)[(~p.label_in_context).numpy()] if variant == "dedup"
                     else np.asarray(p.user_ids) for _, p in preds]
            per_run = [metrics_from_ranks(r) for _, r, _ in sel]
            spread = {m: _spread([r[m] for r in per_run]) for m in (*COLUMNS, "count")}
            entry: dict[str, Any] = {"runs": [s.key for s in specs], "spread": spread,
                                     "epochs": [results[s]["best_epoch"] for s in specs]}
            if split == "user":  # pooled over the folds' disjoint test users
                pooled = torch.cat([r for _, r, _ in sel])
                entry["metrics"] = metrics_from_ranks(pooled)
                keys = np.concatenate([[f"{s.key}:{i}" for i in ids.tolist()] for s, _, ids in sel])
                values = {m: torch.cat([per_sample_metrics(r)[m] for _, r, _ in sel]).numpy() for m in TEST_METRICS}
                values["users"] = np.concatenate(users)
                order = np.argsort(keys, kind="stable")  # rows may list samples in any order (meta: by user)
                keys, values = keys[order], {m: v[order] for m, v in values.items()}
            else:  # same samples for every seed: mean ± std over seeds; per-sample values averaged
                entry["metrics"] = {m: spread[m]["mean"] for m in COLUMNS} | {"count": per_run[0]["count"]}
                order = [torch.argsort(ids) for _, _, ids in sel]
                keys = np.array([str(i) for i in sel[0][2][order[0]].tolist()])
                values = {m: np.mean([per_sample_metrics(r[o])[m].numpy() for (_, r, _), o in zip(sel, order, strict=True)], 0)
                          for m in TEST_METRICS}
                values["users"] = users[0][order[0].numpy()]
            table[split][variant][model] = entry
            per_sample[(split, variant, model)] = {"keys": keys, **values}
    tests = []
    for a, b in compare:
        for split in table:
            for variant in ("all", "dedup"):
                if (split, variant, a) not in per_sample or (split, variant, b) not in per_sample:
                    continue
                pa_, pb = per_sample[(split, variant, a)], per_sample[(split, variant, b)]
                if not np.array_equal(pa_["keys"], pb["keys"]):
                    raise ValueError(f"{a} and {b} were evaluated on different {split} samples; cannot pair them")
                for m in TEST_METRICS:
                    tests.append({"split": split, "variant": variant, "a": a, "b": b, "metric": m,
                                  **paired_tests(pa_[m], pb[m], pa_["users"], n_resamples=n_resamples)})
    return {"part": part, "table": json.loads(json.dumps(table)), "significance": tests}


def read_report(save: str | Path) -> dict:
    """``<save>.json`` as written by :func:`write_report`; an empty report when there is none yet."""
    path = storage.resolve(str(save) + ".json")
    if not storage.exists(path):
        return {"table": {}, "significance": []}
    return json.loads(storage.read_bytes(path))


def merge_reports(base: dict, new: dict) -> dict:
    """``new`` with the splits of ``base`` that ``new`` did not compute (table rows, tests, runs, and the
    command of each split: ``commands``), so one file can hold tables regenerated by different commands.
    A split ``new`` computed replaces the same split of ``base`` whole."""
    kept = [s for s in base.get("table", {}) if s not in new["table"]]
    out = dict(new)
    out["table"] = {**{s: base["table"][s] for s in kept}, **new["table"]}
    out["significance"] = [t for t in base.get("significance", []) if t["split"] in kept] + new["significance"]
    commands = dict(base.get("commands") or {s: base["command"] for s in base.get("table", {}) if base.get("command")})
    out["commands"] = {**{s: commands[s] for s in kept if s in commands}, **{s: new["command"] for s in new["table"]}}
    out["runs"] = {k: v for k, v in (base.get("runs") or {}).items() if k.split("/")[0] in kept} | (new.get("runs") or {})
    by_split = base.get("model_overrides_by_split") or {s: base.get("model_overrides", {}) for s in base.get("table", {})}
    out["model_overrides_by_split"] = {**{s: by_split.get(s, {}) for s in kept},
                                       **{s: new.get("model_overrides", {}) for s in new["table"]}}
    return out


def format_markdown(report: dict) -> str:
    lines = [f"# {report.get('title', 'Recommendation results')}", ""]
    commands = report.get("commands") or {}
    if len(set(commands.values())) > 1:
        lines += ["Regenerate with (one command per split):", ""]
        for split, command in commands.items():
            lines += [f"{split} split:", "", "```", command, "```", ""]
    elif report.get("command"):
        lines += ["Regenerate with:", "", "```", report["command"], "```", ""]
    for split, variants in report["table"].items():
        for variant, models in variants.items():
            what = f"pooled {report.get('part', 'test')} samples of all folds; ± = std of the per-fold values" \
                if split == "user" else \
                "mean ± std over seeds"
            lines += [f"## {split} split, {'all samples' if variant == 'all' else 'dedup (label not mentioned before)'}",
                      "", f"({what}; n = samples per evaluation)", "",
                      "| model | n | " + " | ".join(HEADERS) + " |", "|---|---:|" + "---:|" * len(HEADERS)]
            for model, e in models.items():
                cells = [f"{e['metrics'][c]:.4f} ± {e['spread'][c]['std']:.4f}" for c in COLUMNS]
                lines.append(f"| {model} | {e['metrics']['count']} | " + " | ".join(cells) + " |")
            lines.append("")
    if report["significance"]:
        lines += ["## Paired significance", "",
                  "User-level (whole users sign-flipped / resampled: the headline test) beside per-sample.", "",
                  "| split | samples | A vs B | metric | A | B | diff | 95% CI (users) | p (users) | user wins/losses "
                  "| 95% CI (samples) | p (samples, perm.) | sample wins/losses |",
                  "|---|---|---|---|---:|---:|---:|---|---:|---|---|---:|---|"]
        for t in report["significance"]:
            lines.append(f"| {t['split']} | {t['variant']} (n={t['n']}, {t.get('users', '?')} users) | {t['a']} vs {t['b']} | "
                         f"{t['metric']} | {t['mean_a']:.4f} | {t['mean_b']:.4f} | {t['diff']:+.4f} | "
                         f"({t.get('user_ci95_low', float('nan')):+.4f}, {t.get('user_ci95_high', float('nan')):+.4f}) | "
                         f"{t.get('p_user_permutation', float('nan')):.4f} | {t.get('user_wins', '?')}/{t.get('user_losses', '?')} | "
                         f"({t['ci95_low']:+.4f}, {t['ci95_high']:+.4f}) | {t['p_permutation']:.4f} | {t['wins']}/{t['losses']} |")
        lines.append("")
    if report.get("adaptation"):
        lines += ["## Does adaptation move the ranking? (adapted vs β = 0, same checkpoint, pooled test samples)", "",
                  "| model | mean abs. label rank shift | median | samples whose rank changed | samples whose top-10 changed "
                  "| users whose top-10 changed |", "|---|---:|---:|---:|---:|---:|"]
        for model, a in report["adaptation"].items():
            lines.append(f"| {model} | {a['mean_abs_rank_shift']:.2f} | {a['median_abs_rank_shift']:.1f} | "
                         f"{a['share_samples_rank_changed']:.1%} | {a['share_samples_top10_changed']:.1%} | "
                         f"{a['share_users_top10_changed']:.1%} |")
        lines.append("")
    return "\n".join(lines)


def write_report(report: dict, save: str | Path) -> None:
    """``<save>.json`` and ``<save>.md`` (atomic writes)."""
    save = str(save)
    storage.write_bytes(storage.resolve(save + ".json"), json.dumps(report, indent=2).encode())
    storage.write_bytes(storage.resolve(save + ".md"), format_markdown(report).encode())
