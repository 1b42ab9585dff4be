"""Each personalization diagnostic on tiny data: values that must follow from how they are built."""

import json

import pytest
import torch

from ccrs.config import MetaConfig, RecommenderConfig, load_config
from ccrs.data.dataset import PreparedDataset
from ccrs.data.rec_examples import KnowledgeGraph, rec_parts
from ccrs.experiments import personalization as P
from ccrs.meta import MAML
from ccrs.meta.rec_tasks import RecTaskSet, meta_predict, rec_loss
from ccrs.models import build_recommender


@pytest.fixture(scope="module")
def setup(synth_prepared):
    ds = PreparedDataset.open(synth_prepared)
    kg = KnowledgeGraph.from_dataset(ds)
    _, users = rec_parts(ds, "user", 0, 64, kg)
    tasks = RecTaskSet.from_dataset(ds, 0, kg, users)
    return kg, users, tasks


def _maml(kg, users, inner_lr=0.5, **rec):
    torch.manual_seed(0)
    model = build_recommender(RecommenderConfig(entity_dim=16, user_dim=8, n_heads=2, **rec), kg, len(users))
    return MAML.from_config(model, rec_loss, MetaConfig(inner_lr=inner_lr, inner_steps=2))


def test_scaled_inner_rates_scale_and_restore(setup):
    kg, users, _ = setup
    maml = _maml(kg, users)
    with P.scaled_inner_rates(maml, 10.0):
        assert maml.inner_lr == pytest.approx(5.0)
    assert maml.inner_lr == 0.5
    meta_sgd = MAML.from_config(maml.model, rec_loss, MetaConfig(inner_lr=0.5, learn_inner_lr=True))
    before = meta_sgd.inner_lrs()
    with P.scaled_inner_rates(meta_sgd, 10.0):
        assert all(v == pytest.approx(before[n] * 10) for n, v in meta_sgd.inner_lrs().items())
    assert meta_sgd.inner_lrs() == pytest.approx(before)
    with pytest.raises(ValueError, match="factor must be > 0"):
        with P.scaled_inner_rates(maml, 0.0):
            pass


def test_beta_sweep_factor0_is_the_unadapted_model_and_adaptation_moves_ranks(setup):
    kg, users, tasks = setup
    maml = _maml(kg, users, inner_lr=5.0)
    sweep = P.beta_sweep(maml, tasks, "valid", factors=(1.0, 10.0))
    assert set(sweep["factors"]) == {"0", "1", "10"}
    plain = meta_predict(maml, tasks, "valid", adapt=False).metrics()
    assert sweep["factors"]["0"]["metrics"] == plain
    v = sweep["factors"]["10"]["vs_beta0"]
    assert v["share_samples_rank_changed"] > 0 and v["mean_abs_rank_shift"] > 0
    assert 0 < v["share_users_top10_changed"] <= 1
    assert set(v["tests"]) == {"ndcg@10", "hit@10"}


def test_compare_predictions_of_identical_runs_is_zero(setup):
    kg, users, tasks = setup
    maml = _maml(kg, users)
    p = meta_predict(maml, tasks, "valid", adapt=False)
    c = P.compare_predictions(p, p)
    assert c["mean_abs_rank_shift"] == 0 and c["share_users_top10_changed"] == 0
    assert c["tests"]["ndcg@10"]["diff"] == 0


def test_attention_health_bounds_and_collapse_under_a_huge_linear_gamma(setup):
    kg, users, tasks = setup
    maml = _maml(kg, users)
    health = P.attention_health(maml, tasks, "valid", adapt=False, min_degree=2)
    layer = health["layers"][0]
    assert layer["nodes"] > 0 and len(layer["heads"]) == 2
    for h in layer["heads"]:
        assert 0 < h["mean_largest_weight"] <= 1
        assert 0 <= h["mean_normalised_entropy"] <= 1 + 1e-5
    spread = layer["gamma_across_users"]
    assert spread["users"] == len(tasks.of_role("valid")) and spread["mean_std_over_users"] > 0
    # a linear γ blown up by a large user projection: the softmax collapses onto one neighbour
    with torch.no_grad():
        maml.model.encoder[0].user_proj.weight.mul_(1e4)
    collapsed = P.attention_health(maml, tasks, "valid", adapt=False, min_degree=2)["layers"][0]
    assert collapsed["heads"][0]["mean_largest_weight"] > layer["heads"][0]["mean_largest_weight"]
    assert collapsed["gamma_on_edges"]["median_abs"] > 10 * layer["gamma_on_edges"]["median_abs"]
    assert collapsed["gamma_on_edges"]["share_negative"] > 0  # unbounded γ goes negative


