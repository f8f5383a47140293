"""Saving what the pipelines make: step images and a storyboard that tiles the steps with their text.

Kept apart from the pipelines (which return images, never write files) so the CLI and the app share it.
Also the way in and out for ShowMe: a user's photo loaded safely as RGB (:func:`load_photo`), fitted to the model's
size and given back at the photo's aspect (:func:`fit_photo`, :func:`restore_photo`), and videos (:func:`save_video`).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import math
import os
import struct
import uuid
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps, ImageSequence

from .captions import caption_font, wrap_caption
from .errors import InvalidInputError

_CAPTION_COLOUR = (30, 30, 30)
_BACKGROUND = (255, 255, 255)
#: Lines a step's caption may take under its picture, and lines the goal may take as the title.
_CAPTION_LINES = 5
_TITLE_LINES = 2


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The main caption font at ``size`` pixels (``app_support`` still imports this name; draw text through
    :func:`showme_i2g.captions.caption_font`, which also falls back per character to fonts that have the glyph)."""
    return caption_font(size).primary


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


# ---------------------------------------------------------------------------------------------------------------------
# Photos in: whatever a cook uploads becomes an 8-bit RGB picture, or one sentence saying why it cannot.
# ---------------------------------------------------------------------------------------------------------------------

_logger = logging.getLogger(__name__)

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_WHITE = (255, 255, 255)


class AnimatedPhotoWarning(UserWarning):
    """An animated GIF/WebP/PNG was given as a photo: only its first frame is used."""


def _describe(source: object) -> str:
    """How a message names the photo: its file name (no folders, no control characters) or a plain phrase."""
    if isinstance(source, (str, os.PathLike)):
        name = Path(os.fspath(source)).name or os.fspath(source)
        name = "".join(ch if ch.isprintable() else "?" for ch in name)
        return f"'{name}'" if name else "the photo"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "the uploaded photo"
    return "the photo"


def _megapixels(pixels: int) -> str:
    """``40_000_000`` -> "40 megapixels", ``1_500`` -> "1500 pixels" (for messages)."""
    if pixels < 100_000:
        return f"{pixels} pixels"
    return f"{pixels / 1_000_000:.1f}".rstrip("0").rstrip(".") + " megapixels"


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert through an embedded ICC profile to sRGB (CMYK print profiles, Display P3 phone photos...).

    Best effort: without LittleCMS, with an sRGB profile already, or with a broken profile the image is returned as
    it is and the plain conversion in :func:`_to_rgb` takes over.
    """
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        from PIL import ImageCms

        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = (ImageCms.getProfileDescription(source) or "").lower()
        if image.mode != "CMYK" and "srgb" in description:
            return image
        output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode=output_mode)
    except Exception as error:  # noqa: BLE001 - a bad profile must not make a good photo unreadable
        _logger.info("Ignoring the photo's colour profile (%s); converting its colours without it.", error)
        return image
    if converted is None:  # pragma: no cover - only with inPlace=True
        return image
    converted.info.pop("icc_profile", None)
    return converted


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB: colour profiles applied, 16-bit scaled (not clipped), transparency on white."""
    image = _to_srgb(image)
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        values = np.asarray(image)
        if mode == "F":
            values = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
            low, high = float(values.min()), float(values.max())
            if 0.0 <= low and high <= 1.0:  # a float picture in [0, 1]
                scaled = values * 255.0
            else:
                scaled = (values - low) * (255.0 / max(high - low, 1e-12))
        else:
            values = values.astype(np.int64)
            low, high = int(values.min()), int(values.max())
            if 0 <= low and high <= 65535:  # 16-bit samples (16-bit PNG, TIFF): 65535 -> 255, keeping the whole range
                scaled = values / 257.0
            else:  # 32-bit integers of some other meaning: stretch what is there over 0..255
                scaled = (values - low) * (255.0 / max(high - low, 1))
        grey = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
        return grey.convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (*_WHITE, 255)), rgba).convert("RGB")
    if mode == "RGB":
        return image
    try:
        return image.convert("RGB")  # CMYK, YCbCr, L, 1, P, ...
    except (ValueError, OSError) as error:
        raise InvalidInputError(
            f"The photo uses a colour format ({mode}) we cannot convert; please save it as a JPEG or PNG and try again."
        ) from error


