"""Reading a prepared dataset back, and selecting a split by name.

    ds = PreparedDataset.open("runs/demo/prepared")          # or "s3://bucket/prefix"
    ds.table("rec_samples")                                   # pyarrow.Table
    ds.conversation_splits("user", fold=3)                    # {conversation_id: train|valid|test}
    ds.conversation_parts()                                   # {conversation_id: support|query}
"""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa

from ccrs import storage
from ccrs.data import splits
from ccrs.data.schema import SCHEMA_VERSION, TABLES

MANIFEST = "manifest.json"


class DatasetError(RuntimeError):
    """The URI holds no complete prepared dataset of a supported schema version."""


def user_splits(tasks: pa.Table, fold: int, n_folds: int) -> dict[int, str]:
    """``{user_id: train|valid|test}`` for test fold ``fold`` of the ``user`` split."""
    out = {}
    for user, f in zip(tasks.column("user_id").to_pylist(), tasks.column("fold").to_pylist(), strict=True):
        out[user] = "train" if f < 0 else splits.fold_role(f, fold, n_folds)
    return out


def conversation_parts(tasks: pa.Table) -> dict[str, str]:
    parts = {}
    for sup, qry in zip(
        tasks.column("support_conversation_ids").to_pylist(),
        tasks.column("query_conversation_ids").to_pylist(),
        strict=True,
    ):
        parts.update({c: "support" for c in sup})
        parts.update({c: "query" for c in qry})
    return parts


def conversation_splits(
    conversations: pa.Table, tasks: pa.Table, split: str, fold: int = 0, n_folds: int = 10
) -> dict[str, str]:
    """``{conversation_id: train|valid|test}``; for ``user``, a conversation follows its seeker."""
    if split not in splits.SPLITS:
        raise ValueError(f"split must be one of {splits.SPLITS}, got {split!r}")
    ids = conversations.column("conversation_id").to_pylist()
    if split == "standard":
        return dict(zip(ids, conversations.column("standard_split").to_pylist(), strict=True))
    by_user = user_splits(tasks, fold, n_folds)
    return {c: by_user[u] for c, u in zip(ids, conversations.column("seeker_id").to_pylist(), strict=True)}


class PreparedDataset:
    def __init__(self, location: storage.Location, manifest: dict) -> None:
        self.location = location
        self.manifest = manifest
        self._tables: dict[str, pa.Table] = {}

    @classmethod
    def open(cls, uri: str, verify: bool = False) -> PreparedDataset:
        loc = storage.resolve(uri)
        mloc = loc.child(MANIFEST)
        if not storage.exists(mloc):
            hint = " (tables present but no manifest: an interrupted prepare; re-run it)" if storage.list_files(loc) else ""
            raise DatasetError(f"{loc.uri}: no {MANIFEST}, so no published dataset here{hint}")
        manifest = json.loads(storage.read_bytes(mloc))
        if manifest.get("schema_version") != SCHEMA_VERSION:
            raise DatasetError(
                f"{loc.uri}: schema version {manifest.get('schema_version')} but this ccrs reads {SCHEMA_VERSION}; "
                "re-run `ccrs data prepare`"
            )
        ds = cls(loc, manifest)
        if verify:
            ds.verify()
        return ds

    @property
    def n_folds(self) -> int:
        return int(self.manifest["config"]["n_folds"])

    def table(self, name: str) -> pa.Table:
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r}; tables: {', '.join(TABLES)}")
        if name not in self._tables:
            entry = self.manifest["tables"][name]
            self._tables[name] = storage.read_parquet(self.location.child(entry["file"]))
        return self._tables[name]

    def verify(self) -> None:
        """Check every table's bytes against the manifest's sha256."""
        for entry in self.manifest["tables"].values():
            data = storage.read_bytes(self.location.child(entry["file"]))
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise DatasetError(f"{self.location.uri}/{entry['file']}: content does not match {MANIFEST}")

    def conversation_splits(self, split: str = "user", fold: int | None = None) -> dict[str, str]:
        fold = self.manifest["config"]["fold"] if fold is None else fold
        return conversation_splits(self.table("conversations"), self.table("tasks"), split, fold, self.n_folds)

    def user_splits(self, fold: int | None = None) -> dict[int, str]:
        fold = self.manifest["config"]["fold"] if fold is None else fold
        return user_splits(self.table("tasks"), fold, self.n_folds)

    def conversation_parts(self) -> dict[str, str]:
        return conversation_parts(self.table("tasks"))
