"""Recommendation samples, exactly as CRSLab/KGSF build them (see ``shared/notes/crs-evaluation.md``).

One sample per **recommender** turn (not the first turn of a conversation: CRSLab needs a non-empty
context) × each distinct movie mentioned in it. The context is every entity mentioned in earlier
turns, deduplicated in order of first mention; inside a turn, linked non-movie entities come before
movies (CRSLab's ``entities + movies``). Each context entity carries the index of the turn where it was
**last** mentioned, which the turn encoder (paper Eq. 7) uses. ``label_in_context`` marks samples
whose label was already mentioned: the "dedup" metrics drop them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ccrs.data.turns import RECOMMENDER, Turn


@dataclass
class RecSample:
    conversation_id: str
    user_id: int
    turn_index: int
    label: int
    context_entity_ids: list[int]
    context_entity_turns: list[int]
    label_in_context: bool


def rec_samples(conversation_id: str, user_id: int, turns: list[Turn]) -> list[RecSample]:
    out: list[RecSample] = []
    last_turn: dict[int, int] = {}  # entity → last turn mentioned; dict keeps first-mention order
    for turn in turns:
        if turn.role == RECOMMENDER and turn.turn_index > 0:
            ctx = list(last_turn)
            ctx_turns = [last_turn[e] for e in ctx]
            for label in turn.item_ids:
                out.append(
                    RecSample(conversation_id, user_id, turn.turn_index, label, ctx, ctx_turns, label in last_turn)
                )
        for e in turn.entity_ids + turn.item_ids:
            last_turn[e] = turn.turn_index
    return out
