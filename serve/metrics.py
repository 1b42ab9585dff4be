"""The app's Prometheus metrics, exported through Ray's metrics agent (``ray.serve.metrics``).

Scrape target: every Ray node's metrics export port (``ray start --metrics-export-port=8080``, or
``ray.init(_metrics_export_port=...)``), path ``/metrics``; the names below appear there prefixed
``ray_`` (counters also suffixed ``_total``), each tagged with Serve's deployment / replica / app
besides the tags listed. ``serve/grafana_dashboard.json`` plots them beside Serve's own
``ray_serve_*`` metrics.

| metric | type | tags | what |
|---|---|---|---|
| ``ccrs_http_requests`` | counter | route, status | every HTTP request the ingress answered |
| ``ccrs_http_request_latency_ms`` | histogram | route | ingress time per request |
| ``ccrs_batch_size`` | histogram | model | batch sizes ``@serve.batch`` formed (recommender, generator) |
| ``ccrs_adaptations`` | counter | outcome | ``POST /v1/users/{id}/adapt``: ok / no_samples / error |
| ``ccrs_adaptation_lookups`` | counter | result | users of a batch: hit / miss (asked the store), not_adapted (the replica's index of adapted users says no: no store call), store_unavailable (the store did not answer: served with the adaptations the replica holds) |

Created lazily, once per replica process (Ray metrics must be made where they are recorded).
"""

from __future__ import annotations

from functools import cache

LATENCY_BOUNDARIES_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]
BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64]


@cache
def metrics():
    from types import SimpleNamespace

    from ray.serve.metrics import Counter, Histogram

    return SimpleNamespace(
        requests=Counter("ccrs_http_requests", description="HTTP requests answered by the ccrs ingress",
                         tag_keys=("route", "status")),
        latency=Histogram("ccrs_http_request_latency_ms", description="ingress latency per request (ms)",
                          boundaries=LATENCY_BOUNDARIES_MS, tag_keys=("route",)),
        batch_size=Histogram("ccrs_batch_size", description="batch sizes formed by @serve.batch",
                             boundaries=BATCH_BOUNDARIES, tag_keys=("model",)),
        adaptations=Counter("ccrs_adaptations", description="per-user adaptation requests by outcome",
                            tag_keys=("outcome",)),
        lookups=Counter("ccrs_adaptation_lookups", description="adaptation-store lookups of a batch's users",
                        tag_keys=("result",)),
    )
