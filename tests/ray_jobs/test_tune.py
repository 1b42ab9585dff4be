"""A real sweep on the local Ray cluster: 4 trials × 2 workers, concurrency cap, report files, resume."""

import json

import pytest
import yaml

from ccrs.config import load_config
from ray_jobs import tune as tune_job

TINY_REC = ["recommender.entity_dim=16", "recommender.user_dim=8", "rec_meta.meta_batch_size=4", "rec_meta.epochs=2"]


def test_concurrency_is_capped_to_what_fits():
    assert tune_job.concurrency(4, total_cpus=2, per_trial=0.75) == 2
    assert tune_job.concurrency(1, total_cpus=2, per_trial=0.75) == 1
    with pytest.raises(SystemExit, match="needs 3"):
        tune_job.concurrency(2, total_cpus=2, per_trial=3)


def test_concurrency_is_capped_by_reserved_memory():
    # 8 CPUs fit 4 trials; 16 GB of memory fits two 7-GB trials and one 10-GB trial.
    assert tune_job.concurrency(4, total_cpus=8, per_trial=1, total_memory_gb=16, trial_memory_gb=7) == 2
    assert tune_job.concurrency(4, total_cpus=8, per_trial=1, total_memory_gb=16, trial_memory_gb=10) == 1
    assert tune_job.concurrency(4, total_cpus=8, per_trial=1, total_memory_gb=16, trial_memory_gb=0) == 4
    with pytest.raises(SystemExit, match="--trial-memory-gb"):
        tune_job.concurrency(2, total_cpus=8, per_trial=1, total_memory_gb=16, trial_memory_gb=20)


def test_sweep_writes_report_best_config_and_plots_and_resumes(synth_prepared, ray_cluster, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"rec": {"inner_lr": {"type": "loguniform", "low": 1e-3, "high": 3e-2},
                                             "outer_lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}}}))
    argv = ["--stage", "rec", "--data", synth_prepared, "--space", str(space), "--storage-path", str(tmp_path / "tune"),
            "--run-name", "sweep", "--trials", "4", "--max-concurrent-trials", "4", "--num-workers", "2",
            "--cpus-per-worker", "0.25", "--trial-cpus", "0.25", "--trial-memory-gb", "0.2",
            "--save", str(tmp_path / "res" / "tune_rec"), *TINY_REC]
    assert tune_job.main(argv) == 0
    out = capsys.readouterr().out
    assert "running 2" in out  # 4 requested, 0.75 CPU each on 2 CPUs → 2 at once
    assert out.count("[tune] trial ") >= 4
    report = json.loads((tmp_path / "res" / "tune_rec.json").read_text())
    assert len(report["trials"]) == 4 and report["concurrent_trials"] == 2
    assert report["resources_per_trial"]["memory_gb"] == 0.2
    assert "0.2 GB memory reserved" in (tmp_path / "res" / "tune_rec.md").read_text()
    objectives = [t["objective"] for t in report["trials"]]
    assert objectives == sorted(objectives, reverse=True) and all(0 <= o <= 1 for o in objectives)
    best_yaml = tmp_path / "res" / "tune_rec_best_config.yaml"
    best = load_config(best_yaml)  # the drivers' --config accepts it unchanged
    assert best.rec_meta.inner_lr == pytest.approx(report["best_params"]["rec.inner_lr"])
    assert best.recommender.entity_dim == 16
    assert (tmp_path / "res" / "tune_rec_plots" / "objective_over_trials.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "res" / "tune_rec_plots" / "objective_vs_rec.outer_lr.png").is_file()
    assert (tmp_path / "tune" / "sweep" / "report" / "best_config.yaml").is_file()
    assert 0 <= report["test"]["best"]["rec"]["ndcg@10"] <= 1
    trial_runs = sorted(p.name for p in (tmp_path / "tune" / "sweep" / "trials").iterdir())
    assert len(trial_runs) == 4
    # TensorBoard: Ray Tune's event file per trial, and each trial's Train run writes its own curves
    assert len(list((tmp_path / "tune" / "sweep").glob("*/events.out.tfevents.*"))) >= 4
    assert len(list((tmp_path / "tune" / "sweep" / "trials").glob("*/tensorboard/events.out.tfevents.*"))) == 4
    # resuming a finished sweep reruns no trial: no new trial directories, the same table
    assert tune_job.main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "tune" / "sweep" / "trials").iterdir()) == trial_runs
    again = json.loads((tmp_path / "res" / "tune_rec.json").read_text())
    assert [t["trial_id"] for t in again["trials"]] == [t["trial_id"] for t in report["trials"]]
    assert report["sweep_wall_seconds"] > 0
    assert again["sweep_wall_seconds"] == pytest.approx(report["sweep_wall_seconds"])  # not the resume's own time
    assert "resuming the sweep" in capsys.readouterr().out


def test_bad_space_is_rejected_before_any_trial(synth_prepared, tmp_path, capsys):
    from ccrs.tuning.search_space import SpaceError

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"rec": {"inner_lr": {"type": "loguniform", "low": 0.1, "high": 0.01}}}))
    with pytest.raises(SpaceError, match="empty range"):
        tune_job.main(["--stage", "rec", "--data", synth_prepared, "--space", str(space), "--storage-path",
                       str(tmp_path), "--run-name", "x"])
    assert not (tmp_path / "x").exists()
