"""Photos in: whatever a cook uploads becomes an 8-bit RGB picture (:func:`load_photo`), or one sentence saying why
it cannot; fitted to the model's size and given back at the photo's own aspect (:func:`fit_photo`,
:func:`restore_photo`). ShowMe's pipeline, the I2G kitchen photo, the CLI and the app all read photos here.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import InvalidInputError, describe_source

_logger = logging.getLogger(__name__)

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_WHITE = (255, 255, 255)


class AnimatedPhotoWarning(UserWarning):
    """An animated GIF/WebP/PNG was given as a photo: only its first frame is used."""




def _megapixels(pixels: int) -> str:
    """``40_000_000`` -> "40 megapixels", ``1_500`` -> "1500 pixels" (for messages)."""
    if pixels < 100_000:
        return f"{pixels} pixels"
    return f"{pixels / 1_000_000:.1f}".rstrip("0").rstrip(".") + " megapixels"


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert through an embedded ICC profile to sRGB (CMYK print profiles, Display P3 phone photos...).

    Best effort: without LittleCMS, with an sRGB profile already, or with a broken profile the image is returned as
    it is and the plain conversion in :func:`to_rgb` takes over.
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


def to_rgb(image: Image.Image) -> Image.Image:
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
    name = describe_source(source)
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
        result = to_rgb(oriented)
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
FIT_MODES = ("crop", "pad")
"""How a photo meets the model's shape: ``crop`` its centre (the result has the model's shape) or ``pad`` the whole
photo (the result is given back at the photo's shape)."""
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
    if mode not in FIT_MODES:
        raise InvalidInputError(f"The fit mode must be 'crop' or 'pad', not {mode!r}.")
    target_h, target_w = _check_size(size)
    image = to_rgb(image)
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
    if info.mode not in FIT_MODES:
        raise InvalidInputError(f"The fit mode must be 'crop' or 'pad', not {info.mode!r}.")
    result = to_rgb(result)
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
