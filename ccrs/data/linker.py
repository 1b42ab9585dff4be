"""Entity linker: finds KG entity names in free text (training data and live user turns at serving time).

Matching is case-insensitive on word boundaries, longest match first, over a token trie (an automaton
over word tokens: one pass over the text, no regex per entity). Each name is indexed under its
readable form (``Tom Hanks``), its form without a parenthetical disambiguation (``Titanic (1997
film)`` → ``titanic``) and, for genre-like entities named ``X film`` (``Horror film``), ``X``
(``horror``) and its plural (``horrors``, ``comedies``), since people say "a horror movie" or "I
like comedies" rather than "a horror film". When several
entities share a surface form, the one with the higher ``priority`` (KG degree by default) wins.

A stoplist removes surface forms that are too generic to be evidence of an entity ("it", "love",
"english", ...): ReDial text is chatty and single common words are DBpedia titles of films, bands and
places.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_TOKEN = re.compile(r"[0-9a-z]+(?:['’][0-9a-z]+)*")
_PAREN = re.compile(r"\s*\([^)]*\)\s*$")

#: Surface forms never linked: pronouns, chat words, and DBpedia titles that are everyday words.
DEFAULT_STOPWORDS = frozenset(
    """
    a an the i me my you your he him his she her it its we us our they them their this that these those
    yes no not ok okay hi hello hey bye thanks thank please sure well good great nice cool fun funny
    love like liked loved enjoy watch watched seen see saw movie movies film films show shows series tv
    one two three first last new old time day night today tomorrow yesterday year years life home
    friends friend man men woman women girl girls boy boys kid kids people person baby
    english american british french music song songs book books story stories
    big little best better really very much many more most just also too so all any some something
    up down out in on off over under back now then here there where when what who how why which
    true real right wrong go going gone get got make made take taken call called let run home alone
    original
    heat it's i'm don't can't
    """.split()
)


def strip_disambiguation(name: str) -> str:
    """``Titanic (1997 film)`` → ``Titanic``."""
    return _PAREN.sub("", name).strip()


def tokenize_spans(text: str) -> list[tuple[str, int, int]]:
    """Lower-cased word tokens with their character spans."""
    lowered = text.lower()
    return [(m.group(0).replace("’", "'"), m.start(), m.end()) for m in _TOKEN.finditer(lowered)]


def tokens(text: str) -> tuple[str, ...]:
    return tuple(t for t, _, _ in tokenize_spans(text))


def surface_forms(name: str, is_item: bool = False) -> list[str]:
    """The forms a readable KG name is indexed under (see the module docstring)."""
    forms = [name]
    base = strip_disambiguation(name)
    if base and base != name:
        forms.append(base)
    if not is_item and base.lower().endswith(" film") and len(base) > len(" film"):
        genre = base[: -len(" film")]
        forms += [genre, _plural(genre)]
    return forms


def _plural(word: str) -> str:
    """``comedy`` → ``comedies``, ``thriller`` → ``thrillers`` (people say "I like comedies")."""
    if word.endswith("y") and not word.endswith(("ay", "ey", "oy", "uy")):
        return word[:-1] + "ies"
    return word if word.endswith("s") else word + "s"


@dataclass(frozen=True)
class Mention:
    entity_id: int
    start: int  # character offsets in the original text
    end: int
    surface: str


class EntityLinker:
    """Longest-match, word-boundary, case-insensitive linker over a token trie.

    Args:
        names: ``(entity_id, readable_name, is_item, priority)`` tuples.
        stopwords: surface forms (lower-case) never linked.
        min_chars: shortest surface form considered, in characters.
        include_items: also index item (movie) names; off for training data, where movies are
            already marked as ``@movieId``.
    """

    _END = ""  # trie key holding (priority, entity_id) of a name that ends here; never a token

    def __init__(
        self,
        names: Iterable[tuple[int, str, bool, float]],
        stopwords: Iterable[str] = DEFAULT_STOPWORDS,
        min_chars: int = 3,
        include_items: bool = False,
    ) -> None:
        self.stopwords = frozenset(s.lower() for s in stopwords)
        self.min_chars = min_chars
        self._trie: dict = {}
        self.n_forms = 0
        for entity_id, name, is_item, priority in names:
            if is_item and not include_items:
                continue
            for form in surface_forms(name, is_item):
                self._add(form, int(entity_id), float(priority))

    @classmethod
    def from_entities(
        cls, entities, stopwords: Iterable[str] = DEFAULT_STOPWORDS, min_chars: int = 3, include_items: bool = False
    ) -> EntityLinker:
        """The linker a prepared dataset's ``entities`` table defines (KG degree as priority)."""
        cols = entities.select(["id", "name", "is_item", "degree"]).to_pydict()
        rows = zip(cols["id"], cols["name"], cols["is_item"], cols["degree"], strict=True)
        return cls(rows, stopwords=stopwords, min_chars=min_chars, include_items=include_items)

    def _add(self, form: str, entity_id: int, priority: float) -> None:
        toks = tokens(form)
        joined = " ".join(toks)
        if not toks or len(joined) < self.min_chars or joined in self.stopwords or joined.isdigit():
            return
        node = self._trie
        for tok in toks:
            node = node.setdefault(tok, {})
        current = node.get(self._END)
        if current is None:
            self.n_forms += 1
        if current is None or (priority, -entity_id) > (current[0], -current[1]):
            node[self._END] = (priority, entity_id)

    def link(self, text: str) -> list[Mention]:
        """All non-overlapping mentions, left to right, longest match at each position."""
        toks = tokenize_spans(text)
        out: list[Mention] = []
        i = 0
        n = len(toks)
        while i < n:
            node = self._trie
            best: tuple[int, int] | None = None  # (end token index exclusive, entity id)
            j = i
            while j < n:
                node = node.get(toks[j][0])
                if node is None:
                    break
                j += 1
                hit = node.get(self._END)
                if hit is not None:
                    best = (j, hit[1])
            if best is None:
                i += 1
                continue
            end_tok, entity_id = best
            start, end = toks[i][1], toks[end_tok - 1][2]
            out.append(Mention(entity_id, start, end, text[start:end]))
            i = end_tok
        return out

    def entity_ids(self, text: str) -> list[int]:
        """Linked entity ids in order of first appearance, deduplicated."""
        seen: dict[int, None] = {}
        for m in self.link(text):
            seen.setdefault(m.entity_id, None)
        return list(seen)
