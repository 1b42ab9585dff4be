"""The Table-2 files under results/ carry our outputs, never the dataset's own words."""

import gzip
import json

from ccrs.experiments.gen_table import DATASET_TEXT, write_report


def test_saved_responses_leave_out_the_dataset_text(tmp_path, monkeypatch):
    import ccrs.experiments.gen_table as gt

    monkeypatch.setattr(gt, "format_markdown", lambda report: "table\n")
    rec = {"sample_id": 1, "conversation_id": "9", "turn_index": 3, "reference": "watch Heat", "context_last": "hi",
           "generated": "try __item__", "response": "try Alien", "slot_items": [4], "style_mixture": [1.0]}
    write_report({"table": {}, "_records": {"ccrs": [rec]}}, tmp_path / "generation")
    (saved,) = [json.loads(line) for line in gzip.open(tmp_path / "generation_responses" / "ccrs.jsonl.gz", "rt")]
    assert not set(DATASET_TEXT) & set(saved)
    assert saved["response"] == "try Alien" and (saved["conversation_id"], saved["turn_index"]) == ("9", 3)
    assert json.loads((tmp_path / "generation.json").read_text())["responses"]["ccrs"].endswith("ccrs.jsonl.gz")


def _run(path, records):
    path.mkdir()
    (path / "test_responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / "test_gen_metrics.json").write_text(json.dumps({"metrics": {"f1": 0.1}}))
    return str(path)


def test_report_measures_whether_styles_are_personal(tmp_path):
    from ccrs.experiments.gen_table import build_report, context_genre, format_markdown

    assert context_genre({"context_last": "I want something scary"}) == "horror"
    assert context_genre({"context_last": "a funny horror movie"}) is None  # two genres: unlabelled
    records, plain = [], []
    for i in range(24):
        user, genre = i % 3, ("horror", "comedy")[i % 2]
        mix = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]][user]
        base = {"sample_id": i, "user_id": user, "reference": "watch it", "generated": "try __item__",
                "response": "Try Alien", "slot_items": [1], "context_last": f"any {genre} movie?"}
        records.append({**base, "style_mixture": mix})
        plain.append({**base, "style_mixture": None})
    report = build_report({"ccrs": _run(tmp_path / "a", records), "kbrd_gen": _run(tmp_path / "b", plain)},
                          n_resamples=200)
    assert set(report["styles"]) == {"ccrs"}  # rows without styles get no statistic
    st = report["styles"]["ccrs"]
    assert st["by_user"]["r2"] > 0.99 and st["by_user"]["p_permutation"] < 0.01
    assert st["by_genre_within_user"]["r2"] < 0.01  # μ is set by the user here, not by the genre
    assert "Are the styles personal?" in format_markdown(report)


def test_markdown_and_json_examples_name_samples_instead_of_quoting_the_dataset(tmp_path):
    from ccrs.experiments.gen_table import build_report

    rec = {"sample_id": 3, "user_id": 1, "reference": "SECRET REFERENCE", "context_last": "any horror movie?",
           "generated": "try __item__", "response": "Try Alien", "slot_items": [1], "style_mixture": [0.5, 0.5]}
    report = build_report({"ccrs": _run(tmp_path / "a", [rec])}, n_resamples=10)
    assert report["examples"]["horror"]  # picked by the seeker's words...
    write_report(report, tmp_path / "generation")
    for name in ("generation.md", "generation.json"):
        text = (tmp_path / name).read_text()
        assert "SECRET REFERENCE" not in text and "any horror movie?" not in text  # ...which are not copied
    assert "sample 3" in (tmp_path / "generation.md").read_text()
