"""Table 1 with history from prediction files: gains over kbrd, user-level tests, reused rows by fold."""

import pyarrow as pa
import pyarrow.parquet as pq

from ccrs.experiments import history_table


def _write(path, ranks_by_fold):
    rows = [(s, 100 * f + s % 7, f, r, s % 5 == 0) for f, ranks in ranks_by_fold.items() for s, r in enumerate(ranks)]
    cols = list(zip(*rows, strict=True))
    pq.write_table(pa.table({"sample_id": pa.array(cols[0], pa.int64()), "user_id": pa.array(cols[1], pa.int64()),
                             "fold": pa.array(cols[2], pa.int64()), "rank": pa.array(cols[3], pa.int64()),
                             "label_in_context": pa.array(cols[4], pa.bool_())}), path)


def test_the_table_pairs_rows_on_the_same_samples_and_reuses_only_the_new_rows_folds(tmp_path):
    new, old = tmp_path / "new", tmp_path / "old"
    new.mkdir(), old.mkdir()
    _write(new / "ccrs_history.parquet", {0: [0] * 30 + [20] * 30})  # HR@10 0.5
    _write(old / "kbrd.parquet", {0: [0] * 20 + [20] * 40, 1: [0] * 60})  # fold 0: HR@10 1/3; fold 1 not in new
    assert history_table.main([str(new), "--reuse", f"{old}:kbrd", "--save", str(tmp_path / "t"),
                               "--resamples", "200"]) == 0
    import json
    report = json.loads((tmp_path / "t.json").read_text())
    assert report["folds"] == [0] and report["metrics"]["kbrd"]["all"]["count"] == 60  # fold 1 left out
    assert abs(report["gain_over_kbrd"]["ccrs_history"]["all"]["hit@10"] - 0.5) < 1e-9  # 0.5 / (1/3) - 1
    (test,) = [s for s in report["significance"] if s["variant"] == "all" and s["metric"] == "hit@10"]
    assert (test["a"], test["b"]) == ("ccrs_history", "kbrd") and test["diff"] > 0
    assert "kbrd" in report["reused"] and "| ccrs_history |" in (tmp_path / "t.md").read_text()
