"""The archive adaptations outlive a store process with: exact round trips, no pickle, S3 too."""

import numpy as np
import pytest
import torch

from ccrs import storage
from ccrs.serving.adaptation_archive import AdaptationArchive, AdaptationArchiveError


def _params(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"user_emb.weight": torch.randn(5, 8, generator=g), "item_bias": torch.randn(30, generator=g)}


def _check_round_trip(uri: str) -> None:
    archive = AdaptationArchive(uri)
    assert archive.keys() == [] and archive.load("v1", 7) is None
    archive.save("v1", 7, _params(0))
    archive.save("v1", 8, _params(1))
    archive.save("v2", 7, _params(2))
    archive.save("v1", 7, _params(3))  # a newer adaptation of the same user replaces the old one
    assert sorted(archive.keys()) == [("v1", 7), ("v1", 8), ("v2", 7)]
    got = AdaptationArchive(uri).load("v1", 7)  # another process reads what this one wrote
    want = _params(3)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k])


def test_round_trip_local(tmp_path):
    _check_round_trip(str(tmp_path / "adaptations"))


def test_round_trip_s3(s3_server):
    storage.ensure_bucket("s3://adaptations-test")
    _check_round_trip("s3://adaptations-test/serve/adaptations")


def test_stray_files_are_not_keys_and_a_bad_file_is_named(tmp_path):
    archive = AdaptationArchive(str(tmp_path))
    archive.save("v1", 1, _params(0))
    (tmp_path / "v1" / ".2.npz.tmp-1234").write_bytes(b"half a write")  # a crashed writer's temporary
    (tmp_path / "v1" / "3.npz").write_bytes(b"not an npz")
    assert sorted(archive.keys()) == [("v1", 1), ("v1", 3)]
    with pytest.raises(AdaptationArchiveError, match=r"3\.npz"):
        archive.load("v1", 3)


def test_a_pickled_array_is_never_loaded(tmp_path):
    (tmp_path / "v1").mkdir()
    np.savez(tmp_path / "v1" / "4.npz", w=np.array([{"a": 1}], dtype=object))  # needs a pickle to read
    with pytest.raises(AdaptationArchiveError, match="pickle"):
        AdaptationArchive(str(tmp_path)).load("v1", 4)


def test_bad_versions_and_dtypes_are_refused(tmp_path):
    archive = AdaptationArchive(str(tmp_path))
    with pytest.raises(ValueError, match="version"):
        archive.save("../x", 1, _params(0))
    with pytest.raises(TypeError, match="dtype"):
        archive.save("v1", 1, {"w": torch.zeros(2, dtype=torch.bfloat16)})
    assert archive.keys() == []


def test_users_are_sharded_and_the_flat_layout_is_still_read(tmp_path):
    archive = AdaptationArchive(str(tmp_path))
    archive.save("v1", 4097, _params(0))  # 4097 mod 4096 = 1
    assert (tmp_path / "v1" / "001" / "4097.npz").is_file()
    legacy = tmp_path / "v1" / "12.npz"  # written by an earlier release: <version>/<user>.npz
    archive.save("v1", 12, _params(1))
    (tmp_path / "v1" / "00c" / "12.npz").rename(legacy)
    assert sorted(archive.keys()) == [("v1", 12), ("v1", 4097)]
    assert torch.equal(archive.load("v1", 12)["item_bias"], _params(1)["item_bias"])
    archive.delete("v1", 12)
    assert not legacy.exists() and archive.load("v1", 12) is None
