"""Where the limit of history lies, on VALID users: what reading the history could add to trained kbrd.

    python studies/history_headroom.py --prepared runs/real/prepared --runs runs/real/rec_hist \\
        --folds 0,1 --save results/history_headroom

For each fold's trained kbrd (``<runs>/user/kbrd/fold<f>/best.pt``, the plain Table 1 row) and its
valid users' query samples:

* ``oracle``: every sample whose label is a movie of the user's history (and not of the current
  context) ranked first: the ceiling of *any* history reader on top of kbrd;
* ``calibrated boost``: each history movie's score raised by w·log(lift), where lift is how much more
  often a movie is the label when it is in the history than when it is not, estimated on the fold's
  *training* samples per (popularity bucket, number of earlier conversations naming it); w chosen on
  these valid users (the best w is reported, so this row is optimistic by construction);
* the share of samples whose label is in the history, and kbrd's HR@10 on them.

Evaluation only (no training); no test sample is read.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path

import torch

from ccrs.data.dataset import PreparedDataset
from ccrs.data.history import MAX_COUNT
from ccrs.data.rec_examples import KnowledgeGraph, rec_parts
from ccrs.eval.rec_metrics import metrics_from_ranks
from ccrs.experiments.report_files import command_line, save_report
from ccrs.models.factory import load_recommender

POP_EDGES = (50, 200, 1000)
WEIGHTS = (0.25, 0.5, 1.0, 1.5, 2.0)


def _bucket(pop_rank: int, count: int) -> tuple[int, int]:
    return sum(pop_rank >= e for e in POP_EDGES), min(count, MAX_COUNT)


def history_items(part, i: int, e2i) -> dict[int, int]:
    """Item index → count of the sample's history movies."""
    h, _age, _flag, count = part.history_of(i)
    items = e2i[h]
    return {int(it): int(c) for it, c in zip(items.tolist(), count.tolist(), strict=True) if it >= 0}


def lifts(train, e2i, pop_rank) -> dict[tuple[int, int], float]:
    """log P(label = m | m in history, bucket) / P(label = m | m not in history, its pop bucket)."""
    hits, seen = Counter(), Counter()
    base_hits, base_seen = Counter(), Counter()
    n_items = len(pop_rank)
    per_pop = Counter(sum(int(pop_rank[m]) >= e for e in POP_EDGES) for m in range(n_items))
    for i in range(len(train)):
        hist = history_items(train, i, e2i)
        if not hist or bool(train.label_in_context[i]):
            continue
        label = int(train.labels[i])
        in_hist = Counter()
        for m, c in hist.items():
            b = _bucket(int(pop_rank[m]), c)
            seen[b] += 1
            hits[b] += int(m == label)
            in_hist[b[0]] += 1
        for p, n in per_pop.items():
            base_seen[p] += n - in_hist[p]
        if label not in hist:
            base_hits[sum(int(pop_rank[label]) >= e for e in POP_EDGES)] += 1
    out = {}
    for b in seen:
        p_in = (hits[b] + 0.5) / (seen[b] + 1)
        p_out = (base_hits[b[0]] + 0.5) / (base_seen[b[0]] + 1)
        out[b] = math.log(p_in / p_out)
    return out


