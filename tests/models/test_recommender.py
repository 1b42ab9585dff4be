import pytest
import torch

from ccrs.config import RecommenderConfig
from ccrs.data.dataset import PreparedDataset
from ccrs.data.rec_examples import COLD_START_USER, KnowledgeGraph, RecBatch, rec_parts
from ccrs.models import PopularityRecommender, Recommender, RepeatContextRecommender, build_recommender


@pytest.fixture(scope="module")
def data(synth_prepared):
    ds = PreparedDataset.open(synth_prepared)
    kg = KnowledgeGraph.from_dataset(ds)
    parts, users = rec_parts(ds, "user", 0, 64, kg)
    return kg, parts, users


def _batch(parts, n=16):
    train = parts["train"]
    with_context = train.subset(train._offsets[1:] > train._offsets[:-1])
    return train.batch(with_context[:n])


@pytest.mark.parametrize("variant", ["ccrs", "ccrs_no_turn", "kbrd", "popularity", "repeat_context"])
def test_every_variant_scores_all_items(data, variant):
    kg, parts, users = data
    model = build_recommender(RecommenderConfig(variant=variant, entity_dim=16, user_dim=8, n_heads=2), kg,
                              len(users), parts["train"])
    batch = _batch(parts)
    scores = model(batch)
    assert scores.shape == (16, kg.num_items) and torch.isfinite(scores).all()
    if variant in ("ccrs", "ccrs_no_turn", "kbrd"):
        loss = model.loss(batch)
        loss.backward()
        assert model.entity_embedding.weight.grad is not None


@pytest.mark.parametrize("variant", ["ccrs", "kbrd"])
def test_scores_with_intention_is_forward_and_user_intention_in_one_pass(data, variant):
    kg, parts, users = data
    cfg = RecommenderConfig(variant=variant, entity_dim=16, user_dim=8, n_heads=2, score_projection=True)
    model = build_recommender(cfg, kg, len(users), parts["train"]).eval()
    batch = _batch(parts)
    scores, p_u = model.scores_with_intention(batch)
    assert torch.allclose(scores, model(batch)) and torch.allclose(p_u, model.user_intention(batch))


@pytest.mark.parametrize("layers", [1, 2])
def test_kbrd_item_encoding_equals_a_full_graph_rgcn_pass(data, layers):
    kg, parts, users = data
    torch.manual_seed(0)
    model = Recommender(RecommenderConfig(variant="kbrd", entity_dim=16, n_layers=layers), kg, len(users)).eval()
    full = model._rgcn(model.entity_embedding.weight, kg.edge_index, kg.edge_type)  # (N, d) whole KG
    assert torch.allclose(model.item_table(), full[kg.item_entity_ids], atol=1e-5)
    batch = _batch(parts, 8)
    h_u, _ = model.encode_context(batch)
    assert torch.allclose(h_u[batch.context_mask], full[batch.context[batch.context_mask]], atol=1e-5)


def test_ccrs_intention_depends_on_the_user_and_kbrd_does_not(data):
    kg, parts, users = data
    torch.manual_seed(0)
    batch = _batch(parts, 4)
    other = RecBatch(**{**batch.__dict__, "users": torch.full_like(batch.users, COLD_START_USER)})
    for variant, differs in [("ccrs", True), ("kbrd", False)]:
        model = Recommender(RecommenderConfig(variant=variant, entity_dim=16, user_dim=8), kg, len(users)).eval()
        with torch.no_grad():
            same = torch.allclose(model.user_intention(batch), model.user_intention(other))
        assert same != differs, variant


def test_ccrs_no_turn_ignores_when_entities_were_mentioned(data):
    kg, parts, users = data
    batch = _batch(parts, 4)
    shifted = RecBatch(**{**batch.__dict__, "context_turns": torch.zeros_like(batch.context_turns)})
    for variant, changes in [("ccrs", True), ("ccrs_no_turn", False)]:
        torch.manual_seed(0)
        model = Recommender(RecommenderConfig(variant=variant, entity_dim=16, user_dim=8), kg, len(users)).eval()
        with torch.no_grad():
            assert torch.allclose(model(batch), model(shifted)) != changes, variant


