"""Training curves where Ray users look for them: TensorBoard event files, and MLflow when asked.

    curves = CurveWriter("runs/demo/rec/plain/tensorboard")          # or s3://bucket/.../tensorboard
    curves.log(epoch, {"train/loss": 5.9, "valid/ndcg@10": 0.11})
    curves.close()
    # then: pip install tensorboard && tensorboard --logdir runs/demo

Every plain run writes ``<out>/tensorboard/``; every Ray Train run ``<storage-path>/<run-name>/
tensorboard/`` (rank 0 only); Ray Tune writes its own per trial (Ray's ``TBXLoggerCallback``, on by
default). The event files are written with ``tensorboardX`` (a Ray Tune dependency) into a local
folder; for an ``s3://`` target they are uploaded after every epoch (a few KB), so a run on a cluster
leaves its curves beside its checkpoints. ``mlflow``: any object with ``log_metrics(dict, step=)``
(the module Ray's ``setup_mlflow`` returns on rank 0). Neither accepts ``@`` in a name, so both
show ``ndcg@10`` as ``ndcg_at_10``.
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

from ccrs import storage

#: The folder name of the event files under a run's output.
TENSORBOARD_DIR = "tensorboard"


def curve_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a (nested) metrics dict, flattened to ``prefix/key`` names; sample counts
    are not curves."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        name = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, dict):
            out |= curve_metrics(v, name)
        elif (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
              and k not in ("count", "tokens", "responses")):
            out[name] = float(v)
    return out


class CurveWriter:
    def __init__(self, uri: str, mlflow: Any = None) -> None:
        from tensorboardX import SummaryWriter

        self.target = storage.resolve(uri)
        self._staging = tempfile.mkdtemp(prefix="ccrs-tb-") if self.target.is_s3 else None
        local = self._staging or self.target.path
        os.makedirs(local, exist_ok=True)
        self._writer = SummaryWriter(logdir=local, flush_secs=3600)  # flushed by log(), once per epoch
        self.mlflow = mlflow

    def log(self, step: int, values: dict[str, float]) -> None:
        values = {tag_name(k): v for k, v in values.items()}
        for name, value in values.items():
            self._writer.add_scalar(name, value, step)
        self._writer.flush()
        self._upload()
        if self.mlflow is not None and values:
            self.mlflow.log_metrics(values, step=step)

    def _upload(self) -> None:
        if self._staging:
            for f in Path(self._staging).iterdir():
                storage.write_bytes(self.target.child(f.name), f.read_bytes())

    def close(self) -> None:
        self._writer.close()
        self._upload()


def tag_name(name: str) -> str:
    """A curve's name as TensorBoard and MLflow both accept it (``valid/ndcg@10`` → ``valid/ndcg_at_10``)."""
    return name.replace("@", "_at_")


def read_scalars(uri: str) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files under ``uri``: ``{tag: [(step, value), ...]}`` in file order
    (a reader for tests and reports; TensorBoard itself is not a dependency)."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    root = storage.resolve(uri)
    for name in storage.list_files(root):
        if "tfevents" not in name:
            continue
        data, pos = storage.read_bytes(root.child(name)), 0
        while pos + 12 <= len(data):  # TFRecord: length (8), its crc (4), payload, payload crc (4)
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((int(event.step), float(v.simple_value)))
    return out
