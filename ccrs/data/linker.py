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

**Context rules** (``context_rules=True``; the serving linker, for what users type live; prepared
data keeps the plain rules so its numbers stay reproducible):

* a name made only of everyday words (:data:`COMMON_WORDS`, the stoplist: "It", "Her", "Up", "Get
  Out", "Scary Movie", "Family", "Queen"; for movie titles also the dataset's own chat words,
  :func:`chat_everyday_words`: "LOL", "Awesome", "Weekend") is linked only with **evidence** in the text: quoted,
  followed by a year ("It (2017)"), or capitalized as a title (every word but minor ones, and not
  just a capitalized first word of a sentence; in text without a lower-case letter capitals are no
  evidence). "have you seen It ?" links the film; "it was scary" and "CAN WATCH IT" do not; movie
  titles that are stopwords are indexed too, under the same rule;
* **genre words** people use map to the genre entity: "scary"/"creepy" → horror, "funny" →
  comedy, "romantic" → romance, "animated" → animation, "sci fi" → science fiction
  (:data:`GENRE_WORDS`); when a common-word title has no evidence, the longest shorter match at
  the same place wins ("a scary movie" → horror, not *Scary Movie*);
* only ``X film`` names with a lower-case "film" are genres ("Horror film"); "Constantin Film" is a
  company, not a genre called "Constantin";