def test_empty_context_scores_are_the_item_bias(data):
    kg, parts, users = data
    model = Recommender(RecommenderConfig(entity_dim=16, user_dim=8), kg, len(users)).eval()
    with torch.no_grad():
        model.item_bias.copy_(torch.randn(kg.num_items))
    batch = _batch(parts, 3)
    empty = RecBatch(**{**batch.__dict__, "context_mask": torch.zeros_like(batch.context_mask)})
    scores = model(empty)
    assert torch.allclose(scores, model.item_bias.expand_as(scores))


def test_user_dropout_maps_to_the_cold_start_row(data):
    kg, parts, users = data
    model = Recommender(RecommenderConfig(entity_dim=16, user_dim=8, user_dropout=0.5), kg, len(users))
    batch = _batch(parts, 16)
    torch.manual_seed(1)
    rows = model._user_rows(batch)
    cold = rows == COLD_START_USER
    assert 0 < cold.sum() < 16 and torch.equal(rows[~cold], batch.users[~cold])
    model.eval()
    assert not (model._user_rows(batch) == COLD_START_USER).any()


def _toy_batch(context, turns, labels):
    context = torch.tensor(context)
    return RecBatch(
        sample_ids=torch.arange(len(labels)), labels=torch.tensor(labels), users=torch.zeros(len(labels), dtype=torch.long),
        context=context, context_turns=torch.tensor(turns), context_mask=context >= 0,
        current_turn=torch.full((len(labels),), 9), label_in_context=torch.zeros(len(labels), dtype=torch.bool),
    )


def test_popularity_and_repeat_context_rankings():
    # 5 entities; entities 1..4 are items 0..3 (entity 0 is not an item).
    e2i = torch.tensor([-1, 0, 1, 2, 3])
    pop = PopularityRecommender(4).fit(torch.tensor([2, 2, 2, 0, 0, 3]))
    assert pop(_toy_batch([[0]], [[0]], [0]))[0].argsort(descending=True).tolist() == [2, 0, 3, 1]
    rep = RepeatContextRecommender(4, e2i).fit(torch.tensor([2, 2, 2, 0, 0, 3]))
    # mentions: entity 4 (item 3) at turn 1, entity 0 (not an item) at turn 2, entity 2 (item 1) at turn 3
    scores = rep(_toy_batch([[4, 0, 2]], [[1, 2, 3]], [0]))[0]
    assert scores.argsort(descending=True).tolist() == [1, 3, 2, 0]  # recent mention, older mention, popularity


@pytest.mark.parametrize("layers", [1, 2])
def test_ccrs_item_table_is_the_population_users_full_graph_encoding(data, layers):
    kg, parts, users = data
    torch.manual_seed(0)
    cfg = RecommenderConfig(variant="ccrs", entity_dim=16, user_dim=8, n_layers=layers, item_table="encoder")
    model = Recommender(cfg, kg, len(users)).eval()
    full = model.entity_embedding.weight
    cold = model.user_embedding.weight[COLD_START_USER : COLD_START_USER + 1]
    for conv in model.encoder:  # the whole KG, every edge with the cold-start user
        full = conv(full, kg.edge_index, kg.edge_type, cold, torch.zeros_like(kg.edge_type))
    assert torch.allclose(model.item_table(), full[kg.item_entity_ids], atol=1e-5)


def test_score_projection_option_maps_p_u_before_scoring(data):
    kg, parts, users = data
    torch.manual_seed(0)
    model = Recommender(RecommenderConfig(entity_dim=16, user_dim=8, score_projection=True), kg, len(users)).eval()
    batch = _batch(parts, 4)
    with torch.no_grad():
        plain = model(batch)
        model.score_proj.weight.copy_(torch.eye(16))  # identity projection → the unprojected scores
        assert not torch.allclose(plain, model(batch))
        expected = model.user_intention(batch) @ model.item_table().T + model.item_bias
        assert torch.allclose(model(batch), expected, atol=1e-5)


