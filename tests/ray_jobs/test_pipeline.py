"""The main job end to end on synthetic data (tiny preset): every step's output, the report, rerun = resume."""

import json

from ray_jobs import pipeline


def test_tiny_pipeline_writes_checkpoints_and_report_and_resumes(synth_raw, ray_cluster, tmp_path, capsys):
    argv = ["--preset", "tiny", "--storage-path", str(tmp_path / "demo"), "--raw", str(synth_raw),
            "--cpus-per-worker", "0.5"]
    assert pipeline.main(argv) == 0
    root = tmp_path / "demo"
    for path in ("prepared/manifest.json", "rec/plain/best.pt", "runs/rec-meta-fold0/eval/best.pt",
                 "gen/plain/best.pt", "rec/kbrd/best.pt", "rec/popularity/result.json", "runs/dial-meta-fold0/eval/best.pt",
                 "runs/dial-meta-fold0/eval/test_responses.jsonl", "report/report.md"):
        assert (root / path).is_file(), path
    report = json.loads((root / "report" / "report.json").read_text())
    assert 0 <= report["recommender"]["test"]["all"]["ndcg@10"] <= 1 and report["generator"]["test"]["ppl"] > 1
    out = capsys.readouterr().out
    assert "Recommender (MAML" in out and "report.md" in out
    rows = {r["model"]: r for r in report["against_baselines"]}  # the same test samples for every row
    assert list(rows) == ["popularity", "kbrd", "ccrs (plain warm-up)", "ccrs (meta)"]
    assert len({r["samples"] for r in rows.values()}) == 1 and rows["ccrs (meta)"]["p_user"] is not None
    assert "Recommender against the baselines" in out and "ccrs (meta) vs kbrd on the same" in out
    # the plain generator's results come from the driver, in their place, named as the report names them
    lines = out.splitlines()
    at = {key: next(i for i, ln in enumerate(lines) if key in ln)
          for key in ("4/6 generator", "plain generator test: PPL", "5/6 generator", "| plain warm-up |")}
    assert at["4/6 generator"] < at["plain generator test: PPL"] < at["5/6 generator"] < at["| plain warm-up |"]
    assert "Dist-2" in lines[at["plain generator test: PPL"]] and "dist2" not in out
    plain_row = lines[at["| plain warm-up |"]]
    assert f"| {report['generator']['plain_test']['dist2']:.4f} |" in plain_row
    first = (root / "runs/dial-meta-fold0/eval/result.json").stat().st_mtime
    assert pipeline.main(argv) == 0  # a rerun reuses every finished step
    assert (root / "runs/dial-meta-fold0/eval/result.json").stat().st_mtime == first
