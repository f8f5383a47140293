"""The app's downloads: a recipe run's files, and "Animate my recipe"'s clips and stitched video.

* :func:`write_recipe_outputs`: step PNGs, storyboard PNG, ``run.json``, a ZIP of them all and a self-contained HTML
  storyboard from :func:`make_html_storyboard`.
* "Animate my recipe": :func:`fit_instruction` (a step's text as a ShowMe instruction), :func:`stitch_clips` (one
  instructional video with the step text burned in by :func:`showme_i2g.captions.burn_caption`), written with the
  clips by :func:`write_animation_outputs`.
"""

from __future__ import annotations

import base64
import html
import io
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from .. import __version__
from ..captions import burn_caption
from ..errors import InvalidInputError
from ..media import save_video
from ..outputs import write_illustrations, write_run_json

# ---------------------------------------------------------------------------------------------------------------------
# Downloads of a recipe run: step PNGs, storyboard PNG, run.json, ZIP, self-contained HTML
# ---------------------------------------------------------------------------------------------------------------------


def make_zip(path: str | os.PathLike, files: Sequence[str | os.PathLike]) -> Path:
    """A flat ZIP at ``path`` holding ``files`` under their own names; PNGs are stored, not deflated again."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in map(Path, files):
            stored = file.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".mp4", ".gif")
            archive.write(file, arcname=file.name, compress_type=zipfile.ZIP_STORED if stored else None)
    return path


def _data_uri(image: Image.Image) -> str:
    """A JPEG ``data:`` URI: a 1024 px step is ~150 kB this way rather than ~1.5 MB as PNG."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=90, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_HTML_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1100px;
