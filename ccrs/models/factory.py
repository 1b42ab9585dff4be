"""One constructor for every variant of ``RecommenderConfig.variant``."""

from __future__ import annotations

from torch import nn

from ccrs.config import RecommenderConfig
from ccrs.data.rec_examples import KnowledgeGraph, RecExamples
from ccrs.models.baselines import (
    HistoryPopularityRecommender,
    PopularityRecommender,
    RepeatContextRecommender,
)
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
    elif cfg.variant == "history_popularity":
        model = HistoryPopularityRecommender(kg.num_items, kg.entity_to_item())
    else:
        model = RepeatContextRecommender(kg.num_items, kg.entity_to_item())
    if train is not None:
        model.fit(train.labels)
    return model


def load_recommender(uri, kg: KnowledgeGraph, map_location: str = "cpu"):
    """``(model in eval mode, CCRSConfig, user_index)`` from a ``best.pt`` of ``ccrs train rec`` or of
    ``ray_jobs.train_recommender`` (safe loading; :class:`~ccrs.checkpoint.CheckpointError` if unusable)."""
    from ccrs.checkpoint import CheckpointError, load_checkpoint
    from ccrs.config import config_from_dict

    payload = load_checkpoint(uri, map_location)
    if payload.get("format") != "ccrs.recommender/1":
        raise CheckpointError(f"{uri}: format {payload.get('format')!r} is not a recommender checkpoint")
    cfg = config_from_dict(payload["config"])
    user_index = dict(zip(payload["user_ids"], payload["user_rows"], strict=True))
    model = build_recommender(cfg.recommender, kg, len(user_index))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{uri}: does not fit this dataset's KG ({str(exc).splitlines()[0]})") from None
    # How a meta checkpoint adapts (learned Meta-SGD rates, cold-start rows): read by the services.
    model.meta_info = {"inner_lrs": payload.get("inner_lrs") or {}, "eval_cold_start": bool(payload.get("eval_cold_start"))}
    return model.eval(), cfg, user_index
