"""A recommender checkpoint rolled out by user_config (``serve deploy``) under load: no request fails and every answer
names the checkpoint that ranked it (slow; run it alone: ``pytest -m slow tests/serve/test_rollout.py``;
``benchmarks/serve_rollout.py`` is the real-data run)."""

import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


@pytest.mark.slow
def test_a_rollout_under_load_fails_no_request_and_answers_name_their_checkpoint(
        ray_cluster, synth_prepared, synth_rec_ckpt, tiny_gen_ckpt, tmp_path):
    import ray
    from ray import serve
    from serve_load import request_bodies
    from serve_rollout import rollout_run

    from ccrs.config import load_config
    from ccrs.train.rec_trainer import train_recommender

    cfg = load_config(None, ["seed=1", "rec_train.max_epochs=1", "recommender.entity_dim=16",
                             "recommender.user_dim=16", "recommender.n_heads=2"])
    train_recommender(cfg, synth_prepared, "user", 0, str(tmp_path / "new"), progress=False)
    try:
        r = rollout_run(synth_rec_ckpt, str(tmp_path / "new" / "best.pt"), tiny_gen_ckpt, synth_prepared,
                        request_bodies(synth_prepared, 50), clients=3, duration=20, roll_at=6, port=free_port(),
                        dashboard="http://" + ray._private.worker.get_dashboard_url(), replica_num_cpus=0.25)
    finally:
        serve.shutdown()
    assert r["errors"] == 0 and r["requests"] > 30, r
    assert len(r["versions_seen"]) == 2, r
    new = next(v for v in r["versions_seen"] if v != r["first_version"])
    assert r["last_versions"] == [new], r  # after the rollout only the new checkpoint answers
