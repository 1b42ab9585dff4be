"""Paired significance tests over per-sample metric values (e.g. NDCG@10 of two models on the same samples).

Two tests, no SciPy needed:

* a **sign-flip permutation test** (exact in the limit, no distributional assumption): under H0 the
  sign of each paired difference is arbitrary, so the p-value is the share of random sign flips whose
  mean difference is at least as extreme as the observed one; ``(hits + 1) / (n + 1)``;
* a **paired t-test** with the normal approximation (fine for the thousands of samples here).

and a percentile bootstrap 95% interval of the mean difference.

Samples of one user are not independent (same tastes, same adapted parameters), so the per-sample
tests overstate significance. :func:`user_paired_test` treats the **user** as the unit:

* a **cluster sign-flip permutation test**: under H0 the sign of each user's summed difference is
  arbitrary; the statistic is the pooled per-sample mean difference (users weighted by their number
  of samples, as the pooled metric weights them), recomputed with one random sign per user;
* a **cluster bootstrap** 95% interval: users resampled with replacement, each bringing all their
  samples.

Headline claims use the user-level p-value; the per-sample one stays beside it.

Corpus-level metrics (Dist-k: distinct n-grams over all responses) have no per-sample value to flip.
:func:`distinct_paired_test` swaps whole units instead: under H0 the two systems' responses of a unit
(a sample, or every sample of a user) are exchangeable, so each resample swaps them with
probability ½ and recomputes the difference of the corpus metric.
"""

from __future__ import annotations

import math

import numpy as np


def paired_test(a, b, n_resamples: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Compare per-sample values ``a`` vs ``b`` (same samples, same order); positive diff = a better."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need equal 1-d shapes, got {a.shape} and {b.shape}")
    n = a.size
    d = a - b
    observed = d.mean() if n else 0.0
    rng = np.random.default_rng(seed)
    hits = 0
    chunk = 1000
    for lo in range(0, n_resamples, chunk):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(min(chunk, n_resamples - lo), n))
        hits += int((np.abs(signs @ d / max(n, 1)) >= abs(observed) - 1e-15).sum())
    sd = d.std(ddof=1) if n > 1 else 0.0
    t = observed / (sd / math.sqrt(n)) if sd > 0 else 0.0
    boot = rng.integers(0, n, size=(2000, n)) if n else np.zeros((0, 0), dtype=int)
    means = d[boot].mean(1) if n else np.zeros(1)
    return {
        "n": int(n),
        "mean_a": float(a.mean()) if n else 0.0,
        "mean_b": float(b.mean()) if n else 0.0,
        "diff": float(observed),
        "ci95_low": float(np.percentile(means, 2.5)),
        "ci95_high": float(np.percentile(means, 97.5)),
        "p_permutation": (hits + 1) / (n_resamples + 1),
        "t": float(t),
        "p_t": float(math.erfc(abs(t) / math.sqrt(2))),
        "wins": int((d > 0).sum()),
        "losses": int((d < 0).sum()),
    }


def user_paired_test(a, b, users, n_resamples: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Paired test with users as the resampling unit (module docstring); positive diff = a better.

    ``users``: the user of each sample (any hashable values, same order as ``a`` and ``b``).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    users = np.asarray(users)
    if a.shape != b.shape or a.ndim != 1 or users.shape != a.shape:
        raise ValueError(f"paired values need equal 1-d shapes, got {a.shape}, {b.shape} and users {users.shape}")
    _, cluster = np.unique(users, return_inverse=True)
    n_users = int(cluster.max()) + 1 if cluster.size else 0
    sums = np.bincount(cluster, weights=a - b, minlength=n_users)  # per-user summed difference
    counts = np.bincount(cluster, minlength=n_users).astype(np.float64)
    n = a.size
    observed = float(sums.sum() / n) if n else 0.0
    rng = np.random.default_rng(seed)
    hits = 0
    chunk = 1000
    for lo in range(0, n_resamples, chunk):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(min(chunk, n_resamples - lo), n_users))
        hits += int((np.abs(signs @ sums / max(n, 1)) >= abs(observed) - 1e-15).sum())
    boot = rng.integers(0, max(n_users, 1), size=(2000, n_users)) if n_users else np.zeros((1, 0), dtype=int)
    means = sums[boot].sum(1) / np.maximum(counts[boot].sum(1), 1) if n_users else np.zeros(1)
    per_user = sums / np.maximum(counts, 1)
    return {
        "users": n_users,
        "diff": observed,
        "user_ci95_low": float(np.percentile(means, 2.5)),
        "user_ci95_high": float(np.percentile(means, 97.5)),
        "p_user_permutation": (hits + 1) / (n_resamples + 1),
        "user_wins": int((per_user > 0).sum()),
        "user_losses": int((per_user < 0).sum()),
    }


def paired_tests(a, b, users, n_resamples: int = 10_000, seed: int = 0) -> dict[str, float]:
    """:func:`paired_test` (per sample) and :func:`user_paired_test` (per user) in one record."""
    return paired_test(a, b, n_resamples, seed) | user_paired_test(a, b, users, n_resamples, seed)


def distinct_paired_test(hyps_a, hyps_b, units, n: int, n_resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Swap permutation test of Dist-``n`` (distinct word n-grams ÷ responses), system a vs b.

    ``hyps_a[i]``/``hyps_b[i]``: token lists of the two systems' responses to sample ``i``;
    ``units[i]``: the unit swapped as a whole (the sample's id for a per-sample test, its user for a
    per-user one). p = share of random unit swaps whose |Dist_a − Dist_b| is at least the observed.
    """
    if not (len(hyps_a) == len(hyps_b) == len(units)):
        raise ValueError(f"paired responses need equal lengths, got {len(hyps_a)}, {len(hyps_b)} and {len(units)}")
    vocab: dict[tuple, int] = {}

    def ids(h) -> np.ndarray:
        return np.array([vocab.setdefault(tuple(h[i : i + n]), len(vocab)) for i in range(len(h) - n + 1)],
                        dtype=np.int64)

    ga, gb = [ids(h) for h in hyps_a], [ids(h) for h in hyps_b]
    _, unit_of = np.unique(np.asarray(units), return_inverse=True)
    m = len(ga)
    owner = np.repeat(np.arange(m), [g.size for g in ga]), np.repeat(np.arange(m), [g.size for g in gb])
    flat_a = np.concatenate(ga) if m else np.zeros(0, np.int64)
    flat_b = np.concatenate(gb) if m else np.zeros(0, np.int64)
    size = len(vocab)

    def dist(ids_: np.ndarray) -> float:
        present = np.zeros(size, dtype=bool)
        present[ids_] = True
        return present.sum() / max(m, 1)

    observed = dist(flat_a) - dist(flat_b)
    rng = np.random.default_rng(seed)
    n_units = int(unit_of.max()) + 1 if m else 0
    hits = 0
    for _ in range(n_resamples):
        swap = rng.random(n_units) < 0.5
        sa, sb = swap[unit_of][owner[0]], swap[unit_of][owner[1]]
        a_side = np.concatenate([flat_a[~sa], flat_b[sb]])  # system a's corpus after the swap
        b_side = np.concatenate([flat_b[~sb], flat_a[sa]])
        hits += abs(dist(a_side) - dist(b_side)) >= abs(observed) - 1e-12
    return {"n": m, "units": n_units, "dist_a": float(dist(flat_a)), "dist_b": float(dist(flat_b)),
            "diff": float(observed), "p_permutation": (hits + 1) / (n_resamples + 1)}