def load_photo(
    source: str | os.PathLike | bytes | Image.Image,
    *,
    max_pixels: int = 40_000_000,
    min_side: int = 16,
) -> Image.Image:
    """Open a user's photo as a fully loaded 8-bit RGB image, or refuse it in one sentence (:class:`InvalidInputError`).

    ``source`` is a path, the file's bytes (an upload) or a Pillow image. What is done to it:

    * the EXIF orientation is applied (a phone photo taken upright comes out upright);
    * an embedded ICC profile is converted to sRGB when Pillow has LittleCMS; CMYK, greyscale, palette, YCbCr... become
      RGB; 16-bit greyscale (``I;16``/``I``) is scaled 65535 -> 255 rather than clipped; transparency (RGBA, LA, a
      palette or colour key) is composited onto white;
    * an animated GIF/WebP/PNG gives its first frame, with an :class:`AnimatedPhotoWarning` (not an error).

    Refused: a missing file, a file that is not a picture, a truncated or damaged one (the pixels are decoded here, so
    Pillow notices), a picture smaller than ``min_side`` on either side, and one over ``max_pixels``. The size check
    reads the header only, so a 20,000 x 20,000 "decompression bomb" is refused before a single pixel is decoded.

    Truncation is only detected while ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is False (Pillow's default); code that
    turns it on for the whole process makes Pillow fill missing rows with grey instead.
    """
    name = _describe(source)
    opened: Image.Image
    owns_file = True
    try:
        # Pillow's own bomb warning fires at open time, before our header check; max_pixels is the limit here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if isinstance(source, Image.Image):
                opened, owns_file = source, False
            elif isinstance(source, (bytes, bytearray, memoryview)):
                if not len(source):
                    raise InvalidInputError("The uploaded photo is empty; please choose the picture again.")
                opened = Image.open(io.BytesIO(bytes(source)))
            elif isinstance(source, (str, os.PathLike)):
                path = Path(os.fspath(source))
                if not os.fspath(source) or not path.exists():
                    raise InvalidInputError(f"There is no photo at {name}; please check the file name.")
                if path.is_dir():
                    raise InvalidInputError(f"{name} is a folder, not a photo; please choose a picture file.")
                opened = Image.open(path)
            else:
                raise TypeError(f"load_photo takes a path, bytes or a PIL image, not {type(source).__name__}.")
    except Image.DecompressionBombError as error:
        raise InvalidInputError(
            f"The photo is too large to open safely; please use one under {_megapixels(max_pixels)}."
        ) from error
    except PermissionError as error:
        raise InvalidInputError(f"We are not allowed to read {name}; please check the file's permissions.") from error
    except (Image.UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        if isinstance(error, InvalidInputError):
            raise
        raise InvalidInputError(
            f"{name[0].upper()}{name[1:]} is not a picture we can open; please use a JPEG, PNG or WebP photo."
        ) from error

    try:
        width, height = opened.size
        if width * height > max_pixels:
            raise InvalidInputError(
                f"The photo is {width}x{height} ({_megapixels(width * height)}), which is too large; "
                f"please use one under {_megapixels(max_pixels)}."
            )
        if min(width, height) < min_side:
            raise InvalidInputError(
                f"The photo is only {width}x{height} pixels; it needs to be at least {min_side} pixels on each side."
            )
        frames = getattr(opened, "n_frames", 1)
        if getattr(opened, "is_animated", False) or frames > 1:
            warnings.warn(f"{name} is animated ({frames} frames); using its first frame.", AnimatedPhotoWarning, 2)
            _logger.info("%s is animated (%s frames); using its first frame.", name, frames)
            opened.seek(0)
        try:
            opened.load()  # decode now: this is where a truncated or corrupt file shows itself
        except Image.DecompressionBombError as error:
            raise InvalidInputError(
                f"The photo is too large to open safely; please use one under {_megapixels(max_pixels)}."
            ) from error
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error) as error:
            raise InvalidInputError(
                f"{name[0].upper()}{name[1:]} is damaged or was not completely copied, so it cannot be opened; "
                "please send the photo again."
            ) from error
        try:
            oriented = ImageOps.exif_transpose(opened)
        except Exception as error:  # noqa: BLE001 - broken EXIF: keep the pixels as stored
            _logger.info("Ignoring the EXIF orientation of %s (%s).", name, error)
            oriented = opened
        if oriented is None:  # pragma: no cover - only with in_place=True
            oriented = opened
        result = _to_rgb(oriented)
        if result is opened or result is source:
            result = result.copy()  # detached from the file and never the caller's own object
        result.info.pop("icc_profile", None)
        return result
    finally:
        if owns_file:
            opened.close()


