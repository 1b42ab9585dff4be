"""Checkpoints as plain dicts of tensors and Python scalars: loadable with ``weights_only=True``.

Never unpickle arbitrary objects: a checkpoint holds ``state_dict`` tensors, the config as a plain
dict, and metadata of ints/strings/lists, which the safe loader accepts.
"""

from __future__ import annotations

import io
from typing import Any

import torch

from ccrs import storage


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated or not a ccrs checkpoint."""


def save_checkpoint(uri: str | storage.Location, payload: dict[str, Any]) -> None:
    loc = storage.resolve(uri) if isinstance(uri, str) else uri
    buf = io.BytesIO()
    torch.save(payload, buf)
    storage.write_bytes(loc, buf.getvalue())  # atomic (temp + rename / single PUT)


def load_checkpoint(uri: str | storage.Location, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    loc = storage.resolve(uri) if isinstance(uri, str) else uri
    if not storage.exists(loc):
        raise CheckpointError(f"{loc.uri}: no checkpoint there")
    try:
        payload = torch.load(io.BytesIO(storage.read_bytes(loc)), map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, ...
        raise CheckpointError(f"{loc.uri}: not a readable ccrs checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(f"{loc.uri}: not a ccrs checkpoint (no 'format' key)")
    return payload
