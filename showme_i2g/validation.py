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


# ShowMe's limits live here, free of torch, so that the CLI and the app refuse bad input before importing a model.
MAX_INSTRUCTION_CHARS = 500
"""The longest ShowMe instruction accepted (a recipe step is cut to it at a word boundary by the app)."""
MAX_FRAMES = 32
"""The most frames a ShowMe video may have (the models are trained on 16)."""
DEFAULT_FRAMES = 16
"""The frames of a ShowMe video when none are asked for: what DynamiCrafter and ShowMe are trained on."""
CONDITIONING_MODES = ("mask", "repeat")
"""``mask``: ShowMe (photo on frame 0, zeros elsewhere); ``repeat``: vanilla DynamiCrafter (photo on every frame)."""


def check_showme_settings(
    instruction: object,
    *,
    num_frames: int | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    eta: float | None = None,
    fs: int | None = None,
) -> str:
    """The cleaned instruction, once it and every setting given (``None``: the preset's default) are in range.

    The same ranges as ``ShowMePipeline``'s own check, so a refusal here is the one the pipeline would give, only
    seconds earlier: before torch is imported and before any model is built.
    """
    instruction = clean_text(instruction, "instruction", MAX_INSTRUCTION_CHARS)
    if num_frames is not None:
        check_number(num_frames, "num_frames", 2, MAX_FRAMES, integer=True)
    if num_inference_steps is not None:
        check_number(num_inference_steps, "num_inference_steps", 1, 1000, integer=True)
    if guidance_scale is not None:
        check_number(guidance_scale, "guidance_scale", 0, 30)
    if eta is not None:
        check_number(eta, "eta", 0, 1)
    if fs is not None:
        check_number(fs, "fs (frame stride)", 1, 100, integer=True)
    return instruction
