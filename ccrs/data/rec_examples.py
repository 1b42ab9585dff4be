"""Recommendation examples of one split part, as tensors the models and the evaluator read.

    kg = KnowledgeGraph.from_dataset(ds)
    parts = rec_parts(ds, split="user", fold=3)        # {"train": RecExamples, "valid": ..., "test": ...}
    for batch in parts["train"].batches(64, shuffle=True, generator=g):
        scores = model(batch)                           # (B, n_items)

Which samples form each part (the fairness rule of :mod:`ccrs.data.splits`):

* ``user`` split: train = every conversation of the train users **plus the support conversations of
  the valid/test users**; valid/test = the **query** conversations of the valid/test users. A plain
  model thus sees exactly what a meta-learned model sees, and both are scored on the same samples.
* ``standard`` split: the CRSLab train/valid/test conversations.

Users are numbered from 1 in order of user id over the users that have training conversations;
index 0 is the cold-start user (any user with no training conversation, see
:class:`~ccrs.models.recommender.Recommender`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import Tensor

from ccrs.data import splits as splits_mod
from ccrs.data.dataset import PreparedDataset
from ccrs.data.history import HISTORY_COLUMNS, attach_history

COLD_START_USER = 0


@dataclass
class KnowledgeGraph:
    """The prepared KG as tensors: ``edge_index`` (2, E) head → tail, ``edge_type`` (E,)."""

    edge_index: Tensor
    edge_type: Tensor
    num_entities: int
    num_relations: int
    item_entity_ids: Tensor  # (n_items,) entity id of item index i
    entity_names: list[str]

    @classmethod
    def from_dataset(cls, ds: PreparedDataset) -> KnowledgeGraph:
        edges, entities = ds.table("kg_edges"), ds.table("entities")
        ei = np.stack([edges.column("head").to_numpy(), edges.column("tail").to_numpy()])
        item_index = entities.column("item_index").to_numpy()
        ids = entities.column("id").to_numpy()
        items = np.full(int((item_index >= 0).sum()), -1, dtype=np.int64)
        items[item_index[item_index >= 0]] = ids[item_index >= 0]
        return cls(
            edge_index=torch.from_numpy(ei.astype(np.int64)),
            edge_type=torch.from_numpy(edges.column("relation").to_numpy().astype(np.int64)),
            num_entities=len(entities),
            num_relations=len(ds.table("relations")),
            item_entity_ids=torch.from_numpy(items),
            entity_names=entities.column("name").to_pylist(),
        )

    @property
    def num_items(self) -> int:
        return int(self.item_entity_ids.numel())

    def entity_to_item(self) -> Tensor:
        """(num_entities,) item index of each entity, -1 for non-items."""
        out = torch.full((self.num_entities,), -1, dtype=torch.long)
        out[self.item_entity_ids] = torch.arange(self.num_items)
        return out


@dataclass
class RecBatch:
    """A padded batch. ``context`` keeps the most recent ``max_context_entities`` mentions."""

    sample_ids: Tensor  # (B,)
    labels: Tensor  # (B,) item index of the target
    users: Tensor  # (B,) user index (0 = cold start)
    context: Tensor  # (B, m) entity ids, 0-padded
    context_turns: Tensor  # (B, m) turn where each entity was last mentioned
    context_mask: Tensor  # (B, m) bool
    current_turn: Tensor  # (B,) turn index of the recommender turn being predicted
    label_in_context: Tensor  # (B,) bool
    # The user's history (ccrs.data.history): one entry per entity of their earlier conversations,
    # oldest first, 0-padded; None where the batch was built without one (same as an empty history).
    history: Tensor | None = None  # (B, h) entity ids
    history_age: Tensor | None = None  # (B, h) conversations back, 1..MAX_AGE
    history_flag: Tensor | None = None  # (B, h) role * 3 + liked
    history_count: Tensor | None = None  # (B, h) earlier conversations that mention it, 1..MAX_COUNT
    history_mask: Tensor | None = None  # (B, h) bool

    def context_lists(self) -> list[list[int]]:
        return [row[mask].tolist() for row, mask in zip(self.context, self.context_mask, strict=True)]

    def to(self, device) -> RecBatch:
        return RecBatch(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                           for f in fields(self)})

    def with_empty_history(self) -> RecBatch:
        """This batch with a history tensor of width 0 where it has none (models read one shape)."""
        if self.history is not None:
            return self
        empty = self.context.new_zeros(self.context.size(0), 0)
        return replace(self, history=empty, history_age=empty, history_flag=empty, history_count=empty,
                       history_mask=empty.bool())


class RecExamples:
    """All samples of one part, stored flat (offsets into a concatenated context array)."""

    def __init__(
        self,
        samples: pa.Table,
        entity_to_item: Tensor,
        user_index: dict[int, int],
        max_context_entities: int,
    ) -> None:
        self.table = samples
        self._entity_to_item, self._user_index = entity_to_item, user_index
        self.sample_ids = torch.from_numpy(samples.column("sample_id").to_numpy().astype(np.int64))
        label_entities = torch.from_numpy(samples.column("label").to_numpy().astype(np.int64))
        self.labels = entity_to_item[label_entities]
        if (self.labels < 0).any():
            bad = int(label_entities[self.labels < 0][0])
            raise ValueError(f"rec_samples label entity {bad} is not an item")
        self.label_entities = label_entities
        self.users = torch.tensor(
            [user_index.get(u, COLD_START_USER) for u in samples.column("user_id").to_pylist()], dtype=torch.long
        )
        self.user_ids = samples.column("user_id").to_pylist()
        self.conversation_ids = samples.column("conversation_id").to_pylist()
        self.current_turn = torch.from_numpy(samples.column("turn_index").to_numpy().astype(np.int64))
        self.label_in_context = torch.from_numpy(samples.column("label_in_context").to_numpy(zero_copy_only=False))
        ctx = samples.column("context_entity_ids").combine_chunks()
        turns = samples.column("context_entity_turns").combine_chunks()
        self._offsets = torch.from_numpy(ctx.offsets.to_numpy().astype(np.int64))
        self._ctx = torch.from_numpy(ctx.values.to_numpy().astype(np.int64))
        self._turns = torch.from_numpy(turns.values.to_numpy().astype(np.int64))
        self.max_context_entities = max_context_entities
        self._history = None
        if HISTORY_COLUMNS[0] in samples.column_names:
            cols = [samples.column(c).combine_chunks() for c in HISTORY_COLUMNS]
            self._history_offsets = torch.from_numpy(cols[0].offsets.to_numpy().astype(np.int64))
            self._history = [torch.from_numpy(c.values.to_numpy().astype(np.int64)) for c in cols]

    def __len__(self) -> int:
        return int(self.sample_ids.numel())

    def context_of(self, i: int) -> tuple[Tensor, Tensor]:
        lo, hi = int(self._offsets[i]), int(self._offsets[i + 1])
        lo = max(lo, hi - self.max_context_entities)  # keep the latest mentions
        return self._ctx[lo:hi], self._turns[lo:hi]

    def history_of(self, i: int) -> list[Tensor]:
        """The four history columns of sample ``i`` (entities, age, flag, count), oldest first."""
        lo, hi = int(self._history_offsets[i]), int(self._history_offsets[i + 1])
        return [col[lo:hi] for col in self._history]

    def _history_fields(self, index: Tensor) -> dict[str, Tensor]:
        if self._history is None:
            return {}
        rows = [self.history_of(int(i)) for i in index]
        padded = _pad([r[0] for r in rows]), _pad([r[1] for r in rows]), _pad([r[2] for r in rows]), \
            _pad([r[3] for r in rows])
        mask = _pad([torch.ones_like(r[0], dtype=torch.bool) for r in rows])
        return dict(zip(("history", "history_age", "history_flag", "history_count"), padded, strict=True)) | \
            {"history_mask": mask}

    def batch(self, index: Tensor) -> RecBatch:
        ctxs = [self.context_of(int(i)) for i in index]
        m = max([c.numel() for c, _ in ctxs] + [1])
        context = torch.zeros(len(ctxs), m, dtype=torch.long)
        turns = torch.zeros(len(ctxs), m, dtype=torch.long)
        mask = torch.zeros(len(ctxs), m, dtype=torch.bool)
        for b, (c, t) in enumerate(ctxs):
            context[b, : c.numel()], turns[b, : c.numel()], mask[b, : c.numel()] = c, t, True
        return RecBatch(
            **self._history_fields(index),
            sample_ids=self.sample_ids[index],
            labels=self.labels[index],
            users=self.users[index],
            context=context,
            context_turns=turns,
            context_mask=mask,
            current_turn=self.current_turn[index],
            label_in_context=self.label_in_context[index],
        )

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[RecBatch]:
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        for lo in range(0, len(self), batch_size):
            yield self.batch(order[lo : lo + batch_size])

    def select(self, index: Tensor | list[int], cold_start: bool = False) -> RecExamples:
        """A new ``RecExamples`` with only the samples at ``index`` (in that order); ``cold_start``
        maps every sample's user to the cold-start row."""
        index = torch.as_tensor(index, dtype=torch.long)
        out = RecExamples(self.table.take(pa.array(index.numpy())), self._entity_to_item, self._user_index,
                          self.max_context_entities)
        if cold_start:
            out.users = torch.full_like(out.users, COLD_START_USER)
        return out

    def subset(self, mask: Tensor) -> Tensor:
        """Indices of the samples where ``mask`` holds (e.g. ``~label_in_context`` for dedup)."""
        return torch.nonzero(mask, as_tuple=False).flatten()


