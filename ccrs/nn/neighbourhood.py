"""Per-sample L-hop neighbourhoods, batched: the user-dependent encoder's cost follows the context.

The user-guided encoder (Eqs. 1–6) is user-specific, so it cannot run once on the whole KG and be
shared. Running it on the full 31k-entity graph per sample would be wasteful: an entity's encoding
after L layers depends only on its L-hop in-neighbourhood. :func:`batch_neighbourhoods` extracts
that neighbourhood for each sample's mentioned entities (``k_hop_subgraph``), relabels it, and
concatenates the samples into one disjoint graph whose edges carry their sample index (the user of
that edge, ``edge_user`` in :class:`~ccrs.nn.UserRelationalConv`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.utils import k_hop_subgraph


@dataclass
class NeighbourhoodBatch:
    node_ids: Tensor  # (N,) global entity id of each batched node
    edge_index: Tensor  # (2, E) into the batched nodes
    edge_type: Tensor  # (E,)
    edge_sample: Tensor  # (E,) sample (row) each edge belongs to
    context_index: Tensor  # (B, m) batched-node index of each sample's mentioned entities (0 = padding)
    context_mask: Tensor  # (B, m) bool

    def to(self, device) -> NeighbourhoodBatch:
        return NeighbourhoodBatch(*(t.to(device) for t in self.__dict__.values()))


def batch_neighbourhoods(
    contexts: list[list[int]], edge_index: Tensor, edge_type: Tensor, num_hops: int, num_nodes: int
) -> NeighbourhoodBatch:
    """``contexts[b]`` = entity ids mentioned in sample b (may be empty) → one batched disjoint graph."""
    node_parts, ei_parts, et_parts, es_parts = [], [], [], []
    m = max((len(c) for c in contexts), default=0)
    context_index = torch.zeros(len(contexts), max(m, 1), dtype=torch.long)
    context_mask = torch.zeros(len(contexts), max(m, 1), dtype=torch.bool)
    offset = 0
    for b, ctx in enumerate(contexts):
        if not ctx:
            continue
        seeds = torch.tensor(ctx, dtype=torch.long)
        subset, sub_ei, mapping, edge_mask = k_hop_subgraph(
            seeds, num_hops, edge_index, relabel_nodes=True, num_nodes=num_nodes
        )
        node_parts.append(subset)
        ei_parts.append(sub_ei + offset)
        et_parts.append(edge_type[edge_mask])
        es_parts.append(torch.full((sub_ei.size(1),), b, dtype=torch.long))
        context_index[b, : len(ctx)] = mapping + offset
        context_mask[b, : len(ctx)] = True
        offset += subset.numel()
    empty = torch.zeros(0, dtype=torch.long)
    return NeighbourhoodBatch(
        node_ids=torch.cat(node_parts) if node_parts else empty,
        edge_index=torch.cat(ei_parts, 1) if ei_parts else torch.zeros(2, 0, dtype=torch.long),
        edge_type=torch.cat(et_parts) if et_parts else empty,
        edge_sample=torch.cat(es_parts) if es_parts else empty,
        context_index=context_index,
        context_mask=context_mask,
    )
