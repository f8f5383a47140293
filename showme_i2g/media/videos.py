"""Videos out and in: MP4 (H.264, yuv420p, plays everywhere) or a looping GIF written atomically
(:func:`save_video`); frames read back whole (:func:`read_video_frames`) or one at a time by seeking
(:func:`read_video_frame`), and a header probe that decodes nothing (:func:`probe_video`, :func:`ffmpeg_header`).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from ..errors import InvalidInputError, describe_source
from .photos import to_rgb

_VIDEO_SUFFIXES = (".mp4", ".gif")
DEFAULT_FPS = 8
"""Frames per second of a written video when none is given (ShowMe's 16 frames last two seconds)."""


def _frame_to_uint8(frame: object) -> np.ndarray:
    """One frame (PIL image, or (h, w, 3) array of uint8 or floats in [0, 1]) -> contiguous (h, w, 3) uint8."""
    if isinstance(frame, Image.Image):
        return np.asarray(to_rgb(frame), dtype=np.uint8)
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


def save_video(frames: Sequence[Image.Image] | np.ndarray, path: str | os.PathLike, fps: float = DEFAULT_FPS) -> Path:
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
        raise InvalidInputError(f"There is no video at {describe_source(path)}; please check the file name.")
    if path.suffix.lower() in (".gif", ".webp", ".png", ".apng"):
        try:
            with Image.open(path) as animation:
                return [np.array(frame.convert("RGB")) for frame in ImageSequence.Iterator(animation)]
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise InvalidInputError(f"{describe_source(path)} is not an animation we can read.") from error
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        width, height = meta["size"]
        frames = [np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3).copy() for raw in reader]
    except (OSError, RuntimeError, StopIteration, KeyError, ValueError) as error:
        raise InvalidInputError(f"{describe_source(path)} is not a video we can read.") from error
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
        raise InvalidInputError(f"{describe_source(path)} is not a video we can read.") from error
    return meta


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame rate and frame count of a video or animation from its header alone (no frame is decoded).

    For ffmpeg videos the count is ``round(duration x fps)``, exact for the constant-rate files datasets ship.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"There is no video at {describe_source(path)}; please check the file name.")
    if path.suffix.lower() in _ANIMATION_SUFFIXES:
        try:
            with Image.open(path) as animation:
                count = getattr(animation, "n_frames", 1)
                duration = animation.info.get("duration")
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise InvalidInputError(f"{describe_source(path)} is not an animation we can read.") from error
        return VideoInfo(1000.0 / duration if duration else None, count)
    meta = ffmpeg_header(path)
    fps, duration = meta.get("fps"), meta.get("duration")
    if not fps or not duration or not math.isfinite(duration):
        raise InvalidInputError(f"{describe_source(path)} does not say its frame rate and duration.")
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
        raise InvalidInputError(f"There is no video at {describe_source(path)}; please check the file name.")
    if path.suffix.lower() in _ANIMATION_SUFFIXES:
        try:
            with Image.open(path) as animation:
                if index >= getattr(animation, "n_frames", 1):
                    raise InvalidInputError(f"{describe_source(path)} has no frame {index}.")
                animation.seek(index)
                return np.array(animation.convert("RGB"))
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise InvalidInputError(f"{describe_source(path)} is not an animation we can read.") from error
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
        raise InvalidInputError(f"{describe_source(path)} is not a video we can read.") from error
    if not frames:
        raise InvalidInputError(f"{describe_source(path)} has no frame {index} ({info.frame_count} frames).")
    return frames[0]
