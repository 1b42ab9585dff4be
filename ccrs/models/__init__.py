"""Recommender models (plain PyTorch / PyG; no Ray): the neural variants and the trivial baselines."""

from ccrs.models.baselines import PopularityRecommender, RepeatContextRecommender
from ccrs.models.factory import build_recommender
from ccrs.models.recommender import Recommender

__all__ = ["PopularityRecommender", "Recommender", "RepeatContextRecommender", "build_recommender"]
