"""The Serve app over real HTTP on 127.0.0.1: endpoints, composition, batching, adaptation, bad input."""

from __future__ import annotations

import concurrent.futures as cf
import json
import re

import pytest

from ccrs.data.dataset import PreparedDataset
from tests.serve.conftest import FAIL_USER


@pytest.fixture(scope="module")
def movies(synth_prepared):
    ents = PreparedDataset.open(synth_prepared).table("entities").to_pylist()
    return [e["name"] for e in ents if e["is_item"]][:3]


@pytest.fixture(scope="module")
def known_users(synth_rec_ckpt):
    from ccrs.checkpoint import load_checkpoint

    return list(load_checkpoint(synth_rec_ckpt)["user_ids"])


def _turns(movies):
    return [{"role": "seeker", "text": f"I loved {movies[0]}, anything similar?"}]


def test_health_info_and_openapi(serve_app, movies):
    assert serve_app.get("/healthz")[:2] == (200, {"status": "ok"})
    before = serve_app.get("/v1/stats")[1]
    assert serve_app.post("/v1/noop", {"turns": _turns(movies)})[:2] == (200, {"turns": 1})  # the floor route
    assert serve_app.get("/v1/stats")[1] == before  # ... touches no model
    assert serve_app.post("/v1/noop", {"turns": []})[0] == 422  # validated like /v1/recommend
    status, info, _ = serve_app.get("/v1/info")
    assert status == 200 and info["items"] > 0
    assert len(info["checkpoint_versions"]["recommender"]) == 12 and len(info["checkpoint_versions"]["generator"]) == 12
    status, schema, _ = serve_app.get("/openapi.json")
    assert status == 200
    assert {"/v1/recommend", "/v1/respond", "/v1/users/{user_id}/adapt", "/healthz", "/v1/info"} <= set(schema["paths"])


def test_recommend_returns_named_ranked_items_and_linked_entities(serve_app, movies, known_users):
    status, out, headers = serve_app.post("/v1/recommend", {"turns": _turns(movies), "k": 5})
    assert status == 200, out
    assert len(out["items"]) == 5 and all(it["name"] for it in out["items"])
    scores = [it["score"] for it in out["items"]]
    assert scores == sorted(scores, reverse=True)
    assert movies[0] in [e["name"] for e in out["entities"]] or out["entities"]
    assert {e["kind"] for e in out["entities"]} == {"name"}  # movie titles are named, not genre words
    assert not out["user_known"] and out["attention"] is None
    version = serve_app.get("/v1/info")[1]["checkpoint_versions"]["recommender"]
    assert out["checkpoint_versions"] == {"recommender": version}  # every answer says which model answered
    status, out, _ = serve_app.post("/v1/recommend", {"user_id": known_users[0], "turns": _turns(movies),
                                                      "attention": True})
    assert status == 200 and out["user_known"] and len(out["items"]) == 10  # default k
    assert out["attention"] and all(isinstance(v, float) for v in out["attention"].values())


def test_respond_composes_both_deployments(serve_app, movies):
    before = serve_app.get("/v1/stats")[1]
    status, out, _ = serve_app.post("/v1/respond", {"turns": _turns(movies), "k": 3})
    assert status == 200, out
    assert out["response"].startswith("Try ") and out["slot_items"], out
    slot = out["slot_items"][0]
    assert slot["name"] in out["response"] and slot["name"] != movies[0]  # a mentioned movie is never proposed
    assert len(out["items"]) == 3
    assert out["style_mixture"] and sum(out["style_mixture"]) == pytest.approx(1, abs=1e-3)
    after = serve_app.get("/v1/stats")[1]
    for dep in ("recommender", "generator"):  # the ingress called both deployments
        assert sum(after[dep]["batch_sizes"].values()) > sum(before[dep]["batch_sizes"].values())


def test_concurrent_requests_form_batches(serve_app, movies, known_users):
    bodies = [{"user_id": known_users[i % len(known_users)], "turns": _turns(movies), "k": 3} for i in range(24)]
    with cf.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda b: serve_app.post("/v1/respond", b)[0], bodies))
    assert results == [200] * 24
    stats = serve_app.get("/v1/stats")[1]
    for dep in ("recommender", "generator"):
        sizes = {int(k) for k in stats[dep]["batch_sizes"]}
        assert max(sizes) > 1, stats  # @serve.batch grouped concurrent requests


