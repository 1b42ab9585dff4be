"""Hyperparameter search: the search-space file and the sweep report (no Ray here; ``ray_jobs/tune.py`` runs it)."""
