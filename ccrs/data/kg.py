"""DBpedia subgraph loading (two formats) and the edge list the entity encoders use.

Formats (JSON only, plain or ``.gz``; file names as published):

``crslab`` (default; CRSLab / UniCRS, named relations)
    ``dbpedia_subkg.json`` ``{head_id: [[relation_id, tail_id], ...]}``, ``entity2id.json``
    ``{uri: id}``, optional ``relation2id.json`` ``{relation_uri: id}`` (with ``self_loop``; without it
    UniCRS's numbering shipped in ``crslab_relations.json``), optional ``item_ids.json`` /
    ``movie_ids.json`` (entity ids of movies).
``kgsf`` (KBRD / KGSF, relation ids without names)
    ``subkg.json`` (same adjacency shape), ``entity2entityId.json`` ``{uri: id}``, optional
    ``movie_ids.json`` (entity ids of movies). Relations are named ``relation_<id>``.

Both formats use ``id2entity.json`` (ReDial ``movieId`` → DBpedia URI) to link movie mentions; it
ships with the KBRD/KGSF files and is searched anywhere in the raw directory.

Edges follow CRSLab's ``_entity_kg_process``: every (head, relation, tail) with head ≠ tail and a
non-self-loop relation is added in both directions; relations with fewer than
``min_relation_edges`` directed edges (counted before deduplication, as CRSLab does; CRSLab and KBRD
use "> 1000") are dropped; duplicates are removed. One deviation, on purpose: CRSLab adds a
``self_loop`` edge only to entities that head an adjacency list; we add one to **every** entity so an
item with no KG node (an isolated entity) still passes its own embedding through the encoder.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from ccrs.data.raw import MissingRawFiles, RawDataError, load_json

KG_FORMATS = ("crslab", "kgsf")
SELF_LOOP = "self_loop"

_FILES = {
    "crslab": {"adjacency": "dbpedia_subkg.json", "entity2id": "entity2id.json"},
    "kgsf": {"adjacency": "subkg.json", "entity2id": "entity2entityId.json"},
}
_OPTIONAL_MOVIE_LISTS = {"crslab": ("item_ids.json", "movie_ids.json"), "kgsf": ("movie_ids.json",)}
ID2ENTITY = "id2entity.json"
RELATION2ID = "relation2id.json"
#: UniCRS's relation numbering (``relation_set`` order, then ``self_loop``), shipped with ccrs: the crslab
#: format's ``relation2id.json`` is optional (no public fixed-commit copy of it is known; docs/data.md).
PACKAGED_RELATIONS = "crslab_relations.json"


def packaged_relation2id() -> dict[str, int]:
    from importlib import resources

    rels = json.loads(resources.files("ccrs.data").joinpath(PACKAGED_RELATIONS).read_text())["relations"]
    return {**{r: i for i, r in enumerate(rels)}, SELF_LOOP: len(rels)}


@dataclass
class RawKG:
    """A KG as read from disk: entity URIs by id, relation names by id, raw triples."""

    fmt: str
    uris: list[str]
    relation_names: list[str]
    triples: np.ndarray  # (n, 3) int64: head, relation, tail (self-loops and self-loop relation removed)
    movie_entities: set[int]
    files: dict[str, Path]

    @property
    def n_entities(self) -> int:
        return len(self.uris)


def find_file(root: Path, name: str) -> Path | None:
    """``name`` or ``name.gz`` at ``root`` or in any folder below it (shallowest, then sorted)."""
    candidates = []
    for variant in (name, name + ".gz"):
        candidates += list(root.rglob(variant))
    if not candidates:
        return None
    return sorted(candidates, key=lambda p: (len(p.relative_to(root).parts), str(p)))[0]


def locate_kg_files(raw_dir: Path, fmt: str) -> dict[str, Path]:
    if fmt not in KG_FORMATS:
        raise ValueError(f"kg_format must be one of {KG_FORMATS}, got {fmt!r}")
    found: dict[str, Path] = {}
    missing = []
    for role, name in _FILES[fmt].items():
        p = find_file(raw_dir, name)
        if p is None:
            missing.append(f"{name}[.gz]")
        else:
            found[role] = p
    if missing:
        raise MissingRawFiles(
            f"{raw_dir}: KG format {fmt!r} needs {', '.join(missing)} (anywhere under the raw directory). "
            f"Expected files for {fmt!r}: {', '.join(n + '[.gz]' for n in _FILES[fmt].values())}; "
            f"use --kg-format {'kgsf' if fmt == 'crslab' else 'crslab'} for the other layout."
        )
    # Keep the KG's own folder: its movie lists must come from the same release.
    kg_dir = found["adjacency"].parent
    for name in _OPTIONAL_MOVIE_LISTS[fmt] + ((RELATION2ID,) if fmt == "crslab" else ()):
        p = find_file(kg_dir, name)
        if p is not None:
            found[name] = p
    return found


def _uri_map(obj: object, path: Path) -> list[str]:
    if not isinstance(obj, dict):
        raise RawDataError(f"{path}: expected an object {{uri: id}}")
    n = len(obj)
    uris: list[str | None] = [None] * n
    for uri, idx in obj.items():
        if not isinstance(idx, int) or not 0 <= idx < n or uris[idx] is not None:
            raise RawDataError(f"{path}: entity id {idx!r} of {uri!r} is not a unique id in [0, {n})")
        uris[idx] = uri
    return uris  # type: ignore[return-value]


def load_kg(raw_dir: Path, fmt: str = "crslab") -> RawKG:
    files = locate_kg_files(raw_dir, fmt)
    uris = _uri_map(load_json(files["entity2id"]), files["entity2id"])
    self_loop_id = None
    if fmt == "crslab":
        rel2id = load_json(files[RELATION2ID]) if RELATION2ID in files else packaged_relation2id()
        if not isinstance(rel2id, dict):
            raise RawDataError(f"{files[RELATION2ID]}: expected an object {{relation: id}}")
        n_rel = max(rel2id.values()) + 1
        relation_names = [f"relation_{i}" for i in range(n_rel)]
        for name, idx in rel2id.items():
            relation_names[idx] = _relation_short_name(name)
        self_loop_id = rel2id.get(SELF_LOOP)
    adjacency = load_json(files["adjacency"])
    if not isinstance(adjacency, dict):
        raise RawDataError(f"{files['adjacency']}: expected an object {{head_id: [[relation, tail], ...]}}")
    rows = []
    for head, pairs in adjacency.items():
        try:
            h = int(head)
        except ValueError:
            raise RawDataError(f"{files['adjacency']}: head key {head!r} is not an entity id") from None
        for pair in pairs:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise RawDataError(f"{files['adjacency']}: head {head}: entry {pair!r} is not [relation, tail]")
            r, t = int(pair[0]), int(pair[1])
            if h == t or r == self_loop_id:
                continue
            rows.append((h, r, t))
    triples = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    if len(triples) and (triples[:, [0, 2]].max() >= len(uris) or triples.min() < 0):
        raise RawDataError(f"{files['adjacency']}: entity ids outside [0, {len(uris)}) of {files['entity2id'].name}")
    if fmt == "kgsf":
        n_rel = int(triples[:, 1].max()) + 1 if len(triples) else 0
        relation_names = [f"relation_{i}" for i in range(n_rel)]
    movie_entities: set[int] = set()
    for name in _OPTIONAL_MOVIE_LISTS[fmt]:
        if name in files:
            ids = load_json(files[name])
            if not isinstance(ids, list):
                raise RawDataError(f"{files[name]}: expected a list of entity ids")
            movie_entities.update(int(i) for i in ids)
    return RawKG(fmt, uris, relation_names, triples, movie_entities, files)


def _relation_short_name(uri: str) -> str:
    """``<http://dbpedia.org/ontology/starring>`` → ``starring``."""
    return uri.strip("<>").rstrip("/").rsplit("/", 1)[-1]


