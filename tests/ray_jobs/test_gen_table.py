"""Table 2's job on the local cluster: equal budgets stated, rows aligned, tests per sample and per user."""

import json

from ray_jobs import gen_table
from tests.conftest import TINY_GEN


def test_every_row_gets_the_same_budget_and_the_report_says_so(synth_prepared, synth_rec_ckpt, ray_cluster, tmp_path):
    save = tmp_path / "generation"
    argv = ["--prepared", synth_prepared, "--rec-ckpt", synth_rec_ckpt, "--folds", "0", "--warm-epochs", "1",
            "--meta-epochs", "1", "--runs", str(tmp_path / "gen"), "--num-workers", "1", "--save", str(save),
            "--resamples", "50", "-q", *TINY_GEN, "dial_meta.meta_batch_size=4", "dial_meta.max_task_samples=4"]
    assert gen_table.main(argv) == 0
    report = json.loads(save.with_suffix(".json").read_text())
    b = report["budgets"]
    assert list(report["table"]) == list(gen_table.ORDER)
    total = {row: b[row]["plain_epochs"] + b[row]["meta_epochs"] for row in b}
    assert total == {"transformer": 2, "kbrd_gen_warm": 1, "kbrd_gen": 2, "only_meta": 2, "ccrs": 2}
    assert b["ccrs"]["meta_updates"] > 0 and b["kbrd_gen"]["plain_updates"] == 2 * b["kbrd_gen_warm"]["plain_updates"]
    # kbrd_gen continued its warm start: the same first epoch
    warm, cont = (json.loads((tmp_path / "gen" / "fold0" / r / "result.json").read_text())["result"]
                  for r in ("kbrd_gen_warm", "kbrd_gen"))
    assert cont["history"][0]["valid_ppl"] == warm["history"][0]["valid_ppl"]
    t = report["tests"]["ccrs vs kbrd_gen"]
    assert {"f1", "bleu2", "dist2", "dist4"} <= set(t) and all("p_user_permutation" in r for r in t.values())
    md = save.with_suffix(".md").read_text()
    assert "Training budgets" in md and "p (users)" in md
    # rerunning reuses every finished run; an option row, a decoding and the samples page come on top
    assert gen_table.main([*argv, "--meta-row", "ccrs_plus:ccrs:generator.style_with_user_bias=true",
                           "--decoding", "generator.no_repeat_ngram=3,generator.min_response_tokens=2",
                           "--samples", str(tmp_path / "samples.md")]) == 0
    again = json.loads(save.with_suffix(".json").read_text())
    assert list(again["table"]) == [*gen_table.ORDER, "ccrs_plus"] and "ccrs_plus vs ccrs" in again["tests"]
    assert again["budgets"]["ccrs_plus"]["meta_updates"] > 0 and again["decoding"]["min_response_tokens"] == 2
    assert again["table"]["ccrs_plus"]["mean_length"] >= 2  # the length prior was applied to every row
    assert all(again["table"][r]["mean_length"] >= 2 for r in again["table"])
    decoded = tmp_path / "gen" / "fold0" / "decoded"
    assert len(list(decoded.glob("*/*/test_gen_metrics.json"))) == 6
    page = (tmp_path / "samples.md").read_text()
    assert page.count("| **human** |") == page.count("\n## ") > 0 and "| ccrs_plus " in page


def test_the_job_sets_the_budget_keys_itself(synth_prepared, synth_rec_ckpt, tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        gen_table.main(["--prepared", synth_prepared, "--rec-ckpt", synth_rec_ckpt, "--runs", str(tmp_path),
                        "gen_train.max_epochs=5"])
    assert "--warm-epochs" in capsys.readouterr().err