padding:0 1rem;color:#222;background:#fafafa}
h1{font-size:1.6rem;margin-bottom:.25rem}
.meta{color:#666;font-size:.85rem;margin-bottom:1.5rem}
ol{list-style:none;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:1.25rem}
li{background:#fff;border-radius:10px;box-shadow:0 1px 4px rgba(0,0,0,.12);overflow:hidden}
img{display:block;width:100%;height:auto}
p{margin:.6rem .8rem .9rem;line-height:1.35}
b{margin-right:.3rem}
"""


def make_html_storyboard(
    images: Sequence[Image.Image], captions: Sequence[str], title: str, metadata: dict | None = None
) -> str:
    """One HTML page: the goal, then each step's picture (embedded) above its numbered text.

    Every text is escaped and the page loads nothing from anywhere, so it can be mailed or opened offline.
    """
    if len(images) != len(captions):
        raise ValueError(f"Got {len(images)} images but {len(captions)} captions.")
    keys = ("preset", "seed", "num_inference_steps", "guidance_scale", "neighbour_weight")
    facts = [f"{key.replace('_', ' ')}: {metadata[key]}" for key in keys if metadata and metadata.get(key) is not None]
    meta = " · ".join([f"Made with showme_i2g {__version__}", *facts])
    items = "\n".join(
        f'<li><img src="{_data_uri(image)}" alt="{html.escape(f"Step {n}: {caption}")}">'
        f"<p><b>{n}.</b>{html.escape(caption)}</p></li>"
        for n, (image, caption) in enumerate(zip(images, captions), start=1)
    )
    title = html.escape(title)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{_HTML_STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
        f'<div class="meta">{html.escape(meta)}</div>\n<ol>\n{items}\n</ol>\n</body>\n</html>\n'
    )


@dataclass(frozen=True)
class RecipeFiles:
    """The files of one recipe run, all in one folder."""

    steps: list[Path]
    storyboard: Path
    run_json: Path
    zip: Path
    html: Path


def write_recipe_outputs(result: Any, folder: str | os.PathLike, **extra: Any) -> RecipeFiles:
    """Write an :class:`~showme_i2g.i2g.pipeline.IllustrationOutput` as the CLI does, plus the ZIP and HTML page.

    ``run.json`` holds the goal, the steps, their clauses and the pipeline's metadata (preset, seed, settings),
    plus ``extra``, so the run can be reproduced.
    """
    folder = Path(folder)
    written = write_illustrations(result.images, result.steps, result.goal, folder)
    steps, storyboard = written.steps, written.storyboard
    record = {"goal": result.goal, "steps": result.steps, "clauses": result.clauses, **result.metadata, **extra}
    run_json = write_run_json(folder / "run.json", record)
    page = folder / "storyboard.html"
    page.write_text(make_html_storyboard(result.images, result.steps, result.goal, result.metadata), encoding="utf-8")
    archive = make_zip(folder / "illustrations.zip", [*steps, storyboard, run_json])
    return RecipeFiles(steps=steps, storyboard=storyboard, run_json=run_json, zip=archive, html=page)


# ---------------------------------------------------------------------------------------------------------------------
# "Animate my recipe": each step as an instruction, its clip, and the stitched video with the steps burned in
# ---------------------------------------------------------------------------------------------------------------------


def fit_instruction(text: str, max_chars: int) -> str:
    """A step's text cut at a word boundary to at most ``max_chars`` (a recipe step may outgrow a ShowMe
    instruction)."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    head = text[: max_chars + 1]
    cut = head.rsplit(" ", 1)[0] if " " in head else text[:max_chars]
    return cut[:max_chars].rstrip(" ,;:")


def stitch_clips(
    clips: Sequence[Sequence[Image.Image]], captions: Sequence[str], min_width: int = 384,
    check: Callable[[], None] | None = None,
) -> list[Image.Image]:
    """All clips one after another, each frame captioned "Step 2/5: ...": one instructional video.

    Frames take the first clip's size, scaled up to at least ``min_width`` wide so captions stay legible, with even
    sides for H.264. No frame is added or dropped: the result has exactly as many frames as the clips together.
    ``check()`` runs before each frame, so a stopped run ends here too (the app's ``RunControl.check``).
    """
    if len(clips) != len(captions):
        raise ValueError(f"Got {len(clips)} clips but {len(captions)} captions.")
    if not any(len(clip) for clip in clips):
        raise InvalidInputError("There are no clips to put in the video.")
    width, height = next(clip[0] for clip in clips if len(clip)).size
    if width < min_width:
        width, height = min_width, max(2, round(height * min_width / width))
    size = (width + width % 2, height + height % 2)
    frames: list[Image.Image] = []
    for number, (clip, caption) in enumerate(zip(clips, captions), start=1):
        text = f"Step {number}/{len(clips)}: {caption}"
        for frame in clip:
            if check is not None:
                check()
            frame = frame.convert("RGB")
            frames.append(burn_caption(frame if frame.size == size else frame.resize(size, Image.LANCZOS), text))
    return frames


@dataclass(frozen=True)
class AnimationFiles:
    """One MP4 per step, the stitched captioned MP4, a ZIP of them all with ``run.json``."""

    clips: list[Path]
    stitched: Path
    run_json: Path
    zip: Path


def write_animation_outputs(
    clips: Sequence[Sequence[Image.Image]], captions: Sequence[str], folder: str | os.PathLike, fps: float,
    record: dict, check: Callable[[], None] | None = None,
) -> AnimationFiles:
    """Write ``clip_01.mp4``... , ``recipe_video.mp4`` (captions burned in), ``run.json`` and a ZIP of them.

    ``check()`` runs before each clip is written and each stitched frame is drawn: a stopped run ends between them.
    """
    check = check or (lambda: None)
    folder = Path(folder)
    paths = []
    for n, clip in enumerate(clips, start=1):
        check()
        paths.append(save_video(clip, folder / f"clip_{n:02d}.mp4", fps=fps))
    frames = stitch_clips(clips, captions, check=check)
    check()
    stitched = save_video(frames, folder / "recipe_video.mp4", fps=fps)
    run_json = write_run_json(folder / "run.json", record)
    archive = make_zip(folder / "recipe_clips.zip", [*paths, stitched, run_json])
    return AnimationFiles(clips=paths, stitched=stitched, run_json=run_json, zip=archive)
