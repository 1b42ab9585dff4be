r"""The recommender of CCRS (paper §2.2) and its KBRD ablation, one module for every neural variant.

    model = Recommender(cfg.recommender, kg, num_users)
    scores = model(batch)                  # (B, n_items): p_u H̃ᵀ + b   (Eq. 8)
    p_u = model.user_intention(batch)      # (B, d): what the generator is conditioned on (§2.3)

Variants (``cfg.variant``), sharing every piece:

``ccrs``
    Entities mentioned so far are encoded by L :class:`~ccrs.nn.UserRelationalConv` layers (Eqs. 1–6)
    run on the batched L-hop neighbourhood of each sample's mentions (cost follows the context, not
    the 31k-entity KG); the user of every edge is the sample's user. Turn encoder μ^o (Eq. 7) and
    intention encoder p_u = ½(μ^r + μ^o) H_u (Eq. 8).
``ccrs_no_turn``
    The same without the turn encoder: p_u = μ^r H_u (paper "w/o TE").
``kbrd``
    KBRD as CRSLab implements it (paper "w/o RE&TE"): an R-GCN with basis decomposition over the
    whole KG, then self-attention over the mentioned entities, p_u = μ^r H_u; the scores use the
    R-GCN output of every item. One documented deviation: the R-GCN input is a learned entity
    embedding (``RGCNConv(d, d)``) rather than CRSLab's featureless ``RGCNConv(n_entity, d)``
    (one-hot input): same model class, 8x fewer parameters and 3x faster per step on the real KG.
    Only the items and the mentions are encoded (bipartite blocks, :meth:`_rgcn_targets`): the same
    numbers as a full-KG pass at a quarter of the cost.

:math:`\tilde H` **(Eq. 8)**. The paper scores p_u against "item embeddings" without saying which.
For the user-guided variants :math:`\tilde H` is the entity embedding table restricted to items: the
layer-0 encoding that the residual encoder (Eq. 6) starts from, so H_u and H̃ live in one space;
it is user-independent by construction (one item table shared by every user, as Eq. 8 needs) and
costs nothing per user — a user-guided full-KG pass per user would cost ~300x more (see
``benchmarks/neighbourhood_vs_full.py``). ``item_table=encoder`` (kbrd only) uses a full-KG
user-independent R-GCN pass, CRSLab's choice. A per-item bias is added (CRSLab's ``rec_bias``).

**Users.** ``user_embedding`` row 0 is the cold-start user: users with no training conversation
(valid/test users of the ``standard`` split, any unknown id at serving time) are mapped to it. It is
trained by *user dropout*: each training sample's user is replaced by row 0 with probability
``user_dropout``, so row 0 learns the population-average γ (Eq. 2).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import RGCNConv

from ccrs.config import RecommenderConfig
from ccrs.data.rec_examples import COLD_START_USER, KnowledgeGraph, RecBatch
from ccrs.nn.history_encoder import HistoryEncoder
from ccrs.nn.intention_encoder import IntentionEncoder
from ccrs.nn.neighbourhood import InEdgeIndex, NeighbourhoodBatch
from ccrs.nn.row_sparse_embedding import RowSparseEmbedding
from ccrs.nn.turn_encoder import TurnEncoder
from ccrs.nn.user_relational_conv import UserRelationalConv

NEURAL_VARIANTS = ("ccrs", "ccrs_no_turn", "kbrd")


class Recommender(nn.Module):
    """Entity/user embeddings + encoder + intention → scores over all items (see module docstring)."""

    def __init__(self, cfg: RecommenderConfig, kg: KnowledgeGraph, num_users: int) -> None:
        super().__init__()
        if cfg.variant not in NEURAL_VARIANTS:
            raise ValueError(f"Recommender builds {NEURAL_VARIANTS}; {cfg.variant!r} is a non-neural baseline")
        self.cfg = cfg
        self.variant = cfg.variant
        self.item_table_mode = cfg.resolved_item_table()
        self.num_entities, self.num_relations = kg.num_entities, kg.num_relations
        d = cfg.entity_dim
        # The KG travels with the model but not in its state dict (it comes from the prepared data).
        self.register_buffer("edge_index", kg.edge_index, persistent=False)
        self.register_buffer("edge_type", kg.edge_type, persistent=False)
        self.register_buffer("item_entity_ids", kg.item_entity_ids, persistent=False)
        self.register_buffer("entity_to_item_index", kg.entity_to_item(), persistent=False)
        self.entity_embedding = RowSparseEmbedding(kg.num_entities, d)
        nn.init.normal_(self.entity_embedding.weight, std=d**-0.5)
        # row 0 = cold start; without the user table (user_table=false) it is the only row: the model
        # holds no per-user state, whatever the user count (results/scaling_users.md)
        self.user_embedding = RowSparseEmbedding(num_users + 1 if cfg.user_table else 1, cfg.user_dim)
        nn.init.normal_(self.user_embedding.weight, std=cfg.user_dim**-0.5)
        self._register_load_state_dict_pre_hook(_keep_cold_start_row_only, with_module=True)
        if self.variant == "kbrd":
            self.encoder = nn.ModuleList(
                RGCNConv(d, d, kg.num_relations, num_bases=cfg.n_bases) for _ in range(cfg.n_layers)
            )
        else:
            self.encoder = nn.ModuleList(
                UserRelationalConv(d, kg.num_relations, cfg.user_dim, heads=cfg.n_heads, scale_by=cfg.attention_scale,
                                   gamma_offset=cfg.gamma_offset, gamma_form=cfg.gamma_form,
                                   gamma_temperature=cfg.gamma_temperature,
                                   relation_bias=cfg.attention_relation_bias,
                                   rgcn_branch=cfg.attention_rgcn_branch, rgcn_bases=cfg.n_bases)
                for _ in range(cfg.n_layers)
            )
        self.turn_encoder = TurnEncoder(d, cfg.max_turns, cfg.turn_mode) if self.variant == "ccrs" else None
        self.intention = IntentionEncoder(d)
        self.score_proj = nn.Linear(d, d, bias=False) if cfg.score_projection else None
        self.item_bias = nn.Parameter(torch.zeros(kg.num_items)) if cfg.item_bias else None
        self.dropout = nn.Dropout(cfg.dropout)
        self._in_edges: InEdgeIndex | None = None
        self.history_encoder = HistoryEncoder(
            d, cfg.user_dim, user=cfg.history_user and self.variant != "kbrd", intent=cfg.history_intent,
            items=cfg.history_items) if cfg.uses_history_encoder() else None

    # -- pieces ---------------------------------------------------------------------------------
    def neighbourhoods(self, batch: RecBatch, user_rows: Tensor | None = None) -> NeighbourhoodBatch:
        """The batched L-hop neighbourhood of the mentions (data only: no parameters).

        With ``recommender.share_user_neighbourhoods`` (default) the samples of one user row share
        their nodes, so the user-guided encoder runs once per user and entity, not once per sample
        (:meth:`InEdgeIndex.batch`; same outputs, tested). ``user_rows`` (B,): the rows the encoder
        will read (after user dropout); default ``batch.users``. kbrd's R-GCN is user-independent:
        its samples share nodes across users too."""
        groups = None
        if self.cfg.share_user_neighbourhoods:
            groups = torch.zeros_like(batch.users) if self.variant == "kbrd" else (
                batch.users if user_rows is None else user_rows)
            if self.variant != "kbrd" and self._history_user_on():
                groups = _history_groups(groups, batch)  # the user vector also depends on the history
        return self._in_edge_index().batch(batch.context_lists(), self.cfg.n_layers, groups).to(self.edge_index.device)

    def _rgcn(self, x: Tensor, edge_index: Tensor, edge_type: Tensor) -> Tensor:
        for i, conv in enumerate(self.encoder):
            x = conv(x, edge_index, edge_type)
            if i < len(self.encoder) - 1:
                x = self.dropout(F.relu(x))
        return x

    def table_rows(self, users: Tensor) -> Tensor:
        """The user-table rows of ``users`` (user indices): themselves, or row 0 without a user table."""
        return users if self.cfg.user_table else torch.full_like(users, COLD_START_USER)

    def _user_rows(self, batch: RecBatch) -> Tensor:
        """The user row each sample reads (B,): its own, or the cold-start row under user dropout (or
        always without ``user_table``)."""
        users = batch.users
        if not self.cfg.user_table:
            return torch.full_like(users, COLD_START_USER)
        if self.training and self.cfg.user_dropout > 0 and self.variant != "kbrd":
            drop = torch.rand(users.shape, device=users.device) < self.cfg.user_dropout
            users = users.masked_fill(drop, COLD_START_USER)
        return users

    def _in_edge_index(self) -> InEdgeIndex:
        if self._in_edges is None:  # built once, on CPU (index arithmetic, no parameters)
            self._in_edges = InEdgeIndex(self.edge_index.cpu(), self.edge_type.cpu(), self.num_entities,
                                         max_in_edges=self.cfg.max_in_edges)
        return self._in_edges

    def _rgcn_targets(self, targets: Tensor) -> tuple[Tensor, Tensor]:
        """R-GCN states of ``targets`` only, exactly as a full-KG pass would give them.

        Returns ``(nodes, states)``: sorted unique target ids and their (n, d) encodings. Only the
        items and the batch's mentions are ever read, so the layers run on bipartite blocks towards
        them (3.5x faster than the whole 31k-entity graph for L = 1, same numbers).
        """
        device = self.edge_index.device
        blocks = self._in_edge_index().layer_blocks(targets.cpu(), self.cfg.n_layers)
        x = self.entity_embedding(blocks[0][0].to(device))
        for i, (_src, dst, ei, et) in enumerate(blocks):
            dst_d = dst.to(device)
            x_dst = x[torch.searchsorted(_src.to(device), dst_d)]
            x = self.encoder[i]((x, x_dst), ei.to(device), et.to(device))
            if i < len(blocks) - 1:
                x = self.dropout(F.relu(x))
        return blocks[-1][1].to(device), x

    def encode_context(self, batch: RecBatch, nb: NeighbourhoodBatch | None = None) -> tuple[Tensor, Tensor | None]:
        """H_u (B, m, d) for the mentioned entities, and H̃ if the encoder produced it."""
        mask = batch.context_mask
        if self.variant == "kbrd" and self.item_table_mode == "encoder":
            nodes, states = self._rgcn_targets(torch.cat([self.item_entity_ids, batch.context[mask]]))
            h_u = states[torch.searchsorted(nodes, batch.context)] * mask.unsqueeze(-1)
            return h_u, states[torch.searchsorted(nodes, self.item_entity_ids)]
        rows = self._user_rows(batch)
        if nb is None:
            nb = self._cached_neighbourhoods(batch, rows)
        elif self.training and self.cfg.share_user_neighbourhoods and not torch.equal(rows, batch.users):
            # a neighbourhood grouped by batch.users cannot serve rows changed by user dropout
            nb = self.neighbourhoods(batch, rows)
        x = self.entity_embedding(nb.node_ids)  # (n_nodes, d)
        if self.variant == "kbrd":
            x = self._rgcn(x, nb.edge_index, nb.edge_type)
        else:
            users = self.user_embedding(rows)  # (B, user_dim)
            if self._history_user_on():
                users = users + self.history_encoder.user_vector(*self._history_entries(batch))  # Eq. H2
            for conv in self.encoder:
                x = self.dropout(conv(x, nb.edge_index, nb.edge_type, users, nb.edge_sample))  # Eqs. 1–6
        h_u = x[nb.context_index] if x.numel() else x.new_zeros(*nb.context_index.shape, self.cfg.entity_dim)
        return h_u * nb.context_mask.unsqueeze(-1), None

    def _cached_neighbourhoods(self, batch: RecBatch, rows: Tensor) -> NeighbourhoodBatch:
        """:meth:`neighbourhoods`, kept on the batch: MAML evaluates one task batch K + 2 times (inner
        steps, query loss), and the neighbourhood depends on the mentions and user rows only."""
        key = (self._in_edge_index(), self.cfg.n_layers, self.cfg.share_user_neighbourhoods)  # this model's KG
        cached = getattr(batch, "_neighbourhoods", None)
        if cached is not None and cached[0][0] is key[0] and cached[0][1:] == key[1:] and torch.equal(cached[1], rows):
            return cached[2]
        nb = self.neighbourhoods(batch, rows)
        batch._neighbourhoods = (key, rows, nb)
        return nb

    def user_intention(self, batch: RecBatch, nb: NeighbourhoodBatch | None = None) -> Tensor:
        """p_u (B, d) of Eq. 8 (zeros for a sample with no mentioned entity)."""
        return self._intention(batch, nb)[0]

    def _intention(self, batch: RecBatch, nb: NeighbourhoodBatch | None) -> tuple[Tensor, Tensor | None]:
        batch = self.with_history_context(batch)
        h_u, items = self.encode_context(batch, nb)
        turn_weights = None
        if self.turn_encoder is not None:
            turn_weights = self.turn_encoder(batch.context_turns, batch.current_turn, batch.context_mask)  # μ^o, Eq. 7
        p_u = self.intention(h_u, batch.context_mask, turn_weights)  # Eq. 8
        if self.history_encoder is not None and self.history_encoder.intent_out is not None:
            p_u = self.history_encoder.read(*self._history_entries(batch), p_u)  # Eq. H3
        return p_u, items

    # -- history (ccrs/nn/history_encoder.py; none of it is in the paper) -----------------------
    def _history_user_on(self) -> bool:
        return self.history_encoder is not None and self.history_encoder.summary_out is not None

    def _history_entries(self, batch: RecBatch) -> tuple[Tensor, Tensor]:
        """x_j (B, h, d) of Eq. H1 and the history mask (B, h)."""
        batch = batch.with_empty_history()
        e = self.entity_embedding(batch.history)
        x = self.history_encoder.entries(e, batch.history_age, batch.history_flag, batch.history_count)
        return x * batch.history_mask.unsqueeze(-1), batch.history_mask

    def with_history_context(self, batch: RecBatch) -> RecBatch:
        """``batch`` with the history's entities prepended to the context as mentions at turn 0
        (``recommender.history_in_context``; kept on the batch: MAML reads one batch several times)."""
        if not self.cfg.history_in_context or batch.history is None or batch.history.size(1) == 0:
            return batch
        cached = getattr(batch, "_history_context", None)
        if cached is not None:
            return cached
        mask = torch.cat([batch.history_mask, batch.context_mask], 1)
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # valid entries first, order kept
        take = lambda hist, ctx: torch.gather(torch.cat([hist, ctx], 1), 1, order)  # noqa: E731
        out = dataclasses.replace(batch, context=take(batch.history, batch.context),
                                  context_turns=take(torch.zeros_like(batch.history), batch.context_turns),
                                  context_mask=torch.gather(mask, 1, order))
        batch._history_context = out
        return out

    def _add_history_item_scores(self, scores: Tensor, batch: RecBatch, p_u: Tensor, items: Tensor) -> Tensor:
        """Eq. H4: each history movie's score added to its item's column."""
        batch = batch.with_empty_history()
        x, mask = self._history_entries(batch)
        item_idx = self.entity_to_item_index[batch.history]  # (B, h), -1 for non-items
        is_item = mask & (item_idx >= 0)
        idx = item_idx.clamp(min=0)
        s = self.history_encoder.item_scores(x, p_u, items[idx]) * is_item
        return scores.scatter_add(1, idx, s)

    def relation_weights(self, users: Tensor) -> Tensor | None:
        r"""The user-specific relation weights :math:`\gamma^i_{r,u}` (Eq. 2) of ``users`` (U,), averaged over
        the heads of each layer: ``(U, L, R)``; ``None`` for ``kbrd`` (no user-guided attention)."""
        if self.variant == "kbrd":
            return None
        emb = self.user_embedding(self.table_rows(users))  # (U, user_dim)
        return torch.stack([conv.user_gamma(emb).mean(-1) for conv in self.encoder], dim=1)

    def item_table(self, encoded: Tensor | None = None) -> Tensor:
        """H̃ (n_items, d) of Eq. 8 (module docstring)."""
        if self.item_table_mode == "embedding":
            return self.entity_embedding(self.item_entity_ids)
        if encoded is not None:
            return encoded
        if self.variant == "kbrd":
            nodes, states = self._rgcn_targets(self.item_entity_ids)
            return states[torch.searchsorted(nodes, self.item_entity_ids)]
        return self._population_item_states()

    def _population_item_states(self) -> Tensor:
        """Items encoded by the user-guided layers for the cold-start (population) user: (n_items, d).

        Runs on bipartite blocks towards the items (:meth:`InEdgeIndex.layer_blocks`), so only the
        items' L-hop in-neighbourhood is touched and only the items' outputs are computed.
        """
        device = self.edge_index.device
        blocks = self._in_edge_index().layer_blocks(self.item_entity_ids.cpu(), self.cfg.n_layers)
        users = self.user_embedding(torch.tensor([COLD_START_USER], device=device))  # (1, user_dim)
        x = self.entity_embedding(blocks[0][0].to(device))
        for conv, (src, dst, ei, et) in zip(self.encoder, blocks, strict=True):
            x_dst = x[torch.searchsorted(src.to(device), dst.to(device))]
            edge_user = torch.zeros(et.numel(), dtype=torch.long, device=device)
            x = self.dropout(conv((x, x_dst), ei.to(device), et.to(device), users, edge_user))
        nodes = blocks[-1][1].to(device)
        return x[torch.searchsorted(nodes, self.item_entity_ids)]

    # -- scores ---------------------------------------------------------------------------------
    def forward(self, batch: RecBatch, nb: NeighbourhoodBatch | None = None) -> Tensor:
        """Scores over all items (B, n_items): p_u H̃ᵀ (+ item bias) — Eq. 8."""
        return self.scores_with_intention(batch, nb)[0]

    def scores_with_intention(self, batch: RecBatch, nb: NeighbourhoodBatch | None = None) -> tuple[Tensor, Tensor]:
        """Scores (B, n_items) and p_u (B, d) from one encoder pass (serving needs both: the ranking,
        and the intention the generator is conditioned on)."""
        p_u, items = self._intention(batch, nb)
        q = self.score_proj(p_u) if self.score_proj is not None else p_u
        table = self.item_table(items)
        scores = IntentionEncoder.score(q, table)
        if self.item_bias is not None:
            scores = scores + self.item_bias
        if self.history_encoder is not None and self.history_encoder.item_out is not None:
            scores = self._add_history_item_scores(scores, batch, q, table)  # Eq. H4
        return scores, p_u

    def loss(self, batch: RecBatch, nb: NeighbourhoodBatch | None = None) -> Tensor:
        """Cross-entropy of the label over all items (CRSLab's recommendation loss), plus
        ``recommender.gamma_penalty`` × :meth:`gamma_penalty` when that weight is set."""
        loss = F.cross_entropy(self(batch, nb), batch.labels)
        if self.cfg.gamma_penalty > 0 and self.variant != "kbrd":
            loss = loss + self.cfg.gamma_penalty * self.gamma_penalty(batch.users)
        return loss

    def gamma_penalty(self, users: Tensor) -> Tensor:
        r"""Mean squared user term :math:`z` of Eq. 2 over the distinct ``users`` and every layer
        (:meth:`UserRelationalConv.gamma_penalty`): a regulariser that keeps the user-guided weight
        out of saturation, so the user row keeps a gradient for the inner loop to follow."""
        emb = self.user_embedding(torch.unique(self.table_rows(users)))
        return torch.stack([conv.gamma_penalty(emb) for conv in self.encoder]).mean()


def _keep_cold_start_row_only(module: Recommender, state_dict: dict, prefix: str, *args) -> None:
    """Checkpoints written before ``user_table=false`` kept one row per user (never read): keep row 0."""
    key = prefix + "user_embedding.weight"
    if not module.cfg.user_table and key in state_dict and state_dict[key].size(0) > 1:
        state_dict[key] = state_dict[key][:1]


def _history_groups(rows: Tensor, batch: RecBatch) -> Tensor:
    """Group ids (B,): samples share one only when they read the same user row and the same history
    (with ``history_user`` the encoder's user vector depends on both)."""
    batch = batch.with_empty_history()
    key = torch.cat([rows.unsqueeze(1), *(f * batch.history_mask for f in (
        batch.history, batch.history_flag, batch.history_age, batch.history_count))], dim=1)
    return torch.unique(key, dim=0, return_inverse=True)[1]
