"""The frozen recommender's view of each generation sample: p_u (Eq. 8) and its item ranking.

The generator is conditioned on p_u (paper §2.3); the recommender is frozen while the generator
trains, so p_u is computed once per sample. The top-ranked items are kept for filling item slots.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ccrs.data.gen_examples import GenExamples


@torch.no_grad()
def recommender_views(recommender, examples: GenExamples, top_k: int = 50, batch_size: int = 256,
                      progress: bool = False) -> tuple[Tensor, Tensor]:
    """``(p_u (N, d), top items (N, top_k))`` for every sample of ``examples`` (recommender in eval mode)."""
    from tqdm.auto import tqdm

    from ccrs.progress import bar_disabled

    recommender.eval()
    device = next(recommender.parameters()).device
    p_us, tops = [], []
    n = len(examples)
    for lo in tqdm(range(0, n, batch_size), desc="recommender p_u", disable=bar_disabled(progress)):
        batch = examples.rec_batch(range(lo, min(lo + batch_size, n)), recommender.cfg.max_context_entities).to(device)
        p_us.append(recommender.user_intention(batch).cpu())
        tops.append(torch.topk(recommender(batch), min(top_k, recommender.item_entity_ids.numel()), dim=1).indices.cpu())
    return torch.cat(p_us), torch.cat(tops)
