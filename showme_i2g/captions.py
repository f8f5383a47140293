"""Caption text drawn onto pictures: the storyboard's step captions and the captions burned into recipe videos.

Recipes are written in every language ("chicharrón", "Mélangez", "½ cup", "鸡蛋", "Привет"), and Pillow's
bundled font has no glyphs for most of that, so it drew boxes. Here:

* **Fonts.** The main font is DejaVu Sans, which ``matplotlib`` ships (Latin, Greek, Cyrillic and common symbols
  such as ½ – € …; free licence). A character it lacks is drawn with a font that has it, found through fontconfig
  (``fc-match``/``fc-list``) when the machine has fontconfig; a CJK font installed on the system (the Space installs
  ``fonts-noto-cjk``, see ``packages.txt``) therefore covers Chinese, Japanese and Korean. Coverage is read from
  each font's character map with fontTools, never guessed; fonts and look-ups are cached.
* **Runs.** A line is drawn as runs of characters that share a font, on one baseline (:class:`CaptionFont`).
* **Wrapping.** :func:`wrap_caption` is the one line breaker: it measures real pixel widths with the fonts the runs
  are drawn with, breaks at spaces and between CJK characters (never before closing punctuation), cuts a word wider
  than the line, and ends the last line with an ellipsis when lines run out. The storyboard
  (:func:`showme_i2g.outputs.make_storyboard`) and the video captions (:func:`burn_caption`) both use it, so the same
  text at the same width gives the same lines in both.
* **Cleaning.** :func:`clean_caption` joins lines, composes accents (NFC) and removes bidirectional override,
  embedding and isolate controls, which would otherwise reverse what the caption shows.

Nothing here imports torch or gradio, and matplotlib is located without being imported.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import shutil
import subprocess
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "CaptionFont",
    "FontFace",
    "burn_caption",
    "caption_font",
    "clean_caption",
    "primary_face",
    "wrap_caption",
]

_logger = logging.getLogger(__name__)

#: The package that ships the main caption font, and the font's path inside it.
PRIMARY_FONT_PACKAGE = "matplotlib"
_PRIMARY_FONT_FILE = ("mpl-data", "fonts", "ttf", "DejaVuSans.ttf")
#: What fontconfig is asked for when the package is missing, and what a fallback should look like.
_FONTCONFIG_FAMILY = "sans-serif"
#: How many of the fonts fontconfig has for one character are checked (each check reads a character map).
_FALLBACK_CANDIDATES = 8
_FONTCONFIG_TIMEOUT_S = 10.0

#: Bidirectional embedding and override (U+202A-U+202E) and isolate (U+2066-U+2069) controls. U+202E, for one,
#: would show "Add salt" as "tlas ddA".
_BIDI_CONTROLS_RE = re.compile("[\u202a-\u202e\u2066-\u2069]")
#: Runs of white space, control characters and line/paragraph separators become one space; the no-break spaces
#: (U+00A0, U+2007, U+202F, as in "½\u00a0cup") are kept so that no line breaks there.
_SPACES_RE = re.compile(r"(?:(?![\u00a0\u2007\u202f])[\s\x00-\x1f\x7f-\x9f])+")
_ELLIPSIS = "…"
#: Characters that may not end a line's text before an ellipsis ("Stir, …" reads worse than "Stir …").
_TRAILING_PUNCTUATION = " .,;:"


# ---------------------------------------------------------------------------------------------------------------------
# Fonts: the main one, fallbacks through fontconfig, coverage from the character map
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FontFace:
    """One face of a font file (a ``.ttc`` collection holds several, told apart by ``index``)."""

    path: str
    index: int = 0


def _package_font() -> FontFace | None:
    """DejaVu Sans from matplotlib's data folder, found without importing matplotlib (slow, and not needed)."""
    try:
        spec = importlib.util.find_spec(PRIMARY_FONT_PACKAGE)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location).joinpath(*_PRIMARY_FONT_FILE)
        if path.is_file():
            return FontFace(str(path))
    return None


