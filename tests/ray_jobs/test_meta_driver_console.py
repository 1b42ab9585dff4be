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
