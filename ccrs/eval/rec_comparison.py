"""Several recommenders' predictions on the same samples, side by side, each against one reference.

    rows = compare_on_same_samples({"popularity": p0, "kbrd": p1, "ccrs (meta)": p2}, reference="kbrd")

Rows are aligned by ``sample_id``; predictions on different sample sets are refused (a comparison of
two different test sets says nothing). Against the reference: the NDCG@10 difference and its
user-level p (sign flips of whole users, :func:`ccrs.eval.significance.user_paired_test`): samples of
one user are not independent.
"""

from __future__ import annotations

import torch

from ccrs.eval.rec_evaluator import RecPredictions
from ccrs.eval.rec_metrics import metrics_from_ranks, per_sample_metrics
from ccrs.eval.significance import user_paired_test

METRICS = ("ndcg@10", "hit@10", "hit@50")


def compare_on_same_samples(predictions: dict[str, RecPredictions], reference: str,
                            n_resamples: int = 10_000) -> list[dict]:
    """One row per entry of ``predictions`` (in order): metrics, and Δ NDCG@10 with its user-level p
    against ``reference`` (None on the reference's own row)."""
    if reference not in predictions:
        raise ValueError(f"reference {reference!r} is not among {list(predictions)}")
    ordered = {}
    for name, pred in predictions.items():
        order = torch.argsort(pred.sample_ids)
        ordered[name] = (pred.sample_ids[order].tolist(), pred.ranks[order], [pred.user_ids[i] for i in order.tolist()])
    ids_ref, ranks_ref, users = ordered[reference]
    ndcg_ref = per_sample_metrics(ranks_ref)["ndcg@10"].numpy()
    rows = []
    for name, (ids, ranks, _) in ordered.items():
        if ids != ids_ref:
            raise ValueError(f"{name} was scored on other samples than {reference} "
                             f"({len(ids)} vs {len(ids_ref)} samples): not comparable")
        m = metrics_from_ranks(ranks)
        row = {"model": name, "samples": len(ids), "users": len(set(users)), **{k: m[k] for k in METRICS}}
        if name == reference:
            row |= {"vs": None, "diff_ndcg@10": None, "p_user": None}
        else:
            t = user_paired_test(per_sample_metrics(ranks)["ndcg@10"].numpy(), ndcg_ref, users, n_resamples)
            row |= {"vs": reference, "diff_ndcg@10": t["diff"], "p_user": t["p_user_permutation"]}
        rows.append(row)
    return rows


def comparison_markdown(rows: list[dict]) -> list[str]:
    """The rows as a Markdown table (Δ relative to the reference row, in percent too)."""
    ref = next(r for r in rows if r["vs"] is None)
    out = ["| model | samples | users | NDCG@10 | HR@10 | HR@50 | Δ NDCG@10 vs " + ref["model"] + " | p (users) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["vs"] is None:
            delta, p = "—", "—"
        else:
            rel = f" ({100 * r['diff_ndcg@10'] / ref['ndcg@10']:+.1f}%)" if ref["ndcg@10"] else ""
            delta, p = f"{r['diff_ndcg@10']:+.4f}{rel}", f"{r['p_user']:.3f}"
        out.append(f"| {r['model']} | {r['samples']} | {r['users']} | {r['ndcg@10']:.4f} | {r['hit@10']:.4f} | "
                   f"{r['hit@50']:.4f} | {delta} | {p} |")
    return out
