"""Where raw data comes from, first found wins (see ``ccrs --help``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ccrs.data.raw import MissingRawFiles

log = logging.getLogger(__name__)

SHARED_RELATIVE = Path("..") / "shared" / "data" / "redial"
_CHECKOUT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    return Path(os.environ.get("CCRS_CACHE_DIR", Path.home() / ".cache" / "ccrs"))


def sibling_candidates() -> list[Path]:
    seen, out = set(), []
    for base in (Path.cwd(), _CHECKOUT):
        p = (base / SHARED_RELATIVE).resolve()
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def resolve_raw_dir(
    explicit: str | Path | None = None, allow_download: bool = True, allow_synthetic: bool = True
) -> tuple[Path, str]:
    """``(raw_dir, how it was found)``: --raw, $CCRS_RAW_DIR, ../shared/data/redial, download, synthetic."""
    if explicit is not None:
        p = Path(explicit)
        if not p.is_dir():
            raise MissingRawFiles(f"--raw {p}: no such directory")
        return p, "--raw"
    env = os.environ.get("CCRS_RAW_DIR")
    if env:
        if not Path(env).is_dir():
            raise MissingRawFiles(f"CCRS_RAW_DIR={env}: no such directory")
        return Path(env), "$CCRS_RAW_DIR"
    for p in sibling_candidates():
        if p.is_dir():
            return p, "sibling ../shared/data/redial"
    if allow_download:
        from ccrs.data.download import DownloadError, download_all, load_sources

        dest = cache_dir() / "redial"
        try:
            download_all(load_sources(None), dest, timeout=10.0)
            return dest, "downloaded by `ccrs data download`"
        except (DownloadError, OSError) as exc:
            log.warning("could not download raw data (%s)", exc)
    if allow_synthetic:
        from ccrs.data.synth import write_synthetic_raw

        dest = cache_dir() / "synthetic-redial"
        if not (dest / "movies_with_mentions.csv").is_file():
            write_synthetic_raw(dest)
        msg = (
            "no real ReDial data found (--raw, $CCRS_RAW_DIR, ../shared/data/redial, download): "
            f"using SYNTHETIC data from {dest}; numbers from it say nothing about ReDial"
        )
        log.warning(msg)
        return dest, "SYNTHETIC: " + msg
    raise MissingRawFiles(
        "no raw ReDial directory: pass --raw DIR, set CCRS_RAW_DIR, or place it at ../shared/data/redial"
    )
