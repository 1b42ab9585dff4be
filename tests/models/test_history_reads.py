"""The history reads of the recommender (ccrs/nn/history_encoder.py, Eqs. H1–H4) and kbrd_history."""

from dataclasses import replace

import pytest
import torch

from ccrs.config import RecommenderConfig, load_config
from ccrs.data.dataset import PreparedDataset
from ccrs.data.rec_examples import KnowledgeGraph, rec_parts
from ccrs.models import build_recommender

READS = {"user": {"history_user": True}, "intent": {"history_intent": True}, "items": {"history_items": True},
         "all": {"history_user": True, "history_intent": True, "history_items": True}}


@pytest.fixture(scope="module")
def data(synth_prepared):
    ds = PreparedDataset.open(synth_prepared)
    kg = KnowledgeGraph.from_dataset(ds)
    parts, users = rec_parts(ds, "user", 0, 64, kg)
    test = parts["test"]
    return kg, parts, users, test.batch(torch.arange(min(len(test), 24)))


def _model(kg, users, parts, seed=0, **kw):
    torch.manual_seed(seed)
    return build_recommender(RecommenderConfig(entity_dim=16, user_dim=8, n_heads=2, **kw), kg, len(users), parts["train"])


@pytest.mark.parametrize("read", list(READS))
def test_a_fresh_history_read_scores_exactly_as_the_papers_model(data, read):
    """Every output map starts at zero: switching a read on changes nothing until it is trained."""
    kg, parts, users, batch = data
    paper = _model(kg, users, parts).eval()
    with_history = _model(kg, users, parts, **READS[read]).eval()
    missing, unexpected = with_history.load_state_dict(paper.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("history_encoder.") for k in missing)
    assert torch.allclose(paper(batch), with_history(batch), atol=1e-6)


@pytest.mark.parametrize("read", list(READS))
def test_each_read_learns_from_the_history_and_backpropagates(data, read):
    kg, parts, users, batch = data
    model = _model(kg, users, parts, **READS[read])
    for p in model.history_encoder.parameters():  # leave the zero start, as training does
        torch.nn.init.normal_(p, std=0.3)
    model.eval()
    emptied = replace(batch, history_mask=torch.zeros_like(batch.history_mask))
    assert not torch.allclose(model(batch), model(emptied), atol=1e-5)
    model.train()
    model.loss(batch).backward()
    grads = [p.grad for p in model.history_encoder.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_the_copy_term_moves_only_movies_of_the_history(data):
    kg, parts, users, batch = data
    model = _model(kg, users, parts, history_items=True).eval()
    with torch.no_grad():
        model.history_encoder.item_out.bias.fill_(5.0)
    base = _model(kg, users, parts).eval()
    base.load_state_dict(model.state_dict(), strict=False)
    diff = model(batch) - base(batch)
    e2i = kg.entity_to_item()
    for b in range(batch.labels.numel()):
        hist = batch.history[b][batch.history_mask[b]]
        items = e2i[hist][e2i[hist] >= 0]
        expected = torch.zeros(kg.num_items)
        expected[items] = 5.0
        assert torch.allclose(diff[b], expected, atol=1e-4)


def test_without_a_user_table_known_and_unknown_users_are_treated_alike(data):
    kg, parts, users, batch = data
    model = _model(kg, users, parts, user_table=False, history_user=True).eval()
    stranger = replace(batch, users=torch.zeros_like(batch.users))
    assert torch.allclose(model(batch), model(stranger))
    # no per-user state: one row (the cold start), whatever the user count; an older checkpoint that
    # kept one never-read row per user still loads
    assert model.user_embedding.weight.size(0) == 1
    old = dict(model.state_dict())
    old["user_embedding.weight"] = torch.cat([old["user_embedding.weight"], torch.randn(len(users), 8)])
    model.load_state_dict(old)
    assert torch.allclose(model(batch), model(stranger))
    assert model.relation_weights(batch.users).shape[0] == batch.users.numel()


def test_a_batch_without_history_scores_as_an_empty_history(data):
    """Serving and older callers build batches with no history fields at all."""
    kg, parts, users, batch = data
    model = _model(kg, users, parts, **READS["all"])
    for p in model.history_encoder.parameters():
        torch.nn.init.normal_(p, std=0.3)
    model.eval()
    bare = replace(batch, history=None, history_age=None, history_flag=None, history_count=None, history_mask=None)
    emptied = replace(batch, history_mask=torch.zeros_like(batch.history_mask))
    assert torch.allclose(model(bare), model(emptied), atol=1e-5)


def test_kbrd_history_reads_the_history_as_earlier_mentions(data):
    kg, parts, users, batch = data
    cfg = load_config(None, ["recommender.entity_dim=16", "recommender.n_heads=2"])
    preset = build_recommender(load_config(None, ["recommender.variant=kbrd", "recommender.history_in_context=true",
                                                  "recommender.entity_dim=16"]).recommender, kg, len(users))
    assert cfg.recommender.history_in_context is False
    seen = preset.with_history_context(batch)
    for b in range(batch.labels.numel()):
        hist = batch.history[b][batch.history_mask[b]].tolist()
        ctx = batch.context[b][batch.context_mask[b]].tolist()
        assert seen.context[b][seen.context_mask[b]].tolist() == hist + ctx
    plain = build_recommender(RecommenderConfig(variant="kbrd", entity_dim=16), kg, len(users))
    plain.load_state_dict(preset.state_dict())
    assert not torch.allclose(plain.eval()(batch), preset.eval()(batch))


def test_history_popularity_ranks_the_history_first_newest_first(data):
    kg, parts, users, batch = data
    model = build_recommender(RecommenderConfig(variant="history_popularity"), kg, len(users), parts["train"])
    scores = model(batch)
    e2i = kg.entity_to_item()
    for b in range(batch.labels.numel()):
        m = batch.history_mask[b]
        items, age = e2i[batch.history[b][m]], batch.history_age[b][m]
        items, age = items[items >= 0], age[items >= 0]
        if items.numel() == 0:
            continue
        top = scores[b].argsort(descending=True)[: items.numel()]
        assert set(top.tolist()) == set(items.tolist())
        ranked_age = [int(age[items.tolist().index(i)]) for i in top.tolist()]
        assert ranked_age == sorted(ranked_age)


def test_shared_neighbourhoods_with_a_history_user_equal_the_per_sample_path(data):
    """With ``history_user`` two samples of one user share encoder nodes only when their histories agree."""
    kg, parts, users, batch = data
    shared = _model(kg, users, parts, history_user=True)
    for p in shared.history_encoder.parameters():
        torch.nn.init.normal_(p, std=0.3)
    per_sample = _model(kg, users, parts, history_user=True, share_user_neighbourhoods=False)
    per_sample.load_state_dict(shared.state_dict())
    assert torch.allclose(shared.eval()(batch), per_sample.eval()(batch), atol=1e-5)


def test_kbrd_has_no_user_term_to_read_a_history_into():
    from ccrs.config import ConfigError

    with pytest.raises(ConfigError, match="history_user"):
        RecommenderConfig(variant="kbrd", history_user=True)
