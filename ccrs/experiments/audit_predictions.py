"""Pooled test predictions of a table's rows as small Parquet files anyone can recompute it from.

    python -m ray_jobs.rec_meta_table ... --predictions results/predictions/rec_meta
    python -m ccrs.experiments.audit_predictions results/predictions/rec_meta --compare ccrs_meta:kbrd

One file per row, ``<dir>/<row>.parquet``, one line per test sample of every fold, columns
:data:`COLUMNS` (no dialogue text): ``rank`` is the 0-based rank of the label among all items, so
every metric of the table is a function of ``rank`` (:func:`ccrs.eval.rec_metrics.metrics_from_ranks`),
``label_in_context`` selects the dedup rows, and ``user_id`` (+ ``fold``) is the unit of the
user-level tests. :func:`recompute` rebuilds the pooled metrics and paired tests from the files
alone; a test checks that it reproduces :func:`ccrs.experiments.rec_table.aggregate`.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pyarrow as pa
import torch

from ccrs import storage
from ccrs.eval.rec_evaluator import RecPredictions
from ccrs.eval.rec_metrics import metrics_from_ranks, per_sample_metrics
from ccrs.eval.significance import paired_tests

COLUMNS = ("sample_id", "user_id", "fold", "rank", "label_in_context")
TEST_METRICS = ("ndcg@10", "hit@10", "hit@50")


def pooled_table(per_fold: dict[int, RecPredictions]) -> pa.Table:
    """The audit columns of several folds' predictions, sorted by (fold, sample_id)."""
    rows = []
    for fold, p in sorted(per_fold.items()):
        order = torch.argsort(p.sample_ids).tolist()
        for i in order:
            rows.append((int(p.sample_ids[i]), int(p.user_ids[i]), fold, int(p.ranks[i]), bool(p.label_in_context[i])))
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in COLUMNS]
    types = (pa.int64(), pa.int64(), pa.int64(), pa.int64(), pa.bool_())
    return pa.table({c: pa.array(v, type=t) for c, v, t in zip(COLUMNS, cols, types, strict=True)})


def export(rows: dict[str, dict[int, RecPredictions]], directory: str) -> dict[str, str]:
    """Write ``<directory>/<row>.parquet`` for every row (atomic per file); returns row → URI."""
    root = storage.resolve(directory)
    out = {}
    for name, per_fold in rows.items():
        loc = root.child(f"{name}.parquet")
        storage.write_bytes(loc, storage.table_to_parquet_bytes(pooled_table(per_fold)))
        out[name] = loc.uri
    return out


def load(directory: str, names: list[str] | None = None) -> dict[str, pa.Table]:
    root = storage.resolve(directory)
    names = names or sorted(f[: -len(".parquet")] for f in storage.list_files(root) if f.endswith(".parquet"))
    tables = {}
    for n in names:
        t = storage.read_parquet(root.child(f"{n}.parquet"))
        missing = [c for c in COLUMNS if c not in t.column_names]
        if missing:
            raise ValueError(f"{root.child(n + '.parquet').uri}: missing columns {missing}")
        tables[n] = t.sort_by([("fold", "ascending"), ("sample_id", "ascending")])
    return tables


def recompute(tables: dict[str, pa.Table], compare: list[tuple[str, str]], n_resamples: int = 10_000) -> dict:
    """Pooled metrics (all / dedup) per row and the paired tests (per sample and per user) of ``compare``."""
    report: dict = {"metrics": {}, "significance": []}
    cols = {}
    for name, t in tables.items():
        ranks = torch.tensor(t.column("rank").to_pylist(), dtype=torch.long)
        dedup = ~np.asarray(t.column("label_in_context").to_pylist(), dtype=bool)
        users = np.asarray(t.column("user_id").to_pylist())  # the user split's test users are disjoint across folds
        keys = np.array([f"{f}:{s}" for f, s in zip(t.column("fold").to_pylist(), t.column("sample_id").to_pylist(),
                                                     strict=True)])
        cols[name] = {"all": (ranks, users, keys), "dedup": (ranks[torch.from_numpy(dedup)], users[dedup], keys[dedup])}
        report["metrics"][name] = {v: metrics_from_ranks(cols[name][v][0]) for v in ("all", "dedup")}
    for a, b in compare:
        for variant in ("all", "dedup"):
            ra, ua, ka = cols[a][variant]
            rb, _, kb = cols[b][variant]
            if not np.array_equal(ka, kb):
                raise ValueError(f"{a} and {b} hold different samples; cannot pair them")
            va, vb = per_sample_metrics(ra), per_sample_metrics(rb)
            for m in TEST_METRICS:
                report["significance"].append({"variant": variant, "a": a, "b": b, "metric": m,
                                               **paired_tests(va[m].numpy(), vb[m].numpy(), ua, n_resamples)})
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("directory")
    ap.add_argument("--compare", default="", help="A:B[,C:D]")
    ap.add_argument("--resamples", type=int, default=10_000)
    args = ap.parse_args(argv)
    try:
        tables = load(args.directory)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    pairs = [tuple(p.split(":", 1)) for p in args.compare.split(",") if p]
    unknown = sorted({x for pair in pairs for x in pair} - set(tables))
    if unknown:
        print(f"error: --compare names rows with no file: {unknown}; rows: {sorted(tables)}", file=sys.stderr)
        return 2
    print(json.dumps(recompute(tables, pairs, args.resamples), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