def test_adaptation_changes_that_user_only(serve_app, movies, known_users):
    a, b, c = movies
    u, other = known_users[1], known_users[2]
    body = lambda user: {"user_id": user, "turns": _turns(movies), "k": 10}  # noqa: E731
    before = {x: serve_app.post("/v1/recommend", body(x))[1]["items"] for x in (u, other)}
    past = [[{"role": "seeker", "text": f"I enjoyed {a}"}, {"role": "recommender", "text": f"then watch {b}"},
             {"role": "recommender", "text": f"or {c}"}]] * 3
    status, out, _ = serve_app.post(f"/v1/users/{u}/adapt", {"conversations": past})
    assert status == 200, out
    assert out["user_id"] == u and out["support_samples"] == 6 and out["cache_size"] >= 1
    calls = serve_app.get("/v1/stats")[1]["recommender"]["store_calls"]
    after = {x: serve_app.post("/v1/recommend", body(x))[1]["items"] for x in (u, other)}
    assert [it["score"] for it in after[u]] != [it["score"] for it in before[u]]
    # the adapted user was fetched from the store, the other one never asked it (replica's index)
    assert serve_app.get("/v1/stats")[1]["recommender"]["store_calls"] == calls + 1
    again = serve_app.post("/v1/recommend", body(u))[1]["items"]  # kept by the replica: no new call
    assert again == after[u] and serve_app.get("/v1/stats")[1]["recommender"]["store_calls"] == calls + 1
    assert serve_app.post(f"/v1/users/{u}/adapt", {"conversations": past[:2]})[0] == 200  # a newer put
    serve_app.post("/v1/recommend", body(u))
    assert serve_app.get("/v1/stats")[1]["recommender"]["store_calls"] == calls + 2  # fetched again
    assert [it["item_id"] for it in after[other]] == [it["item_id"] for it in before[other]]
    assert [it["score"] for it in after[other]] == pytest.approx([it["score"] for it in before[other]], abs=1e-4)


def test_a_deployment_exception_is_a_5xx_with_a_request_id_and_the_replica_keeps_serving(serve_app, movies):
    status, out, headers = serve_app.post("/v1/recommend", {"user_id": FAIL_USER, "turns": _turns(movies)})
    assert status == 500 and set(out) == {"error", "request_id"} and out["error"] == "internal error"
    assert out["request_id"]
    assert_clean(out)
    assert headers.get("x-request-id", out["request_id"]) == out["request_id"]
    assert serve_app.post("/v1/recommend", {"turns": _turns(movies)})[0] == 200


LEAKS = re.compile(r"Traceback|File \"|(?:/[\w.-]+){2,}|\bpid[=: ]|actor|ray::|RayTaskError|\.py\b", re.I)


def assert_clean(body) -> None:
    """No traceback, file path, pid or actor id in an error body a client sees."""
    text = json.dumps(body)
    assert not LEAKS.search(text), f"error body leaks internals: {text[:500]}"


OK_TURN = {"role": "seeker", "text": "hello"}
BAD = [  # (id, path, body or raw bytes, status, text the error must contain)
    ("malformed-json", "/v1/recommend", b'{"turns": [', 400, "body"),
    ("not-an-object", "/v1/recommend", [1, 2], 422, "body"),
    ("empty-body", "/v1/recommend", b"", 422, "body"),
    ("missing-turns", "/v1/recommend", {"k": 3}, 422, "turns"),
    ("empty-turns", "/v1/recommend", {"turns": []}, 422, "turns"),
    ("too-many-turns", "/v1/recommend", {"turns": [OK_TURN] * 7}, 422, "turns"),
    ("blank-text", "/v1/recommend", {"turns": [{"role": "seeker", "text": "   "}]}, 422, "turns.0.text"),
    ("long-text", "/v1/recommend", {"turns": [{"role": "seeker", "text": "x" * 201}]}, 422, "turns.0.text"),
    ("text-not-string", "/v1/recommend", {"turns": [{"role": "seeker", "text": 5}]}, 422, "turns.0.text"),
    ("bad-role", "/v1/recommend", {"turns": [{"role": "bot", "text": "hi"}]}, 422, "turns.0.role"),
    ("turn-not-object", "/v1/recommend", {"turns": ["hi"]}, 422, "turns.0"),
    ("k-zero", "/v1/recommend", {"turns": [OK_TURN], "k": 0}, 422, "k"),
    ("k-too-big", "/v1/recommend", {"turns": [OK_TURN], "k": 21}, 422, "k"),
    ("k-string", "/v1/recommend", {"turns": [OK_TURN], "k": "5"}, 422, "k"),
    ("user-negative", "/v1/respond", {"turns": [OK_TURN], "user_id": -1}, 422, "user_id"),
    ("user-string", "/v1/respond", {"turns": [OK_TURN], "user_id": "7"}, 422, "user_id"),
    ("unknown-field", "/v1/respond", {"turns": [OK_TURN], "temperature": 2}, 422, "temperature"),
    ("oversized-body", "/v1/respond", b'{"turns": [], "pad": "' + b"x" * 30_000 + b'"}', 413, "body"),
    ("user-beyond-64-bits", "/v1/respond", {"turns": [OK_TURN], "user_id": 10**30}, 422, "user_id"),
    ("adapt-user-beyond-64-bits", f"/v1/users/{2**63}/adapt", {"conversations": [[OK_TURN]]}, 422, "user_id"),
    ("adapt-user-not-int", "/v1/users/abc/adapt", {"conversations": [[OK_TURN]]}, 422, "user_id"),
    ("adapt-no-conversations", "/v1/users/3/adapt", {"conversations": []}, 422, "conversations"),
    ("adapt-too-many", "/v1/users/3/adapt", {"conversations": [[OK_TURN]] * 6}, 422, "conversations"),
    ("adapt-no-samples", "/v1/users/3/adapt", {"conversations": [[OK_TURN, {"role": "recommender", "text": "hi"}]]},
     422, "conversations"),
]


