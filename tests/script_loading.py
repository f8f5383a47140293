"""``app.py`` and the benchmarks live at the repository root, outside the package: tests load them by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str, name: str) -> ModuleType:
    """A freshly executed script of the repository, registered as the module ``name``."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_app() -> ModuleType:
    """A freshly executed ``app.py``, registered as the module ``app`` (Gradio's reload and pickling expect it)."""
    return load_script("app.py", "app")
