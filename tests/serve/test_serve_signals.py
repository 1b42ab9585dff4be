"""``ccrs serve`` as a user runs it: a process of its own (its own local Ray), stopped by a signal.

SIGTERM (what ``kill``, systemd and Kubernetes send) must exit 0 and Ctrl-C (SIGINT to the terminal's
process group) 130, within seconds, with one closing line and no stack dump or error line; an idle
server must stay quiet (no access line for the store's 20 s long poll).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
NOISE = ("SIGTERM received", "Traceback", "Aborted", "ERROR", "failed", "logging.cc", "keys_after")


def _start(args: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ccrs", "serve", *args, "--port", str(port)], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 150
    while "ccrs serving at" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"ccrs serve did not start (rc {proc.poll()}):\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)
    return proc, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("signum, to_group, idle_s, expected_rc", [
    (signal.SIGTERM, False, 22.0, 0),   # idle past one long poll (POLL_S = 20 s) before the signal
    (signal.SIGINT, True, 0.0, 130),   # Ctrl-C: the terminal signals the whole foreground group
], ids=["sigterm", "ctrl-c"])
def test_serve_stops_cleanly(synth_prepared, synth_rec_ckpt, tiny_gen_ckpt, tmp_path, signum, to_group, idle_s,
                             expected_rc):
    log = tmp_path / "serve.log"
    proc, url = _start(["--rec-ckpt", synth_rec_ckpt, "--gen-ckpt", tiny_gen_ckpt, "--data", synth_prepared,
                        "--adaptations", str(tmp_path / "adaptations")], log)
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=30) as r:
            assert r.status == 200
        time.sleep(idle_s)
        started_stop = time.monotonic()
        if to_group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        rc = proc.wait(timeout=60)
        took = time.monotonic() - started_stop
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text(errors="replace")
    tail = text[text.index("ccrs serving at"):]
    assert rc == expected_rc, text[-3000:]
    assert took < 30, f"stopping took {took:.1f} s"
    assert tail.rstrip().splitlines()[-1] == f"ccrs serve: stopped ({signal.Signals(signum).name})", tail
    noise = [ln for ln in tail.splitlines() if any(n in ln for n in NOISE)]
    assert not noise, "\n".join(noise)
