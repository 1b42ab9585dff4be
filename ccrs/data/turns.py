"""Conversation → turns: merge same-speaker messages, mark movie slots, link entities.

Consecutive messages of the same sender are merged into one turn (CRSLab/KGSF do the same), so files
where this is already done (``_turns_merged``) and files where it is not give identical turns.
Each ``@movieId`` becomes the item placeholder token; the ids are kept, in slot order, in
``movie_ids``. ``item_ids`` are the KG/isolated entity ids of the known movies (deduplicated, in order);
``entity_ids`` are the non-movie entities the text linker finds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ccrs.data.linker import EntityLinker
from ccrs.data.raw import RawConversation

MENTION = re.compile(r"@(\d+)")
SEEKER, RECOMMENDER = "seeker", "recommender"


@dataclass
class Turn:
    turn_index: int
    role: str
    sender_id: int
    text: str
    movie_ids: list[int]
    item_ids: list[int]
    entity_ids: list[int]


@dataclass
class TurnStats:
    movie_mentions: int = 0
    unknown_movie_mentions: int = 0
    unknown_movie_ids: set[int] = field(default_factory=set)
    foreign_senders: int = 0


def merge_messages(conv: RawConversation) -> list[tuple[int, str]]:
    """``[(sender, text)]`` with consecutive same-sender messages joined by a space."""
    merged: list[tuple[int, str]] = []
    for m in conv.messages:
        text = " ".join(m.text.split())
        if not text:  # an empty message must not split a speaker's run into two turns
            continue
        if merged and merged[-1][0] == m.sender_id:
            prev = merged[-1][1]
            merged[-1] = (m.sender_id, f"{prev} {text}".strip())
        else:
            merged.append((m.sender_id, text))
    return merged


def build_turns(
    conv: RawConversation,
    movie_entity: dict[int, int],
    linker: EntityLinker,
    placeholder: str,
    stats: TurnStats,
) -> list[Turn]:
    """Turns of one conversation. ``movie_entity`` maps every known ReDial movie id to its entity id."""
    turns = []
    for sender, text in merge_messages(conv):
        if sender == conv.seeker_id:
            role = SEEKER
        else:
            role = RECOMMENDER
            if sender != conv.recommender_id:
                stats.foreign_senders += 1
        movie_ids = [int(m) for m in MENTION.findall(text)]
        items: dict[int, None] = {}
        for mid in movie_ids:
            stats.movie_mentions += 1
            ent = movie_entity.get(mid)
            if ent is None:
                stats.unknown_movie_mentions += 1
                stats.unknown_movie_ids.add(mid)
            else:
                items.setdefault(ent, None)
        slotted = MENTION.sub(f" {placeholder} ", text)
        slotted = " ".join(slotted.split())
        # Link each stretch between movie mentions on its own so no name spans a movie slot.
        linked: dict[int, None] = {}
        for segment in MENTION.split(text)[::2]:
            for e in linker.entity_ids(segment):
                if e not in items:
                    linked.setdefault(e, None)
        entity_ids = list(linked)
        turns.append(Turn(len(turns), role, sender, slotted, movie_ids, list(items), entity_ids))
    return turns
