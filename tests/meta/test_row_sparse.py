"""The row-sparse outer update of the embedding tables against the dense path (ccrs/meta/row_sparse.py)."""

import copy

import pytest
import torch

from ccrs.config import load_config
from ccrs.data.rec_examples import KnowledgeGraph, RecBatch
from ccrs.meta.maml import MAML, MetaTask, meta_step
from ccrs.meta.rec_tasks import rec_loss
from ccrs.meta.row_sparse import RowSparseUpdate
from ccrs.models.recommender import Recommender

N, ITEMS, USERS = 60, 12, 4


def _kg() -> KnowledgeGraph:
    g = torch.Generator().manual_seed(0)
    head, tail = torch.randint(0, N, (2, 40), generator=g)
    rel = torch.randint(0, 3, (40,), generator=g)
    loops = torch.arange(N)
    ei = torch.stack([torch.cat([head, tail, loops]), torch.cat([tail, head, loops])])
    et = torch.cat([rel, rel, torch.full((N,), 3)])
    return KnowledgeGraph(ei, et, N, 4, torch.arange(0, 2 * ITEMS, 2), [""] * N)


def _batch(g, user, low, s=3, m=4) -> RecBatch:
    # step s mentions entities low..low+9 only: the steps touch different rows
    ctx = torch.randint(low, low + 10, (s, m), generator=g)
    return RecBatch(torch.arange(s), torch.randint(0, ITEMS, (s,), generator=g), torch.full((s,), user), ctx,
                    torch.arange(m).repeat(s, 1), torch.ones(s, m, dtype=torch.bool), torch.full((s,), m),
                    torch.zeros(s, dtype=torch.bool))


def _tasks(step: int) -> list[MetaTask]:
    g = torch.Generator().manual_seed(100 + step)
    low = 24 + 10 * (step % 3)
    return [MetaTask(u, _batch(g, u, low), _batch(g, u, low)) for u in range(1, USERS + 1)]


def _train(mode: str, optimizer: str, steps: int, clip: float = 0.1):
    torch.manual_seed(0)
    cfg = load_config(None, ["recommender.user_dropout=0", "recommender.dropout=0"])
    model = Recommender(cfg.recommender, _kg(), num_users=USERS).double()
    maml = MAML.from_config(model, rec_loss, cfg.rec_meta)
    opt = (torch.optim.SGD(model.parameters(), lr=0.5) if optimizer == "sgd"
           else torch.optim.Adam(model.parameters(), lr=0.01))
    rows = RowSparseUpdate(model, opt, maml.inner_names) if mode == "row_sparse" else None
    snapshots = []
    for s in range(steps):
        meta_step(maml, _tasks(s), opt, clip, rows=rows)
        snapshots.append(copy.deepcopy(model.state_dict()))
    return model, snapshots, rows


def test_sgd_row_sparse_equals_dense_including_the_clip():
    _, dense, _ = _train("dense", "sgd", 3)
    _, sparse, rows = _train("row_sparse", "sgd", 3)
    assert {n for n, _ in rows.tables} == {"entity_embedding.weight", "user_embedding.weight"}
    for a, b in zip(dense, sparse, strict=True):
        for k in a:
            torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=0, msg=k)
    # the table really moved (the comparison is not trivially equal)
    assert not torch.equal(dense[0]["entity_embedding.weight"], dense[2]["entity_embedding.weight"])


def test_lazy_adam_is_adam_on_the_rows_a_step_touches():
    """Step 1 is identical; at step 2 dense Adam also moves the rows touched at step 1 only (their
    momentum), lazy Adam leaves them; every row touched at step 2 is identical (same moment history)."""
    model, dense, _ = _train("dense", "adam", 2)
    _, sparse, _ = _train("row_sparse", "adam", 2)
    for k in dense[0]:
        torch.testing.assert_close(sparse[0][k], dense[0][k], atol=1e-6, rtol=0, msg=k)
    # which entity rows step 2 touches: mentions and items of its tasks, and their 1-hop in-neighbours
    touched2 = _touched(model, _tasks(1))
    touched1 = _touched(model, _tasks(0))
    w_d, w_s, w_s1 = (s["entity_embedding.weight"] for s in (dense[1], sparse[1], sparse[0]))
    torch.testing.assert_close(w_s[touched2], w_d[touched2], atol=1e-6, rtol=0)
    only1 = touched1 & ~touched2
    assert only1.any()
    torch.testing.assert_close(w_s[only1], w_s1[only1], atol=0, rtol=0)  # lazy: did not move
    assert (w_d[only1] - w_s1[only1]).abs().max() > 1e-4  # dense: moved on momentum
    never = ~(touched1 | touched2)
    assert never.any()
    torch.testing.assert_close(w_d[never], w_s[never], atol=0, rtol=0)


def _touched(model: Recommender, tasks: list[MetaTask]) -> torch.Tensor:
    mask = torch.zeros(N, dtype=torch.bool)
    mask[model.item_entity_ids] = True
    for t in tasks:
        for b in (t.support, t.query):
            mask[model.neighbourhoods(b).node_ids] = True
    return mask


def test_a_table_the_inner_loop_adapts_keeps_the_dense_path():
    cfg = load_config(None, ["rec_meta.inner_only=[user_embedding*]", "rec_meta.outer_only=[entity_embedding*]"])
    model = Recommender(cfg.recommender, _kg(), num_users=USERS)
    maml = MAML.from_config(model, rec_loss, cfg.rec_meta)
    rows = RowSparseUpdate(model, torch.optim.Adam(model.parameters()), maml.inner_names)
    assert [n for n, _ in rows.tables] == ["entity_embedding.weight"]
    meta_step(maml, _tasks(0), torch.optim.Adam(model.parameters()), 0.1, rows=rows)
    assert model.user_embedding.weight.grad is not None and model.entity_embedding.weight.grad is None


def test_unsupported_optimizers_are_refused():
    model = Recommender(load_config(None, []).recommender, _kg(), num_users=USERS)
    with pytest.raises(ValueError, match="plain SGD"):
        RowSparseUpdate(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), [])
    with pytest.raises(ValueError, match="no row-sparse update"):
        RowSparseUpdate(model, torch.optim.RMSprop(model.parameters()), [])
