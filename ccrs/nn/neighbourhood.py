"""Per-sample L-hop neighbourhoods, batched: the user-dependent encoder's cost follows the context.

The user-guided encoder (Eqs. 1–6) is user-specific, so it cannot run once on the whole KG and be
shared. Running it on the full 31k-entity graph per sample would be wasteful: an entity's encoding
after L layers depends only on its L-hop in-neighbourhood. :func:`batch_neighbourhoods` extracts
that neighbourhood for each sample's mentioned entities, relabels it, and concatenates the samples
into one disjoint graph whose edges carry their sample index (the user of that edge, ``edge_user``
in :class:`~ccrs.nn.UserRelationalConv`).

Two implementations with one output contract:

* :class:`InEdgeIndex` (used in training): the KG's in-edges sorted by target once (CSR), then a
  vectorised breadth-first expansion of all samples at once: the in-edges of every node within
  distance ``L - 1`` of a mention, nothing more. About 50x faster than the reference on the real KG.
* :func:`batch_neighbourhoods` (reference): PyG's ``k_hop_subgraph`` per sample (the induced subgraph,
  which also holds edges into the outermost nodes; they do not change the mentions' encodings).
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


def cap_in_edges(dst: Tensor, num_nodes: int, max_in_edges: int, seed: int = 0) -> Tensor:
    """Positions (sorted) of the edges kept when every node keeps at most ``max_in_edges`` of its
    in-edges, chosen uniformly at random (``seed``). Nodes with fewer keep all of theirs."""
    gen = torch.Generator().manual_seed(seed)
    key = torch.rand(dst.numel(), generator=gen)
    order = torch.argsort(dst.to(torch.float64) * 2 + key.to(torch.float64))  # by node, random within
    sorted_dst = dst[order]
    counts = torch.bincount(sorted_dst, minlength=num_nodes)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(dst.numel()) - start[sorted_dst]
    return torch.sort(order[rank < max_in_edges]).values


class InEdgeIndex:
    """The KG's in-edges grouped by target node (CSR), for fast batched neighbourhood extraction.

    ``max_in_edges`` (optional fan-out cap, 0 = all): each node keeps at most that many in-edges, a
    uniform sample drawn once with ``seed`` — a fixed, smaller KG, identical in training, meta-test and
    serving (not resampled per batch, so the model stays deterministic). An L-hop neighbourhood then
    holds at most ``m·(1 + K + … + K^(L-1))`` edges per user for ``m`` mentions, which bounds the memory
    of deep encoders on hub-heavy graphs (DBpedia's genre and country nodes have thousands of in-edges).
    """

    def __init__(self, edge_index: Tensor, edge_type: Tensor, num_nodes: int, max_in_edges: int = 0,
                 seed: int = 0) -> None:
        if max_in_edges < 0:
            raise ValueError(f"max_in_edges must be >= 0 (0 = no cap), got {max_in_edges}")
        if max_in_edges:
            keep = cap_in_edges(edge_index[1], num_nodes, max_in_edges, seed)
            edge_index, edge_type = edge_index[:, keep], edge_type[keep]
        self.max_in_edges = max_in_edges
        order = torch.argsort(edge_index[1], stable=True)
        self.src = edge_index[0, order].contiguous()
        self.dst = edge_index[1, order].contiguous()
        self.edge_type = edge_type[order].contiguous()
        self.num_nodes = num_nodes
        self.ptr = torch.zeros(num_nodes + 1, dtype=torch.long)
        self.ptr[1:] = torch.cumsum(torch.bincount(self.dst, minlength=num_nodes), 0)

    def _in_edges(self, nodes: Tensor) -> tuple[Tensor, Tensor]:
        """Positions of the in-edges of ``nodes`` (K,) and which of ``nodes`` each belongs to (K,)."""
        starts = self.ptr[nodes]
        counts = self.ptr[nodes + 1] - starts
        owner = torch.repeat_interleave(torch.arange(nodes.numel()), counts)
        first = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        return starts[owner] + torch.arange(owner.numel()) - first, owner

    def batch(self, contexts: list[list[int]], num_hops: int, groups: Tensor | None = None) -> NeighbourhoodBatch:
        """``groups`` (B,): samples with equal values share their nodes (keyed group·N + node, not
        sample·N + node); each edge's ``edge_sample`` is then the group's first sample. For the
        user-guided encoder a group is a user row: the encoding of an entity depends on the user and
        its L-hop in-neighbourhood only, so every sample of one user reads the same states — computed
        once (exact: each node within L − 1 hops of a mention keeps all its in-edges either way)."""
        n = self.num_nodes
        lengths = torch.tensor([len(c) for c in contexts], dtype=torch.long)
        seeds = torch.tensor([e for c in contexts for e in c], dtype=torch.long)
        owner = torch.arange(len(contexts))  # the sample whose key a sample's nodes use
        if groups is not None:
            groups = groups.cpu()
            if groups.shape != (len(contexts),):
                raise ValueError(f"groups must have one value per sample ({len(contexts)}), got {tuple(groups.shape)}")
            _, inverse = torch.unique(groups, return_inverse=True)
            first = torch.full((int(inverse.max()) + 1 if inverse.numel() else 0,), len(contexts), dtype=torch.long)
            first.scatter_reduce_(0, inverse, owner, "amin")
            owner = first[inverse]
        seed_keys = torch.repeat_interleave(owner, lengths) * n + seeds  # owner·N + node
        visited = torch.unique(seed_keys)  # sorted
        frontier = visited
        pos_parts, sample_parts = [], []
        for _ in range(num_hops):
            if frontier.numel() == 0:
                break
            pos, owner = self._in_edges(frontier % n)
            sample = frontier[owner] // n
            pos_parts.append(pos)
            sample_parts.append(sample)
            reached = torch.unique(sample * n + self.src[pos])
            frontier = reached[~torch.isin(reached, visited)]
            visited = torch.unique(torch.cat([visited, frontier]))
        pos = torch.cat(pos_parts) if pos_parts else torch.zeros(0, dtype=torch.long)
        edge_sample = torch.cat(sample_parts) if sample_parts else torch.zeros(0, dtype=torch.long)
        src = torch.searchsorted(visited, edge_sample * n + self.src[pos])
        dst = torch.searchsorted(visited, edge_sample * n + self.dst[pos])
        m = max(int(lengths.max()) if lengths.numel() else 0, 1)
        context_index = torch.zeros(len(contexts), m, dtype=torch.long)
        context_mask = torch.arange(m)[None, :] < lengths[:, None]
        context_index[context_mask] = torch.searchsorted(visited, seed_keys)
        return NeighbourhoodBatch(
            node_ids=visited % n,
            edge_index=torch.stack([src, dst]),
            edge_type=self.edge_type[pos],
            edge_sample=edge_sample,
            context_index=context_index,
            context_mask=context_mask,
        )

    def layer_blocks(self, targets: Tensor, num_layers: int) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
        """Bipartite blocks to compute an L-layer user-independent encoding of ``targets`` only.

        Returns, for layer ``l = 1..L``, ``(src_nodes, dst_nodes, edge_index, edge_type)``: layer ``l``
        maps states on ``src_nodes`` (S_{l-1}) to states on ``dst_nodes`` (S_l), with ``edge_index``
        indexing (src position, dst position); S_L = sorted unique ``targets`` and S_{l-1} = S_l ∪
        in-neighbours(S_l). Used to score all items with a full-KG encoder without computing the
        thousands of non-item entities nothing reads (R-GCN of the kbrd variant).
        """
        sets = [torch.unique(targets)]
        edges = []
        for _ in range(num_layers):
            dst = sets[0]
            pos, owner = self._in_edges(dst)
            src = torch.unique(torch.cat([dst, self.src[pos]]))
            edges.insert(0, (torch.stack([torch.searchsorted(src, self.src[pos]), owner]), self.edge_type[pos]))
            sets.insert(0, src)
        return [(sets[i], sets[i + 1], *edges[i]) for i in range(num_layers)]
