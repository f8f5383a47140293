"""PAPERS.md cannot rot: every ``module:function`` it names is defined and every ``tests/file.py::test`` exists.

Read with the standard library's ``ast`` (nothing is imported), so the check is quick and works without weights.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INDEX = ROOT / "PAPERS.md"
IMPLEMENTATION = re.compile(r"`([A-Za-z_][\w.]*):([A-Za-z_][\w.]*)`")
TEST = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _module_file(module: str) -> Path | None:
    base = ROOT / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _defines(body: list[ast.stmt], qualname: list[str]) -> bool:
    """Whether ``body`` defines ``qualname`` (a function or class, then a method or nested name inside it)."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == qualname[0]:
            return len(qualname) == 1 or (isinstance(node, ast.ClassDef) and _defines(node.body, qualname[1:]))
    return False


def _rows() -> list[str]:
    """The table rows that map a paper's section (they start with ``| §`` or ``| App.``) to code and a test."""
    return [line for line in INDEX.read_text(encoding="utf-8").splitlines() if line.startswith(("| §", "| App"))]


def test_every_row_names_one_implementation_and_one_test():
    rows = _rows()
    assert len(rows) >= 40
    bad = [row for row in rows if len(IMPLEMENTATION.findall(row)) != 1 or len(TEST.findall(row)) != 1]
    assert not bad, f"rows without exactly one module:function and one test: {bad}"


def test_every_implementation_exists():
    missing = []
    for module, qualname in IMPLEMENTATION.findall("\n".join(_rows())):
        path = _module_file(module)
        if path is None or not _defines(_tree(path).body, qualname.split(".")):
            missing.append(f"{module}:{qualname}")
    assert not missing, f"PAPERS.md names code that does not exist: {missing}"


def test_every_test_exists():
    missing = []
    for file, name in TEST.findall("\n".join(_rows())):
        path = ROOT / file
        if not path.is_file() or not _defines(_tree(path).body, [name]):
            missing.append(f"{file}::{name}")
    assert not missing, f"PAPERS.md names tests that do not exist: {missing}"


def test_the_checker_catches_a_missing_name():
    assert _defines(_tree(Path(__file__)).body, ["test_every_test_exists"])
    assert not _defines(_tree(Path(__file__)).body, ["test_that_is_not_here"])
    assert _module_file("showme_i2g.no_such_module") is None