def test_gamma_penalty_is_added_to_the_training_loss_only_when_set(data):
    kg, parts, users = data
    batch = _batch(parts, 16)
    torch.manual_seed(0)
    plain = Recommender(RecommenderConfig(entity_dim=16, user_dim=8, n_heads=2, user_dropout=0.0), kg, len(users))
    torch.manual_seed(0)
    penalised = Recommender(RecommenderConfig(entity_dim=16, user_dim=8, n_heads=2, user_dropout=0.0,
                                              gamma_penalty=0.5), kg, len(users))
    plain.eval(), penalised.eval()
    penalty = penalised.gamma_penalty(batch.users)
    assert penalty.item() > 0
    assert torch.allclose(penalised.loss(batch), plain.loss(batch) + 0.5 * penalty)
    assert torch.equal(penalised(batch), plain(batch))  # scores are unchanged: only the loss differs


def _user_batch(parts, n_users=4, per_user=5):
    """Samples of a few users, several each (the case sharing is for)."""
    train = parts["train"]
    with_context = train.subset(train._offsets[1:] > train._offsets[:-1])
    users = train.users[with_context]
    picked = []
    for u in torch.unique(users).tolist():
        idx = with_context[users == u][:per_user]
        if idx.numel() >= 2:
            picked.append(idx)
        if len(picked) == n_users:
            break
    return train.batch(torch.cat(picked))


@pytest.mark.parametrize("variant", ["ccrs", "ccrs_no_turn", "kbrd"])
@pytest.mark.parametrize("layers", [1, 2])
def test_shared_user_neighbourhoods_give_the_per_sample_outputs(data, variant, layers):
    kg, parts, users = data
    batch = _user_batch(parts)
    out, nodes = {}, {}
    for share in (False, True):
        torch.manual_seed(0)
        model = Recommender(RecommenderConfig(variant=variant, entity_dim=16, user_dim=8, n_heads=2, n_layers=layers,
                                              item_table="embedding", share_user_neighbourhoods=share),
                            kg, len(users)).eval()
        out[share] = model(batch)
        nodes[share] = model.neighbourhoods(batch).node_ids.numel()
    assert torch.allclose(out[True], out[False], atol=1e-5)
    assert nodes[True] < nodes[False]  # each user's entities encoded once, not once per sample


def test_shared_neighbourhoods_follow_user_dropout_in_training(data):
    kg, parts, users = data
    batch = _user_batch(parts)
    grads = {}
    for share in (False, True):
        torch.manual_seed(0)
        model = Recommender(RecommenderConfig(entity_dim=16, user_dim=8, n_heads=2, user_dropout=0.5, dropout=0.0,
                                              share_user_neighbourhoods=share), kg, len(users)).train()
        torch.manual_seed(3)
        loss = torch.nn.functional.cross_entropy(model(batch), batch.labels)
        loss.backward()
        grads[share] = (loss.detach(), model.user_embedding.weight.grad.clone())
    assert torch.allclose(grads[True][0], grads[False][0], atol=1e-5)
    assert torch.allclose(grads[True][1], grads[False][1], atol=1e-5)


def test_a_batch_keeps_its_neighbourhoods_for_this_model_only(data):
    kg, parts, users = data
    batch = _user_batch(parts)
    model = Recommender(RecommenderConfig(entity_dim=16, user_dim=8, n_heads=2), kg, len(users)).eval()
    first = model(batch)
    nb = batch._neighbourhoods[2]
    assert torch.equal(model(batch), first) and batch._neighbourhoods[2] is nb  # reused, same scores
    other = Recommender(RecommenderConfig(entity_dim=16, user_dim=8, n_heads=2, share_user_neighbourhoods=False),
                        kg, len(users)).eval()
    other(batch)
    assert batch._neighbourhoods[2] is not nb  # another model (another path) builds its own


def test_fan_out_cap_bounds_the_neighbourhoods_the_model_encodes(data):
    kg, parts, users = data
    batch = _batch(parts)
    full = Recommender(RecommenderConfig(entity_dim=16, user_dim=8, n_heads=2, n_layers=2), kg, len(users))
    capped = Recommender(RecommenderConfig(entity_dim=16, user_dim=8, n_heads=2, n_layers=2, max_in_edges=2), kg,
                         len(users))
    nb_full, nb_cap = full.neighbourhoods(batch), capped.neighbourhoods(batch)
    assert nb_cap.edge_index.size(1) < nb_full.edge_index.size(1)
    assert torch.bincount(nb_cap.edge_index[1]).max() <= 2
    assert capped(batch).shape == full(batch).shape
