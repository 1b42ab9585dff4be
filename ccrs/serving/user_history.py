"""What the service remembers of a user: the entities of their finished conversations, bounded.

    record = append_conversation(None, entries, limits)     # a user's first finished conversation
    record = append_conversation(record, entries, limits)   # a later one (oldest dropped past the bound)
    hist = history_of(record, max_entities=128)             # ccrs.data.history.History: what models read
    describe(record, entity_names)                          # what GET /v1/users/{id} shows

A record is a dict of tensors (one row per (conversation, entity) entry: ``entity``, ``role``,
``liked``, ``conversation`` = a sequence number per user, and ``updated`` = seconds since the epoch of
the last change), so it is archived exactly like an adaptation
(:class:`~ccrs.serving.adaptation_archive.AdaptationArchive`: ``.npz``, atomic, never a pickle).
The history a model reads is :func:`ccrs.data.history.merge_history` over the record's conversations,
oldest first: the same function that builds the training histories, so a served user's history
has the shape and meaning the model was trained on.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import torch
from torch import Tensor

from ccrs.data.history import History, HistoryEntry, merge_history

Record = dict[str, Tensor]
FIELDS = ("entity", "role", "liked", "conversation")


@dataclass(frozen=True)
class HistoryLimits:
    """Bounds of one user's record: the newest conversations kept, and entries in all."""

    max_conversations: int = 50
    max_entities: int = 2000

    def __post_init__(self) -> None:
        if self.max_conversations < 1 or self.max_entities < 1:
            raise ValueError("history limits must be >= 1")


def append_conversation(record: Record | None, entries: list[HistoryEntry], limits: HistoryLimits = HistoryLimits(),
                        now: float | None = None) -> Record:
    """``record`` with one more finished conversation (its entries as :func:`conversation_entries`
    gives them), the oldest conversations dropped past ``limits``."""
    old = _rows(record)
    seq = (max(r[3] for r in old) + 1) if old else 0
    rows = old + [(e.entity, e.role, e.liked, seq) for e in entries]
    kept_convs = sorted({r[3] for r in rows})[-limits.max_conversations:]
    rows = [r for r in rows if r[3] >= kept_convs[0]] if kept_convs else []
    rows = rows[-limits.max_entities:]
    out = {name: torch.tensor([r[i] for r in rows], dtype=torch.long) for i, name in enumerate(FIELDS)}
    out["updated"] = torch.tensor([time.time() if now is None else now], dtype=torch.float64)
    return out


def conversations_of(record: Record | None) -> list[list[HistoryEntry]]:
    """The record's conversations, oldest first, each as its entries."""
    by_conv: dict[int, list[HistoryEntry]] = {}
    for entity, role, liked, conv in _rows(record):
        by_conv.setdefault(conv, []).append(HistoryEntry(entity, role, liked))
    return [by_conv[c] for c in sorted(by_conv)]


def history_of(record: Record | None, max_entities: int = 0) -> History:
    """The merged history a model reads (:func:`ccrs.data.history.merge_history`)."""
    return merge_history(conversations_of(record), max_entities)


def describe(record: Record, entity_names: list[str], is_item) -> dict:
    """A JSON-able summary: conversations, last update, each entity with its name and count."""
    counts = Counter(entity for entity, *_ in _rows(record))
    hist = history_of(record)
    return {
        "conversations": len(conversations_of(record)),
        "updated": float(record["updated"][0]),
        "entities": [{"entity_id": e, "name": entity_names[e], "kind": "movie" if is_item(e) else "entity",
                      "conversations": counts[e], "last_seen_conversations_ago": a}
                     for e, a in sorted(zip(hist.entities, hist.age, strict=True), key=lambda x: (x[1], -counts[x[0]]))],
    }


def _rows(record: Record | None) -> list[tuple[int, int, int, int]]:
    if not record:
        return []
    cols = [record[name].tolist() for name in FIELDS]
    return list(zip(*cols, strict=True))
