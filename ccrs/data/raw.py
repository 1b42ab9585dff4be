"""Readers for a raw ReDial directory (official schema) with errors that name the file, line and field.

A raw directory holds (names as in the official release and in ``../shared/data/redial``):

* dialog JSONL files, plain or ``.gz``, at the top level or under ``dialogs/``: ``train_data.jsonl``,
  ``test_data.jsonl``, ``redial_test.jsonl.gz``, ... A file whose name contains ``test`` is the
  official test side (used by the ``standard`` split); every other dialog file is train side.
* ``movies_with_mentions.csv`` (``movieId,movieName,nbMentions``).
* a DBpedia subgraph, see :mod:`ccrs.data.kg`.

Only JSON and CSV are parsed: pickles are never loaded.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm


class RawDataError(ValueError):
    """Bad raw input; the message starts with ``file:line`` where there is one."""


class MissingRawFiles(FileNotFoundError):
    """Expected raw files are absent; the message lists what was expected where."""


@dataclass(frozen=True)
class RawMessage:
    sender_id: int
    text: str


@dataclass
class RawConversation:
    conversation_id: str
    seeker_id: int
    recommender_id: int
    messages: list[RawMessage]
    movie_mentions: dict[int, str]
    source_file: str
    is_test_side: bool
    line: int
    turns_merged: bool = False
    #: ReDial's movie questionnaire: movie id → (suggested, seen, liked, answered_by). The seeker's
    #: answers (``initiatorQuestions``) where given, else the recommender's (``respondentQuestions``).
    #: suggested ∈ {0, 1} (the recommender proposed it); seen/liked ∈ {0 no, 1 yes, 2 did not say}.
    feedback: dict[int, tuple[int, int, int, str]] = field(default_factory=dict)


@dataclass
class DialogFileReport:
    path: str
    conversations: int = 0
    skipped_lines: list[int] = field(default_factory=list)


DIALOG_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".json")
# Files that look like dialogues but are not extra conversations (CFCRS annotations duplicate train
# conversations); they live outside the folders we scan.
_SCANNED_DIRS = (".", "dialogs")


def open_text(path: str | Path) -> io.TextIOBase:
    path = Path(path)
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def load_json(path: str | Path) -> object:
    """Read a JSON file (plain or .gz) with an error that names the file."""
    try:
        with open_text(path) as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise RawDataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_dialog_files(raw_dir: Path) -> list[Path]:
    found: list[Path] = []
    for sub in _SCANNED_DIRS:
        folder = raw_dir / sub
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if p.is_file() and p.name.endswith(DIALOG_SUFFIXES) and _looks_like_dialogs(p):
                found.append(p)
    return found


def _looks_like_dialogs(path: Path) -> bool:
    """A dialog file's first JSON line has ``conversationId`` and ``messages``; KG JSON does not."""
    try:
        with open_text(path) as f:
            first = f.readline(1 << 16)
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return False
    return '"conversationId"' in first and '"messages"' in first


def is_test_side(path: Path) -> bool:
    return "test" in path.name.lower()


_REQUIRED = {
    "conversationId": (str, int),
    "initiatorWorkerId": (int,),
    "respondentWorkerId": (int,),
    "messages": (list,),
}


_ANSWERS = {"suggested": (0, 1), "seen": (0, 1, 2), "liked": (0, 1, 2)}


def _parse_questions(obj: dict, key: str, where: str) -> dict[int, tuple[int, int, int]]:
    """``initiatorQuestions`` / ``respondentQuestions``: {movieId: {suggested, seen, liked}}."""
    raw = obj.get(key) or {}
    if not isinstance(raw, dict):
        raise RawDataError(f"{where}: field {key!r} must be an object {{movieId: answers}}")
    out = {}
    for k, answers in raw.items():
        try:
            mid = int(k)
        except ValueError:
            raise RawDataError(f"{where}: {key} key {k!r} is not a movie id") from None
        if not isinstance(answers, dict):
            raise RawDataError(f"{where}: {key}[{k}] must be an object")
        vals = []
        for name, allowed in _ANSWERS.items():
            v = answers.get(name, 2 if name != "suggested" else 0)
            if isinstance(v, bool) or not isinstance(v, int) or v not in allowed:
                raise RawDataError(f"{where}: {key}[{k}].{name} must be one of {allowed}, got {v!r}")
            vals.append(v)
        out[mid] = tuple(vals)
    return out


