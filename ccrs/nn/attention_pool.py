"""Additive self-attention weights over a padded set (KBRD's entity self-attention; paper Eqs. 7–8)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AttentionWeights(nn.Module):
    r""":math:`\mu = \mathrm{softmax}(w^\top \tanh(W x_j))` over the valid positions ``j`` of each row.

    Returns weights ``(B, m)`` that sum to 1 over ``mask``; an all-padding row gets all zeros.
    """

    def __init__(self, in_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden_dim = hidden_dim or in_dim
        self.proj = nn.Linear(in_dim, hidden_dim)
        self.score = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # x (B, m, in_dim), mask (B, m) bool
        logits = self.score(torch.tanh(self.proj(x))).squeeze(-1)  # (B, m)
        # A finite fill, then the mask: an all-padding row gives 0 weights without ever producing NaN
        # (with -inf the softmax of such a row is NaN, and NaN survives into second-order gradients).
        logits = logits.masked_fill(~mask, -1e9)
        return torch.softmax(logits, dim=-1) * mask
