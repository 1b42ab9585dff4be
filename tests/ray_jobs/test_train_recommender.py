"""The meta-training driver on Ray Train: local mode, 2 workers on a local cluster, resume, S3 storage."""

import json

import boto3
import pytest
import torch

from ccrs.train.curves import read_scalars
from ray_jobs import train_recommender as driver

TINY = ["recommender.entity_dim=16", "recommender.user_dim=8", "rec_meta.meta_batch_size=4", "-q"]


def _argv(prepared, storage, name, workers, epochs=2, *extra):
    return ["--data", prepared, "--storage-path", storage, "--run-name", name, "--num-workers", str(workers),
            "--cpus-per-worker", "0.5", *extra, *TINY, f"rec_meta.epochs={epochs}"]


def _result(storage, name):
    return json.loads((storage / name / "eval" / "result.json").read_text())["result"]


def test_local_mode_runs_the_loop_in_process(synth_prepared, tmp_path, ray_cluster):
    mlflow = pytest.importorskip("mlflow")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert driver.main(_argv(synth_prepared, str(tmp_path), "local", 0, 1, "--mlflow-tracking-uri", tracking)) == 0
    # the curves: TensorBoard files beside the run, and the same numbers in MLflow (Ray's setup_mlflow)
    curves = read_scalars(str(tmp_path / "local" / "tensorboard"))
    assert [s for s, _ in curves["valid/all/ndcg_at_10"]] == [0, 1] and [s for s, _ in curves["train/query_loss"]] == [1]
    client = mlflow.tracking.MlflowClient(tracking)
    (run,) = client.search_runs([client.get_experiment_by_name("local").experiment_id])
    history = client.get_metric_history(run.info.run_id, "valid/all/ndcg_at_10")
    assert [(m.step, round(m.value, 5)) for m in history] == [(s, round(v, 5)) for s, v in curves["valid/all/ndcg_at_10"]]
    assert run.data.params["rec_meta.meta_batch_size"] == "4"
    result = _result(tmp_path, "local")
    assert result["variant"] == "ccrs_meta" and result["epochs_run"] == 1
    assert (tmp_path / "local" / "eval" / "test_predictions.parquet").is_file()
    ckpt = torch.load(tmp_path / "local" / "eval" / "best.pt", weights_only=True)
    assert ckpt["meta"] and ckpt["format"] == "ccrs.recommender/1"


def test_two_workers_on_s3_stay_identical_and_learn(synth_prepared, ray_cluster, s3_server, tmp_path):
    storage = "s3://ccrs-test-runs/meta"
    # Meta-SGD on: its learned inner rates are all-reduced like the model (and in the checksum);
    # row-sparse tables: their touched rows are all-reduced apart from the dense gradient (allreduce_row_gradients)
    assert driver.main(_argv(synth_prepared, storage, "two", 2, 3, "rec_meta.learn_inner_lr=true",
                             "rec_meta.meta_sgd_lr=0.05", "rec_meta.embedding_gradients=row_sparse")) == 0
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="ccrs-test-runs", Prefix="meta/two/")["Contents"]]
    assert any("checkpoint" in k and k.endswith("state.pt") for k in keys), keys
    assert "meta/two/eval/test_predictions.parquet" in keys
    result = json.loads(s3.get_object(Bucket="ccrs-test-runs", Key="meta/two/eval/result.json")["Body"].read())["result"]
    losses = [h["query_loss"] for h in result["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    # the two ranks hold bit-identical parameters at the end (sha256 of every tensor, gathered)
    assert result["replicas_identical"] is True and len(set(result["replica_checksums"])) == 1
    assert len(result["replica_checksums"]) == 2
    state = s3.get_object(Bucket="ccrs-test-runs", Key=sorted(k for k in keys if k.endswith("state.pt"))[-1])
    assert torch.load(__import__("io").BytesIO(state["Body"].read()), weights_only=True)["epoch"] >= 2




def test_killed_run_resumes_from_its_checkpoint(synth_prepared, ray_cluster, tmp_path):
    marker = tmp_path / "fault"
    argv = _argv(synth_prepared, str(tmp_path), "resume", 2, 2, "rec_meta.embedding_gradients=row_sparse")
    with pytest.raises(Exception, match="injected fault"):
        driver.main([*argv, "--inject-fault-after-epoch", "1", "--fault-marker", str(marker)])
    assert marker.exists() and not (tmp_path / "resume" / "eval").exists()
    assert driver.main(argv) == 0  # same command → resumes
    result = _result(tmp_path, "resume")
    assert result["resumed_at"] == [1]
    assert [h["epoch"] for h in result["history"]] == [1, 2]  # epoch 1 not repeated
    # the lazy-Adam state of the row-sparse tables travelled with the checkpoint
    ckpts = sorted((tmp_path / "resume").rglob("state.pt"))
    assert ckpts
    rows = torch.load(ckpts[-1], weights_only=True)["row_optimizer"]
    assert rows["kind"] == "lazy_adam" and rows["step"] > 0 and "entity_embedding.weight" in rows["state"]


def test_failure_config_restarts_workers_within_one_run(synth_prepared, ray_cluster, tmp_path):
    marker = tmp_path / "fault"
    argv = _argv(synth_prepared, str(tmp_path), "restart", 2, 2, "--max-failures", "1")
    assert driver.main([*argv, "--inject-fault-after-epoch", "1", "--fault-marker", str(marker)]) == 0
    result = _result(tmp_path, "restart")
    assert marker.exists() and result["resumed_at"] == [1] and [h["epoch"] for h in result["history"]] == [1, 2]
