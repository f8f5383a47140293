"""Storyboard: a grid of the step images with their numbered captions."""

import numpy as np
import pytest
from PIL import Image

from showme_i2g.media import make_storyboard, save_step_images


def _tiles(n):
    return [Image.new("RGB", (64, 64), (40 * i % 255, 100, 200)) for i in range(n)]


def test_storyboard_layout_and_pixels():
    board = make_storyboard(_tiles(6), [f"Step text {i}" for i in range(6)], title="Make tea", tile=128)
    margin = max(8, 128 // 32)
    assert board.width == 4 * (128 + margin) + margin  # at most 4 columns
    pixels = np.asarray(board)
    # the first tile is pasted below the title, resized to 128 x 128
    title_h = int(max(12, 128 // 22) * 1.4) + 2 * margin
    assert tuple(pixels[title_h + margin + 5, margin + 5]) == (0, 100, 200)
    # captions are drawn: the caption band is not blank
    assert (pixels[title_h + margin + 128 + 2 : title_h + margin + 128 + 20, margin : margin + 128] < 200).any()


def test_storyboard_refuses_mismatch():
    with pytest.raises(ValueError, match="2 images but 1 captions"):
        make_storyboard(_tiles(2), ["one"])


def test_save_step_images(tmp_path):
    paths = save_step_images(_tiles(3), tmp_path / "out")
    assert [p.name for p in paths] == ["step_01.png", "step_02.png", "step_03.png"]
    assert Image.open(paths[1]).size == (64, 64)
