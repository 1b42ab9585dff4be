import json

import pytest

from ccrs.cli import main
from ccrs.train import rec_trainer

SMALL = ["recommender.entity_dim=16", "recommender.user_dim=8", "rec_train.max_epochs=1", "rec_train.batch_size=64"]


def test_table_pools_folds_averages_seeds_and_resumes(synth_prepared, tmp_path, monkeypatch, capsys):
    runs, save = tmp_path / "runs", tmp_path / "results" / "rec_plain"
    argv = ["eval", "rec", "--prepared", synth_prepared, "--runs", str(runs), "--models", "popularity,kbrd,ccrs",
            "--folds", "0-1", "--seeds", "0,1", "--resamples", "200", "--jobs", "2", "--save", str(save),
            "--set", "ccrs:rec_train.lr=0.003", *SMALL]
    assert main(argv) == 0
    report = json.loads(save.with_suffix(".json").read_text())
    user, standard = report["table"]["user"], report["table"]["standard"]
    for model in ("popularity", "kbrd", "ccrs"):
        folds = [report["runs"][f"user/{model}/fold{f}"]["test"]["all"]["count"] for f in (0, 1)]
        assert user["all"][model]["metrics"]["count"] == sum(folds)  # pooled over folds
        assert user["all"][model]["spread"]["hit@10"]["n"] == 2
        seeds = [report["runs"][f"standard/{model}/seed{s}"]["test"]["all"]["ndcg@10"] for s in (0, 1)]
        assert standard["all"][model]["metrics"]["ndcg@10"] == pytest.approx(sum(seeds) / 2)
        assert user["dedup"][model]["metrics"]["count"] <= user["all"][model]["metrics"]["count"]
    assert report["model_overrides"] == {"ccrs": ["rec_train.lr=0.003"]}
    run_cfg = json.loads((runs / "user" / "ccrs" / "fold0" / "run.json").read_text())["config"]
    assert run_cfg["rec_train"]["lr"] == 0.003 and run_cfg["recommender"]["entity_dim"] == 16
    # popularity does not depend on the seed
    assert standard["all"]["popularity"]["spread"]["ndcg@10"]["std"] == 0
    tests = {(t["split"], t["variant"], t["metric"]) for t in report["significance"]}
    assert ("user", "all", "ndcg@10") in tests and ("standard", "dedup", "hit@50") in tests
    md = save.with_suffix(".md").read_text()
    assert "| ccrs |" in md and "Paired significance" in md and "ccrs eval rec" in md
    # rerunning reuses every finished run
    monkeypatch.setattr(rec_trainer, "_fit", lambda *a, **k: pytest.fail("a finished run was retrained"))
    argv[argv.index("--jobs") + 1] = "1"
    assert main(argv) == 0
    assert json.loads(save.with_suffix(".json").read_text())["table"] == report["table"]
    # the same runs, reported on valid (for choosing hyperparameters without touching test)
    assert main([*argv, "--part", "valid"]) == 0
    valid = json.loads(save.with_suffix(".json").read_text())
    folds = [report["runs"][f"user/kbrd/fold{f}"]["valid"]["all"]["count"] for f in (0, 1)]
    assert valid["part"] == "valid" and valid["table"]["user"]["all"]["kbrd"]["metrics"]["count"] == sum(folds)
    # --merge: one split rerun (here with fewer models) replaces that split only; the other is kept whole
    merge = ["eval", "rec", "--prepared", synth_prepared, "--runs", str(runs), "--models", "popularity,kbrd",
             "--splits", "standard", "--seeds", "0", "--compare", "kbrd:popularity", "--resamples", "200",
             "--save", str(save), "--merge", *SMALL]
    assert main(merge) == 0
    merged = json.loads(save.with_suffix(".json").read_text())
    assert merged["table"]["user"] == valid["table"]["user"]
    assert list(merged["table"]["standard"]["all"]) == ["popularity", "kbrd"]
    assert {(t["split"], t["a"]) for t in merged["significance"]} == {("user", "ccrs"), ("standard", "kbrd")}
    assert set(merged["commands"]) == {"user", "standard"} and "--merge" in merged["commands"]["standard"]
    assert all(k.startswith("user/") or k.startswith("standard/") for k in merged["runs"])
    md = save.with_suffix(".md").read_text()
    assert "one command per split" in md and "## standard split" in md and "## user split" in md
    assert main(["eval", "rec", "--prepared", synth_prepared, "--runs", str(runs), "--models", "popularity",
                 "--splits", "standard", "--seeds", "0", "--compare", "", "--merge"]) == 2  # nothing to merge into


