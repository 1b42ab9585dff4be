"""Meta-training (MAML per user, paper §2.4): a model-agnostic engine and the recommender's tasks. No Ray."""

from ccrs.meta.maml import MAML, MetaTask, meta_step, split_parameters

__all__ = ["MAML", "MetaTask", "meta_step", "split_parameters"]
