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

from PIL import Image, ImageDraw

from .captions import caption_font, wrap_caption

RUN_JSON = "run.json"
STORYBOARD = "storyboard.png"

_CAPTION_COLOUR = (30, 30, 30)
_BACKGROUND = (255, 255, 255)
#: Lines a step's caption may take under its picture, and lines the goal may take as the title.
_CAPTION_LINES = 5
_TITLE_LINES = 2

__all__ = [
    "RUN_JSON", "STORYBOARD", "IllustrationFiles", "make_storyboard", "redraw_settings", "save_step_images",
    "write_illustrations", "write_run_json",
]


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


def make_storyboard(
    images: Sequence[Image.Image],
    captions: Sequence[str],
    title: str | None = None,
    columns: int | None = None,
    tile: int = 384,
) -> Image.Image:
    """One picture: the step images in a grid, each above its numbered caption, with the goal as the title.

    Captions and the title are wrapped by :func:`showme_i2g.captions.wrap_caption`, the same line breaker as the
    video captions, and drawn with per-character font fallback, so accents, CJK and symbols are not boxes.
    """
    if len(images) != len(captions):
        raise ValueError(f"Got {len(images)} images but {len(captions)} captions.")
    if not images:
        raise ValueError("A storyboard needs at least one image.")
    columns = columns or min(len(images), 4)
    rows = -(-len(images) // columns)
    margin, font_size = max(8, tile // 32), max(12, tile // 22)
    font, title_font = caption_font(font_size), caption_font(int(font_size * 1.4))
    line_height, title_line_height = int(font_size * 1.3), int(font_size * 1.4)
    board_width = columns * (tile + margin) + margin
    wrapped = [
        wrap_caption(f"{i}. {caption}", font, tile, max_lines=_CAPTION_LINES)
        for i, caption in enumerate(captions, start=1)
    ]
    title_lines = wrap_caption(title, title_font, board_width - 2 * margin, _TITLE_LINES) if title else []
    caption_height = line_height * max(len(lines) for lines in wrapped) + margin
    title_height = title_line_height * len(title_lines) + 2 * margin if title_lines else 0
    cell_w, cell_h = tile + margin, tile + caption_height + margin
    board = Image.new("RGB", (board_width, rows * cell_h + title_height + margin), _BACKGROUND)
    draw = ImageDraw.Draw(board)
    for line_no, line in enumerate(title_lines):
        title_font.draw(draw, (margin, margin + line_no * title_line_height), line, fill=_CAPTION_COLOUR)
    for index, (image, lines) in enumerate(zip(images, wrapped)):
        x = margin + (index % columns) * cell_w
        y = title_height + margin + (index // columns) * cell_h
        board.paste(image.convert("RGB").resize((tile, tile), Image.Resampling.LANCZOS), (x, y))
        for line_no, line in enumerate(lines):
            font.draw(draw, (x, y + tile + margin // 2 + line_no * line_height), line, fill=_CAPTION_COLOUR)
    return board


def save_step_images(images: Sequence[Image.Image], out_dir: Path) -> list[Path]:
    """Write ``step_01.png``, ``step_02.png``, ... into ``out_dir``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(images, start=1):
        path = out_dir / f"step_{index:02d}.png"
        image.save(path)
        paths.append(path)
    return paths
