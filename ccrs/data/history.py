"""A user's history: what their earlier conversations said, as entries a model can read.

    entries = conversation_entries(turns, liked)        # one conversation → [HistoryEntry]
    hist = merge_history([entries_of_c1, entries_of_c2])  # oldest first → History (entities, age, flag, count)
    table = attach_history(ds, ds.table("rec_samples"), max_entities=128)   # + 4 list columns

**What a history is.** The history of a sample of conversation ``c`` of user ``u`` is every
conversation of ``u`` ordered *before* ``c`` by conversation id (the order the ``user`` split uses:
:func:`ccrs.data.splits.conversation_sort_key`). It never contains ``c`` or anything after it
(``tests/data/test_history.py`` proves it on every sample). For a test user's first query conversation
that is exactly their support conversations; a later query conversation also sees the earlier query
conversations, as a service that remembers every conversation it received would (serving builds its
histories with the same two functions).

**One entry per distinct entity** (movies and linked non-movie entities), with

* ``age``: how many conversations back it was last mentioned (1 = the previous conversation), capped
  at :data:`MAX_AGE`;
* ``flag``: ``role * 3 + liked`` of that most recent mention: ``role`` 0 = only the seeker named it,
  1 = only the recommender, 2 = both; ``liked`` = the seeker's questionnaire answer for a movie
  (ReDial ``movie_feedback``: 0 no, 1 yes, 2 did not say; always 2 for a non-movie entity). The
  questionnaire is filled in at the end of a conversation, so only *past* conversations' answers are
  ever read;
* ``count``: in how many earlier conversations it was mentioned, capped at :data:`MAX_COUNT`.

Entries are ordered by recency of their last mention (oldest first, so a cap keeps the newest).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from ccrs.data.splits import conversation_sort_key

MAX_AGE = 8
MAX_COUNT = 4
N_FLAGS = 9  # role (3) × liked (3)
SEEKER_ROLE, RECOMMENDER_ROLE, BOTH_ROLES = 0, 1, 2
LIKED_UNKNOWN = 2
HISTORY_COLUMNS = ("history_entity_ids", "history_age", "history_flag", "history_count")


@dataclass(frozen=True)
class HistoryEntry:
    entity: int
    role: int  # SEEKER_ROLE | RECOMMENDER_ROLE | BOTH_ROLES
    liked: int  # 0 | 1 | 2 (LIKED_UNKNOWN)

    @property
    def flag(self) -> int:
        return self.role * 3 + self.liked


@dataclass
class History:
    """A merged history, oldest entry first (lists of equal length)."""

    entities: list[int]
    age: list[int]
    flag: list[int]
    count: list[int]

    def __len__(self) -> int:
        return len(self.entities)


EMPTY = History([], [], [], [])


def conversation_entries(turns: Iterable[tuple[str, Sequence[int]]], liked: dict[int, int] | None = None
                         ) -> list[HistoryEntry]:
    """The entries of one finished conversation, in order of first mention.

    ``turns``: ``(role, entity ids mentioned)`` per turn, role ``seeker`` or ``recommender``;
    ``liked``: entity id of a movie → the seeker's answer (0/1/2) where the questionnaire has one.
    """
    roles: dict[int, int] = {}
    for role, entities in turns:
        bit = SEEKER_ROLE if role == "seeker" else RECOMMENDER_ROLE
        for e in entities:
            prev = roles.get(e)
            roles[e] = bit if prev is None or prev == bit else BOTH_ROLES
    liked = liked or {}
    return [HistoryEntry(e, r, int(liked.get(e, LIKED_UNKNOWN))) for e, r in roles.items()]


def merge_history(conversations: Sequence[Sequence[HistoryEntry]], max_entities: int = 0) -> History:
    """One entry per entity over ``conversations`` (oldest first): the last mention gives age and flag.

    ``max_entities`` > 0 keeps the ``max_entities`` most recently mentioned entities."""
    n = len(conversations)
    last: dict[int, tuple[int, int]] = {}  # entity → (conversation position, flag)
    count: dict[int, int] = defaultdict(int)
    for pos, entries in enumerate(conversations):
        for entry in entries:
            last.pop(entry.entity, None)  # re-insert: dict order = order of last mention
            last[entry.entity] = (pos, entry.flag)
            count[entry.entity] += 1
    items = list(last.items())
    if max_entities > 0:
        items = items[-max_entities:]
    return History(
        entities=[e for e, _ in items],
        age=[min(n - pos, MAX_AGE) for _, (pos, _) in items],
        flag=[f for _, (_, f) in items],
        count=[min(count[e], MAX_COUNT) for e, _ in items],
    )


def dataset_conversation_entries(ds) -> dict[str, list[HistoryEntry]]:
    """:func:`conversation_entries` of every conversation of a prepared dataset (turns + feedback)."""
    liked: dict[str, dict[int, int]] = defaultdict(dict)
    fb = ds.table("movie_feedback")
    # The seeker's own answer wins; the recommender's answer about the seeker fills "did not say".
    rows = sorted(zip(fb.column("conversation_id").to_pylist(), fb.column("entity_id").to_pylist(),
                      fb.column("liked").to_pylist(), fb.column("answered_by").to_pylist(), strict=True),
                  key=lambda r: r[3] == "seeker")
    for conv, entity, answer, _by in rows:
        if answer != LIKED_UNKNOWN or entity not in liked[conv]:
            liked[conv][entity] = answer
    turns = ds.table("turns")
    by_conv: dict[str, list[tuple[str, list[int]]]] = defaultdict(list)
    for conv, role, items, ents in zip(turns.column("conversation_id").to_pylist(), turns.column("role").to_pylist(),
                                       turns.column("item_ids").to_pylist(), turns.column("entity_ids").to_pylist(),
                                       strict=True):
        by_conv[conv].append((role, ents + items))
    return {c: conversation_entries(t, liked.get(c)) for c, t in by_conv.items()}


def conversation_histories(ds, max_entities: int = 0) -> dict[str, History]:
    """``{conversation_id: History}``: each conversation's history, from the seeker's earlier ones."""
    entries = dataset_conversation_entries(ds)
    convs = ds.table("conversations")
    by_user: dict[int, list[str]] = defaultdict(list)
    for c, u in zip(convs.column("conversation_id").to_pylist(), convs.column("seeker_id").to_pylist(), strict=True):
        by_user[u].append(c)
    out: dict[str, History] = {}
    for conv_ids in by_user.values():
        ordered = sorted(conv_ids, key=conversation_sort_key)
        for i, c in enumerate(ordered):
            out[c] = merge_history([entries.get(p, []) for p in ordered[:i]], max_entities)
    return out


def attach_history(ds, samples: pa.Table, max_entities: int = 0) -> pa.Table:
    """``samples`` (rows of ``rec_samples``) with the four :data:`HISTORY_COLUMNS` of their conversation."""
    cache = ds.__dict__.setdefault("_histories", {})
    if max_entities not in cache:
        cache[max_entities] = conversation_histories(ds, max_entities)
    hists = cache[max_entities]
    per_sample = [hists.get(c, EMPTY) for c in samples.column("conversation_id").to_pylist()]
    out = samples
    for name, attr in zip(HISTORY_COLUMNS, ("entities", "age", "flag", "count"), strict=True):
        col = pa.array([getattr(h, attr) for h in per_sample], type=pa.list_(pa.int64()))
        out = out.drop_columns([name]) if name in out.column_names else out
        out = out.append_column(name, col)
    return out
