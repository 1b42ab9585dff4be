"""Where the time of one request goes in the Serve app: each hop timed alone, one client, in one run.

    .venv/bin/python benchmarks/serve_hops.py --data runs/demo/prepared \\
        --rec-ckpt runs/demo/runs/rec-meta-fold0/eval/best.pt \\
        --gen-ckpt runs/demo/runs/dial-meta-fold0/eval/best.pt

Median ms of ``--calls`` sequential calls (the first 10 dropped) of: the bare ``RecommenderService``
(no Ray); a deployment handle call to a model-less method (``Recommender.stats``: the hop alone);
``Recommender.recommend`` through a handle for an anonymous user, a known user who never adapted
(no store call: the replica's index) and an adapted user (fetched once, then kept by the replica); a store
call alone; and over HTTP ``/v1/noop`` (the floor) and ``/v1/recommend``. Writes
results/serve_hops.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import add_app_arguments, app_uris, request_bodies  # noqa: E402

from ccrs.experiments.report_files import command_line, save_report  # noqa: E402


def median_ms(fn, calls: int) -> float:
    times = []
    for i in range(calls):
        t0 = time.perf_counter()
        fn(i)
        times.append(1000 * (time.perf_counter() - t0))
    return round(statistics.median(times[10:]), 2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_app_arguments(p)
    p.add_argument("--calls", type=int, default=80)
    p.add_argument("--port", type=int, default=8767)
    p.add_argument("--save", default="results/serve_hops")
    args = p.parse_args(argv)

    import ray
    import torch
    from ray import serve

    from ccrs.serving.recommender_service import Query, RecommenderService
    from serve.app import build_app

    torch.set_num_threads(1)
    bodies = request_bodies(args.data, 100)
    queries = [Query(b["user_id"], [(t["role"], t["text"]) for t in b["turns"]], 10) for b in bodies]
    svc = RecommenderService.load(args.rec_ckpt, args.data)
    known = [q for q in queries if q.user_id in svc.user_index] or queries
    adapted_user = known[0].user_id
    others = [q for q in known if q.user_id != adapted_user] or known
    rows = {"bare recommend (no Ray)": median_ms(lambda i: svc.recommend([queries[i % len(queries)]]), args.calls)}

    ray.init(address="local", num_cpus=os.cpu_count(), logging_level="WARNING", log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    try:
        serve.run(build_app(app_uris(args.rec_ckpt, args.gen_ckpt, args.data)), name="ccrs", route_prefix="/")
        rec = serve.get_deployment_handle("Recommender", "ccrs")
        store = serve.get_deployment_handle("AdaptationStore", "ccrs")
        base = f"http://127.0.0.1:{args.port}"

        def post(path: str, body: dict) -> None:
            req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                r.read()

        support = [[{"role": t[0], "text": t[1]} for t in q.turns] + [{"role": "recommender", "text": q.turns[0][1]}]
                   for q in known[:3]]
        try:
            post(f"/v1/users/{adapted_user}/adapt", {"conversations": support})
            adapted_q = Query(adapted_user, known[0].turns, 10)
        except urllib.error.HTTPError:  # no recommendation sample in these turns: no adapted row
            adapted_q = None
        rows["handle call, no model (Recommender.stats)"] = median_ms(lambda i: rec.stats.remote().result(), args.calls)
        rows["store call alone (AdaptationStore.get_many)"] = median_ms(
            lambda i: store.get_many.remote("v", [1]).result(), args.calls)
        rows["handle recommend, anonymous"] = median_ms(
            lambda i: rec.recommend.remote(Query(None, queries[i % len(queries)].turns, 10)).result(), args.calls)
        rows["handle recommend, known user never adapted"] = median_ms(
            lambda i: rec.recommend.remote(others[i % len(others)]).result(), args.calls)
        if adapted_q is not None:
            rows["handle recommend, adapted user (parameters kept by the replica after one store call)"] = median_ms(
                lambda i: rec.recommend.remote(adapted_q).result(), args.calls)
        rows["HTTP /v1/noop (floor)"] = median_ms(lambda i: post("/v1/noop", bodies[i % len(bodies)]), args.calls)
        rows["HTTP /v1/recommend"] = median_ms(lambda i: post("/v1/recommend", bodies[i % len(bodies)]), args.calls)
    finally:
        serve.shutdown()
        ray.shutdown()
    report = {"command": command_line("serve_hops.py", argv), "machine": f"{os.cpu_count()} CPUs, no GPU", "calls": args.calls,
              "median_ms": rows}
    save_report(args.save, report, markdown)
    for k, v in rows.items():
        print(f"{v:8.2f} ms  {k}")
    return 0


def markdown(r: dict) -> str:
    lines = [f"# Serve: where one request's time goes (one client, median ms; {r['machine']})", "",
             "Regenerate with:", "", "```", r["command"], "```", "", "| call | median ms |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in r["median_ms"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
