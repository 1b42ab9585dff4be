"""Linking ReDial movies (``@movieId``) to KG entities.

Order of evidence, first hit wins:

1. ``id2entity``: ReDial ``movieId`` → DBpedia URI (KBRD/KGSF's mapping), kept if that URI is a node
   of the KG in use;
2. name/year: the movie's title matched against KG entity names. Candidates are entities whose name
   without its parenthetical equals the title (case-insensitive); preferred in order
   ``Title (YEAR film)``, ``Title (film)``, ``Title (... film)`` with the year if the movie has one,
   then a bare ``Title`` that the KG lists as a movie. A person or a place with the film's title is never taken.

A movie with no KG node still becomes a rankable item: an isolated entity appended after the KG's
entities (URI ``redial:movie/<movieId>``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from ccrs.data.kg import readable_name
from ccrs.data.raw import split_title_year

_PAREN = re.compile(r"^(?P<base>.*?)\s*\((?P<dis>[^)]*)\)\s*$")


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


@dataclass(frozen=True)
class MovieLink:
    entity_id: int | None
    method: str  # "id2entity" | "name" | "none"


class MovieNameIndex:
    """Title → KG candidates, for the name/year fallback."""

    def __init__(self, uris: list[str], movie_entities: set[int]) -> None:
        self.movie_entities = movie_entities
        self._by_title: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for idx, uri in enumerate(uris):
            name = readable_name(uri)
            m = _PAREN.match(name)
            base, dis = (m.group("base"), m.group("dis").lower()) if m else (name, "")
            self._by_title[_norm(base)].append((idx, dis))

    def lookup(self, movie_name: str) -> int | None:
        title, year = split_title_year(movie_name)
        candidates = self._by_title.get(_norm(title), [])
        if not candidates:
            return None

        def rank(c: tuple[int, str]) -> tuple[int, int]:
            idx, dis = c
            if year is not None and dis == f"{year} film":
                return (0, idx)
            if dis == "film":
                return (1, idx)
            if "film" in dis and (year is None or str(year) in dis):
                return (2, idx)
            if idx in self.movie_entities and dis == "":
                return (3, idx)
            return (9, idx)

        best = min(candidates, key=rank)
        return best[0] if rank(best)[0] < 9 else None


def link_movies(
    movie_names: dict[int, str],
    id2entity: dict[str, str | None],
    uri_to_id: dict[str, int],
    name_index: MovieNameIndex,
) -> dict[int, MovieLink]:
    links: dict[int, MovieLink] = {}
    for movie_id, name in movie_names.items():
        uri = id2entity.get(str(movie_id))
        if uri and uri in uri_to_id:
            links[movie_id] = MovieLink(uri_to_id[uri], "id2entity")
            continue
        found = name_index.lookup(name) if name else None
        links[movie_id] = MovieLink(found, "name" if found is not None else "none")
    return links