# ---------------------------------------------------------------------------------------------------------------------
# Fitting a photo to the model's size, and giving the result back at the photo's own aspect ratio.
# ---------------------------------------------------------------------------------------------------------------------

#: Letterbox colour: mid grey is 0 after the usual [-1, 1] normalisation, the most neutral input for a VAE, and it is
#: cut off again by :func:`restore_photo`. ``pad_colour="edge"`` repeats the border pixels instead.
DEFAULT_PAD_COLOUR = (128, 128, 128)


@dataclass(frozen=True)
class FitInfo:
    """What :func:`fit_photo` did, so :func:`restore_photo` can undo the framing.

    Sizes are (height, width), like ``fit_photo``'s ``size``. ``box`` is (left, top, right, bottom) in pixels:
    for ``"crop"`` the part of the original photo that was kept; for ``"pad"`` where the photo sits in the padded
    target image.
    """

    mode: str
    original_size: tuple[int, int]
    target_size: tuple[int, int]
    box: tuple[int, int, int, int]


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        height, width = (int(side) for side in size)
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"The output size must be two whole numbers (height, width), not {size!r}.") from error
    if height < 1 or width < 1:
        raise InvalidInputError(f"The output size must be positive, not {height}x{width} (height x width).")
    return height, width


def fit_photo(
    image: Image.Image,
    size: tuple[int, int],
    mode: str = "crop",
    *,
    pad_colour: tuple[int, int, int] | str = DEFAULT_PAD_COLOUR,
) -> tuple[Image.Image, FitInfo]:
    """Bring a photo to the model's ``size`` = (height, width) without distorting it; returns the image and a FitInfo.

    ``mode="crop"`` cuts the centre of the photo to the target aspect ratio, then resizes (nothing is squashed, the
    edges of a photo of a different shape are lost). ``mode="pad"`` resizes the whole photo to fit inside and fills
    the rest with ``pad_colour`` (an RGB triple, default mid grey, or ``"edge"`` to repeat the border pixels).
    Keep the FitInfo: :func:`restore_photo` uses it to give the model's output back at the photo's own aspect.
    """
    if mode not in ("crop", "pad"):
        raise InvalidInputError(f"The fit mode must be 'crop' or 'pad', not {mode!r}.")
    target_h, target_w = _check_size(size)
    image = _to_rgb(image)
    width, height = image.size
    if mode == "crop":
        if width * target_h > target_w * height:  # photo wider than the target: keep the full height
            crop_w, crop_h = min(width, max(1, round(height * target_w / target_h))), height
        else:
            crop_w, crop_h = width, min(height, max(1, round(width * target_h / target_w)))
        left, top = (width - crop_w) // 2, (height - crop_h) // 2
        box = (left, top, left + crop_w, top + crop_h)
        fitted = image.resize((target_w, target_h), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    else:
        scale = min(target_w / width, target_h / height)
        inner_w = min(target_w, max(1, round(width * scale)))
        inner_h = min(target_h, max(1, round(height * scale)))
        left, top = (target_w - inner_w) // 2, (target_h - inner_h) // 2
        box = (left, top, left + inner_w, top + inner_h)
        inner = image.resize((inner_w, inner_h), Image.Resampling.LANCZOS, reducing_gap=3.0)
        if isinstance(pad_colour, str):
            if pad_colour != "edge":
                raise InvalidInputError(f"The pad colour must be an RGB triple or 'edge', not {pad_colour!r}.")
            pixels = np.pad(
                np.asarray(inner),
                ((top, target_h - inner_h - top), (left, target_w - inner_w - left), (0, 0)),
                mode="edge",
            )
            fitted = Image.fromarray(pixels, mode="RGB")
        else:
            colour = tuple(int(c) for c in pad_colour)
            if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
                raise InvalidInputError(f"The pad colour must be three numbers from 0 to 255, not {pad_colour!r}.")
            fitted = Image.new("RGB", (target_w, target_h), colour)
            fitted.paste(inner, (left, top))
    return fitted, FitInfo(mode=mode, original_size=(height, width), target_size=(target_h, target_w), box=box)


def restore_photo(result: Image.Image, info: FitInfo, *, max_side: int | None = None) -> Image.Image:
    """Give a model output (made from :func:`fit_photo`'s image) back at the framing of the user's photo.

    Users see their result in the shape of the photo they took, not the model's square/landscape canvas:

    * ``"pad"``: the padding is cut off and the picture resized to the original photo's size, so the aspect ratio is
      exactly the original's (and pixels line up with the photo, handy for before/after views);
    * ``"crop"``: the cut-off edges are gone for good (the model never saw them), so the result is resized to the crop
      box's size in the original photo: the framing the model worked on, at the photo's resolution.

    ``result`` may be any size (a model that upscales is fine); the box is scaled with it. ``max_side`` caps the longer
    side (both sides scaled alike, so the aspect is then kept to within rounding): worth passing for video frames,
    since the default is the original photo's full resolution.
    """
    if info.mode not in ("crop", "pad"):
        raise InvalidInputError(f"The fit mode must be 'crop' or 'pad', not {info.mode!r}.")
    result = _to_rgb(result)
    target_h, target_w = info.target_size
    left, top, right, bottom = info.box
    if info.mode == "pad":
        scale_x, scale_y = result.width / target_w, result.height / target_h
        source_box = (left * scale_x, top * scale_y, right * scale_x, bottom * scale_y)
        out_h, out_w = info.original_size
    else:
        source_box = (0.0, 0.0, float(result.width), float(result.height))
        out_w, out_h = right - left, bottom - top
    if max_side is not None and max(out_w, out_h) > max_side:
        shrink = max_side / max(out_w, out_h)
        out_w, out_h = max(1, round(out_w * shrink)), max(1, round(out_h * shrink))
    return result.resize((out_w, out_h), Image.Resampling.LANCZOS, box=source_box, reducing_gap=3.0)


# ---------------------------------------------------------------------------------------------------------------------
# Videos out: MP4 (H.264, yuv420p, plays everywhere) or a looping GIF, written atomically.
# ---------------------------------------------------------------------------------------------------------------------

_VIDEO_SUFFIXES = (".mp4", ".gif")


def _frame_to_uint8(frame: object) -> np.ndarray:
    """One frame (PIL image, or (h, w, 3) array of uint8 or floats in [0, 1]) -> contiguous (h, w, 3) uint8."""
    if isinstance(frame, Image.Image):
        return np.asarray(_to_rgb(frame), dtype=np.uint8)
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise InvalidInputError(f"Each video frame must be a picture of shape (height, width, 3), not {array.shape}.")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if np.issubdtype(array.dtype, np.floating):
        array = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise InvalidInputError(f"Video frames must be 8-bit or floats from 0 to 1, not {array.dtype}.")


def _iter_frames(frames: Sequence[Image.Image] | np.ndarray) -> Iterator[np.ndarray]:
    """Frames one at a time as uint8 (h, w, 3), all checked to be the same size."""
    if isinstance(frames, np.ndarray) and frames.ndim != 4:
        raise InvalidInputError(f"A video array must have shape (frames, height, width, 3), not {frames.shape}.")
    if len(frames) == 0:
        raise InvalidInputError("There are no frames to put in the video.")
    first_shape = None
    for frame in frames:
        array = _frame_to_uint8(frame)
        if first_shape is None:
            first_shape = array.shape
        elif array.shape != first_shape:
            raise InvalidInputError(
                f"All video frames must be the same size, but {array.shape[1]}x{array.shape[0]} follows "
                f"{first_shape[1]}x{first_shape[0]}."
            )
        yield array


def _write_mp4(frames: Iterator[np.ndarray], path: Path, fps: float) -> None:
    import imageio_ffmpeg

    first = next(frames)
    height, width = first.shape[:2]
    pad = ((0, height % 2), (0, width % 2), (0, 0))  # yuv420p needs even sides: repeat the last row/column
    needs_pad = bool(height % 2 or width % 2)
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width + width % 2, height + height % 2),
        fps=fps,
        codec="libx264",
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        quality=None,
        macro_block_size=1,
        ffmpeg_log_level="error",
        output_params=["-crf", "18", "-preset", "medium", "-movflags", "+faststart"],
    )
    writer.send(None)
    try:
        for frame in itertools.chain([first], frames):
            writer.send(np.ascontiguousarray(np.pad(frame, pad, mode="edge")) if needs_pad else frame)
    finally:
        writer.close()


