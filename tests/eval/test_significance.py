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


def test_user_level_test_is_honest_about_correlated_samples():
    # 6 users x 200 samples: each user's samples share one offset (a user effect), the mean offset ~0.
    # Per sample, thousands of "independent" wins look significant; per user there are 6 signs only.
    rng = np.random.default_rng(3)
    users = np.repeat(np.arange(6), 200)
    offset = np.array([0.3, -0.25, 0.2, -0.1, 0.35, -0.2])[users]
    b = rng.random(users.size)
    a = b + offset + 0.01 * rng.standard_normal(users.size)
    from ccrs.eval.significance import user_paired_test

    per_sample = paired_test(a, b, n_resamples=2000)
    per_user = user_paired_test(a, b, users, n_resamples=2000)
    assert per_sample["p_permutation"] < 0.01  # the over-confident answer
    assert per_user["p_user_permutation"] > 0.2 and per_user["users"] == 6
    assert per_user["user_wins"] == 3 and per_user["user_losses"] == 3
    assert per_user["diff"] == pytest.approx(per_sample["diff"])


def test_user_level_test_finds_a_consistent_per_user_gain():
    rng = np.random.default_rng(4)
    users = np.repeat(np.arange(40), 10)
    b = rng.random(users.size)
    a = b + 0.05 + 0.02 * rng.standard_normal(users.size)
    from ccrs.eval.significance import paired_tests

    r = paired_tests(a, b, users, n_resamples=2000)
    assert r["p_user_permutation"] < 0.001 and r["user_ci95_low"] > 0 and r["user_wins"] == 40
    assert r["p_permutation"] < 0.001  # both tests in one record
    # whole users resampled: one user alone cannot be tested against a null of 2 signs
    one = paired_tests(a[:10], b[:10], users[:10], n_resamples=500)
    assert one["p_user_permutation"] > 0.4


def test_distinct_paired_test_detects_a_more_diverse_system_and_not_a_relabelled_one():
    from ccrs.eval.significance import distinct_paired_test

    rng = np.random.default_rng(0)
    diverse = [[f"w{rng.integers(500)}" for _ in range(6)] for _ in range(200)]
    dull = [["i", "like", "that", "one", "a", "lot"] for _ in range(200)]
    users = [i // 5 for i in range(200)]
    res = distinct_paired_test(diverse, dull, users, 2, n_resamples=300)
    assert res["diff"] > 3 and res["p_permutation"] < 0.01 and res["units"] == 40
    # the same responses under two names: no difference, p = 1
    same = distinct_paired_test(diverse, list(diverse), list(range(200)), 2, n_resamples=100)
    assert same["diff"] == 0 and same["p_permutation"] == 1.0
    # halves of one system swapped at random: no real difference, a large p
    mixed = [d if i % 2 else u for i, (d, u) in enumerate(zip(diverse, dull, strict=True))]
    other = [u if i % 2 else d for i, (d, u) in enumerate(zip(diverse, dull, strict=True))]
    assert distinct_paired_test(mixed, other, users, 2, n_resamples=300)["p_permutation"] > 0.05
