"""Experiment grids that produce the result tables (plain library code; no Ray)."""
