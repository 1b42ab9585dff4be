"""The `ccrs` command as a user runs it (subprocesses), plus raw-data discovery."""

import os
import subprocess
import sys

import pytest

from ccrs.data import locate


def run(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "ccrs", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=300)


def test_help_lists_subcommands():
    r = run("--help")
    assert r.returncode == 0
    for word in ("data", "config"):
        assert word in r.stdout
    r = run("data", "--help")
    for word in ("prepare", "synth", "download", "link-eval"):
        assert word in r.stdout


def test_synth_then_prepare_prints_the_summary(tmp_path):
    assert run("data", "synth", "--out", str(tmp_path / "raw"), "--users", "12").returncode == 0
    r = run("data", "prepare", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "ds"), "-q")
    assert r.returncode == 0, r.stderr
    assert "| user (fold 0/10) | train |" in r.stdout and "| standard | test |" in r.stdout
    assert "movie mentions linked to a KG node" in r.stdout
    r2 = run("data", "prepare", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "ds"), "-q")
    assert "already prepared" in r2.stderr


def test_bad_input_exits_2_naming_file_and_line(tmp_path):
    run("data", "synth", "--out", str(tmp_path / "raw"), "--users", "6")
    path = tmp_path / "raw" / "dialogs" / "test_data.jsonl"
    path.write_text(path.read_text() + "{oops\n")
    n = len(path.read_text().splitlines())
    r = run("data", "prepare", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "ds"), "-q")
    assert r.returncode == 2
    assert f"test_data.jsonl:{n}: invalid JSON" in r.stderr
    assert not (tmp_path / "ds").exists()


def test_missing_files_are_listed(tmp_path):
    (tmp_path / "raw").mkdir()
    r = run("data", "prepare", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "ds"))
    assert r.returncode == 2
    assert "movies_with_mentions.csv" in r.stderr and "dialog JSONL" in r.stderr and "dbpedia_subkg.json" in r.stderr


def test_config_show_applies_overrides():
    r = run("config", "show", "recommender.n_layers=3")
    assert r.returncode == 0 and "n_layers: 3" in r.stdout
    r = run("config", "show", "recommender.bogus=3")
    assert r.returncode == 2 and "recommender.bogus" in r.stderr


def test_raw_dir_resolution_order(tmp_path, monkeypatch, synth_raw):
    monkeypatch.delenv("CCRS_RAW_DIR", raising=False)
    assert locate.resolve_raw_dir(synth_raw) == (synth_raw, "--raw")
    monkeypatch.setenv("CCRS_RAW_DIR", str(synth_raw))
    assert locate.resolve_raw_dir(None)[1] == "$CCRS_RAW_DIR"
    monkeypatch.delenv("CCRS_RAW_DIR")
    monkeypatch.setattr(locate, "sibling_candidates", lambda: [tmp_path / "nowhere"])
    monkeypatch.setenv("CCRS_CACHE_DIR", str(tmp_path / "cache"))
    path, how = locate.resolve_raw_dir(None, allow_download=False)
    assert how.startswith("SYNTHETIC") and (path / "movies_with_mentions.csv").is_file()
    with pytest.raises(FileNotFoundError, match="--raw"):
        locate.resolve_raw_dir(None, allow_download=False, allow_synthetic=False)
