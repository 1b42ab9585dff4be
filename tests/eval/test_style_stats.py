import numpy as np
import pytest

from ccrs.eval.style_stats import collapse, group_permutation_test, style_report, variance_share


def _mixtures(rng, means, sizes, noise):
    x = np.concatenate([np.tile(m, (n, 1)) + noise * rng.standard_normal((n, len(m))) for m, n in zip(means, sizes, strict=True)])
    x = np.abs(x)
    return x / x.sum(1, keepdims=True)


def test_variance_share_is_zero_for_equal_group_means_and_one_for_constant_groups():
    x = np.array([[0.2, 0.8], [0.8, 0.2], [0.2, 0.8], [0.8, 0.2]])
    assert variance_share(x, [0, 0, 1, 1]) == pytest.approx(0.0)
    assert variance_share(x, [0, 1, 0, 1]) == pytest.approx(1.0)


def test_permutation_test_finds_planted_user_styles_and_not_absent_ones():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(6), 10)
    personal = _mixtures(rng, rng.dirichlet(np.ones(4), 6), [10] * 6, noise=0.02)
    shared = _mixtures(rng, [np.full(4, 0.25)] * 6, [10] * 6, noise=0.05)
    hit = group_permutation_test(personal, users, n_resamples=200)
    miss = group_permutation_test(shared, users, n_resamples=200)
    assert hit["r2"] > 0.8 and hit["p_permutation"] < 0.01
    assert miss["r2"] < 0.3 and miss["p_permutation"] > 0.05


def test_stratified_null_does_not_mistake_a_user_effect_for_a_genre_effect():
    rng = np.random.default_rng(1)
    users = np.repeat(np.arange(4), 12)
    x = _mixtures(rng, rng.dirichlet(np.ones(3), 4), [12] * 4, noise=0.01)  # style set by the user only
    genre = np.where(users < 2, "horror", "comedy")  # genre confounded with the user
    for k in range(4):  # each user also gets a few of the other genre
        genre[k * 12] = "comedy" if k < 2 else "horror"
    assert group_permutation_test(x, genre, n_resamples=200)["p_permutation"] < 0.01  # naive: "genre matters"
    assert group_permutation_test(x, genre, strata=users, n_resamples=200)["p_permutation"] > 0.05


def test_collapse_and_report():
    x = np.array([[0.9, 0.05, 0.05]] * 3 + [[0.05, 0.9, 0.05]])
    c = collapse(x)
    assert c["most_common_top_style"] == 0 and c["share_top_is_most_common"] == 0.75
    assert c["mean_largest_weight"] == pytest.approx(0.9) and 0 < c["mean_entropy_norm"] < 0.5
    records = [{"user_id": u, "style_mixture": m.tolist(), "genre": g} for u, m, g in
               zip(["a", "a", "b", "b"], x, ["horror", "comedy", "horror", "comedy"], strict=True)]
    rep = style_report(records, lambda r: r["genre"], n_resamples=50)
    assert rep["responses"] == 4 and rep["users"] == 2
    assert set(rep["by_genre_within_user"]["genres"]) == {"horror", "comedy"}
    with pytest.raises(ValueError, match="style_mixture"):
        style_report([{"user_id": "a", "style_mixture": None}])
