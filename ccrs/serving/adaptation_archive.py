"""Adapted parameters on durable storage, so an adaptation outlives the process that holds it.

    archive = AdaptationArchive("s3://bucket/ccrs/adaptations")     # or a local folder
    archive.save("3f2a…", 7, params)        # <uri>/<checkpoint version>/<shard>/<user id>.npz, atomic
    archive.keys()                          # [("3f2a…", 7), ...]
    archive.load("3f2a…", 7)                # the same tensors, or None

One file per (checkpoint version, user id), in one of :data:`SHARDS` folders per version
(``<shard> = user id mod 4096``, three hex digits): a million users make 4,096 folders of ~244 files,
so a lookup opens one known path (O(1) whatever the user count, measured in
``results/scaling_users.md``) and no folder or S3 prefix grows with the user base. Entries of the
earlier flat layout (``<version>/<user id>.npz``) are still read, listed and deleted. Files are written atomically by :func:`ccrs.storage.write_bytes`
(temp + rename locally, one PUT on S3), so a reader sees the previous adaptation or the new one,
never half of one. The format is NumPy's ``.npz`` read with ``allow_pickle=False``: loading an
archive never runs a pickle. A newer put of the same user overwrites the file (last write wins).
"""

from __future__ import annotations

import io
import re

import numpy as np
import torch
from torch import Tensor

from ccrs import storage

Params = dict[str, Tensor]
_FILE = re.compile(r"^(?P<version>[0-9A-Za-z_.-]+)/(?:[0-9a-f]{3}/)?(?P<user>\d+)\.npz$")
#: Folders per checkpoint version (module docstring).
SHARDS = 4096
_DTYPES = {torch.float32, torch.float64, torch.float16, torch.int64, torch.int32}


class AdaptationArchiveError(RuntimeError):
    """An archived adaptation that cannot be read (names the file)."""


class AdaptationArchive:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.root = storage.resolve(uri)

    def _loc(self, version: str, user_id: int) -> storage.Location:
        if not re.fullmatch(r"[0-9A-Za-z_.-]+", version):
            raise ValueError(f"checkpoint version {version!r}: not a file name")
        return self.root.child(version, f"{int(user_id) % SHARDS:03x}", f"{int(user_id)}.npz")

    def _legacy_loc(self, version: str, user_id: int) -> storage.Location:
        return self.root.child(version, f"{int(user_id)}.npz")

    def save(self, version: str, user_id: int, params: Params) -> None:
        """Write one user's adapted parameters (replacing an older adaptation of that user)."""
        bad = sorted(k for k, v in params.items() if v.dtype not in _DTYPES)
        if bad:
            raise TypeError(f"adapted parameters {bad}: dtype not archivable (float32/64/16, int32/64)")
        buf = io.BytesIO()
        np.savez(buf, **{k: v.detach().cpu().numpy() for k, v in params.items()})
        storage.write_bytes(self._loc(version, user_id), buf.getvalue())

    def load(self, version: str, user_id: int) -> Params | None:
        data, loc = None, None
        for loc in (self._loc(version, user_id), self._legacy_loc(version, user_id)):
            try:
                data = storage.read_bytes(loc)
                break
            except OSError:  # FileNotFoundError locally; S3 says only "path does not exist"
                if storage.exists(loc):
                    raise
        if data is None:
            return None
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                return {k: torch.from_numpy(z[k].copy()) for k in z.files}
        except Exception as exc:  # truncated or foreign file: say which one
            raise AdaptationArchiveError(f"{loc.uri}: not a readable adaptation ({exc})") from None

    def delete(self, version: str, user_id: int) -> None:
        """Remove one archived entry (nothing to do when there is none)."""
        storage.delete(self._loc(version, user_id))
        storage.delete(self._legacy_loc(version, user_id))

    def keys(self) -> list[tuple[str, int]]:
        """Every archived (checkpoint version, user id); stray files (temporaries) are ignored."""
        out = []
        for rel in storage.list_files(self.root):
            m = _FILE.match(rel)
            if m:
                out.append((m["version"], int(m["user"])))
        return out
