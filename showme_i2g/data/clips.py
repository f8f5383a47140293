"""What training reads: adjacent step pairs of recipes (I2G) and video clips with their instruction (ShowMe).

I2G fine-tunes on pairs of neighbouring steps (v_i, v_{i+1}) of one recipe, so :func:`adjacent_pairs` turns any
reader's :class:`~.records.Recipe` records into :class:`StepPair` items. ShowMe learns first frame + instruction
-> last frame (stage 1) and -> the whole clip (stage 2), so :class:`Clip` is one span of one video with its
instruction, :func:`ssv2_clips` / :func:`epic100_clips` / :func:`ego4d_clips` build clips from the readers'
records, :func:`read_clip_manifest` reads the project's own JSON list of clips, and :func:`load_clip_frames` (or
:func:`sample_clip`, which also says which frames it took) decodes a clip's span and samples it uniformly (the
paper: 12 frames for SSv2, 16 for EPIC-KITCHENS). :func:`curate_epic100` applies ShowMe's final-frame selection
to EPIC clips (and works on any clips, e.g. Ego4D's).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .curation import ImageImageSimilarity, TextImageSimilarity, select_final_frame
from .records import Problem, Recipe, Step

__all__ = [
    "DEFAULT_NUM_FRAMES",
    "Clip",
    "StepPair",
    "adjacent_pairs",
    "clip_span",
    "curate_epic100",
    "ego4d_clips",
    "epic100_clips",
    "extract_step_frames",
    "find_step_video",
    "FrameExtraction",
    "KEY_FRAMES",
    "load_clip_frames",
    "read_clip_manifest",
    "sample_clip",
    "ssv2_clips",
    "step_key_frame",
    "uniform_indices",
]

DEFAULT_NUM_FRAMES = {"ssv2": 12, "epic100": 16, "ego4d": 16}
"""Frames sampled per clip in ShowMe (§4, implementation details); Ego4D, egocentric like EPIC, takes EPIC's 16."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


# --- I2G: adjacent step pairs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepPair:
    """Two neighbouring steps of one recipe: ``first`` is step ``index``, ``second`` is step ``index + 1``."""

    goal: str | None
    first: Step
    second: Step
    recipe_id: str
    index: int
    source: str = ""


def adjacent_pairs(recipes: Iterable[Recipe], *, require_media: bool = False) -> Iterator[StepPair]:
    """Every pair of consecutive steps ``(v_i, v_{i+1})`` of every recipe, in order.

    ``require_media`` skips pairs where either step has no ``media`` (I2G trains on step images; video sources
    get their key frames extracted first). A recipe of n steps yields n - 1 pairs.
    """
    for recipe in recipes:
        for index in range(len(recipe.steps) - 1):
            first, second = recipe.steps[index], recipe.steps[index + 1]
            if require_media and (first.media is None or second.media is None):
                continue
            yield StepPair(recipe.goal, first, second, recipe.id, index, recipe.source)


# --- ShowMe: clips -------------------------------------------------------------------------------------------------


@dataclass
class Clip:
    """One span of one video and the instruction it shows.

    ``media`` is a video file (anything ffmpeg reads, or an animated GIF) or a folder of frame images sorted by
    name (EPIC-KITCHENS ships ``frame_0000000001.jpg`` ...). The span is ``start_frame``..``end_frame`` (0-based
    indices into the media's frames, both inclusive) or, when only times are known, ``start``..``end`` seconds;
    with neither the whole media is the clip. ``end_frame`` is the target (last) frame of ShowMe's stage 1.
    """

    media: Path
    instruction: str
    id: str
    source: str = ""
    start_frame: int | None = None
    end_frame: int | None = None
    start: float | None = None
    end: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def ssv2_clips(recipes: Iterable[Recipe]) -> list[Clip]:
    """SSv2 records (from :func:`~.readers.read_ssv2` with ``videos_root``) as whole-video clips.

    :raises InvalidInputError: when a record has no video path (read it with ``videos_root``).
    """
    clips = []
    for recipe in recipes:
        step = recipe.steps[0]
        if step.media is None:
            raise InvalidInputError(f"SSv2 clip {recipe.id} has no video path; pass videos_root to read_ssv2.")
        clips.append(Clip(Path(step.media), step.text, recipe.id, "ssv2", meta=dict(recipe.meta)))
    return clips


