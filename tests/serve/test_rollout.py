"""A recommender checkpoint rolled out by user_config (``serve deploy``) under load: no request fails and
every answer names the checkpoint that ranked it. Runs on the session's app (same port and arguments)
and rolls it back afterwards; ``benchmarks/serve_rollout.py`` is the real-data run."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def test_a_rollout_under_load_fails_no_request_and_answers_name_their_checkpoint(
        serve_app, ray_cluster, synth_prepared, synth_rec_ckpt, tiny_gen_ckpt, tmp_path):
    import ray
    from serve_load import request_bodies
    from serve_rollout import app_config, rollout_run, serve_deploy

    from ccrs.config import load_config
    from ccrs.train.rec_trainer import train_recommender

    cfg = load_config(None, ["seed=1", "rec_train.max_epochs=1", "recommender.entity_dim=16",
                             "recommender.user_dim=16", "recommender.n_heads=2"])
    train_recommender(cfg, synth_prepared, "user", 0, str(tmp_path / "new"), progress=False)
    dashboard = "http://" + ray._private.worker.get_dashboard_url()
    args = {k: v for k, v in serve_app.app_args.items() if k != "rec_ckpt"}
    try:
        r = rollout_run(synth_rec_ckpt, str(tmp_path / "new" / "best.pt"), tiny_gen_ckpt, synth_prepared,
                        request_bodies(synth_prepared, 50), clients=3, duration=10, roll_at=3, port=serve_app.port,
                        dashboard=dashboard, app_args=args)
    finally:
        serve_deploy(app_config(serve_app.port, args, synth_rec_ckpt), dashboard)  # the session's model again
    assert r["errors"] == 0 and r["requests"] > 20, r
    assert len(r["versions_seen"]) == 2, r
    new = next(v for v in r["versions_seen"] if v != r["first_version"])
    assert r["last_versions"] == [new], r  # after the rollout only the new checkpoint answers
    assert serve_app.get("/v1/info")[1]["checkpoint_versions"]["recommender"] == r["first_version"]  # rolled back