def test_bad_arguments_are_rejected(synth_prepared, tmp_path, capsys):
    base = ["eval", "rec", "--prepared", synth_prepared, "--runs", str(tmp_path)]
    assert main([*base, "--models", "ccrs,nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main([*base, "--models", "ccrs", "--compare", "ccrs:kbrd"]) == 2
    assert main([*base, "--folds", "zero"]) == 2
    assert main([*base, "--splits", "random"]) == 2
    assert main([*base, "--models", "ccrs", "--set", "kbrd:rec_train.lr=0.1"]) == 2
    assert main([*base, "--models", "ccrs", "--set", "ccrs:rec_train.nope=1"]) == 2


def test_pairing_does_not_depend_on_the_order_predictions_were_written(tmp_path):
    import torch

    from ccrs import storage
    from ccrs.eval.rec_evaluator import RecPredictions
    from ccrs.experiments.rec_table import RunSpec, aggregate

    def run(name, ranks, order):
        preds = RecPredictions(
            sample_ids=torch.tensor(order), conversation_ids=["c"] * 4, user_ids=[1] * 4,
            labels=torch.zeros(4, dtype=torch.long), label_entities=torch.zeros(4, dtype=torch.long),
            ranks=torch.tensor(ranks)[order], label_in_context=torch.zeros(4, dtype=torch.bool),
            top=torch.zeros(4, 50, dtype=torch.long))
        loc = storage.resolve(str(tmp_path / name))
        preds.save(loc, "test")
        return {"out": loc.uri, "best_epoch": 1}

    ranks = [0, 5, 20, 60]
    results = {RunSpec("a", "user", 0, 0): run("a", ranks, [0, 1, 2, 3]),
               RunSpec("b", "user", 0, 0): run("b", ranks, [3, 1, 0, 2])}  # same ranks, other order
    tests = aggregate(results, [("a", "b")], n_resamples=50)["significance"]
    assert all(t["diff"] == 0 and t["wins"] == t["losses"] == 0 for t in tests)


def test_exported_predictions_recompute_the_table(tmp_path, capsys):
    """The audit files alone (sample_id, user_id, fold, rank, label_in_context) give the same pooled
    metrics and user-level tests as the table built from the full run directories."""
    import numpy as np
    import pyarrow.parquet as pq
    import torch

    from ccrs import storage
    from ccrs.eval.rec_evaluator import RecPredictions
    from ccrs.experiments import audit_predictions
    from ccrs.experiments.rec_table import RunSpec, aggregate

    rng = np.random.default_rng(0)
    results, per_row = {}, {"a": {}, "b": {}}
    for fold in (0, 1):
        n = 30
        ids = torch.arange(n) + 100 * fold
        users = [1000 * fold + int(u) for u in rng.integers(0, 6, n)]
        in_ctx = torch.from_numpy(rng.random(n) < 0.3)
        for name, scale in (("a", 8), ("b", 30)):
            preds = RecPredictions(
                sample_ids=ids.flip(0) if name == "b" else ids, conversation_ids=["c"] * n,
                user_ids=users[::-1] if name == "b" else users, labels=torch.zeros(n, dtype=torch.long),
                label_entities=torch.zeros(n, dtype=torch.long),
                ranks=torch.from_numpy(rng.integers(0, scale, n)),
                label_in_context=in_ctx.flip(0) if name == "b" else in_ctx, top=torch.zeros(n, 50, dtype=torch.long))
            loc = storage.resolve(str(tmp_path / "runs" / f"{name}{fold}"))
            preds.save(loc, "test")
            results[RunSpec(name, "user", fold, 0)] = {"out": loc.uri, "best_epoch": 1}
            per_row[name][fold] = preds
    ref = aggregate(results, [("a", "b")], n_resamples=500)
    audit_predictions.export(per_row, str(tmp_path / "audit"))
    t = pq.read_table(tmp_path / "audit" / "a.parquet")
    assert t.column_names == list(audit_predictions.COLUMNS) and t.num_rows == 60
    again = audit_predictions.recompute(audit_predictions.load(str(tmp_path / "audit")), [("a", "b")], n_resamples=500)
    for row in ("a", "b"):
        for variant in ("all", "dedup"):
            want = ref["table"]["user"][variant][row]["metrics"]
            assert again["metrics"][row][variant] == pytest.approx(want, rel=1e-12)
    ref_tests = {(x["variant"], x["metric"]): x for x in ref["significance"]}
    for x in again["significance"]:
        r = ref_tests[(x["variant"], x["metric"])]
        assert x["diff"] == pytest.approx(r["diff"], abs=1e-12)
        assert x["p_user_permutation"] == r["p_user_permutation"]
        assert x["users"] == r["users"]
    assert audit_predictions.main([str(tmp_path / "audit"), "--compare", "a:zz"]) == 2
    assert "no file" in capsys.readouterr().err
