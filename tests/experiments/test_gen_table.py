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
