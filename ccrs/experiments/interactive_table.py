"""Reports of interactive evaluation (:mod:`ccrs.eval.interactive`): one run, or many systems pooled
over folds on the same sessions, with user-level paired tests and a success-against-round PNG.

Per-session records (ids and timings, no dialogue text) are saved beside every report as JSONL so any
metric can be recomputed: ``<save>_sessions.jsonl.gz`` (one run) or ``<dir>/<row>_fold<F>.jsonl.gz``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from ccrs.eval.interactive import compare, summarize


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_records(records: list[dict], path: Path) -> None:
    _atomic_write(path, gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode(), mtime=0))


def read_records(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def _fmt(x, spec=".3f") -> str:
    return "—" if x is None else format(x, spec)


def format_run_markdown(report: dict) -> str:
    s, cfg = report["summary"], report["config"]
    lines = [f"# Interactive evaluation, fold {report['fold']} ({report['part']} users)", "", f"    {report['command']}", "",
             f"{s['sessions']} sessions of {s['users']} users ({report['counts']['without_target']} of "
             f"{report['counts']['conversations']} conversations had no suggested-and-liked target); "
             f"{cfg['rounds']} rounds, top-{cfg['k']}, adapt={cfg['adapt']}; HTTP calls {report['http_calls']}, "
             f"errors {report['http_errors']}.", "",
             "| " + " | ".join(f"success@{r + 1}" for r in range(cfg["rounds"])) + " | rounds to success | recall | clues understood | ms / session |",
             "|" + "---:|" * (cfg["rounds"] + 4)]
    lines.append("| " + " | ".join(f"{x:.3f}" for x in s["success_at"]) + f" | {_fmt(s['mean_rounds_to_success'], '.2f')} | "
                 f"{s['target_recall']:.3f} | {_fmt(s['clues_understood'])} | {_fmt(s['session_ms_mean'], '.0f')} |")
    return "\n".join(lines) + "\n"


def write_run(report: dict, records: list[dict], save: str) -> None:
    base = Path(save)
    write_records(records, base.with_name(base.name + "_sessions.jsonl.gz"))
    _atomic_write(base.with_suffix(".json"), (json.dumps(report, indent=2) + "\n").encode())
    _atomic_write(base.with_suffix(".md"), format_run_markdown(report).encode())


def build_table(rows: dict[str, dict[int, list[dict]]], rounds: int, comparisons: list[tuple[str, str]],
                n_resamples: int = 10_000, subsets: dict[str, set[tuple[int, str]]] | None = None) -> dict:
    """``rows[name][fold]`` = session records → pooled summaries, per-fold success@T and paired tests;
    ``subsets`` (name → session keys ``(user_id, conversation_id)``) repeats summaries and tests on each
    subset of the sessions (``out["subsets"]``)."""
    out = {"rounds": rounds, "rows": {}, "comparisons": {}}
    for name, keys in (subsets or {}).items():
        part = {row: {f: [r for r in recs if (r["user_id"], r["conversation_id"]) in keys] for f, recs in folds.items()}
                for row, folds in rows.items()}
        out.setdefault("subsets", {})[name] = build_table(part, rounds, comparisons, n_resamples)
    for name, folds in rows.items():
        pooled = [r for f in sorted(folds) for r in folds[f]]
        out["rows"][name] = summarize(pooled, rounds) | {
            "per_fold_success_at_T": {str(f): summarize(folds[f], rounds)["success_at"][-1] for f in sorted(folds)}}
    for a, b in comparisons:
        if a in rows and b in rows:
            pa = [r for f in sorted(rows[a]) for r in rows[a][f]]
            pb = [r for f in sorted(rows[b]) for r in rows[b][f]]
            out["comparisons"][f"{a} vs {b}"] = compare(pa, pb, rounds, n_resamples)
    return out


def format_table_markdown(report: dict) -> str:
    T = report["rounds"]
    lines = ["| system | sessions | users | " + " | ".join(f"S@{r + 1}" for r in range(T)) +
             " | rounds to success | recall | clues understood | ms / session | errors |",
             "|---|---:|---:|" + "---:|" * (T + 5)]
    for name, s in report["rows"].items():
        lines.append(f"| {name} | {s['sessions']} | {s['users']} | " + " | ".join(f"{x:.3f}" for x in s["success_at"]) +
                     f" | {_fmt(s['mean_rounds_to_success'], '.2f')} | {s['target_recall']:.3f} | "
                     f"{_fmt(s['clues_understood'])} | {_fmt(s['session_ms_mean'], '.0f')} | {s['errors']} |")
    if report["comparisons"]:
        lines += ["", f"Paired tests on the same sessions (a − b; success@1, success@{T} and target recall; p by sign "
                      "flips of sessions and of whole users):", "",
                  f"| a vs b | sessions | round-1 top-k differs | Δ S@1 | p session | p user | Δ S@{T} | p session | p user "
                  "| Δ recall | p session | p user |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, c in report["comparisons"].items():
            if not c.get("sessions"):
                continue
            s, r, s1 = c["success"], c["recall"], c["success_round1"]
            lines.append(f"| {name} | {c['sessions']} | {c['first_round_topk_differs']:.3f} | {s1['diff']:+.3f} | "
                         f"{s1['p_permutation']:.4f} | {s1['p_user_permutation']:.4f} | {s['diff']:+.3f} | {s['p_permutation']:.4f} | "
                         f"{s['p_user_permutation']:.4f} | {r['diff']:+.3f} | {r['p_permutation']:.4f} | "
                         f"{r['p_user_permutation']:.4f} |")
    if report.get("subsets"):
        lines += ["", "The same sessions split by what a returning user's history holds (tests within each part):"]
    for name, sub in (report.get("subsets") or {}).items():
        lines += ["", f"**{name}**", "", f"| system | sessions | S@1 | S@3 | S@{T} | recall |", "|---|---:|---:|---:|---:|---:|"]
        for row, s in sub["rows"].items():
            lines.append(f"| {row} | {s['sessions']} | {s['success_at'][0]:.3f} | {s['success_at'][min(2, T - 1)]:.3f} | "
                         f"{s['success_at'][-1]:.3f} | {s['target_recall']:.3f} |")
        tests = [(n, c) for n, c in sub["comparisons"].items() if c.get("sessions")]
        if tests:
            lines += ["", f"| a vs b | sessions | Δ S@1 | p user | Δ S@{T} | p user |", "|---|---:|---:|---:|---:|---:|"]
            lines += [f"| {n} | {c['sessions']} | {c['success_round1']['diff']:+.3f} | "
                      f"{c['success_round1']['p_user_permutation']:.4f} | {c['success']['diff']:+.3f} | "
                      f"{c['success']['p_user_permutation']:.4f} |" for n, c in tests]
    return "\n".join(lines) + "\n"


def plot_success(report: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T = report["rounds"]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, s in report["rows"].items():
        ax.plot(range(1, T + 1), s["success_at"], marker="o", label=name)
    ax.set_xlabel("round")
    ax.set_ylabel("success (a target in the top-k)")
    ax.set_xticks(range(1, T + 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Interactive evaluation: simulated seekers over HTTP")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
