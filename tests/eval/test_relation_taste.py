"""relation_taste (ccrs/eval/relation_taste.py): large where a relation taste is planted, none on the control."""

import pytest

from ccrs.data.dataset import PreparedDataset
from ccrs.eval.relation_taste import explained, relation_taste
from ccrs.experiments.planted import PlantedSpec, prepare_planted


@pytest.fixture(scope="module", params=["planted", "control"])
def data(request, tmp_path_factory):
    spec = PlantedSpec(taste=request.param, n_users=60, conversations_per_user=6)
    return request.param, PreparedDataset.open(prepare_planted(tmp_path_factory.mktemp(request.param), spec))


def test_every_planted_sample_is_explained_by_some_relation(data):
    _, ds = data
    rows, flags = explained(ds, ("director", "starring", "genre"))
    assert len(rows) > 0 and flags.shape == (len(rows), 3)
    assert flags.any(1).all()  # the generator always picks along one of the three relations


def test_support_reveals_the_relation_only_where_one_was_planted(data):
    taste, ds = data
    r = relation_taste(ds, n_resamples=500)
    assert r["users"] > 20
    if taste == "planted":
        assert r["own"] == pytest.approx(1.0) and r["own_minus_other"] > 0.3 and r["p_user"] < 0.01
    else:
        assert abs(r["own_minus_other"]) < 0.1 and r["p_user"] > 0.01


def test_unknown_relation_is_named(data):
    _, ds = data
    with pytest.raises(ValueError, match="producer"):
        relation_taste(ds, relations=("director", "producer"))
