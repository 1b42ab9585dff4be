r"""Bayes-optimal rankings of the planted-signal data: how much knowing the user *can* be worth.

    rows = bayes_rows(prepared, fold=0, reference=preds["kbrd"])   # {"bayes_agnostic": RecPredictions, ...}

The planted generator (:mod:`ccrs.data.synth`, ``taste=planted|control``) is known exactly: in each
conversation the seeker mentions a movie :math:`A`; with the conversation's relation :math:`r`
(director / starring / genre) a value :math:`v` of :math:`A` is drawn uniformly among those shared
with at least three other movies, and three movies are drawn from the pool :math:`P_v` of movies
with that value (:math:`A` excluded). So the chance that movie :math:`m` is among the picks is

.. math::
    p(m \mid A, r) = \sum_{v \in V_r(A)} \frac{1}{|V_r(A)|} \cdot \frac{3\,[m \in P_v]}{|P_v|}.

Two rankings from it, scored on the same samples as the models (no model, no training):

``bayes_agnostic``
    :math:`\sum_r \tfrac13\, p(m \mid A, r)`: the best ranking that ignores who the user is. On the
    ``control`` data (relation drawn per conversation) no ranking can beat it in expectation.
``bayes_support``
    :math:`\sum_r \pi_u(r)\, p(m \mid A, r)` with :math:`\pi_u` the posterior over relations given
    the user's **support** conversations (uniform prior; the picks of a conversation share its relation):
    the best ranking from exactly what meta-test adaptation sees. The ceiling of any customized
    model on the ``planted`` data; on ``control`` it trusts a taste that is not there.

With a taste strength :math:`s < 1` (a conversation follows the user's relation with probability
:math:`s`, else a relation drawn afresh) every :math:`p(m \mid A, r)` above becomes
:math:`s\,p(m \mid A, r) + (1 - s)\,\bar p(m \mid A)`, :math:`\bar p` the mean over relations.

The KG is read from the prepared data (relations by name), so the rows use the same entities, items
and samples as the models. Ties are broken by a seeded random order (expected metrics unchanged).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow.compute as pc
import torch

from ccrs.data.dataset import PreparedDataset
from ccrs.eval.rec_evaluator import TOP_K, RecPredictions
from ccrs.eval.rec_metrics import label_ranks
from ccrs.eval.relation_taste import movie_values

RELATIONS = ("director", "starring", "genre")
PICKS = 3  # movies per planted conversation
#: Likelihood floor of a support label under a relation (a label no relation explains must not zero
#: every posterior: the prepared data can drop or merge a mention).
FLOOR = 1e-4


class PlantedModel:
    """:math:`p(m \\mid A, r)` on a prepared planted dataset (module docstring)."""

    def __init__(self, ds: PreparedDataset) -> None:
        try:
            # values[r][movie entity] = its values of r; pools[r][value] = items with that value
            self.values, self.entity_to_item = movie_values(ds, RELATIONS)
        except ValueError as e:
            raise ValueError(f"not planted data: {e}") from None
        self.num_items = len(self.entity_to_item)
        self.pools: dict[str, dict[int, set[int]]] = {r: defaultdict(set) for r in RELATIONS}
        for r in RELATIONS:
            for movie, values in self.values[r].items():
                for v in values:
                    self.pools[r][v].add(self.entity_to_item[movie])

    def pick_probabilities(self, seed_entity: int, relation: str) -> np.ndarray:
        """(n_items,) chance of each item being among the picks given the seed movie and relation."""
        out = np.zeros(self.num_items)
        seed_item = self.entity_to_item.get(seed_entity, -1)
        pools = [self.pools[relation][v] - {seed_item} for v in self.values[relation].get(seed_entity, ())]
        pools = [p for p in pools if len(p) >= PICKS]
        for pool in pools:
            out[list(pool)] += PICKS / len(pool) / len(pools)
        return out


def _seed(context: list[int], model: PlantedModel) -> int:
    """The movie the sample's context mentions last (-1 if none)."""
    items = [e for e in context if e in model.entity_to_item]
    return items[-1] if items else -1


def _mixed(model: PlantedModel, seed_entity: int, strength: float) -> np.ndarray:
    """(3, n_items): p(m | A, r) per relation under taste strength s (module docstring)."""
    p = np.stack([model.pick_probabilities(seed_entity, r) for r in RELATIONS])
    return strength * p + (1.0 - strength) * p.mean(0, keepdims=True)


