r"""Turn encoder (CCRS paper Eq. 7): attention over the mentioned entities from *when* they were mentioned.

.. math::
    \mu^o = \mathrm{softmax}_j\big(w_o^\top \tanh(W_o\, P(\tau_j))\big)                      \quad (7)

where :math:`P(\tau_j)` is a learned embedding of entity :math:`j`'s turn index. We embed the
**distance back** from the current turn, :math:`\tau_j = t - t_j` (``t_j`` = the turn where the entity
was last mentioned, clipped to ``max_turns - 1``), not the absolute position: the model should learn
"recently mentioned matters more" the same way at turn 3 and at turn 20 of a dialogue, which an
absolute index cannot express with one embedding per position. ``mode="absolute"`` embeds ``t_j``
instead, for comparison.
"""

from __future__ import annotations

from torch import Tensor, nn

from ccrs.nn.attention_pool import AttentionWeights


class TurnEncoder(nn.Module):
    def __init__(self, dim: int, max_turns: int = 64, mode: str = "recency") -> None:
        super().__init__()
        if mode not in {"recency", "absolute"}:
            raise ValueError(f"mode must be 'recency' or 'absolute', got {mode!r}")
        self.mode, self.max_turns = mode, max_turns
        self.turn_embedding = nn.Embedding(max_turns, dim)
        self.attention = AttentionWeights(dim)

    def turn_positions(self, entity_turns: Tensor, current_turn: Tensor) -> Tensor:
        """``entity_turns`` (B, m), ``current_turn`` (B,) → embedded indices (B, m)."""
        pos = current_turn[:, None] - entity_turns if self.mode == "recency" else entity_turns
        return pos.clamp(0, self.max_turns - 1)

    def forward(self, entity_turns: Tensor, current_turn: Tensor, mask: Tensor) -> Tensor:
        """Weights μ^o (B, m) over the mentioned entities."""
        emb = self.turn_embedding(self.turn_positions(entity_turns, current_turn))  # (B, m, d)
        return self.attention(emb, mask)