def _write_gif(frames: Iterator[np.ndarray], path: Path, fps: float) -> None:
    images = [Image.fromarray(frame, mode="RGB") for frame in frames]
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(10, round(1000 / fps)),
        loop=0,
    )


def save_video(frames: Sequence[Image.Image] | np.ndarray, path: str | os.PathLike, fps: float = 8) -> Path:
    """Write frames to ``path`` as MP4 (H.264, yuv420p) or a forever-looping GIF, by its suffix; returns the path.

    ``frames``: PIL images, or an array (frames, height, width, 3) of uint8 or of floats in [0, 1] (clipped).
    MP4 needs even sides: an odd width/height gets its last column/row repeated once (no resampling, no blur).
    The file is written under a hidden temporary name in the same folder and moved into place with ``os.replace``,
    so an interrupted or failed write never leaves a half-written video under ``path`` (an older file stays intact).
    GIF notes: 256 colours per frame, delays in 1/100 s (so fps above 50 is not honoured by players), and Pillow
    merges identical consecutive frames into one longer frame, so a reader can see fewer frames with the same timing.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _VIDEO_SUFFIXES:
        raise InvalidInputError(
            f"Videos can be saved as .mp4 or .gif files, not as {path.suffix or 'a file without a suffix'}."
        )
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise InvalidInputError(f"The frame rate must be a positive number, not {fps!r}.")
    frame_iter = _iter_frames(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.partial{suffix}")
    try:
        if suffix == ".mp4":
            _write_mp4(frame_iter, temporary, fps)
        else:
            _write_gif(frame_iter, temporary, fps)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return path


def read_video_frames(path: str | os.PathLike) -> list[np.ndarray]:
    """Every frame of an MP4 (or other ffmpeg-readable video) or an animated GIF/WebP/PNG, as (h, w, 3) uint8 arrays."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"There is no video at {_describe(path)}; please check the file name.")
    if path.suffix.lower() in (".gif", ".webp", ".png", ".apng"):
        try:
            with Image.open(path) as animation:
                return [np.array(frame.convert("RGB")) for frame in ImageSequence.Iterator(animation)]
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise InvalidInputError(f"{_describe(path)} is not an animation we can read.") from error
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        width, height = meta["size"]
        frames = [np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3).copy() for raw in reader]
    except (OSError, RuntimeError, StopIteration, KeyError, ValueError) as error:
        raise InvalidInputError(f"{_describe(path)} is not a video we can read.") from error
    return frames


