"""Steps typed (or pasted) one per line, as the CLI's ``--steps-file`` and the app's steps box take them.

One parser for both, so a list pasted into the app and the same list in a file give the same steps. The planner
has its own, more forgiving parser (``planner.parse_steps``) because an LLM's answer is chattier than a typed list.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import InvalidInputError

#: The most steps the planner is asked for; a how-to longer than this is better split into several goals.
MAX_PLANNED_STEPS = 12
#: How many steps the planner writes when not told (here, free of torch, so the CLI and the app read it cheaply).
DEFAULT_PLANNED_STEPS = 8

# "1.", "2)", "Step 3:", "- ", "* ", "• " at the start of a line: the list markers people paste with their steps.
# A marker needs a space after it (or to end the line), so "1.5 cups of flour" keeps its number.
_LIST_MARKER = re.compile(r"^\s*(?:(?:step\s*)?\d{1,3}\s*[.):\-]\s+|(?:step\s*)?\d{1,3}\s*[.):]$|[-*•]\s+)", re.I)


def parse_step_lines(text: str | None) -> list[str]:
    """One step per non-empty line, with a leading "1." / "Step 2:" / "-" marker dropped (empty text -> [])."""
    if text is None:
        return []
    if not isinstance(text, str):
        raise InvalidInputError("The steps must be text, one step per line.")
    steps = (_LIST_MARKER.sub("", line, count=1).strip() for line in text.splitlines())
    return [step for step in steps if step]


def steps_to_text(steps: Sequence[str]) -> str:
    """The inverse of :func:`parse_step_lines`: one step per line, inner whitespace collapsed."""
    return "\n".join(" ".join(step.split()) for step in steps)
