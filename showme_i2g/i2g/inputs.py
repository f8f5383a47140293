"""Checks on what a user types, shared by the library, the CLI and the app: each failure is one clear sentence.

Kept free of models so the CLI and the app can refuse bad input before spending seconds (or minutes) loading one.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence

from ..errors import InvalidInputError

MAX_STEPS = 16
MAX_GOAL_CHARS = 300
MAX_STEP_CHARS = 2000
MAX_INFERENCE_STEPS = 200
MAX_GUIDANCE = 30.0
MAX_NEIGHBOUR_WEIGHT = 10.0
MAX_SIDE = 2048

_WHITESPACE_CONTROLS = {"\t", "\n", "\r", "\x0b", "\x0c"}


def clean_text(text: object, what: str, max_chars: int) -> str:
    """Trimmed text with runs of whitespace (newlines and tabs included) collapsed to one space.

    Other control characters (NUL, BEL, escape sequences...) are refused rather than silently dropped: they
    usually mean a pasted binary or terminal output, not a recipe.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"The {what} must be text, got {type(text).__name__}.")
    for ch in text:
        if ch not in _WHITESPACE_CONTROLS and unicodedata.category(ch) == "Cc":
            raise InvalidInputError(
                f"The {what} contains a control character (U+{ord(ch):04X}); remove it and try again."
            )
    cleaned = " ".join(text.split())
    if not cleaned:
        raise InvalidInputError(f"The {what} is empty; please write a few words.")
    if len(cleaned) > max_chars:
        raise InvalidInputError(
            f"The {what} is {len(cleaned):,} characters long; please keep it under {max_chars:,} characters."
        )
    return cleaned


def clean_goal(goal: object) -> str:
    """The goal, e.g. "Make pancakes": short, high-level text."""
    return clean_text(goal, "goal", MAX_GOAL_CHARS)


def clean_steps(steps: Sequence[str] | None) -> list[str]:
    """The steps, 1 to ``MAX_STEPS`` of them, each cleaned like the goal."""
    if steps is None or isinstance(steps, str):
        raise InvalidInputError("The steps must be a list of texts, one per step.")
    steps = list(steps)
    if not steps:
        raise InvalidInputError("There are no steps; type at least one step or let the planner write them.")
    if len(steps) > MAX_STEPS:
        raise InvalidInputError(f"There are {len(steps)} steps; at most {MAX_STEPS} can be illustrated at once.")
    return [clean_text(step, f"text of step {i}", MAX_STEP_CHARS) for i, step in enumerate(steps, start=1)]


def check_number(value: float, name: str, low: float, high: float, integer: bool = False) -> None:
    """Refuse a setting outside [low, high] (or not an integer when one is needed) with the allowed range."""
    kind = "a whole number" if integer else "a number"
    ok = isinstance(value, int) and not isinstance(value, bool) if integer else isinstance(value, (int, float))
    if not ok or (not integer and not math.isfinite(value)) or not low <= value <= high:
        raise InvalidInputError(f"{name} must be {kind} from {low:g} to {high:g}, got {value!r}.")


def check_size(height: int, width: int, multiple: int) -> None:
    """Image sides must be whole multiples of what the VAE and UNet downsample by."""
    for name, side in (("Height", height), ("Width", width)):
        if not isinstance(side, int) or isinstance(side, bool) or not multiple <= side <= MAX_SIDE or side % multiple:
            raise InvalidInputError(
                f"{name} must be a multiple of {multiple} pixels from {multiple} to {MAX_SIDE}, got {side!r}."
            )