def _pad(rows: list[Tensor]) -> Tensor:
    """Right-0-padded (len(rows), longest) tensor of 1-d ``rows`` (width 0 when all are empty)."""
    out = torch.zeros(len(rows), max([r.numel() for r in rows] + [0]), dtype=rows[0].dtype if rows else torch.long)
    for b, r in enumerate(rows):
        out[b, : r.numel()] = r
    return out


def rec_samples_with_history(ds: PreparedDataset, max_history_entities: int = 0) -> pa.Table:
    """``rec_samples`` with each sample's history (:func:`ccrs.data.history.attach_history`)."""
    return attach_history(ds, ds.table("rec_samples"), max_history_entities)


def part_of_conversations(ds: PreparedDataset, split: str, fold: int | None = None,
                          holdout_adaptation: bool = False) -> dict[str, str]:
    """``{conversation_id: train|valid|test|adapt}`` after the fairness rule (module docstring).

    ``holdout_adaptation`` (``user`` split): the valid/test users' support conversations become
    ``adapt`` instead of ``train``: no model trains on them, they are left for the meta-test
    adaptation (those users then have no user row: they start from the cold-start row).
    """
    by_split = ds.conversation_splits(split, fold)
    if split == "standard":
        return by_split
    parts = ds.conversation_parts()
    out = {c: splits_mod.user_split_roles(s, parts.get(c, "support")) for c, s in by_split.items()}
    if holdout_adaptation:
        out = {c: "adapt" if s != "train" and parts.get(c, "support") == "support" else out[c]
               for c, s in by_split.items()}
    return out


