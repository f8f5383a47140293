"""Captions drawn on pictures: glyphs for every script a recipe uses, one line breaker, and bidi-safe text.

Every test runs offline on the CPU in well under a second. The CJK test needs a CJK font on the machine (a Space
installs ``fonts-noto-cjk`` from ``packages.txt``) and says so when it skips; the Latin, Greek, Cyrillic and symbol
test always runs, on DejaVu Sans from matplotlib.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from showme_i2g import captions, outputs
from showme_i2g.captions import (
    CaptionFont,
    burn_caption,
    caption_font,
    clean_caption,
    coverage,
    wrap_caption,
)
from showme_i2g.outputs import make_storyboard

SAMPLE = "Mélangez ½ – € 鸡蛋 Привет"
NON_CJK = "chicharrón Mélangez ½ – € … αβγ Ωμέγα Привет ёЖ ß œ ç ñ ü ° × ¼"
CJK = "鸡蛋炒饭ひらがなカタカナ한국어"
#: A code point no font maps: every font draws it as its missing-glyph box.
NOT_A_CHARACTER = "\U0010ffff"


def _mask(font, text: str) -> np.ndarray:
    return np.asarray(font.getmask(text, mode="L"), dtype=np.uint8).reshape(font.getmask(text).size[::-1])


def _assert_real_glyphs(text: str, size: int = 24) -> None:
    """Each character's font maps it, and its drawing differs from that font's missing-glyph box."""
    font = caption_font(size)
    for char in text.replace(" ", ""):
        chosen = font.font_for(char)
        assert chosen is not None, f"no font on this machine has {char!r} (U+{ord(char):04X})"
        assert ord(char) in coverage(captions.FontFace(chosen.path, chosen.index)), char
        box = _mask(chosen, NOT_A_CHARACTER)
        glyph = _mask(chosen, char)
        assert glyph.shape != box.shape or not np.array_equal(glyph, box), f"{char!r} is drawn as a box"


def _cjk_font_installed() -> bool:
    return caption_font(24).font_for("鸡") is not None


# ---------------------------------------------------------------------------------------------------------------------
# Glyphs
# ---------------------------------------------------------------------------------------------------------------------


def test_latin_greek_cyrillic_and_symbols_have_real_glyphs() -> None:
    assert caption_font(24).face is not None and caption_font(24).face.path.endswith("DejaVuSans.ttf")
    _assert_real_glyphs(NON_CJK)
    _assert_real_glyphs(SAMPLE.replace("鸡蛋", ""))


@pytest.mark.skipif(not _cjk_font_installed(), reason="no CJK font is installed (apt-get install fonts-noto-cjk)")
def test_cjk_falls_back_to_an_installed_cjk_font() -> None:
    _assert_real_glyphs(CJK)
    _assert_real_glyphs(SAMPLE)
    runs = caption_font(24).runs(SAMPLE)
    assert [run for run, _ in runs] == ["Mélangez ½ – € ", "鸡蛋 ", "Привет"]  # spaces stay with the run before
    assert runs[0][1] is runs[2][1] is caption_font(24).primary and runs[1][1] is not caption_font(24).primary


def test_the_sample_is_drawn_and_measured_as_drawn() -> None:
    font = caption_font(24)
    image = Image.new("RGB", (800, 40), (255, 255, 255))
    from PIL import ImageDraw

    font.draw(ImageDraw.Draw(image), (0, 4), SAMPLE, fill=(0, 0, 0))
    inked = np.flatnonzero((np.asarray(image) < 128).any(axis=(0, 2)))
    assert inked.min() < 5 and abs(inked.max() - font.length(SAMPLE)) < 6  # the ink ends where length() says


def test_without_fontconfig_a_missing_glyph_falls_back_to_the_main_font(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(captions.shutil, "which", lambda name: None)
    monkeypatch.setattr(captions, "_FALLBACKS", captions._Fallbacks())
    font = CaptionFont(24)
    assert font.font_for("鸡") is None
    assert [f for _, f in font.runs("a鸡b")] == [font.primary]  # drawn (as a box) rather than failing
    assert wrap_caption("鸡蛋 eggs", font, 500, 2) == ["鸡蛋 eggs"]


# ---------------------------------------------------------------------------------------------------------------------
# Cleaning
# ---------------------------------------------------------------------------------------------------------------------


def test_clean_caption_strips_bidi_controls_and_joins_lines() -> None:
    assert clean_caption("\u202eAdd salt\u202c") == "Add salt"
    assert clean_caption("\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069Mix") == "Mix"
    assert clean_caption("  Boil\n\tthe\r\nwater \x00 ") == "Boil the water"
    assert clean_caption("Me\u0301langez") == "Mélangez"  # one composed glyph
    assert clean_caption("½\u00a0cup") == "½\u00a0cup"  # a no-break space stays


def test_a_right_to_left_override_does_not_reverse_a_burned_caption() -> None:
    frame = Image.new("RGB", (384, 216), (200, 200, 200))
    reversed_by_override = burn_caption(frame, "\u202eAdd salt")
    assert np.array_equal(np.asarray(reversed_by_override), np.asarray(burn_caption(frame, "Add salt")))


# ---------------------------------------------------------------------------------------------------------------------
# Wrapping
# ---------------------------------------------------------------------------------------------------------------------


def test_ascii_wraps_greedily_at_spaces_within_the_width() -> None:
    font = caption_font(16)
    text = "Bring a large pot of salted water to the boil, then add the pasta and stir."
    lines = wrap_caption(text, font, 180, max_lines=10)
    assert " ".join(lines) == text and len(lines) > 1
    assert all(font.length(line) <= 180 for line in lines)
    for line, following in itertools.pairwise(lines):  # greedy: the next word did not fit
        assert font.length(f"{line} {following.split(' ')[0]}") > 180
    assert wrap_caption("Stir.", font, 180, 3) == ["Stir."]
    assert wrap_caption("   ", font, 180, 3) == []


def test_a_word_wider_than_the_line_is_cut_and_fits() -> None:
    font = caption_font(16)
    word = "Donaudampfschifffahrtsgesellschaftskapitänsmütze"
    lines = wrap_caption(f"Wear the {word} now", font, 120, max_lines=10)
    assert all(font.length(line) <= 120 for line in lines)
    assert "".join(lines).replace(" ", "") == f"Wearthe{word}now"
    assert lines[0] == "Wear the"


def test_cjk_breaks_between_characters_within_the_width() -> None:
    font = caption_font(16)
    text = "把鸡蛋打入碗中，加入少许盐，用筷子搅拌均匀。然后把锅烧热，倒入油。"
    lines = wrap_caption(text, font, 100, max_lines=20)
    assert len(lines) > 1 and "".join(lines) == text
    assert all(font.length(line) <= 100 for line in lines)
    assert not any(line[0] in "，。" for line in lines)  # closing punctuation never starts a line


def test_no_break_space_keeps_a_quantity_together() -> None:
    font = caption_font(16)
    text = "Add " + "flour " * 3 + "½\u00a0cup"
    for width in range(60, 200, 7):
        assert not any(line.endswith("½") for line in wrap_caption(text, font, width, max_lines=10))


def test_the_last_line_is_ellipsised_when_lines_run_out() -> None:
    font = caption_font(16)
    lines = wrap_caption("stir " * 200, font, 150, max_lines=3)
    assert len(lines) == 3 and lines[-1].endswith(" …")
    assert all(font.length(line) <= 150 for line in lines)
    cjk = wrap_caption("搅拌" * 100, font, 80, max_lines=2)
    assert len(cjk) == 2 and cjk[-1].endswith("…") and font.length(cjk[-1]) <= 80


def test_wrap_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_lines"):
        wrap_caption("Mix", caption_font(16), 100, max_lines=0)
    with pytest.raises(ValueError, match="width_px"):
        wrap_caption("Mix", caption_font(16), 0, max_lines=2)
    with pytest.raises(ValueError, match="size"):
        CaptionFont(0)


def test_storyboard_and_video_captions_wrap_through_the_same_function(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int, float, list[str]]] = []
    real = captions.wrap_caption

    def spy(text, font, width_px, max_lines):
        lines = real(text, font, width_px, max_lines)
        calls.append((text, font.size, width_px, lines))
        return lines

    monkeypatch.setattr(captions, "wrap_caption", spy)
    monkeypatch.setattr(outputs, "wrap_caption", spy)
    text = "Mélangez la farine, le sucre et ½ tasse de lait, puis 鸡蛋 Привет, et mélangez encore longtemps"
    frame = Image.new("RGB", (384, 216), (200, 200, 200))
    captioned = np.asarray(burn_caption(frame, text))
    make_storyboard([Image.new("RGB", (64, 64))], [text], tile=128)
    (_, video_size, video_width, video_lines), = (call for call in calls if call[0] == text)
    (_, board_size, board_width, board_lines), = (call for call in calls if call[0] == f"1. {text}")
    assert (video_size, video_width) == (16, 384 - 2 * 8) and (board_size, board_width) == (12, 128)
    # what each path drew is what the one line breaker gave it
    band_rows = int(((captioned != np.asarray(frame)).any(axis=(1, 2))).sum())
    assert len(video_lines) == 3 and band_rows == len(video_lines) * int(16 * 1.25) + 2 * 8
    assert board_lines == real(f"1. {text}", caption_font(12), 128, 5) and len(board_lines) > 1
