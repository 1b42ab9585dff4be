"""Prepared data on a real S3-compatible server (moto_server on 127.0.0.1)."""

import boto3

from ccrs import storage
from ccrs.data.dataset import PreparedDataset
from ccrs.data.prepare import prepare


def test_s3_round_trip_gives_identical_tables(synth_raw, tmp_path, s3_server):
    local = prepare(synth_raw, str(tmp_path / "local"), progress=False)
    remote = prepare(synth_raw, "s3://ccrs-test/datasets/synth", progress=False)  # bucket created on demand
    assert {n: e["sha256"] for n, e in remote.manifest["tables"].items()} == {
        n: e["sha256"] for n, e in local.manifest["tables"].items()
    }
    ds = PreparedDataset.open("s3://ccrs-test/datasets/synth", verify=True)
    assert ds.table("rec_samples").equals(PreparedDataset.open(str(tmp_path / "local")).table("rec_samples"))
    # (pyarrow may leave a zero-byte "datasets/synth/" directory marker; it is not data)
    keys = sorted(
        o["Key"] for o in boto3.client("s3", endpoint_url=s3_server).list_objects_v2(Bucket="ccrs-test")["Contents"]
        if not o["Key"].endswith("/")
    )
    assert keys == sorted(f"datasets/synth/{f}" for f in ["manifest.json", *(f"{n}.parquet" for n in local.manifest["tables"])])
    # unchanged inputs: the published dataset is reused
    assert prepare(synth_raw, "s3://ccrs-test/datasets/synth", progress=False).skipped


def test_storage_primitives_on_s3(s3_server):
    storage.ensure_bucket("s3://prims")
    loc = storage.resolve("s3://prims/a/b.txt")
    storage.write_bytes(loc, b"hello")
    assert storage.read_bytes(loc) == b"hello" and storage.exists(loc)
    dst = storage.resolve("s3://prims/c/d.txt")
    storage.move(loc, dst)
    assert not storage.exists(loc) and storage.read_bytes(dst) == b"hello"
    assert storage.list_files(storage.resolve("s3://prims")) == ["c/d.txt"]
    storage.delete(dst)
    assert not storage.exists(dst)
