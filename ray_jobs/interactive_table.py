"""Interactive evaluation table: every recommender checkpoint served on Ray Serve, the same simulated
sessions against each over HTTP, with and without per-user adaptation, folds pooled.

    python -m ray_jobs.interactive_table --prepared runs/real/prepared --folds 0-2 --history \\
        --ckpt 'kbrd=runs/real/rec_hist/user/kbrd/fold{fold}/best.pt' \\
        --ckpt 'kbrd_history=runs/real/rec_hist/user/kbrd_history/fold{fold}/best.pt' \\
        --ckpt 'ccrs=runs/real/rec_hist/user/ccrs/fold{fold}/best.pt' \\
        --ckpt 'ccrs_history=runs/real/rec_hist/user/ccrs_history/fold{fold}/best.pt' \\
        --ckpt 'ccrs_history_meta=runs/real/rec_hist_meta/ccrs_history-fold{fold}/eval/best.pt' \\
        --adapt-rows ccrs,ccrs_history_meta --rounds 5 --k 10 --save results/interactive

For each fold and checkpoint the app (``serve.app:build_app``, recommender only) is deployed on a
local Ray (or ``RAY_ADDRESS``) and the fold's test users' sessions are played over HTTP
(:mod:`ccrs.eval.interactive`). Every row starts from users the service does not know (each is
forgotten through ``DELETE /v1/users/{id}``); with ``--history`` each user then returns: their
support conversations go to ``/v1/users/{id}/history`` (row ``<name>``; a model that reads no
history ignores them). For ``--adapt-rows`` they go to ``/v1/users/{id}/adapt`` instead (row
``<name>+adapt``: adapted, and remembered as history). Session records go to
``<save>_sessions/<row>_fold<F>.jsonl.gz`` and a finished (row, fold) is skipped on rerun (resume).
The report pools the folds: success@round, rounds to success, target recall, clue understanding,
latency, HTTP errors, user-level paired tests (``--compare``; ``<save>.json``/``.md``) and success
against round (``<save>.png``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from ccrs.data.dataset import PreparedDataset
from ccrs.eval.interactive import (
    InteractiveConfig,
    build_sessions,
    run_interactive,
    simulator_for,
    targets_in_support,
)
from ccrs.experiments.interactive_table import (
    build_table,
    format_table_markdown,
    plot_success,
    read_records,
    write_records,
)


def parse_folds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def deploy(rec_ckpt: str, data: str, port: int) -> str:
    """(Re)deploy the app with ``rec_ckpt``; returns its URL once it answers."""
    import urllib.request

    from ray import serve

    from serve.app import build_app

    serve.run(build_app({"rec_ckpt": os.path.abspath(rec_ckpt), "data": os.path.abspath(data), "num_replicas": 1,
                         "replica_num_cpus": 0.5, "recommender_only": True}), name="ccrs", route_prefix="/")
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "healthz", timeout=5) as r:
                if r.status == 200:
                    return url
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"the app with {rec_ckpt} did not become healthy in 120 s")
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prepared", required=True)
    ap.add_argument("--folds", default="0-2")
    ap.add_argument("--ckpt", action="append", required=True, help="NAME=PATH with {fold}, repeatable, in row order")
    ap.add_argument("--adapt-rows", default="", help="rows also run with adaptation (comma-separated names)")
    ap.add_argument("--history", action="store_true",
                    help="returning users: support conversations sent to /v1/users/{id}/history before the sessions")
    ap.add_argument("--compare", default="", help="paired tests A:B[,C:D] (default: each +adapt row against its "
                                                   "row, and the last ccrs row against every other)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--save", default="results/interactive")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    command = "python -m ray_jobs.interactive_table " + shlex.join(sys.argv[1:] if argv is None else argv)
    ckpts = dict(c.split("=", 1) for c in args.ckpt)
    adapt_rows = [r for r in args.adapt_rows.split(",") if r]
    unknown = set(adapt_rows) - set(ckpts)
    if unknown:
        ap.error(f"--adapt-rows names no --ckpt: {', '.join(sorted(unknown))}")
    folds = parse_folds(args.folds)
    for name, tpl in ckpts.items():
        for f in folds:
            if not Path(tpl.format(fold=f)).is_file():
                ap.error(f"--ckpt {name}: {tpl.format(fold=f)} does not exist")
    save = Path(args.save)
    sessions_dir = save.with_name(save.name + "_sessions")
    ds = PreparedDataset.open(args.prepared)
    sim = simulator_for(ds)

    import ray
    from ray import serve

    ray.init(address=os.environ.get("RAY_ADDRESS", "local"), log_to_driver=not args.quiet, logging_level="WARNING")
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    rows: dict[str, dict[int, list[dict]]] = {}
    runs_info: dict[str, dict] = {}
    in_support: dict[tuple[int, str], bool] = {}
    try:
        for f in folds:
            sessions, support, counts = build_sessions(ds, f, sim)
            runs_info[f"fold{f}"] = counts
            in_support |= targets_in_support(ds, sessions)
            for name, tpl in ckpts.items():
                modes = [False] + ([True] if name in adapt_rows else [])
                todo = [m for m in modes if not (sessions_dir / f"{name}{'+adapt' if m else ''}_fold{f}.jsonl.gz").exists()]
                url = deploy(tpl.format(fold=f), args.prepared, args.port) if todo else None
                for adapt in modes:  # every run forgets its users first: the order does not matter
                    row = f"{name}+adapt" if adapt else name
                    path = sessions_dir / f"{row}_fold{f}.jsonl.gz"
                    if not path.exists():
                        cfg = InteractiveConfig(url, args.rounds, args.k, adapt, args.concurrency, history=args.history)
                        run = run_interactive(cfg, sessions, support, sim, progress=not args.quiet)
                        write_records(run.records, path)
                        info = {"http_calls": run.http_calls, "http_errors": run.http_errors,
                                "errors": run.error_messages, "wall_s": run.wall_s,
                                "adapt_ms_mean": sum(run.adapt_ms.values()) / len(run.adapt_ms) if run.adapt_ms else None}
                        (path.with_suffix("").with_suffix(".info.json")).write_text(json.dumps(info, indent=2))
                        print(f"fold {f} {row}: {len(run.records)} sessions, {run.http_errors} HTTP errors, "
                              f"{run.wall_s:.0f} s", flush=True)
                    rows.setdefault(row, {})[f] = read_records(path)
    finally:
        serve.shutdown()
    names = list(rows)
    if args.compare:
        comparisons = [tuple(pair.split(":", 1)) for pair in args.compare.split(",") if pair]
        unknown = {n for pair in comparisons for n in pair} - set(names)
        if unknown:
            raise SystemExit(f"--compare names rows that were not run: {', '.join(sorted(unknown))}")
    else:
        comparisons = [(f"{r}+adapt", r) for r in adapt_rows]
        best = next((n for n in reversed(names) if n.startswith("ccrs")), None)
        for other in names:
            if best and other != best and (best, other) not in comparisons and not other.startswith(best.split("+")[0]):
                comparisons.append((best, other))
    subsets = {  # where a returning user's history can help, and where it can only take slots
        "a target is a movie of the user's support conversations": {k for k, v in in_support.items() if v},
        "no target among them": {k for k, v in in_support.items() if not v}}
    report = build_table(rows, args.rounds, comparisons, subsets=subsets)
    report.update(command=command, folds=folds, counts=runs_info, k=args.k)
    http = {"calls": 0, "errors": 0}
    adapt_ms = {}
    for row in rows:
        for f in folds:
            info = json.loads((sessions_dir / f"{row}_fold{f}.info.json").read_text())
            http["calls"] += info["http_calls"]
            http["errors"] += info["http_errors"]
            if info["adapt_ms_mean"] is not None:
                adapt_ms.setdefault(row, []).append(info["adapt_ms_mean"])
    report["http"] = http
    report["adapt_ms_mean"] = {r: sum(v) / len(v) for r, v in adapt_ms.items()}
    save.parent.mkdir(parents=True, exist_ok=True)
    save.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    n_sessions = sum(c["sessions"] for c in runs_info.values())
    md = [f"# Interactive evaluation: simulated seekers over HTTP (folds {args.folds} pooled)", "",
          "Regenerate with:", "", f"    {command}", "",
          f"{n_sessions} sessions ({sum(c['users'] for c in runs_info.values())} test users) of "
          f"{sum(c['conversations'] for c in runs_info.values())} query conversations (the rest have no "
          f"suggested-and-liked target); {args.rounds} rounds, top-{args.k}; S@r = share of sessions with a "
          f"target in the top-{args.k} by round r. HTTP calls {http['calls']}, **HTTP errors {http['errors']}**.",
          "", ("Returning users: before its sessions, every user's support conversations (their earlier "
               "conversations) were sent to `/v1/users/{id}/history` (rows without `+adapt`; a model that reads "
               "no history ignores them) or to `/v1/users/{id}/adapt` (`+adapt` rows: adapted and remembered)."
               if args.history else "Unknown users: no history sent (`+adapt` rows: support conversations sent "
               "to `/v1/users/{id}/adapt`, which adapts and remembers them)."),
          "", format_table_markdown(report),
          "Latency per session: `ms / session` sums the recommend calls; adapting a user costs "
          + (", ".join(f"{r} {v:.0f} ms" for r, v in report["adapt_ms_mean"].items()) or "nothing here")
          + " once (mean per user).", "",
          f"![success against round]({save.name}.png)", "",
          f"Per-session records (ids and timings only): `{sessions_dir.name}/<row>_fold<F>.jsonl.gz`."]
    save.with_suffix(".md").write_text("\n".join(md) + "\n")
    plot_success(report, save.with_suffix(".png"))
    print("\n".join(md))
    return 1 if http["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
