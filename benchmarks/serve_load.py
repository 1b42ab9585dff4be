"""Load on the Serve app from a separate process, against the bare models without Serve, in one run.

    .venv/bin/python benchmarks/serve_load.py --data runs/demo/prepared \\
        --rec-ckpt runs/demo/runs/rec-meta-fold0/eval/best.pt \\
        --gen-ckpt runs/demo/runs/dial-meta-fold0/eval/best.pt [--clients 16 --duration 30]

1. Request bodies: dialogue prefixes up to a seeker turn (movie
   placeholders replaced by the movie names, as a client would type them), user ids of their seekers.
2. Bare models, no Ray, one process: latency of one request (``RecommenderService.recommend`` and
   recommend + ``GeneratorService.respond``) and the per-request cost inside a batch of 16.
3. The app on 127.0.0.1 (``serve.app.build_app``); ``benchmarks/load_client.py`` in its own process
   runs closed-loop clients against ``/v1/noop`` (the floor: same proxy, ingress and body, no model),
   ``/v1/recommend`` and ``/v1/respond``, at 1 client (latency) and ``--clients`` (throughput):
   p50/p99, errors, and the batch sizes the replicas formed in each phase (``/v1/stats``). Three app
   configurations side by side (:data:`MODES`, rolled out by ``user_config`` → ``reconfigure``, no
   restart): batches of up to 16 taking what is queued (wait 0), the same waiting up to 10 ms for a
   batch to fill, and no batching.

Ratios: p50 at 1 client ÷ the floor's; throughput ÷ the floor's; mean batch size.
Writes results/bench_serve.json and .md. Bounded: 14 load phases of at most --duration s plus start-up.
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


def add_app_arguments(p: argparse.ArgumentParser) -> None:
    """The app's inputs every Serve benchmark takes: the prepared data and the two checkpoints."""
    p.add_argument("--data", required=True, help="prepared dataset (ccrs data prepare)")
    p.add_argument("--rec-ckpt", required=True, help="recommender checkpoint")
    p.add_argument("--gen-ckpt", required=True, help="generator checkpoint")


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
        names = {i: rec.item_name(i) for r in recs for i in r.ranked}
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


def stats(base: str) -> dict:
    """Batch sizes the model replicas formed so far (``GET /v1/stats``): {model: {size: count}}."""
    import urllib.request

    with urllib.request.urlopen(f"{base}/v1/stats", timeout=30) as r:
        body = json.loads(r.read())
    return {m: {int(k): v for k, v in (body.get(m) or {}).get("batch_sizes", {}).items()} for m in ("recommender", "generator")}


def _diff(after: dict, before: dict) -> dict:
    return {m: {k: v - before[m].get(k, 0) for k, v in sorted(after[m].items()) if v - before[m].get(k, 0)}
            for m in after}


#: (name, max_batch_size, batch_wait_timeout_s) of the app configurations measured side by side.
MODES = (("batched_wait0", 16, 0.0), ("batched_wait10ms", 16, 0.01), ("unbatched", 1, 0.0))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_app_arguments(p)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--duration", type=float, default=20.0)
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
        for mode, batch, wait in MODES:
            t0 = time.perf_counter()
            serve.run(build_app({**common, "max_batch_size": batch, "batch_wait_timeout_s": wait}), name="ccrs",
                      route_prefix="/")  # a second run only changes user_config: reconfigure, no restart
            print(f"{mode}: app ready in {time.perf_counter() - t0:.1f} s", flush=True)
            load(f"{base}/v1/respond", f.name, 2, 3)  # warm-up
            phases = {}
            if mode == MODES[0][0]:  # the floor: the same body, proxy and ingress, no model
                phases["noop_1_client"] = load(f"{base}/v1/noop", f.name, 1, args.duration / 2)
                phases["noop"] = load(f"{base}/v1/noop", f.name, args.clients, args.duration)
            for route in ("recommend", "respond"):
                for clients, name in ((1, f"{route}_1_client"), (args.clients, route)):
                    before = stats(base)
                    phases[name] = load(f"{base}/v1/{route}", f.name, clients, args.duration / (2 if clients == 1 else 1))
                    phases[name]["batch_sizes"] = _diff(stats(base), before)
            for k, v in phases.items():
                print(f"{mode} {k}: {v['throughput_rps']} req/s p50 {v['p50_ms']} ms p99 {v['p99_ms']} ms "
                      f"errors {v['errors']} batches {v.get('batch_sizes', '')}", flush=True)
            report["serve"][mode] = phases
    finally:
        serve.shutdown()
        ray.shutdown()
        os.unlink(f.name)
    report["ratios"] = ratios(report)
    print(json.dumps(report["ratios"], indent=2))
    save = Path(args.save)
    save.parent.mkdir(parents=True, exist_ok=True)
    save.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    save.with_suffix(".md").write_text(markdown(report))
    print(f"saved {save}.json and {save}.md")
    return 0


