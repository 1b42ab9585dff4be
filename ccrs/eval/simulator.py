"""A rule-based simulated seeker built from ReDial's ground truth and the knowledge graph (no LLM).

    facts = KGFacts.from_dataset(ds)
    sim = SeekerSimulator(facts, seed=0)
    session = sim.session(conversation_turns, feedback_rows, user_id=...)   # None: no usable target
    dialogue = list(session.opening)
    for round in 1..T:
        top_k = system(dialogue)                       # the served recommender, over HTTP
        if session.succeeded(top_k): stop              # a target is in the top-k
        dialogue += sim.next_turns(session, proposed=top_k names)   # "seen them, not for me" + a clue

**Targets** are the movies the recommender suggested and the seeker liked in the real conversation
(ReDial's questionnaire: ``suggested == 1 and liked == 1``; the seeker's answers, else the
recommender's), less any the opening already names. **The opening** is the real conversation's turns
before the first recommender turn that names a movie (movie placeholders rendered as names). Each
failed round the seeker turns the proposals down and reveals one more attribute of the first target
the KG describes — a genre, a starring actor, the director, or a related movie (one sharing a director or
an actor, the most mentioned first) — in templated sentences that never state a target's title
(:func:`mentions_title` is checked on every sentence; a clue that would leak is skipped).

Choices where the protocol is silent (documented here, options where they matter):
* the system's turn lists every proposed title in quotes (``How about "A", "B" or "C"?``) so the
  served dialogue state can mark all of them rejected (EAR-style: a failed list is removed);
* clue kinds cycle in a per-session seeded order; within a kind the best-known value first (actors
  and directors by KG degree, descending: what a person would name), related movies by the number
  of shared people, then by ReDial mentions.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import dataclass, field

from ccrs.inference.slots import display_name

#: Clue kinds and the KG relation each reads (``related``: movies sharing a director or an actor).
CLUE_RELATIONS = {"genre": ("genre",), "actor": ("starring",), "director": ("director",),
                  "related": ("director", "starring")}
REJECTIONS = ("I've seen them, not for me.", "Not for me, I've already seen those.",
              "Hmm, seen them all. Something else?", "No thanks, not really my thing.")
TEMPLATES = {
    "genre": ("I'm in the mood for something in the {} genre.", "Maybe a {} kind of movie?"),
    "actor": ("I'd love something with {} in it.", "Do you know a good one starring {}?"),
    "director": ("Ideally something directed by {}.", "I like the films {} directs."),
    "related": ('Something like "{}" would be great.', 'I really enjoyed "{}", anything along those lines?'),
}
OPENING_FALLBACK = "Hi! Can you recommend me a movie?"


def title_of(entity_name: str) -> str:
    """The title a person would say: disambiguation and year dropped (``"It (2017 film)"`` → ``"It"``)."""
    return re.sub(r"\s*\([^)]*\)\s*$", "", display_name(entity_name)).strip() or entity_name


def mentions_title(text: str, title: str) -> bool:
    """Whether ``text`` states ``title``: a whole-word match, case-insensitive — except short
    one-word titles (``It``, ``Up``, ``Her``), which only count with their capital (``in it`` is not
    the film *It*; ``"It"`` is)."""
    title = title.strip()
    if not title:
        return False
    pattern = r"(?<!\w)" + re.escape(title) + r"(?!\w)"
    short = len(title) <= 4 and " " not in title
    return re.search(pattern, text, 0 if short else re.I) is not None


def render_turn(text: str, movie_ids: list[int], movie_names: dict[int, str], placeholder: str = "__item__") -> str:
    """A prepared turn as a person typed it: each placeholder → its movie's name, in order."""
    for mid in movie_ids:
        text = text.replace(placeholder, movie_names.get(mid, "that movie"), 1)
    return text.replace(placeholder, "that movie").strip()


@dataclass
class KGFacts:
    """What the simulator may say about a movie: its KG neighbours by relation, and names."""

    names: list[str]  # entity id → name as stored
    is_item: list[bool]
    neighbours: dict[str, dict[int, list[int]]]  # relation name → entity → neighbours
    degree: list[int]
    mentions: dict[int, int]  # item entity → ReDial mentions (popularity of a related movie)

    @classmethod
    def from_dataset(cls, ds) -> KGFacts:
        ents = ds.table("entities").to_pydict()
        rels = ds.table("relations").to_pydict()
        rel_names = dict(zip(rels["id"], rels["name"], strict=True))
        edges = ds.table("kg_edges").to_pydict()
        wanted = {r for rels in CLUE_RELATIONS.values() for r in rels}
        neighbours: dict[str, dict[int, list[int]]] = {r: defaultdict(list) for r in wanted}
        for h, r, t in zip(edges["head"], edges["relation"], edges["tail"], strict=True):
            name = rel_names.get(r)
            if name in wanted and h != t:
                neighbours[name][h].append(t)
        mentions: dict[int, int] = defaultdict(int)
        mv = ds.table("movies").to_pydict()
        for e, n in zip(mv["entity_id"], mv["n_mentions"], strict=True):
            mentions[e] += n
        return cls(ents["name"], ents["is_item"], {r: dict(v) for r, v in neighbours.items()}, ents["degree"],
                   dict(mentions))

    def clue_values(self, kind: str, movie: int, exclude: set[int]) -> list[int]:
        """Entities a clue of ``kind`` about ``movie`` may name, best first."""
        if kind == "related":
            shared: dict[int, int] = defaultdict(int)
            for rel in CLUE_RELATIONS["related"]:
                for person in self.neighbours[rel].get(movie, []):
                    for other in self.neighbours[rel].get(person, []):
                        if other != movie and other not in exclude and self.is_item[other]:
                            shared[other] += 1
            return sorted(shared, key=lambda m: (-shared[m], -self.mentions.get(m, 0), m))
        (rel,) = CLUE_RELATIONS[kind]
        vals = [v for v in dict.fromkeys(self.neighbours[rel].get(movie, [])) if v not in exclude and not self.is_item[v]]
        return sorted(vals, key=lambda v: (-self.degree[v], v))


