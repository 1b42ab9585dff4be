"""Item slots: the generator writes the item placeholder, the recommender decides which movie it is.

Each placeholder of a generated response, left to right, gets the recommender's highest-ranked item
that is neither mentioned earlier in the dialogue nor already used in this response (next slot →
next item), and the response names the movie. The text is detokenized for people to read
(:func:`ccrs.inference.detokenize.detokenize`); the tokens the metrics count are left to the caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ccrs.inference.detokenize import detokenize

_YEAR_OR_FILM = re.compile(r"\s*\((?:\d{4} )?film\)$|\s*\(\d{4}\)$")


def display_name(entity_name: str) -> str:
    """``"Alien (1979 film)"`` → ``"Alien"`` (DBpedia disambiguation suffixes dropped)."""
    return _YEAR_OR_FILM.sub("", entity_name).strip() or entity_name


def item_display_names(ds) -> dict[int, str]:
    """Item index → :func:`display_name` of its entity, for a :class:`~ccrs.data.dataset.PreparedDataset`."""
    ents = ds.table("entities").to_pydict()
    return {int(i): display_name(n) for i, n, is_item in zip(ents["item_index"], ents["name"], ents["is_item"],
                                                                 strict=True) if is_item}


def unambiguous_names(entity_names: list[str]) -> list[str]:
    """Display names, with the year or type kept where two entities would read the same.

    ``["It (2017 film)", "It (miniseries)", "Alien (1979 film)"]`` → ``["It (2017)", "It
    (miniseries)", "Alien"]``: a person choosing from a list must tell the two *It* apart.
    """
    from ccrs.data.linker import strip_disambiguation

    base = [strip_disambiguation(n) for n in entity_names]
    counts: dict[str, int] = {}
    for b in base:
        counts[b.lower()] = counts.get(b.lower(), 0) + 1
    out = []
    for full, b in zip(entity_names, base, strict=True):
        if counts[b.lower()] > 1 and full != b:
            tag = full[len(b):].strip().strip("()").replace(" film", "").strip()
            out.append(f"{b} ({tag})" if tag else full)
        else:
            out.append(display_name(full))
    return out


@dataclass
class FilledResponse:
    text: str  # detokenized, slots filled: what a person reads
    items: list[int]  # item indices, one per slot, in order


def fill_slots(tokens: list[str], placeholder: str, ranked_items: Iterable[int], mentioned: Iterable[int],
               names: Mapping[int, str]) -> FilledResponse:
    """Replace each ``placeholder`` in ``tokens`` by the next unmentioned ranked item's name."""
    skip = set(mentioned)
    ranked = iter(ranked_items)
    words, used = [], []
    for w in tokens:
        if w != placeholder:
            words.append(w)
            continue
        item = next((i for i in ranked if i not in skip), None)
        if item is None:  # ran out of ranked items: leave the slot visible rather than invent one
            words.append(placeholder)
            continue
        skip.add(item)
        used.append(item)
        words.append(names.get(item, f"item {item}"))
    return FilledResponse(detokenize(words), used)
