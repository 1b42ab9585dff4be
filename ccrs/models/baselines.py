"""Trivial recommenders every table reports beside the models, so their numbers stay honest.

``popularity``
    Scores = log(1 + number of training samples whose label is the item): the same ranking for every
    sample.
``repeat_context``
    Items already mentioned in the context first (most recently mentioned first), then the rest by
    popularity. On ReDial many targets are re-mentions, so this is strong on the standard protocol
    and collapses to popularity on the dedup variant (see ``shared/notes/crs-evaluation.md``).

``history_popularity``
    Movies of the user's earlier conversations (:mod:`ccrs.data.history`) first, the most recently
    mentioned first (then the most often mentioned, then the more popular), then the rest by
    popularity. It sees the history and not the current conversation: what history alone is worth.

All are ``nn.Module`` s with the same ``forward(batch) → (B, n_items)`` as the neural recommender, so
the evaluator and the checkpoint code treat every model alike; they have no trainable parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ccrs.data.history import MAX_AGE, MAX_COUNT
from ccrs.data.rec_examples import RecBatch


class PopularityRecommender(nn.Module):
    def __init__(self, num_items: int) -> None:
        super().__init__()
        self.register_buffer("counts", torch.zeros(num_items))

    def fit(self, labels: Tensor) -> PopularityRecommender:
        self.counts.zero_()
        self.counts.index_add_(0, labels, torch.ones_like(labels, dtype=self.counts.dtype))
        return self

    def popularity(self) -> Tensor:
        return torch.log1p(self.counts)  # (n_items,)

    def forward(self, batch: RecBatch) -> Tensor:
        return self.popularity().expand(batch.labels.numel(), -1).clone()


class _ListedFirstRecommender(PopularityRecommender):
    """Popularity, with the movies a batch lists (context or history) ranked above every other one."""

    def __init__(self, num_items: int, entity_to_item: Tensor) -> None:
        super().__init__(num_items)
        self.register_buffer("entity_to_item", entity_to_item, persistent=False)

    def normalised_popularity(self, batch_size: int) -> Tensor:
        pop = self.popularity()
        return (pop / (pop.max() + 1.0)).expand(batch_size, -1).clone()  # (B, n_items) in [0, 1)

    @staticmethod
    def listed_first(scores: Tensor, items: Tensor, keep: Tensor, key: Tensor) -> Tensor:
        """``scores`` with each kept listed item (``items`` (B, m), item index or -1) replaced by its
        largest ``key`` (every key > 1, so above every unlisted item)."""
        best = torch.zeros_like(scores).scatter_reduce(
            1, items.clamp(min=0), torch.where(keep, key, torch.zeros_like(key)), reduce="amax")
        return torch.where(best > 0, best, scores)


class RepeatContextRecommender(_ListedFirstRecommender):
    def forward(self, batch: RecBatch) -> Tensor:
        scores = self.normalised_popularity(batch.labels.numel())
        items = self.entity_to_item[batch.context]  # (B, m), -1 for non-items
        # Recency key: later turn first, then later position in the (first-mention-ordered) list;
        # an item mentioned several times keeps its most recent mention.
        m = batch.context.size(1)
        pos = torch.arange(m, device=scores.device).expand_as(items)
        recency = batch.context_turns * (m + 1) + pos + 1  # > 0, larger = more recent
        return self.listed_first(scores, items, batch.context_mask & (items >= 0), 1.0 + recency.to(scores.dtype))


class HistoryPopularityRecommender(_ListedFirstRecommender):
    def forward(self, batch: RecBatch) -> Tensor:
        batch = batch.with_empty_history()
        scores = self.normalised_popularity(batch.labels.numel())
        items = self.entity_to_item[batch.history]  # (B, h), -1 for non-items
        # newer first, then more conversations, then popularity (< 1)
        key = 1.0 + ((MAX_AGE - batch.history_age) * (MAX_COUNT + 1) + batch.history_count).to(scores.dtype)
        key = key + torch.gather(scores, 1, items.clamp(min=0))
        return self.listed_first(scores, items, batch.history_mask & (items >= 0), key)
