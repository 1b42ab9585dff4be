"""The recommender service on synthetic data: free text in, named movies out; cold start; adaptation."""

import pytest
import torch

from ccrs.checkpoint import CheckpointError
from ccrs.data.dataset import PreparedDataset
from ccrs.serving.recommender_service import Query, RecommenderService


@pytest.fixture(scope="module")
def svc(synth_prepared, synth_rec_ckpt):
    return RecommenderService.load(synth_rec_ckpt, synth_prepared, cache_size=2)


def _movie_names(prepared, n=3):
    ents = PreparedDataset.open(prepared).table("entities").to_pylist()
    return [e["name"] for e in ents if e["is_item"]][:n]


def test_free_text_is_linked_and_named_movies_come_back(svc, synth_prepared):
    a, b, _ = _movie_names(synth_prepared)
    turns = [("seeker", f"I loved {a} and {b}!"), ("recommender", "nice"), ("seeker", f"more like {a} please")]
    ents, last = svc.link(turns)
    assert len(ents) >= 2 and last[0] == 2  # a was mentioned last in turn 2
    (rec,) = svc.recommend([Query(user_id=None, turns=turns, k=5)])
    assert len(rec.items) == 5 and not rec.user_known and not rec.adapted
    assert [s for _, _, s in rec.items] == sorted((s for _, _, s in rec.items), reverse=True)
    assert all(isinstance(name, str) and name for _, name, _ in rec.items)
    assert len(rec.mentioned_items) >= 2 and rec.p_u.shape == (svc.cfg.recommender.entity_dim,)
    assert rec.names == {}  # names of the whole top-50 only when asked (the generator's slots)
    (named,) = svc.recommend([Query(user_id=None, turns=turns, k=5, ranked_names=True)])
    assert named.ranked == rec.ranked and set(named.names) == set(rec.ranked)
    assert [named.names[i] for i, _, _ in rec.items] == [name for _, name, _ in rec.items]
    # linking done by the caller (the Serve replica links while it looks users up) gives the same answer
    (again,) = svc.recommend([Query(user_id=None, turns=turns, k=5)], states=[svc.dialogue_state(turns)])
    assert again.items == rec.items


def test_known_users_differ_from_cold_start_and_unknown_ids_are_cold_start(svc, synth_prepared):
    a, _, _ = _movie_names(synth_prepared)
    turns = [("seeker", f"I like {a}")]
    known = next(iter(svc.user_index))
    out = svc.recommend([Query(known, turns), Query(None, turns), Query(10**9, turns)])
    assert out[0].user_known and not out[1].user_known and not out[2].user_known
    assert [i for i, *_ in out[1].items] == [i for i, *_ in out[2].items]
    assert not torch.allclose(out[0].p_u, out[1].p_u)


def test_adaptation_changes_that_user_only_and_the_cache_is_bounded(svc, synth_prepared):
    a, b, c = _movie_names(synth_prepared)
    users = list(svc.user_index)[:4]
    turns = [("seeker", f"I like {a}")]
    before = svc.recommend([Query(u, turns) for u in users[:2]])
    past = [[("seeker", f"I enjoyed {a}"), ("recommender", f"then watch {b}"), ("recommender", f"or {c}")]] * 3
    params, _ = svc.adaptation(users[0], past)
    assert sorted(params) == sorted(svc.maml.inner_names)  # only the adapted tensors, not a model copy
    assert svc.adapt(users[0], past) == 6
    after = svc.recommend([Query(u, turns) for u in users[:2]])
    assert after[0].adapted and not after[1].adapted
    shift = (after[0].p_u - before[0].p_u).abs().max().item()
    assert shift > 1e-5, shift  # the adapted user's intention moved, far beyond float noise (~1e-7)
    # the other user: same ranking, same scores (up to float noise from a different batch shape)
    assert [i for i, *_ in after[1].items] == [i for i, *_ in before[1].items]
    assert [s for *_, s in after[1].items] == pytest.approx([s for *_, s in before[1].items], abs=1e-5)
    for u in users[1:4]:
        svc.adapt(u, past)
    assert svc.cache_len == 2  # LRU: the oldest adaptations were dropped
    assert not svc.recommend([Query(users[0], turns)])[0].adapted
    with pytest.raises(ValueError, match="no recommendation sample"):
        svc.adapt(users[0], [[("seeker", "hello"), ("recommender", "hi there")]])


def test_missing_or_corrupt_checkpoint_is_a_clear_error(synth_prepared, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint there"):
        RecommenderService.load(str(tmp_path / "nope.pt"), synth_prepared)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="not a readable"):
        RecommenderService.load(str(bad), synth_prepared)


def test_relation_weights_on_request_and_mentioned_movies_are_not_recommended(svc, synth_prepared):
    a, _, _ = _movie_names(synth_prepared)
    turns = [("seeker", f"I like {a}")]
    known = next(iter(svc.user_index))
    plain, with_att, keep = svc.recommend([Query(known, turns), Query(known, turns, attention=True),
                                           Query(known, turns, k=50, exclude_mentioned=False)])
    assert plain.attention is None
    assert set(with_att.attention) == set(svc.relation_names) and len(svc.relation_names) == svc.kg.num_relations
    assert plain.mentioned_items and plain.mentioned_items[0] not in plain.ranked
    assert plain.mentioned_items[0] in keep.ranked  # the mentioned movie scores high when not excluded


