"""Request and response bodies of the HTTP API, validated with pydantic (limits configurable).

    models = api_models(ServeLimits(max_turns=50, max_turn_chars=2000, max_k=100))
    req = models.RecommendRequest.model_validate_json(body)     # ValidationError names the field

Validation is strict: wrong types are rejected, not coerced (``"k": "5"`` is an error), unknown fields
are rejected, every text is stripped and must be non-empty, roles come from a fixed set. The HTTP
layer turns a ``ValidationError`` into a 4xx whose message names the field (``turns.2.text``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

ROLES = ("seeker", "recommender")
#: User ids are signed 64-bit integers at most (the store, the logs and clients in other languages).
MAX_USER_ID = 2**63 - 1
UserId = Annotated[int, Field(ge=0, le=MAX_USER_ID)]


@dataclass(frozen=True)
class ServeLimits:
    max_turns: int = 50
    max_turn_chars: int = 2000
    max_k: int = 100
    default_k: int = 10
    max_conversations: int = 50  # per adaptation request
    max_body_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        if min(self.max_turns, self.max_turn_chars, self.max_k, self.default_k, self.max_conversations) < 1:
            raise ValueError("serving limits must be positive")
        if self.default_k > self.max_k:
            raise ValueError(f"default_k {self.default_k} > max_k {self.max_k}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Item(_Strict):
    item_id: int
    name: str
    score: float


class Entity(_Strict):
    entity_id: int
    name: str
    turn: int  # the turn of its last mention (0-based) and its character span there: text[start:end]
    start: int
    end: int
    kind: str = "name"  # "name": the text names it; "genre_word": a word for a genre ("scary" → horror)


class RecommendResponse(_Strict):
    items: list[Item]
    entities: list[Entity]
    user_known: bool
    attention: dict[str, float] | None = None
    rejected: list[int] = []  # item ids the seeker turned down in this dialogue: never proposed again
    checkpoint_versions: dict[str, str] = {}  # {"recommender": ...} that answered (rolling updates)
    history_entities: int = 0  # entries of the user's remembered history the model read (0: none)


class SlotItem(_Strict):
    item_id: int
    name: str


class RespondResponse(_Strict):
    response: str
    items: list[Item]  # the recommender's top-k for this dialogue
    style_mixture: list[float] | None  # μ_u^m (Eq. 9); None for variants without styles
    slot_items: list[SlotItem]  # the movies placed in the response's item slots, in order
    entities: list[Entity] = []  # what the recommender understood from the dialogue (linked, with spans)
    rejected: list[int] = []  # item ids the seeker turned down: never proposed again
    checkpoint_versions: dict[str, str] = {}  # {"recommender": ..., "generator": ...} that answered


class HistoryEntity(_Strict):
    entity_id: int
    name: str
    kind: str  # "movie" | "entity"
    conversations: int  # remembered conversations that mention it
    last_seen_conversations_ago: int  # 1 = the latest remembered conversation (capped)


class UserHistory(_Strict):
    conversations: int  # remembered (the newest, at most the store's history_max_conversations)
    updated: float  # seconds since the epoch of the last change
    entities: list[HistoryEntity]  # most recent first


class UserResponse(_Strict):
    user_id: int
    history: UserHistory | None  # None: adapted, but no conversation remembered
    adapted_versions: list[str]  # checkpoint versions holding an adaptation of this user


class ForgetResponse(_Strict):
    user_id: int
    forgotten: int  # keys removed (the history and each adaptation), memory and archive


class AdaptResponse(_Strict):
    user_id: int
    support_samples: int
    cache_size: int
    checkpoint_version: str


def api_models(limits: ServeLimits = ServeLimits()) -> SimpleNamespace:
    """The request models for ``limits`` (classes built per limits, so the OpenAPI schema shows them)."""
    text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.max_turn_chars)]

    class Turn(_Strict):
        role: Literal[ROLES]  # type: ignore[valid-type]
        text: text  # type: ignore[valid-type]

    turns = Annotated[list[Turn], Field(min_length=1, max_length=limits.max_turns)]

    class RecommendRequest(_Strict):
        user_id: UserId | None = None
        turns: turns  # type: ignore[valid-type]
        k: Annotated[int, Field(ge=1, le=limits.max_k)] = limits.default_k
        attention: bool = False  # also return the user's per-relation weights γ_{r,u} (Eq. 2)
        exclude_mentioned: bool = True  # never rank a movie the dialogue already mentions

    class AdaptRequest(_Strict):
        conversations: Annotated[list[turns], Field(min_length=1, max_length=limits.max_conversations)]  # type: ignore[valid-type]

    return SimpleNamespace(Turn=Turn, RecommendRequest=RecommendRequest, RespondRequest=RecommendRequest,
                           AdaptRequest=AdaptRequest, limits=limits)


def field_errors(exc) -> list[str]:
    """``["turns.2.text: String should have at least 1 character", ...]`` from a pydantic ValidationError."""
    return [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()]
