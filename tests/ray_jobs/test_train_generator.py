"""The generator driver on Ray Train: 2 workers on the local cluster, a killed run resumes, outputs load."""

import json

import pytest

from ccrs.models.generator import load_generator
from ray_jobs import train_generator as driver
from tests.conftest import TINY_GEN


def test_two_workers_resume_after_a_fault_and_stay_identical(synth_prepared, synth_rec_ckpt, ray_cluster, tmp_path):
    marker = tmp_path / "fault"
    argv = ["--data", synth_prepared, "--rec-ckpt", synth_rec_ckpt, "--storage-path", str(tmp_path),
            "--run-name", "dial", "--num-workers", "2", "--cpus-per-worker", "0.5", "-q", *TINY_GEN,
            "dial_meta.meta_batch_size=4", "dial_meta.epochs=3", "dial_meta.outer_lr=0.003", "gen_train.patience=5"]
    with pytest.raises(Exception, match="injected fault"):
        driver.main([*argv, "--inject-fault-after-epoch", "1", "--fault-marker", str(marker)])
    assert marker.exists() and not (tmp_path / "dial" / "eval").exists()
    assert driver.main(argv) == 0  # the same command resumes from the epoch-1 checkpoint
    result = json.loads((tmp_path / "dial" / "eval" / "result.json").read_text())["result"]
    assert result["resumed_at"] == [1] and [h["epoch"] for h in result["history"]] == [1, 2, 3]
    assert result["replicas_identical"] and len(result["replica_checksums"]) == 2
    losses = [h["query_loss"] for h in result["history"]]
    assert losses[-1] < losses[0]
    assert (tmp_path / "dial" / "eval" / "test_responses.jsonl").is_file()
    model, cfg, tok, payload = load_generator(str(tmp_path / "dial" / "eval" / "best.pt"))
    assert payload["meta"] and payload["rec_checkpoint"] == synth_rec_ckpt and cfg.generator.variant == "ccrs"
