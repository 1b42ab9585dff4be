"""``ccrs data download``: fetch raw data over HTTP(S) with checksums and resume.

Each source (``sources.json`` shipped with ccrs, or ``--sources FILE``) names a URL, a destination
file under ``--dest``, an optional pinned ``sha256`` and an optional ``extract: zip``. A download goes
to ``<file>.part`` and resumes with an HTTP ``Range`` request when interrupted; the file is renamed
into place only after its checksum matches. Unpinned sources are trusted on first use: their digest
is written to ``<dest>/sources.lock.json`` and verified on every later run. Zip members are
extracted into ``--dest`` (never outside it). A source marked ``optional`` with no URL is skipped
when absent. ``--mirror URL`` fetches every source from ``URL/<host>/<path>`` instead of
``https://<host>/<path>`` (an internal mirror, or the test's local server); checksums still apply.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
import zipfile
from importlib import resources
from pathlib import Path

from tqdm.auto import tqdm

from ccrs.progress import bar_disabled

LOCK = "sources.lock.json"
CHUNK = 1 << 16


class DownloadError(RuntimeError):
    pass


def load_sources(path: str | Path | None) -> list[dict]:
    if path is None:
        text = resources.files("ccrs.data").joinpath("sources.json").read_text()
        where = "ccrs/data/sources.json"
    else:
        text, where = Path(path).read_text(), str(path)
    try:
        sources = json.loads(text)["sources"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DownloadError(f"{where}: expected {{\"sources\": [...]}} ({exc})") from None
    for i, s in enumerate(sources):
        for key in ("name", "file"):
            if not isinstance(s.get(key), str) or not s[key]:
                raise DownloadError(f"{where}: sources[{i}] needs a non-empty {key!r}")
        if Path(s["file"]).is_absolute() or ".." in Path(s["file"]).parts:
            raise DownloadError(f"{where}: sources[{i}].file must be a relative path inside --dest")
    return sources


def mirrored(sources: list[dict], mirror: str) -> list[dict]:
    """``sources`` with each URL's scheme and host replaced by ``mirror/<host>``."""
    from urllib.parse import urlsplit

    out = []
    for s in sources:
        if s.get("url"):
            u = urlsplit(s["url"])
            s = {**s, "url": f"{mirror.rstrip('/')}/{u.netloc}{u.path}"}
        out.append(s)
    return out


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch(url: str, part: Path, timeout: float, progress: bool, name: str) -> None:
    """Download ``url`` into ``part``, resuming from its current size when the server allows it."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "ccrs-download/1"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # already complete
            return
        raise DownloadError(f"{name}: HTTP {exc.code} from {url}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DownloadError(f"{name}: cannot reach {url} ({getattr(exc, 'reason', exc)})") from None
    with resp:
        if have and resp.status != 206:
            have = 0  # server ignored the Range header: start over
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        mode = "ab" if have else "wb"
        with open(part, mode) as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=name, disable=bar_disabled(progress), leave=False
        ) as bar:
            while True:
                try:
                    chunk = resp.read(CHUNK)
                except (TimeoutError, OSError) as exc:
                    raise DownloadError(f"{name}: interrupted after {f.tell()} bytes ({exc}); rerun to resume") from None
                if not chunk:
                    break
                f.write(chunk)
                bar.update(len(chunk))
        if total is not None and part.stat().st_size < total:
            raise DownloadError(f"{name}: got {part.stat().st_size} of {total} bytes; rerun to resume")


def _extract_zip(archive: Path, dest: Path) -> list[Path]:
    out = []
    root = dest.resolve()
    with zipfile.ZipFile(archive) as z:
        for member in z.infolist():
            if member.is_dir():
                continue
            target = (dest / member.filename).resolve()
            if root not in target.parents:
                raise DownloadError(f"{archive.name}: member {member.filename!r} would extract outside {dest}")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".extracting")
            with z.open(member) as src, open(tmp, "wb") as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
            os.replace(tmp, target)
            out.append(target)
    return out


def download_all(sources: list[dict], dest: str | Path, timeout: float = 30.0, progress: bool = True) -> list[Path]:
    """Fetch, verify and extract every source; returns the files now under ``dest``.

    Raises :class:`DownloadError` after trying every source if any could not be had (unreachable,
    checksum mismatch, or no URL and not already present).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    lock_path = dest / LOCK
    lock = json.loads(lock_path.read_text()) if lock_path.exists() else {}
    done, errors = [], []
    for s in sources:
        target = dest / s["file"]
        expected = s.get("sha256") or lock.get(s["name"])
        try:
            if target.exists() and (expected is None or _sha256(target) == expected):
                lock.setdefault(s["name"], _sha256(target))
            elif not s.get("url") and s.get("optional"):
                continue
            elif not s.get("url"):
                raise DownloadError(
                    f"{s['name']}: no public URL is pinned for {s['file']}; put the file at {target}"
                )
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                part = target.with_name(target.name + ".part")
                _fetch(s["url"], part, timeout, progress, s["name"])
                digest = _sha256(part)
                if expected is not None and digest != expected:
                    part.unlink()
                    raise DownloadError(f"{s['name']}: sha256 {digest} does not match the expected {expected}")
                os.replace(part, target)
                lock[s["name"]] = digest
            done.append(target)
            if s.get("extract") == "zip":
                done += _extract_zip(target, dest)
        except DownloadError as exc:
            errors.append(str(exc))
    tmp = lock_path.with_name(LOCK + ".tmp")
    tmp.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, lock_path)
    if errors:
        raise DownloadError("\n".join(["some sources could not be had (the others are in place):", *errors]))
    return done
