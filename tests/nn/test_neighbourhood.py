import torch

from ccrs.nn import UserRelationalConv
from ccrs.nn.neighbourhood import batch_neighbourhoods
from tests.nn.test_user_relational_conv import tiny_graph


def test_batched_neighbourhoods_equal_full_graph_per_user():
    torch.manual_seed(2)
    n, dim = 50, 8
    layers = torch.nn.ModuleList([UserRelationalConv(dim, 4, 6, heads=2) for _ in range(2)])
    ei, et = tiny_graph(n=n, n_rel=4, seed=5, extra_edges=150)
    emb = torch.randn(n, dim)
    users = torch.randn(3, 6)
    contexts = [[3, 17], [], [29, 3, 41]]
    batch = batch_neighbourhoods(contexts, ei, et, num_hops=2, num_nodes=n)
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


def test_all_empty_contexts():
    ei, et = tiny_graph()
    batch = batch_neighbourhoods([[], []], ei, et, num_hops=1, num_nodes=5)
    assert batch.node_ids.numel() == 0 and batch.edge_index.shape == (2, 0) and not batch.context_mask.any()
