"""Several recommenders' predictions on the same samples, side by side, each against one reference.

    rows = compare_on_same_samples({"popularity": p0, "kbrd": p1, "ccrs (meta)": p2}, reference="kbrd")

Rows are aligned by ``sample_id``; predictions on different sample sets are refused (a comparison of
two different test sets says nothing). Against the reference: the NDCG@10 difference and its
user-level p (sign flips of whole users, :func:`ccrs.eval.significance.user_paired_test`): samples of
one user are not independent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ccrs.eval.rec_evaluator import RecPredictions
from ccrs.eval.rec_metrics import metrics_from_ranks, per_sample_metrics
from ccrs.eval.significance import paired_tests, user_paired_test

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


#: Metrics :func:`compare_predictions` tests.
TESTED_METRICS = ("ndcg@10", "hit@10")


def _sorted(p: RecPredictions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(p.sample_ids.numpy(), kind="stable")
    return (p.sample_ids.numpy()[order], np.asarray(p.user_ids)[order], p.ranks.numpy()[order],
            p.top.numpy()[order])


def compare_predictions(a: RecPredictions, b: RecPredictions, n_resamples: int = 2000) -> dict[str, Any]:
    """How ``a`` differs from ``b`` on the same samples: rank shift, changed top-10s, user-level tests."""
    ids_a, users, ranks_a, top_a = _sorted(a)
    ids_b, _, ranks_b, top_b = _sorted(b)
    if not np.array_equal(ids_a, ids_b):
        raise ValueError("the two predictions cover different samples")
    shift = np.abs(ranks_a.astype(np.int64) - ranks_b.astype(np.int64))
    top10_changed = (top_a[:, :10] != top_b[:, :10]).any(axis=1)
    changed_users = {u for u, c in zip(users.tolist(), top10_changed.tolist(), strict=True) if c}
    n_users = len(set(users.tolist()))
    ma = {k: v.numpy()[np.argsort(a.sample_ids.numpy(), kind="stable")] for k, v in per_sample_metrics(a.ranks).items()}
    mb = {k: v.numpy()[np.argsort(b.sample_ids.numpy(), kind="stable")] for k, v in per_sample_metrics(b.ranks).items()}
    tests = {m: paired_tests(ma[m], mb[m], users, n_resamples=n_resamples) for m in TESTED_METRICS}
    return {
        "mean_abs_rank_shift": float(shift.mean()) if shift.size else 0.0,
        "median_abs_rank_shift": float(np.median(shift)) if shift.size else 0.0,
        "share_samples_rank_changed": float((shift > 0).mean()) if shift.size else 0.0,
        "share_samples_top10_changed": float(top10_changed.mean()) if shift.size else 0.0,
        "share_users_top10_changed": len(changed_users) / max(n_users, 1),
        "tests": {m: {k: t[k] for k in ("mean_a", "mean_b", "diff", "p_permutation", "p_user_permutation",
                                          "user_ci95_low", "user_ci95_high", "user_wins", "user_losses")}
                  for m, t in tests.items()},
    }
