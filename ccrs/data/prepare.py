"""``ccrs data prepare``: raw ReDial + DBpedia → a versioned prepared dataset at a URI.

Lifecycle: locate and hash every source file → parse and validate everything in memory (bad input
fails here, before anything is written) → build the tables → publish. Publishing writes each table
to a staging prefix, removes the old ``manifest.json``, moves the tables into place and writes the
new manifest **last**: a reader that finds a manifest finds the tables it describes, and a crash
leaves either the previous dataset or no manifest (never a silent mix). Re-running on the same
inputs and config produces byte-identical tables and is skipped when the published manifest already
has the same fingerprint (``--force`` rebuilds).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from ccrs import storage
from ccrs.config import DataConfig
from ccrs.data import kg as kgmod
from ccrs.data import splits
from ccrs.data.linker import DEFAULT_STOPWORDS, EntityLinker
from ccrs.data.movies import MovieNameIndex, link_movies
from ccrs.data.raw import (
    MissingRawFiles,
    RawConversation,
    find_dialog_files,
    load_json,
    read_dialog_file,
    read_movies_csv,
    sha256_file,
)
from ccrs.data.samples import rec_samples
from ccrs.data.schema import SCHEMA_VERSION, TABLES
from ccrs.data.summary import summarize
from ccrs.data.turns import Turn, TurnStats, build_turns
from ccrs.progress import bar_disabled

MANIFEST = "manifest.json"
MOVIES_CSV = "movies_with_mentions.csv"


@dataclass
class RawInputs:
    raw_dir: Path
    dialog_files: list[Path]
    movies_csv: Path
    kg_files: dict[str, Path]
    id2entity: Path | None

    def all_files(self) -> list[Path]:
        files = [*self.dialog_files, self.movies_csv, *self.kg_files.values()]
        if self.id2entity is not None:
            files.append(self.id2entity)
        return sorted(set(files))


def locate_inputs(raw_dir: Path, kg_format: str) -> RawInputs:
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise MissingRawFiles(f"raw directory {raw_dir} does not exist")
    problems = []
    dialog_files = find_dialog_files(raw_dir)
    if not dialog_files:
        problems.append("dialog JSONL files (e.g. train_data.jsonl, test_data.jsonl, plain or .gz) at the top level or in dialogs/")
    movies_csv = raw_dir / MOVIES_CSV
    if not movies_csv.is_file():
        problems.append(f"{MOVIES_CSV} at the top level")
    try:
        kg_files = kgmod.locate_kg_files(raw_dir, kg_format)
    except MissingRawFiles as exc:
        problems.append(str(exc).split(": ", 1)[1])
        kg_files = {}
    if problems:
        raise MissingRawFiles(f"{raw_dir} is not a complete ReDial raw directory; missing:\n  - " + "\n  - ".join(problems))
    return RawInputs(raw_dir, dialog_files, movies_csv, kg_files, kgmod.find_file(raw_dir, kgmod.ID2ENTITY))


def _fingerprint(source_hashes: dict[str, str], cfg: DataConfig) -> str:
    payload = json.dumps(
        {"schema": SCHEMA_VERSION, "sources": source_hashes, "config": dataclasses.asdict(cfg)}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _table(name: str, columns: dict[str, list]) -> pa.Table:
    schema = TABLES[name]
    return pa.Table.from_arrays([pa.array(columns[f.name], type=f.type) for f in schema], schema=schema)


@dataclass
class PrepareResult:
    manifest: dict
    skipped: bool
    seconds: float


def prepare(
    raw_dir: str | Path,
    out_uri: str,
    cfg: DataConfig | None = None,
    skip_bad_lines: bool = False,
    force: bool = False,
    progress: bool = True,
) -> PrepareResult:
    """Build and publish the prepared dataset; see the module docstring for the guarantees."""
    cfg = cfg or DataConfig()
    t0 = time.perf_counter()
    start = start_preparation(raw_dir, out_uri, cfg, force, progress)
    if start.published is not None:
        return PrepareResult(start.published, skipped=True, seconds=time.perf_counter() - t0)
    inputs, out = start.inputs, start.out

    tables, stats = build_tables(inputs, cfg, skip_bad_lines, progress)
    manifest = start.manifest_head(cfg, stats)
    manifest["summary"] = summarize(tables, cfg)
    manifest = publish(out, tables, manifest, progress)
    return PrepareResult(manifest, skipped=False, seconds=time.perf_counter() - t0)


@dataclass
class PreparationStart:
    """What both engines establish before building anything: the inputs, their hashes, the output
    location, and the published manifest when it is already up to date (then nothing is built)."""

    inputs: RawInputs
    source_hashes: dict[str, str]
    fingerprint: str
    out: storage.Location
    published: dict | None

    def manifest_head(self, cfg: DataConfig, stats: dict) -> dict:
        return {
            "format": "ccrs-prepared-dataset",
            "schema_version": SCHEMA_VERSION,
            "fingerprint": self.fingerprint,
            "raw_dir_name": self.inputs.raw_dir.name,
            "sources": self.source_hashes,
            "split_seed": cfg.split_seed,
            "config": json.loads(json.dumps(dataclasses.asdict(cfg))),
            "item_placeholder": cfg.item_placeholder,
            "stats": stats,
        }


def start_preparation(raw_dir: str | Path, out_uri: str, cfg: DataConfig, force: bool,
                      progress: bool) -> PreparationStart:
    """Locate and hash the inputs, resolve the output (creating an S3 bucket), and find whether the
    published dataset is already up to date (unless ``force``)."""
    inputs = locate_inputs(Path(raw_dir), cfg.kg_format)
    files = inputs.all_files()
    source_hashes = {str(p.relative_to(inputs.raw_dir)): sha256_file(p)
                     for p in tqdm(files, desc="hash sources", disable=bar_disabled(progress), leave=False)}
    fingerprint = _fingerprint(source_hashes, cfg)
    out = storage.resolve(out_uri)
    if out.is_s3:
        storage.ensure_bucket(out.uri)
    published = None if force else published_manifest(out, fingerprint)
    return PreparationStart(inputs, source_hashes, fingerprint, out, published)


def published_manifest(out: storage.Location, fingerprint: str) -> dict | None:
    """The manifest at ``out`` if it was built from the same inputs and config and its tables are all
    there (preparing again would change nothing), else None."""
    manifest_loc = out.child(MANIFEST)
    if not storage.exists(manifest_loc):
        return None
    old = json.loads(storage.read_bytes(manifest_loc))
    if old.get("fingerprint") == fingerprint and all(
            storage.exists(out.child(t["file"])) for t in old.get("tables", {}).values()):
        return old
    return None


def publish(out: storage.Location, tables: dict[str, pa.Table], manifest: dict, progress: bool = True) -> dict:
    """Stage every table, then swap them in and write the manifest last; returns the manifest written."""
    staging = out.child(f"_staging-{uuid.uuid4().hex[:12]}")
    storage.makedirs(staging)
    entries = {}
    try:
        for name in tqdm(sorted(tables), desc="write tables", disable=bar_disabled(progress), leave=False):
            data = storage.table_to_parquet_bytes(tables[name])
            storage.write_bytes(staging.child(f"{name}.parquet"), data)
            entries[name] = {
                "file": f"{name}.parquet",
                "rows": tables[name].num_rows,
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
            }
        storage.delete(out.child(MANIFEST))
        for name in sorted(tables):
            storage.move(staging.child(f"{name}.parquet"), out.child(f"{name}.parquet"))
    finally:
        storage.delete(staging)
    manifest = {**manifest, "tables": entries}
    storage.write_bytes(out.child(MANIFEST), (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return manifest


def _read_dialogs(inputs: RawInputs, skip_bad_lines: bool, progress: bool) -> tuple[list[RawConversation], dict]:
    convs: list[RawConversation] = []
    seen: set[str] = set()
    per_file = {}
    duplicates = 0
    for path in inputs.dialog_files:
        file_convs, report = read_dialog_file(path, skip_bad_lines, progress)
        kept = 0
        for c in file_convs:
            if c.conversation_id in seen:
                duplicates += 1
                continue
            seen.add(c.conversation_id)
            convs.append(c)
            kept += 1
        per_file[path.name] = {
            "conversations": kept,
            "test_side": "test" in path.name.lower(),
            "skipped_bad_lines": len(report.skipped_lines),
            "skipped_line_numbers": report.skipped_lines[:100],
            "turns_merged_in_file": sum(c.turns_merged for c in file_convs),
        }
    convs.sort(key=lambda c: splits.conversation_sort_key(c.conversation_id))
    return convs, {"dialog_files": per_file, "duplicate_conversations_skipped": duplicates}


@dataclass
class Catalogue:
    """What every conversation is linked against (built once, before any conversation is turned):
    the entities (KG nodes + movies without one), each movie's entity, the KG edges and the linker."""

    kg: kgmod.RawKG
    csv_movies: dict
    movie_names: dict[int, str]
    links: dict
    movie_entity: dict[int, int]
    entities: pa.Table
    relation_names: list[str]
    edges: np.ndarray
    dropped: object
    linker: EntityLinker


