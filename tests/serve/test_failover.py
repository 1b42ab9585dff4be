"""A Recommender replica SIGKILLed under concurrent load: no request fails (slow; run it alone:
``pytest -m slow tests/serve/test_failover.py``; ``benchmarks/serve_failover.py`` is the real-data run)."""

import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


@pytest.mark.slow
def test_killing_a_recommender_replica_under_load_loses_no_request(ray_cluster, synth_prepared, synth_rec_ckpt,
                                                                   tiny_gen_ckpt):
    from ray import serve
    from serve_failover import failover_run
    from serve_load import request_bodies

    bodies = request_bodies(synth_prepared, 50)
    try:
        r = failover_run(synth_rec_ckpt, tiny_gen_ckpt, synth_prepared, bodies, clients=4, duration=20,
                         kill_at=6, port=free_port(), replica_num_cpus=0.25)  # 2-CPU test cluster
    finally:
        serve.shutdown()
    assert r["requests"] > 50 and r["errors"] == 0, r
    assert r["replicas_before"] == 2 and r["restarted"], r


@pytest.mark.slow
def test_killing_the_adaptation_store_under_load_loses_no_request_and_no_adaptation(
        ray_cluster, synth_prepared, synth_rec_ckpt, tiny_gen_ckpt, tmp_path):
    from ray import serve
    from serve_failover import failover_run
    from serve_load import request_bodies

    bodies = request_bodies(synth_prepared, 50)
    try:
        r = failover_run(synth_rec_ckpt, tiny_gen_ckpt, synth_prepared, bodies, clients=4, duration=20,
                         kill_at=6, port=free_port(), replica_num_cpus=0.25, victim="AdaptationStore",
                         adapted=5, adaptations=str(tmp_path / "adaptations"))
    finally:
        serve.shutdown()
    assert r["requests"] > 50 and r["errors"] == 0, r
    assert r["replicas_before"] == 1 and r["restarted"], r
    assert r["adapted_users"] == 5 and r["adaptations_in_store_after"] == 5, r  # the restarted store read the archive
    assert r["adapted_answers_unchanged"] == 5, r