def test_bounded_gamma_stays_positive_and_kbrd_has_no_attention(setup):
    kg, users, tasks = setup
    maml = _maml(kg, users, gamma_form="relation_softmax")
    with torch.no_grad():
        maml.model.encoder[0].user_proj.weight.mul_(1e4)
    layer = P.attention_health(maml, tasks, "valid", adapt=False, min_degree=2)["layers"][0]
    assert layer["gamma_on_edges"]["share_negative"] == 0
    assert P.attention_health(_maml(kg, users, variant="kbrd"), tasks, "valid") is None


def test_cold_start_effect_is_zero_when_every_row_is_the_cold_start_row(setup):
    kg, users, tasks = setup
    maml = _maml(kg, users)
    with torch.no_grad():  # make the user term visible at initialisation
        maml.model.encoder[0].user_proj.weight.mul_(100)
    effect = P.cold_start_effect(maml, tasks, "valid", eval_cold_start=False)
    assert effect["cold_vs_own"]["share_samples_rank_changed"] > 0  # random own rows differ from row 0
    with torch.no_grad():
        maml.model.user_embedding.weight.copy_(maml.model.user_embedding.weight[0].expand_as(
            maml.model.user_embedding.weight))
    same = P.cold_start_effect(maml, tasks, "valid", eval_cold_start=True)
    assert same["cold_vs_own"]["share_samples_rank_changed"] == 0 and same["note"]


def test_user_history_overlap_counts_exactly(setup):
    _, _, tasks = setup
    o = P.user_history_overlap(tasks, "valid", draws=3)
    # recount by hand: a label counts when it was a mention or a label of the user's support samples
    ex, hits, total = tasks.examples, 0, 0
    for u in tasks.of_role("valid"):
        seen = {e for i in u.support.tolist() for e in [*ex.context_of(i)[0].tolist(), int(ex.label_entities[i])]}
        labels = ex.label_entities[u.query].tolist()
        hits, total = hits + sum(lab in seen for lab in labels), total + len(labels)
    assert o["query_labels"] == total and o["own_support"] == pytest.approx(hits / total)
    assert 0 <= o["other_user_support"] <= 1


def test_diagnose_checkpoint_writes_json_and_markdown(synth_rec_ckpt, synth_prepared, tmp_path):
    report = P.diagnose_checkpoint(synth_rec_ckpt, synth_prepared, 0, "valid")
    assert report["variant"] == "ccrs" and set(report["beta"]["factors"]) == {"0", "1", "10"}
    P.save({"plain": report}, str(tmp_path / "personalization"), "ccrs diagnose rec ...")
    md = (tmp_path / "personalization.md").read_text()
    assert "| β factor |" in md and "cold-start row" in md and "User signal" in md
    assert (tmp_path / "personalization.json").exists()
    assert load_config(None, []).rec_meta.inner_lr > 0


def test_cli_diagnose_rec(synth_rec_ckpt, synth_prepared, tmp_path, capsys):
    from ccrs.cli import main

    out = tmp_path / "diag"
    assert main(["diagnose", "rec", "--ckpt", f"plain={synth_rec_ckpt}", "--prepared", synth_prepared,
                 "--factors", "0,1", "--save", str(out)]) == 0
    assert "## plain (ccrs" in capsys.readouterr().out
    body = json.loads(out.with_suffix(".json").read_text())
    assert set(body["reports"]["plain"]["beta"]["factors"]) == {"0", "1"}
    assert main(["diagnose", "rec", "--ckpt", str(tmp_path / "missing.pt"), "--prepared", synth_prepared]) == 2


def test_support_gradient_norms_reach_the_user_row_unless_gamma_saturates(setup):
    kg, users, tasks = setup
    maml = _maml(kg, users, gamma_form="relation_softmax")
    norms = P.support_gradient_norms(maml, tasks, "valid")
    assert norms["user_embedding.weight"] > 0 and norms["entity_embedding.weight"] > 0
    with torch.no_grad():  # a saturated per-user relation softmax: no gradient reaches the user
        maml.model.encoder[0].user_proj.weight.mul_(1e6)
    assert P.support_gradient_norms(maml, tasks, "valid")["user_embedding.weight"] < 1e-6 * norms["user_embedding.weight"]