def relation_posteriors(ds: PreparedDataset, model: PlantedModel, users: set[int],
                        strength: float = 1.0) -> dict[int, np.ndarray]:
    """:math:`\\pi_u` (3,) per user from the rec samples of their support conversations.

    The picks of one conversation share its relation: conversation :math:`c` with per-relation
    likelihood :math:`L_r(c) = \\prod_{m \\in c} p(m \\mid A, r)` has likelihood
    :math:`s L_u(c) + (1 - s)\\,\\overline{L}(c)` if the user's relation is :math:`u` (the mean over
    relations for a conversation that does not follow it).
    """
    parts = ds.conversation_parts()
    samples = ds.table("rec_samples").filter(pc.is_in(ds.table("rec_samples").column("user_id"),
                                                      value_set=pc.cast(list(users), "int64")))
    per_conv: dict[tuple[int, str], np.ndarray] = {}  # Σ log p(label | A, r) over a conversation's picks
    for row in samples.to_pylist():
        if parts.get(row["conversation_id"], "support") != "support":
            continue
        seed, label = _seed(row["context_entity_ids"], model), model.entity_to_item.get(row["label"], -1)
        if seed < 0 or label < 0:
            continue
        lik = np.stack([model.pick_probabilities(seed, r) for r in RELATIONS])[:, label]
        key = (row["user_id"], row["conversation_id"])
        per_conv[key] = per_conv.get(key, np.zeros(len(RELATIONS))) + np.log(np.maximum(lik, FLOOR))
    log_post = {u: np.zeros(len(RELATIONS)) for u in users}
    for (user, _), ll in per_conv.items():
        top = ll.max()
        own, other = np.exp(ll - top), np.exp(ll - top).mean()
        log_post[user] += np.log(strength * own + (1.0 - strength) * other) + top
    out = {}
    for u, lp in log_post.items():
        w = np.exp(lp - lp.max())
        out[u] = w / w.sum()
    return out


def bayes_rows(prepared: str, reference: RecPredictions, strength: float = 1.0,
               seed: int = 0) -> tuple[dict[str, RecPredictions], dict]:
    """``({bayes_agnostic, bayes_support}: predictions on ``reference``'s samples, info)``;
    ``strength``: the data's taste strength s (module docstring).

    ``info["posterior"]``: mean posterior weight of the relation each user's support points to most,
    i.e. how clearly the support conversations reveal the taste.
    """
    ds = PreparedDataset.open(prepared)
    model = PlantedModel(ds)
    table = ds.table("rec_samples")
    by_id = {s["sample_id"]: s for s in table.filter(pc.is_in(
        table.column("sample_id"), value_set=pc.cast(reference.sample_ids.tolist(), "int64"))).to_pylist()}
    posteriors = relation_posteriors(ds, model, set(reference.user_ids), strength)
    gen = np.random.default_rng(seed)
    jitter = gen.random((len(reference.user_ids), model.num_items)) * 1e-9  # random tie order
    uniform = np.full(len(RELATIONS), 1 / len(RELATIONS))
    rows = {}
    for name in ("bayes_agnostic", "bayes_support"):
        scores = np.zeros((len(reference.user_ids), model.num_items))
        for i, (sid, user) in enumerate(zip(reference.sample_ids.tolist(), reference.user_ids, strict=True)):
            seed_entity = _seed(by_id[sid]["context_entity_ids"], model)
            if seed_entity >= 0:
                weights = uniform if name == "bayes_agnostic" else posteriors[user]
                scores[i] = weights @ _mixed(model, seed_entity, strength)
        s = torch.from_numpy(scores + jitter)
        rows[name] = RecPredictions(
            sample_ids=reference.sample_ids, conversation_ids=reference.conversation_ids,
            user_ids=reference.user_ids, labels=reference.labels, label_entities=reference.label_entities,
            ranks=label_ranks(s, reference.labels), label_in_context=reference.label_in_context,
            top=s.topk(min(TOP_K, model.num_items), dim=1).indices)
    info = {"posterior_top_mean": float(np.mean([p.max() for p in posteriors.values()])) if posteriors else 0.0}
    return rows, info
