"""``ccrs data prepare`` time and memory against the number of conversations: local engine vs Ray Data.

    .venv/bin/python benchmarks/prepare_scale.py [--sizes 10000,100000,1000000] [--local-max 100000]

For each size a synthetic raw set (``ccrs data synth --users N/4 --conversations-per-user 4``, kept
in ``/tmp/ccrs_synth_<N>``) is prepared by a fresh ``ccrs data prepare`` process, while this process
samples the memory of that process and all its descendants (Ray's GCS, raylet and workers) every
0.5 s: ``peak_driver_rss_gb`` (the ``ccrs`` process alone) and ``peak_tree_pss_gb`` (proportional set
size summed over the tree, so the shared object store counts once). Engines: ``local`` (one process,
everything in memory; up to ``--local-max`` conversations), ``ray`` (``--engine ray`` to a local
folder) and ``ray_s3`` (``--engine ray`` to a real S3-compatible server on 127.0.0.1, moto, at the
largest size only and the smallest). The Ray runs start their own local Ray (2 CPUs).

Writes results/prepare_scale.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def synth(n: int) -> Path:
    raw = Path(f"/tmp/ccrs_synth_{n}")
    if not (raw / "movies_with_mentions.csv").is_file():
        subprocess.run([sys.executable, "-m", "ccrs", "data", "synth", "--out", str(raw), "--users", str(n // 4),
                        "--conversations-per-user", "4"], check=True, cwd=ROOT)
    return raw


def measure(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; its wall time, exit status and the peak memory of it and its descendants."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = {"driver": 0, "tree": 0}
    done = threading.Event()

    def sample():
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                driver = root.memory_info().rss
                tree = 0
                for p in procs:
                    try:
                        tree += p.memory_full_info().pss
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        pass
                peak["driver"] = max(peak["driver"], driver)
                peak["tree"] = max(peak["tree"], tree)
            except psutil.NoSuchProcess:
                pass
            done.wait(0.5)

    t = threading.Thread(target=sample, daemon=True)
    t0 = time.perf_counter()
    t.start()
    out, _ = proc.communicate()
    seconds = time.perf_counter() - t0
    done.set()
    t.join()
    return {"seconds": seconds, "returncode": proc.returncode, "peak_driver_rss_gb": peak["driver"] / 2**30,
            "peak_tree_pss_gb": peak["tree"] / 2**30, "tail": out[-800:] if proc.returncode else ""}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--local-max", type=int, default=100_000, help="largest size the local engine is run at")
    ap.add_argument("--split-mb", type=float, default=32.0)
    ap.add_argument("--engines", default="local,ray,ray_s3", help="which engines to run")
    ap.add_argument("--merge", action="store_true",
                    help="add these rows to results/prepare_scale.json (replacing the same engine and size)")
    args = ap.parse_args()
    engines = set(args.engines.split(","))
    sizes = [int(x) for x in args.sizes.split(",")]
    s3_env = None
    rows = []
    for n in sizes:
        raw = synth(n)
        raw_mb = sum(f.stat().st_size for f in (raw / "dialogs").iterdir()) / 2**20
        runs = [("ray", f"/tmp/ccrs_prepared_ray_{n}")]
        if n <= args.local_max:
            runs.insert(0, ("local", f"/tmp/ccrs_prepared_local_{n}"))
        if n in (sizes[0], sizes[-1]):
            runs.append(("ray_s3", f"s3://ccrs-prepare-scale/prepared_{n}"))
        runs = [(e, o) for e, o in runs if e in engines]
        for engine, out in runs:
            env = dict(os.environ)
            if engine == "ray_s3":
                if s3_env is None:
                    s3_env = start_s3()
                env |= s3_env
            elif Path(out).exists():
                shutil.rmtree(out)
            cmd = [sys.executable, "-m", "ccrs", "data", "prepare", "--raw", str(raw), "--out", out, "--force", "-q",
                   "--no-download"]
            if engine != "local":
                cmd += ["--engine", "ray", "--split-mb", str(args.split_mb)]
            row = {"engine": engine, "conversations": n, "raw_mb": raw_mb} | measure(cmd, env)
            if row["returncode"] == 0:
                row["rows"] = manifest_rows(out, env)
            rows.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    command = "python benchmarks/prepare_scale.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    commands = [command]
    if args.merge and (RESULTS / "prepare_scale.json").is_file():
        old = json.loads((RESULTS / "prepare_scale.json").read_text())
        new_keys = {(r["engine"], r["conversations"]) for r in rows}
        rows = [r for r in old["rows"] if (r["engine"], r["conversations"]) not in new_keys] + rows
        rows.sort(key=lambda r: (r["conversations"], ["local", "ray", "ray_s3"].index(r["engine"])))
        commands = old.get("commands", [old.get("command")]) + [command]
    (RESULTS / "prepare_scale.json").write_text(json.dumps({"commands": commands, "rows": rows}, indent=2) + "\n")
    write_markdown(rows, commands)
    return 0


def start_s3() -> dict:
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False).start()
    return {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def manifest_rows(out: str, env: dict) -> dict:
    old = {k: os.environ.get(k) for k in env if k.startswith("AWS_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    try:
        from ccrs import storage

        manifest = json.loads(storage.read_bytes(storage.resolve(out).child("manifest.json")))
        return {k: v["rows"] for k, v in manifest["tables"].items()}
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def write_markdown(rows: list[dict], commands: list[str]) -> None:
    md = ["# `ccrs data prepare` against size: local engine vs Ray Data", "", *(f"    {c}" for c in commands), "",
          "Synthetic raw sets (`ccrs data synth`, 4 conversations per user), 2-core machine; the Ray runs start their "
          "own local Ray. Peak driver RSS = the `ccrs` process; peak tree PSS = it and every descendant (Ray's "
          "processes, workers, the object store counted once).", "",
          "| engine | conversations | raw MB | seconds | conversations / s | peak driver RSS GB | peak tree PSS GB "
          "| turns | rec samples |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["returncode"]:
            md.append(f"| {r['engine']} | {r['conversations']:,} | {r['raw_mb']:.0f} | failed: "
                      f"{r['tail'][-100:]!r} | | | | | |")
            continue
        md.append(f"| {r['engine']} | {r['conversations']:,} | {r['raw_mb']:.0f} | {r['seconds']:.0f} | "
                  f"{r['conversations'] / r['seconds']:,.0f} | {r['peak_driver_rss_gb']:.2f} | "
                  f"{r['peak_tree_pss_gb']:.2f} | {r['rows']['turns']:,} | {r['rows']['rec_samples']:,} |")
    md += ["", "![curves](prepare_scale.png) (`python benchmarks/plot_scaling.py`)", "", "Read with `docs/scaling.md`."]
    (RESULTS / "prepare_scale.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
