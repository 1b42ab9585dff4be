"""Interactive evaluation against the real Serve app (tiny checkpoints, synthetic data) over HTTP."""

import json
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from ccrs.data.dataset import PreparedDataset
from ccrs.eval.interactive import (
    InteractiveConfig,
    build_sessions,
    chance_success,
    run_interactive,
    simulator_for,
    summarize,
)

ROUNDS, K = 3, 5


@pytest.fixture(scope="module")
def rec_only_app(serve_app, synth_prepared, synth_rec_ckpt):
    """A second app on the same Serve instance: recommender only (no Generator), under /rec_only."""
    from ray import serve

    from serve.app import build_app

    serve.run(build_app({"rec_ckpt": synth_rec_ckpt, "data": synth_prepared, "recommender_only": True,
                         "max_turns": 6, "max_turn_chars": 200, "max_k": 20, "max_conversations": 5}),
              name="rec_only", route_prefix="/rec_only")
    base = serve_app.base + "/rec_only"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=5):
                break
        except OSError:
            assert time.time() < deadline, "recommender-only app did not become healthy"
            time.sleep(0.5)
    try:
        yield base
    finally:
        serve.delete("rec_only")


def _run(endpoint, synth_prepared, adapt=False, **kw):
    ds = PreparedDataset.open(synth_prepared)
    sim = simulator_for(ds)
    sessions, support, _ = build_sessions(ds, 0, sim)
    # The test app's limits: 6 turns of 200 characters, 5 conversations per adaptation.
    cfg = InteractiveConfig(endpoint, rounds=ROUNDS, k=K, adapt=adapt, concurrency=4, max_turns=6,
                            max_conversations=5, timeout_s=30, **kw)
    return ds, sessions, run_interactive(cfg, sessions, support, sim, progress=False)


def test_sessions_over_http_beat_chance_and_success_is_the_first_hit(rec_only_app, synth_prepared):
    req = urllib.request.Request(rec_only_app + "/v1/respond", method="POST", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"turns": [{"role": "seeker", "text": "hi"}]}).encode())
    with pytest.raises(urllib.error.HTTPError) as err:  # no Generator in this app
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 503 and "no generator" in json.loads(err.value.read())["error"]
    ds, sessions, run = _run(rec_only_app, synth_prepared)
    assert run.http_errors == 0 and len(run.records) == len(sessions) > 0
    s = summarize(run.records, ROUNDS)
    n_items = int(np.sum(ds.table("entities").column("is_item").to_numpy(zero_copy_only=False)))
    targets = {x.conversation_id: x.targets for x in sessions}
    chance = np.mean([chance_success(n_items, len(targets[r["conversation_id"]]), K, ROUNDS) for r in run.records])
    assert s["success_at"][-1] > 2 * chance, (s["success_at"], chance)  # the model has seen the targets' neighbours
    assert all(a <= b for a, b in zip(s["success_at"], s["success_at"][1:], strict=False))
    for r in run.records:  # success: exactly the first round whose top-k holds a target
        hits = [i + 1 for i, rd in enumerate(r["rounds"]) if set(rd["ranked"]) & set(r["targets"])]
        assert r["success_round"] == (hits[0] if hits else None)
        assert len(r["rounds"]) == (r["success_round"] or ROUNDS)
        for later, earlier in zip(r["rounds"][1:], r["rounds"], strict=False):  # turned-down proposals are gone
            assert later["rejected"] >= 1 and not set(later["ranked"]) & set(earlier["ranked"])


def test_cli_with_adaptation_saves_records_and_failed_calls_are_counted_not_retried(serve_app, synth_prepared, tmp_path):
    from ccrs.cli import main
    from ccrs.experiments.interactive_table import read_records

    save = tmp_path / "interactive"
    rc = main(["eval", "interactive", "--endpoint", serve_app.base, "--prepared", synth_prepared, "--fold", "0",
               "--rounds", str(ROUNDS), "--k", str(K), "--adapt", "--max-turns", "6", "--max-conversations", "5",
               "--save", str(save), "-q"])
    report = json.loads(save.with_suffix(".json").read_text())
    records = read_records(tmp_path / "interactive_sessions.jsonl.gz")
    assert rc == 0 and report["http_errors"] == 0 and report["adapt_ms_mean"] > 0
    assert len(records) == report["summary"]["sessions"] > 0 and all(r["adapted"] for r in records)
    assert "success@3" in save.with_suffix(".md").read_text()
    assert not any("text" in json.dumps(r) for r in records)  # ids and timings only, no dialogue text
    dead = "http://127.0.0.1:9/"  # nothing listens on the discard port
    _, sessions, run = _run(dead, synth_prepared)
    users = {s.user_id for s in sessions}  # each user's DELETE (a run starts from unknown users), then each session
    assert run.http_errors == run.http_calls == len(users) + len(sessions)  # one failed call each, no retry
    assert all(r["error"] and not r["rounds"] for r in run.records)
    assert summarize(run.records, ROUNDS)["errors"] == len(sessions)


def test_returning_users_are_forgotten_first_then_remembered(rec_only_app, synth_prepared):
    """--history: every user is forgotten, then their support conversations are remembered (no adaptation);
    a plain run afterwards starts again from users the service does not know."""
    _, sessions, run = _run(rec_only_app, synth_prepared, history=True)
    assert run.http_errors == 0 and not run.adapt_ms
    assert all(r["remembered"] and not r["adapted"] for r in run.records)
    users = sorted({s.user_id for s in sessions})
    with urllib.request.urlopen(f"{rec_only_app}/v1/users/{users[0]}", timeout=30) as resp:
        held = json.loads(resp.read())
    assert held["history"]["conversations"] >= 1 and held["adapted_versions"] == []
    _, _, plain = _run(rec_only_app, synth_prepared)
    assert plain.http_errors == 0 and not any(r["remembered"] for r in plain.records)
    with pytest.raises(urllib.error.HTTPError) as err:  # the plain run forgot them
        urllib.request.urlopen(f"{rec_only_app}/v1/users/{users[0]}", timeout=30)
    assert err.value.code == 404
