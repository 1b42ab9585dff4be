import pytest
import torch
from torch import nn
from torch.func import functional_call

from ccrs.meta import MAML, MetaTask, meta_step, split_parameters


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(4, 3)  # outer-only in these tests
        self.hidden = nn.Linear(3, 5)
        self.out = nn.Linear(5, 1)

    def forward(self, idx):
        return self.out(torch.tanh(self.hidden(self.embedding(idx)))).squeeze(-1)


def mse(model, params, batch):
    idx, y = batch
    return ((functional_call(model, params, (idx,)) - y) ** 2).mean()


def _task(seed):
    g = torch.Generator().manual_seed(seed)
    s = (torch.randint(0, 4, (6,), generator=g), torch.randn(6, generator=g, dtype=torch.float64))
    q = (torch.randint(0, 4, (5,), generator=g), torch.randn(5, generator=g, dtype=torch.float64))
    return MetaTask(seed, s, q)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Tiny().double()


def test_split_by_patterns(model):
    inner, outer = split_parameters(model, ["embedding*"])
    assert outer == ["embedding.weight"] and set(inner) == {"hidden.weight", "hidden.bias", "out.weight", "out.bias"}
    with pytest.raises(ValueError, match="no parameter"):
        split_parameters(model, ["*"])


def test_first_order_inner_step_is_a_manual_sgd_step(model):
    maml = MAML(model, mse, inner_lr=0.1, first_order=True, outer_only=["embedding*"])
    task = _task(1)
    adapted = maml.adapt(task.support)
    loss = mse(model, dict(model.named_parameters()), task.support)
    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    for (name, p), g in zip(model.named_parameters(), grads, strict=True):
        if name.startswith("embedding"):
            assert adapted[name] is p  # outer-only: untouched, the very same tensor
        else:
            assert torch.allclose(adapted[name], p - 0.1 * g)
    # the module itself is never modified in place
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), Tiny().double().parameters(), strict=True)) is False
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    maml.adapt(task.support)
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_k_steps_and_only_inner_parameters_change(model):
    maml = MAML(model, mse, inner_lr=0.05, inner_steps=3, outer_only=["embedding*", "out.bias"])
    adapted = maml.adapt(_task(2).support)
    params = dict(model.named_parameters())
    for name in ("embedding.weight", "out.bias"):
        assert torch.equal(adapted[name], params[name])
    for name in ("hidden.weight", "hidden.bias", "out.weight"):
        assert not torch.equal(adapted[name], params[name])


@pytest.mark.parametrize("support_term", [True, False])
def test_second_order_meta_gradient_matches_finite_differences(model, support_term):
    maml = MAML(model, mse, inner_lr=0.3, inner_steps=2, include_support_loss=support_term, outer_only=["embedding*"])
    task = _task(3)
    loss, _ = maml.task_loss(task)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    eps = 1e-6
    for (name, p), g in zip(model.named_parameters(), grads, strict=True):
        flat = p.detach().view(-1)
        for i in range(0, flat.numel(), max(1, flat.numel() // 4)):  # a few coordinates per tensor
            old = flat[i].item()
            with torch.no_grad():
                flat[i] = old + eps
            up = maml.task_loss(task)[0].item()
            with torch.no_grad():
                flat[i] = old - eps
            down = maml.task_loss(task)[0].item()
            with torch.no_grad():
                flat[i] = old
            assert g.view(-1)[i].item() == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-7), name


def test_first_order_drops_the_second_order_term(model):
    task = _task(4)
    second = torch.autograd.grad(MAML(model, mse, 0.3, outer_only=["embedding*"]).task_loss(task)[0],
                                 list(model.parameters()))
    first = torch.autograd.grad(MAML(model, mse, 0.3, first_order=True, outer_only=["embedding*"]).task_loss(task)[0],
                                list(model.parameters()))
    assert any(not torch.allclose(a, b) for a, b in zip(first, second, strict=True))


def _related_task(seed):
    """Tasks share structure: y = a_task · base[idx], so what is learned transfers across users."""
    base = torch.tensor([1.0, -1.0, 0.5, 2.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    a = 1.0 + torch.rand(1, generator=g, dtype=torch.float64)
    s, q = torch.randint(0, 4, (8,), generator=g), torch.randint(0, 4, (8,), generator=g)
    return MetaTask(seed, (s, a * base[s]), (q, a * base[q]))


def test_meta_training_lowers_the_adapted_query_loss(model):
    maml = MAML(model, mse, inner_lr=0.1, outer_only=["embedding*"])
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    tasks = [_related_task(s) for s in range(8)]
    before = sum(maml.task_loss(t)[1]["query_loss"] for t in tasks)
    for _ in range(60):
        stats = meta_step(maml, tasks, opt, grad_clip=1.0)
    assert stats["tasks"] == 8
    assert sum(maml.task_loss(t)[1]["query_loss"] for t in tasks) < 0.7 * before
