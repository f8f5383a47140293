"""Checks on what users type, shared by every pipeline, the CLI and the app: each failure is one clear sentence.

Kept free of models so the CLI and the app can refuse bad input before spending seconds (or minutes) loading one.
"""

from __future__ import annotations

import math
import unicodedata

from .errors import InvalidInputError

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


def check_number(value: float, name: str, low: float, high: float, integer: bool = False) -> None:
    """Refuse a setting outside [low, high] (or not an integer when one is needed) with the allowed range."""
    kind = "a whole number" if integer else "a number"
    ok = isinstance(value, int) and not isinstance(value, bool) if integer else isinstance(value, (int, float))
    if not ok or (not integer and not math.isfinite(value)) or not low <= value <= high:
        raise InvalidInputError(f"{name} must be {kind} from {low:g} to {high:g}, got {value!r}.")
