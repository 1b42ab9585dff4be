"""End to end on a two-node Ray cluster on 127.0.0.1: `ray job submit` of the pipeline, S3 storage, a killed worker.

Two ``ray start --block`` processes (a head and a second node: two raylets) with the S3 test server's
environment; ``cluster/submit.sh`` submits ``python -m ray_jobs.pipeline --preset tiny --storage-path
s3://...``. While the recommender's meta-training runs, one Ray Train worker process is killed with
SIGKILL after the run's first checkpoint; the job must still succeed, resuming from that checkpoint,
and its report must say so. Only the processes this test started are stopped (SIGTERM to the two
``ray start --block`` processes, which stop their own raylets and workers).

Marked ``cluster``: ``make test`` runs it in its own pytest process, because the session's local
cluster (``ray_cluster``) beside another cluster breaks Ray Train's placement-group cleaner.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port

pytestmark = pytest.mark.cluster  # `make test` runs it in a pytest process of its own (about 3 min)
BUCKET = "ccrs-e2e"


def _env(s3_server: str) -> dict:
    venv_bin = str(Path(sys.executable).parent)  # the job's `python` must be this venv's
    return {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1", "RAY_ADDRESS": ""}


def _descendants(pids: list[int]) -> dict[int, str]:
    """pid → command line of every process below ``pids``."""
    rows = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=True).stdout
    children: dict[int, list[tuple[int, str]]] = {}
    for line in rows.splitlines():
        pid, ppid, args = line.strip().split(None, 2) + [""] * (3 - len(line.strip().split(None, 2)))
        children.setdefault(int(ppid), []).append((int(pid), args))
    out, todo = {}, list(pids)
    while todo:
        for pid, args in children.get(todo.pop(), []):
            out[pid] = args
            todo.append(pid)
    return out


@pytest.fixture()
def two_nodes(s3_server, tmp_path):
    env = _env(s3_server)
    gcs, dash, client = free_port(), free_port(), 23000 + free_port() % 1000  # client port outside 10002–19999
    common = ["--block", "--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
    head = subprocess.Popen(["ray", "start", "--head", "--port", str(gcs), "--num-cpus", "1",
                             "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
                             "--ray-client-server-port", str(client), "--include-dashboard", "true",
                             *_node_ports(), *common],
                            env=env, stdout=open(tmp_path / "head.log", "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    procs = [head]
    try:
        address = f"http://127.0.0.1:{dash}"
        _wait(lambda: subprocess.run(["ray", "job", "list", "--address", address], env=env,
                                     capture_output=True).returncode == 0, 90, "head node dashboard")
        procs.append(subprocess.Popen(["ray", "start", "--address", f"127.0.0.1:{gcs}", "--num-cpus", "2",
                                       *_node_ports(), *common],
                                      env=env, stdout=open(tmp_path / "worker.log", "w"), stderr=subprocess.STDOUT,
                                      start_new_session=True))
        _wait(lambda: _alive_nodes(gcs, env) == 2, 90, "second node")
        yield address, env, procs
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)  # `ray start --block` stops what it started
        for p in reversed(procs):
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                for pid in _descendants([p.pid]):
                    os.kill(pid, signal.SIGKILL)
                p.kill()
        # `ray start` records its GCS here; left behind, later `address="auto"` lookups (Ray Train's
        # placement-group cleaner) chase the dead cluster and leak placement groups.
        current = Path("/tmp/ray/ray_current_cluster")
        if current.is_file() and current.read_text().strip().endswith(f":{gcs}"):
            current.unlink()


def _node_ports() -> list[str]:
    """Free ports for a node's agents. Their defaults are fixed (the dashboard agent's HTTP port is 52365):
    two nodes on one host, or any other Ray cluster on it, would collide, and the head's job agent then
    never comes up ("No available agent to submit job")."""
    return ["--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
            "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port())]


def _alive_nodes(gcs: int, env: dict) -> int:
    out = subprocess.run(["ray", "status", "--address", f"127.0.0.1:{gcs}"], env=env, capture_output=True, text=True)
    active = out.stdout.split("Active:")[-1].split("Pending:")[0] if "Active:" in out.stdout else ""
    return len(re.findall(r"^\s*1 node_", active, re.M))


def _wait(cond, timeout: float, what: str, every: float = 1.0):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def _keys(prefix: str) -> list[str]:
    import boto3

    s3 = boto3.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _registered_checkpoints(run_prefix: str) -> int:
    import boto3
    from botocore.exceptions import ClientError

    try:
        body = boto3.client("s3").get_object(Bucket=BUCKET, Key=run_prefix + "checkpoint_manager_snapshot.json")["Body"]
    except ClientError:
        return 0
    return len(json.loads(body.read()).get("checkpoint_results", []))


def test_ray_job_submit_pipeline_on_two_nodes_with_s3_survives_a_killed_worker(two_nodes, synth_raw, tmp_path):
    import boto3

    address, env, procs = two_nodes
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    cmd = [str(REPO / "cluster" / "submit.sh"), "--address", address, "--no-wait", "--",
           "python", "-m", "ray_jobs.pipeline", "--preset", "tiny", "--storage-path", f"s3://{BUCKET}/ccrs",
           "--raw", str(synth_raw), "--cpus-per-worker", "0.5", "--max-failures", "2", "rec_meta.epochs=30",
           "rec_train.patience=100"]  # no early stop before the kill
    for _ in range(30):  # right after start-up the job agent may not be there yet ("No available agent")
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, timeout=300)
        if out.returncode == 0 or "No available agent" not in out.stderr:
            break
        time.sleep(2)
    assert out.returncode == 0, out.stderr[-3000:]
    (job,) = re.findall(r"(raysubmit_\w+)", out.stdout + out.stderr)[:1]

    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)

    def status() -> str:
        return str(client.get_job_status(job).value)

    # Kill one Ray Train worker of the recommender's meta-training once Train has *registered* a
    # checkpoint: the controller writes its snapshot then. A checkpoint directory in the bucket is not
    # enough (uploaded before the controller takes the report), and a restart would begin from scratch.
    _wait(lambda: _registered_checkpoints("ccrs/runs/rec-meta-fold0/") > 0 or
          status() in ("FAILED", "SUCCEEDED", "STOPPED"), 600, "the first registered checkpoint", every=0.5)
    assert status() == "RUNNING", (f"job ended before a worker could be killed: {status()}; "
                                   f"keys: {_keys('ccrs/runs/')[:20]}; logs: {client.get_job_logs(job)[-2000:]}")
    workers = {pid: a for pid, a in _descendants([p.pid for p in procs]).items() if "RayTrainWorker" in a}
    assert workers, "no Ray Train worker process found"
    victim = max(workers)
    os.kill(victim, signal.SIGKILL)

    _wait(lambda: status() in ("FAILED", "SUCCEEDED", "STOPPED"), 900, "the job to finish", every=2)
    logs = subprocess.run(["ray", "job", "logs", "--address", address, job], env=env, capture_output=True,
                          text=True).stdout
    assert status() == "SUCCEEDED", logs[-4000:]
    assert "ndcg@10" in logs.lower() and "ppl" in logs.lower()  # the metrics reach `ray job logs`
    keys = set(_keys("ccrs/"))
    for key in ("prepared/manifest.json", "rec/plain/best.pt", "runs/rec-meta-fold0/eval/best.pt",
                "gen/plain/best.pt", "runs/dial-meta-fold0/eval/best.pt", "report/report.json", "report/report.md"):
        assert f"ccrs/{key}" in keys, key
    report = json.loads(boto3.client("s3").get_object(Bucket=BUCKET, Key="ccrs/report/report.json")["Body"].read())
    assert report["restarts"]["recommender"], report["restarts"]  # resumed from its checkpoint after the kill
    md = boto3.client("s3").get_object(Bucket=BUCKET, Key="ccrs/report/report.md")["Body"].read().decode()
    assert "recommender: restarted, resumed from the checkpoint" in md
