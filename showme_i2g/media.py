"""Saving what the pipelines make: step images and a storyboard that tiles the steps with their text.

Kept apart from the pipelines (which return images, never write files) so the CLI and the app share it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

_CAPTION_COLOUR = (30, 30, 30)
_BACKGROUND = (255, 255, 255)


def _font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled scalable font (no system fonts needed)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


def _wrap(text: str, font: ImageFont.ImageFont, width_px: int, max_lines: int) -> list[str]:
    """Greedy word wrap to ``width_px``; an over-long caption ends in an ellipsis rather than overflowing."""
    avg_char = max(1.0, font.getlength("abcdefghijklmnopqrstuvwxyz") / 26)
    lines = textwrap.wrap(text, width=max(8, int(width_px / avg_char)))
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(" .,;") + " …"
    return lines


def make_storyboard(
    images: Sequence[Image.Image],
    captions: Sequence[str],
    title: str | None = None,
    columns: int | None = None,
    tile: int = 384,
) -> Image.Image:
    """One picture: the step images in a grid, each above its numbered caption, with the goal as the title."""
    if len(images) != len(captions):
        raise ValueError(f"Got {len(images)} images but {len(captions)} captions.")
    if not images:
        raise ValueError("A storyboard needs at least one image.")
    columns = columns or min(len(images), 4)
    rows = -(-len(images) // columns)
    margin, font_size = max(8, tile // 32), max(12, tile // 22)
    font, title_font = _font(font_size), _font(int(font_size * 1.4))
    line_height = int(font_size * 1.3)
    wrapped = [_wrap(f"{i}. {caption}", font, tile, max_lines=5) for i, caption in enumerate(captions, start=1)]
    caption_height = line_height * max(len(lines) for lines in wrapped) + margin
    title_height = int(font_size * 1.4) + 2 * margin if title else 0
    cell_w, cell_h = tile + margin, tile + caption_height + margin
    board = Image.new("RGB", (columns * cell_w + margin, rows * cell_h + title_height + margin), _BACKGROUND)
    draw = ImageDraw.Draw(board)
    if title:
        draw.text((margin, margin), title, fill=_CAPTION_COLOUR, font=title_font)
    for index, (image, lines) in enumerate(zip(images, wrapped)):
        x = margin + (index % columns) * cell_w
        y = title_height + margin + (index // columns) * cell_h
        board.paste(image.convert("RGB").resize((tile, tile), Image.Resampling.LANCZOS), (x, y))
        for line_no, line in enumerate(lines):
            draw.text((x, y + tile + margin // 2 + line_no * line_height), line, fill=_CAPTION_COLOUR, font=font)
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
