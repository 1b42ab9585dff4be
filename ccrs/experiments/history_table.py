"""Table 1 with history (issue 30): every row's pooled test predictions → metrics, gains, user-level tests.

    python -m ccrs.experiments.history_table results/predictions/rec_history \\
        --reuse results/predictions/rec_meta:kbrd,ccrs,ccrs_meta,popularity,repeat_context \\
        --save results/rec_history

Reads ``<dir>/<row>.parquet`` (the audit format of :mod:`ccrs.experiments.audit_predictions`: one
line per test sample of every fold) and writes ``<save>.json`` / ``<save>.md``: pooled metrics (all
samples and dedup), each row's relative gain over ``kbrd``, and paired user-level tests of
:data:`COMPARE`. ``--reuse DIR:rows`` first copies rows of an earlier table (the same test samples:
the prepared data are deterministic) into ``<dir>``, restricted to the folds the new rows cover, so a
table can add rows without retraining the old ones; every copied row is listed in the report with
its source. Training is deterministic for a given number of torch threads (a kbrd retrain reproduced
every rank); the attention encoders' scatter sums are not bit-stable across thread counts, so a ccrs
retrained under ``--jobs 2`` instead of 1 is another draw of the same training (fold 0, test
NDCG@10 0.1215 vs 0.1297): that spread is what the user-level tests must see past.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

import pyarrow as pa
import pyarrow.compute as pc

from ccrs import storage
from ccrs.experiments.audit_predictions import load, recompute

#: What each row saw of the user: the fairness statement of the table.
SAW = {
    "popularity": "training labels only",
    "repeat_context": "the current conversation",
    "history_popularity": "the user's earlier conversations (no current context)",
    "kbrd": "the current conversation",
    "kbrd_history": "the current conversation + the earlier conversations as extra mentions",
    "ccrs": "the current conversation + the user's id row",
    "ccrs_meta": "the current conversation + an inner step on the support conversations",
    "ccrs_history": "the current conversation + the earlier conversations (copy term, Eq. H4)",
    "ccrs_history_meta": "as ccrs_history + an inner step on the support conversations",
    "ccrs_history_meta_beta0": "as ccrs_history_meta without the inner step",
}
ORDER = list(SAW)
#: The pairs the issue asks about (those whose rows are present are tested).
COMPARE = [("ccrs_history_meta", "kbrd"), ("ccrs_history_meta", "kbrd_history"), ("ccrs_history", "kbrd"),
           ("ccrs_history_meta", "ccrs_history_meta_beta0"), ("ccrs_history_meta", "ccrs_history"),
           ("ccrs_history", "kbrd_history"), ("ccrs_history", "ccrs"), ("ccrs_history_meta", "ccrs_meta"), ("kbrd_history", "kbrd"),
           ("history_popularity", "popularity")]
COLUMNS = ("hit@1", "hit@10", "hit@50", "mrr@10", "ndcg@10", "ndcg@50")


def reuse(source: str, rows: list[str], directory: str, folds: set[int]) -> dict[str, str]:
    """Copy ``rows`` of ``source`` into ``directory``, keeping only ``folds``; returns row → source URI."""
    src, dst = storage.resolve(source), storage.resolve(directory)
    out = {}
    for row in rows:
        table = storage.read_parquet(src.child(f"{row}.parquet"))
        table = table.filter(pc.is_in(table.column("fold"), value_set=pa.array(sorted(folds))))
        storage.write_bytes(dst.child(f"{row}.parquet"), storage.table_to_parquet_bytes(table))
        out[row] = f"{source.rstrip('/')}/{row}.parquet"  # as given (a relative path stays relative)
    return out


def export_runs(runs: str, rows: list[str], directory: str) -> dict[str, list[int]]:
    """Write ``<directory>/<row>.parquet`` from the finished ``ccrs eval rec`` runs
    ``<runs>/user/<row>/fold<f>/`` (every fold that has a ``result.json``); returns row → folds."""
    from ccrs.experiments.audit_predictions import export
    from ccrs.experiments.rec_table import load_predictions

    root, out = storage.resolve(runs), {}
    per_row = {}
    for row in rows:
        folds = sorted(int(d[len("fold"):]) for d in {p.split("/")[0] for p in storage.list_files(root.child("user", row))}
                       if d.startswith("fold") and storage.exists(root.child("user", row, d, "result.json")))
        if not folds:
            raise FileNotFoundError(f"{root.child('user', row).uri}: no finished run")
        per_row[row] = {f: load_predictions(root.child("user", row, f"fold{f}").uri, "test") for f in folds}
        out[row] = folds
    export(per_row, directory)
    return out


def build(directory: str, reused: dict[str, str], n_resamples: int, command: str) -> dict:
    tables = load(directory)
    folds = set.intersection(*({f for f in t.column("fold").to_pylist()} for t in tables.values()))
    tables = {r: t.filter(pc.is_in(t.column("fold"), value_set=pa.array(sorted(folds)))) for r, t in tables.items()}
    rows = sorted(tables, key=lambda r: (ORDER.index(r) if r in ORDER else len(ORDER), r))
    tables = {r: tables[r] for r in rows}
    pairs = [(a, b) for a, b in COMPARE if a in tables and b in tables]
    report = recompute(tables, pairs, n_resamples)
    folds = sorted(folds)
    users = {r: len(set(t.column("user_id").to_pylist())) for r, t in tables.items()}
    base = report["metrics"].get("kbrd")
    gains = {}
    if base:
        for r, m in report["metrics"].items():
            gains[r] = {v: {k: m[v][k] / base[v][k] - 1 for k in ("ndcg@10", "hit@10", "hit@50") if base[v][k]}
                        for v in ("all", "dedup")}
    return {"title": "Table 1 with history: pooled test samples of the user split", "command": command,
            "folds": folds, "rows": rows, "users": users, "saw": {r: SAW.get(r, "") for r in rows},
            "reused": reused, "gain_over_kbrd": gains, **report}


def format_markdown(r: dict) -> str:
    commands = r.get("runs_command") or []
    commands = [commands] if isinstance(commands, str) else commands
    trained = ["The rows' runs were trained with:", ""] if commands else []
    for c in commands:
        trained += ["```", c, "```", ""]
    lines = [f"# {r['title']}", "", *trained, "Regenerate with:", "", "```", r["command"], "```", "",
             f"Folds {r['folds'][0]}–{r['folds'][-1]} ({len(r['folds'])}); samples pooled over the folds; every row "
             "is scored on the same test samples. Gain = relative to kbrd.", ""]
    for variant in ("all", "dedup"):
        lines += [f"## {variant} samples" + (" (label not mentioned before)" if variant == "dedup" else ""), "",
                  "| row | saw | n | " + " | ".join(c.upper().replace("HIT", "HR") for c in COLUMNS)
                  + " | NDCG@10 gain | HR@10 gain |",
                  "|---|---|---:|" + "---:|" * (len(COLUMNS) + 2)]
        for row in r["rows"]:
            m = r["metrics"][row][variant]
            g = r["gain_over_kbrd"].get(row, {}).get(variant, {})
            lines.append(f"| {row} | {r['saw'][row]} | {m['count']} | " + " | ".join(f"{m[c]:.4f}" for c in COLUMNS)
                         + f" | {g.get('ndcg@10', 0):+.1%} | {g.get('hit@10', 0):+.1%} |")
        lines.append("")
    lines += ["## Paired tests", "", "User-level: whole users resampled / sign-flipped (the headline test).", "",
              "| samples | A vs B | metric | A | B | diff | 95% CI (users) | p (users) | user wins/losses |",
              "|---|---|---|---:|---:|---:|---|---:|---|"]
    for s in r["significance"]:
        lines.append(f"| {s['variant']} | {s['a']} vs {s['b']} | {s['metric']} | {s['mean_a']:.4f} | {s['mean_b']:.4f} | "
                     f"{s['diff']:+.4f} | ({s['user_ci95_low']:+.4f}, {s['user_ci95_high']:+.4f}) | "
                     f"{s['p_user_permutation']:.4f} | {s['user_wins']}/{s['user_losses']} |")
    if r["reused"]:
        lines += ["", "Rows copied from other folders (the same test samples): "
                  + ", ".join(f"`{k}` ← `{v}`" for k, v in r["reused"].items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("directory", help="folder of <row>.parquet files (audit format)")
    ap.add_argument("--runs", action="append", default=[], metavar="RUNS:ROW[,ROW]",
                    help="export these rows' test predictions from finished `ccrs eval rec` runs first")
    ap.add_argument("--reuse", action="append", default=[], metavar="DIR:ROW[,ROW]",
                    help="copy these rows of an earlier table's folder first")
    ap.add_argument("--save", required=True, help="write <SAVE>.json and <SAVE>.md")
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--runs-command", action="append", default=[],
                    help="a command that trained the rows' runs (quoted in the report; repeatable)")
    args = ap.parse_args(argv)
    for item in args.runs:
        runs, _, rows = item.rpartition(":")
        export_runs(runs, [x for x in rows.split(",") if x], args.directory)
    tables = load(args.directory)
    folds = set.intersection(*({f for f in t.column("fold").to_pylist()} for t in tables.values()))
    reused: dict[str, str] = {}
    for item in args.reuse:
        source, _, rows = item.rpartition(":")
        reused |= reuse(source, [x for x in rows.split(",") if x], args.directory, folds)
    command = "python -m ccrs.experiments.history_table " + shlex.join(sys.argv[1:] if argv is None else argv)
    report = build(args.directory, reused, args.resamples, command)
    report["runs_command"] = args.runs_command
    storage.write_bytes(storage.resolve(args.save + ".json"), json.dumps(report, indent=2).encode())
    storage.write_bytes(storage.resolve(args.save + ".md"), format_markdown(report).encode())
    print(format_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