def parse_feedback(obj: dict, where: str) -> dict[int, tuple[int, int, int, str]]:
    """The questionnaire of one conversation: the seeker's answers, else the recommender's."""
    seeker = _parse_questions(obj, "initiatorQuestions", where)
    recommender = _parse_questions(obj, "respondentQuestions", where)
    if seeker:
        return {m: (*v, "seeker") for m, v in seeker.items()}
    return {m: (*v, "recommender") for m, v in recommender.items()}


def _parse_conversation(obj: object, where: str) -> tuple[str, int, int, list[RawMessage], dict[int, str]]:
    if not isinstance(obj, dict):
        raise RawDataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key, types_ in _REQUIRED.items():
        if key not in obj:
            raise RawDataError(f"{where}: missing field {key!r}")
        if not isinstance(obj[key], types_) or isinstance(obj[key], bool):
            raise RawDataError(f"{where}: field {key!r} has type {type(obj[key]).__name__}")
    messages = []
    for i, m in enumerate(obj["messages"]):
        if not isinstance(m, dict) or "senderWorkerId" not in m or "text" not in m:
            raise RawDataError(f"{where}: messages[{i}] needs 'senderWorkerId' and 'text'")
        if not isinstance(m["text"], str) or not isinstance(m["senderWorkerId"], int):
            raise RawDataError(f"{where}: messages[{i}] has a non-string 'text' or non-integer 'senderWorkerId'")
        messages.append(RawMessage(int(m["senderWorkerId"]), m["text"]))
    mentions_raw = obj.get("movieMentions") or {}
    if not isinstance(mentions_raw, dict):
        raise RawDataError(f"{where}: field 'movieMentions' must be an object")
    mentions: dict[int, str] = {}
    for k, v in mentions_raw.items():
        try:
            mentions[int(k)] = v if isinstance(v, str) else ""
        except ValueError:
            raise RawDataError(f"{where}: movieMentions key {k!r} is not a movie id") from None
    return str(obj["conversationId"]), int(obj["initiatorWorkerId"]), int(obj["respondentWorkerId"]), messages, mentions


def read_dialog_file(
    path: Path, skip_bad_lines: bool = False, progress: bool = True
) -> tuple[list[RawConversation], DialogFileReport]:
    """Parse one dialog JSONL file; a bad line raises ``RawDataError('file:line: ...')`` unless skipped."""
    report = DialogFileReport(path=path.name)
    convs: list[RawConversation] = []
    test_side = is_test_side(path)
    with open_text(path) as f:
        lines: Iterator[str] = f
        if progress:
            lines = tqdm(f, desc=f"read {path.name}", unit=" conv", leave=False)
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                convs.append(parse_conversation_line(line, path, test_side, lineno))
            except RawDataError:
                if not skip_bad_lines:
                    raise
                report.skipped_lines.append(lineno)
    report.conversations = len(convs)
    return convs, report


def parse_conversation_line(line: str, path: Path, test_side: bool, lineno: int) -> RawConversation:
    """One JSONL line of a dialog file (``path``, line ``lineno``) → a validated conversation, or
    ``RawDataError('file:line: ...')``."""
    where = f"{path}:{lineno}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RawDataError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    cid, seeker, rec, messages, mentions = _parse_conversation(obj, where)
    feedback = parse_feedback(obj, where)
    return RawConversation(
        conversation_id=cid,
        seeker_id=seeker,
        recommender_id=rec,
        messages=messages,
        movie_mentions=mentions,
        source_file=path.name,
        is_test_side=test_side,
        line=lineno,
        turns_merged=bool(obj.get("_turns_merged", False)),
        feedback=feedback,
    )


_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")


def split_title_year(name: str) -> tuple[str, int | None]:
    """``'Police Academy  (1984)'`` → ``('Police Academy', 1984)``."""
    m = _TITLE_YEAR.match(name.strip())
    if m:
        return " ".join(m.group("title").split()), int(m.group("year"))
    return " ".join(name.split()), None


@dataclass(frozen=True)
class Movie:
    movie_id: int
    name: str
    n_mentions: int


def read_movies_csv(path: Path) -> dict[int, Movie]:
    """``movies_with_mentions.csv`` → ``{movieId: Movie}``."""
    movies: dict[int, Movie] = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["movieId", "movieName"]:
            raise RawDataError(f"{path}:1: expected header 'movieId,movieName[,nbMentions]', got {header!r}")
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                movie_id = int(row[0])
                name = row[1]
                n = int(row[2]) if len(row) > 2 and row[2].strip() else 0
            except (ValueError, IndexError):
                raise RawDataError(f"{path}:{lineno}: expected movieId,movieName,nbMentions, got {row!r}") from None
            movies[movie_id] = Movie(movie_id, name, n)
    return movies
