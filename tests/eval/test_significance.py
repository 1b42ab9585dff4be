import numpy as np
import pytest

from ccrs.eval.significance import paired_test


def test_identical_models_are_not_significant():
    a = np.random.default_rng(0).random(500)
    r = paired_test(a, a.copy(), n_resamples=2000)
    assert r["diff"] == 0 and r["p_permutation"] == 1.0 and r["wins"] == r["losses"] == 0


def test_a_consistent_improvement_is_significant_and_direction_is_kept():
    rng = np.random.default_rng(1)
    b = rng.random(400)
    a = b + 0.05 + 0.01 * rng.standard_normal(400)
    r = paired_test(a, b, n_resamples=2000)
    assert r["diff"] == pytest.approx(0.05, abs=0.005)
    assert r["p_permutation"] < 0.001 and r["p_t"] < 1e-6
    assert r["ci95_low"] < r["diff"] < r["ci95_high"] and r["ci95_low"] > 0
    assert paired_test(b, a, n_resamples=200)["diff"] < 0


def test_noise_only_difference_is_not_significant():
    rng = np.random.default_rng(2)
    r = paired_test(rng.random(300), rng.random(300), n_resamples=2000)
    assert r["p_permutation"] > 0.01


def test_shapes_must_match():
    with pytest.raises(ValueError, match="equal"):
        paired_test([1.0, 2.0], [1.0])
