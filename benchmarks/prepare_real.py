"""Time `ccrs data prepare` on the real data, to a local path and to S3, and save the summary.

    .venv/bin/python benchmarks/prepare_real.py [--raw ../shared/data/redial] [--repeats 3]

Writes results/prepare_real.json and results/prepare_real.md: wall time per run (local vs. S3 on a
local moto_server, side by side in one run), whether both give byte-identical tables, and the
dataset summary table quoted in the README.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ccrs.data.locate import resolve_raw_dir
from ccrs.data.prepare import prepare
from ccrs.data.summary import format_summary

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    raw, how = resolve_raw_dir(args.raw, allow_download=False, allow_synthetic=False)

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
    times: dict[str, list[float]] = {"local": [], "s3": []}
    hashes = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.repeats):
                for target, uri in (("local", f"{tmp}/prepared"), ("s3", "s3://bench/prepared")):
                    t0 = time.perf_counter()
                    result = prepare(raw, uri, force=True, progress=False)
                    times[target].append(time.perf_counter() - t0)
                    hashes[target] = {n: e["sha256"] for n, e in result.manifest["tables"].items()}
                    manifest = result.manifest
                print(f"run {i + 1}: local {times['local'][-1]:.2f} s, s3 {times['s3'][-1]:.2f} s", file=sys.stderr)
    finally:
        server.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "command": f"python benchmarks/prepare_real.py --repeats {args.repeats}",
        "raw_dir": str(raw),
        "raw_found_by": how,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "seconds": times,
        "median_seconds": med,
        "s3_over_local": round(med["s3"] / med["local"], 3),
        "identical_tables_local_vs_s3": hashes["local"] == hashes["s3"],
        "table_sha256": hashes["local"],
        "summary": manifest["summary"],
        "stats": manifest["stats"],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "prepare_real.json").write_text(json.dumps(report, indent=2) + "\n")
    md = [
        "# `ccrs data prepare` on the real ReDial + DBpedia data",
        "",
        f"Regenerate: `{report['command']}` (raw: `{raw}`; {os.cpu_count()} CPUs).",
        "",
        "| target | median wall time (s) | runs |",
        "|---|---:|---|",
        f"| local path | {med['local']:.2f} | {', '.join(f'{t:.2f}' for t in times['local'])} |",
        f"| s3:// (moto_server on 127.0.0.1) | {med['s3']:.2f} | {', '.join(f'{t:.2f}' for t in times['s3'])} |",
        "",
        f"S3 / local: {report['s3_over_local']}x. Identical tables local vs. S3: {report['identical_tables_local_vs_s3']}.",
        "",
        format_summary(manifest),
        "",
    ]
    (RESULTS / "prepare_real.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
