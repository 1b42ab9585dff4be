"""A closed-loop HTTP load generator (its own process): N clients, each POSTing back to back for D seconds.

    python benchmarks/load_client.py --url http://127.0.0.1:8000/v1/recommend --bodies bodies.json \\
        --clients 16 --duration 30

Each client is a thread with one keep-alive connection, cycling through the JSON bodies (a list).
Prints one JSON object: requests, errors (non-2xx or connection failures), status counts,
throughput (requests/s), p50/p90/p99/max latency in ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from collections import Counter
from urllib.parse import urlsplit


def run_load(url: str, bodies: list[bytes], clients: int, duration: float,
             records: list | None = None) -> dict:
    """The load report; with ``records``, each request is appended to it as (seconds since the start
    when sent, status, recommender checkpoint version that answered, seconds taken)."""
    parts = urlsplit(url)
    latencies: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    start = time.perf_counter()
    stop_at = start + duration

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        i, local, local_status, local_records = k, [], Counter(), []
        while time.perf_counter() < stop_at:
            body = bodies[i % len(bodies)]
            i += clients
            t0 = time.perf_counter()
            try:
                conn.request("POST", parts.path, body, {"content-type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                local_status[resp.status] += 1
            except (OSError, http.client.HTTPException):
                local_status["connection-error"] += 1
                if records is not None:
                    local_records.append((t0 - start, 0, "", time.perf_counter() - t0))
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
                continue
            local.append(time.perf_counter() - t0)
            if records is not None:
                version = json.loads(data).get("checkpoint_versions", {}).get("recommender", "") if resp.status == 200 else ""
                local_records.append((t0 - start, resp.status, version, local[-1]))
        conn.close()
        with lock:
            latencies.extend(local)
            statuses.update(local_status)
            if records is not None:
                records.extend(local_records)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else float("nan")

    ok = sum(v for k, v in statuses.items() if isinstance(k, int) and 200 <= k < 300)
    return {"url": url, "clients": clients, "duration_s": round(wall, 2), "requests": sum(statuses.values()),
            "errors": sum(statuses.values()) - ok, "status_counts": {str(k): v for k, v in statuses.items()},
            "throughput_rps": round(ok / wall, 2), "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
            "max_ms": round(1000 * lat[-1], 2) if lat else float("nan")}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--bodies", required=True, help="JSON file: a list of request bodies")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--record", help="write every request as [sent at s, status, recommender version, s] (JSON)")
    args = p.parse_args(argv)
    bodies = [json.dumps(b).encode() for b in json.loads(open(args.bodies).read())]
    records = [] if args.record else None
    print(json.dumps(run_load(args.url, bodies, args.clients, args.duration, records)))
    if args.record:
        with open(args.record, "w") as f:
            json.dump(sorted(records), f)


if __name__ == "__main__":
    main()
