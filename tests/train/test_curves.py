"""Training curves: TensorBoard event files (local and S3) that read back exactly, and MLflow through its client."""

import pytest

from ccrs import storage
from ccrs.train.curves import CurveWriter, curve_metrics, read_scalars


def test_nested_metrics_become_named_curves_without_counts():
    flat = curve_metrics({"train": {"query_loss": 2.5}, "valid": {"all": {"ndcg@10": 0.1, "count": 90}},
                          "objective": 0.1, "improved": True, "note": "x", "nan": float("nan")})
    assert flat == {"train/query_loss": 2.5, "valid/all/ndcg@10": 0.1, "objective": 0.1}


def _write(uri):
    curves = CurveWriter(uri)
    curves.log(1, {"train/loss": 7.0, "valid/ndcg@10": 0.10})
    curves.log(2, {"train/loss": 6.0, "valid/ndcg@10": 0.12})
    curves.close()


def test_event_files_read_back_exactly(tmp_path):
    _write(str(tmp_path / "tb"))
    got = read_scalars(str(tmp_path / "tb"))
    assert got["train/loss"] == [(1, 7.0), (2, 6.0)]
    ndcg = got["valid/ndcg_at_10"]  # "@" is not allowed in a TensorBoard or MLflow name
    assert [s for s, _ in ndcg] == [1, 2] and ndcg[1][1] == pytest.approx(0.12)


def test_event_files_land_on_s3(s3_server):
    storage.ensure_bucket("s3://curves-test")
    _write("s3://curves-test/run/tensorboard")
    assert read_scalars("s3://curves-test/run/tensorboard")["train/loss"] == [(1, 7.0), (2, 6.0)]


def test_mlflow_gets_the_same_curves(tmp_path):
    mlflow = pytest.importorskip("mlflow")  # the optional extra: pip install -e '.[mlflow]' (distribution ccrs-ray)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("curves")
    with mlflow.start_run() as run:
        curves = CurveWriter(str(tmp_path / "tb"), mlflow=mlflow)
        curves.log(1, {"valid/ndcg@10": 0.1})
        curves.log(2, {"valid/ndcg@10": 0.2})
        curves.close()
    history = mlflow.tracking.MlflowClient().get_metric_history(run.info.run_id, "valid/ndcg_at_10")
    assert [(m.step, m.value) for m in history] == [(1, 0.1), (2, 0.2)]
