r"""How much a user's support conversations say about *which KG relation* leads to their picks.

    report = relation_taste(PreparedDataset.open("runs/real/prepared"), relations=("director", "starring", "genre"))
    report["own"], report["other"], report["p_user"]

The user-guided attention (Eq. 2) can only help if a user's recommended movies are linked to the
movies in the context by *user-specific* relations. This measures that on any prepared dataset,
planted or real, with no model:

* a rec sample is *explained by* relation :math:`r` when its label shares an :math:`r`-neighbour
  (a director, an actor, a genre, …) with a movie of its context;
* for a user with support and query conversations, their relation :math:`\hat r_u` is the one with
  the largest lift (rate on their support samples ÷ the rate over all samples) on support;
* ``own``: share of the user's **query** samples explained by :math:`\hat r_u`; ``other``: the same
  query samples explained by another user's :math:`\hat r_v` (mean over ``draws`` random pairings).

``own − other`` is the relation taste the support conversations reveal: large on the planted data
(every conversation follows the user's relation), zero on the control, and whatever it is on
ReDial. ``p_user``: sign-flip test of the per-user differences (whole users).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ccrs.data.dataset import PreparedDataset


def movie_values(ds: PreparedDataset, relations: tuple[str, ...]) -> tuple[dict[str, dict[int, set[int]]], dict[int, int]]:
    """``(values, entity_to_item)``: ``values[r][movie entity]`` = the movie's non-item neighbours by
    relation ``r`` (its director, actors, …), and the entity → item index map. Unknown relations are
    an error naming them."""
    rel_ids = {r["name"]: r["id"] for r in ds.table("relations").to_pylist()}
    missing = [r for r in relations if r not in rel_ids]
    if missing:
        raise ValueError(f"relations {missing} not in the KG (has {sorted(rel_ids)})")
    entities = ds.table("entities")
    item_index = np.asarray(entities.column("item_index"))
    entity_to_item = {int(e): int(i) for e, i in zip(np.asarray(entities.column("id")), item_index, strict=True)
                      if i >= 0}
    edges = ds.table("kg_edges")
    head, rel, tail = (np.asarray(edges.column(c)) for c in ("head", "relation", "tail"))
    items = list(entity_to_item)
    out: dict[str, dict[int, set[int]]] = {}
    for r in relations:
        sel = (rel == rel_ids[r]) & np.isin(head, items) & ~np.isin(tail, items)
        nb: dict[int, set[int]] = defaultdict(set)
        for h, t in zip(head[sel].tolist(), tail[sel].tolist(), strict=True):
            nb[h].add(t)
        out[r] = nb
    return out, entity_to_item


def explained(ds: PreparedDataset, relations: tuple[str, ...]) -> tuple[list[dict], np.ndarray]:
    """``(samples, E)``: the rec samples (user_id, conversation_id) with a movie in context, and
    E (n, R) bool: sample i is explained by relation r (module docstring)."""
    nb, entity_to_item = movie_values(ds, relations)
    items = set(entity_to_item)
    rows, flags = [], []
    for s in ds.table("rec_samples").select(["user_id", "conversation_id", "label", "context_entity_ids"]).to_pylist():
        movies = [e for e in s["context_entity_ids"] if e in items and e != s["label"]]
        if not movies:
            continue
        flags.append([bool(nb[r].get(s["label"], set()) & set().union(*(nb[r].get(m, set()) for m in movies)))
                      for r in relations])
        rows.append({"user_id": s["user_id"], "conversation_id": s["conversation_id"]})
    return rows, np.asarray(flags, dtype=bool).reshape(len(rows), len(relations))


def relation_taste(ds: PreparedDataset, relations: tuple[str, ...] = ("director", "starring", "genre"),
                   draws: int = 20, n_resamples: int = 5000, seed: int = 0) -> dict:
    """``own`` vs ``other`` over the users with support and query samples (module docstring)."""
    from ccrs.eval.significance import paired_tests

    rows, flags = explained(ds, relations)
    parts = ds.conversation_parts()
    base = flags.mean(0) if len(flags) else np.zeros(len(relations))
    support, query = defaultdict(list), defaultdict(list)
    for i, row in enumerate(rows):
        (support if parts.get(row["conversation_id"], "support") == "support" else query)[row["user_id"]].append(i)
    users = sorted(u for u in support if u in query)
    if len(users) < 2:
        raise ValueError(f"relation_taste needs >= 2 users with support and query samples, got {len(users)}")
    lift = np.stack([flags[support[u]].mean(0) / np.maximum(base, 1e-12) for u in users])  # (U, R)
    choice = lift.argmax(1)
    own = np.array([flags[query[u], choice[k]].mean() for k, u in enumerate(users)])
    rng = np.random.default_rng(seed)
    other = np.zeros(len(users))
    for _ in range(draws):
        shift = rng.integers(1, len(users))  # a random other user for every user (a derangement by rotation)
        perm = (np.arange(len(users)) + shift) % len(users)
        other += np.array([flags[query[u], choice[perm[k]]].mean() for k, u in enumerate(users)])
    other /= draws
    t = paired_tests(own, other, np.asarray(users), n_resamples=n_resamples)
    return {"relations": list(relations), "users": len(users), "samples": len(rows),
            "base_rates": dict(zip(relations, base.round(4).tolist(), strict=True)),
            "chosen": dict(zip(relations, np.bincount(choice, minlength=len(relations)).tolist(), strict=True)),
            "own": float(own.mean()), "other": float(other.mean()), "own_minus_other": float(own.mean() - other.mean()),
            "p_user": t["p_user_permutation"]}
