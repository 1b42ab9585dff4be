"""Plain generator training on synthetic data: learns, selects, writes, resumes, refuses."""

import json

import pytest

from ccrs.checkpoint import CheckpointError
from ccrs.config import load_config
from ccrs.models.generator import load_generator
from ccrs.train.gen_trainer import train_generator
from tests.conftest import TINY_GEN


def _cfg(*extra):
    return load_config(None, [*TINY_GEN, "generator.variant=kbrd_gen", "gen_train.max_epochs=3", *extra])


def test_trains_selects_and_writes_responses(synth_prepared, synth_rec_ckpt, tmp_path):
    result = train_generator(_cfg(), synth_prepared, synth_rec_ckpt, 0, str(tmp_path / "g"), progress=False)
    ppls = [h["valid_ppl"] for h in result["history"]]
    assert [h["epoch"] for h in result["history"]] == [1, 2, 3]
    assert ppls[-1] < ppls[0] and result["best_epoch"] == 1 + ppls.index(min(ppls))
    assert result["valid"]["ppl"] == pytest.approx(min(ppls), rel=1e-4)  # the best epoch was restored
    lines = (tmp_path / "g" / "test_responses.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    assert len(lines) == result["test"]["responses"] and {"reference", "generated", "response", "style_mixture"} <= set(rec)
    model, cfg, tok, payload = load_generator(str(tmp_path / "g" / "best.pt"))
    assert cfg.generator.variant == "kbrd_gen" and len(tok) == result["vocab_size"]
    # a finished run is not redone
    again = train_generator(_cfg(), synth_prepared, synth_rec_ckpt, 0, str(tmp_path / "g"), progress=False)
    assert again["seconds"] == result["seconds"]


def test_killed_run_resumes_and_other_configs_are_refused(synth_prepared, synth_rec_ckpt, tmp_path):
    out = str(tmp_path / "r")
    train_generator(_cfg("gen_train.max_epochs=1"), synth_prepared, synth_rec_ckpt, 0, str(tmp_path / "other"),
                    progress=False)
    with pytest.raises(ValueError, match="holds a different run"):
        train_generator(_cfg("gen_train.lr=0.01"), synth_prepared, synth_rec_ckpt, 0, str(tmp_path / "other"))
    straight = train_generator(_cfg("generator.variant=ccrs"), synth_prepared, synth_rec_ckpt, 0, out + "1", progress=False)
    # simulate a kill after epoch 2: drop the final outputs, keep last.pt from a 2-epoch state
    partial = train_generator(_cfg("generator.variant=ccrs", "gen_train.max_epochs=2"), synth_prepared, synth_rec_ckpt,
                              0, out + "2", progress=False)
    import shutil

    shutil.copytree(out + "2", out, dirs_exist_ok=True)
    for name in ("result.json", "run.json"):
        (tmp_path / "r" / name).unlink()
    resumed = train_generator(_cfg("generator.variant=ccrs"), synth_prepared, synth_rec_ckpt, 0, out, progress=False)
    assert resumed["history"][:2] == partial["history"]
    assert [h["valid_ppl"] for h in resumed["history"]] == pytest.approx([h["valid_ppl"] for h in straight["history"]])


def test_a_corrupt_generator_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable ccrs checkpoint"):
        load_generator(str(bad))


def test_continue_from_gives_the_longer_run_exactly(synth_prepared, synth_rec_ckpt, tmp_path):
    """Equal budgets (Table 2): a 1-epoch run continued to 3 epochs is the 3-epoch run."""
    short = train_generator(_cfg("gen_train.max_epochs=1"), synth_prepared, synth_rec_ckpt, 0, str(tmp_path / "w"),
                            progress=False)
    longer = train_generator(_cfg(), synth_prepared, synth_rec_ckpt, 0, str(tmp_path / "c"), progress=False,
                             continue_from=str(tmp_path / "w"))
    straight = train_generator(_cfg(), synth_prepared, synth_rec_ckpt, 0, str(tmp_path / "s"), progress=False)
    assert [h["epoch"] for h in longer["history"]] == [1, 2, 3]
    assert longer["history"][0] == short["history"][0]
    assert [h["valid_ppl"] for h in longer["history"]] == pytest.approx([h["valid_ppl"] for h in straight["history"]])
    assert longer["test"]["f1"] == pytest.approx(straight["test"]["f1"])
    assert all(h["updates"] > 0 and h["samples"] > 0 for h in longer["history"])
    with pytest.raises(FileNotFoundError, match="continue_from"):
        train_generator(_cfg(), synth_prepared, synth_rec_ckpt, 0, str(tmp_path / "x"), continue_from=str(tmp_path / "nope"))
