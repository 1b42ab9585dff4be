"""Shared fixtures: a synthetic raw directory, the real shared data (when present), a real S3 server."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import pytest

from ccrs.data.synth import SynthSpec, write_synthetic_raw

REPO = Path(__file__).resolve().parents[1]
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto_server logs every request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def synth_raw(tmp_path_factory) -> Path:
    """A small synthetic raw directory (both KG formats); treat as read-only."""
    return write_synthetic_raw(tmp_path_factory.mktemp("synth") / "raw", SynthSpec(seed=7, n_users=30))


@pytest.fixture(scope="session")
def shared_raw() -> Path:
    """The real ReDial + DBpedia data in ../shared/data/redial (or $CCRS_RAW_DIR)."""
    candidates = [os.environ.get("CCRS_RAW_DIR"), REPO.parent / "shared" / "data" / "redial"]
    for c in candidates:
        if c and (Path(c) / "movies_with_mentions.csv").is_file():
            return Path(c)
    pytest.skip("real ReDial data not found (../shared/data/redial or $CCRS_RAW_DIR)")


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible HTTP endpoint (moto_server) on a free 127.0.0.1 port.

    Sets the AWS_* environment variables every S3 client (pyarrow, boto3, Ray workers) reads.
    """
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield endpoint
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def synth_prepared(synth_raw, tmp_path_factory) -> str:
    """``synth_raw`` prepared once per session (a local URI); treat as read-only."""
    from ccrs.data.prepare import prepare

    out = tmp_path_factory.mktemp("prepared") / "ds"
    prepare(synth_raw, str(out), progress=False)
    return str(out)


@pytest.fixture(scope="session")
def ray_cluster(s3_server):
    """One local Ray cluster per session (2 CPUs), started after the S3 server so workers see its env."""
    import ray

    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "60")
    # Serve's proxy must import FastAPI & co. within 5 s by default: not on 2 busy cores
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "30")
    ray.metrics_export_port = free_port()  # Prometheus scrape target of this node (serve metrics tests)
    ray.init(address="local", num_cpus=2, include_dashboard=True, log_to_driver=False,
             _metrics_export_port=ray.metrics_export_port)
    try:
        yield ray
    finally:
        ray.shutdown()


#: A generator small enough for CPU tests (the real defaults are word_dim 300, FFN 300).
TINY_GEN = ["generator.word_dim=32", "generator.ffn_dim=32", "generator.bias_hidden=32", "generator.min_word_count=1"]


def write_biased_generator(path: Path, user_dim: int, biases: dict[str, float] | None = None):
    """A tiny generator checkpoint at ``path`` whose output bias makes it say "try __item__ ..."
    (``no_repeat_ngram=1``: no word twice); returns its tokenizer."""
    import torch

    from ccrs.checkpoint import save_checkpoint
    from ccrs.config import load_config
    from ccrs.data.tokenizer import WordTokenizer
    from ccrs.models.generator import build_generator, generator_payload

    cfg = load_config(None, [*TINY_GEN, "generator.max_response_tokens=6", "generator.no_repeat_ngram=1"])
    tok = WordTokenizer.build(["try __item__ it is great", "hello there"], 1, "__item__")
    torch.manual_seed(0)
    model = build_generator(cfg.generator, tok, user_dim=user_dim)
    with torch.no_grad():
        model.output_bias.fill_(-50.0)
        for word, value in (biases or {"try": 50.0, "__item__": 40.0}).items():
            model.output_bias[tok.index[word]] = value
    save_checkpoint(str(path), generator_payload(model, cfg, tok, user_dim))
    return tok


@pytest.fixture(scope="session")
def synth_rec_ckpt(synth_prepared, tmp_path_factory) -> str:
    """A small ccrs recommender trained one epoch on ``synth_prepared`` (fold 0): its ``best.pt``."""
    from ccrs.config import load_config
    from ccrs.train.rec_trainer import train_recommender

    out = tmp_path_factory.mktemp("rec") / "ccrs"
    cfg = load_config(None, ["rec_train.max_epochs=1", "recommender.entity_dim=16", "recommender.user_dim=16",
                             "recommender.n_heads=2"])
    train_recommender(cfg, synth_prepared, "user", 0, str(out), progress=False)
    return str(out / "best.pt")
