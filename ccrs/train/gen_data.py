"""Everything the generator stage reads, assembled once: samples, vocabulary, parts, p_u, item names.

    data = load_gen_data(ds, fold=0, cfg=cfg, rec_ckpt="runs/rec_meta/ccrs-fold0/eval/best.pt")
    data.part("train")          # GenExamples of the training part (user split, fairness rule)
    data.tokenizer              # built from the training part's turns (or given: a checkpoint's)

Parts follow the recommender's fairness rule (``ccrs.data.rec_examples.part_of_conversations``):
train = train users' conversations + valid/test users' support conversations; valid/test = the
query conversations of valid/test users. All generator variants are conditioned on the same frozen
recommender (``rec_ckpt``), so rows of one table differ only by the generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ccrs.config import CCRSConfig
from ccrs.data.dataset import PreparedDataset
from ccrs.data.gen_examples import GenExamples, gen_samples
from ccrs.data.rec_examples import KnowledgeGraph, part_of_conversations
from ccrs.data.tokenizer import WordTokenizer
from ccrs.inference.slots import item_display_names
from ccrs.models.factory import load_recommender
from ccrs.models.user_vectors import recommender_views


@dataclass
class GenData:
    tokenizer: WordTokenizer
    examples: GenExamples  # every sample, p_u attached
    part_index: dict[str, Tensor]  # train | valid | test → indices into ``examples``
    conversation_part: dict[str, str]  # conversation → support | query
    user_role: dict[int, str]  # user → train | valid | test
    top_items: Tensor  # (N, k) recommender ranking per sample
    mentioned_items: list[list[int]]  # item indices mentioned before each sample's turn
    item_names: dict[int, str]
    rec_checkpoint: str

    def part(self, name: str) -> GenExamples:
        return self.examples.select(self.part_index[name])


def load_gen_data(ds: PreparedDataset | str, fold: int, cfg: CCRSConfig, rec_ckpt: str,
                  tokenizer: WordTokenizer | None = None, progress: bool = False, device: str = "cpu") -> GenData:
    ds = ds if isinstance(ds, PreparedDataset) else PreparedDataset.open(ds)
    kg = KnowledgeGraph.from_dataset(ds)
    recommender, _rec_cfg, user_index = load_recommender(rec_ckpt, kg, device)
    samples = gen_samples(ds)
    conv_part = part_of_conversations(ds, "user", fold)
    if tokenizer is None:
        turns = ds.table("turns")
        train_texts = [t for c, t in zip(turns.column("conversation_id").to_pylist(), turns.column("text").to_pylist(),
                                         strict=True) if conv_part.get(c) == "train"]
        tokenizer = WordTokenizer.build(train_texts, cfg.generator.min_word_count, ds.manifest["item_placeholder"])
    examples = GenExamples(samples, tokenizer, user_index, cfg.generator, recommender.cfg.entity_dim)
    p_u, top = recommender_views(recommender, examples, progress=progress)
    examples.attach_user_vectors(p_u)
    part_index = {
        name: torch.tensor([i for i, s in enumerate(samples) if conv_part.get(s.conversation_id) == name], dtype=torch.long)
        for name in ("train", "valid", "test")
    }
    e2i = kg.entity_to_item()
    mentioned = [[int(e2i[e]) for e in s.context_entity_ids if e2i[e] >= 0] for s in samples]
    return GenData(tokenizer, examples, part_index, ds.conversation_parts(), ds.user_splits(fold), top, mentioned,
                   item_display_names(ds), rec_ckpt)
