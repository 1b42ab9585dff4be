"""The service remembers users, over HTTP against a real Serve app: the horror-fan scenario of issue
30, what ``GET /v1/users/{id}`` shows, ``DELETE`` forgetting a user everywhere (archive included), bad
input, and a history that survives the store's and a Recommender replica's death.

The checkpoint is a history model whose weights are set by hand (``_horror_aware_checkpoint``): every
movie's embedding is its genre's direction and the history read (Eq. H3) passes the mean of the
history straight into p_u. What is tested is the serving path — histories kept per user, archived,
fed to the model on every request of that user, forgotten on request — not what training learns
(tests/models/test_history_reads.py and results/rec_history.md are about that)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from ccrs.checkpoint import save_checkpoint
from ccrs.config import load_config
from ccrs.data.dataset import PreparedDataset
from ccrs.data.rec_examples import KnowledgeGraph
from ccrs.models.factory import build_recommender
from ccrs.train.rec_trainer import checkpoint_payload
from tests.serve.conftest import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from serve_failover import replica_pids  # noqa: E402

FAN, STRANGER = 9001, 9002
OPEN_REQUEST = {"turns": [{"role": "seeker", "text": "Hi! I am looking for a movie to watch tonight"}], "k": 8}


def _genres(synth_prepared: str) -> tuple[KnowledgeGraph, dict[int, str], list[str]]:
    """KG, item index → genre name, entity names."""
    ds = PreparedDataset.open(synth_prepared)
    kg = KnowledgeGraph.from_dataset(ds)
    names = ds.table("entities").column("name").to_pylist()
    genre_rel = ds.table("relations").column("name").to_pylist().index("genre")
    e2i = kg.entity_to_item()
    genre_of = {}
    for (h, t), r in zip(kg.edge_index.T.tolist(), kg.edge_type.tolist(), strict=True):
        if r == genre_rel and e2i[h] >= 0 and e2i[t] < 0:
            genre_of[int(e2i[h])] = names[t]
    return kg, genre_of, names


def _horror_aware_checkpoint(synth_prepared: str, path: Path) -> str:
    kg, genre_of, names = _genres(synth_prepared)
    genres = sorted(set(genre_of.values()))
    cfg = load_config(None, ["recommender.entity_dim=16", "recommender.user_dim=16", "recommender.n_heads=2",
                             "recommender.history_intent=true", "rec_meta.inner_lr=0.0"])
    torch.manual_seed(0)
    model = build_recommender(cfg.recommender, kg, 0)
    with torch.no_grad():
        emb = torch.zeros(kg.num_entities, 16)
        for item, genre in genre_of.items():
            emb[kg.item_entity_ids[item], genres.index(genre)] = 1.0
        for g, genre in enumerate(genres):
            emb[names.index(genre), g] = 1.0
        model.entity_embedding.weight.copy_(emb)
        model.item_bias.copy_(0.01 * torch.randn(kg.num_items))  # a stranger's ranking: no genre favoured
        h = model.history_encoder
        for table in (h.flag_embedding, h.age_embedding, h.count_embedding):
            table.weight.zero_()
        h.query.weight.zero_()  # p_u = 0 (nothing named): every past entity weighs the same
        h.gate.weight.zero_()
        h.gate.bias.fill_(10.0)
        h.intent_out.weight.copy_(5.0 * torch.eye(16))
    save_checkpoint(str(path), checkpoint_payload(model, cfg, {}))
    return str(path)


def _conversation(movies: list[str]) -> list[dict]:
    return [{"role": "seeker", "text": f"I really loved {movies[0]}, it scared me"},
            {"role": "recommender", "text": f"Then try {movies[1]} and {movies[2]}"},
            {"role": "seeker", "text": f"I have seen {movies[3]} too, great"},
            {"role": "recommender", "text": f"What about {movies[4]}?"}]


@pytest.fixture(scope="module")
def history_app(serve_app, synth_prepared, tmp_path_factory):
    """A second app (``/hist``) beside the session's, serving the history checkpoint with an archive."""
    from ray import serve

    from serve.app import build_app

    root = tmp_path_factory.mktemp("history_app")
    ckpt = _horror_aware_checkpoint(synth_prepared, root / "rec.pt")
    archive = root / "archive"
    args = {"rec_ckpt": ckpt, "data": synth_prepared, "recommender_only": True, "adaptations": str(archive),
            "replica_num_cpus": 0.25, "history_max_conversations": 5}
    serve.run(build_app(args), name="hist", route_prefix="/hist")
    client = Client(f"http://127.0.0.1:{serve_app.port}/hist")
    deadline = time.time() + 60
    while client.get("/healthz")[0] != 200:
        assert time.time() < deadline, "history app did not become healthy"
        time.sleep(0.5)
    _, genre_of, names = _genres(synth_prepared)
    kg = KnowledgeGraph.from_dataset(PreparedDataset.open(synth_prepared))
    horror = [int(kg.item_entity_ids[i]) for i, g in sorted(genre_of.items()) if g.startswith("Horror")]
    client.horror_entities, client.horror_names = horror, [names[e] for e in horror]
    client.genre_of, client.archive = genre_of, archive
    try:
        yield client
    finally:
        serve.delete("hist")


