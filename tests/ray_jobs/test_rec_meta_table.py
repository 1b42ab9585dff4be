import json

import pytest

from ccrs.cli import main as ccrs_main
from ccrs.experiments import audit_predictions
from ray_jobs import rec_meta_table

TINY = ["recommender.entity_dim=16", "recommender.user_dim=8"]


def test_meta_table_warm_starts_pairs_and_resumes(synth_prepared, tmp_path, ray_cluster, capsys):
    plain = tmp_path / "plain"
    assert ccrs_main(["eval", "rec", "--prepared", synth_prepared, "--runs", str(plain), "--models",
                      "popularity,ccrs", "--splits", "user", "--folds", "0", "-q", "--compare", "",
                      *TINY, "rec_train.max_epochs=1"]) == 0
    argv = ["--prepared", synth_prepared, "--plain-runs", str(plain), "--storage-path", str(tmp_path / "meta"),
            "--models", "ccrs", "--plain-models", "ccrs,popularity", "--folds", "0", "--num-workers", "0",
            "--resamples", "50", "--save", str(tmp_path / "rec_meta"), *TINY, "rec_meta.epochs=1",
            "rec_meta.meta_batch_size=4", "--predictions", str(tmp_path / "audit")]
    assert rec_meta_table.main(argv) == 0
    report = json.loads((tmp_path / "rec_meta.json").read_text())
    rows = report["table"]["user"]["all"]
    assert set(rows) == {"ccrs_meta", "ccrs_meta_beta0", "ccrs", "popularity"}
    assert rows["ccrs_meta_beta0"]["metrics"]["count"] == rows["ccrs_meta"]["metrics"]["count"]
    shift = report["adaptation"]["ccrs"]
    assert 0 <= shift["share_users_top10_changed"] <= 1 and shift["mean_abs_rank_shift"] >= 0
    assert rows["ccrs_meta"]["metrics"]["count"] == rows["ccrs"]["metrics"]["count"]  # same query samples
    pairs = {(t["a"], t["b"]) for t in report["significance"]}
    assert ("ccrs_meta", report["best_other_row"]) in pairs and ("ccrs_meta", "ccrs") in pairs
    assert ("ccrs_meta", "ccrs_meta_beta0") in pairs
    assert "Does adaptation move the ranking?" in (tmp_path / "rec_meta.md").read_text()
    # the audit files hold every row's pooled test samples and give the table's metrics back
    audit = audit_predictions.recompute(audit_predictions.load(str(tmp_path / "audit")), [], n_resamples=0)
    assert set(audit["metrics"]) == set(rows)
    for row, entry in rows.items():
        assert audit["metrics"][row]["all"]["ndcg@10"] == pytest.approx(entry["metrics"]["ndcg@10"], rel=1e-12)
        assert audit["metrics"][row]["all"]["count"] == entry["metrics"]["count"]
    # rerunning reuses the finished meta run
    before = (tmp_path / "meta" / "ccrs-fold0" / "eval" / "result.json").stat().st_mtime
    assert rec_meta_table.main(argv) == 0
    assert (tmp_path / "meta" / "ccrs-fold0" / "eval" / "result.json").stat().st_mtime == before
