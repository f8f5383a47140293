"""The photo tab's examples, drawn here: the project ships no photos of its own, so no licence question arises."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from PIL import Image, ImageDraw


def _box(size: tuple[int, int], *fractions: float) -> tuple[int, ...]:
    """Fractions of (width, height, width, height...) -> pixels, so each scene is drawn at any size."""
    return tuple(round(f * size[i % 2]) for i, f in enumerate(fractions))


def _draw_cutting_board(size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, (222, 214, 198))  # tiled wall
    draw = ImageDraw.Draw(image)
    for i in range(1, 8):
        draw.line(_box(size, i / 8, 0, i / 8, 0.45), fill=(205, 198, 182), width=2)
        draw.line(_box(size, 0, i * 0.45 / 8, 1, i * 0.45 / 8), fill=(205, 198, 182), width=2)
    draw.rectangle(_box(size, 0, 0.45, 1, 1), fill=(150, 110, 75))  # worktop
    draw.rounded_rectangle(_box(size, 0.18, 0.52, 0.82, 0.92), radius=8, fill=(205, 160, 105), outline=(160, 115, 70),
                           width=3)
    draw.ellipse(_box(size, 0.32, 0.58, 0.52, 0.84), fill=(205, 35, 30), outline=(150, 20, 20), width=2)  # tomato
    draw.polygon([_box(size, 0.38, 0.59), _box(size, 0.42, 0.53), _box(size, 0.46, 0.59)], fill=(40, 130, 40))
    draw.polygon([_box(size, 0.58, 0.62), _box(size, 0.78, 0.58), _box(size, 0.78, 0.64), _box(size, 0.58, 0.66)],
                 fill=(200, 205, 210), outline=(120, 125, 130))  # knife blade
    draw.rectangle(_box(size, 0.78, 0.585, 0.90, 0.635), fill=(40, 30, 25))  # and handle
    return image


def _draw_mug_and_teapot(size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, (190, 215, 230))
    draw = ImageDraw.Draw(image)
    draw.rectangle(_box(size, 0, 0.6, 1, 1), fill=(120, 85, 60))  # table
    draw.rounded_rectangle(_box(size, 0.30, 0.30, 0.62, 0.78), radius=8, fill=(245, 245, 240), outline=(150, 150, 150),
                           width=3)  # mug
    draw.ellipse(_box(size, 0.30, 0.26, 0.62, 0.34), fill=(235, 235, 230), outline=(150, 150, 150), width=3)
    draw.arc(_box(size, 0.55, 0.40, 0.74, 0.64), -90, 90, fill=(150, 150, 150), width=6)
    draw.ellipse(_box(size, 0.70, 0.12, 0.92, 0.50), fill=(60, 110, 160), outline=(40, 80, 120), width=3)  # teapot
    return image


def _draw_egg_in_pan(size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, (60, 60, 65))  # hob
    draw = ImageDraw.Draw(image)
    for cx, cy in ((0.3, 0.35), (0.7, 0.35), (0.3, 0.75), (0.7, 0.75)):
        draw.ellipse(_box(size, cx - 0.15, cy - 0.15, cx + 0.15, cy + 0.15), outline=(90, 90, 95), width=4)
    draw.ellipse(_box(size, 0.22, 0.25, 0.78, 0.81), fill=(35, 35, 38), outline=(20, 20, 20), width=5)  # pan
    draw.rectangle(_box(size, 0.78, 0.50, 0.98, 0.56), fill=(25, 25, 25))
    draw.ellipse(_box(size, 0.40, 0.42, 0.60, 0.62), fill=(250, 250, 245))  # egg white
    draw.ellipse(_box(size, 0.46, 0.48, 0.54, 0.56), fill=(250, 190, 30))  # yolk
    return image


EXAMPLE_PHOTOS = (
    ("kitchen_cutting_board.png", _draw_cutting_board, "Cut the tomato in half"),
    ("mug_and_teapot.png", _draw_mug_and_teapot, "Pour the tea into the mug"),
    ("egg_in_pan.png", _draw_egg_in_pan, "Flip the egg in the pan"),
)


def make_example_photos(folder: str | os.PathLike, size: tuple[int, int] = (512, 384)) -> list[tuple[str, str]]:
    """Draw the example photos into ``folder`` (existing files are kept): ``[(path, instruction), ...]``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    examples = []
    for name, draw, instruction in EXAMPLE_PHOTOS:
        path = folder / name
        if not path.is_file():
            partial = folder / f".{uuid.uuid4().hex[:8]}.{name}"
            draw(size).save(partial, format="PNG")
            os.replace(partial, path)
        examples.append((str(path), instruction))
    return examples
