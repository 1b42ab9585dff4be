"""`ccrs data download` against a real HTTP server on 127.0.0.1 serving files this test creates."""

import hashlib
import http.server
import io
import json
import threading
import zipfile

import pytest

from ccrs.data.download import DownloadError, download_all, load_sources


class Server:
    """Serves ``files`` with HTTP Range support; ``cut_after`` truncates the next response once."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.cut_after: int | None = None
        self.range_headers: list[str | None] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = outer.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                outer.range_headers.append(rng)
                start = int(rng.split("=")[1].rstrip("-")) if rng else 0
                if start >= len(body):
                    self.send_error(416)
                    return
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if outer.cut_after is not None:
                    payload, outer.cut_after = payload[: outer.cut_after], None
                    self.wfile.write(payload)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


ARCHIVE = _zip({"train_data.jsonl": b'{"conversationId": "1"}\n' * 2000, "movies_with_mentions.csv": b"movieId,movieName\n"})
KG = json.dumps({str(i): [[0, i + 1]] for i in range(5000)}).encode()


def sources(url, kg_sha=None):
    return [
        {"name": "redial", "url": f"{url}/redial.zip", "sha256": sha(ARCHIVE), "file": "redial.zip", "extract": "zip"},
        {"name": "kg", "url": f"{url}/kg.json", "sha256": kg_sha, "file": "kg/subkg.json"},
    ]


def test_download_verify_extract_and_lock(tmp_path):
    with Server({"redial.zip": ARCHIVE, "kg.json": KG}) as srv:
        paths = download_all(sources(srv.url), tmp_path, progress=False)
    assert (tmp_path / "train_data.jsonl").read_bytes().startswith(b'{"conversationId"')
    assert (tmp_path / "kg" / "subkg.json").read_bytes() == KG
    assert tmp_path / "movies_with_mentions.csv" in paths
    lock = json.loads((tmp_path / "sources.lock.json").read_text())
    assert lock == {"redial": sha(ARCHIVE), "kg": sha(KG)}  # unpinned kg: trusted on first use, recorded


def test_checksum_mismatch_is_rejected_and_nothing_is_kept(tmp_path):
    with Server({"redial.zip": ARCHIVE, "kg.json": KG}) as srv:
        with pytest.raises(DownloadError, match="kg: sha256 .* does not match"):
            download_all(sources(srv.url, kg_sha="0" * 64), tmp_path, progress=False)
    assert not (tmp_path / "kg" / "subkg.json").exists() and not (tmp_path / "kg" / "subkg.json.part").exists()
    assert (tmp_path / "redial.zip").exists()  # the good source is kept


def test_interrupted_download_resumes_with_range(tmp_path):
    with Server({"redial.zip": ARCHIVE, "kg.json": KG}) as srv:
        srv.cut_after = 10_000
        with pytest.raises(DownloadError, match="rerun to resume"):
            download_all(sources(srv.url)[:1], tmp_path, progress=False)
        part = tmp_path / "redial.zip.part"
        assert part.stat().st_size == 10_000
        download_all(sources(srv.url)[:1], tmp_path, progress=False)
        assert srv.range_headers[-1] == "bytes=10000-"
    assert sha((tmp_path / "redial.zip").read_bytes()) == sha(ARCHIVE) and not part.exists()


def test_present_file_is_not_refetched_and_lock_protects_it(tmp_path):
    with Server({"redial.zip": ARCHIVE, "kg.json": KG}) as srv:
        download_all(sources(srv.url), tmp_path, progress=False)
        n = len(srv.range_headers)
        download_all(sources(srv.url), tmp_path, progress=False)
        assert len(srv.range_headers) == n  # nothing fetched again
        # a local file that no longer matches the lock is fetched again
        (tmp_path / "kg" / "subkg.json").write_bytes(b"tampered")
        download_all(sources(srv.url), tmp_path, progress=False)
    assert (tmp_path / "kg" / "subkg.json").read_bytes() == KG


def test_unreachable_and_unpinned_sources_fail_clearly(tmp_path):
    with pytest.raises(DownloadError, match="cannot reach"):
        download_all([{"name": "x", "url": "http://127.0.0.1:9/none", "file": "x"}], tmp_path, timeout=2, progress=False)
    with pytest.raises(DownloadError, match="no public URL is pinned"):
        download_all([{"name": "y", "url": None, "file": "y.json"}], tmp_path, progress=False)


def test_zip_slip_is_refused(tmp_path):
    evil = _zip({"../escape.txt": b"x"})
    with Server({"evil.zip": evil}) as srv:
        with pytest.raises(DownloadError, match="outside"):
            download_all([{"name": "e", "url": f"{srv.url}/evil.zip", "file": "evil.zip", "extract": "zip"}],
                         tmp_path / "d", progress=False)
    assert not (tmp_path / "escape.txt").exists()


def test_shipped_sources_file_is_valid(tmp_path):
    shipped = load_sources(None)
    assert any(s["name"] == "redial" and s["url"].startswith("https://") for s in shipped)
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps({"sources": [{"name": "a", "file": "/etc/passwd"}]}))
    with pytest.raises(DownloadError, match="relative path"):
        load_sources(bad)
