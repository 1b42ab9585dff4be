"""The planted-signal check in miniature (``benchmarks/planted_signal.py`` is the full one, with the control).

Every user follows a hidden relation (director / starring / genre) that only their own support
conversations reveal. The customized ccrs (``CUSTOMIZED``: meta-trained, each user's cold-start
row adapted on their support conversations) must beat kbrd and popularity there, significantly over
users, and adaptation must help (β = 0 lower). 90 users × 6 conversations, shortened training.
"""

import pytest

from ccrs.experiments.planted import PlantedSpec, format_markdown, run_planted

SMALL = PlantedSpec(taste="planted", n_users=90, conversations_per_user=6,
                    overrides=("rec_train.max_epochs=10",), meta_overrides=("rec_meta.epochs=2",))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return run_planted(tmp_path_factory.mktemp("planted"), SMALL)


def _ndcg(report, row):
    return report["rows"][row]["test"]["ndcg@10"]


def _test(report, a, b, metric="ndcg@10"):
    (t,) = [t for t in report["significance"] if (t["a"], t["b"], t["metric"]) == (a, b, metric)]
    return t


def test_customized_ccrs_recovers_the_planted_taste(planted):
    meta = _ndcg(planted, "ccrs_meta")
    assert meta > 1.2 * _ndcg(planted, "kbrd")
    assert _test(planted, "ccrs_meta", "kbrd")["p_user_permutation"] < 0.05
    assert meta > 3 * _ndcg(planted, "popularity")
    assert meta > _ndcg(planted, "ccrs_meta_beta0")  # adapting the user's row is what helps


def test_every_row_is_scored_on_the_same_samples_and_reported(planted):
    ids = planted["predictions"]["kbrd"]["sample_id"]
    assert all(p["sample_id"] == ids for p in planted["predictions"].values())
    assert planted["test_samples"] == len(ids) and planted["test_users"] > 10
    md = format_markdown({"planted": planted})
    assert "ccrs_meta vs kbrd" in md and "p (users)" in md


def test_without_a_user_signal_adaptation_changes_little(tmp_path):
    """Control: the relation is drawn per conversation, so there is nothing per user to adapt to.

    Measured here (90 users): ccrs_meta 0.143 / β=0 0.144 / kbrd 0.172 — the ccrs encoder itself is
    below kbrd on the control at this size (0.17 vs 0.18 at 240 users, results/planted.md); the
    customization neither fixes nor worsens that, which is what this asserts."""
    control = run_planted(tmp_path, PlantedSpec(taste="control", n_users=90, conversations_per_user=6,
                                                overrides=SMALL.overrides, meta_overrides=SMALL.meta_overrides))
    meta, beta0 = _ndcg(control, "ccrs_meta"), _ndcg(control, "ccrs_meta_beta0")
    assert abs(meta - beta0) <= 0.1 * beta0
    assert meta >= 0.95 * _ndcg(control, "ccrs")
