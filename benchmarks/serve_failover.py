"""A Recommender replica SIGKILLed under load: are requests lost, and how long do clients stall?

    .venv/bin/python benchmarks/serve_failover.py --data runs/real/prepared \\
        --rec-ckpt runs/real/rec_plain/user/ccrs/fold0/best.pt \\
        --gen-ckpt runs/real/gen/fold0/meta/ccrs/eval/best.pt [--clients 8 --duration 30 --kill-at 10]

The app runs 2 Recommender and 2 Generator replicas (``build_app(num_replicas=2)``);
``benchmarks/load_client.py`` (its own process) runs ``--clients`` closed-loop clients on
``/v1/recommend`` for ``--duration`` s; at ``--kill-at`` s one Recommender replica's process gets
SIGKILL (as the OOM killer or a lost node would). Reports errors (target 0), p50/p99 and the
longest request (the longest stall a client saw; target ≤ 2 s), and whether Serve restarted the
replica. Writes results/bench_serve_failover.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def replica_pids(deployment: str = "Recommender") -> list[int]:
    from ray.util.state import list_actors

    actors = list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
    return [a.pid for a in actors if a.class_name.endswith(f":{deployment}")]


def failover_run(rec_ckpt: str, gen_ckpt: str, data: str, bodies: list[dict], clients: int, duration: float,
                 kill_at: float, port: int, replica_num_cpus: float = 0.5) -> dict:
    """Start the app (2 replicas each), load it, SIGKILL one Recommender replica; the load report."""
    from ray import serve

    from serve.app import build_app

    serve.start(http_options={"host": "127.0.0.1", "port": port})
    from serve_load import app_uris

    common = app_uris(rec_ckpt, gen_ckpt, data)
    serve.run(build_app({**common, "num_replicas": 2, "replica_num_cpus": replica_num_cpus}), name="ccrs",
              route_prefix="/")
    before = replica_pids()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(bodies, f)
    cmd = [sys.executable, str(ROOT / "benchmarks" / "load_client.py"), "--url",
           f"http://127.0.0.1:{port}/v1/recommend", "--bodies", f.name, "--clients", str(clients),
           "--duration", str(duration)]
    client = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    time.sleep(kill_at)
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    out, _ = client.communicate(timeout=duration + 300)
    os.unlink(f.name)
    report = json.loads(out.strip().splitlines()[-1])
    deadline = time.time() + 60
    while time.time() < deadline and len(replica_pids()) < 2:
        time.sleep(1)
    after = replica_pids()
    report |= {"replicas_before": len(before), "killed_pid": victim, "replicas_after": len(after),
               "restarted": len(after) == 2 and victim not in after, "kill_at_s": kill_at}
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from serve_load import add_app_arguments

    add_app_arguments(p)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--kill-at", type=float, default=10.0)
    p.add_argument("--port", type=int, default=8766)
    p.add_argument("--save", default=str(ROOT / "results" / "bench_serve_failover"))
    args = p.parse_args(argv)
    import ray
    from ray import serve
    from serve_load import request_bodies

    bodies = request_bodies(args.data, 200)
    # 2 + 2 model replicas at 0.5 CPU each + the ingress need 2.1 logical CPUs: declare at least 4
    # (oversubscribed on a 2-core machine: the point is failover, not throughput)
    ray.init(address="local", num_cpus=max(4, os.cpu_count()), logging_level="WARNING", log_to_driver=False)
    try:
        r = failover_run(args.rec_ckpt, args.gen_ckpt, args.data, bodies, args.clients, args.duration,
                         args.kill_at, args.port)
    finally:
        serve.shutdown()
        ray.shutdown()
    r["command"] = " ".join(["python benchmarks/serve_failover.py", *(argv or sys.argv[1:])])
    print(json.dumps(r, indent=2))
    save = Path(args.save)
    save.parent.mkdir(parents=True, exist_ok=True)
    save.with_suffix(".json").write_text(json.dumps(r, indent=2) + "\n")
    save.with_suffix(".md").write_text("\n".join([
        "# A Recommender replica SIGKILLed under load", "", f"`{r['command']}`", "",
        f"{r['clients']} closed-loop clients on /v1/recommend for {r['duration_s']} s, 2 Recommender + 2 Generator "
        f"replicas, one Recommender replica killed (SIGKILL) at {r['kill_at_s']} s; {os.cpu_count()} CPUs.", "",
        "| requests | errors | status counts | req/s | p50 ms | p99 ms | longest request (stall) ms | replica restarted |",
        "|---:|---:|---|---:|---:|---:|---:|---|",
        f"| {r['requests']} | {r['errors']} | {r['status_counts']} | {r['throughput_rps']} | {r['p50_ms']} | "
        f"{r['p99_ms']} | {r['max_ms']} | {r['restarted']} |", "",
        "Targets: 0 errors, longest stall ≤ 2 s.", ""]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
