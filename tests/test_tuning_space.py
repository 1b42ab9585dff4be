"""Search-space files: defaults load, bad files are rejected naming the key; report pieces."""

import pytest
import yaml

from ccrs.config import load_config
from ccrs.tuning.report import (
    TrialRow,
    format_table,
    plot_objective_over_trials,
    plot_objective_vs_params,
    ranked,
)
from ccrs.tuning.search_space import SpaceError, load_space, parse_space


def test_default_space_per_stage_and_overrides_are_valid_config():
    rec = load_space(None, "rec")
    assert set(rec.params) == {"rec.inner_lr", "rec.outer_lr", "rec.n_layers", "rec.n_heads"}
    assert rec.params["rec.n_layers"].values == (1, 2, 3)
    both = load_space(None, "both")
    assert "dial.n_styles" in both.params and both.params["dial.n_styles"].low == 1
    cfg = load_config(None, both.overrides({"rec.inner_lr": 0.01, "rec.n_layers": 2, "dial.n_styles": 6}))
    assert cfg.rec_meta.inner_lr == 0.01 and cfg.recommender.n_layers == 2 and cfg.generator.n_styles == 6


@pytest.mark.parametrize("body, message", [
    ({"rec": {"inner_lrr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}}}, "unknown key rec.inner_lrr"),
    ({"recs": {}}, "unknown section"),
    ({"rec": {"inner_lr": {"type": "loguniform", "low": 1e-2, "high": 1e-3}}}, "empty range"),
    ({"rec": {"inner_lr": {"type": "loguniform", "low": 0, "high": 1e-3}}}, "needs low > 0"),
    ({"rec": {"n_layers": {"type": "choice", "values": []}}}, "non-empty list"),
    ({"rec": {"n_layers": {"type": "randint", "low": 3, "high": 1}}}, "empty range"),
    ({"rec": {"n_layers": {"type": "gaussian", "low": 1, "high": 3}}}, "is not one of"),
    ({"rec": {"inner_lr": {"type": "uniform", "low": 0.1}}}, "missing 'high'"),
    ({"rec": {"inner_lr": {"type": "uniform", "low": 0.1, "high": 0.2, "step": 1}}}, "unknown field"),
    ({"dial": {"n_styles": {"type": "randint", "low": 1, "high": 8}}}, "no parameter to search for stage rec"),
])
def test_bad_spaces_are_rejected_with_the_key(tmp_path, body, message):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(SpaceError, match=message) as exc:
        load_space(path, "rec")
    assert str(path) in str(exc.value)


def test_not_yaml_and_unknown_stage(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("rec: [unclosed")
    with pytest.raises(SpaceError, match="not valid YAML"):
        load_space(path, "rec")
    with pytest.raises(SpaceError, match="stage"):
        parse_space({}, "everything")


def test_ranked_table_and_plots():
    space = load_space(None, "rec")
    rows = [TrialRow("a", {"rec.inner_lr": 0.01, "rec.n_layers": 2}, 0.10, 30.0, "TERMINATED", 0),
            TrialRow("b", {"rec.inner_lr": 0.002, "rec.n_layers": 1}, 0.12, 25.0, "TERMINATED", 1),
            TrialRow("c", {"rec.inner_lr": 0.005, "rec.n_layers": 3}, None, 5.0, "ERROR", 2)]
    assert [r.trial_id for r in ranked(rows)] == ["b", "a", "c"]
    table = format_table(rows, space)
    assert table.splitlines()[2].startswith("| 1 | b |")
    assert plot_objective_over_trials(rows)[:4] == b"\x89PNG"
    plots = plot_objective_vs_params(rows, space)
    assert set(plots) == set(space.params) and all(p[:4] == b"\x89PNG" for p in plots.values())
