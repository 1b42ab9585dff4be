r"""Are the speaking styles personal? Statistics of the style mixtures μ_u^m (paper Eq. 9, Fig. 4).

Every generated response carries its mixture μ ∈ Δ^{n_s} (``style_mixture`` in the responses files).
The paper reads Fig. 4 as "users (and movie types) get different styles"; a mixture that is the same
for everyone, or one style taking all the mass, would make the style bias a single global bias.

* :func:`variance_share` — the share of the total variance of μ (summed over styles) that lies
  *between* groups: :math:`R^2 = \sum_g n_g \lVert\bar\mu_g-\bar\mu\rVert^2 / \sum_i \lVert\mu_i-\bar\mu\rVert^2`.
  0 = every group has the same mean mixture, 1 = μ is constant within each group.
* :func:`group_permutation_test` — its null: group labels permuted over responses (group sizes kept),
  optionally only *within strata* (``strata=user`` for the genre test, so the user effect is held fixed
  and a genre effect cannot be a user effect in disguise); p = (hits + 1) / (resamples + 1).
* :func:`style_report` — both tests (by user; by the genre of each response, within users), plus
  collapse measures: mean largest weight, mean entropy / log n_s, and the share of responses whose
  top style is the overall most common one.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

import numpy as np


def variance_share(mixtures: np.ndarray, groups: np.ndarray) -> float:
    """Between-group share of the variance of ``mixtures`` ``[N, S]`` for labels ``groups`` ``[N]``."""
    x = np.asarray(mixtures, dtype=np.float64)
    _, inv = np.unique(np.asarray(groups), return_inverse=True)
    return _share(x, inv)


def _share(x: np.ndarray, inv: np.ndarray) -> float:
    total = ((x - x.mean(0)) ** 2).sum()
    if total <= 0:
        return 0.0
    counts = np.bincount(inv).astype(np.float64)  # [G]
    sums = np.zeros((counts.size, x.shape[1]))
    np.add.at(sums, inv, x)
    means = sums / counts[:, None]  # [G, S]
    between = (counts[:, None] * (means - x.mean(0)) ** 2).sum()
    return float(between / total)


def group_permutation_test(mixtures, groups, strata=None, n_resamples: int = 2000, seed: int = 0) -> dict:
    """R² of ``groups`` with a permutation p-value (labels shuffled within ``strata`` when given)."""
    x = np.asarray(mixtures, dtype=np.float64)
    _, inv = np.unique(np.asarray(groups), return_inverse=True)
    if x.ndim != 2 or x.shape[0] != inv.size:
        raise ValueError(f"mixtures must be [N, S] with N = len(groups); got {x.shape} and {inv.size}")
    observed = _share(x, inv)
    rng = np.random.default_rng(seed)
    blocks = [np.arange(inv.size)]
    if strata is not None:
        _, sinv = np.unique(np.asarray(strata), return_inverse=True)
        blocks = [np.flatnonzero(sinv == s) for s in range(sinv.max() + 1)]
    hits = 0
    perm = inv.copy()
    for _ in range(n_resamples):
        for b in blocks:
            perm[b] = inv[b][rng.permutation(b.size)]
        hits += _share(x, perm) >= observed - 1e-12
    return {"r2": observed, "p_permutation": (hits + 1) / (n_resamples + 1), "groups": int(inv.max() + 1),
            "n": int(inv.size), "resamples": n_resamples}


def collapse(mixtures) -> dict[str, float]:
    """How close μ is to one style for everyone: largest weight, normalised entropy, top-style agreement."""
    x = np.asarray(mixtures, dtype=np.float64)
    s = x.shape[1]
    ent = -(x * np.log(np.clip(x, 1e-12, None))).sum(1) / (math.log(s) if s > 1 else 1.0)
    top = x.argmax(1)
    common, count = Counter(top.tolist()).most_common(1)[0]
    return {"n_styles": s, "mean_largest_weight": float(x.max(1).mean()), "mean_entropy_norm": float(ent.mean()),
            "most_common_top_style": int(common), "share_top_is_most_common": count / len(top),
            "mean_mixture": [round(float(v), 4) for v in x.mean(0)]}


def style_report(records: Iterable[Mapping], genre_of: Callable[[Mapping], str | None] | None = None,
                 n_resamples: int = 2000, seed: int = 0) -> dict:
    """The style statistics of responses records (``user_id``, ``style_mixture``).

    ``genre_of(record)`` labels a response with a genre (or None). The DBpedia subgraph has almost no
    film-genre edges (its ``genre`` relation links musicians to music genres: 46 of 6,822 movies have
    one), so :mod:`ccrs.experiments.gen_table` labels a response by the genre the seeker's last turn
    talks about.
    """
    rows = [r for r in records if r.get("style_mixture") is not None]
    if not rows:
        raise ValueError("no record carries a style_mixture: the generator variant has no styles")
    x = np.array([r["style_mixture"] for r in rows], dtype=np.float64)
    users = np.array([str(r["user_id"]) for r in rows])
    out = {"responses": len(rows), "users": int(np.unique(users).size), "collapse": collapse(x),
           "by_user": group_permutation_test(x, users, n_resamples=n_resamples, seed=seed)}
    genre = [genre_of(r) if genre_of else None for r in rows]
    keep = np.array([g is not None for g in genre])
    if keep.sum() >= 2 and len({g for g in genre if g is not None}) >= 2:
        g = np.array([x for x in genre if x is not None])
        out["by_genre_within_user"] = group_permutation_test(x[keep], g, strata=users[keep],
                                                             n_resamples=n_resamples, seed=seed + 1)
        out["by_genre_within_user"]["genres"] = dict(Counter(g.tolist()).most_common())
    return out
