"""serve/config.yaml: valid for `serve run`/`serve deploy`, user_configs the deployments accept, batches can fill."""

from __future__ import annotations

import yaml

from tests.conftest import REPO


def _config() -> dict:
    return yaml.safe_load((REPO / "serve" / "config.yaml").read_text())


def test_the_serve_config_validates_against_rays_schema():
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(_config()) if hasattr(ServeDeploySchema, "model_validate") \
        else ServeDeploySchema.parse_obj(_config())
    (app,) = schema.applications
    assert app.import_path == "serve.app:build_app"
    assert {d.name for d in app.deployments} == {"Ingress", "Recommender", "Generator", "AdaptationStore"}


def test_user_configs_are_accepted_and_batches_can_fill():
    from serve.app import AppArgs
    from serve.deployments import GeneratorSettings, RecommenderSettings, _settings

    (app,) = _config()["applications"]
    AppArgs(**app["args"])  # unknown keys would raise
    deps = {d["name"]: d for d in app["deployments"]}
    for name, cls in (("Recommender", RecommenderSettings), ("Generator", GeneratorSettings)):
        settings = _settings(cls, deps[name]["user_config"], name)
        assert deps[name]["max_ongoing_requests"] >= settings.max_batch_size  # else batches never fill
        assert "autoscaling_config" in deps[name]
        assert deps[name]["autoscaling_config"]["min_replicas"] >= 2  # a replica's death is retried on another
    # adaptations are archived, so the store replica is not a single point of loss (test_failover.py)
    assert deps["AdaptationStore"]["user_config"]["archive"]


def test_relative_uris_resolve_under_the_storage_path(monkeypatch):
    from serve.deployments import storage_uri

    monkeypatch.setenv("CCRS_STORAGE_PATH", "s3://bucket/ccrs/")
    assert storage_uri("runs/rec-meta-fold0/eval/best.pt") == "s3://bucket/ccrs/runs/rec-meta-fold0/eval/best.pt"
    assert storage_uri("/abs/best.pt") == "/abs/best.pt" and storage_uri("s3://b/x.pt") == "s3://b/x.pt"
    monkeypatch.setenv("CCRS_STORAGE_PATH", "/data/demo")
    assert storage_uri("prepared") == "/data/demo/prepared"


def test_the_grafana_dashboard_plots_the_metrics_the_app_exports():
    import json
    import re
    from pathlib import Path

    import serve.metrics

    root = Path(serve.metrics.__file__).parent
    dash = json.loads((root / "grafana_dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    documented = set(re.findall(r"``(ccrs_[a-z_]+)``", serve.metrics.__doc__))
    assert documented and all(f"ray_{name}" in exprs for name in documented)
    assert "ray_serve_" in exprs


def test_a_call_whose_replica_died_is_retried_and_model_errors_are_not(monkeypatch):
    import asyncio

    import pytest
    import ray.exceptions

    import serve.app as app

    monkeypatch.setattr(app, "RETRY_BACKOFF_S", (0.0, 0.0, 0.0))
    calls = []

    async def dies_twice():
        calls.append(1)
        if len(calls) <= 2:
            raise ray.exceptions.ActorDiedError()
        return "ranked"

    assert asyncio.run(app.retry_on_replica_death(dies_twice)) == "ranked" and len(calls) == 3

    async def always_dead():
        raise ray.exceptions.ActorDiedError()

    with pytest.raises(ray.exceptions.ActorDiedError):  # bounded: 1 + 3 tries, then the error
        asyncio.run(app.retry_on_replica_death(always_dead))

    async def model_bug():
        calls.append(1)
        raise ValueError("a bug in the model code")

    calls.clear()
    with pytest.raises(ValueError):
        asyncio.run(app.retry_on_replica_death(model_bug))
    assert len(calls) == 1