def mean_batch(hist: dict) -> float:
    n = sum(hist.values())
    return round(sum(int(k) * v for k, v in hist.items()) / n, 2) if n else float("nan")


def ratios(r: dict) -> dict:
    s, bare = r["serve"], r["bare"]
    floor = s[MODES[0][0]]
    out = {"floor_p50_ms_1_client": floor["noop_1_client"]["p50_ms"],
           "floor_throughput_rps": floor["noop"]["throughput_rps"]}
    for mode, *_ in MODES:
        for route in ("recommend", "respond"):
            out[f"{mode}_{route}_p50_1_client_over_floor"] = round(
                s[mode][f"{route}_1_client"]["p50_ms"] / floor["noop_1_client"]["p50_ms"], 2)
            out[f"{mode}_{route}_throughput_over_floor"] = round(
                s[mode][route]["throughput_rps"] / floor["noop"]["throughput_rps"], 2)
            model = "recommender" if route == "recommend" else "generator"
            out[f"{mode}_{route}_mean_batch"] = mean_batch(s[mode][route]["batch_sizes"].get(model, {}))
    out["serve_p50_1_client_over_bare_recommend"] = round(
        s[MODES[0][0]]["recommend_1_client"]["p50_ms"] / bare["recommend"]["single_p50_ms"], 2)
    out["total_errors"] = sum(ph["errors"] for m in s.values() for ph in m.values())
    return out


def markdown(r: dict) -> str:
    lines = [f"# Serve load benchmark ({r['machine']})", "", f"`{r['command']}`", "",
             f"Closed-loop clients from a separate process ({r['clients']} for the loaded phases, 1 for the "
             f"latency phases), {r['duration_s']} s per loaded phase, {r['bodies']} request bodies from ReDial "
             "dialogues. `noop` is the floor: the same body through the same proxy, ingress and validation, "
             "answered without a model (`POST /v1/noop`). Batch sizes: what the model replicas formed during "
             "the phase (`GET /v1/stats`), size: count.", "",
             "| mode | phase | clients | req/s | p50 ms | p99 ms | max ms | errors | mean batch | batch sizes |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for mode, phases in r["serve"].items():
        for name, ph in phases.items():
            hist = ph.get("batch_sizes", {})
            model = "generator" if name.startswith("respond") else "recommender"
            h = hist.get(model, {})
            lines.append(f"| {mode} | {name} | {ph['clients']} | {ph['throughput_rps']} | {ph['p50_ms']} | "
                         f"{ph['p99_ms']} | {ph['max_ms']} | {ph['errors']} | "
                         f"{mean_batch(h) if h else ''} | {' '.join(f'{k}:{v}' for k, v in h.items())} |")
    lines += ["", "Bare models (no Ray, no HTTP, one thread):", "", "| call | single p50 ms | single p99 ms | "
              "per request in a batch of 16, ms |", "|---|---:|---:|---:|"]
    for name, v in r["bare"].items():
        lines.append(f"| {name} | {v['single_p50_ms']} | {v['single_p99_ms']} | {v['batch16_per_request_ms']} |")
    lines += ["", "Ratios:", ""] + [f"- {k}: {v}" for k, v in r["ratios"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
