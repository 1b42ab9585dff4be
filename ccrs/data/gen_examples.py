"""Generation samples: one per recommender turn, tokenized, with what the recommender needs for p_u.

    samples = gen_samples(ds)                                    # every recommender turn (turn > 0)
    tok = WordTokenizer.build(train_texts(samples, parts), ...)  # vocabulary of the training split only
    ex = GenExamples(samples, tok, user_index, cfg.generator)
    ex.attach_user_vectors(p_u)                                   # (N, d) from the frozen recommender
    batch = ex.batch(torch.arange(8))                             # GenBatch

Like CRSLab: a sample is a **recommender** turn that is not the first turn of its conversation; the
context is every earlier turn, each followed by ``__end__``, truncated to the last
``max_context_tokens``; the target is the turn truncated to ``max_response_tokens`` (``__end__``
included). Movie mentions are the item placeholder in both. The recommender's view of the same
point of the dialogue (entities mentioned before the turn, the turn they were last mentioned in)
is built exactly like ``rec_samples``, so p_u is the recommender's for the same context and user.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from ccrs.config import GeneratorConfig
from ccrs.data.dataset import PreparedDataset
from ccrs.data.rec_examples import COLD_START_USER, RecBatch
from ccrs.data.tokenizer import WordTokenizer
from ccrs.data.turns import RECOMMENDER


@dataclass
class GenSample:
    sample_id: int
    conversation_id: str
    user_id: int
    turn_index: int
    context: list[str]  # earlier turns' texts
    response: str
    context_entity_ids: list[int]  # entities mentioned before this turn, first-mention order
    context_entity_turns: list[int]  # turn each was last mentioned in
    response_item_ids: list[int]  # item entities the reference names, in slot order


def gen_samples(ds: PreparedDataset) -> list[GenSample]:
    """Every recommender turn with a non-empty context, in (conversation, turn) order."""
    turns = ds.table("turns").to_pydict()
    seeker = dict(zip(*(ds.table("conversations").column(c).to_pylist() for c in ("conversation_id", "seeker_id")),
                      strict=True))
    by_conv: dict[str, list[int]] = {}
    for i, c in enumerate(turns["conversation_id"]):
        by_conv.setdefault(c, []).append(i)
    out: list[GenSample] = []
    for conv in sorted(by_conv, key=lambda c: (len(c), c)):
        rows = sorted(by_conv[conv], key=lambda i: turns["turn_index"][i])
        texts: list[str] = []
        last_turn: dict[int, int] = {}
        for i in rows:
            t, text = turns["turn_index"][i], turns["text"][i]
            if turns["role"][i] == RECOMMENDER and t > 0 and texts:
                out.append(GenSample(len(out), conv, seeker[conv], t, list(texts), text, list(last_turn),
                                     list(last_turn.values()), list(turns["item_ids"][i])))
            texts.append(text)
            for e in turns["entity_ids"][i] + turns["item_ids"][i]:
                last_turn[e] = t
    return out


@dataclass
class GenBatch:
    sample_ids: Tensor  # (B,)
    context: Tensor  # (B, Lc) token ids, right-padded
    response_in: Tensor  # (B, T) __start__ + target[:-1]
    response_out: Tensor  # (B, T) target, padded with __pad__
    user_vec: Tensor  # (B, d) p_u of the frozen recommender (zeros if none attached)
    users: Tensor  # (B,) recommender user rows (0 = cold start)

    def to(self, device) -> GenBatch:
        return GenBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __len__(self) -> int:
        return int(self.sample_ids.numel())


class GenExamples:
    """Tokenized samples of one part (any subset of :func:`gen_samples`)."""

    def __init__(self, samples: list[GenSample], tok: WordTokenizer, user_index: dict[int, int],
                 cfg: GeneratorConfig, user_dim: int = 128) -> None:
        self.samples, self.tok, self.cfg = samples, tok, cfg
        self.user_index = user_index
        self.contexts = [self._context_ids(s) for s in samples]
        self.targets = [self._target_ids(s.response) for s in samples]
        self.sample_ids = torch.tensor([s.sample_id for s in samples], dtype=torch.long)
        self.users = torch.tensor([user_index.get(s.user_id, COLD_START_USER) for s in samples], dtype=torch.long)
        self.user_vectors = torch.zeros(len(samples), user_dim)

    def _context_ids(self, s: GenSample) -> list[int]:
        ids: list[int] = []
        for text in s.context:
            ids += self.tok.encode(text) + [self.tok.end_id]
        return ids[-self.cfg.max_context_tokens :]

    def _target_ids(self, text: str) -> list[int]:
        return self.tok.encode(text)[: self.cfg.max_response_tokens - 1] + [self.tok.end_id]

    def __len__(self) -> int:
        return len(self.samples)

    def attach_user_vectors(self, p_u: Tensor) -> None:
        if p_u.shape[0] != len(self):
            raise ValueError(f"{p_u.shape[0]} user vectors for {len(self)} samples")
        self.user_vectors = p_u.detach().cpu().float()

    def select(self, index: Tensor | list[int]) -> GenExamples:
        idx = [int(i) for i in index]
        out = GenExamples.__new__(GenExamples)
        out.samples, out.tok, out.cfg, out.user_index = [self.samples[i] for i in idx], self.tok, self.cfg, self.user_index
        out.contexts, out.targets = [self.contexts[i] for i in idx], [self.targets[i] for i in idx]
        t = torch.tensor(idx, dtype=torch.long)
        out.sample_ids, out.users, out.user_vectors = self.sample_ids[t], self.users[t], self.user_vectors[t]
        return out

    def batch(self, index: Tensor | list[int]) -> GenBatch:
        idx = [int(i) for i in index]
        pad = self.tok.pad_id
        lc = max([len(self.contexts[i]) for i in idx] + [1])
        lt = max(len(self.targets[i]) for i in idx) if idx else 1
        context = torch.full((len(idx), lc), pad, dtype=torch.long)
        r_in = torch.full((len(idx), lt), pad, dtype=torch.long)
        r_out = torch.full((len(idx), lt), pad, dtype=torch.long)
        for b, i in enumerate(idx):
            c, y = self.contexts[i], self.targets[i]
            context[b, : len(c)] = torch.tensor(c, dtype=torch.long)
            r_out[b, : len(y)] = torch.tensor(y, dtype=torch.long)
            r_in[b, : len(y)] = torch.tensor([self.tok.start_id, *y[:-1]], dtype=torch.long)
        t = torch.tensor(idx, dtype=torch.long)
        return GenBatch(self.sample_ids[t], context, r_in, r_out, self.user_vectors[t], self.users[t])

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None):
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        for lo in range(0, len(self), batch_size):
            yield self.batch(order[lo : lo + batch_size])

    def rec_batch(self, index: Tensor | list[int], max_context_entities: int) -> RecBatch:
        """The recommender's input for the same dialogue points (labels unused: zeros)."""
        idx = [int(i) for i in index]
        ctxs = [(self.samples[i].context_entity_ids[-max_context_entities:],
                 self.samples[i].context_entity_turns[-max_context_entities:]) for i in idx]
        m = max([len(c) for c, _ in ctxs] + [1])
        context = torch.zeros(len(idx), m, dtype=torch.long)
        turns = torch.zeros(len(idx), m, dtype=torch.long)
        mask = torch.zeros(len(idx), m, dtype=torch.bool)
        for b, (c, t) in enumerate(ctxs):
            context[b, : len(c)], turns[b, : len(c)], mask[b, : len(c)] = torch.tensor(c), torch.tensor(t), True
        t = torch.tensor(idx, dtype=torch.long)
        return RecBatch(
            sample_ids=self.sample_ids[t], labels=torch.zeros(len(idx), dtype=torch.long), users=self.users[t],
            context=context, context_turns=turns, context_mask=mask,
            current_turn=torch.tensor([self.samples[i].turn_index for i in idx], dtype=torch.long),
            label_in_context=torch.zeros(len(idx), dtype=torch.bool),
        )
