"""``ccrs data prepare --engine ray``: the prepared dataset of ``ccrs.data.prepare``, built on Ray Data for raw
sets that do not fit one process.

    ccrs data prepare --raw /data/redial-1m --out s3://bucket/prepared --engine ray [--split-mb 32]

Same tables, values and manifest counts as the single-process engine (tested on the real data), from
the same pieces (:func:`~ccrs.data.prepare.build_catalogue`, :func:`~ccrs.data.prepare.conversation_rows`,
:func:`~ccrs.data.prepare.tasks_columns`), in three stages:

1. **Scan** (Ray Data, one task per input split: a byte range of a plain JSONL file, a whole ``.gz``
   file): parse and validate every line; return one small row per conversation (id, seeker, file
   position, the movie names it mentions) and one per bad line. The driver deduplicates (the first
   occurrence in file order wins, as the single-process engine), sorts the conversations by id,
   collects the movie names and builds the catalogue (KG, movies, linker) and the ``tasks`` table.
   Its memory is O(conversations) small rows, never the dialogue text.
2. **Turn** (Ray Data, one task per split; the catalogue travels once through the object store):
   parse again, keep the deduplicated conversations, build each one's turns, feedback and rec samples
   as one row with nested lists, tagged with its rank in the sorted order; ``Dataset.sort`` puts the
   rows in that order.
3. **Write** (the driver, streaming): the sorted rows are flattened batch by batch into the four
   conversation tables, each appended to its own Parquet file in the staging prefix (``sample_id`` =
   the running index), while the summary counts accumulate. Then the single-process engine's
   publication protocol: tables moved in place, ``manifest.json`` last.

Line numbers are counted only for bad lines (a split does not know where it starts in lines).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ccrs import storage
from ccrs.config import DataConfig
from ccrs.data import splits
from ccrs.data.prepare import (
    MANIFEST,
    ROW_TABLES,
    Catalogue,
    PrepareResult,
    RawInputs,
    _table,
    build_catalogue,
    catalogue_tables,
    conversation_rows,
    empty_row_columns,
    prepare_stats,
    start_preparation,
    tasks_columns,
)
from ccrs.data.raw import RawDataError, is_test_side, parse_conversation_line
from ccrs.data.schema import TABLES
from ccrs.data.summary import RowCounts, summarize
from ccrs.data.turns import TurnStats

#: Nested columns of a turned conversation row: the child table each one flattens into.
NESTED = {"turns": "turns", "movie_feedback": "movie_feedback", "rec_samples": "rec_samples"}


# -- input splits ---------------------------------------------------------------------------------------
def input_splits(dialog_files: list[Path], split_bytes: int) -> list[dict]:
    """Byte ranges of the plain dialog files (``split_bytes`` each) and whole ``.gz`` files."""
    out = []
    for i, path in enumerate(dialog_files):
        size = path.stat().st_size
        if path.suffix == ".gz" or size <= split_bytes:
            out.append({"file_index": i, "path": str(path), "start": 0, "end": -1})
            continue
        for start in range(0, size, split_bytes):
            out.append({"file_index": i, "path": str(path), "start": start, "end": min(start + split_bytes, size)})
    return out


def split_lines(split: dict):
    """``(byte offset, line)`` of every line that *starts* in the split (a line belongs to the split
    its first byte is in; offsets are of the uncompressed text)."""
    path, start, end = Path(split["path"]), split["start"], split["end"]
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as f:
            pos = 0
            for raw in f:
                yield pos, raw
                pos += len(raw)
        return
    with open(path, "rb") as f:
        if start > 0:
            f.seek(start - 1)
            f.readline()  # the rest of the line that started before this split
        while True:
            pos = f.tell()
            if end >= 0 and pos >= end:
                return
            raw = f.readline()
            if not raw:
                return
            yield pos, raw


def line_number(path: Path, offset: int) -> int:
    """1-based line number of the line starting at byte ``offset`` (read up to it; bad lines only)."""
    opener = gzip.open if path.suffix == ".gz" else open
    n, left = 0, offset
    with opener(path, "rb") as f:
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            n += chunk.count(b"\n")
            left -= len(chunk)
    return n + 1


def _parse(split: dict, offset: int, raw: bytes):
    path = Path(split["path"])
    # The real line number is counted by the driver for bad lines only; the position stands in for it here.
    return parse_conversation_line(raw.decode("utf-8"), path, is_test_side(path), offset)


# -- stage 1: scan --------------------------------------------------------------------------------------
SCAN_SCHEMA = pa.schema([
    ("file_index", pa.int32()), ("offset", pa.int64()), ("conversation_id", pa.string()), ("seeker_id", pa.int64()),
    ("turns_merged", pa.bool_()), ("mention_ids", pa.list_(pa.int64())), ("mention_names", pa.list_(pa.string())),
    ("error", pa.string()),
])


def scan_split(batch: dict) -> pa.Table:
    """Ray Data ``map_batches`` body: one row per conversation (or bad line) of each split in ``batch``."""
    rows: dict[str, list] = defaultdict(list)
    for split in _splits_of(batch):
        for offset, raw in split_lines(split):
            if not raw.strip():
                continue
            try:
                c = _parse(split, offset, raw)
                values = (c.conversation_id, c.seeker_id, c.turns_merged, list(c.movie_mentions),
                          list(c.movie_mentions.values()), None)
            except (RawDataError, UnicodeDecodeError) as exc:
                values = (None, None, None, None, None, str(exc))
            for k, v in zip(("file_index", "offset"), (split["file_index"], offset), strict=True):
                rows[k].append(v)
            for k, v in zip(SCAN_SCHEMA.names[2:], values, strict=True):
                rows[k].append(v)
    return pa.Table.from_pydict({k: rows.get(k, []) for k in SCAN_SCHEMA.names}, schema=SCAN_SCHEMA)


def _keeps_of(batch: dict) -> list[dict[int, int]]:
    return [dict(zip(np.asarray(o).tolist(), np.asarray(r).tolist(), strict=True))
            for o, r in zip(batch["keep_offsets"], batch["keep_ranks"], strict=True)]


def _splits_of(batch: dict) -> list[dict]:
    keys = ("file_index", "path", "start", "end")
    n = len(batch["path"])
    return [{k: (batch[k][i].item() if hasattr(batch[k][i], "item") else batch[k][i]) for k in keys} for i in range(n)]


# -- stage 2: turn --------------------------------------------------------------------------------------
def turn_split(batch: dict, catalogue_ref, cfg: DataConfig) -> pa.Table:
    """Ray Data ``map_batches`` body: one row per kept conversation, its child rows as nested lists.
    Each split carries its own kept lines (``keep_offsets`` → ``keep_ranks``, the rank in the sorted
    order), so a task's memory follows its split, not the data set."""
    cat: Catalogue = _cached(catalogue_ref)
    cols = empty_row_columns()
    ranks, stats = [], TurnStats()
    mentioned: Counter = Counter()
    counts = {t: [] for t in NESTED}
    for split, keep in zip(_splits_of(batch), _keeps_of(batch), strict=True):
        for offset, raw in split_lines(split):
            rank = keep.get(offset)
            if rank is None:  # blank, bad or a duplicate
                continue
            before = {t: len(cols[t]["conversation_id"]) for t in NESTED}
            turns = conversation_rows(_parse(split, offset, raw), cat, cfg, stats, cols)
            for t in NESTED:
                counts[t].append(len(cols[t]["conversation_id"]) - before[t])
            mentioned.update(m for t in turns for m in t.movie_ids)
            ranks.append(rank)
    out = _table("conversations", cols["conversations"]).append_column("_rank", pa.array(ranks, pa.int64()))
    for name in NESTED:
        child = cols[name]
        if name == "rec_samples":
            child["sample_id"] = [0] * len(child["conversation_id"])
        table = _table(name, child).combine_chunks()
        structs = pa.StructArray.from_arrays([table.column(i).combine_chunks() for i in range(table.num_columns)],
                                             fields=list(table.schema))
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts[name], dtype=np.int64)]), pa.int32())
        out = out.append_column(f"_{name}", pa.ListArray.from_arrays(offsets, structs))
    # per-task statistics travel on the first row (the driver sums them)
    extra = {"movie_mentions": stats.movie_mentions, "unknown_movie_mentions": stats.unknown_movie_mentions,
             "unknown_movie_ids": sorted(stats.unknown_movie_ids), "foreign_senders": stats.foreign_senders,
             "mentioned": {str(k): v for k, v in mentioned.items()}}
    stats_col = [json.dumps(extra)] + [None] * (out.num_rows - 1) if out.num_rows else []
    return out.append_column("_stats", pa.array(stats_col, pa.string()))