def build_catalogue(inputs: RawInputs, cfg: DataConfig, mentioned_movie_names: dict[int, str]) -> Catalogue:
    """The catalogue, from the csv movies plus ``mentioned_movie_names`` (every movie a conversation's
    ``movieMentions`` names, the first name in conversation order: the csv's name wins)."""
    csv_movies = read_movies_csv(inputs.movies_csv)
    kg = kgmod.load_kg(inputs.raw_dir, cfg.kg_format)
    id2entity = load_json(inputs.id2entity) if inputs.id2entity else {}
    if not isinstance(id2entity, dict):
        raise ValueError(f"{inputs.id2entity}: expected an object {{movieId: uri}}")

    movie_names = {mid: m.name for mid, m in csv_movies.items()}
    for mid, name in mentioned_movie_names.items():
        movie_names.setdefault(mid, name)
    uri_to_id = {u: i for i, u in enumerate(kg.uris)}
    links = link_movies(movie_names, id2entity, uri_to_id, MovieNameIndex(kg.uris, kg.movie_entities))

    uris = list(kg.uris)
    names = [kgmod.readable_name(u) for u in uris]
    movie_entity: dict[int, int] = {}
    for mid in sorted(movie_names):
        link = links[mid]
        if link.entity_id is None:
            movie_entity[mid] = len(uris)
            uris.append(f"redial:movie/{mid}")
            names.append(" ".join(movie_names[mid].split()) or f"movie {mid}")
        else:
            movie_entity[mid] = link.entity_id
    n_entities = len(uris)
    item_set = set(movie_entity.values())

    relation_names, edges, dropped = kgmod.build_edges(kg, n_entities, cfg.min_relation_edges)
    non_loop = edges[edges[:, 1] != len(relation_names) - 1]
    degree = np.bincount(non_loop[:, 0], minlength=n_entities)  # edges are bidirectional: out = undirected degree
    is_item = np.zeros(n_entities, dtype=bool)
    is_item[list(item_set)] = True
    item_index = np.full(n_entities, -1, dtype=np.int64)
    item_index[is_item] = np.arange(int(is_item.sum()))

    entities = _table(
        "entities",
        {
            "id": list(range(n_entities)),
            "uri": uris,
            "name": names,
            "is_item": is_item.tolist(),
            "item_index": item_index.tolist(),
            "degree": degree.tolist(),
        },
    )
    linker = EntityLinker.from_entities(
        entities,
        stopwords=DEFAULT_STOPWORDS | {s.lower() for s in cfg.extra_stopwords},
        min_chars=cfg.min_entity_name_chars,
    )
    return Catalogue(kg, csv_movies, movie_names, links, movie_entity, entities, relation_names, edges, dropped, linker)


