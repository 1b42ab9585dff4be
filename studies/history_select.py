"""Which history read the ``ccrs_history`` preset uses, chosen on VALID users only (issue 30).

    python studies/history_select.py --prepared runs/real/prepared --root runs/real/select \\
        --folds 0,1 --jobs 2 --save results/history_select

Trains (or reads back, when finished) the paper's ccrs, kbrd and each candidate way for CCRS to read
the user's history (ccrs/nn/history_encoder.py) on the ``user`` split's folds, and compares them on
the **valid** users' query samples pooled over the folds: NDCG@10 (the selection metric), HR@10,
HR@50, with user-level paired tests against kbrd and against the paper's ccrs. Test samples are never
read. Every candidate starts from the paper's Table 1 settings of ccrs (lr 0.01, relation_softmax).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ccrs.config import load_config, model_overrides
from ccrs.experiments.rec_table import aggregate, run_grid, run_specs
from ccrs.experiments.report_files import command_line, save_report

PAPER = ["rec_train.lr=0.01", "recommender.gamma_form=relation_softmax"]
#: candidate → (table model, overrides)
CANDIDATES = {
    "kbrd": ("kbrd", ["rec_train.lr=0.001"]),
    "ccrs (paper)": ("ccrs", PAPER),
    "all three reads (H2+H3+H4)": ("ccrs", [*PAPER, "recommender.history_user=true", "recommender.history_intent=true",
                                            "recommender.history_items=true"]),
    "user of Eq. 2 + intent read (H2+H3)": ("ccrs", [*PAPER, "recommender.history_user=true",
                                                     "recommender.history_intent=true"]),
    "copy term only (H4)": ("ccrs", [*PAPER, "recommender.history_items=true"]),
}
METRICS = ("ndcg@10", "hit@10", "hit@50")


def _dir(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prepared", required=True)
    ap.add_argument("--root", required=True, help="one runs folder per candidate below it (finished runs are reused)")
    ap.add_argument("--folds", default="0,1")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--save", required=True)
    args = ap.parse_args(argv)
    folds = [int(f) for f in args.folds.split(",")]
    results = {}
    for name, (model, overrides) in CANDIDATES.items():
        cfg = load_config(None, [*model_overrides(model), *overrides])
        specs = run_specs([model], ["user"], folds, [], cfg.seed)
        runs = run_grid({model: cfg}, args.prepared, str(Path(args.root, _dir(name))), specs, jobs=args.jobs,
                        progress=False)
        results[name] = {dataclasses.replace(spec, model=name): r for spec, r in runs.items()}
    merged = {k: v for r in results.values() for k, v in r.items()}
    compare = [(n, b) for n in CANDIDATES for b in ("kbrd", "ccrs (paper)") if n not in ("kbrd", "ccrs (paper)")]
    report = aggregate(merged, compare, n_resamples=args.resamples, part="valid")
    pooled = report["table"]["user"]
    best = max((n for n in CANDIDATES if n not in ("kbrd", "ccrs (paper)")),
               key=lambda n: pooled["all"][n]["metrics"]["ndcg@10"])
    body = {"command": command_line("history_select.py", argv), "folds": folds, "part": "valid",
            "candidates": {n: o for n, (_, o) in CANDIDATES.items()}, "chosen": best,
            "table": {v: {n: {m: pooled[v][n]["metrics"][m] for m in (*METRICS, "count")} for n in CANDIDATES}
                      for v in ("all", "dedup")},
            "significance": report["significance"]}
    save_report(args.save, body, format_markdown)
    print(format_markdown(body))
    return 0


def format_markdown(r: dict) -> str:
    lines = ["# How CCRS reads the history: chosen on valid users", "", f"`{r['command']}`", "",
             f"Valid users' query samples of folds {r['folds']} pooled; no test sample read. Chosen (best valid "
             f"NDCG@10): **{r['chosen']}** → the `ccrs_history` preset.", ""]
    for variant in ("all", "dedup"):
        k = r["table"][variant]["kbrd"]["ndcg@10"]
        lines += [f"## valid, {variant}", "", "| candidate | n | NDCG@10 | HR@10 | HR@50 | NDCG@10 vs kbrd |",
                  "|---|---:|---:|---:|---:|---:|"]
        for n, m in r["table"][variant].items():
            lines.append(f"| {n} | {m['count']} | {m['ndcg@10']:.4f} | {m['hit@10']:.4f} | {m['hit@50']:.4f} | "
                         f"{m['ndcg@10'] / k - 1:+.1%} |")
        lines.append("")
    lines += ["## User-level paired tests (valid, NDCG@10)", "", "| samples | A vs B | diff | 95% CI (users) | p (users) |",
              "|---|---|---:|---|---:|"]
    for s in r["significance"]:
        if s["metric"] == "ndcg@10":
            lines.append(f"| {s['variant']} | {s['a']} vs {s['b']} | {s['diff']:+.4f} | "
                         f"({s['user_ci95_low']:+.4f}, {s['user_ci95_high']:+.4f}) | {s['p_user_permutation']:.4f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
