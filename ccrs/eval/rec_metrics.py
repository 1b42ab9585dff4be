"""Recommendation metrics, identical to CRSLab / KBRD / KGSF so numbers compare.

Per sample, with the label's **0-based** rank ``r`` among all items:

* hit@k (= Recall@k / HR@k: one label per sample) = 1[r < k]
* MRR@k = 1 / (r + 1) if r < k else 0
* NDCG@k = 1 / log2(r + 2) if r < k else 0

micro-averaged over samples, for k in {1, 10, 50}. The ``dedup`` variant drops samples whose label
was already mentioned in the context (``label_in_context``).

Ties: ``r`` counts the items scoring strictly higher plus the tied items with a lower item index (a
stable sort), so a constant scorer is not credited with rank 0 for every label.
"""

from __future__ import annotations

import torch
from torch import Tensor

KS = (1, 10, 50)
METRICS = ("hit", "mrr", "ndcg")


def label_ranks(scores: Tensor, labels: Tensor) -> Tensor:
    """``scores`` (B, n_items), ``labels`` (B,) item indices → 0-based ranks (B,)."""
    label_scores = scores.gather(1, labels[:, None])  # (B, 1)
    higher = (scores > label_scores).sum(1)
    idx = torch.arange(scores.size(1), device=scores.device)[None, :]
    tied_before = ((scores == label_scores) & (idx < labels[:, None])).sum(1)
    return higher + tied_before


def metrics_from_ranks(ranks: Tensor, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Micro-averaged hit/mrr/ndcg@k over samples (empty input → zeros)."""
    ranks = ranks.double()
    out = {}
    n = max(ranks.numel(), 1)
    for k in ks:
        inside = ranks < k
        out[f"hit@{k}"] = inside.sum().item() / n
        out[f"mrr@{k}"] = torch.where(inside, 1.0 / (ranks + 1), torch.zeros_like(ranks)).sum().item() / n
        out[f"ndcg@{k}"] = torch.where(inside, 1.0 / torch.log2(ranks + 2), torch.zeros_like(ranks)).sum().item() / n
    out["count"] = ranks.numel()
    return out


def per_sample_metrics(ranks: Tensor, ks: tuple[int, ...] = KS) -> dict[str, Tensor]:
    """The per-sample values behind :func:`metrics_from_ranks` (for paired significance tests)."""
    ranks = ranks.double()
    out = {}
    for k in ks:
        inside = ranks < k
        out[f"hit@{k}"] = inside.double()
        out[f"mrr@{k}"] = torch.where(inside, 1.0 / (ranks + 1), torch.zeros_like(ranks))
        out[f"ndcg@{k}"] = torch.where(inside, 1.0 / torch.log2(ranks + 2), torch.zeros_like(ranks))
    return out