def _epic_media(root: Path, video: str, participant: str | None) -> Path:
    """Where a video's frames or file live under ``root``, in the layouts EPIC-KITCHENS is distributed in.

    Tried in order: ``root/<video>/`` (a frame folder), ``root/<participant>/rgb_frames/<video>/`` (the released
    frame archives unpacked), ``root/<video>.MP4`` and ``root/<participant>/videos/<video>.MP4``; the first one
    that exists wins, else ``root/<video>`` (reported when the clip is loaded).
    """
    candidates = [root / video]
    if participant:
        candidates.append(root / participant / "rgb_frames" / video)
    for suffix in (".MP4", ".mp4"):
        candidates.append(root / f"{video}{suffix}")
        if participant:
            candidates.append(root / participant / "videos" / f"{video}{suffix}")
    return next((path for path in candidates if path.exists()), candidates[0])


def epic100_clips(recipes: Iterable[Recipe], root: str | Path) -> list[Clip]:
    """One clip per EPIC-KITCHENS narration (records from :func:`~.readers.read_epic100`).

    EPIC frame numbers start at 1 (``frame_0000000001.jpg``), so ``start_frame``/``stop_frame`` become 0-based
    indices by subtracting 1. A ``target_frame`` that :func:`curate_epic100` stored replaces ``stop_frame``.
    """
    root = Path(root)
    clips = []
    for recipe in recipes:
        media = _epic_media(root, recipe.id, recipe.meta.get("participant_id"))
        for step in recipe.steps:
            meta = dict(step.meta)
            last = meta.get("target_frame", meta["stop_frame"])
            clips.append(
                Clip(media, step.text, meta["narration_id"], "epic100", meta["start_frame"] - 1, last - 1,
                     step.start, step.end, meta)
            )
    return clips


def ego4d_clips(
    recipes: Iterable[Recipe], root: str | Path, *, before: float = 1.0, after: float = 2.0, fps: float = 30.0
) -> list[Clip]:
    """One clip per Ego4D narration (records from :func:`~.readers.read_ego4d`): ``before`` seconds before the
    narration's timestamp to ``after`` seconds after it, so the clip shows the state before and after the action.

    Ego4D narrations mark a single moment ("#C C cuts the onion" at 12.3 s), not a span, hence the window; its
    canonical videos and ``timestamp_frame`` are at 30 fps (``fps``). The media is ``root/<video_uid>.mp4`` (the
    ``full_scale`` download) or a frame folder ``root/<video_uid>/``, whichever exists.
    """
    if before < 0 or after <= 0 or fps <= 0:
        raise ValueError(f"before must be >= 0 and after, fps > 0, got {before}, {after}, {fps}")
    root = Path(root)
    clips = []
    for recipe in recipes:
        candidates = (root / f"{recipe.id}.mp4", root / recipe.id)
        media = next((path for path in candidates if path.exists()), candidates[0])
        for step in recipe.steps:
            frame = step.meta.get("timestamp_frame")
            if frame is None:
                frame = int(round(step.meta["timestamp_sec"] * fps))
            first, last = max(0, frame - int(round(before * fps))), frame + int(round(after * fps))
            seconds = step.meta["timestamp_sec"]
            meta = {**step.meta, "fps": fps}
            clips.append(
                Clip(media, step.text, step.meta["narration_id"], "ego4d", first, last,
                     max(0.0, seconds - before), seconds + after, meta)
            )
    return clips


