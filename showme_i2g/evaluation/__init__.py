"""Evaluation support shared by the ``eval/`` entry points: rendering a split with one method of the papers'
comparisons (``generate.py``), the report writer (tables, JSON, plots, grids) and per-process sharding."""
