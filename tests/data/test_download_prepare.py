"""``ccrs data download`` → ``ccrs data prepare`` with the shipped sources, against a local HTTP server
that mirrors their hosts (``--mirror``): a resumed download, a checksum mismatch, then a prepared dataset.

The synthetic test runs everywhere (the shipped URLs, the synthetic files' checksums); the real-data one
serves the files of ../shared/data/redial under the shipped URLs and checks the *shipped* checksums.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ccrs.data.download import DownloadError, download_all, load_sources, mirrored, sha256_bytes
from tests.data.test_download import Server

REPO = Path(__file__).resolve().parents[2]


def _read(path: Path) -> bytes:
    """The file's bytes as published (the copies under ../shared may be gzipped)."""
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    return path.read_bytes() if path.is_file() else gzip.decompress(Path(str(path) + ".gz").read_bytes())


def _mirror_files(raw: Path, dialogs: dict[str, Path]) -> dict[str, bytes]:
    """What each shipped URL serves, keyed by ``<host><path>`` (the mirror's layout)."""
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        for name, path in dialogs.items():
            z.writestr(name, _read(path))
        z.writestr("movies_with_mentions.csv", _read(raw / "movies_with_mentions.csv"))
    files = {}
    for s in load_sources(None):
        if not s.get("url"):
            continue
        u = urlsplit(s["url"])
        files[f"{u.netloc}{u.path}".lstrip("/")] = (zbuf.getvalue() if s["name"] == "redial"
                                                     else _read(raw / s["file"]))
    return files


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ccrs", *args], capture_output=True, text=True, cwd=REPO)


def _download_resume_mismatch_prepare(files: dict[str, bytes], sources_file: Path | None, tmp_path: Path) -> dict:
    dest = tmp_path / "raw"
    extra = ["--sources", str(sources_file)] if sources_file else []
    key = next(k for k in files if k.endswith("entity2id.json"))
    good = files[key]
    with Server(files) as srv:
        srv.cut_after = 50_000  # the first response (the ReDial archive) breaks off: a rerun resumes it
        files[key] = good.replace(b"1", b"2", 1)  # and the mirror serves other bytes for a pinned file
        first = _cli("data", "download", "--dest", str(dest), "--mirror", srv.url, "-q", *extra)
        assert first.returncode != 0, first.stdout
        assert "redial: got 50000 of" in first.stderr and "rerun to resume" in first.stderr
        assert "kg-crslab-entity2id: sha256" in first.stderr, first.stderr
        assert (dest / "redial_dataset.zip.part").stat().st_size == 50_000
        assert not (dest / "kg_unicrs_crslab" / "entity2id.json").exists()  # refused, nothing of it kept
        files[key] = good
        ok = _cli("data", "download", "--dest", str(dest), "--mirror", srv.url, "-q", *extra)
        assert ok.returncode == 0, ok.stderr
        assert srv.range_headers.count("bytes=50000-") == 1  # the archive resumed where it broke off
    assert not list(dest.rglob("*.part"))
    prepared = _cli("data", "prepare", "--raw", str(dest), "--out", str(tmp_path / "prepared"), "--no-download")
    assert prepared.returncode == 0, prepared.stderr
    return json.loads((tmp_path / "prepared" / "manifest.json").read_text())


def test_download_then_prepare_synthetic(synth_raw, synth_prepared, tmp_path):
    files = _mirror_files(synth_raw, {"train_data.jsonl": synth_raw / "dialogs" / "train_data.jsonl",
                                      "test_data.jsonl": synth_raw / "dialogs" / "test_data.jsonl"})
    # the shipped sources (URLs, layout), with the synthetic files' checksums in place of the real ones
    own = []
    for s in load_sources(None):
        if s.get("sha256"):
            u = urlsplit(s["url"])
            s = {**s, "sha256": sha256_bytes(files[f"{u.netloc}{u.path}".lstrip('/')])}
        own.append(s)
    sources_file = tmp_path / "sources.json"
    sources_file.write_text(json.dumps({"sources": own}))
    manifest = _download_resume_mismatch_prepare(files, sources_file, tmp_path)
    expected = json.loads((Path(synth_prepared) / "manifest.json").read_text())["summary"]
    assert manifest["summary"]["conversations"] == expected["conversations"]
    assert manifest["summary"]["rec_samples"] == expected["rec_samples"]


@pytest.mark.realdata
def test_download_then_prepare_real_files_match_the_shipped_checksums(shared_raw, tmp_path):
    files = _mirror_files(shared_raw, {"train_data.jsonl": shared_raw / "dialogs" / "redial_train_side.jsonl.gz",
                                       "test_data.jsonl": shared_raw / "dialogs" / "redial_test.jsonl.gz"})
    manifest = _download_resume_mismatch_prepare(files, None, tmp_path)  # the shipped checksums, unchanged
    assert manifest["summary"]["conversations"] == 6249 and manifest["summary"]["rec_samples"] == 24239


def test_optional_source_without_url_is_skipped_and_mirror_rewrites_hosts(tmp_path):
    assert download_all([{"name": "o", "url": None, "file": "o.json", "optional": True}], tmp_path,
                        progress=False) == []
    with pytest.raises(DownloadError, match="no public URL"):
        download_all([{"name": "o", "url": None, "file": "o.json"}], tmp_path, progress=False)
    (m,) = mirrored([{"name": "a", "url": "https://example.org/x/y.json", "file": "y.json"}], "http://127.0.0.1:9/")
    assert m["url"] == "http://127.0.0.1:9/example.org/x/y.json"


def test_every_required_default_source_is_pinned():
    for s in load_sources(None):
        if s.get("optional"):
            continue
        assert s["url"] and "/raw/" in s["url"] or "raw.githubusercontent.com" in s["url"], s
        assert any(len(part) == 40 and all(c in "0123456789abcdef" for c in part) for part in s["url"].split("/")), \
            f"{s['name']}: not at a fixed commit"
        if s["name"] != "redial":  # the archive's bytes could not be fetched here: trusted on first use
            assert s["sha256"] and len(s["sha256"]) == 64, s
