"""``ccrs data prepare --engine ray`` (Ray Data) builds the single-process engine's tables, values and counts."""

import json
import shutil

import pyarrow.parquet as pq
import pytest

from ccrs import storage
from ccrs.data.dataset import PreparedDataset
from ccrs.data.prepare import prepare
from ccrs.data.prepare_ray import input_splits, prepare_on_ray, split_lines
from ccrs.data.raw import RawDataError


def _same(local: str, ray_out: str) -> None:
    a, b = (json.loads(storage.read_bytes(storage.resolve(u).child("manifest.json"))) for u in (local, ray_out))
    assert a["fingerprint"] == b["fingerprint"] and b["engine"] == "ray"
    assert a["stats"] == b["stats"] and a["summary"] == b["summary"]
    assert {k: v["rows"] for k, v in a["tables"].items()} == {k: v["rows"] for k, v in b["tables"].items()}
    da, db = PreparedDataset.open(local), PreparedDataset.open(ray_out)
    for name in a["tables"]:
        ta, tb = da.table(name), db.table(name)
        assert ta.schema == tb.schema and ta.equals(tb), name


def test_real_data_gives_the_same_tables(shared_raw, tmp_path, ray_cluster):
    prepare(shared_raw, str(tmp_path / "local"), progress=False)
    result = prepare_on_ray(shared_raw, str(tmp_path / "ray"), progress=False)
    assert not result.skipped and result.manifest["summary"]["conversations"] == 6249
    _same(str(tmp_path / "local"), str(tmp_path / "ray"))
    assert prepare_on_ray(shared_raw, str(tmp_path / "ray"), progress=False).skipped  # up to date: nothing rebuilt


@pytest.fixture
def messy_raw(synth_raw, tmp_path):
    """The synthetic raw set, its train file duplicated into a second file with one conversation changed
    (a duplicate id: the first file wins) and a bad line appended."""
    raw = tmp_path / "raw"
    shutil.copytree(synth_raw, raw)
    train = raw / "dialogs" / "train_data.jsonl"
    lines = train.read_text().splitlines(keepends=True)
    dup = json.loads(lines[3])
    dup["movieMentions"] = {"999999": "A Name Only Here (2001)"}
    (raw / "dialogs" / "train_extra.jsonl").write_text(json.dumps(dup) + "\n" + "\n" + '{"conversationId": 1}\n')
    return raw


def test_small_splits_duplicates_and_bad_lines(messy_raw, tmp_path, ray_cluster):
    with pytest.raises(RawDataError) as local_err:
        prepare(messy_raw, str(tmp_path / "local"), progress=False)
    with pytest.raises(RawDataError) as ray_err:
        prepare_on_ray(messy_raw, str(tmp_path / "ray"), progress=False, split_mb=0.004)
    assert str(ray_err.value) == str(local_err.value) and "train_extra.jsonl:3:" in str(ray_err.value)
    assert not (tmp_path / "ray").exists() or not (tmp_path / "ray" / "manifest.json").exists()  # nothing published
    prepare(messy_raw, str(tmp_path / "local"), skip_bad_lines=True, progress=False)
    # 4 KB splits: lines cut across split boundaries, many tasks
    n_splits = len(input_splits(sorted((messy_raw / "dialogs").glob("*.jsonl")), 4096))
    assert n_splits > 10
    prepare_on_ray(messy_raw, str(tmp_path / "ray"), skip_bad_lines=True, progress=False, split_mb=4096 / 2**20)
    _same(str(tmp_path / "local"), str(tmp_path / "ray"))


def test_every_line_belongs_to_exactly_one_split(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [f'{{"i": {i}, "pad": "{"x" * (i * 37 % 300)}"}}\n'.encode() for i in range(200)]
    path.write_bytes(b"".join(lines))
    for size in (1, 97, 4096, 10**6):
        got = [raw for s in input_splits([path], size) for _, raw in split_lines(s)]
        assert got == lines, size


def test_s3_output(synth_raw, s3_server, ray_cluster, tmp_path):
    prepare(synth_raw, str(tmp_path / "local"), progress=False)
    prepare_on_ray(synth_raw, "s3://prepare-ray-test/ds", progress=False, split_mb=0.01)
    _same(str(tmp_path / "local"), "s3://prepare-ray-test/ds")
    assert pq.read_table(storage.resolve("s3://prepare-ray-test/ds").child("turns.parquet").uri
                         .replace("s3://", ""), filesystem=storage.s3_filesystem()).num_rows > 0
