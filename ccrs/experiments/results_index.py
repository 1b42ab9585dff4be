"""The index of ``results/`` (``docs/results.md``): each result, what it shows, its command, its date.

    python -m ccrs.experiments.results_index > docs/results.md

A result is a stem at the top of ``results/`` (``rec_meta.{json,md}``, ``scaling_users.png``, ...) or
a folder (``predictions/``, ``archive/``). What it shows is the Markdown's first heading; the command
is the first line of its Markdown (or its JSON's ``command``) that runs ``python``, ``ccrs`` or
``bash``; the date is the last commit that touched it (``git log``; "uncommitted" otherwise).
``tests/test_docs.py`` checks that every committed file under ``results/`` has its row.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
_COMMAND = re.compile(r"((?:\.venv/bin/)?(?:python3?|ccrs|bash|cluster/submit\.sh) [^`\n]*)")

#: What a folder holds, where its files say nothing of themselves.
FOLDERS = {
    "archive": "earlier versions of results, kept with the data or code they were computed on (named by what changed)",
    "predictions": "per-sample predictions of the Table 1 rows (sample, user, fold, rank): any metric can be recomputed",
    "figures": "Fig. 3 and Fig. 4 of the paper on our runs (`ccrs eval figures`)",
    "interactive_sessions": "every simulated session of `results/interactive.md` (turns, proposals, outcome)",
    "generation_responses": "the generated test responses behind `results/generation.md`, one file per row",
    "decoding_fold0_valid_responses": "the responses of each decoding setting of `results/decoding_fold0_valid.md`",
    "cap_select": "valid-user runs of the fan-out cap study (`results/fan_out_cap.md`)",
    "tune_rec_plots": "the recommender sweep's plots (`results/tune_rec.md`)",
    "tune_dial_plots": "the generator sweep's plots (`results/tune_dial.md`)",
}


#: Results that are only a picture: what it shows and the command that makes it.
PICTURES = {
    "chat_page": ("the chat page on synthetic data (the chat-page test's screenshot)",
                  "CCRS_SCREENSHOT_DIR=results pytest tests/serve/test_chat_page.py"),
    "chat_page_real": ("the chat page on the real-data demo (README)",
                       "make serve & python -m serve.screenshot --out results/chat_page_real.png --message "
                       "'I loved Alien and The Thing, any other scary sci-fi?' --message 'Seen it. Something newer?'"),
}


def committed_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, capture_output=True, text=True, check=True)
        return [ROOT / line for line in out.stdout.splitlines() if line]
    except (OSError, subprocess.CalledProcessError):
        return sorted(p for p in RESULTS.rglob("*") if p.is_file())


def groups(files: list[Path]) -> dict[str, list[Path]]:
    """``stem`` (top-level files) or ``folder/`` → its files."""
    out: dict[str, list[Path]] = defaultdict(list)
    for f in files:
        rel = f.relative_to(RESULTS)
        if len(rel.parts) > 1:
            out[rel.parts[0] + "/"].append(f)
        else:
            stem = rel.name
            for ext in (".json", ".md", ".png", ".parquet", ".yaml", ".svg"):
                stem = stem.removesuffix(ext)
            for suffix in ("_best_config",):  # tune_rec_best_config.yaml belongs with tune_rec
                stem = stem.removesuffix(suffix)
            out[stem].append(f)
    return dict(sorted(out.items()))


def _date(paths: list[Path]) -> str:
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%cs", "--", *map(str, paths)], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.strip()
        return out or "uncommitted"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _describe(key: str, paths: list[Path]) -> tuple[str, str]:
    """(what it shows, the command) of a result."""
    if key.endswith("/"):
        return FOLDERS.get(key.rstrip("/"), "supporting files"), ""
    if key in PICTURES:
        return PICTURES[key]
    title, command = "", ""
    md = next((p for p in paths if p.suffix == ".md"), None)
    if md is not None:
        text = md.read_text(errors="replace")
        heading = next((ln for ln in text.splitlines() if ln.startswith("# ")), "")
        title = heading[2:].strip()
        m = _COMMAND.search(text)
        command = m.group(1).strip() if m else ""
    js = next((p for p in paths if p.suffix == ".json"), None)
    if js is not None and (not command or not title):
        try:
            data = json.loads(js.read_text())
        except (ValueError, UnicodeDecodeError):
            data = {}
        if isinstance(data, dict):
            command = command or str(data.get("command") or "")
            title = title or str(data.get("title") or "")
    if not title:
        title = {".png": "a figure", ".parquet": "per-sample predictions"}.get(paths[0].suffix, "")
    return title, command


def index_markdown() -> str:
    lines = ["# Results: an index of `results/`", "",
             "Every file under `results/`, grouped by result: what it shows (its own heading), the command that",
             "regenerates it (also in the file), and the date of its last commit. Generated by",
             "`python -m ccrs.experiments.results_index > docs/results.md`; `tests/test_docs.py` fails when a",
             "committed result has no row here.", "",
             "| result | files | what it shows | command | date |", "|---|---|---|---|---|"]
    for key, paths in groups(committed_files()).items():
        title, command = _describe(key, paths)
        if key.endswith("/"):
            files = f"{len(paths)} files"
            name = f"`results/{key}`"
        else:
            files = ", ".join(sorted(p.name.removeprefix(key) or p.name for p in paths))
            name = f"`results/{key}`"
        cmd = f"`{command[:160]}{'…' if len(command) > 160 else ''}`" if command else "—"
        lines.append(f"| {name} | {files} | {title.replace('|', '/')} | {cmd.replace('|', '/')} | {_date(paths)} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(index_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