def read_clip_manifest(path: str | Path) -> list[Clip]:
    """The project's own list of training clips: a JSON list (or ``{"clips": [...]}``) of
    ``{"video"|"frames": path, "instruction": text, "start"?: frame, "end"?: frame, "id"?: text}``.

    Paths are relative to the manifest's folder; ``start``/``end`` are 0-based frame indices, both inclusive
    (``end`` is stage 1's target frame). Unlike the public datasets' readers this is strict: a manifest is written
    by hand for one run, so the first bad entry stops it with a sentence naming the entry.

    :raises InvalidInputError: when the file is missing, not JSON, empty, or an entry is malformed or names a
        missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"The clip manifest {path} does not exist.")
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"The clip manifest {path} is not valid JSON ({error.__class__.__name__}).") from None
    items = raw.get("clips") if isinstance(raw, dict) else raw
    if not isinstance(items, list) or not items:
        raise InvalidInputError(f"The clip manifest {path} lists no clips.")
    clips = []
    for index, item in enumerate(items):
        where = f"Clip {index + 1} of {path}"
        if not isinstance(item, dict):
            raise InvalidInputError(f"{where} is not an object with a video and an instruction.")
        media = item.get("video") or item.get("frames")
        instruction = item.get("instruction")
        if not isinstance(media, str) or not isinstance(instruction, str) or not instruction.strip():
            raise InvalidInputError(f"{where} needs a 'video' (or 'frames') path and a non-empty 'instruction'.")
        file = (path.parent / media).resolve()
        if not file.exists():
            raise InvalidInputError(f"{where} names {media}, which does not exist.")
        start, end = item.get("start"), item.get("end")
        for name, value in (("start", start), ("end", end)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise InvalidInputError(f"{where} has {name}={value!r}; frame indices are whole numbers from 0.")
        if start is not None and end is not None and end < start:
            raise InvalidInputError(f"{where} ends (frame {end}) before it starts (frame {start}).")
        clip_id = str(item.get("id") or f"{path.stem}:{index + 1}")
        clips.append(Clip(file, " ".join(instruction.split()), clip_id, "manifest", start, end, meta={"index": index}))
    return clips


def uniform_indices(first: int, last: int, count: int) -> list[int]:
    """``count`` indices spread evenly from ``first`` to ``last`` (both included; repeats when the span is short)."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if last < first:
        raise ValueError(f"the span {first}..{last} is empty")
    if count == 1:
        return [last]
    return [int(round(value)) for value in np.linspace(first, last, count)]


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _video_fps(path: Path) -> float | None:
    """Frames per second of a video file, from ffmpeg's header (None for animations without a rate)."""
    if path.suffix.lower() in (".gif", ".webp", ".png", ".apng"):
        return None
    from ..media import ffmpeg_header

    fps = ffmpeg_header(path).get("fps")
    return float(fps) if fps else None


def clip_span(clip: Clip, length: int, fps: float | None = None) -> tuple[int, int]:
    """The clip's first and last frame index (inclusive) in a media of ``length`` frames.

    Frame indices win over seconds; seconds need ``fps`` (or ``clip.meta["fps"]``). The span is clamped to the
    media, and an empty result is the user's to fix (a clip that names frames the video does not have).
    """
    first, last = clip.start_frame, clip.end_frame
    rate = fps or clip.meta.get("fps")
    if first is None and clip.start is not None and rate:
        first = int(math.floor(clip.start * rate))
    if last is None and clip.end is not None and rate:
        last = int(math.ceil(clip.end * rate)) - 1
    first = 0 if first is None else max(first, 0)
    last = length - 1 if last is None else min(last, length - 1)
    if length == 0 or last < first:
        raise InvalidInputError(
            f"The clip {clip.id} asks for frames {first}..{last} but {clip.media} has {length} frames."
        )
    return first, last


def sample_clip(clip: Clip, num_frames: int | None = None) -> tuple[list[int], np.ndarray]:
    """:func:`load_clip_frames` that also returns which frames it took: ``(indices into the media, frames)``.

    Training needs the indices for DynamiCrafter's frame-stride conditioning (the span's length over the number
    of frames sampled); curation needs them to move a clip's end to the frame it selected.
    """
    from PIL import Image

    from ..media import read_video_frames

    media = Path(clip.media)
    if media.is_dir():
        files = _frame_files(media)
        first, last = clip_span(clip, len(files))
        indices = list(range(first, last + 1)) if num_frames is None else uniform_indices(first, last, num_frames)
        frames = []
        for index in indices:
            try:
                with Image.open(files[index]) as image:
                    frames.append(np.asarray(image.convert("RGB")))
            except OSError as error:
                raise InvalidInputError(f"The frame {files[index]} of clip {clip.id} is not an image.") from error
    else:
        if not media.is_file():
            raise InvalidInputError(f"The video {media} of clip {clip.id} does not exist.")
        decoded = read_video_frames(media)
        by_time = (clip.start_frame is None and clip.start is not None) or (
            clip.end_frame is None and clip.end is not None
        )
        first, last = clip_span(clip, len(decoded), _video_fps(media) if by_time else None)
        indices = list(range(first, last + 1)) if num_frames is None else uniform_indices(first, last, num_frames)
        frames = [decoded[index] for index in indices]
    if len({frame.shape for frame in frames}) != 1:
        raise InvalidInputError(f"The frames of clip {clip.id} do not all have the same size.")
    return indices, np.stack(frames)