_CACHE: dict = {}


def _cached(ref):
    """``ray.get`` once per worker process (the catalogue is large and the same for every task)."""
    import ray

    if not isinstance(ref, ray.ObjectRef):  # already resolved by Ray
        return ref
    key = ref.hex()
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = ray.get(ref)
    return _CACHE[key]


# -- stage 3: write -------------------------------------------------------------------------------------
class _TableWriter:
    """One table appended batch by batch to a Parquet file at ``loc`` (local or S3)."""

    def __init__(self, loc: storage.Location, schema: pa.Schema) -> None:
        self.loc = loc
        if not loc.is_s3:
            Path(loc.path).parent.mkdir(parents=True, exist_ok=True)
        self.stream = loc.fs.open_output_stream(loc.path)
        self.writer = pq.ParquetWriter(self.stream, schema, compression="zstd", write_statistics=True,
                                       store_schema=True)
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self.writer.write_table(table)
            self.rows += table.num_rows

    def close(self) -> None:
        self.writer.close()
        self.stream.close()


def _digest(loc: storage.Location) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    with loc.fs.open_input_stream(loc.path) as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def _flatten(batch: pa.Table, name: str, first_sample_id: int) -> pa.Table:
    nested = batch.column(f"_{name}").combine_chunks()
    flat = nested.flatten()
    parent = pc.list_parent_indices(nested)
    columns = {f.name: flat.field(f.name) for f in TABLES[name] if f.name != "conversation_id"}
    columns["conversation_id"] = pc.take(batch.column("conversation_id"), parent)
    if name == "rec_samples":
        columns["sample_id"] = pa.array(np.arange(first_sample_id, first_sample_id + len(flat), dtype=np.int64))
    return pa.Table.from_arrays([columns[f.name] for f in TABLES[name]], schema=TABLES[name])


