r"""Fine-grained intention encoder (CCRS paper Eq. 8).

.. math::
    \mu^r = \mathrm{Attn}(H_u), \qquad p_u = \tfrac12(\mu^r + \mu^o)\, H_u, \qquad
    \hat y = p_u \tilde H^\top                                                              \quad (8)

``H_u`` (m × d) are the user-guided encodings of the entities mentioned so far, :math:`\mu^r` the
self-attention weights over them, :math:`\mu^o` the turn encoder's weights (Eq. 7); without the turn
encoder (the paper's "w/o TE") :math:`p_u = \mu^r H_u`. :math:`\tilde H` (n_items × d) are
user-independent item embeddings, so every user's intention vector is scored against the same item
table (the recommender decides what :math:`\tilde H` is and documents it).
"""

from __future__ import annotations

from torch import Tensor, nn

from ccrs.nn.attention_pool import AttentionWeights


class IntentionEncoder(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attention = AttentionWeights(dim)

    def forward(self, h_u: Tensor, mask: Tensor, turn_weights: Tensor | None = None) -> Tensor:
        """``h_u`` (B, m, d), ``mask`` (B, m), ``turn_weights`` μ^o (B, m) or None → p_u (B, d)."""
        weights = self.attention(h_u, mask)  # μ^r
        if turn_weights is not None:
            weights = 0.5 * (weights + turn_weights)
        return (weights.unsqueeze(-1) * h_u).sum(1)

    @staticmethod
    def score(p_u: Tensor, item_embeddings: Tensor) -> Tensor:
        """p_u (B, d) · H̃ᵀ (d, n_items) → (B, n_items)."""
        return p_u @ item_embeddings.T
