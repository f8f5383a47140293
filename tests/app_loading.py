"""``app.py`` lives at the repository root, outside the package: the app tests load it by path, from here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_app() -> ModuleType:
    """A freshly executed ``app.py``, registered as the module ``app`` (Gradio's reload and pickling expect it)."""
    spec = importlib.util.spec_from_file_location("app", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["app"] = module
    spec.loader.exec_module(module)
    return module
