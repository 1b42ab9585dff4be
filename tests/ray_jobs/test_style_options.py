"""The style-option report reads eval directories and chooses on valid perplexity only."""

import json

from ray_jobs.style_options import choose, format_markdown, option_row


def _eval_dir(path, valid_ppl, test_f1, mixtures):
    path.mkdir(parents=True)
    for part, ppl, f1 in (("valid", valid_ppl, 0.1), ("test", 1.0, test_f1)):
        (path / f"{part}_gen_metrics.json").write_text(json.dumps(
            {"metrics": {"ppl": ppl, "f1": f1, "bleu2": 0.01, "dist2": 0.2, "dist4": 0.3}}))
    (path / "valid_responses.jsonl").write_text("".join(
        json.dumps({"sample_id": i, "user_id": i % 2, "style_mixture": m, "context_last": "a scary one"}) + "\n"
        for i, m in enumerate(mixtures)))
    return str(path)


def test_rows_report_valid_styles_and_the_choice_ignores_test(tmp_path):
    personal = [[0.9, 0.1], [0.1, 0.9]] * 6
    a = option_row(_eval_dir(tmp_path / "a", 20.0, 0.05, personal))
    b = option_row(_eval_dir(tmp_path / "b", 21.0, 0.50, [[0.5, 0.5]] * 12))  # better on test, worse on valid
    assert a["valid_styles"]["r2_users"] > 0.99 and a["valid_styles"]["p_users"] < 0.05
    rows = {"a": a, "b": b}
    chosen = choose(rows)
    md = format_markdown({"command": "x", "options": rows, "chosen": chosen})
    assert chosen == "a" and "| a **(chosen)** |" in md