def readable_name(uri: str) -> str:
    """``<http://dbpedia.org/resource/The_Thin_Red_Line_(1998_film)>`` → ``The Thin Red Line (1998 film)``."""
    tail = uri.strip("<>").rstrip("/").rsplit("/", 1)[-1]
    return unquote(tail).replace("_", " ").strip()


def build_edges(
    kg: RawKG, n_entities: int, min_relation_edges: int
) -> tuple[list[str], np.ndarray, dict[str, int]]:
    """CRSLab-style edges: bidirectional, relation-count filtered, deduplicated, self-loops on all.

    Returns ``(relation_names, edges, dropped)`` where ``edges`` is ``(E, 3)`` int64
    ``(head, relation, tail)`` sorted, relation ids re-numbered densely over the kept relations (in
    their original order) with ``self_loop`` last, and ``dropped`` maps each filtered-out relation
    name to its directed edge count.
    """
    t = kg.triples
    both = np.concatenate([t, t[:, [2, 1, 0]]], axis=0)  # (2n, 3)
    counts = Counter(both[:, 1].tolist())
    kept = sorted(r for r, c in counts.items() if c >= min_relation_edges)
    dropped = {kg.relation_names[r]: counts[r] for r in sorted(counts) if r not in set(kept)}
    remap = np.full(max(len(kg.relation_names), 1), -1, dtype=np.int64)
    remap[kept] = np.arange(len(kept))
    mask = remap[both[:, 1]] >= 0
    both = both[mask]
    both[:, 1] = remap[both[:, 1]]
    self_id = len(kept)
    loops = np.stack([np.arange(n_entities), np.full(n_entities, self_id), np.arange(n_entities)], axis=1)
    edges = np.unique(np.concatenate([both, loops.astype(np.int64)], axis=0), axis=0)
    names = [kg.relation_names[r] for r in kept] + [SELF_LOOP]
    return names, edges, dropped
