"""The generator behind the API, without Ray: dialogue + the recommender's view → a response.

    gen = GeneratorService.load("runs/.../dial-meta-fold0/eval/best.pt")
    out = gen.respond([Reply(turns, p_u, ranked_items, mentioned_items)], item_names)
    out[0].text, out[0].items, out[0].style_mixture

The dialogue is encoded as in training (each turn's words then ``__end__``, the last
``max_context_tokens``), decoded with the checkpoint's decoding settings, and every ``__item__``
is filled by :func:`ccrs.inference.slots.fill_slots` from the recommender's ranking (best
unmentioned item first). The style mixture μ_u^m (Eq. 9) comes back with each response.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from ccrs import storage
from ccrs.data.gen_examples import GenBatch
from ccrs.data.tokenizer import UNK
from ccrs.inference.decoding import generate_with
from ccrs.inference.slots import fill_slots
from ccrs.models.generator import load_generator


@dataclass
class Reply:
    turns: list[tuple[str, str]]
    p_u: Tensor  # (d,) from the recommender
    ranked_items: list[int]
    mentioned_items: list[int]


@dataclass
class Response:
    text: str
    items: list[int]  # the items placed in the slots, in order
    style_mixture: list[float] | None
    tokens: list[str]
    version: str = ""  # the checkpoint version that generated it


class GeneratorService:
    def __init__(self, model, cfg, tokenizer, version: str) -> None:
        self.model, self.cfg, self.tok, self.version = model.eval(), cfg, tokenizer, version

    @classmethod
    def load(cls, gen_ckpt: str) -> GeneratorService:
        """Safe loading; a missing or corrupt checkpoint raises ``CheckpointError`` naming it."""
        model, cfg, tok, _payload = load_generator(gen_ckpt)
        version = hashlib.sha256(storage.read_bytes(storage.resolve(gen_ckpt))).hexdigest()[:12]
        return cls(model, cfg, tok, version)

    def context_ids(self, turns: list[tuple[str, str]]) -> list[int]:
        ids: list[int] = []
        for _role, text in turns:
            ids += self.tok.encode(text) + [self.tok.end_id]
        return ids[-self.cfg.generator.max_context_tokens :] or [self.tok.end_id]

    def batch(self, replies: list[Reply]) -> GenBatch:
        ctx = [self.context_ids(r.turns) for r in replies]
        width = max(len(c) for c in ctx)
        context = torch.full((len(replies), width), self.tok.pad_id, dtype=torch.long)
        for i, c in enumerate(ctx):
            context[i, : len(c)] = torch.tensor(c)
        start = torch.full((len(replies), 1), self.tok.start_id, dtype=torch.long)
        return GenBatch(torch.arange(len(replies)), context, start, start, torch.stack([r.p_u.float() for r in replies]),
                        torch.zeros(len(replies), dtype=torch.long))

    @torch.no_grad()
    def respond(self, replies: list[Reply], item_names: Mapping[int, str]) -> list[Response]:
        g = self.cfg.generator
        out = generate_with(self.model, self.batch(replies), g)
        responses = []
        for i, ids in enumerate(out.tokens):
            # An unknown word is no word to show a user (the metrics keep it, as CRSLab does).
            words = [w for w in self.tok.tokens(ids) if w != UNK]
            filled = fill_slots(words, self.tok.item_placeholder, replies[i].ranked_items, replies[i].mentioned_items,
                                item_names)
            mix = None if out.mixture is None else [round(float(v), 4) for v in out.mixture[i]]
            responses.append(Response(filled.text, filled.items, mix, words, self.version))
        return responses
