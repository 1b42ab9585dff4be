import json

import pytest
import torch

from ccrs import storage
from ccrs.checkpoint import CheckpointError, load_checkpoint
from ccrs.config import load_config
from ccrs.data.dataset import PreparedDataset
from ccrs.data.rec_examples import KnowledgeGraph, rec_parts
from ccrs.eval.rec_evaluator import RecPredictions, predict
from ccrs.models import build_recommender
from ccrs.train import rec_trainer
from ccrs.train.curves import read_scalars
from ccrs.train.rec_trainer import train_recommender

SMALL = ["recommender.entity_dim=16", "recommender.user_dim=8", "rec_train.batch_size=32", "rec_train.patience=5"]


def _cfg(*extra):
    return load_config(None, [*SMALL, *extra])


def test_train_selects_restores_and_saves_everything(synth_prepared, tmp_path):
    out = tmp_path / "run"
    cfg = _cfg("rec_train.max_epochs=3", "rec_train.lr=0.01")
    result = train_recommender(cfg, synth_prepared, "user", 0, str(out), progress=False)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    best = max(result.history, key=lambda h: h["valid"]["ndcg@10"])
    assert result.best_epoch == best["epoch"]
    assert result.valid["all"]["ndcg@10"] == pytest.approx(best["valid"]["ndcg@10"])  # best epoch restored
    for name in ("best.pt", "last.pt", "valid_predictions.parquet", "test_metrics.json", "result.json"):
        assert (out / name).is_file(), name
    curves = read_scalars(str(out / "tensorboard"))  # one point per epoch, the numbers of the history
    assert curves["train/loss"] == [(h["epoch"], pytest.approx(h["train_loss"])) for h in result.history]
    assert [s for s, _ in curves["valid/ndcg_at_10"]] == [1, 2, 3]
    # the saved test predictions come from the best checkpoint
    ckpt = load_checkpoint(str(out / "best.pt"))
    assert ckpt["epoch"] == result.best_epoch
    ds = PreparedDataset.open(synth_prepared)
    kg = KnowledgeGraph.from_dataset(ds)
    parts, users = rec_parts(ds, "user", 0, 64, kg)
    assert dict(zip(ckpt["user_ids"], ckpt["user_rows"], strict=True)) == users
    model = build_recommender(cfg.recommender, kg, len(users))
    model.load_state_dict(ckpt["state_dict"])
    saved = RecPredictions.from_table(storage.read_parquet(storage.resolve(str(out / "test_predictions.parquet"))))
    assert torch.equal(predict(model, parts["test"]).ranks, saved.ranks)


def test_finished_run_is_not_redone(synth_prepared, tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    first = train_recommender(_cfg("rec_train.max_epochs=1"), synth_prepared, "user", 0, out, progress=False)
    monkeypatch.setattr(rec_trainer, "_fit", lambda *a, **k: pytest.fail("retrained a finished run"))
    again = train_recommender(_cfg("rec_train.max_epochs=1"), synth_prepared, "user", 0, out, progress=False)
    assert again.to_dict() == json.loads(json.dumps(first.to_dict()))


def test_killed_run_resumes_from_its_last_epoch(synth_prepared, tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    cfg = _cfg("rec_train.max_epochs=3")
    real_predict, calls = rec_trainer.predict, []

    def crash_in_epoch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed (injected)")
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(rec_trainer, "predict", crash_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_recommender(cfg, synth_prepared, "user", 0, out, progress=False)
    monkeypatch.undo()
    partial = load_checkpoint(out + "/last.pt")
    assert partial["epoch"] == 2 and not (tmp_path / "run" / "result.json").exists()
    resumed = train_recommender(cfg, synth_prepared, "user", 0, out, progress=False)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert resumed.history[:2] == partial["history"]
    # same numbers as an uninterrupted run with the same seed
    straight = train_recommender(cfg, synth_prepared, "user", 0, str(tmp_path / "straight"), progress=False)
    assert [h["train_loss"] for h in straight.history] == pytest.approx([h["train_loss"] for h in resumed.history])


@pytest.mark.parametrize("variant", ["popularity", "repeat_context"])
def test_baselines_need_no_training(synth_prepared, tmp_path, variant):
    result = train_recommender(_cfg(f"recommender.variant={variant}"), synth_prepared, "standard", None,
                               str(tmp_path / variant), progress=False)
    assert result.epochs_run == 0 and result.fold is None and result.test["all"]["count"] > 0


def test_corrupt_checkpoint_is_reported(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(str(tmp_path / "bad.pt"))
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(str(tmp_path / "missing.pt"))


def test_a_run_directory_of_another_config_is_refused(synth_prepared, tmp_path):
    out = str(tmp_path / "run")
    train_recommender(_cfg("rec_train.max_epochs=1"), synth_prepared, "user", 0, out, progress=False)
    with pytest.raises(ValueError, match="rec_train.lr"):
        train_recommender(_cfg("rec_train.max_epochs=1", "rec_train.lr=0.5"), synth_prepared, "user", 0, out,
                          progress=False)
    with pytest.raises(ValueError, match="fold"):
        train_recommender(_cfg("rec_train.max_epochs=1"), synth_prepared, "user", 1, out, progress=False)


def test_a_run_that_predates_an_option_is_reused_only_while_the_option_is_at_its_default(tmp_path):
    import json

    from ccrs import storage
    from ccrs.config import load_config
    from ccrs.train.rec_trainer import _check_same_run

    key = {"config": load_config(None, []).to_dict(), "split": "user", "fold": 0}
    old = json.loads(json.dumps(key))
    del old["config"]["generator"]["top_p"]  # a run written before the option existed
    loc = storage.resolve(str(tmp_path / "run"))
    storage.write_bytes(loc.child("run.json"), json.dumps(old).encode())
    _check_same_run(loc, key)  # default now: the same run
    changed = json.loads(json.dumps(key))
    changed["config"]["generator"]["top_p"] = 0.5
    with pytest.raises(ValueError, match="generator.top_p: None there, 0.5 now"):
        _check_same_run(loc, changed)
    other = json.loads(json.dumps(key))
    other["fold"] = 1
    with pytest.raises(ValueError, match="fold: 0 there, 1 now"):
        _check_same_run(loc, other)