def load_clip_frames(clip: Clip, num_frames: int | None = None) -> np.ndarray:
    """The clip's span sampled uniformly to ``num_frames`` frames (all frames of the span when None).

    Returns ``(num_frames, H, W, 3)`` uint8, first and last frame of the span included, so frame 0 is the
    conditioning image and the last one the target. Frame folders read only the sampled files; video files are
    decoded with :func:`showme_i2g.media.read_video_frames`.

    :raises InvalidInputError: when the media is missing or unreadable, or the span is empty.
    """
    return sample_clip(clip, num_frames)[1]


def curate_epic100(
    clips: Iterable[Clip],
    text_image_sim: TextImageSimilarity,
    image_image_sim: ImageImageSimilarity,
    *,
    num_frames: int = 16,
    threshold: float = 0.1,
    last_k: int = 8,
) -> tuple[list[Clip], list[Clip]]:
    """ShowMe's EPIC-KITCHENS filter: ``(kept, dropped)`` clips, the kept ones ending at their chosen frame.

    Each clip is sampled to ``num_frames`` frames; the last ``last_k`` are scored by
    ``text_image_sim(instruction, frames) x image_image_sim(first frame, frames)`` (CLIP and DINO in the paper)
    and the best one becomes the clip's ``end_frame`` (also stored as ``meta["target_frame"]`` in EPIC's 1-based
    numbering, which :func:`epic100_clips` reads back) if its score exceeds ``threshold``.
    """
    kept: list[Clip] = []
    dropped: list[Clip] = []
    for clip in clips:
        indices, frames = sample_clip(clip, num_frames)
        best = select_final_frame(clip.instruction, list(frames), text_image_sim, image_image_sim, threshold, last_k)
        if best is None:
            dropped.append(clip)
            continue
        target = indices[best]
        kept.append(replace(clip, end_frame=target, meta={**clip.meta, "target_frame": target + 1}))
    return kept, dropped


# --- I2G: step key frames from videos ------------------------------------------------------------------------------

KEY_FRAMES = ("last", "middle")
"""Which frame of a step's segment illustrates it: the last (default) or the middle one."""

VIDEO_SUFFIXES = (".mp4", ".MP4", ".mkv", ".webm", ".mov")


@dataclass
class FrameExtraction:
    """What :func:`extract_step_frames` did: frames written, frames found already cached, steps it could not use.

    ``problems`` names, per step, the expected video file and why the step has no frame (no video, no time
    span, an unreadable video...); ``images`` maps ``(recipe id, step index)`` to the cached frame.
    """

    written: int = 0
    reused: int = 0
    problems: list[Problem] = field(default_factory=list)
    images: dict[tuple[str, int], Path] = field(default_factory=dict)

    @property
    def usable(self) -> int:
        return self.written + self.reused


def find_step_video(recipe: Recipe, step: Step, videos_root: str | Path) -> Path:
    """The video a step was cut from: the step's own ``media`` when that is a video, else the recipe's video.

    A recipe of HT-Step or CaptainCook4D is one recording whose id is the file name: ``<id>.mp4`` (HT-Step's
    HowTo100M ids; also .mkv/.webm/.mov) or ``<id>_360p.mp4`` / ``<id>_4k.mp4`` (CaptainCook4D's downloads).
    Returns the first candidate that exists, else ``videos_root/<id>.mp4`` (the caller reports it missing).
    """
    root = Path(videos_root)
    candidates = []
    if step.media is not None and Path(step.media).suffix.lower() not in IMAGE_SUFFIXES:
        media = Path(step.media)
        candidates.append(media if media.is_absolute() else root / media)
    candidates += [root / f"{recipe.id}{suffix}" for suffix in VIDEO_SUFFIXES]
    candidates += [root / f"{recipe.id}_{quality}.mp4" for quality in ("360p", "4k")]
    return next((path for path in candidates if path.is_file()), root / f"{recipe.id}.mp4")


