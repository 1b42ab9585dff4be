import pytest
import torch

from ccrs.nn import UserRelationalConv
from ccrs.nn.neighbourhood import InEdgeIndex, batch_neighbourhoods
from tests.nn.test_user_relational_conv import tiny_graph


def _extract(kind, contexts, ei, et, hops, n):
    if kind == "k_hop_subgraph":
        return batch_neighbourhoods(contexts, ei, et, num_hops=hops, num_nodes=n)
    return InEdgeIndex(ei, et, n).batch(contexts, hops)


@pytest.mark.parametrize("kind", ["k_hop_subgraph", "in_edge_index"])
def test_batched_neighbourhoods_equal_full_graph_per_user(kind):
    torch.manual_seed(2)
    n, dim = 50, 8
    layers = torch.nn.ModuleList([UserRelationalConv(dim, 4, 6, heads=2) for _ in range(2)])
    ei, et = tiny_graph(n=n, n_rel=4, seed=5, extra_edges=150)
    emb = torch.randn(n, dim)
    users = torch.randn(3, 6)
    contexts = [[3, 17], [], [29, 3, 41]]
    batch = _extract(kind, contexts, ei, et, 2, n)
    h = emb[batch.node_ids]
    for layer in layers:
        h = layer(h, batch.edge_index, batch.edge_type, users, batch.edge_sample)
    assert batch.context_mask.tolist() == [[True, True, False], [False, False, False], [True, True, True]]
    for b, ctx in enumerate(contexts):
        if not ctx:
            continue
        full = emb
        for layer in layers:
            full = layer(full, ei, et, users[b : b + 1], torch.zeros(ei.size(1), dtype=torch.long))
        got = h[batch.context_index[b, : len(ctx)]]
        assert torch.allclose(got, full[ctx], atol=1e-5)
    assert batch.node_ids.numel() < 2 * n  # smaller than encoding the full graph for both samples


@pytest.mark.parametrize("kind", ["k_hop_subgraph", "in_edge_index"])
def test_all_empty_contexts(kind):
    ei, et = tiny_graph()
    batch = _extract(kind, [[], []], ei, et, 1, 5)
    assert batch.node_ids.numel() == 0 and batch.edge_index.shape == (2, 0) and not batch.context_mask.any()


def test_in_edge_index_takes_only_the_needed_edges():
    # 0 → 1 → 2 and 3 → 2: one hop around {2} needs the edges into 2 only, two hops also 0 → 1.
    ei = torch.tensor([[0, 1, 3], [1, 2, 2]])
    et = torch.tensor([0, 1, 0])
    index = InEdgeIndex(ei, et, 4)
    one = index.batch([[2]], 1)
    assert sorted(one.node_ids[one.edge_index[0]].tolist()) == [1, 3]
    two = index.batch([[2], [1]], 2)
    pairs = {(int(two.edge_sample[i]), int(two.node_ids[two.edge_index[0, i]]), int(two.node_ids[two.edge_index[1, i]]))
             for i in range(two.edge_index.size(1))}
    assert pairs == {(0, 1, 2), (0, 3, 2), (0, 0, 1), (1, 0, 1)}
    assert two.node_ids[two.context_index[1, 0]] == 1


def test_grouped_samples_share_nodes_and_keep_their_mentions():
    ei, et = tiny_graph(n=50, n_rel=4, seed=5, extra_edges=150)
    index = InEdgeIndex(ei, et, 50)
    contexts = [[3, 17], [17, 29], [3], [41]]
    per_sample = index.batch(contexts, 2)
    grouped = index.batch(contexts, 2, groups=torch.tensor([7, 7, 7, 2]))
    assert grouped.node_ids.numel() < per_sample.node_ids.numel()
    assert set(grouped.edge_sample.tolist()) == {0, 3}  # each group's first sample owns its edges
    for b, ctx in enumerate(contexts):  # every sample still points at its own mentions
        assert grouped.node_ids[grouped.context_index[b, : len(ctx)]].tolist() == ctx
    assert torch.equal(index.batch(contexts, 2, groups=torch.arange(4)).node_ids, per_sample.node_ids)
    with pytest.raises(ValueError, match="one value per sample"):
        index.batch(contexts, 2, groups=torch.tensor([1, 2]))


def test_fan_out_cap_keeps_at_most_k_in_edges_per_node_and_is_fixed():
    ei, et = tiny_graph(n=50, n_rel=4, seed=5, extra_edges=400)
    full_counts = torch.bincount(ei[1], minlength=50)
    capped = InEdgeIndex(ei, et, 50, max_in_edges=3)
    counts = torch.bincount(capped.dst, minlength=50)
    assert torch.equal(counts, full_counts.clamp(max=3))  # nodes under the cap keep every edge
    kept = set(zip(capped.src.tolist(), capped.dst.tolist(), capped.edge_type.tolist(), strict=True))
    assert kept <= set(zip(ei[0].tolist(), ei[1].tolist(), et.tolist(), strict=True))  # a subset of the KG's edges
    again = InEdgeIndex(ei, et, 50, max_in_edges=3)
    assert torch.equal(again.src, capped.src) and torch.equal(again.edge_type, capped.edge_type)  # drawn once
    batch = capped.batch([[3, 17]], 2)
    assert torch.bincount(batch.edge_index[1]).max() <= 3
    assert torch.equal(InEdgeIndex(ei, et, 50, max_in_edges=10_000).src, InEdgeIndex(ei, et, 50).src)
    with pytest.raises(ValueError, match="max_in_edges"):
        InEdgeIndex(ei, et, 50, max_in_edges=-1)
