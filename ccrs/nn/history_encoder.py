r"""History encoder: what a user's earlier conversations tell the recommender (beyond the paper).

The paper's user representation is a free embedding row per user id (Eq. 2's :math:`U_{id}`), so a
user never seen in training has none, and on ReDial the per-user rows carry no signal that the
conversation does not (``results/relation_taste.md``). What real users do carry is their history
(:mod:`ccrs.data.history`): one entry :math:`j` per entity of their earlier conversations, with its
age :math:`a_j` (conversations back), flag :math:`f_j` (who named it, whether the seeker liked it)
and count :math:`c_j`. Each entry is embedded as

.. math::
    x_j = e_j + F[f_j] + A[a_j] + C[c_j]                                                      \quad (H1)

with :math:`e_j` the entity's layer-0 embedding (the table Eq. 6 starts from) and learned tables
:math:`F, A, C`. Three reads, each a config key of :class:`~ccrs.config.RecommenderConfig`:

``history_user`` — the user of Eq. 2, from the history.
    :math:`u = U_{id} + W_s \sum_j \mathrm{softmax}_j(w^\top\tanh(W x_j))\, x_j` (H2): a pooled
    summary of the whole history added to the user row, so a user unseen in training still guides
    the relation attention by what they talked about before. Not conditioned on the current request:
    Eq. 2's weight is a property of the user, computed once per (user, history).
``history_intent`` — the intention of Eq. 8, read through the current request (as UCCR does).
    :math:`\alpha_j = \mathrm{softmax}_j\big((W_q p_u)^\top W_k x_j/\sqrt d\big)`,
    :math:`r = \sum_j \alpha_j x_j`, :math:`g = \sigma(W_g[p_u; r])`,
    :math:`p_u' = p_u + g \odot W_o r` (H3). A user who now asks for a comedy weighs the comedies of
    their past; with an empty request (:math:`p_u = 0`) the read is a plain average of the past.
``history_items`` — a score for each movie of the history (a copy term).
    :math:`\hat y_i \mathrel{+}= v^\top \mathrm{ReLU}(W_x x_j + W_m (p_u \odot \tilde h_i))` for the
    history entry :math:`j` of item :math:`i` (H4): how much a past movie is worth now depends on its
    flags, its age and how it fits the current intention :math:`p_u`; 13.5% of ReDial's test labels are
    a movie of the user's own past conversations that the current context does not name
    (``shared/notes/user-history-crs.md``).

Every output map (:math:`W_s`, :math:`W_o`, :math:`v`) starts at zero, so a fresh model with any read
switched on scores exactly as the paper's model (tested).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ccrs.data.history import MAX_AGE, MAX_COUNT, N_FLAGS
from ccrs.nn.attention_pool import AttentionWeights


class HistoryEncoder(nn.Module):
    def __init__(self, dim: int, user_dim: int, user: bool = False, intent: bool = False, items: bool = False,
                 item_hidden: int = 64) -> None:
        super().__init__()
        self.dim = dim
        self.flag_embedding = nn.Embedding(N_FLAGS, dim)
        self.age_embedding = nn.Embedding(MAX_AGE + 1, dim)
        self.count_embedding = nn.Embedding(MAX_COUNT + 1, dim)
        for table in (self.flag_embedding, self.age_embedding, self.count_embedding):
            nn.init.normal_(table.weight, std=dim**-0.5)
        self.summary_pool = AttentionWeights(dim) if user else None
        self.summary_out = _zero_linear(dim, user_dim) if user else None
        if intent:
            self.query = nn.Linear(dim, dim, bias=False)
            self.key = nn.Linear(dim, dim, bias=False)
            self.gate = nn.Linear(2 * dim, dim)
            self.intent_out = _zero_linear(dim, dim)
        else:
            self.intent_out = None
        if items:
            self.item_entry = nn.Linear(dim, item_hidden)
            self.item_match = nn.Linear(dim, item_hidden, bias=False)
            self.item_out = _zero_linear(item_hidden, 1)
        else:
            self.item_out = None

    def entries(self, entity_vectors: Tensor, age: Tensor, flag: Tensor, count: Tensor) -> Tensor:
        """x_j (B, h, d) of Eq. H1 from e_j (B, h, d) and the entry's integer features (B, h)."""
        return (entity_vectors + self.flag_embedding(flag) + self.age_embedding(age.clamp(0, MAX_AGE))
                + self.count_embedding(count.clamp(0, MAX_COUNT)))

    def user_vector(self, x: Tensor, mask: Tensor) -> Tensor:
        """W_s · pooled history (B, user_dim): the history's part of Eq. 2's user (Eq. H2)."""
        weights = self.summary_pool(x, mask)  # (B, h); zeros for an empty history
        return self.summary_out((weights.unsqueeze(-1) * x).sum(1))

    def read(self, x: Tensor, mask: Tensor, p_u: Tensor) -> Tensor:
        """p_u' (B, d): the intention with the history read through it (Eq. H3)."""
        logits = torch.einsum("bd,bhd->bh", self.query(p_u), self.key(x)) / math.sqrt(self.dim)
        alpha = torch.softmax(logits.masked_fill(~mask, -1e9), dim=-1) * mask  # empty history: zeros
        r = (alpha.unsqueeze(-1) * x).sum(1)  # (B, d)
        g = torch.sigmoid(self.gate(torch.cat([p_u, r], dim=-1)))
        return p_u + g * self.intent_out(r)

    def item_scores(self, x: Tensor, p_u: Tensor, item_vectors: Tensor) -> Tensor:
        """(B, h) score of each entry as an item (Eq. H4); ``item_vectors`` (B, h, d) are the H̃ rows
        of the entries (the caller masks entries that are not items)."""
        hidden = torch.relu(self.item_entry(x) + self.item_match(p_u.unsqueeze(1) * item_vectors))
        return self.item_out(hidden).squeeze(-1)


def _zero_linear(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer
