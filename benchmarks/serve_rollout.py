"""A new recommender checkpoint rolled out by ``user_config`` while clients run: failed requests, and
which checkpoint answered each request.

    .venv/bin/python benchmarks/serve_rollout.py --data runs/real/prepared \\
        --rec-ckpt runs/real/rec_plain/user/ccrs/fold0/best.pt \\
        --new-rec-ckpt runs/real/rec_plain/user/ccrs/fold1/best.pt \\
        --gen-ckpt runs/real/gen/fold0/meta/ccrs/eval/best.pt [--clients 6 --duration 30 --roll-at 10]

The app runs 2 Recommender replicas; ``--clients`` threads POST ``/v1/recommend`` back to back; at
``--roll-at`` s ``serve.run`` is called again with the new ``rec_ckpt`` (only ``user_config``
changes: Serve calls ``reconfigure`` on the live replicas, no restart). Every response names the
checkpoint version that ranked it (``checkpoint_versions.recommender``). Reports errors (target 0),
the versions seen in order (old only before, new only at the end), p99 and the longest request.
Writes results/bench_serve_rollout.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {}
    except OSError:
        return -1, {}


def rollout_run(rec_ckpt: str, new_rec_ckpt: str, gen_ckpt: str, data: str, bodies: list[dict], clients: int,
                duration: float, roll_at: float, port: int, replica_num_cpus: float = 0.5) -> dict:
    from ray import serve

    from serve.app import build_app

    serve.start(http_options={"host": "127.0.0.1", "port": port})
    from serve_load import app_uris

    absolute = app_uris(rec_ckpt, gen_ckpt, data)
    args = {**absolute, "num_replicas": 2, "replica_num_cpus": replica_num_cpus}
    serve.run(build_app(args), name="ccrs", route_prefix="/")
    url = f"http://127.0.0.1:{port}/v1/recommend"
    results: list[tuple[float, int, str, float]] = []  # (sent at, status, version, seconds)
    lock = threading.Lock()
    t_start = time.perf_counter()
    stop_at = t_start + duration

    def client(k: int) -> None:
        i = k
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            status, out = _post(url, json.dumps(bodies[i % len(bodies)]).encode())
            i += clients
            with lock:
                results.append((t0 - t_start, status, out.get("checkpoint_versions", {}).get("recommender", ""),
                                time.perf_counter() - t0))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    time.sleep(roll_at)
    t_roll = time.perf_counter() - t_start
    new_abs = new_rec_ckpt if "://" in new_rec_ckpt else os.path.abspath(new_rec_ckpt)
    serve.run(build_app({**args, "rec_ckpt": new_abs}), name="ccrs", route_prefix="/")  # user_config only
    t_rolled = time.perf_counter() - t_start
    for t in threads:
        t.join()
    results.sort()
    versions = [v for _, s, v, _ in results if s == 200]
    order = [v for i, v in enumerate(versions) if i == 0 or v != versions[i - 1]]
    lat = sorted(r[3] for r in results)
    tail = versions[-max(1, len(versions) // 20):]  # the last 5% of answers
    return {"requests": len(results), "errors": sum(1 for _, s, _, _ in results if s != 200),
            "versions_seen": sorted(set(versions)), "version_changes_in_order": len(order) - 1,
            "first_version": versions[0] if versions else "", "last_versions": sorted(set(tail)),
            "rolled_at_s": round(t_roll, 2), "rollout_returned_at_s": round(t_rolled, 2),
            "p50_ms": round(1000 * lat[len(lat) // 2], 1) if lat else None,
            "p99_ms": round(1000 * lat[int(0.99 * (len(lat) - 1))], 1) if lat else None,
            "max_ms": round(1000 * lat[-1], 1) if lat else None, "clients": clients, "duration_s": duration}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--rec-ckpt", required=True)
    p.add_argument("--new-rec-ckpt", required=True)
    p.add_argument("--gen-ckpt", required=True)
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--roll-at", type=float, default=10.0)
    p.add_argument("--port", type=int, default=8767)
    p.add_argument("--save", default=str(ROOT / "results" / "bench_serve_rollout"))
    args = p.parse_args(argv)
    import ray
    from ray import serve
    from serve_load import request_bodies

    bodies = request_bodies(args.data, 200)
    ray.init(address="local", num_cpus=max(4, os.cpu_count()), logging_level="WARNING", log_to_driver=False)
    try:
        r = rollout_run(args.rec_ckpt, args.new_rec_ckpt, args.gen_ckpt, args.data, bodies, args.clients,
                        args.duration, args.roll_at, args.port)
    finally:
        serve.shutdown()
        ray.shutdown()
    r["command"] = " ".join(["python benchmarks/serve_rollout.py", *(argv or sys.argv[1:])])
    print(json.dumps(r, indent=2))
    save = Path(args.save)
    save.parent.mkdir(parents=True, exist_ok=True)
    save.with_suffix(".json").write_text(json.dumps(r, indent=2) + "\n")
    save.with_suffix(".md").write_text("\n".join([
        "# A recommender checkpoint rolled out under load (user_config → reconfigure)", "", f"`{r['command']}`", "",
        f"{r['clients']} clients on /v1/recommend for {r['duration_s']} s, 2 Recommender replicas; rollout called at "
        f"{r['rolled_at_s']} s (returned at {r['rollout_returned_at_s']} s).", "",
        "| requests | errors | versions seen | first | last 5% of answers | p99 ms | longest ms |",
        "|---:|---:|---|---|---|---:|---:|",
        f"| {r['requests']} | {r['errors']} | {', '.join(r['versions_seen'])} | {r['first_version']} | "
        f"{', '.join(r['last_versions'])} | {r['p99_ms']} | {r['max_ms']} |", "", "Target: 0 errors; every answer "
        "names the checkpoint that ranked it; only the new one at the end.", ""]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