ROW_TABLES = ("conversations", "turns", "movie_feedback", "rec_samples")


def conversation_rows(c: RawConversation, catalogue: Catalogue, cfg: DataConfig, turn_stats: TurnStats,
                      cols: dict[str, dict[str, list]]) -> list[Turn]:
    """Append one conversation's rows to ``cols[table][column]`` for :data:`ROW_TABLES` (rec_samples
    without ``sample_id``: the running index, given by whoever writes the table); returns its turns."""
    movie_entity = catalogue.movie_entity
    turns = build_turns(c, movie_entity, catalogue.linker, cfg.item_placeholder, turn_stats)
    conv_cols, turn_cols, fb_cols, sample_cols = (cols[t] for t in ROW_TABLES)
    conv_cols["conversation_id"].append(c.conversation_id)
    conv_cols["seeker_id"].append(c.seeker_id)
    conv_cols["recommender_id"].append(c.recommender_id)
    conv_cols["source_file"].append(c.source_file)
    conv_cols["is_test_side"].append(c.is_test_side)
    conv_cols["standard_split"].append(
        splits.standard_role(c.conversation_id, c.is_test_side, cfg.split_seed, cfg.valid_every)
    )
    conv_cols["n_turns"].append(len(turns))
    for t in turns:
        turn_cols["conversation_id"].append(c.conversation_id)
        turn_cols["turn_index"].append(t.turn_index)
        turn_cols["role"].append(t.role)
        turn_cols["sender_id"].append(t.sender_id)
        turn_cols["text"].append(t.text)
        turn_cols["movie_ids"].append(t.movie_ids)
        turn_cols["item_ids"].append(t.item_ids)
        turn_cols["entity_ids"].append(t.entity_ids)
    for mid, (suggested, seen, liked, by) in sorted(c.feedback.items()):
        if mid not in movie_entity:  # answered about a movie the conversation never names: no entity
            continue
        fb_cols["conversation_id"].append(c.conversation_id)
        fb_cols["movie_id"].append(mid)
        fb_cols["entity_id"].append(movie_entity[mid])
        fb_cols["suggested"].append(suggested)
        fb_cols["seen"].append(seen)
        fb_cols["liked"].append(liked)
        fb_cols["answered_by"].append(by)
    for smp in rec_samples(c.conversation_id, c.seeker_id, turns):
        sample_cols["conversation_id"].append(smp.conversation_id)
        sample_cols["user_id"].append(smp.user_id)
        sample_cols["turn_index"].append(smp.turn_index)
        sample_cols["label"].append(smp.label)
        sample_cols["context_entity_ids"].append(smp.context_entity_ids)
        sample_cols["context_entity_turns"].append(smp.context_entity_turns)
        sample_cols["label_in_context"].append(smp.label_in_context)
    return turns


