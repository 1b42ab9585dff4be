"""The planted benchmark's selection rule (``studies/planted_select.py``): valid figures only."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "studies"))
from planted_select import choose, merge  # noqa: E402


def _candidate(planted_meta: float, control_meta: float, kbrd: float = 0.1, seeds=(0, 1, 2)) -> dict:
    def taste(meta):
        return {"seeds": list(seeds), "per_seed": [], "mean": {"kbrd": kbrd, "ccrs": meta, "ccrs_meta": meta,
                                                                "ccrs_meta_beta0": meta}, "meta_minus_kbrd": []}
    return {"base": [], "every_row": [], "ccrs_meta": [], "valid": {"planted": taste(planted_meta),
                                                                     "control": taste(control_meta)}}


def test_the_best_planted_candidate_that_passes_the_control_condition_is_chosen():
    cands = {"a": _candidate(0.30, 0.095), "b": _candidate(0.25, 0.0995), "c": _candidate(0.20, 0.11)}
    assert choose(cands) == "b"  # a fails control (95% of kbrd); b beats c on planted


def test_without_a_passing_candidate_the_closest_on_control_near_the_best_planted_is_chosen():
    cands = {"a": _candidate(0.300, 0.095), "b": _candidate(0.296, 0.097), "c": _candidate(0.20, 0.098)}
    assert choose(cands) == "b"  # c is closer on control but far below on planted


def test_merge_joins_one_candidate_run_per_taste_and_keeps_their_seeds(tmp_path):
    control = _candidate(0.0, 0.097, seeds=range(12))
    del control["valid"]["planted"]
    planted = _candidate(0.3, 0.0)
    del planted["valid"]["control"]
    for name, cand, seeds in (("c", control, list(range(12))), ("p", planted, [0, 1, 2])):
        (tmp_path / f"{name}.json").write_text(json.dumps({"command": f"run {name}", "seeds": seeds,
                                                           "candidates": {"x": cand}}))
    merge([tmp_path / "c.json", tmp_path / "p.json"], str(tmp_path / "m"))
    body = json.loads((tmp_path / "m.json").read_text())
    assert body["commands"] == ["run c", "run p"]
    assert body["candidates"]["x"]["valid"]["control"]["seeds"] == list(range(12))
    assert body["candidates"]["x"]["valid"]["planted"]["seeds"] == [0, 1, 2]
    md = (tmp_path / "m.md").read_text()
    assert "| x | `–` | control | 0–11 |" in md and "no candidate passes the control condition" in md


def test_merge_pools_the_seeds_of_one_taste_run_in_parts(tmp_path):
    def part(seeds, value):
        per_seed = [{"kbrd": 0.1, "ccrs": value, "ccrs_meta": value, "ccrs_meta_beta0": value} for _ in seeds]
        return {"seeds": list(seeds), "per_seed": per_seed, "mean": per_seed[0], "meta_minus_kbrd": [value - 0.1] * len(seeds)}
    for name, seeds, value in (("a", [0, 1, 2], 0.09), ("b", [3], 0.13)):
        cand = {"base": [], "every_row": [], "ccrs_meta": [], "valid": {"control": part(seeds, value)}}
        (tmp_path / f"{name}.json").write_text(json.dumps({"command": name, "seeds": seeds, "candidates": {"x": cand}}))
    merge([tmp_path / "a.json", tmp_path / "b.json"], str(tmp_path / "m"))
    control = json.loads((tmp_path / "m.json").read_text())["candidates"]["x"]["valid"]["control"]
    assert control["seeds"] == [0, 1, 2, 3] and abs(control["mean"]["ccrs_meta"] - 0.1) < 1e-12
