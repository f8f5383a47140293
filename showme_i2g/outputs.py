"""A run's files, written the same way by the CLI, the app and ``eval.generate``: one home for their layout.

An illustration run is ``step_01.png ...``, ``storyboard.png`` and ``run.json``; a photo run is ``edited.png``
or ``video.mp4``/``video.gif`` and ``run.json``. ``run.json`` is written last and atomically, so a folder holding
one is a finished run (``eval.generate`` resumes on that), and values JSON cannot hold (paths) become strings.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from .media import make_storyboard, save_step_images

RUN_JSON = "run.json"
STORYBOARD = "storyboard.png"

__all__ = ["RUN_JSON", "STORYBOARD", "IllustrationFiles", "redraw_settings", "write_illustrations", "write_run_json"]


def write_run_json(path: str | os.PathLike, record: dict) -> Path:
    """``record`` as indented UTF-8 JSON at ``path``, complete or not at all (its folder is made if needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".run-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class IllustrationFiles:
    steps: list[Path]
    storyboard: Path


def write_illustrations(images: Sequence[Image.Image], steps: Sequence[str], goal: str, folder: str | os.PathLike
                        ) -> IllustrationFiles:
    """One PNG per step and the storyboard (the steps tiled under the goal) into ``folder``; run.json is the
    caller's, written last with :func:`write_run_json`."""
    folder = Path(folder)
    paths = save_step_images(images, folder)
    storyboard = folder / STORYBOARD
    make_storyboard(images, list(steps), title=goal).save(storyboard)
    return IllustrationFiles(steps=paths, storyboard=storyboard)


def redraw_settings(record: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a finished illustration run (its ``run.json``, or its metadata plus ``reference``), for
    drawing some of its steps again: the same preset, size, sampler, weights, anchor, kitchen photo and LoRA, so
    that the kept pictures and the new ones belong together. A value the run did not record is ``None``.

    The CLI's ``--keep DIR`` and the app's "Re-draw this step" both start from this.
    """
    names = ("preset", "num_inference_steps", "guidance_scale", "height", "width", "neighbour_weight",
             "negative_prompt", "reference", "reference_weight", "anchor", "anchor_weight", "max_batch", "lora",
             "lora_scale")
    return {name: record.get(name) for name in names}
