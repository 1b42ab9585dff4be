"""The numbers ``ccrs data prepare`` prints at the end and stores in ``manifest.json['summary']``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ccrs.config import DataConfig
from ccrs.data.dataset import conversation_parts, conversation_splits, user_splits

PARTS = ("train", "valid", "test")


@dataclass
class RowCounts:
    """What the summary needs of the turns and rec_samples tables, per conversation and in all: built
    from the tables (:meth:`from_tables`) or accumulated while they are streamed (``prepare_ray``)."""

    samples: Counter = field(default_factory=Counter)  # conversation id → rec samples
    samples_dedup: Counter = field(default_factory=Counter)  # ... whose label is not in the context
    turns: int = 0
    rec_samples: int = 0
    entity_ids: int = 0  # linked entities summed over turns
    item_ids: int = 0

    @classmethod
    def from_tables(cls, tables: dict[str, pa.Table]) -> RowCounts:
        samples = tables["rec_samples"]
        out = cls()
        out.add_samples(samples.column("conversation_id").to_pylist(), samples.column("label_in_context").to_pylist())
        turns = tables["turns"]
        out.add_turns(turns.num_rows, pc.sum(pc.list_value_length(turns.column("entity_ids"))).as_py() or 0,
                      pc.sum(pc.list_value_length(turns.column("item_ids"))).as_py() or 0)
        return out

    def add_samples(self, conversation_ids: list[str], label_in_context: list[bool]) -> None:
        for c, f in zip(conversation_ids, label_in_context, strict=True):
            self.samples[c] += 1
            if not f:
                self.samples_dedup[c] += 1
        self.rec_samples += len(conversation_ids)

    def add_turns(self, n: int, entity_ids: int, item_ids: int) -> None:
        self.turns += n
        self.entity_ids += entity_ids
        self.item_ids += item_ids


def _split_counts(convs: pa.Table, counts: RowCounts, conv_split: dict[str, str], parts: dict[str, str] | None) -> dict:
    ids_all = convs.column("conversation_id").to_pylist()
    seekers = dict(zip(ids_all, convs.column("seeker_id").to_pylist(), strict=True))
    turn_counts = dict(zip(ids_all, convs.column("n_turns").to_pylist(), strict=True))
    out = {}
    for part in PARTS:
        ids = [c for c, s in conv_split.items() if s == part]
        row = {
            "conversations": len(ids),
            "turns": sum(turn_counts[c] for c in ids),
            "users": len({seekers[c] for c in ids}),
            "rec_samples": sum(counts.samples[c] for c in ids),
            "rec_samples_dedup": sum(counts.samples_dedup[c] for c in ids),
        }
        if parts is not None:
            row["query_rec_samples"] = sum(counts.samples[c] for c in ids if parts.get(c) == "query")
        out[part] = row
    return out


def summarize(tables: dict[str, pa.Table], cfg: DataConfig, counts: RowCounts | None = None) -> dict:
    """The manifest's summary. ``counts``: the turns/rec_samples aggregates, when those two tables are
    not in ``tables`` (streamed to storage and never held whole)."""
    counts = counts or RowCounts.from_tables(tables)
    tasks = tables["tasks"]
    convs = tables["conversations"]
    folds = tasks.column("fold").to_pylist()
    by_user = user_splits(tasks, cfg.fold, cfg.n_folds)
    meta_tasks = Counter(by_user[u] for u, f in zip(tasks.column("user_id").to_pylist(), folds, strict=True) if f >= 0)
    user = _split_counts(convs, counts, conversation_splits(convs, tasks, "user", cfg.fold, cfg.n_folds),
                         conversation_parts(tasks))
    for part in PARTS:
        user[part]["tasks"] = meta_tasks.get(part, 0)
    standard = _split_counts(convs, counts, conversation_splits(convs, tasks, "standard"), None)
    entities = tables["entities"]
    n_turns = max(counts.turns, 1)
    return {
        "user_split": {"fold": cfg.fold, "n_folds": cfg.n_folds, **user},
        "standard_split": standard,
        "users": tasks.num_rows,
        "users_with_2plus_conversations": sum(1 for f in folds if f >= 0),
        "users_per_fold": [sum(1 for f in folds if f == k) for k in range(cfg.n_folds)],
        "conversations": convs.num_rows,
        "turns": counts.turns,
        "rec_samples": counts.rec_samples,
        "entities": entities.num_rows,
        "items": int(pc.sum(entities.column("is_item")).as_py()),
        "relations": tables["relations"].num_rows,
        "kg_edges": tables["kg_edges"].num_rows,
        "entities_per_turn": round(counts.entity_ids / n_turns, 3),
        "movies_per_turn": round(counts.item_ids / n_turns, 3),
    }


def format_summary(manifest: dict) -> str:
    """A Markdown table of the manifest's summary (printed by ``ccrs data prepare``; quoted in README)."""
    s = manifest["summary"]
    st = manifest["stats"]
    lines = [
        f"Prepared dataset (schema v{manifest['schema_version']}, KG format {st['kg_format']}, split seed {manifest['split_seed']})",
        "",
        "| split | part | conversations | turns | users | meta-tasks | rec samples | dedup samples | query samples |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    us = s["user_split"]
    for part in PARTS:
        r = us[part]
        lines.append(
            f"| user (fold {us['fold']}/{us['n_folds']}) | {part} | {r['conversations']} | {r['turns']} | {r['users']} | "
            f"{r['tasks']} | {r['rec_samples']} | {r['rec_samples_dedup']} | {r['query_rec_samples']} |"
        )
    for part in PARTS:
        r = s["standard_split"][part]
        lines.append(
            f"| standard | {part} | {r['conversations']} | {r['turns']} | {r['users']} | - | {r['rec_samples']} | "
            f"{r['rec_samples_dedup']} | - |"
        )
    lines += [
        "",
        "| quantity | value |",
        "|---|---:|",
        f"| conversations / turns | {s['conversations']} / {s['turns']} |",
        f"| users (seekers) / with ≥ 2 conversations | {s['users']} / {s['users_with_2plus_conversations']} |",
        f"| users per fold | {', '.join(map(str, s['users_per_fold']))} |",
        f"| rec samples (all) | {s['rec_samples']} |",
        f"| entities / items / relations / KG edges | {s['entities']} / {s['items']} / {s['relations']} / {s['kg_edges']} |",
        f"| isolated item entities (movies with no KG node) | {st['isolated_item_entities']} |",
        f"| movie mentions linked to a KG node | {st['movie_mentions_linked_to_kg']} / {st['movie_mentions'] - st['unknown_movie_mentions']} "
        f"({100 * st['movie_mention_kg_coverage']:.1f}%) |",
        f"| mentioned movies by link method | {', '.join(f'{k}: {v}' for k, v in st['mentioned_movies_by_link_method'].items())} |",
        f"| unknown movie mentions (no name anywhere) | {st['unknown_movie_mentions']} |",
        f"| linked non-movie entities per turn / movies per turn | {s['entities_per_turn']} / {s['movies_per_turn']} |",
        f"| relations dropped (< {manifest['config']['min_relation_edges']} edges) | {len(st['relations_dropped'])} |",
        f"| bad lines skipped | {sum(f['skipped_bad_lines'] for f in st['dialog_files'].values())} |",
    ]
    return "\n".join(lines)
