"""Load on the Serve app from a separate process, against the bare models without Serve, in one run.

    .venv/bin/python benchmarks/serve_load.py --data runs/demo/prepared \\
        --rec-ckpt runs/demo/runs/rec-meta-fold0/eval/best.pt \\
        --gen-ckpt runs/demo/runs/dial-meta-fold0/eval/best.pt [--clients 16 --duration 30]

1. Request bodies: dialogue prefixes up to a seeker turn (movie
   placeholders replaced by the movie names, as a client would type them), user ids of their seekers.
2. Bare models, no Ray, one process: latency of one request (``RecommenderService.recommend`` and
   recommend + ``GeneratorService.respond``) and the per-request cost inside a batch of 16.
3. The app on 127.0.0.1 (``serve.app.build_app``); ``benchmarks/load_client.py`` in its own process
   runs ``--clients`` closed-loop clients for ``--duration`` s against ``/v1/recommend`` and then
   ``/v1/respond``: throughput, p50/p99 latency, errors. Then the same with batching off
   (``max_batch_size=1``, rolled out by ``user_config`` → ``reconfigure``, no restart).

Serve overhead = Serve p50 at 1 client ÷ bare p50; batched ÷ unbatched throughput at --clients.
Writes results/bench_serve.json and .md. Bounded: 5 load phases of --duration s plus start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def request_bodies(prepared: str, n: int) -> list[dict]:
    """Up to ``n`` dialogue prefixes ending with a seeker turn (its second or later turn)."""
    from ccrs.data.dataset import PreparedDataset
    from ccrs.inference.slots import display_name

    ds = PreparedDataset.open(prepared)
    ents = ds.table("entities").to_pylist()
    names = {e["id"]: display_name(e["name"]) for e in ents}  # turns' item_ids are entity ids
    turns = ds.table("turns").to_pylist()
    by_conv: dict[str, list[dict]] = {}
    for t in turns:
        by_conv.setdefault(t["conversation_id"], []).append(t)
    bodies = []
    for conv in by_conv.values():
        conv.sort(key=lambda t: t["turn_index"])
        out = []
        for t in conv[:8]:
            text = t["text"]
            for item in t["item_ids"]:
                name = names.get(item, "that movie")
                text = text.replace("__item__", name, 1)
            text = text.replace("__item__", "that movie").strip()[:1000]
            if not text:
                continue
            out.append({"role": t["role"], "text": text})
            if t["role"] == "seeker" and len(out) >= 2:
                seeker = t["sender_id"]
                bodies.append({"user_id": int(seeker), "turns": list(out), "k": 10})
                break
        if len(bodies) >= n:
            break
    return bodies


def app_uris(rec_ckpt: str, gen_ckpt: str, data: str) -> dict[str, str]:
    """The app's URI arguments made absolute: relative ones would be read under $CCRS_STORAGE_PATH
    (serve/deployments.py)."""
    return {k: v if "://" in v else os.path.abspath(v)
            for k, v in {"rec_ckpt": rec_ckpt, "gen_ckpt": gen_ckpt, "data": data}.items()}


def bare_latency(rec_ckpt: str, gen_ckpt: str, prepared: str, bodies: list[dict], repeats: int) -> dict:
    from ccrs.serving.generator_service import GeneratorService, Reply
    from ccrs.serving.recommender_service import Query, RecommenderService

    rec = RecommenderService.load(rec_ckpt, prepared)
    gen = GeneratorService.load(gen_ckpt)

    def queries(bs):
        return [Query(b["user_id"], [(t["role"], t["text"]) for t in b["turns"]], b["k"]) for b in bs]

    def respond(bs):
        qs = queries(bs)
        recs = rec.recommend(qs)
        names = {i: rec.entity_names[int(rec.kg.item_entity_ids[i])] for r in recs for i in r.ranked}
        gen.respond([Reply(q.turns, r.p_u, r.ranked, r.mentioned_items) for q, r in zip(qs, recs, strict=True)], names)

    out = {}
    for name, fn in (("recommend", lambda bs: rec.recommend(queries(bs))), ("respond", respond)):
        fn(bodies[:2])  # warm-up
        single = []
        for i in range(repeats):
            t0 = time.perf_counter()
            fn([bodies[i % len(bodies)]])
            single.append(time.perf_counter() - t0)
        batched = []
        for i in range(max(2, repeats // 8)):
            chunk = [bodies[(i * 16 + j) % len(bodies)] for j in range(16)]
            t0 = time.perf_counter()
            fn(chunk)
            batched.append((time.perf_counter() - t0) / 16)
        out[name] = {"single_p50_ms": round(1000 * statistics.median(single), 2),
                     "single_p99_ms": round(1000 * sorted(single)[int(0.99 * (len(single) - 1))], 2),
                     "batch16_per_request_ms": round(1000 * statistics.median(batched), 2)}
    return out


def load(url: str, bodies_file: str, clients: int, duration: float) -> dict:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "load_client.py"), "--url", url, "--bodies", bodies_file,
           "--clients", str(clients), "--duration", str(duration)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 300)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--rec-ckpt", required=True)
    p.add_argument("--gen-ckpt", required=True)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--bodies", type=int, default=400)
    p.add_argument("--repeats", type=int, default=64, help="bare-model timings per measurement")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--save", default=str(RESULTS / "bench_serve"))
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)  # as each Serve replica on this 2-core machine
    bodies = request_bodies(args.data, args.bodies)
    print(f"{len(bodies)} request bodies from ReDial dialogues", flush=True)
    bare = bare_latency(args.rec_ckpt, args.gen_ckpt, args.data, bodies, args.repeats)
    print("bare:", json.dumps(bare), flush=True)

    import ray
    from ray import serve

    from serve.app import build_app

    ray.init(address="local", num_cpus=os.cpu_count(), logging_level="WARNING", log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    base = f"http://127.0.0.1:{args.port}"
    common = app_uris(args.rec_ckpt, args.gen_ckpt, args.data)
    report: dict = {"command": " ".join(["python benchmarks/serve_load.py", *(argv or sys.argv[1:])]),
                    "machine": f"{os.cpu_count()} CPUs, no GPU", "clients": args.clients,
                    "duration_s": args.duration, "bodies": len(bodies), "bare": bare, "serve": {}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(bodies, f)
    try:
        for mode, batch in (("batched", 16), ("unbatched", 1)):
            t0 = time.perf_counter()
            serve.run(build_app({**common, "max_batch_size": batch, "batch_wait_timeout_s": 0.01}), name="ccrs",
                      route_prefix="/")  # a second run only changes user_config: reconfigure, no restart
            print(f"{mode}: app ready in {time.perf_counter() - t0:.1f} s", flush=True)
            load(f"{base}/v1/respond", f.name, 2, 3)  # warm-up
            phases = {}
            if mode == "batched":
                phases["recommend_1_client"] = load(f"{base}/v1/recommend", f.name, 1, args.duration / 2)
            phases["recommend"] = load(f"{base}/v1/recommend", f.name, args.clients, args.duration)
            phases["respond"] = load(f"{base}/v1/respond", f.name, args.clients, args.duration)
            for k, v in phases.items():
                print(f"{mode} {k}: {v['throughput_rps']} req/s p50 {v['p50_ms']} ms p99 {v['p99_ms']} ms "
                      f"errors {v['errors']}", flush=True)
            report["serve"][mode] = phases
    finally:
        serve.shutdown()
        ray.shutdown()
        os.unlink(f.name)
    b, u = report["serve"]["batched"], report["serve"]["unbatched"]
    report["ratios"] = {
        "serve_overhead_p50_1_client_recommend": round(b["recommend_1_client"]["p50_ms"] / bare["recommend"]["single_p50_ms"], 2),
        "batched_over_unbatched_throughput_recommend": round(b["recommend"]["throughput_rps"] / u["recommend"]["throughput_rps"], 2),
        "batched_over_unbatched_throughput_respond": round(b["respond"]["throughput_rps"] / u["respond"]["throughput_rps"], 2),
        "total_errors": sum(ph["errors"] for m in report["serve"].values() for ph in m.values()),
    }
    print(json.dumps(report["ratios"], indent=2))
    save = Path(args.save)
    save.parent.mkdir(parents=True, exist_ok=True)
    save.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    save.with_suffix(".md").write_text(markdown(report))
    print(f"saved {save}.json and {save}.md")
    return 0


def markdown(r: dict) -> str:
    lines = [f"# Serve load benchmark ({r['machine']})", "", f"`{r['command']}`", "",
             f"{r['clients']} closed-loop clients from a separate process, {r['duration_s']} s per phase, "
             f"{r['bodies']} request bodies from ReDial dialogues.", "",
             "| mode | endpoint | clients | req/s | p50 ms | p99 ms | errors |", "|---|---|---:|---:|---:|---:|---:|"]
    for mode, phases in r["serve"].items():
        for name, ph in phases.items():
            lines.append(f"| {mode} | {name} | {ph['clients']} | {ph['throughput_rps']} | {ph['p50_ms']} | "
                         f"{ph['p99_ms']} | {ph['errors']} |")
    lines += ["", "Bare models (no Ray, no HTTP, one thread):", "", "| call | single p50 ms | single p99 ms | "
              "per request in a batch of 16, ms |", "|---|---:|---:|---:|"]
    for name, v in r["bare"].items():
        lines.append(f"| {name} | {v['single_p50_ms']} | {v['single_p99_ms']} | {v['batch16_per_request_ms']} |")
    lines += ["", "Ratios:", ""] + [f"- {k}: {v}" for k, v in r["ratios"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