@dataclass
class Clue:
    kind: str  # genre | actor | director | related
    entity_id: int
    text: str


@dataclass
class Session:
    conversation_id: str
    user_id: int
    targets: list[int]  # item entity ids: suggested and liked in the real conversation
    opening: list[tuple[str, str]]  # (role, text): the real turns before the first recommendation
    clues: list[Clue] = field(default_factory=list)  # revealed so far, in order
    described: int | None = None  # the target the clues are about (entity id; None: no KG facts)
    _pending: list[Clue] = field(default_factory=list, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def succeeded(self, ranked: list[int]) -> bool:
        """Exactly: whether any target entity is among ``ranked`` (the system's top-k entity ids)."""
        return not set(self.targets).isdisjoint(ranked)


class SeekerSimulator:
    def __init__(self, facts: KGFacts, seed: int = 0) -> None:
        self.facts, self.seed = facts, seed

    def session(self, conversation_id: str, user_id: int, turns: list[dict], feedback: list[dict],
                movie_names: dict[int, str]) -> Session | None:
        """A session for one real conversation, or None when it has no usable target.

        ``turns``: the conversation's prepared turns (``role``, ``text``, ``movie_ids``, ``item_ids``);
        ``feedback``: its ``movie_feedback`` rows; ``movie_names``: ReDial movie id → name to render."""
        turns = sorted(turns, key=lambda t: t["turn_index"])
        first_rec = next((i for i, t in enumerate(turns) if t["role"] == "recommender" and t["movie_ids"]), len(turns))
        opening = [(t["role"], render_turn(t["text"], t["movie_ids"], movie_names)) for t in turns[:first_rec]]
        opening = [(r, x) for r, x in opening if x]
        named = {m for t in turns[:first_rec] for m in t["item_ids"]}
        targets = list(dict.fromkeys(
            f["entity_id"] for f in feedback
            if f["suggested"] == 1 and f["liked"] == 1 and f["entity_id"] not in named and f["entity_id"] >= 0))
        titles = [title_of(self.facts.names[t]) for t in targets]
        targets = [t for t, title in zip(targets, titles, strict=True)
                   if not any(mentions_title(x, title) for _, x in opening)]
        if not targets:
            return None
        if not any(r == "seeker" for r, _ in opening):
            opening.append(("seeker", OPENING_FALLBACK))
        rng = random.Random(f"{self.seed}:{conversation_id}")
        s = Session(conversation_id, int(user_id), targets, opening, rng=rng)
        s._pending = self._clues(s)
        return s

    def _clues(self, s: Session) -> list[Clue]:
        """Every clue about the first target the KG describes (movies without a KG node have none),
        in reveal order (kinds cycled in a seeded order)."""
        exclude = set(s.targets)
        kinds = list(CLUE_RELATIONS)
        s.rng.shuffle(kinds)
        queues: dict[str, list[int]] = {}
        for target in s.targets:
            queues = {k: self.facts.clue_values(k, target, exclude) for k in kinds}
            if any(queues.values()):
                s.described = target
                break
        titles = [title_of(self.facts.names[t]) for t in s.targets]
        out: list[Clue] = []
        while any(queues.values()):
            for kind in kinds:
                while queues[kind]:
                    value = queues[kind].pop(0)
                    name = title_of(self.facts.names[value])
                    text = s.rng.choice(TEMPLATES[kind]).format(name if kind != "genre" else name.lower())
                    if not any(mentions_title(text, t) for t in titles):  # never a target's title
                        out.append(Clue(kind, value, text))
                        break
        return out

    def next_turns(self, s: Session, proposed: list[str]) -> list[tuple[str, str]]:
        """After a failed round: the system's proposal turn (as the client shows it) and the seeker's
        rejection with the next clue (no clue left: the rejection alone)."""
        quoted = [f'"{p}"' for p in proposed]
        listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
        system = f"How about {listed}?" if quoted else "What are you in the mood for?"
        reply = s.rng.choice(REJECTIONS)
        if s._pending:
            clue = s._pending.pop(0)
            s.clues.append(clue)
            reply = f"{reply} {clue.text}"
        return [("recommender", system), ("seeker", reply)]