def step_key_frame(step: Step, video: Path, frame: str = "last", *, info=None) -> int:
    """The index in ``video`` of the frame that illustrates ``step``: the last or middle frame of its segment.

    The default is the segment's *last* frame because a step's illustration shows the state the step leaves
    behind (the onions chopped, the dough rolled out), which is what I2G's step images depict and what the next
    step starts from; the middle frame shows the action under way (hands, tools in motion) and is offered for
    comparison. The segment is ``start``..``end`` seconds, turned into frames as :func:`clip_span` does
    (first ``floor(start x fps)``, last ``ceil(end x fps) - 1``, clamped to the video).

    :raises InvalidInputError: when the step has no time span or the video cannot be read.
    """
    from ..media import probe_video

    if frame not in KEY_FRAMES:
        raise InvalidInputError(f"The key frame must be one of {', '.join(KEY_FRAMES)}, not {frame!r}.")
    if step.start is None or step.end is None:
        raise InvalidInputError("the step has no start and end time in its video")
    info = info or probe_video(video)
    if not info.fps:
        raise InvalidInputError(f"{video.name} has no frame rate to place the step's times in")
    clip = Clip(video, step.text, f"segment {step.start:g}-{step.end:g} s", start=step.start, end=step.end)
    first, last = clip_span(clip, info.frame_count, info.fps)
    return last if frame == "last" else (first + last) // 2


def _cached_frame(folder: Path, index: int) -> Path | None:
    return next((p for p in (folder / f"{index}{s}" for s in IMAGE_SUFFIXES) if p.is_file()), None)


def extract_step_frames(
    recipes: Iterable[Recipe], videos_root: str | Path, cache_dir: str | Path, *, frame: str = "last"
) -> FrameExtraction:
    """Write each step's key frame (:func:`step_key_frame`) to ``cache_dir/<recipe id>/<k>.png`` once.

    ``k`` is the step's 0-based position in ``recipe.steps``, the layout I2G's pairwise training reads. A frame
    already in the cache (any image suffix) is reused without opening the video, so later epochs, resumed runs
    and other runs on the same data decode nothing; a new frame is written under a temporary name and renamed,
    so an interrupted extraction never leaves a half-written image. Each video's header is read once and each
    frame is decoded by seeking (:func:`showme_i2g.media.read_video_frame`), never the whole recording.
    Steps without a video or a time span are reported in ``problems`` (file and step) and skipped.
    """
    import os
    import uuid

    from PIL import Image

    from ..media import probe_video, read_video_frame

    if frame not in KEY_FRAMES:
        raise InvalidInputError(f"The key frame must be one of {', '.join(KEY_FRAMES)}, not {frame!r}.")
    cache = Path(cache_dir)
    result = FrameExtraction()
    for recipe in recipes:
        folder = cache / recipe.id
        infos: dict[Path, Any] = {}
        for k, step in enumerate(recipe.steps):
            cached = _cached_frame(folder, k)
            if cached is not None:
                result.reused += 1
                result.images[(recipe.id, k)] = cached
                continue
            video = find_step_video(recipe, step, videos_root)
            where = f"recipe {recipe.id} step {k}"
            if not video.is_file():
                result.problems.append(Problem(str(video), None, f"{where}: the video does not exist"))
                continue
            try:
                if video not in infos:
                    infos[video] = probe_video(video)
                index = step_key_frame(step, video, frame, info=infos[video])
                pixels = read_video_frame(video, index, info=infos[video])
            except InvalidInputError as error:
                result.problems.append(Problem(str(video), None, f"{where}: {str(error).rstrip('.')}"))
                continue
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{k}.png"
            temporary = folder / f".{k}.{uuid.uuid4().hex[:8]}.partial.png"
            Image.fromarray(pixels).save(temporary)
            os.replace(temporary, target)
            result.written += 1
            result.images[(recipe.id, k)] = target
    return result