def empty_row_columns() -> dict[str, dict[str, list]]:
    return {t: defaultdict(list) for t in ROW_TABLES}


def tasks_columns(by_user: dict[int, list[str]], cfg: DataConfig) -> dict[str, list]:
    """The ``tasks`` table: each seeker's fold and support/query conversations (ids in sorted order)."""
    task_cols: dict[str, list] = defaultdict(list)
    for user in sorted(by_user):
        conv_ids = by_user[user]
        fold = splits.user_fold(user, len(conv_ids), cfg.split_seed, cfg.n_folds)
        support, query = splits.support_query(conv_ids, cfg.support_fraction)
        task_cols["user_id"].append(user)
        task_cols["fold"].append(fold)
        task_cols["split"].append("train" if fold < 0 else splits.fold_role(fold, cfg.fold, cfg.n_folds))
        task_cols["n_conversations"].append(len(conv_ids))
        task_cols["support_conversation_ids"].append(support)
        task_cols["query_conversation_ids"].append(query)
    return task_cols


def catalogue_tables(cat: Catalogue) -> dict[str, pa.Table]:
    """The tables that follow from the catalogue alone: entities, relations, kg_edges, movies."""
    mids = sorted(cat.movie_names)
    return {
        "entities": cat.entities,
        "relations": _table(
            "relations",
            {
                "id": list(range(len(cat.relation_names))),
                "name": cat.relation_names,
                "n_edges": np.bincount(cat.edges[:, 1], minlength=len(cat.relation_names)).tolist(),
            },
        ),
        "kg_edges": pa.Table.from_arrays(
            [pa.array(cat.edges[:, 0]), pa.array(cat.edges[:, 1]), pa.array(cat.edges[:, 2])], schema=TABLES["kg_edges"]
        ),
        "movies": _table(
            "movies",
            {
                "movie_id": mids,
                "name": [cat.movie_names[m] for m in mids],
                "entity_id": [cat.movie_entity[m] for m in mids],
                "link_method": [cat.links[m].method for m in mids],
                "n_mentions": [cat.csv_movies[m].n_mentions if m in cat.csv_movies else 0 for m in mids],
            },
        ),
    }


