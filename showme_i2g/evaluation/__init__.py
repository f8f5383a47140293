"""Evaluation support shared by the ``eval/`` entry points: the report writer (tables, JSON, plots, grids)."""
