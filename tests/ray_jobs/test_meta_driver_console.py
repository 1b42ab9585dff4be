"""What a Ray Train run prints: the epoch lines, not Ray's per-report dictionaries."""

import logging


def test_ray_trains_per_report_dictionaries_are_not_logged():
    from ray.train.v2._internal.execution import context as train_context

    from ray_jobs.meta_driver import quiet_train_reports

    quiet_train_reports()
    # the logger that writes "Reporting training result N: TrainingReport(...)" at INFO
    assert train_context.logger.name == train_context.__file__
    assert not train_context.logger.isEnabledFor(logging.INFO)
    assert train_context.logger.isEnabledFor(logging.WARNING)


def test_epoch_lines_reach_the_worker_stdout_once_under_rays_print_patch(monkeypatch, capfd):
    """Ray Train patches ``print`` in its workers to log through the root logger (whose handlers echo it
    again): the epoch lines bypass it."""
    import builtins

    from ray.train.v2._internal.logging import patch_print

    from ray_jobs.meta_driver import worker_line

    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler, root = Collect(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)  # as in a Train worker
    monkeypatch.setattr(builtins, "print", patch_print.redirected_print)  # what a Train worker runs with
    try:
        print("through the patch")  # the patched print reaches the root logger: the second copy
        worker_line("[rec] epoch 1:  valid ndcg@10 0.1000")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert records == ["through the patch"]
    assert capfd.readouterr().out.count("[rec] epoch 1:") == 1
