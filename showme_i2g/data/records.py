"""The one record every dataset reader produces, so training and evaluation never care where data came from.

A :class:`Recipe` is a goal and its ordered steps; a :class:`Step` is one instruction with, where the source has
them, a short headline, a picture or video, and a time span. Each source keeps what does not fit these fields in
``meta`` (SSv2 templates, EPIC frame numbers...), so nothing a later filter needs is lost on the way.

Readers never drop a malformed row silently: they return a :class:`ReadResult` whose ``problems`` list says which
file and line was skipped and why, next to ``counts`` of rows left out on purpose (steps with errors, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Problem", "ReadResult", "Recipe", "Step"]

logger = logging.getLogger("showme_i2g.data")


@dataclass
class Step:
    """One instruction.

    ``text`` is what a generator is conditioned on (for HT-Step and WikiHow the headline followed by its
    paragraph, as I2G uses long step text); ``headline`` keeps the short form where the source has one.
    ``start``/``end`` are seconds into the recording (``None`` when unknown or when the step was skipped).
    ``media`` is the step's image or video file where known.
    """

    text: str
    headline: str | None = None
    media: Path | None = None
    start: float | None = None
    end: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Recipe:
    """A goal and its steps in the order they are performed.

    ``goal`` is ``None`` where the source has no goal text (EPIC-KITCHENS videos). ``source`` names the reader
    (``"captaincook4d"``, ``"htstep"``, ``"wikihow"``, ``"epic100"``, ``"ssv2"``) and ``id`` is unique within it.
    """

    goal: str | None
    steps: list[Step]
    source: str
    id: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """A row a reader could not use: the file, the 1-based line where the row starts, and why."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


@dataclass
class ReadResult:
    """What a reader returns: the recipes, every row it skipped (``problems``) and what it left out on purpose.

    Iterating over it yields the recipes, so ``for recipe in read_htstep(path)`` reads naturally; the report
    stays attached for whoever wants to check it.
    """

    recipes: list[Recipe] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Recipe]:
        return iter(self.recipes)

    def __len__(self) -> int:
        return len(self.recipes)

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to the tally ``key`` (rows deliberately left out, e.g. steps with errors)."""
        self.counts[key] = self.counts.get(key, 0) + n

    def problem(self, file: str | Path, line: int | None, message: str) -> None:
        """Record a row that could not be used (and log it, so a long job shows it as it happens)."""
        problem = Problem(str(file), line, message)
        self.problems.append(problem)
        logger.warning("skipped %s", problem)