def _fontconfig(*args: str) -> list[FontFace]:
    """Faces listed by a fontconfig command (``fc-match``/``fc-list``), best first; none without fontconfig."""
    executable = shutil.which(args[0])
    if executable is None:
        return []
    try:
        listing = subprocess.run(
            [executable, *args[1:]], capture_output=True, text=True, timeout=_FONTCONFIG_TIMEOUT_S, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        _logger.info("fontconfig could not be asked for fonts (%s); captions use the main font only.", error)
        return []
    faces = []
    for line in listing.splitlines():
        path, _, index = line.partition("\t")
        if path.lower().endswith((".ttf", ".otf", ".ttc", ".otc")) and Path(path).is_file():
            faces.append(FontFace(path, int(index) if index.strip().isdigit() else 0))
    return list(dict.fromkeys(faces))


@lru_cache(maxsize=1)
def primary_face() -> FontFace | None:
    """The main caption font: matplotlib's DejaVu Sans, else fontconfig's sans-serif, else ``None`` (Pillow's own)."""
    face = _package_font()
    if face is None:
        found = _fontconfig("fc-match", "--format=%{file}\t%{index}\n", _FONTCONFIG_FAMILY)
        face = found[0] if found else None
        _logger.warning(
            "%s is not installed, so captions use %s; install it for the intended caption font.",
            PRIMARY_FONT_PACKAGE, face.path if face else "Pillow's bundled font (letters outside ASCII may be boxes)",
        )
    return face


@lru_cache(maxsize=64)
def coverage(face: FontFace) -> frozenset[int]:
    """The code points ``face`` has glyphs for, from its character map (empty for a font fontTools cannot read)."""
    from fontTools.ttLib import TTFont, TTLibError

    try:
        with TTFont(face.path, fontNumber=face.index, lazy=True) as font:
            return frozenset(font.getBestCmap() or ())
    except (OSError, TTLibError, KeyError, ValueError, AssertionError) as error:
        _logger.info("Could not read the character map of %s (%s); it is not used for captions.", face.path, error)
        return frozenset()


@lru_cache(maxsize=256)
def _truetype(face: FontFace, size: int) -> ImageFont.FreeTypeFont | None:
    """``face`` at ``size`` pixels, or ``None`` for a font Pillow cannot draw at that size (colour-bitmap emoji)."""
    try:
        return ImageFont.truetype(face.path, size=size, index=face.index)
    except OSError as error:
        _logger.info("Cannot draw captions with %s at %d px (%s).", face.path, size, error)
        return None


class _Fallbacks:
    """Fonts found for characters the main font lacks, in the order found, shared by every size and thread.

    Characters of one script usually share a font, so known fallbacks are tried before fontconfig is asked again:
    a Chinese caption costs one fontconfig look-up, not one per character.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faces: list[FontFace] = []
        self._missing: set[int] = set()

    def face_for(self, codepoint: int) -> FontFace | None:
        """A face with a glyph for ``codepoint``, or ``None`` when no font on this machine has one."""
        with self._lock:
            for face in self._faces:
                if codepoint in coverage(face):
                    return face
            if codepoint in self._missing:
                return None
            face = self._ask_fontconfig(codepoint)
            if face is None:
                self._missing.add(codepoint)
            elif face not in self._faces:
                self._faces.append(face)
            return face

    @staticmethod
    def _ask_fontconfig(codepoint: int) -> FontFace | None:
        """Of the fonts fontconfig lists as having the character, its best sans-serif match that Pillow can draw.

        ``fc-list`` answers exactly which fonts have it (one call settles a character no font has); ``fc-match
        --sort`` ranks them by how well they suit a sans-serif caption.
        """
        charset = f":charset={codepoint:x}"
        having = _fontconfig("fc-list", "--format=%{file}\t%{index}\n", charset)
        if not having:
            return None
        ranked = _fontconfig("fc-match", "--sort", "--format=%{file}\t%{index}\n", _FONTCONFIG_FAMILY + charset)
        having_set = set(having)
        candidates = [face for face in ranked if face in having_set] + having
        for face in list(dict.fromkeys(candidates))[:_FALLBACK_CANDIDATES]:
            if codepoint in coverage(face) and _truetype(face, 16) is not None:
                return face
        return None


_FALLBACKS = _Fallbacks()


def _attaches(char: str) -> bool:
    """Whether ``char`` is drawn with its neighbour's font (spaces, accents, joiners) rather than choosing its own."""
    category = unicodedata.category(char)
    return char.isspace() or category[0] == "M" or category in ("Cf", "Cc")


class CaptionFont:
    """Caption text at one pixel size, drawn with the main font and, per character, a fallback that has the glyph.

    Get one from :func:`caption_font` (cached per size). :meth:`runs` splits text by font, :meth:`length` measures
    it as drawn, :meth:`draw` draws one line. Raqm, where Pillow has it, shapes each run.
    """

    def __init__(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a whole number of pixels of at least 1, not {size!r}.")
        self.size = size
        self.face = primary_face()
        loaded = _truetype(self.face, size) if self.face is not None else None
        self.primary: ImageFont.FreeTypeFont | ImageFont.ImageFont = loaded or ImageFont.load_default(size=size)
        # Pillow's bundled font has no file to read a character map from; it has ASCII, so ASCII stays with it.
        self._primary_covers = coverage(self.face) if loaded is not None else frozenset(range(0x20, 0x7F))
        ascent, descent = self.primary.getmetrics()
        self.ascent, self.descent = ascent, descent

    def font_for(self, char: str) -> ImageFont.FreeTypeFont | ImageFont.ImageFont | None:
        """The font that draws ``char``: the main one when it has the glyph, else a fallback; ``None`` when no font
        on this machine has it (it is then drawn with the main font, as its missing-glyph box)."""
        codepoint = ord(char)
        if codepoint in self._primary_covers:
            return self.primary
        face = _FALLBACKS.face_for(codepoint)
        return _truetype(face, self.size) if face is not None else None

    def runs(self, text: str) -> list[tuple[str, ImageFont.FreeTypeFont | ImageFont.ImageFont]]:
        """``text`` split into ``(run, font)`` pairs, each run the longest stretch one font draws."""
        runs: list[tuple[str, ImageFont.FreeTypeFont | ImageFont.ImageFont]] = []
        for char in text:
            font = runs[-1][1] if runs and _attaches(char) else (self.font_for(char) or self.primary)
            if runs and runs[-1][1] is font:
                runs[-1] = (runs[-1][0] + char, font)
            else:
                runs.append((char, font))
        return runs

    def length(self, text: str) -> float:
        """The width of ``text`` in pixels, as :meth:`draw` draws it."""
        return sum(font.getlength(run) for run, font in self.runs(text))

    def draw(self, draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill: tuple[int, ...]) -> None:
        """Draw one line with its top-left corner at ``xy``: every run on the main font's baseline."""
        x, baseline = float(xy[0]), float(xy[1]) + self.ascent
        for run, font in self.runs(text):
            draw.text((x, baseline), run, font=font, fill=fill, anchor="ls")
            x += font.getlength(run)


@lru_cache(maxsize=32)
def caption_font(size: int) -> CaptionFont:
    """The caption font at ``size`` pixels (cached: fonts are read once per size)."""
    return CaptionFont(size)


# ---------------------------------------------------------------------------------------------------------------------
# Cleaning and wrapping
# ---------------------------------------------------------------------------------------------------------------------


def clean_caption(text: str) -> str:
    """Caption text as it is drawn: one line of NFC text, no bidi controls, spaces collapsed.

    Line breaks and other control characters become spaces (the caption is wrapped to its width anyway);
    decomposed accents are composed so that "é" is one glyph; bidirectional override, embedding and isolate
    controls are removed so that no caption is shown reversed.
    """
    text = unicodedata.normalize("NFC", _BIDI_CONTROLS_RE.sub("", text))
    return _SPACES_RE.sub(" ", text).strip(" ")


def _is_wide(char: str) -> bool:
    """CJK ideographs, kana, hangul and full-width forms: text that may break between any two characters."""
    return unicodedata.east_asian_width(char) in ("W", "F")


def _may_break_between(before: str, after: str) -> bool:
    """Whether a line may break between two characters of one space-free word.

    Only next to a wide (CJK) character or after a zero-width space, and never before closing punctuation ("。",
    ")", "、"), after opening punctuation ("「", "("), or before an accent.
    """
    if unicodedata.category(after)[0] == "M" or unicodedata.category(after) in ("Pe", "Pf", "Po"):
        return False
    if unicodedata.category(before) in ("Ps", "Pi"):
        return False
    return before == "\u200b" or _is_wide(before) or _is_wide(after)


def _pieces(word: str) -> list[str]:
    """A space-free word split where a line may break: whole for Latin words, per character for CJK."""
    pieces, start = [], 0
    for i in range(1, len(word)):
        if _may_break_between(word[i - 1], word[i]):
            pieces.append(word[start:i])
            start = i
    pieces.append(word[start:])
    return pieces


def _longest_fitting_prefix(text: str, font: CaptionFont, width_px: float) -> int:
    """How many characters of ``text`` fit in ``width_px`` (at least 1, never splitting off an accent)."""
    low, high = 1, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if font.length(text[:middle]) <= width_px:
            low = middle
        else:
            high = middle - 1
    while 1 < low < len(text) and unicodedata.category(text[low])[0] == "M":
        low -= 1
    return low


def _with_ellipsis(line: str, font: CaptionFont, width_px: float) -> str:
    """``line`` shortened until "line …" fits, for the last line of a caption that has more text than lines."""
    line = line.rstrip(_TRAILING_PUNCTUATION)
    while True:
        separator = "" if not line or _is_wide(line[-1]) else " "
        ended = f"{line}{separator}{_ELLIPSIS}"
        if not line or font.length(ended) <= width_px:
            return ended
        line = line[:-1].rstrip(_TRAILING_PUNCTUATION)


def wrap_caption(text: str, font: CaptionFont, width_px: float, max_lines: int) -> list[str]:
    """``text`` (cleaned with :func:`clean_caption`) broken into at most ``max_lines`` lines of ``width_px`` pixels.

    Greedy: each line takes as many words as fit, measured as drawn. Lines break at spaces and between CJK
    characters; a word wider than a whole line is cut where it must. When the text needs more lines than
    ``max_lines``, the last line ends in "…". The one line breaker for every caption, so the storyboard and the
    videos agree.
    """
    if isinstance(max_lines, bool) or not isinstance(max_lines, int) or max_lines < 1:
        raise ValueError(f"max_lines must be a whole number of at least 1, not {max_lines!r}.")
    if not width_px > 0:
        raise ValueError(f"width_px must be a positive number of pixels, not {width_px!r}.")
    lines: list[str] = []
    current = ""
    for word in clean_caption(text).split(" "):
        for number, piece in enumerate(_pieces(word) if word else []):
            joined = f"{current} {piece}" if current and number == 0 else current + piece
            if current and font.length(joined) <= width_px:
                current = joined
                continue
            if current:
                lines.append(current)
            while len(piece) > 1 and font.length(piece) > width_px:
                cut = _longest_fitting_prefix(piece, font, width_px)
                lines.append(piece[:cut])
                piece = piece[cut:]
            current = piece
            if len(lines) > max_lines:
                break
        if len(lines) > max_lines:
            break
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _with_ellipsis(lines[-1], font, width_px)
    return lines


# ---------------------------------------------------------------------------------------------------------------------
# Captions burned into video frames
# ---------------------------------------------------------------------------------------------------------------------


def burn_caption(frame: Image.Image, text: str, max_lines: int = 3) -> Image.Image:
    """A copy of ``frame`` with ``text`` in white on a translucent dark band across its bottom (at most 3 lines)."""
    frame = frame.convert("RGB")
    if not clean_caption(text):
        return frame.copy()
    width, height = frame.size
    font_size = max(10, min(width, height * 2) // 24)
    pad, line_height = max(3, font_size // 2), int(font_size * 1.25)
    font = caption_font(font_size)
    lines = wrap_caption(text, font, width - 2 * pad, max_lines)
    band = min(height, len(lines) * line_height + 2 * pad)
    overlay = Image.new("RGBA", frame.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle((0, height - band, width, height), fill=(0, 0, 0, 165))
    for number, line in enumerate(lines):
        font.draw(draw, (pad, height - band + pad + number * line_height), line, fill=(255, 255, 255, 255))
    return Image.alpha_composite(frame.convert("RGBA"), overlay).convert("RGB")
