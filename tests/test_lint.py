"""The whole tree passes ``ruff check`` with the configuration in pyproject.toml ([tool.ruff]), so CI runs the lint.

ruff comes with the ``dev`` extra; without it this test fails (it does not skip), so a CI run cannot pass unlinted.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_tree_passes_ruff() -> None:
    if importlib.util.find_spec("ruff") is None:
        pytest.fail('ruff is not installed; install the dev extra (pip install -e ".[dev]"), as CI does.')
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"ruff check found problems (exit code {done.returncode}):\n{done.stdout}{done.stderr}"