# -- the engine -----------------------------------------------------------------------------------------
def prepare_on_ray(raw_dir: str | Path, out_uri: str, cfg: DataConfig | None = None, skip_bad_lines: bool = False,
                   force: bool = False, progress: bool = True, split_mb: float = 32.0) -> PrepareResult:
    """Build and publish the prepared dataset on Ray Data (module docstring); ``ccrs.data.prepare.prepare``'s
    guarantees: bad input fails before anything is written, manifest last, skipped when up to date."""
    import ray

    cfg = cfg or DataConfig()
    t0 = time.perf_counter()
    start = start_preparation(raw_dir, out_uri, cfg, force, progress)
    if start.published is not None:
        return PrepareResult(start.published, skipped=True, seconds=time.perf_counter() - t0)
    inputs, out = start.inputs, start.out
    if not ray.is_initialized():
        ray.init(log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = progress
    split_list = input_splits(inputs.dialog_files, max(int(split_mb * 2**20), 1))

    # 1. scan
    scan = ray.data.from_items(split_list, override_num_blocks=len(split_list)).map_batches(
        scan_split, batch_size=1, batch_format="numpy")
    scanned = pa.concat_tables(list(scan.iter_batches(batch_size=None, batch_format="pyarrow")) or
                               [SCAN_SCHEMA.empty_table()]).combine_chunks()
    keep, order, dialog_stats, mentioned_names, by_user = _dedupe(scanned, inputs, skip_bad_lines)
    del scanned
    cat = build_catalogue(inputs, cfg, mentioned_names)
    small = {**catalogue_tables(cat), "tasks": _table("tasks", tasks_columns(by_user, cfg))}

    # 2. turn, sorted into conversation order
    with_keep = []
    kf, ko, kr = keep
    for split in split_list:
        mine = (kf == split["file_index"]) & (ko >= split["start"]) & ((ko < split["end"]) | (split["end"] < 0))
        with_keep.append(split | {"keep_offsets": ko[mine], "keep_ranks": kr[mine]})
    del keep, kf, ko, kr
    turned = ray.data.from_items(with_keep, override_num_blocks=len(with_keep)).map_batches(
        turn_split, batch_size=1, batch_format="numpy",
        fn_kwargs={"catalogue_ref": ray.put(cat), "cfg": cfg}).sort("_rank")

    # 3. write (staging), then publish
    staging = out.child(f"_staging-{uuid.uuid4().hex[:12]}")
    storage.makedirs(staging)
    try:
        writers = {name: _TableWriter(staging.child(f"{name}.parquet"), TABLES[name]) for name in ROW_TABLES}
        counts, turn_stats, mentioned = RowCounts(), TurnStats(), Counter()
        conv_parts = []
        for batch in turned.iter_batches(batch_size=4096, batch_format="pyarrow"):
            conv = batch.select([f.name for f in TABLES["conversations"]]).cast(TABLES["conversations"])
            writers["conversations"].write(conv)
            conv_parts.append(conv)
            for name in NESTED:
                rows = _flatten(batch, name, writers["rec_samples"].rows)
                writers[name].write(rows)
                if name == "turns":
                    counts.add_turns(rows.num_rows, pc.sum(pc.list_value_length(rows.column("entity_ids"))).as_py() or 0,
                                     pc.sum(pc.list_value_length(rows.column("item_ids"))).as_py() or 0)
                elif name == "rec_samples":
                    counts.add_samples(rows.column("conversation_id").to_pylist(),
                                       rows.column("label_in_context").to_pylist())
            for text in batch.column("_stats").drop_null().to_pylist():
                s = json.loads(text)
                turn_stats.movie_mentions += s["movie_mentions"]
                turn_stats.unknown_movie_mentions += s["unknown_movie_mentions"]
                turn_stats.unknown_movie_ids.update(s["unknown_movie_ids"])
                turn_stats.foreign_senders += s["foreign_senders"]
                mentioned.update({int(k): v for k, v in s["mentioned"].items()})
        for w in writers.values():
            w.close()
        if writers["conversations"].rows != len(order):
            raise RuntimeError(f"turned {writers['conversations'].rows} conversations, scanned {len(order)}")
        conversations = pa.concat_tables(conv_parts) if conv_parts else TABLES["conversations"].empty_table()
        stats = prepare_stats(dialog_stats, cfg, cat, turn_stats, mentioned, counts.entity_ids, counts.turns)
        entries = {}
        for name, table in small.items():
            data = storage.table_to_parquet_bytes(table)
            storage.write_bytes(staging.child(f"{name}.parquet"), data)
            entries[name] = {"file": f"{name}.parquet", "rows": table.num_rows,
                             "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        for name, w in writers.items():
            digest, size = _digest(w.loc)
            entries[name] = {"file": f"{name}.parquet", "rows": w.rows, "sha256": digest, "bytes": size}
        manifest = start.manifest_head(cfg, stats) | {
            "engine": "ray", "summary": summarize({**small, "conversations": conversations}, cfg, counts)}
        storage.delete(out.child(MANIFEST))
        for name in sorted(entries):
            storage.move(staging.child(f"{name}.parquet"), out.child(f"{name}.parquet"))
    finally:
        storage.delete(staging)
    manifest["tables"] = entries
    storage.write_bytes(out.child(MANIFEST), (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return PrepareResult(manifest, skipped=False, seconds=time.perf_counter() - t0)


def _dedupe(scanned: pa.Table, inputs: RawInputs, skip_bad_lines: bool):
    """The driver's part of stage 1 (module docstring). Returns ``keep`` (each kept line's rank in the
    sorted order, as arrays: file index, offset, rank), the kept conversation ids in order, the dialog
    statistics, the mentioned movie names and the seekers' conversations."""
    files = inputs.dialog_files
    idx = pc.sort_indices(scanned, [("file_index", "ascending"), ("offset", "ascending")])
    scanned = scanned.take(idx)
    fi = scanned.column("file_index").to_numpy()
    off = scanned.column("offset").to_numpy()
    cids = scanned.column("conversation_id").to_pylist()
    errors = scanned.column("error").to_pylist()
    merged = scanned.column("turns_merged").to_pylist()
    bad = [i for i, e in enumerate(errors) if e is not None]
    if bad and not skip_bad_lines:
        i = bad[0]
        path = files[int(fi[i])]
        message = errors[i].split(": ", 1)[1] if ": " in errors[i] else errors[i]
        raise RawDataError(f"{path}:{line_number(path, int(off[i]))}: {message}")
    seen: set[str] = set()
    kept: list[int] = []
    duplicates = 0
    per_file = {p.name: {"conversations": 0, "test_side": "test" in p.name.lower(), "skipped_bad_lines": 0,
                         "skipped_line_numbers": [], "turns_merged_in_file": 0} for p in files}
    for i, cid in enumerate(cids):
        name = files[int(fi[i])].name
        if cid is None:
            per_file[name]["skipped_bad_lines"] += 1
            if len(per_file[name]["skipped_line_numbers"]) < 100:
                per_file[name]["skipped_line_numbers"].append(line_number(files[int(fi[i])], int(off[i])))
            continue
        per_file[name]["turns_merged_in_file"] += int(bool(merged[i]))
        if cid in seen:
            duplicates += 1
            continue
        seen.add(cid)
        kept.append(i)
        per_file[name]["conversations"] += 1
    kept.sort(key=lambda i: splits.conversation_sort_key(cids[i]))
    keep = (fi[kept].astype(np.int64), off[kept].astype(np.int64), np.arange(len(kept), dtype=np.int64))
    mention_ids = scanned.column("mention_ids").to_pylist()
    mention_names = scanned.column("mention_names").to_pylist()
    seekers = scanned.column("seeker_id").to_pylist()
    names: dict[int, str] = {}
    by_user: dict[int, list[str]] = defaultdict(list)
    for i in kept:
        for mid, name in zip(mention_ids[i], mention_names[i], strict=True):
            names.setdefault(mid, name)
        by_user[seekers[i]].append(cids[i])
    stats = {"dialog_files": per_file, "duplicate_conversations_skipped": duplicates}
    return keep, [cids[i] for i in kept], stats, names, by_user