* a trailing ``+`` is part of a name ("Disney+", "Apple TV+"): "disney" is not *Disney+*;
* places people watch at (:data:`WATCH_PLACES`: "netflix", "hulu", "redbox") are not linked: "is it
  on netflix?" says where, not what the user likes (CFCRS never annotates them either).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_TOKEN = re.compile(r"[0-9a-z]+(?:['’][0-9a-z]+)*")
_TOKEN_PLUS = re.compile(r"[0-9a-z]+(?:['’][0-9a-z]+)*\+?")  # context rules: "disney+" is one token
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


#: Everyday English words: a name made only of these (and of stopwords) needs evidence under the
#: context rules. Written by hand (not drawn from the dataset); extend with ``extra_common_words``.
COMMON_WORDS = frozenset(
    """
    about after again against age air all alone always am and angel angels another any anything are
    around arrival away bad bag ball bang bat be beast beautiful because bed been before being bet big
    bird black blue body bone book boss box boy brave break bright brother brothers burn but by call can
    car cars case cat chance change child children city clear close club cold come coming country crash
    crazy cry dance dark daughter day dead deep did die dirty do doctor dog door down dream drive drop
    each earth easy else end enough escape even ever every everything evil eye eyes face fall family
    far fast father fear feel fight fighter final fire first fish five fly for forever forget four
    free friday from frozen full game games get ghost gift girl give glass go god gold gone good grace
    gravity green ground grown guy hair half hand happy hard hate have head heart heaven hell help her
    here hero hide high him his history hit hold home hope horse hot hour house how human hunt i ice if
    in inside into is island it job joy just keep kid kill killer king kiss know lady land last late
    later leave left legend less let lie life light like line little live lives long look lost lot love
    lucky mad made make man many mars me mean men mind miss mom money monster moon more morning most
    mother move much music must my name need never new next nice night nine no nobody none not nothing
    now number of off old on once one only open or other our out over own paradise parent party past
    people perfect phone place plan play point power pretty prisoner queen quiet rain ready real red
    rest return rich ride right ring river road rock room rules run rush same say school sea second
    secret see seven shadow she shine shot show side sign signs silence single sister sky sleep small
    smile snow so some someone something son song soul sound space speed split spring star stars start
    stay step still stop storm story street strong such summer sun sure take taken talk teen tell ten
    than that the them then there these they thing things think this those three through time today
    together tomorrow too top town train tree trip trouble true trust truth try turn two under until up
    us very vice wait walk wall want war was watch water way we week well what when where while white
    who why wild will wind winter wish with without woman wonder world wrong year yes yesterday you
    young your adult novel serial fiction political slapstick humor musical mom dad kids son sons
    murder cop cops epic popcorn nerve sing checking mystery
    """.split()
)
#: Streaming services, rental kiosks and channels: where a film is watched, not a taste (context rules).
WATCH_PLACES = frozenset({
    "netflix", "hulu", "redbox", "youtube", "hbo", "hbo max", "hbo now", "amazon prime", "amazon prime video",
    "prime video", "disney+", "apple tv+", "showtime", "starz", "cinemax", "vudu", "crackle", "fandango", "itunes",
    "google play", "peacock", "paramount+", "tubi"})
#: Minor words a capitalized title may leave in lower case ("Gone with the Wind").
MINOR_WORDS = frozenset("a an the of and or in on at to for with from by".split())
#: Words people use for a genre → the genre's own surface form (linked to whatever that form links to).
GENRE_WORDS = {
    "scary": "horror", "creepy": "horror", "spooky": "horror", "slasher": "horror", "slashers": "horror",
    "funny": "comedy", "hilarious": "comedy", "romantic": "romance", "animated": "animation",
    "cartoon": "animation", "cartoons": "animation", "sci fi": "science fiction", "scifi": "science fiction",
    "documentaries": "documentary",
}
_QUOTES_OPEN, _QUOTES_CLOSE = "\"'“‘«", "\"'”’»"
_YEAR_AFTER = re.compile(r"\s*\(?(?:19|20)\d\d\)?")


#: A word in at least this share of a dataset's dialogue turns (per mille) is an everyday chat word.
EVERYDAY_PER_MILLE = 1.0


def chat_everyday_words(texts: Iterable[str], per_mille: float = EVERYDAY_PER_MILLE) -> frozenset[str]:
    """Words at least ``per_mille`` ‰ of the dialogue turns use ("lol", "awesome", "weekend", "fan"):
    a movie title made only of them ("LOL", "Awesome", "Weekend", "Fan") is linked with evidence only.
    Drawn from the dataset's own turns, where movies are ``@id`` placeholders, so popular titles do
    not count as chat words (1 ‰ of ReDial's turns: "alien" 0.6 ‰, "lol" 15 ‰)."""
    texts = list(texts)
    df: dict[str, int] = {}
    for text in texts:
        for tok in set(tokens(text)):
            df[tok] = df.get(tok, 0) + 1
    floor = per_mille * len(texts) / 1000
    return frozenset(w for w, n in df.items() if n >= floor)


def strip_disambiguation(name: str) -> str:
    """``Titanic (1997 film)`` → ``Titanic``."""
    return _PAREN.sub("", name).strip()


def tokenize_spans(text: str, keep_plus: bool = False) -> list[tuple[str, int, int]]:
    """Lower-cased word tokens with their character spans (``keep_plus``: "disney+" is one token)."""
    lowered = text.lower()
    pattern = _TOKEN_PLUS if keep_plus else _TOKEN
    return [(m.group(0).replace("’", "'"), m.start(), m.end()) for m in pattern.finditer(lowered)]


def tokens(text: str, keep_plus: bool = False) -> tuple[str, ...]:
    return tuple(t for t, _, _ in tokenize_spans(text, keep_plus))


def surface_forms(name: str, is_item: bool = False, genre_needs_lowercase_film: bool = False,
                  year_forms: bool = False) -> list[str]:
    """The forms a readable KG name is indexed under (see the module docstring). ``year_forms``: a
    movie with a year in its disambiguation is also indexed as "title year" (``Seven (1995 film)`` →
    ``Seven 1995``), so "Seven (1995)" in text names that film, not another *Seven*."""
    forms = [name]
    base = strip_disambiguation(name)
    if base and base != name:
        forms.append(base)
        year = re.search(r"\((\d{4})\b", name[len(base):]) if year_forms and is_item else None
        if year:
            forms.append(f"{base} {year.group(1)}")
    is_genre = base.endswith(" film") if genre_needs_lowercase_film else base.lower().endswith(" film")
    if not is_item and is_genre and len(base) > len(" film"):
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
    #: ``name``: the text names the entity ("Alien", "comedies"); ``genre_word``: a word people use for
    #: a genre was mapped to it ("scary" → horror, :data:`GENRE_WORDS`): understood, not named.
    kind: str = "name"


class EntityLinker:
    """Longest-match, word-boundary, case-insensitive linker over a token trie.

    Args:
        names: ``(entity_id, readable_name, is_item, priority)`` tuples.
        stopwords: surface forms (lower-case) never linked.
        min_chars: shortest surface form considered, in characters.
        include_items: also index item (movie) names; off for training data, where movies are
            already marked as ``@movieId``.
    """

    _END = ""  # trie key: (priority, entity_id, needs_evidence, is_item, exact, kind) of a name ending here; never a token

    def __init__(
        self,
        names: Iterable[tuple[int, str, bool, float]],
        stopwords: Iterable[str] = DEFAULT_STOPWORDS,
        min_chars: int = 3,
        include_items: bool = False,
        context_rules: bool = False,
        extra_common_words: Iterable[str] = (),
        genre_words: bool | None = None,
        everyday_words: Iterable[str] = (),
    ) -> None:
        self.stopwords = frozenset(s.lower() for s in stopwords)
        self.min_chars = min_chars
        self.context_rules = context_rules
        self.common = (COMMON_WORDS | self.stopwords | {w for k in GENRE_WORDS for w in k.split()}
                       | {w.lower() for w in extra_common_words})
        self.common_for_titles = self.common | {w.lower() for w in everyday_words}
        self._trie: dict = {}
        self.n_forms = 0
        for entity_id, name, is_item, priority in names:
            if is_item and not include_items:
                continue
            forms = surface_forms(name, is_item, genre_needs_lowercase_film=context_rules, year_forms=context_rules)
            genre_forms = set(forms[-2:]) if not is_item and strip_disambiguation(name).endswith(" film") else set()
            base = strip_disambiguation(name)
            for form in forms:  # a genre's own word ("family" of "Family film") is evidence enough
                self._add(form, int(entity_id), float(priority), is_item, alias=form in genre_forms,
                          exact=not (form == base and base != name))
        if context_rules if genre_words is None else genre_words:
            for word, genre in GENRE_WORDS.items():
                hit = self._lookup(tokens(genre, self.context_rules))
                if hit is not None:
                    self._add(word, hit[1], hit[0], False, alias=True, kind="genre_word")

    @classmethod
    def from_entities(
        cls, entities, stopwords: Iterable[str] = DEFAULT_STOPWORDS, min_chars: int = 3, include_items: bool = False,
        context_rules: bool = False, genre_words: bool | None = None, everyday_words: Iterable[str] = (),
    ) -> EntityLinker:
        """The linker a prepared dataset's ``entities`` table defines (KG degree as priority)."""
        cols = entities.select(["id", "name", "is_item", "degree"]).to_pydict()
        rows = zip(cols["id"], cols["name"], cols["is_item"], cols["degree"], strict=True)
        return cls(rows, stopwords=stopwords, min_chars=min_chars, include_items=include_items,
                   context_rules=context_rules, genre_words=genre_words, everyday_words=everyday_words)

    def _lookup(self, toks: tuple[str, ...]):
        node = self._trie
        for tok in toks:
            node = node.get(tok)
            if node is None:
                return None
        return node.get(self._END)

    def _add(self, form: str, entity_id: int, priority: float, is_item: bool = False, alias: bool = False,
             exact: bool = True, kind: str = "name") -> None:
        toks = tokens(form, self.context_rules)
        joined = " ".join(toks)
        if self.context_rules and joined in WATCH_PLACES:
            return
        # context rules: a short or stoplisted title ("It", "Up") is indexed, to be linked with evidence only
        title_with_evidence = self.context_rules and is_item and len(joined) >= 2
        if not toks or joined.isdigit() or (len(joined) < self.min_chars and not title_with_evidence):
            return
        needs_evidence = len(joined) < self.min_chars
        if not alias and joined in self.stopwords:
            if not title_with_evidence:  # plain rules: never
                return
            needs_evidence = True
        elif self.context_rules and not alias and all(t in (self.common_for_titles if is_item else self.common)
                                                      for t in toks):
            needs_evidence = True
        node = self._trie
        for tok in toks:
            node = node.setdefault(tok, {})
        current = node.get(self._END)
        if current is None:
            self.n_forms += 1
        # A name without the evidence rule wins over one with it; under the context rules a movie then
        # wins over a non-movie of the same name (a movie recommender's dialogue names movies), and a
        # name that *is* the form over one that only reads so once its disambiguation is dropped
        # ("The Hangover" = the film, not "The Hangover (film series)"); then the higher priority.
        ctx = self.context_rules
        key = (not needs_evidence, ctx and is_item, ctx and exact, priority, -entity_id)
        if current is None or key > (not current[2], ctx and current[3], ctx and current[4], current[0], -current[1]):
            node[self._END] = (priority, entity_id, needs_evidence, is_item, exact, kind)

    def has_evidence(self, text: str, toks: list[tuple[str, int, int]], i: int, j: int) -> bool:
        """Is ``toks[i:j]`` written as a name: quoted, followed by a year, or capitalized as a title?"""
        start, end = toks[i][1], toks[j - 1][2]
        before, after = text[:start].rstrip(), text[end:]
        if before[-1:] and before[-1] in _QUOTES_OPEN and after.lstrip()[:1] and after.lstrip()[0] in _QUOTES_CLOSE:
            return True
        if _YEAR_AFTER.match(after) and _YEAR_AFTER.match(after).group(0).strip():
            return True
        if not any(c.islower() for c in text):  # SHOUTED TEXT: capitals say nothing
            return False
        words = [text[s:e] for _, s, e in toks[i:j]]
        capitalized = all(w[0].isupper() or w.isdigit() or (k > 0 and w.lower() in MINOR_WORDS)
                          for k, w in enumerate(words))
        sentence_start = not before or before[-1] in ".!?\n"
        return capitalized and (not sentence_start or len(words) > 1)

    def link(self, text: str) -> list[Mention]:
        """All non-overlapping mentions, left to right, longest match at each position (under the
        context rules: the longest one with evidence where its name needs it)."""
        toks = tokenize_spans(text, self.context_rules)
        out: list[Mention] = []
        i = 0
        n = len(toks)
        while i < n:
            node = self._trie
            best: tuple[int, int, str] | None = None  # (end token index exclusive, entity id, kind)
            j = i
            while j < n:
                node = node.get(toks[j][0])
                if node is None:
                    break
                j += 1
                hit = node.get(self._END)
                if hit is not None and (not hit[2] or self.has_evidence(text, toks, i, j)):
                    best = (j, hit[1], hit[5])
            if best is None:
                i += 1
                continue
            end_tok, entity_id, kind = best
            start, end = toks[i][1], toks[end_tok - 1][2]
            out.append(Mention(entity_id, start, end, text[start:end], kind))
            i = end_tok
        return out

    def entity_ids(self, text: str) -> list[int]:
        """Linked entity ids in order of first appearance, deduplicated."""
        seen: dict[int, None] = {}
        for m in self.link(text):
            seen.setdefault(m.entity_id, None)
        return list(seen)
