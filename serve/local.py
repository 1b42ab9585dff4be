"""``ccrs serve``: the application on a local Ray (or the cluster ``RAY_ADDRESS`` names), until Ctrl-C
or SIGTERM.

    ccrs serve --rec-ckpt runs/demo/runs/rec-meta-fold0/eval/best.pt \\
               --gen-ckpt runs/demo/runs/dial-meta-fold0/eval/best.pt --data runs/demo/prepared

Stopping: SIGTERM exits 0 and Ctrl-C (SIGINT) exits 130, each within a few seconds and with one line
(``ccrs serve: stopped``). On a local Ray that ``ccrs serve`` started itself, the whole instance goes
down at once: a graceful ``serve.shutdown()`` would wait for the AdaptationStore's long poll
(:data:`serve.deployments.POLL_S`) and then report the controller ``killed by ray.kill``. On a cluster
(``RAY_ADDRESS``) the application is deleted and the cluster stays up.

Logging: replicas log at ``log_level`` (INFO by default); the per-call access lines (every request,
and the store's 20 s long poll of each Recommender replica) appear at ``DEBUG`` only, so an idle
server is quiet.
"""

from __future__ import annotations

import os
import signal
import threading

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def logging_config(log_level: str = "INFO") -> dict:
    """Serve's ``logging_config`` for ``log_level``: access lines only at DEBUG."""
    if log_level not in LOG_LEVELS:
        raise ValueError(f"log level {log_level!r}: choose one of {list(LOG_LEVELS)}")
    return {"log_level": log_level, "enable_access_log": log_level == "DEBUG"}


def serve_forever(app_args: dict, host: str = "127.0.0.1", port: int = 8000, blocking: bool = True,
                  log_level: str = "INFO") -> str | int:
    """Start Serve on ``host:port`` with :func:`serve.app.build_app` (``app_args``).

    Returns the URL when ``blocking`` is False; otherwise serves until SIGTERM (returns 0) or SIGINT
    (returns 130), the exit code ``ccrs serve`` ends with."""
    import ray
    from ray import serve

    from serve.app import build_app

    for key in ("rec_ckpt", "gen_ckpt", "data", "adaptations"):  # paths given on the command line are relative to the cwd
        uri = app_args.get(key) or ""
        if uri and "://" not in uri:
            app_args = {**app_args, key: os.path.abspath(uri)}
    started_here = False
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS", "local")
        started_here = address == "local"
        ray.init(address=address, logging_level="WARNING")
    serve.start(http_options={"host": host, "port": port})
    try:
        serve.run(build_app(app_args), name="ccrs", route_prefix="/", logging_config=logging_config(log_level))
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\n" + "\n".join(deployment_errors("ccrs"))) from None
    url = f"http://{host}:{port}/"
    print(f"ccrs serving at {url}  (chat page: {url}, API schema: {url}docs; Ctrl-C stops)", flush=True)
    if not blocking:
        return url
    signum = _wait_for_stop()
    if started_here:
        # The instance is ours: end it whole. Its actors go with it, so nothing is left to report.
        ray.shutdown()
    else:
        serve.delete("ccrs")
        ray.shutdown()
    print(f"ccrs serve: stopped ({signal.Signals(signum).name})", flush=True)
    return 130 if signum == signal.SIGINT else 0


def _wait_for_stop() -> int:
    """Block until SIGTERM or SIGINT; returns which.

    Ray's core worker installs a failure-signal handler that dumps a C++ stack on SIGTERM (after
    ``ray.init`` set a Python one), so both handlers are (re)installed here, after Ray started."""
    got: list[int] = []
    stop = threading.Event()

    def handler(signum, frame):
        got.append(signum)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(3600):
            pass
    finally:
        # a second signal while stopping is ignored: the shutdown is already under way
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
    return got[0]


def deployment_errors(app_name: str) -> list[str]:
    """``"<deployment>: <message>"`` for every unhealthy deployment of ``app_name`` (why a start failed)."""
    from ray import serve

    app = serve.status().applications.get(app_name)
    if app is None:
        return []
    out = []
    for name, d in app.deployments.items():
        if d.status != "HEALTHY" and d.message:  # the message ends with the replica's exception
            lines = [ln for ln in d.message.splitlines() if ln.strip()]
            out.append(f"{name}: {lines[-1].strip()}")
    return out
