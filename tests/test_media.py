"""Storyboard: a grid of the step images with their numbered captions."""

import numpy as np
import pytest
from PIL import Image

from showme_i2g.captions import caption_font, wrap_caption
from showme_i2g.outputs import make_storyboard, save_step_images


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


def test_storyboard_draws_a_long_caption_and_title_in_their_cells() -> None:
    tiles = [Image.new("RGB", (64, 64), (0, 100, 200))] * 2
    title = "Chicharrón de cerdo con salsa verde y tortillas recién hechas " * 3
    board = make_storyboard(tiles, ["Mélangez " * 40, "鸡蛋 Привет"], title=title, tile=128)
    font = caption_font(max(12, 128 // 22))
    assert len(wrap_caption("1. " + "Mélangez " * 40, font, 128, 5)) == 5
    margin = max(8, 128 // 32)
    assert board.width == 2 * (128 + margin) + margin
    pixels = np.asarray(board)
    title_height = 2 * int(font.size * 1.4) + 2 * margin  # the title takes its two lines
    assert tuple(pixels[title_height + margin + 5, margin + 5]) == (0, 100, 200)
    caption_top = title_height + margin + 128
    assert board.height == caption_top + 5 * int(font.size * 1.3) + 2 * margin  # five caption lines
    captions = pixels[caption_top:, margin : margin + 128]
    assert (captions < 128).any()  # ink in the caption cell
    gutter = pixels[caption_top:, margin + 128 + 1 : 2 * margin + 128 - 1]
    assert (gutter == 255).all()  # and none spilling into the gap beside it


def test_storyboard_refuses_mismatch():
    with pytest.raises(ValueError, match="2 images but 1 captions"):
        make_storyboard(_tiles(2), ["one"])


def test_save_step_images(tmp_path):
    paths = save_step_images(_tiles(3), tmp_path / "out")
    assert [p.name for p in paths] == ["step_01.png", "step_02.png", "step_03.png"]
    assert Image.open(paths[1]).size == (64, 64)
