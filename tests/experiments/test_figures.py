"""The Fig. 3 / Fig. 4 analogues on tiny synthetic data: numbers that follow from how they are built."""

import json

import numpy as np
import pytest
import torch

from ccrs.cli import main as ccrs_main
from ccrs.config import MetaConfig, RecommenderConfig
from ccrs.data.dataset import PreparedDataset
from ccrs.data.rec_examples import KnowledgeGraph, rec_parts
from ccrs.experiments import figures as F
from ccrs.meta import MAML
from ccrs.meta.rec_tasks import RecTaskSet, rec_loss
from ccrs.models import build_recommender


@pytest.fixture(scope="module")
def setup(synth_prepared):
    ds = PreparedDataset.open(synth_prepared)
    kg = KnowledgeGraph.from_dataset(ds)
    _, users = rec_parts(ds, "user", 0, 64, kg)
    return ds, kg, users, RecTaskSet.from_dataset(ds, 0, kg, users)


def _maml(kg, users, **rec):
    torch.manual_seed(0)
    model = build_recommender(RecommenderConfig(entity_dim=16, user_dim=8, n_heads=2, **rec), kg, len(users))
    return MAML.from_config(model, rec_loss, MetaConfig(inner_lr=0.5))


def _relations(ds):
    return list(ds.table("relations").to_pydict()["name"])


def test_relation_attention_is_a_distribution_and_personal_only_through_the_user_row(setup):
    ds, kg, users, tasks = setup
    names = _relations(ds)
    movies = F.pick_movies(ds, 3, relations=("director",))
    assert len(movies) == 3 and movies[0]["n_mentions"] >= movies[-1]["n_mentions"]
    test_users = tasks.of_role("test")[:4]
    maml = _maml(kg, users)
    with torch.no_grad():  # a large user-guided term: γ differs between the users' own rows
        maml.model.user_embedding.weight.mul_(20)
    own = F.relation_attention(maml, tasks, movies, names, test_users, cold_start=False, adapt=False)
    mass = np.array(own["mass"])  # (U, M, R)
    assert mass.shape == (4, 3, len(names))
    assert np.allclose(mass.sum(-1), 1.0, atol=1e-4)  # every movie node has edges in (at least its self loop)
    assert np.abs(mass - mass[:1]).max() > 1e-3  # users differ
    cold = np.array(F.relation_attention(maml, tasks, movies, names, test_users, cold_start=True, adapt=False)["mass"])
    assert np.allclose(cold, cold[:1], atol=1e-6)  # one row for everyone, no adaptation: no difference


def test_turn_attention_averages_eq7_weights_by_distance(setup):
    ds, kg, users, tasks = setup
    maml = _maml(kg, users)
    t = F.turn_attention(maml.model, tasks, "test", max_distance=6)
    assert t["distance"] == list(range(6)) and len(t["logit"]) == 6
    assert all(w is None or 0 <= w <= 1 for w in t["mean_weight"]) and sum(t["mentions"]) > 0
    with pytest.raises(ValueError, match="no turn encoder"):
        F.turn_attention(_maml(kg, users, variant="ccrs_no_turn").model, tasks)


def test_style_by_genre_and_its_input_check():
    recs = [{"style_mixture": [0.9, 0.1], "context_last": "something scary"},
            {"style_mixture": [0.7, 0.3], "context_last": "a horror film"},
            {"style_mixture": [0.1, 0.9], "context_last": "a funny one"},
            {"style_mixture": [0.5, 0.5], "context_last": "hello"}]
    out = F.style_by_genre(recs)
    assert out["genres"] == ["comedy", "horror", "other"] and out["count"] == [1, 2, 1]
    assert out["mean_mixture"][1] == pytest.approx([0.8, 0.2])
    with pytest.raises(ValueError, match="context_last"):
        F.style_by_genre([{"style_mixture": [1.0]}])


def test_cli_writes_png_and_json(synth_rec_ckpt, synth_prepared, tmp_path):
    responses = tmp_path / "test_responses.jsonl"
    responses.write_text("".join(json.dumps({"style_mixture": m, "context_last": c}) + "\n"
                                 for m, c in [([0.6, 0.4], "scary"), ([0.2, 0.8], "funny")]))
    assert ccrs_main(["figures", "--rec-ckpt", synth_rec_ckpt, "--prepared", synth_prepared, "--fold", "0",
                      "--responses", str(responses), "--out", str(tmp_path / "fig"), "--movies", "2", "--users", "3",
                      "--relations", "director,starring"]) == 0
    for name in ("relation_attention", "turn_attention", "style_by_genre"):
        assert (tmp_path / "fig" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        data = json.loads((tmp_path / "fig" / f"{name}.json").read_text())
        assert data["checkpoint"] == synth_rec_ckpt
    assert len(json.loads((tmp_path / "fig" / "relation_attention.json").read_text())["users"]) == 3