def build_user_index(samples: pa.Table, conv_part: dict[str, str]) -> dict[int, int]:
    """Users with at least one training sample → 1..n (0 is the cold-start user)."""
    users = {
        u
        for u, c in zip(samples.column("user_id").to_pylist(), samples.column("conversation_id").to_pylist(), strict=True)
        if conv_part.get(c) == "train"
    }
    return {u: i + 1 for i, u in enumerate(sorted(users))}


def rec_parts(
    ds: PreparedDataset,
    split: str = "user",
    fold: int | None = None,
    max_context_entities: int = 64,
    kg: KnowledgeGraph | None = None,
    user_index: dict[int, int] | None = None,
    holdout_adaptation: bool = False,
    max_history_entities: int = 0,
) -> tuple[dict[str, RecExamples], dict[int, int]]:
    """``({train, valid, test}: RecExamples, user_index)`` for one split (and fold for ``user``); every
    sample carries its history (``max_history_entities`` > 0 keeps that many most recent entries)."""
    kg = kg or KnowledgeGraph.from_dataset(ds)
    samples = rec_samples_with_history(ds, max_history_entities)
    conv_part = part_of_conversations(ds, split, fold, holdout_adaptation)
    if user_index is None:
        user_index = build_user_index(samples, conv_part)
    part_col = pa.array([conv_part.get(c, "none") for c in samples.column("conversation_id").to_pylist()])
    e2i = kg.entity_to_item()
    out = {}
    for part in ("train", "valid", "test"):
        sel = samples.filter(pc.equal(part_col, part))
        out[part] = RecExamples(sel, e2i, user_index, max_context_entities)
    return out, user_index
