"""Trivial recommenders every table reports beside the models, so their numbers stay honest.

``popularity``
    Scores = log(1 + number of training samples whose label is the item): the same ranking for every
    sample.
``repeat_context``
    Items already mentioned in the context first (most recently mentioned first), then the rest by
    popularity. On ReDial many targets are re-mentions, so this is strong on the standard protocol
    and collapses to popularity on the dedup variant (see ``shared/notes/crs-evaluation.md``).

Both are ``nn.Module`` s with the same ``forward(batch) → (B, n_items)`` as the neural recommender, so
the evaluator and the checkpoint code treat every model alike; they have no trainable parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

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


class RepeatContextRecommender(PopularityRecommender):
    def __init__(self, num_items: int, entity_to_item: Tensor) -> None:
        super().__init__(num_items)
        self.register_buffer("entity_to_item", entity_to_item, persistent=False)

    def forward(self, batch: RecBatch) -> Tensor:
        pop = self.popularity()
        scores = (pop / (pop.max() + 1.0)).expand(batch.labels.numel(), -1).clone()  # in [0, 1)
        items = self.entity_to_item[batch.context]  # (B, m), -1 for non-items
        keep = batch.context_mask & (items >= 0)
        # Recency key: later turn first, then later position in the (first-mention-ordered) list.
        m = batch.context.size(1)
        pos = torch.arange(m, device=scores.device).expand_as(items)
        recency = batch.context_turns * (m + 1) + pos + 1  # > 0, larger = more recent
        bonus = 1.0 + recency.to(scores.dtype)  # every mentioned item above every unmentioned one
        # An item mentioned several times keeps its most recent mention (amax); non-items add 0.
        best = torch.zeros_like(scores).scatter_reduce(
            1, items.clamp(min=0), torch.where(keep, bonus, torch.zeros_like(bonus)), reduce="amax"
        )
        return torch.where(best > 0, best, scores)
