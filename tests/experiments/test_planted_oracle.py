"""The Bayes rows of the planted benchmark (:mod:`ccrs.experiments.planted_oracle`) on tiny planted data."""

import numpy as np
import pytest
import torch

from ccrs.data.dataset import PreparedDataset
from ccrs.data.rec_examples import rec_parts
from ccrs.eval.rec_evaluator import RecPredictions
from ccrs.eval.rec_metrics import metrics_from_ranks
from ccrs.experiments.planted import PlantedSpec, prepare_planted
from ccrs.experiments.planted_oracle import PICKS, RELATIONS, PlantedModel, bayes_rows, relation_posteriors


def _data(taste, tmp_path_factory):
    spec = PlantedSpec(taste=taste, n_users=60, conversations_per_user=6)
    prepared = prepare_planted(tmp_path_factory.mktemp(taste), spec)
    parts, _ = rec_parts(PreparedDataset.open(prepared), "user", spec.fold)
    ex = parts["test"]
    zeros = torch.zeros(len(ex), dtype=torch.long)
    reference = RecPredictions(ex.sample_ids, ex.conversation_ids, ex.user_ids, ex.labels, ex.label_entities,
                               zeros, ex.label_in_context, zeros[:, None])
    return taste, prepared, reference


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return _data("planted", tmp_path_factory)


@pytest.fixture(scope="module", params=["planted", "control"])
def data(request, tmp_path_factory, planted):
    return planted if request.param == "planted" else _data("control", tmp_path_factory)


def _planted_relation(user_id: int) -> str:
    """The relation ccrs.data.synth gives seeker ``user_id`` (users take the relations in turn)."""
    return RELATIONS[(user_id - (2000 if user_id >= 2000 else 1)) % len(RELATIONS)]


def test_pick_probabilities_sum_to_the_number_of_picks_and_skip_the_seed(data):
    _, prepared, reference = data
    model = PlantedModel(PreparedDataset.open(prepared))
    seed_item = int(reference.labels[0])
    seed = int(model_entity(model, seed_item))
    for r in RELATIONS:
        p = model.pick_probabilities(seed, r)
        assert p.shape == (model.num_items,) and p[seed_item] == 0
        assert p.sum() == pytest.approx(PICKS) or p.sum() == 0  # no value with a pool of 3: no mass


def model_entity(model: PlantedModel, item: int) -> int:
    return next(e for e, i in model.entity_to_item.items() if i == item)


def test_support_posterior_finds_each_planted_users_relation(planted):
    _, prepared, reference = planted
    ds = PreparedDataset.open(prepared)
    post = relation_posteriors(ds, PlantedModel(ds), set(reference.user_ids))
    found = [RELATIONS[int(np.argmax(p))] == _planted_relation(u) for u, p in post.items()]
    assert len(found) > 5 and np.mean(found) > 0.9


def test_knowing_the_user_helps_only_where_a_taste_was_planted(data):
    taste, prepared, reference = data
    rows, info = bayes_rows(prepared, reference)
    ndcg = {k: metrics_from_ranks(v.ranks)["ndcg@10"] for k, v in rows.items()}
    assert torch.equal(rows["bayes_support"].sample_ids, reference.sample_ids)
    if taste == "planted":
        assert ndcg["bayes_support"] > 1.3 * ndcg["bayes_agnostic"]
        assert info["posterior_top_mean"] > 0.9
    else:  # the relation is drawn per conversation: trusting the support conversations costs
        assert ndcg["bayes_agnostic"] > ndcg["bayes_support"]


def test_not_planted_data_is_refused(tmp_path):
    from ccrs.experiments.planted_oracle import PlantedModel as Model

    class Fake:
        def table(self, name):
            import pyarrow as pa
            return pa.table({"id": [0], "name": ["subject"]})

    with pytest.raises(ValueError, match="not planted data"):
        Model(Fake())


def _own_relation_share(prepared: str) -> float:
    """Share of rec samples whose label shares the user's planted relation with the seed movie."""
    ds = PreparedDataset.open(prepared)
    model = PlantedModel(ds)
    hits = [model.pick_probabilities(s["context_entity_ids"][-1], _planted_relation(s["user_id"]))[
        model.entity_to_item[s["label"]]] > 0 for s in ds.table("rec_samples").to_pylist()]
    return float(np.mean(hits))


def test_taste_strength_weakens_the_planted_signal(tmp_path):
    from ccrs.data.synth import SynthSpec

    full = prepare_planted(tmp_path / "s1", PlantedSpec(n_users=30, conversations_per_user=6))
    half = prepare_planted(tmp_path / "s05", PlantedSpec(n_users=30, conversations_per_user=6, taste_strength=0.5))
    assert _own_relation_share(full) == 1.0
    assert 0.5 < _own_relation_share(half) < 0.9  # s + (1 - s)/3 plus chance overlaps of the relations
    with pytest.raises(ValueError, match="taste_strength"):
        SynthSpec(taste="planted", taste_strength=1.5)