def prepare_stats(dialog_stats: dict, cfg: DataConfig, cat: Catalogue, turn_stats: TurnStats, mentioned: Counter,
                  n_linked_entities: int, n_turns: int) -> dict:
    """The manifest's ``stats`` (``mentioned``: movie id → mentions in turns; ``n_linked_entities``:
    linked entities summed over the ``n_turns`` turns)."""
    movie_entity, links = cat.movie_entity, cat.links
    known_mentions = sum(n for m, n in mentioned.items() if m in movie_entity)
    kg_linked_mentions = sum(n for m, n in mentioned.items() if m in movie_entity and links[m].entity_id is not None)
    link_methods = Counter(links[m].method for m in mentioned if m in links)
    n_entities = cat.entities.num_rows
    return {
        **dialog_stats,
        "kg_format": cfg.kg_format,
        "kg_entities": cat.kg.n_entities,
        "isolated_item_entities": n_entities - cat.kg.n_entities,
        "relations_dropped": cat.dropped,
        "movie_mentions": turn_stats.movie_mentions,
        "unknown_movie_mentions": turn_stats.unknown_movie_mentions,
        "unknown_movie_ids": sorted(turn_stats.unknown_movie_ids)[:100],
        "movie_mentions_linked_to_kg": kg_linked_mentions,
        "movie_mention_kg_coverage": round(kg_linked_mentions / max(known_mentions, 1), 4),
        "mentioned_movies_by_link_method": dict(sorted(link_methods.items())),
        "movies_linked_to_kg": sum(1 for m in cat.movie_names if links[m].entity_id is not None),
        "movies_total": len(cat.movie_names),
        "turns_from_foreign_senders": turn_stats.foreign_senders,
        "linker_surface_forms": cat.linker.n_forms,
        "linked_entities_per_turn": round(n_linked_entities / max(n_turns, 1), 4),
    }


def build_tables(
    inputs: RawInputs, cfg: DataConfig, skip_bad_lines: bool = False, progress: bool = True
) -> tuple[dict[str, pa.Table], dict]:
    """Everything in memory: parse, link, split; returns the tables and statistics for the manifest.
    (``ccrs.data.prepare_ray`` builds the same tables from the same pieces, streaming, on Ray Data.)"""
    convs, dialog_stats = _read_dialogs(inputs, skip_bad_lines, progress)
    # Movies: every csv movie plus any movie named in a conversation's movieMentions.
    mentioned_names: dict[int, str] = {}
    for c in convs:
        for mid, name in c.movie_mentions.items():
            mentioned_names.setdefault(mid, name)
    cat = build_catalogue(inputs, cfg, mentioned_names)

    # Conversations → turns → samples.
    turn_stats = TurnStats()
    cols = empty_row_columns()
    by_user: dict[int, list[str]] = defaultdict(list)
    mentioned: Counter = Counter()
    n_linked = 0
    for c in tqdm(convs, desc="turns + entity linking", unit=" conv", disable=bar_disabled(progress), leave=False):
        turns = conversation_rows(c, cat, cfg, turn_stats, cols)
        by_user[c.seeker_id].append(c.conversation_id)
        mentioned.update(m for t in turns for m in t.movie_ids)
        n_linked += sum(len(t.entity_ids) for t in turns)
    cols["rec_samples"]["sample_id"] = list(range(len(cols["rec_samples"]["conversation_id"])))

    tables = {
        **catalogue_tables(cat),
        **{name: _table(name, cols[name]) for name in ROW_TABLES},
        "tasks": _table("tasks", tasks_columns(by_user, cfg)),
    }
    stats = prepare_stats(dialog_stats, cfg, cat, turn_stats, mentioned, n_linked, tables["turns"].num_rows)
    return tables, stats
