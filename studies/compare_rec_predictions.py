"""Metrics and paired tests (per sample and per user) of saved recommender predictions on the same samples.

    .venv/bin/python studies/compare_rec_predictions.py \\
        kbrd=runs/real/plain/kbrd/test_predictions.parquet \\
        ccrs_meta=runs/real/ray/rec-meta-softmax-e2-fold0/eval/test_predictions.parquet \\
        --compare ccrs_meta:kbrd --save results/customization_fold0

Each argument is ``NAME=PARQUET`` (the ``*_predictions.parquet`` every trainer writes), or
``NAME=P1,P2,...`` to pool several (e.g. the folds of a user split). Rows are compared on all samples
and on the dedup samples (label not mentioned before).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

import pyarrow as pa

from ccrs import storage
from ccrs.eval.rec_evaluator import RecPredictions
from ccrs.eval.rec_metrics import metrics_from_ranks
from ccrs.experiments.planted import compare


def _subset(p: RecPredictions, keep) -> RecPredictions:
    idx = keep.nonzero().flatten()
    return RecPredictions(p.sample_ids[idx], [p.conversation_ids[i] for i in idx.tolist()],
                          [p.user_ids[i] for i in idx.tolist()], p.labels[idx], p.label_entities[idx], p.ranks[idx],
                          p.label_in_context[idx], p.top[idx])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rows", nargs="+", metavar="NAME=PARQUET")
    ap.add_argument("--compare", default="", help="A:B[,C:D]")
    ap.add_argument("--save")
    args = ap.parse_args(argv)
    preds = {}
    for item in args.rows:
        name, _, paths = item.partition("=")
        tables = [storage.read_parquet(storage.resolve(p)) for p in paths.split(",")]
        preds[name] = RecPredictions.from_table(pa.concat_tables(tables))
    pairs = [tuple(p.split(":")) for p in args.compare.split(",") if p]
    report = {"command": "python studies/compare_rec_predictions.py " + shlex.join(sys.argv[1:] if argv is None
                                                                                      else argv),
              "inputs": dict(a.partition("=")[::2] for a in args.rows), "parts": {}}
    for part in ("all", "dedup"):
        rows = preds if part == "all" else {n: _subset(p, ~p.label_in_context) for n, p in preds.items()}
        report["parts"][part] = {"metrics": {n: metrics_from_ranks(p.ranks) for n, p in rows.items()},
                                 "users": len(set(next(iter(rows.values())).user_ids)),
                                 "significance": compare(rows, pairs, n_resamples=10_000)}
    lines = ["# Saved recommender predictions compared", "", "```", report["command"], "```", ""]
    for part, r in report["parts"].items():
        lines += [f"## {part} samples ({r['users']} users)", "", "| row | n | NDCG@10 | HR@10 | MRR@10 | HR@50 |",
                  "|---|---:|---:|---:|---:|---:|"]
        for n, m in r["metrics"].items():
            lines.append(f"| {n} | {m['count']} | {m['ndcg@10']:.4f} | {m['hit@10']:.4f} | {m['mrr@10']:.4f} | "
                         f"{m['hit@50']:.4f} |")
        lines += ["", "| A vs B | metric | diff | p (users) | user CI95 | user wins/losses | p (samples) |",
                  "|---|---|---:|---:|---|---|---:|"]
        for t in r["significance"]:
            lines.append(f"| {t['a']} vs {t['b']} | {t['metric']} | {t['diff']:+.4f} | {t['p_user_permutation']:.4f} | "
                         f"({t['user_ci95_low']:+.4f}, {t['user_ci95_high']:+.4f}) | {t['user_wins']}/{t['user_losses']} | "
                         f"{t['p_permutation']:.4f} |")
        lines.append("")
    md = "\n".join(lines)
    print(md)
    if args.save:
        storage.write_bytes(storage.resolve(args.save + ".json"), json.dumps(report, indent=2).encode())
        storage.write_bytes(storage.resolve(args.save + ".md"), md.encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
