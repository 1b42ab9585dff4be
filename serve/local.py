"""``ccrs serve``: the application on a local Ray (or the cluster ``RAY_ADDRESS`` names), until Ctrl-C.

    ccrs serve --rec-ckpt runs/demo/runs/rec-meta-fold0/eval/best.pt \\
               --gen-ckpt runs/demo/runs/dial-meta-fold0/eval/best.pt --data runs/demo/prepared
"""

from __future__ import annotations

import os
import time


def serve_forever(app_args: dict, host: str = "127.0.0.1", port: int = 8000, blocking: bool = True) -> str:
    """Start Serve on ``host:port`` with :func:`serve.app.build_app` (``app_args``); returns the URL."""
    import ray
    from ray import serve

    from serve.app import build_app

    for key in ("rec_ckpt", "gen_ckpt", "data", "adaptations"):  # paths given on the command line are relative to the cwd
        uri = app_args.get(key) or ""
        if uri and "://" not in uri:
            app_args = {**app_args, key: os.path.abspath(uri)}
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS", "local"), logging_level="WARNING")
    serve.start(http_options={"host": host, "port": port})
    try:
        serve.run(build_app(app_args), name="ccrs", route_prefix="/")
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\n" + "\n".join(deployment_errors("ccrs"))) from None
    url = f"http://{host}:{port}/"
    print(f"ccrs serving at {url}  (chat page: {url}, API schema: {url}docs; Ctrl-C stops)", flush=True)
    if blocking:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            serve.shutdown()
    return url


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
