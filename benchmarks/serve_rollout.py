"""A new recommender checkpoint rolled out by ``user_config`` while clients run: failed requests, and
which checkpoint answered each request.

    .venv/bin/python benchmarks/serve_rollout.py --data runs/demo/prepared \\
        --rec-ckpt runs/demo/rec/plain/best.pt --new-rec-ckpt runs/demo/runs/rec-meta-fold0/eval/best.pt \\
        --gen-ckpt runs/demo/runs/dial-meta-fold0/eval/best.pt [--clients 6 --duration 30 --roll-at 10]

The app is deployed with ``serve deploy`` (Serve's REST API, as an operator does on a cluster), 2
Recommender replicas; ``benchmarks/load_client.py`` (its own process) runs ``--clients`` closed-loop
clients on ``/v1/recommend``; at ``--roll-at`` s the same config is deployed again with the new
``rec_ckpt`` in the Recommender's ``user_config``: a lightweight update, so Serve calls
``reconfigure`` on the live replicas one at a time (no restart), and each keeps answering with the
old model while the new one loads. (``serve.run`` from Python instead gives every deployment a new
code version: a rolling *restart* of every replica, the 7.5 s stall measured before, in
``results/archive/bench_serve_rollout_before_2026-12-07.md``.) Every response names the checkpoint
version that ranked it (``checkpoint_versions.recommender``). Reports errors (target 0), the versions
seen in order (old only before, new only at the end), the window where both answered, p99, and the
longest request. Writes results/bench_serve_rollout.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def app_config(port: int, args: dict, rec_ckpt: str) -> dict:
    """The app as a ``serve deploy`` config (what an operator edits): ``args`` are
    :func:`serve.app.build_app`'s (constant: they are part of Serve's code version), the recommender
    checkpoint is in the Recommender's ``user_config``, so changing it is a lightweight update
    (reconfigure in place)."""
    user_config = {"rec_ckpt": rec_ckpt, "data": args["data"], "max_batch_size": args.get("max_batch_size", 16),
                   "batch_wait_timeout_s": args.get("batch_wait_timeout_s", 0.0),
                   "fail_user_ids": args.get("fail_user_ids", [])}
    return {"http_options": {"host": "127.0.0.1", "port": port},
            "applications": [{"name": "ccrs", "route_prefix": "/", "import_path": "serve.app:build_app",
                              "args": {k: v for k, v in args.items() if k != "rec_ckpt"},
                              "deployments": [{"name": "Recommender", "user_config": user_config}]}]}


def serve_deploy(config: dict, dashboard: str, wait_s: float = 300) -> None:
    """``serve deploy`` (Serve's REST API, as on a cluster), then wait until the app is RUNNING again."""
    import yaml
    from ray import serve

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(config, f)
    try:
        subprocess.run([str(Path(sys.executable).with_name("serve")), "deploy", f.name, "-a", dashboard], check=True,
                       capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    deadline = time.time() + wait_s
    time.sleep(1)  # the controller takes the new config first
    while True:
        app = serve.status().applications.get("ccrs")
        if app is not None and app.status == "RUNNING" and all(
                d.status == "HEALTHY" for d in app.deployments.values()):
            return
        if time.time() > deadline:
            raise TimeoutError(f"app not RUNNING {wait_s} s after serve deploy: {app}")
        time.sleep(0.5)


def rollout_run(rec_ckpt: str, new_rec_ckpt: str, gen_ckpt: str, data: str, bodies: list[dict], clients: int,
                duration: float, roll_at: float, port: int, dashboard: str, replica_num_cpus: float = 0.5,
                app_args: dict | None = None) -> dict:
    """Deploy the app (``app_args``, default 2 replicas each) with ``rec_ckpt``, load it, deploy it again
    with ``new_rec_ckpt`` at ``roll_at`` s; the report of every request."""
    from serve_load import app_uris

    uris = app_uris(rec_ckpt, gen_ckpt, data)
    args = app_args or {"gen_ckpt": uris["gen_ckpt"], "data": uris["data"], "num_replicas": 2,
                        "replica_num_cpus": replica_num_cpus}
    serve_deploy(app_config(port, args, uris["rec_ckpt"]), dashboard)
    # the clients run in their own process: the driver's rollout work must not stall them through this
    # process's GIL
    with tempfile.TemporaryDirectory() as tmp:
        body_file, record_file = Path(tmp) / "bodies.json", Path(tmp) / "records.json"
        body_file.write_text(json.dumps(bodies))
        cmd = [sys.executable, str(ROOT / "benchmarks" / "load_client.py"), "--url",
               f"http://127.0.0.1:{port}/v1/recommend", "--bodies", str(body_file), "--clients", str(clients),
               "--duration", str(duration), "--record", str(record_file)]
        client = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        t_start = time.perf_counter()
        time.sleep(roll_at)
        t_roll = time.perf_counter() - t_start
        new_abs = new_rec_ckpt if "://" in new_rec_ckpt else os.path.abspath(new_rec_ckpt)
        serve_deploy(app_config(port, args, new_abs), dashboard)  # user_config only
        t_rolled = time.perf_counter() - t_start
        client.communicate(timeout=duration + 300)
        results = [tuple(r) for r in json.loads(record_file.read_text())]
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
            "max_ms": round(1000 * lat[-1], 1) if lat else None, "clients": clients, "duration_s": duration,
            "slowest": [[round(t, 2), s, v, round(1000 * d, 1)] for t, s, v, d in sorted(results, key=lambda r: -r[3])[:5]],
            "mixed_window_s": _mixed_window(results)}


def _mixed_window(results: list[tuple]) -> list[float] | None:
    """[first answer by the new checkpoint, last answer by the old one], by when the requests were sent."""
    ok = [(t, v) for t, s, v, _ in results if s == 200]
    if not ok:
        return None
    first_v = ok[0][1]
    new = [t for t, v in ok if v != first_v]
    old = [t for t, v in ok if v == first_v]
    return [round(min(new), 2), round(max(old), 2)] if new else None


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
    ctx = ray.init(address="local", num_cpus=max(4, os.cpu_count()), logging_level="WARNING", log_to_driver=False,
                   include_dashboard=True)  # serve deploy talks to the dashboard's REST API
    try:
        r = rollout_run(args.rec_ckpt, args.new_rec_ckpt, args.gen_ckpt, args.data, bodies, args.clients,
                        args.duration, args.roll_at, args.port, "http://" + ctx.dashboard_url)
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
        "| requests | errors | versions seen | first | last 5% of answers | both answered (s) | p50 ms | p99 ms | "
        "longest ms |",
        "|---:|---:|---|---|---|---|---:|---:|---:|",
        f"| {r['requests']} | {r['errors']} | {', '.join(r['versions_seen'])} | {r['first_version']} | "
        f"{', '.join(r['last_versions'])} | {r['mixed_window_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} |",
        "", f"Slowest requests [sent at s, status, version, ms]: {r['slowest']}", "",
        "Target: 0 errors; every answer names the checkpoint that ranked it; only the new one at the end.", ""]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
