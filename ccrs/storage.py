"""Local paths and ``s3://bucket/prefix`` URIs behind one small API over :mod:`pyarrow.fs`.

S3 settings come from the usual AWS environment variables only (never from files in the repo):
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION`` /
``AWS_REGION``, and the endpoint from ``CCRS_S3_ENDPOINT`` (override) or ``AWS_ENDPOINT_URL``
(e.g. ``http://127.0.0.1:9000`` for a local S3-compatible server). boto3 is used only where pyarrow
has no equivalent: creating a bucket.

Writes are atomic per object: local files go to a temporary name in the same folder and are renamed;
an S3 PUT is atomic by itself.
"""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def s3_endpoint() -> str | None:
    return os.environ.get("CCRS_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL") or None


def _region() -> str:
    return os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"


def s3_filesystem() -> pafs.S3FileSystem:
    endpoint = s3_endpoint()
    kwargs: dict = {"region": _region()}
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
        # Path-style addressing: local/S3-compatible servers have no per-bucket DNS names.
        kwargs["force_virtual_addressing"] = False
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        kwargs["access_key"] = os.environ["AWS_ACCESS_KEY_ID"]
        kwargs["secret_key"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        if os.environ.get("AWS_SESSION_TOKEN"):
            kwargs["session_token"] = os.environ["AWS_SESSION_TOKEN"]
    return pafs.S3FileSystem(**kwargs)


@dataclass(frozen=True)
class Location:
    """A resolved URI: the filesystem and the path inside it (``bucket/key`` for S3)."""

    uri: str
    fs: pafs.FileSystem
    path: str

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    def child(self, *parts: str) -> Location:
        sep_uri = self.uri.rstrip("/")
        sep_path = self.path.rstrip("/")
        tail = "/".join(p.strip("/") for p in parts)
        return Location(f"{sep_uri}/{tail}", self.fs, f"{sep_path}/{tail}")


def resolve(uri: str | os.PathLike) -> Location:
    """``s3://bucket/prefix`` → S3; anything else → a local path (made absolute)."""
    text = os.fspath(uri)
    if text.startswith("s3://"):
        rest = text[len("s3://") :].strip("/")
        if not rest:
            raise ValueError(f"{text!r}: an S3 URI needs a bucket, e.g. s3://my-bucket/prefix")
        return Location("s3://" + rest, s3_filesystem(), rest)
    if "://" in text and not text.startswith("file://"):
        raise ValueError(f"{text!r}: unsupported URI scheme (use a local path or s3://bucket/prefix)")
    if text.startswith("file://"):
        text = text[len("file://") :]
    path = os.path.abspath(text)
    return Location(path, pafs.LocalFileSystem(), path)


def ensure_bucket(uri: str) -> None:
    """Create the S3 bucket of ``uri`` if it does not exist (no-op for local paths)."""
    loc = resolve(uri)
    if not loc.is_s3:
        return
    import boto3
    from botocore.exceptions import ClientError

    bucket = loc.path.split("/", 1)[0]
    client = boto3.client("s3", endpoint_url=s3_endpoint(), region_name=_region())
    try:
        client.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code not in {"404", "NoSuchBucket", "NotFound"}:
            raise
    kwargs: dict = {"Bucket": bucket}
    if _region() != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": _region()}
    client.create_bucket(**kwargs)


def exists(loc: Location) -> bool:
    return loc.fs.get_file_info(loc.path).type != pafs.FileType.NotFound


def is_dir(loc: Location) -> bool:
    return loc.fs.get_file_info(loc.path).type == pafs.FileType.Directory


def makedirs(loc: Location) -> None:
    if not loc.is_s3:
        loc.fs.create_dir(loc.path, recursive=True)


def read_bytes(loc: Location) -> bytes:
    with loc.fs.open_input_stream(loc.path) as f:
        return f.read()


def write_bytes(loc: Location, data: bytes) -> None:
    """Write ``data`` at ``loc`` atomically (temp + rename locally; a single PUT on S3)."""
    if loc.is_s3:
        with loc.fs.open_output_stream(loc.path) as f:
            f.write(data)
        return
    parent = os.path.dirname(loc.path)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(loc.path)}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, loc.path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def delete(loc: Location, missing_ok: bool = True) -> None:
    info = loc.fs.get_file_info(loc.path)
    if info.type == pafs.FileType.NotFound:
        if not missing_ok:
            raise FileNotFoundError(loc.uri)
        return
    if info.type == pafs.FileType.Directory:
        loc.fs.delete_dir(loc.path)
    else:
        loc.fs.delete_file(loc.path)


def move(src: Location, dst: Location) -> None:
    """Move one file (a rename locally; copy + delete on S3)."""
    if src.is_s3:
        src.fs.copy_file(src.path, dst.path)
        src.fs.delete_file(src.path)
    else:
        os.makedirs(os.path.dirname(dst.path), exist_ok=True)
        os.replace(src.path, dst.path)


def list_files(loc: Location) -> list[str]:
    """Paths (relative to ``loc``) of every file under ``loc``, sorted."""
    if not exists(loc):
        return []
    infos = loc.fs.get_file_info(pafs.FileSelector(loc.path, recursive=True))
    base = loc.path.rstrip("/") + "/"
    return sorted(i.path[len(base) :] for i in infos if i.type == pafs.FileType.File)


def table_to_parquet_bytes(table: pa.Table) -> bytes:
    """Deterministic Parquet bytes: same table and pyarrow version → same bytes."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", write_statistics=True, store_schema=True)
    return sink.getvalue()


def read_parquet(loc: Location) -> pa.Table:
    return pq.read_table(io.BytesIO(read_bytes(loc)))
