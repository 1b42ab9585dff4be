"""UserRelationalConv (Eqs. 1–6) on tiny random graphs."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.utils import k_hop_subgraph, scatter

from ccrs.nn import UserRelationalConv


def tiny_graph(n=5, n_rel=3, seed=0, extra_edges=12):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, n, (extra_edges,), generator=g)
    dst = torch.randint(0, n, (extra_edges,), generator=g)
    loops = torch.arange(n)
    edge_index = torch.stack([torch.cat([src, loops]), torch.cat([dst, loops])])
    edge_type = torch.cat([torch.randint(0, n_rel - 1, (extra_edges,), generator=g), torch.full((n,), n_rel - 1)])
    return edge_index, edge_type


@pytest.fixture
def layer():
    torch.manual_seed(0)
    return UserRelationalConv(dim=8, num_relations=3, user_dim=6, heads=2)


def run(layer, x, edge_index, edge_type, users, edge_user):
    return layer(x, edge_index, edge_type, users, edge_user, return_attention=True)


def test_shapes(layer):
    ei, et = tiny_graph()
    x = torch.randn(5, 8)
    h, alpha = run(layer, x, ei, et, torch.randn(1, 6), torch.zeros(ei.size(1), dtype=torch.long))
    assert h.shape == (5, 8) and alpha.shape == (ei.size(1), 2)


def test_attention_sums_to_one_over_each_nodes_neighbours(layer):
    ei, et = tiny_graph()
    _, alpha = run(layer, torch.randn(5, 8), ei, et, torch.randn(1, 6), torch.zeros(ei.size(1), dtype=torch.long))
    sums = scatter(alpha, ei[1], dim=0, dim_size=5, reduce="sum")
    assert torch.allclose(sums, torch.ones(5, 2), atol=1e-6)


def test_gamma_depends_on_the_user_and_changes_attention(layer):
    ei, et = tiny_graph()
    x = torch.randn(5, 8)
    users = torch.randn(2, 6)
    gamma = layer.user_gamma(users)
    assert gamma.shape == (2, 3, 2) and not torch.allclose(gamma[0], gamma[1])
    zeros = torch.zeros(ei.size(1), dtype=torch.long)
    h0, a0 = run(layer, x, ei, et, users, zeros)
    h1, a1 = run(layer, x, ei, et, users, zeros + 1)
    assert not torch.allclose(a0, a1) and not torch.allclose(h0, h1)


def dense_reference(layer, x, edge_index, edge_type, user):
    """Eqs. 1–6 written out with loops over targets, heads and neighbours."""
    n, k, dh = x.size(0), layer.heads, layer.head_dim
    wt, ws, wm = (lin.weight @ x.T + lin.bias[:, None] for lin in (layer.lin_target, layer.lin_source, layer.lin_message))
    wu = layer.user_proj.weight @ user  # (dh*dh,)
    out = torch.zeros(n, layer.dim)
    for t in range(n):
        nbrs = [e for e in range(edge_index.size(1)) if edge_index[1, e] == t]
        for i in range(k):
            sl = slice(i * dh, (i + 1) * dh)
            scores, msgs = [], []
            for e in nbrs:
                s, r = edge_index[0, e].item(), edge_type[e].item()
                a = layer.rel_att[r, i]
                gamma = layer.gamma_offset + a.reshape(-1) @ wu  # γ_0 + Vec(A_r^i) W_u U_id
                scores.append(ws[sl, s] @ a @ wt[sl, t] * gamma / math.sqrt(dh))  # Eq. 2
                msgs.append(layer.rel_msg[r, i] @ wm[sl, s])  # Eq. 4
            if nbrs:
                att = torch.softmax(torch.stack(scores), 0)  # Eq. 3
                out[t, sl] = (att[:, None] * torch.stack(msgs)).sum(0)  # Eq. 5
    return F.gelu(out @ layer.lin_out.weight.T + layer.lin_out.bias) + x  # Eq. 6


@pytest.mark.parametrize("gamma_offset", [0.0, 1.0])  # the paper's γ (0) and the default (1)
def test_equals_dense_computation_on_5_nodes(gamma_offset):
    torch.manual_seed(0)
    layer = UserRelationalConv(dim=8, num_relations=3, user_dim=6, heads=2, gamma_offset=gamma_offset)
    ei, et = tiny_graph(extra_edges=9)
    x = torch.randn(5, 8)
    user = torch.randn(6)
    h = layer(x, ei, et, user[None], torch.zeros(ei.size(1), dtype=torch.long))
    assert torch.allclose(h, dense_reference(layer, x, ei, et, user), atol=1e-5)


def test_neighbourhood_equals_full_graph_for_mentioned_entities():
    torch.manual_seed(1)
    layers = torch.nn.ModuleList([UserRelationalConv(8, 4, 6, heads=2) for _ in range(2)])
    n = 40
    ei, et = tiny_graph(n=n, n_rel=4, seed=3, extra_edges=120)
    x = torch.randn(n, 8)
    user = torch.randn(1, 6)
    full = x
    for layer in layers:
        full = layer(full, ei, et, user, torch.zeros(ei.size(1), dtype=torch.long))
    mentioned = torch.tensor([3, 17, 29])
    subset, sub_ei, mapping, edge_mask = k_hop_subgraph(mentioned, 2, ei, relabel_nodes=True, num_nodes=n)
    assert subset.numel() < n  # the test means something only if the neighbourhood is smaller
    h = x[subset]
    for layer in layers:
        h = layer(h, sub_ei, et[edge_mask], user, torch.zeros(sub_ei.size(1), dtype=torch.long))
    assert torch.allclose(h[mapping], full[mentioned], atol=1e-5)


def test_second_order_gradients_through_functional_call(layer):
    ei, et = tiny_graph()
    x = torch.randn(5, 8)
    users = torch.randn(1, 6)
    zeros = torch.zeros(ei.size(1), dtype=torch.long)
    params = dict(layer.named_parameters())
    loss = torch.func.functional_call(layer, params, (x, ei, et, users, zeros)).pow(2).sum()
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    adapted = {n: p - 0.1 * g for (n, p), g in zip(params.items(), grads, strict=True)}
    meta = torch.func.functional_call(layer, adapted, (x, ei, et, users, zeros)).pow(2).sum()
    meta.backward()
    assert layer.rel_att.grad is not None and layer.rel_att.grad.abs().sum() > 0


def test_without_user_gamma_is_one(layer):
    plain = UserRelationalConv(8, 3, 6, heads=2, use_user=False)
    ei, et = tiny_graph()
    h = plain(torch.randn(5, 8), ei, et)
    assert h.shape == (5, 8)


@pytest.mark.parametrize("form", ["linear", "relation_softmax"])
def test_gamma_penalty_is_the_mean_square_of_the_user_term(form):
    torch.manual_seed(0)
    layer = UserRelationalConv(dim=8, num_relations=3, user_dim=6, heads=2, gamma_form=form)
    users = torch.randn(4, 6)
    z = layer.user_logits(users)  # (4, 3, 2)
    if form == "relation_softmax":  # a shift over relations changes no γ, so it is not penalised
        z = z - z.mean(dim=1, keepdim=True)
        shifted = layer.user_logits(users) + 5.0
        assert torch.allclose(torch.softmax(shifted, 1), torch.softmax(layer.user_logits(users), 1), atol=1e-6)
    assert torch.allclose(layer.gamma_penalty(users), z.pow(2).mean())
    with torch.no_grad():
        layer.user_proj.weight.zero_()
    assert layer.gamma_penalty(users).item() == 0.0


def test_gamma_penalty_pulls_a_saturated_relation_softmax_back():
    """Saturated: γ of one relation ≈ R, the others ≈ 0, and the user row gets little gradient
    from any loss through γ; minimising the penalty un-saturates it and the gradient returns."""
    torch.manual_seed(0)
    layer = UserRelationalConv(dim=8, num_relations=3, user_dim=6, heads=2, gamma_form="relation_softmax")
    with torch.no_grad():
        layer.user_proj.weight.mul_(40.0)
    user = torch.randn(1, 6, requires_grad=True)

    def user_grad():
        (g,) = torch.autograd.grad(layer.user_gamma(user)[0, 0].sum(), user)
        return g.norm().item()

    saturated_grad = user_grad()
    assert layer.user_gamma(user).max().item() > 2.99
    opt = torch.optim.Adam(layer.user_proj.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        layer.gamma_penalty(user.detach()).backward()
        opt.step()
    assert layer.user_gamma(user).max().item() < 1.1 and user_grad() > 10 * saturated_grad


def test_relation_bias_starts_as_the_papers_layer_and_shifts_mass_between_relations():
    torch.manual_seed(0)
    plain = UserRelationalConv(dim=8, num_relations=3, user_dim=6, heads=2)
    torch.manual_seed(0)
    biased = UserRelationalConv(dim=8, num_relations=3, user_dim=6, heads=2, relation_bias=True)
    ei, et = tiny_graph()
    x, users, edge_user = torch.randn(5, 8), torch.randn(1, 6), torch.zeros(ei.size(1), dtype=torch.long)
    h0, a0 = run(plain, x, ei, et, users, edge_user)
    h1, a1 = run(biased, x, ei, et, users, edge_user)
    assert torch.allclose(h0, h1) and torch.allclose(a0, a1)  # b_r = 0 at initialisation
    assert "rel_bias" not in dict(plain.named_parameters())  # old checkpoints keep loading
    with torch.no_grad():
        biased.rel_bias[0] = 20.0  # a strong prior for relation 0
    _, a2 = run(biased, x, ei, et, users, edge_user)
    has_rel0 = scatter((et == 0).float(), ei[1], dim_size=5, reduce="max") > 0
    mass0 = scatter(a2[et == 0], ei[1][et == 0], dim=0, dim_size=5, reduce="sum")  # (5, heads)
    assert torch.allclose(mass0[has_rel0], torch.ones_like(mass0[has_rel0]), atol=1e-4)


def test_rgcn_branch_starts_as_the_papers_layer_then_adds_per_relation_means():
    torch.manual_seed(0)
    plain = UserRelationalConv(dim=8, num_relations=3, user_dim=6, heads=2)
    hybrid = UserRelationalConv(dim=8, num_relations=3, user_dim=6, heads=2, rgcn_branch=True, rgcn_bases=2)
    missing, _ = hybrid.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["rgcn.comp", "rgcn.weight"]
    ei, et = tiny_graph()
    x, users, edge_user = torch.randn(5, 8), torch.randn(1, 6), torch.zeros(ei.size(1), dtype=torch.long)
    h0, _ = run(plain, x, ei, et, users, edge_user)
    h1, _ = run(hybrid, x, ei, et, users, edge_user)
    assert torch.allclose(h0, h1)  # silent at initialisation
    assert "rgcn.comp" not in dict(plain.named_parameters())  # old checkpoints keep loading
    h1.sum().backward()
    assert hybrid.rgcn.comp.grad.abs().sum() > 0  # the zero start is not a saddle
    with torch.no_grad():
        hybrid.rgcn.comp.fill_(1.0)
    # The branch is R-GCN's per-relation mean, W = Σ_b comp_rb V_b, summed over relations:
    weight = torch.einsum("rb,bio->rio", hybrid.rgcn.comp, hybrid.rgcn.weight)
    expected = torch.zeros(5, 8)
    for r in range(3):
        m = et == r
        expected += scatter(x[ei[0][m]] @ weight[r], ei[1][m], dim=0, dim_size=5, reduce="mean")
    assert torch.allclose(hybrid.rgcn(x, ei, et), expected, atol=1e-5)
    # bipartite blocks (item table) give the same targets as the full graph
    h_full = hybrid(x, ei, et, users, edge_user)
    keep = ei[1] < 3
    h_block = hybrid((x, x[:3]), ei[:, keep], et[keep], users, edge_user[keep])
    assert torch.allclose(h_full[:3], h_block, atol=1e-5)
