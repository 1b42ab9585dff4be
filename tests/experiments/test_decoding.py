"""Decoding options compared on one checkpoint: the same samples, the documented settings, no dataset text saved."""

import gzip
import json

from ccrs.checkpoint import save_checkpoint
from ccrs.config import load_config
from ccrs.experiments.decoding import SETTINGS, decoding_report, write_decoding_report
from ccrs.experiments.gen_table import DATASET_TEXT
from ccrs.meta.gen_training import GenMetaTraining
from ccrs.train.gen_trainer import train_generator
from tests.conftest import TINY_GEN

TWO = {k: SETTINGS[k] for k in ("greedy", "nucleus p=0.9 (seed 0)")}


def test_plain_checkpoint_every_setting_on_the_same_samples(synth_prepared, synth_rec_ckpt, tmp_path):
    cfg = load_config(None, [*TINY_GEN, "generator.variant=kbrd_gen", "gen_train.max_epochs=1"])
    train_generator(cfg, synth_prepared, synth_rec_ckpt, 0, str(tmp_path / "g"), progress=False)
    report = decoding_report(str(tmp_path / "g" / "best.pt"), synth_prepared, synth_rec_ckpt, 0, settings=TWO)
    assert not report["adapted_per_user"]
    ids = [sorted(r["sample_id"] for r in recs) for recs in report["_records"].values()]
    assert ids[0] == ids[1] and len(ids[0]) == report["settings"]["greedy"]["responses"] > 0
    write_decoding_report(report, tmp_path / "decoding")
    saved = json.loads((tmp_path / "decoding.json").read_text())
    assert set(saved["settings"]) == set(TWO) and "| greedy |" in (tmp_path / "decoding.md").read_text()
    rec = json.loads(gzip.open(saved["responses"]["greedy"], "rt").readline())
    assert not set(DATASET_TEXT) & set(rec) and "response" in rec


def test_meta_checkpoint_adapts_each_user_before_decoding(synth_prepared, synth_rec_ckpt, tmp_path):
    cfg = load_config(None, [*TINY_GEN, "generator.variant=ccrs", "dial_meta.meta_batch_size=4"])
    training = GenMetaTraining(cfg, synth_prepared, 0, synth_rec_ckpt)
    training.best_state = training.model.state_dict()
    save_checkpoint(str(tmp_path / "meta.pt"), training.checkpoint_payload())
    report = decoding_report(str(tmp_path / "meta.pt"), synth_prepared, synth_rec_ckpt, 0,
                             settings={"greedy": SETTINGS["greedy"]}, max_users=2)
    assert report["adapted_per_user"]
    users = {r["user_id"] for r in report["_records"]["greedy"]}
    assert 1 <= len(users) <= 2 and all(r["style_mixture"] for r in report["_records"]["greedy"])


def test_decoding_overrides_are_typed_and_refuse_training_keys():
    import pytest

    from ccrs.experiments.decoding import decoding_overrides

    assert decoding_overrides(["generator.decoding=nucleus", "generator.temperature=0.7",
                               "generator.min_response_tokens=4"]) == {"decoding": "nucleus", "temperature": 0.7,
                                                                       "min_response_tokens": 4}
    with pytest.raises(ValueError, match="only decoding keys"):
        decoding_overrides(["generator.word_dim=64"])


def test_decode_run_writes_a_run_layout_table_2_reads_and_is_not_redone(synth_prepared, synth_rec_ckpt, tmp_path):
    from ccrs.experiments.decoding import decode_run
    from ccrs.experiments.gen_table import build_report

    cfg = load_config(None, [*TINY_GEN, "generator.variant=kbrd_gen", "gen_train.max_epochs=1"])
    train_generator(cfg, synth_prepared, synth_rec_ckpt, 0, str(tmp_path / "g"), progress=False)
    out = decode_run(str(tmp_path / "g" / "best.pt"), synth_prepared, synth_rec_ckpt, 0,
                     {"decoding": "nucleus", "temperature": 0.5, "no_repeat_ngram": 3}, tmp_path / "d")
    metrics = json.loads((out / "test_gen_metrics.json").read_text())
    assert metrics["decoding"]["temperature"] == 0.5 and metrics["metrics"]["ppl"] > 1
    from ccrs.models.generator import load_generator

    assert load_generator(str(out / "best.pt"))[1].generator.temperature == 0.5  # served with this decoding
    stamp = (out / "test_gen_metrics.json").stat().st_mtime_ns
    decode_run("missing.pt", synth_prepared, synth_rec_ckpt, 0, {}, out)  # exists: skipped, checkpoint not read
    assert (out / "test_gen_metrics.json").stat().st_mtime_ns == stamp
    report = build_report({"kbrd_gen": str(tmp_path / "g"), "decoded": str(out)}, compare="decoded", n_resamples=20)
    assert report["table"]["decoded"]["responses"] == report["table"]["kbrd_gen"]["responses"]
    assert 0 < report["table"]["decoded"]["distinct_responses"] <= 1
