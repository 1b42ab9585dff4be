"""Does adaptation turn the user-guided attention (Eqs. 2–3) toward the user's planted relation?

    report = attention_toward_taste(training, prepared, role="test")
    report["mass_adapted"], report["mass_unadapted"], report["share_users_up"]

For each user of ``role``, the relation their support conversations point to is the argmax of the
Bayes posterior (:func:`ccrs.experiments.planted_oracle.relation_posteriors`: on the planted data it
is the planted relation for every user, tested). On the seed movies of the user's query samples,
the first layer's attention mass on edges of that relation into the movie's node is read (heads
averaged; :func:`ccrs.experiments.figures.relation_attention`) with the user's adapted parameters and
without adaptation (β = 0, the meta-learned starting row). If customization works *through* the
user-guided attention, the mass on the user's relation rises after adaptation for most users on the
planted data, and moves either way on the control.
"""

from __future__ import annotations

import numpy as np

from ccrs.data.dataset import PreparedDataset
from ccrs.experiments.planted_oracle import RELATIONS, PlantedModel, relation_posteriors


def attention_toward_taste(training, prepared: str, role: str = "test", max_movies: int = 8) -> dict:
    """Mean attention mass on the user's relation, adapted vs β = 0 (module docstring).

    ``training``: a fitted :class:`ccrs.meta.rec_training.RecMetaTraining` (its ``maml`` and ``tasks``).
    """
    from ccrs.experiments.figures import relation_attention

    ds = PreparedDataset.open(prepared)
    names = ds.table("relations").column("name").to_pylist()
    users = [u for u in training.tasks.of_role(role) if u.support.numel() and u.query.numel()]
    posteriors = relation_posteriors(ds, PlantedModel(ds), {int(u.user_id) for u in users})
    examples = training.tasks.examples
    adapted, unadapted = [], []
    for user in users:
        rel = names.index(RELATIONS[int(np.argmax(posteriors[int(user.user_id)]))])
        seeds = sorted({int(examples.context_of(int(i))[0][-1]) for i in user.query.tolist()})[:max_movies]
        movies = [{"name": str(e), "entity_id": e} for e in seeds]
        share = []
        for adapt in (True, False):
            mass = np.asarray(relation_attention(training.maml, training.tasks, movies, names, [user],
                                                 training.eval_cold_start, adapt=adapt)["mass"][0])  # (movies, R)
            share.append(float((mass[:, rel] / np.maximum(mass.sum(1), 1e-12)).mean()))
        adapted.append(share[0])
        unadapted.append(share[1])
    a, b = np.asarray(adapted), np.asarray(unadapted)
    return {"role": role, "users": len(users), "mass_adapted": float(a.mean()) if a.size else 0.0,
            "mass_unadapted": float(b.mean()) if b.size else 0.0,
            "share_users_up": float((a > b).mean()) if a.size else 0.0}