def test_a_proposal_turned_down_is_not_proposed_again_and_leaves_the_context(svc, synth_prepared):
    a, _, _ = _movie_names(synth_prepared)
    opening = [("seeker", f"I loved {a}, anything similar?")]
    (first,) = svc.recommend([Query(None, opening, k=3, exclude_mentioned=False)])
    top_id, top_name, _ = first.items[0]
    proposed = [*opening, ("recommender", f"have you seen {top_name} ?")]
    for reply, turned_down in (("I've seen that one. Something newer maybe?", True), ("sounds great", False)):
        (rec,) = svc.recommend([Query(None, [*proposed, ("seeker", reply)], k=3, exclude_mentioned=False)])
        assert (top_id in rec.rejected) is turned_down
        if turned_down:
            assert top_id not in [i for i, *_ in rec.items]
            assert svc.kg.item_entity_ids[top_id].item() not in [e for e, *_ in rec.entities]


def test_entities_come_with_the_span_of_their_last_mention(svc, synth_prepared):
    a = _movie_names(synth_prepared)[0].split(" (")[0]  # the title as people type it
    turns = [("seeker", f"I like {a}"), ("seeker", f"I really liked {a}")]
    (rec,) = svc.recommend([Query(None, turns, k=3, exclude_mentioned=False)])
    (t, s, e), = [(t, s, e) for _, _, t, s, e, _ in rec.entities]
    assert t == 1 and turns[1][1][s:e] == a


def test_names_shown_to_people_are_unambiguous():
    from ccrs.inference.slots import unambiguous_names

    assert unambiguous_names(["It (2017 film)", "It (miniseries)", "Alien (1979 film)", "Heat"]) == [
        "It (2017)", "It (miniseries)", "Alien", "Heat"]


def test_a_parameter_free_baseline_serves_rankings_but_cannot_adapt(synth_prepared, tmp_path):
    from ccrs.config import load_config
    from ccrs.serving.recommender_service import NotAdaptable
    from ccrs.train.rec_trainer import train_recommender

    cfg = load_config(None, ["recommender.variant=popularity"])
    train_recommender(cfg, synth_prepared, "user", 0, str(tmp_path / "pop"), progress=False)
    pop = RecommenderService.load(str(tmp_path / "pop" / "best.pt"), synth_prepared)
    a, b, _ = _movie_names(synth_prepared)
    (rec,) = pop.recommend([Query(user_id=None, turns=[("seeker", f"I loved {a}")], k=5)])
    assert len(rec.items) == 5
    with pytest.raises(NotAdaptable, match="popularity"):
        pop.adapt(1, [[("seeker", "hi"), ("recommender", f"try {b}")]])


def test_a_history_model_reads_what_the_service_remembers_and_forgets_it(synth_prepared, tmp_path):
    """Ray-free: remembered conversations become the history a history model reads; a model without
    history ignores them; forget drops them."""
    from ccrs.checkpoint import save_checkpoint
    from ccrs.config import load_config
    from ccrs.data.rec_examples import KnowledgeGraph
    from ccrs.models.factory import build_recommender
    from ccrs.serving.user_history import history_of
    from ccrs.train.rec_trainer import checkpoint_payload

    kg = KnowledgeGraph.from_dataset(PreparedDataset.open(synth_prepared))
    cfg = load_config(None, ["recommender.entity_dim=16", "recommender.user_dim=16", "recommender.n_heads=2",
                             "recommender.history_items=true"])
    model = build_recommender(cfg.recommender, kg, 0)
    with torch.no_grad():
        model.history_encoder.item_out.bias.fill_(100.0)  # every remembered movie goes to the top
    save_checkpoint(str(tmp_path / "h.pt"), checkpoint_payload(model, cfg, {}))
    svc = RecommenderService.load(str(tmp_path / "h.pt"), synth_prepared)
    a, b, c = _movie_names(synth_prepared)
    conv = [("seeker", f"I loved {a}"), ("recommender", f"then {b}"), ("seeker", "no thanks, seen it")]
    turns = [("seeker", "anything for tonight?")]
    (before,) = svc.recommend([Query(user_id=5, turns=turns, k=3)])
    record = svc.remember(5, [conv])
    hist = history_of(record)
    liked = dict(zip(hist.entities, [f % 3 for f in hist.flag], strict=True))
    rejected_entity = [e for e in hist.entities if svc.entity_to_item[e] >= 0 and liked[e] == 0]
    assert len(rejected_entity) == 1  # b was turned down: remembered as disliked
    (after,) = svc.recommend([Query(user_id=5, turns=turns, k=3)])
    remembered_items = {int(svc.entity_to_item[e]) for e in hist.entities if svc.entity_to_item[e] >= 0}
    assert {i for i, _, _ in after.items[:2]} == remembered_items and after.history_entities == len(hist)
    (other,) = svc.recommend([Query(user_id=6, turns=turns, k=3)])
    assert other.items == before.items and other.history_entities == 0
    assert svc.forget(5) and not svc.forget(5)
    (forgotten,) = svc.recommend([Query(user_id=5, turns=turns, k=3)])
    assert forgotten.items == before.items