def ranks_of(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (scores > scores.gather(1, labels[:, None])).sum(1)


def run_fold(ds, kg, runs: str, fold: int) -> dict:
    parts, _ = rec_parts(ds, "user", fold, 64, kg)
    train, valid = parts["train"], parts["valid"]
    e2i = kg.entity_to_item()
    pop = torch.zeros(kg.num_items).index_add_(0, train.labels, torch.ones(len(train)))
    pop_rank = torch.argsort(torch.argsort(-pop))
    lift = lifts(train, e2i, pop_rank)
    model, _, _ = load_recommender(str(Path(runs, "user", "kbrd", f"fold{fold}", "best.pt")), kg)
    with torch.no_grad():
        scores = torch.cat([model(b) for b in valid.batches(256)])
    base = ranks_of(scores, valid.labels)
    hists = [history_items(valid, i, e2i) for i in range(len(valid))]
    in_hist = torch.tensor([int(valid.labels[i]) in h and not bool(valid.label_in_context[i])
                            for i, h in enumerate(hists)])
    oracle = torch.where(in_hist, torch.zeros_like(base), base)
    boost = torch.zeros_like(scores)
    for i, h in enumerate(hists):
        for m, c in h.items():
            boost[i, m] = lift.get(_bucket(int(pop_rank[m]), c), 0.0)
    by_w = {w: metrics_from_ranks(ranks_of(scores + w * boost, valid.labels)) for w in WEIGHTS}
    best_w = max(by_w, key=lambda w: by_w[w]["ndcg@10"])
    return {"fold": fold, "samples": len(valid), "label_in_history_not_context": float(in_hist.float().mean()),
            "kbrd_hit10_on_those": float((base[in_hist] < 10).float().mean()) if in_hist.any() else 0.0,
            "kbrd": metrics_from_ranks(base), "oracle": metrics_from_ranks(oracle),
            "boost_by_weight": {str(w): m for w, m in by_w.items()}, "best_weight": best_w,
            "lifts": {f"pop{p}_count{c}": round(v, 3) for (p, c), v in sorted(lift.items())},
            "ranks": {"kbrd": base.tolist(), "oracle": oracle.tolist(),
                      "boost": ranks_of(scores + best_w * boost, valid.labels).tolist()}}


def pooled(folds: list[dict], row: str) -> dict:
    ranks = torch.tensor([r for f in folds for r in f["ranks"][row]])
    return metrics_from_ranks(ranks)


def format_markdown(r: dict) -> str:
    rows = {"kbrd (plain Table 1 row)": r["pooled"]["kbrd"], "kbrd + calibrated history boost (best w on valid)":
            r["pooled"]["boost"], "oracle: every history label ranked first": r["pooled"]["oracle"]}
    k = r["pooled"]["kbrd"]
    lines = ["# What reading the history could add to kbrd (valid users)", "", f"`{r['command']}`", "",
             f"Folds {r['folds']}, {sum(f['samples'] for f in r['per_fold'])} valid samples. Label in the user's "
             f"history and not in the context: {r['share_label_in_history']:.1%}; kbrd puts "
             f"{r['kbrd_hit10_on_those']:.0%} of those in its top 10.", "",
             "| ranking | NDCG@10 | HR@10 | HR@50 | NDCG@10 vs kbrd | HR@10 vs kbrd |", "|---|---:|---:|---:|---:|---:|"]
    for name, m in rows.items():
        lines.append(f"| {name} | {m['ndcg@10']:.4f} | {m['hit@10']:.4f} | {m['hit@50']:.4f} | "
                     f"{m['ndcg@10'] / k['ndcg@10'] - 1:+.1%} | {m['hit@10'] / k['hit@10'] - 1:+.1%} |")
    lines += ["", "Best boost weight per fold: " + ", ".join(f"fold {f['fold']}: {f['best_weight']}" for f in r["per_fold"]),
              "", "log-lift of a history movie being the label (fold "
              f"{r['per_fold'][0]['fold']} training samples, popularity bucket 0 = top 50 … 3 = rank ≥ 1000; count = "
              "earlier conversations naming it): "
              + ", ".join(f"{k}: {v:+.2f}" for k, v in r["per_fold"][0]["lifts"].items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prepared", required=True)
    ap.add_argument("--runs", required=True, help="the --runs of `ccrs eval rec` holding user/kbrd/fold<f>")
    ap.add_argument("--folds", default="0,1")
    ap.add_argument("--save", required=True)
    args = ap.parse_args(argv)
    ds = PreparedDataset.open(args.prepared)
    kg = KnowledgeGraph.from_dataset(ds)
    folds = [run_fold(ds, kg, args.runs, int(f)) for f in args.folds.split(",")]
    n = sum(f["samples"] for f in folds)
    share = sum(f["label_in_history_not_context"] * f["samples"] for f in folds) / n
    hit = sum(f["kbrd_hit10_on_those"] * f["label_in_history_not_context"] * f["samples"] for f in folds) / (share * n)
    report = {"command": command_line("history_headroom.py", argv), "folds": [f["fold"] for f in folds],
              "share_label_in_history": share, "kbrd_hit10_on_those": hit,
              "pooled": {row: pooled(folds, row) for row in ("kbrd", "boost", "oracle")}, "per_fold": folds}
    save_report(args.save, report, format_markdown)
    print(format_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