_ANIMATION_SUFFIXES = (".gif", ".webp", ".png", ".apng")


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says: frames per second (None for animations without a rate) and the frame count."""

    fps: float | None
    frame_count: int


def ffmpeg_header(path: str | os.PathLike) -> dict:
    """What ffmpeg reads from a video's header (``fps``, ``duration``, ``size``...), decoding no frame; one sentence
    for a file that is not a video (the one probe for ``probe_video`` and the dataset clips)."""
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        reader.close()
    except (OSError, RuntimeError, StopIteration) as error:
        raise InvalidInputError(f"{_describe(path)} is not a video we can read.") from error
    return meta


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame rate and frame count of a video or animation from its header alone (no frame is decoded).

    For ffmpeg videos the count is ``round(duration x fps)``, exact for the constant-rate files datasets ship.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"There is no video at {_describe(path)}; please check the file name.")
    if path.suffix.lower() in _ANIMATION_SUFFIXES:
        try:
            with Image.open(path) as animation:
                count = getattr(animation, "n_frames", 1)
                duration = animation.info.get("duration")
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise InvalidInputError(f"{_describe(path)} is not an animation we can read.") from error
        return VideoInfo(1000.0 / duration if duration else None, count)
    meta = ffmpeg_header(path)
    fps, duration = meta.get("fps"), meta.get("duration")
    if not fps or not duration or not math.isfinite(duration):
        raise InvalidInputError(f"{_describe(path)} does not say its frame rate and duration.")
    return VideoInfo(float(fps), max(int(round(duration * fps)), 0))


def read_video_frame(path: str | os.PathLike, index: int, *, info: VideoInfo | None = None) -> np.ndarray:
    """Frame ``index`` (0-based) of a video or animation as (h, w, 3) uint8, decoding as little as possible.

    One key frame out of a long recording should not cost decoding the recording: ffmpeg is asked to seek
    (``-ss`` before the input: jump to the preceding key frame, decode from there, drop frames before the
    time) to half a frame before the frame's timestamp ``index / fps`` and to stop after one frame, so the
    float time lands safely inside the wanted frame. Animations step through frames with Pillow and stop at
    ``index``. ``info`` (from :func:`probe_video`) saves reading the header again.

    :raises InvalidInputError: when the file is missing or unreadable or has no frame ``index``.
    """
    path = Path(path)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise InvalidInputError(f"A frame index is a whole number from 0, not {index!r}.")
    if not path.is_file():
        raise InvalidInputError(f"There is no video at {_describe(path)}; please check the file name.")
    if path.suffix.lower() in _ANIMATION_SUFFIXES:
        try:
            with Image.open(path) as animation:
                if index >= getattr(animation, "n_frames", 1):
                    raise InvalidInputError(f"{_describe(path)} has no frame {index}.")
                animation.seek(index)
                return np.array(animation.convert("RGB"))
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise InvalidInputError(f"{_describe(path)} is not an animation we can read.") from error
    info = info or probe_video(path)
    import imageio_ffmpeg

    seconds = max(0.0, (int(index) - 0.5) / info.fps)
    try:
        reader = imageio_ffmpeg.read_frames(
            str(path), input_params=["-ss", f"{seconds:.6f}"], output_params=["-frames:v", "1"]
        )
        meta = next(reader)
        width, height = meta["size"]
        frames = [np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3).copy() for raw in reader]
    except (OSError, RuntimeError, StopIteration, KeyError, ValueError) as error:
        raise InvalidInputError(f"{_describe(path)} is not a video we can read.") from error
    if not frames:
        raise InvalidInputError(f"{_describe(path)} has no frame {index} ({info.frame_count} frames).")
    return frames[0]
