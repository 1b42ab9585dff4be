"""One constructor for every variant of ``RecommenderConfig.variant``."""

from __future__ import annotations

from torch import nn

from ccrs.config import RecommenderConfig
from ccrs.data.rec_examples import KnowledgeGraph, RecExamples
from ccrs.models.baselines import PopularityRecommender, RepeatContextRecommender
from ccrs.models.recommender import NEURAL_VARIANTS, Recommender

TRAINABLE = NEURAL_VARIANTS


def build_recommender(
    cfg: RecommenderConfig, kg: KnowledgeGraph, num_users: int, train: RecExamples | None = None
) -> nn.Module:
    """A fresh model; the non-neural baselines are fitted on ``train`` labels right away."""
    if cfg.variant in NEURAL_VARIANTS:
        return Recommender(cfg, kg, num_users)
    if cfg.variant == "popularity":
        model = PopularityRecommender(kg.num_items)
    else:
        model = RepeatContextRecommender(kg.num_items, kg.entity_to_item())
    if train is not None:
        model.fit(train.labels)
    return model