def _horror_share(client, user_id: int | None) -> float:
    status, body, _ = client.post("/v1/recommend", {**OPEN_REQUEST, "user_id": user_id})
    assert status == 200, body
    return sum(client.genre_of[it["item_id"]].startswith("Horror") for it in body["items"]) / len(body["items"])


def test_a_returning_horror_fan_gets_horror_and_a_stranger_does_not(history_app):
    client = history_app
    before = _horror_share(client, FAN)
    movies = client.horror_names
    status, body, _ = client.post(f"/v1/users/{FAN}/adapt",
                               {"conversations": [_conversation(movies[0:5]), _conversation(movies[5:10])]})
    assert status == 200, body
    fan, stranger = _horror_share(client, FAN), _horror_share(client, STRANGER)
    assert fan >= 0.75, fan
    assert stranger <= 0.25 and before <= 0.25, (stranger, before)
    status, body, _ = client.post("/v1/recommend", {**OPEN_REQUEST, "user_id": FAN})
    assert body["history_entities"] > 0

    status, user, _ = client.get(f"/v1/users/{FAN}")
    assert status == 200 and user["history"]["conversations"] == 2
    remembered = {e["entity_id"] for e in user["history"]["entities"] if e["kind"] == "movie"}
    assert set(client.horror_entities[:10]) <= remembered
    assert user["adapted_versions"]


def test_history_route_remembers_without_adapting_and_the_bound_holds(history_app):
    client = history_app
    user = 9010
    for i in range(7):  # more than history_max_conversations = 5
        status, body, _ = client.post(f"/v1/users/{user}/history",
                                   {"conversations": [_conversation(client.horror_names[i:i + 5])]})
        assert status == 200, body
    assert body["history"]["conversations"] == 5 and body["adapted_versions"] == []
    assert _horror_share(client, user) >= 0.75


def test_unknown_users_and_bad_input_get_clear_errors(history_app):
    client = history_app
    status, body, _ = client.get("/v1/users/123456")
    assert status == 404 and "holds nothing" in body["error"]
    status, body, _ = client.request("DELETE", "/v1/users/123456")
    assert status == 404
    status, body, _ = client.get("/v1/users/-3")
    assert status == 422 and "user_id" in body["fields"][0]
    status, body, _ = client.post("/v1/users/5/history", {"conversations": []})
    assert status == 422 and "conversations" in body["fields"][0]


def test_a_history_survives_the_death_of_the_store_and_of_a_recommender_replica(history_app):
    client = history_app
    user = 9020
    status, *_ = client.post(f"/v1/users/{user}/history", {"conversations": [_conversation(client.horror_names[3:8])]})
    assert status == 200
    for deployment in ("AdaptationStore", "Recommender"):
        pids = [p for p in replica_pids(f"hist:{deployment}")]
        assert pids, deployment
        os.kill(pids[0], signal.SIGKILL)
        deadline = time.time() + 120
        while time.time() < deadline:
            alive = replica_pids(f"hist:{deployment}")
            if alive and pids[0] not in alive and _answers(client, f"/v1/users/{user}"):
                break
            time.sleep(0.5)
        status, body, _ = client.get(f"/v1/users/{user}")
        assert status == 200 and body["history"]["conversations"] == 1, (deployment, body)
        assert _horror_share(client, user) >= 0.75


def _answers(client, path: str) -> bool:
    """Whether ``path`` answers 200 now (a replica restarting may hold the request past the timeout)."""
    try:
        return client.get(path)[0] == 200
    except OSError:  # urllib's timeout / connection reset while the replica restarts
        return False


def test_forgetting_a_user_removes_everything_the_service_held(history_app):
    client = history_app
    status, body, _ = client.post(f"/v1/users/{FAN}/history", {"conversations": [_conversation(client.horror_names[:5])]})
    assert status == 200
    assert any(p.stem == str(FAN) for p in client.archive.rglob("*.npz"))
    status, body, _ = client.request("DELETE", f"/v1/users/{FAN}")
    assert status == 200 and body["forgotten"] >= 2  # the history and the adaptation
    assert client.get(f"/v1/users/{FAN}")[0] == 404
    assert not any(p.stem == str(FAN) for p in client.archive.rglob("*"))
    stranger = client.post("/v1/recommend", {**OPEN_REQUEST, "user_id": STRANGER})[1]["items"]
    forgotten = client.post("/v1/recommend", {**OPEN_REQUEST, "user_id": FAN})[1]["items"]
    assert [i["item_id"] for i in forgotten] == [i["item_id"] for i in stranger]
