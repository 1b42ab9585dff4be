"""One real Serve application on 127.0.0.1 for the module's tests (tiny checkpoints, synthetic data)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import free_port, write_biased_generator

FAIL_USER = 999_999  # requests for this user id raise inside the Recommender (fault injection)


@pytest.fixture(scope="session")
def tiny_gen_ckpt(synth_rec_ckpt, tmp_path_factory) -> str:
    """A tiny generator biased to say "try __item__ ...", sized for ``synth_rec_ckpt``'s p_u (d=16)."""
    path = tmp_path_factory.mktemp("gen") / "gen.pt"
    write_biased_generator(path, user_dim=16)
    return str(path)


class Client:
    def __init__(self, base: str) -> None:
        self.base = base

    def request(self, method: str, path: str, body=None, raw: bytes | None = None, headers=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"content-type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, _decode(r.read()), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, _decode(e.read()), dict(e.headers)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def get(self, path):
        return self.request("GET", path)


def _decode(b: bytes):
    try:
        return json.loads(b)
    except ValueError:
        return b.decode(errors="replace")


@pytest.fixture(scope="session")
def serve_app(ray_cluster, synth_prepared, synth_rec_ckpt, tiny_gen_ckpt):
    """``Client`` for the ccrs app on a free 127.0.0.1 port; small limits so the bad-input cases are cheap."""
    from ray import serve

    from serve.app import build_app

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    args = {"rec_ckpt": synth_rec_ckpt, "gen_ckpt": tiny_gen_ckpt, "data": synth_prepared,
            "cache_size": 4, "max_batch_size": 8, "batch_wait_timeout_s": 0.05, "max_turns": 6,
            "max_turn_chars": 200, "max_k": 20, "max_conversations": 5, "max_body_bytes": 20_000,
            "fail_user_ids": [FAIL_USER]}
    serve.run(build_app(args), name="ccrs", route_prefix="/")
    client = Client(f"http://127.0.0.1:{port}")
    client.app_args, client.port = args, port  # for tests that redeploy the same app (test_rollout.py)
    deadline = time.time() + 60
    while client.get("/healthz")[0] != 200:
        assert time.time() < deadline, "Serve app did not become healthy"
        time.sleep(0.5)
    try:
        yield client
    finally:
        serve.shutdown()
