"""I2G's input limits: the goal, the steps and the image size (generic text and number checks: ``validation``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..errors import InvalidInputError
from ..validation import check_number, clean_text

__all__ = ["ANCHOR_CHOICES", "check_anchor_options", "check_kept_images", "check_number", "check_size", "clean_goal",
           "clean_steps", "clean_text"]

MAX_STEPS = 16
MAX_GOAL_CHARS = 300
MAX_STEP_CHARS = 2000
MAX_INFERENCE_STEPS = 200
MAX_GUIDANCE = 30.0
MAX_NEIGHBOUR_WEIGHT = 10.0
MAX_SIDE = 2048
ANCHOR_CHOICES = ("reference", "first")  # what every step may also attend to (see .anchors)


def clean_goal(goal: object) -> str:
    """The goal, e.g. "Make pancakes": short, high-level text."""
    return clean_text(goal, "goal", MAX_GOAL_CHARS)


def clean_steps(steps: Sequence[str] | None, max_steps: int | None = MAX_STEPS) -> list[str]:
    """The steps, each cleaned like the goal; at most ``max_steps`` of them.

    ``MAX_STEPS`` protects a shared server (the app) and is the entry points' default; the pipeline itself takes
    any number (``max_steps=None``): neighbour attention is linear in the number of steps, and ``max_batch``
    bounds the memory of one batch.
    """
    if steps is None or isinstance(steps, str):
        raise InvalidInputError("The steps must be a list of texts, one per step.")
    steps = list(steps)
    if not steps:
        raise InvalidInputError("There are no steps; type at least one step or let the planner write them.")
    if max_steps is not None and len(steps) > max_steps:
        raise InvalidInputError(f"There are {len(steps)} steps; at most {max_steps} can be illustrated at once.")
    return [clean_text(step, f"text of step {i}", MAX_STEP_CHARS) for i, step in enumerate(steps, start=1)]


def check_size(height: int, width: int, multiple: int) -> None:
    """Image sides must be whole multiples of what the VAE and UNet downsample by."""
    for name, side in (("Height", height), ("Width", width)):
        if not isinstance(side, int) or isinstance(side, bool) or not multiple <= side <= MAX_SIDE or side % multiple:
            raise InvalidInputError(
                f"{name} must be a multiple of {multiple} pixels from {multiple} to {MAX_SIDE}, got {side!r}."
            )


def check_anchor_options(anchor: str | None, has_reference: bool, max_batch: int | None) -> None:
    """Refuse a global anchor or batch size that cannot work, in one sentence each."""
    if anchor is not None and anchor not in ANCHOR_CHOICES:
        raise InvalidInputError(f"The anchor must be 'reference', 'first' or none, not {anchor!r}.")
    if anchor == "reference" and not has_reference:
        raise InvalidInputError("The anchor 'reference' needs a reference photo.")
    if max_batch is not None:
        least = 4 if anchor else 3
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < least:
            raise InvalidInputError(
                f"max_batch must be a whole number of at least {least} images"
                f"{' with a global anchor' if anchor else ''}, got {max_batch!r}."
            )


def check_kept_images(keep: Mapping[int, object] | None, num_steps: int, height: int, width: int) -> dict:
    """Kept step images, loaded, by 0-based step: numbered 1 to ``num_steps`` (as in ``step_01.png``) and each of
    the run's size, since a kept image comes back pixel-identical and so cannot be resized. One sentence otherwise.
    """
    from ..media import load_photo

    kept = {}
    for number, image in (keep or {}).items():
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= num_steps:
            raise InvalidInputError(f"Kept steps are numbered 1 to {num_steps} (as in step_01.png), got {number!r}.")
        photo = load_photo(image)
        if photo.size != (width, height):
            raise InvalidInputError(
                f"The kept image of step {number} is {photo.width}x{photo.height} pixels, but this run draws "
                f"{width}x{height}; keep images from a run of the same size."
            )
        kept[number - 1] = photo
    return kept