@pytest.mark.parametrize("path,body,status,needle", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_gets_a_4xx_naming_the_field(serve_app, path, body, status, needle):
    got, out, _ = serve_app.post(path, raw=body) if isinstance(body, bytes) else serve_app.post(path, body)
    assert got == status, out
    text = " ".join([out.get("error", "")] + out.get("fields", []))
    assert needle in text, out
    assert out["request_id"]
    assert_clean(out)


def test_wrong_method_is_405(serve_app):
    status, out, _ = serve_app.get("/v1/recommend")
    assert status == 405
    assert_clean(out)


def test_a_missing_or_corrupt_checkpoint_is_refused_before_deploying(synth_prepared, synth_rec_ckpt, tiny_gen_ckpt,
                                                                     tmp_path):
    from ccrs.checkpoint import CheckpointError
    from serve.app import build_app

    missing = str(tmp_path / "nowhere" / "best.pt")
    with pytest.raises(CheckpointError, match="no checkpoint there"):
        build_app({"rec_ckpt": missing, "gen_ckpt": tiny_gen_ckpt, "data": synth_prepared})
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.pt"):
        build_app({"rec_ckpt": synth_rec_ckpt, "gen_ckpt": str(corrupt), "data": synth_prepared})
    with pytest.raises(CheckpointError, match="expected a ccrs.recommender/1"):  # swapped URIs
        build_app({"rec_ckpt": tiny_gen_ckpt, "gen_ckpt": tiny_gen_ckpt, "data": synth_prepared})


@pytest.mark.slow  # Serve retries a failing replica start with back-off: about 2.5 minutes here
def test_a_missing_checkpoint_in_user_config_fails_the_deployment_start(serve_app, synth_prepared, tiny_gen_ckpt,
                                                                      tmp_path):
    from ray import serve

    from ccrs.serving.schemas import ServeLimits
    from serve.app import ingress
    from serve.deployments import AdaptationStore, Generator, Recommender
    from serve.local import deployment_errors

    missing = str(tmp_path / "nowhere" / "best.pt")  # arrives by user_config only, as `serve deploy` gives it
    free = {"ray_actor_options": {"num_cpus": 0}}  # the running app holds most of the 2 test CPUs
    rec = Recommender.options(user_config={"rec_ckpt": missing, "data": synth_prepared}, **free).bind(
        AdaptationStore.bind())
    gen = Generator.options(user_config={"gen_ckpt": tiny_gen_ckpt}, **free).bind()
    try:
        with pytest.raises(RuntimeError, match="Recommender"):
            serve.run(ingress(ServeLimits()).options(**free).bind(rec, gen), name="broken", route_prefix="/broken")
        (why,) = [e for e in deployment_errors("broken") if e.startswith("Recommender:")]
        assert "no checkpoint there" in why and missing in why, why
    finally:
        serve.delete("broken")
    assert serve_app.get("/healthz")[0] == 200  # the running app is untouched


def test_prometheus_metrics_count_requests_batches_and_adaptations(serve_app, ray_cluster, movies, known_users):
    """The app's metrics reach Ray's Prometheus export (the scrape target serve/metrics.py documents)."""
    import time
    import urllib.request

    for _ in range(3):
        assert serve_app.post("/v1/recommend", {"user_id": known_users[0], "turns": _turns(movies)})[0] == 200
    serve_app.post("/v1/recommend", {"turns": []})  # a 422
    url = f"http://127.0.0.1:{ray_cluster.metrics_export_port}/metrics"
    wanted = ('ccrs_http_requests_total{', 'route="/v1/recommend"', 'status="422"', "ccrs_batch_size_bucket",
              "ccrs_http_request_latency_ms_bucket", 'ccrs_adaptation_lookups_total{')
    deadline, text = time.time() + 90, ""
    while time.time() < deadline:  # replicas report every few seconds
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        if all(w in text for w in wanted):
            break
        time.sleep(3)
    missing = [w for w in wanted if w not in text]
    assert not missing, f"not exported yet: {missing}"
    assert "ray_serve_" in text  # Serve's own metrics beside ours
