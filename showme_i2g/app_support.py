"""What the Gradio app (``app.py``) needs that is neither UI nor model logic: plain Python, testable without a browser.

* A step as a ShowMe instruction: :func:`fit_instruction` (the steps box is parsed by ``text.step_lines``).
* The recipe tab's downloads: :func:`write_recipe_outputs` (step PNGs, storyboard PNG, ``run.json``, a ZIP of them
  all and a self-contained HTML storyboard from :func:`make_html_storyboard`).
* "Animate my recipe": :func:`burn_caption` and :func:`stitch_clips` (one instructional video with the step text
  burned in), written with the clips by :func:`write_animation_outputs`.
* Presets: :func:`pick_presets` picks the best preset whose weights are on this machine (a look-up in the Hugging Face
  cache, never a request); :func:`banner_markdown` says in words which ones run.
* Sharing models between users: :class:`ModelCache` (load once, lazily, one call at a time per model),
  :class:`RunFolders` (a folder per run, pruned by age); ending runs early is :mod:`showme_i2g.app_runs`.
* Weights, explicitly: :func:`download_weights` (``python app.py --download``), :func:`missing_preset_message`.
* :func:`make_example_photos`: drawn kitchen scenes for the photo tab's examples (the project ships no photos).

Nothing here imports gradio or torch, so importing it is cheap and ``python app.py --help`` stays fast.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import os
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Collection, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from . import __version__
from .errors import InvalidInputError
from .media import save_video
from .outputs import write_illustrations, write_run_json
from .presets import ILLUSTRATION_PRESETS, SHOWME_PRESETS, IllustrationPreset, ShowMePreset


def fit_instruction(text: str, max_chars: int) -> str:
    """A step's text cut at a word boundary to at most ``max_chars`` (a recipe step may outgrow a ShowMe
    instruction)."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    head = text[: max_chars + 1]
    cut = head.rsplit(" ", 1)[0] if " " in head else text[:max_chars]
    return cut[:max_chars].rstrip(" ,;:")


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
# Captions burned into video frames, and the stitched instructional video
# ---------------------------------------------------------------------------------------------------------------------


# The caption drawing and its one line breaker live in showme_i2g.captions (shared with the storyboard).
from .captions import burn_caption  # noqa: E402


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


# ---------------------------------------------------------------------------------------------------------------------
# Presets: which weights are on this machine (the Hugging Face cache only, never the network)
# ---------------------------------------------------------------------------------------------------------------------

#: Best first. Lightning gives SDXL quality at interactive speed; plain SDXL is the paper's 30-step backbone.
ILLUSTRATION_ORDER = ("sdxl-lightning", "sdxl", "tiny")
#: Best first: ShowMe (DynamiCrafter 256 + the authors' LoRAs); then plain DynamiCrafter, smallest (the resolution
#: ShowMe was trained at, least memory) first; the untrained tiny model last.
SHOWME_ORDER = ("showme", "dynamicrafter-256", "dynamicrafter-512", "dynamicrafter-1024", "tiny")

#: How the app labels a tiny preset, everywhere it names one.
TINY_LABEL = "untrained, random weights — plumbing only"

def _cached(repo_id: str, filename: str, cache_dir: str | os.PathLike | None) -> bool:
    """Whether ``filename`` of ``repo_id`` is in the Hugging Face cache: a look-up on disk, never a request."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
    return isinstance(found, str) and os.path.isfile(found)


def illustration_weights_present(
    preset: IllustrationPreset, *, on_gpu: bool = False, cache_dir: str | os.PathLike | None = None
) -> bool:
    """Whether every file ``IllustrationPipeline.from_preset(preset.name)`` reads is cached (always for ``tiny``)."""
    if preset.base is None:
        return True
    choices = [preset.repo_files(variant) for variant in preset.weight_variants(on_gpu)]
    if not all(any(_cached(preset.base, files[i], cache_dir) for files in choices) for i in range(len(choices[0]))):
        return False  # each file is needed in one of the variants loading tries
    return preset.lora is None or _cached(*preset.lora, cache_dir)


def showme_weights_present(
    preset: ShowMePreset,
    *,
    lora_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    trained_adapters: Collection[str] = (),
) -> bool:
    """Whether the preset's DynamiCrafter checkpoint is cached and, for ``showme``, its LoRA files are in ``lora_dir``.

    ``trained_adapters`` names the adapters given as files of our own: with both, the authors' LoRA files are not
    needed (:meth:`~showme_i2g.presets.ShowMePreset.reads_release_loras`).
    """
    if preset.checkpoint is None:
        return True
    if not _cached(*preset.checkpoint, cache_dir):
        return False
    if preset.reads_release_loras(trained_adapters):
        return lora_dir is not None and all((Path(lora_dir) / name).is_file() for name in preset.lora_files)
    return True


@dataclass(frozen=True)
class PresetChoice:
    """The presets the app starts with, and which presets of each family have their weights here."""

    illustration: str
    showme: str
    illustration_available: tuple[str, ...]
    showme_available: tuple[str, ...]


def pick_presets(
    illustration: str | None = None,
    showme: str | None = None,
    *,
    lora_dir: str | os.PathLike | None = None,
    on_gpu: bool = False,
    cache_dir: str | os.PathLike | None = None,
    trained_adapters: Collection[str] = (),
) -> PresetChoice:
    """The named presets, or for a family not named, its best preset whose weights are present (else ``tiny``).

    A named preset is used even when its weights are missing: its first run then says how to get them.
    """
    if illustration is not None and illustration not in ILLUSTRATION_PRESETS:
        raise InvalidInputError(f"Unknown preset {illustration!r}; choose one of: {', '.join(ILLUSTRATION_ORDER)}.")
    if showme is not None and showme not in SHOWME_PRESETS:
        raise InvalidInputError(f"Unknown ShowMe preset {showme!r}; choose one of: {', '.join(SHOWME_ORDER)}.")
    illustration_available = tuple(
        name for name in ILLUSTRATION_ORDER
        if illustration_weights_present(ILLUSTRATION_PRESETS[name], on_gpu=on_gpu, cache_dir=cache_dir)
    )
    showme_available = tuple(
        name for name in SHOWME_ORDER
        if showme_weights_present(SHOWME_PRESETS[name], lora_dir=lora_dir, cache_dir=cache_dir,
                                  trained_adapters=trained_adapters)
    )
    return PresetChoice(
        illustration=illustration or illustration_available[0],
        showme=showme or showme_available[0],
        illustration_available=illustration_available,
        showme_available=showme_available,
    )


def download_command(illustration: str | None = None, showme: str | None = None) -> str:
    """The exact command that fetches these presets' weights before the page serves (``--lora-dir`` for ``showme``)."""
    parts = ["python app.py --download"]
    if illustration is not None:
        parts.append(f"--preset {illustration}")
    if showme is not None:
        parts.append(f"--showme-preset {showme}")
        if SHOWME_PRESETS[showme].lora_files:
            parts.append("--lora-dir DIR")
    return " ".join(parts)


def missing_preset_message(family: str, name: str) -> str:
    """One sentence for a run asking for a preset whose weights are not here: the app never downloads in a request."""
    flags = {"illustration": (name, None), "showme": (None, name)}[family]
    return (f"The '{name}' preset's weights are not on this machine; the app does not download them while serving, "
            f"so restart it with `{download_command(*flags)}` to fetch them first.")


def _hub_failure(what: str, error: BaseException) -> str:
    """One sentence for a failed download: offline, no network, a gated repo, or the hub's own words."""
    name = type(error).__name__
    if name in ("OfflineModeIsEnabled",) or "offline" in str(error).lower():
        reason = "HF_HUB_OFFLINE is set, so the Hugging Face Hub may not be contacted"
    elif name in ("GatedRepoError",) or "401" in str(error):
        reason = "the repository needs a Hugging Face login with access to it (run `hf auth login`)"
    elif isinstance(error, (ConnectionError, TimeoutError)) or "connect" in str(error).lower() or name in (
            "LocalEntryNotFoundError", "ConnectError", "ConnectTimeout"):
        reason = "the Hugging Face Hub could not be reached"
    else:
        reason = (str(error).strip().splitlines() or [name])[0].rstrip(".")
    return f"Could not download {what}: {reason}."


def download_weights(
    illustration: str | None = None,
    showme: str | None = None,
    *,
    on_gpu: bool = False,
    lora_dir: str | os.PathLike | None = None,
    trained_adapters: Collection[str] = (),
    cache_dir: str | os.PathLike | None = None,
) -> list[str]:
    """Fetch into the Hugging Face cache exactly the files each named preset reads; returns what was fetched, in words.

    This is ``python app.py --download``: it runs before the page serves, with the hub's own progress bars, so that
    no request ever starts a multi-gigabyte download. Refused in one sentence (:class:`WeightsNotFoundError`) with
    ``HF_HUB_OFFLINE=1``, without a network, or for the ``showme`` preset's LoRA files (published on Google Drive,
    not the hub) when ``--lora-dir`` does not hold them. Afterwards :func:`illustration_weights_present` /
    :func:`showme_weights_present` find every file.
    """
    from huggingface_hub import constants, hf_hub_download, snapshot_download

    from .errors import WeightsNotFoundError

    named = [(ILLUSTRATION_PRESETS[illustration], None)] if illustration else []
    named += [(None, SHOWME_PRESETS[showme])] if showme else []
    if not any((i and i.base) or (s and s.checkpoint) for i, s in named):
        raise InvalidInputError("There is nothing to download: name a real preset with --preset or --showme-preset "
                                "(the tiny ones are built in code).")
    lora_files = SHOWME_PRESETS[showme].lora_files if showme else ()
    if showme and SHOWME_PRESETS[showme].reads_release_loras(trained_adapters) and not (
            lora_dir is not None and all((Path(lora_dir) / name).is_file() for name in lora_files)):
        raise WeightsNotFoundError(SHOWME_PRESETS[showme].missing_weights_message("lora"))
    if constants.HF_HUB_OFFLINE:
        raise WeightsNotFoundError("--download needs the Hugging Face Hub, but HF_HUB_OFFLINE is set; unset it, or "
                                   "copy the weights into this machine's Hugging Face cache.")

    fetched: list[str] = []

    def fetch(what: str, call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception as error:  # the hub's errors are OSError, httpx and HfHubHTTPError kinds alike
            raise WeightsNotFoundError(_hub_failure(what, error)) from error
        fetched.append(what)

    for preset, _ in named:
        if preset is None or preset.base is None:
            continue
        patterns = list(preset.repo_files(preset.weight_variants(on_gpu)[0]))
        fetch(f"{preset.base} for the '{preset.name}' preset",
              functools.partial(snapshot_download, preset.base, allow_patterns=patterns, cache_dir=cache_dir))
        if preset.vae:
            fetch(f"{preset.vae} (the VAE of the '{preset.name}' preset)",
                  functools.partial(snapshot_download, preset.vae, allow_patterns=["*.json", "*.safetensors"],
                                    cache_dir=cache_dir))
        if preset.lora:
            fetch(f"{preset.lora[0]} {preset.lora[1]} for the '{preset.name}' preset",
                  functools.partial(hf_hub_download, *preset.lora, cache_dir=cache_dir))
    for _, preset in named:
        if preset is None or preset.checkpoint is None:
            continue
        fetch(f"{' '.join(preset.checkpoint)} for the '{preset.name}' preset",
              functools.partial(hf_hub_download, *preset.checkpoint, cache_dir=cache_dir))
    return fetched


def preset_choices(order: Sequence[str], available: Sequence[str]) -> list[tuple[str, str]]:
    """(label, name) pairs for a dropdown: the allow-list of presets, each saying what a user must know about it."""
    def label(name: str) -> str:
        if name == "tiny":
            return f"tiny ({TINY_LABEL})"
        return name if name in available else f"{name} (weights not on this machine)"

    return [(label(name), name) for name in order]


def banner_markdown(choice: PresetChoice) -> str:
    """The banner at the top of the app: which models run, in words, and honestly so for the tiny ones."""

    def line(family: str, name: str, description: str, available: Sequence[str]) -> str:
        if name == "tiny":
            return f"**{family}:** `tiny` (⚠️ {TINY_LABEL})"
        flags = (name, None) if family == "Illustrations" else (None, name)
        missing = "" if name in available else (
            f" ⚠️ Its weights are not on this machine: restart with `{download_command(*flags)}`.")
        return f"**{family}:** `{name}`: {description}{missing}"

    lines = [
        line("Illustrations", choice.illustration, ILLUSTRATION_PRESETS[choice.illustration].description,
             choice.illustration_available),
        line("Photo edits and videos", choice.showme, SHOWME_PRESETS[choice.showme].description,
             choice.showme_available),
    ]
    if choice.illustration == "tiny" or choice.showme == "tiny":
        lines.append(
            "The tiny models are untrained: every part runs end to end, but their pictures and videos are noise. "
            "Real presets run once their weights are on this machine: start the app with "
            f"`{download_command('sdxl-lightning', 'dynamicrafter-256')}` to fetch them first."
        )
    return "  \n".join(lines)


# ---------------------------------------------------------------------------------------------------------------------
# Models shared between users; the Stop button; a folder per run
# ---------------------------------------------------------------------------------------------------------------------


class ModelCache:
    """Models by key, each built by its loader on first use only, however many threads ask at once.

    :meth:`use` yields the model while holding that model's run lock: diffusion pipelines keep per-call state
    (scheduler timesteps, adapter modes), so one model must never run two calls at once. A loader that raises
    leaves nothing cached, so the next request tries again.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._models: dict[Hashable, Any] = {}
        self._load_locks: dict[Hashable, threading.Lock] = {}
        self._run_locks: dict[Hashable, threading.Lock] = {}

    def _locks(self, key: Hashable) -> tuple[threading.Lock, threading.Lock]:
        with self._guard:
            return self._load_locks.setdefault(key, threading.Lock()), self._run_locks.setdefault(key, threading.Lock())

    def get(self, key: Hashable, loader: Callable[[], Any]) -> Any:
        """The model for ``key``, loaded with ``loader()`` by the first thread that asks; the others wait for it."""
        load_lock, _ = self._locks(key)
        with load_lock:
            with self._guard:
                if key in self._models:
                    return self._models[key]
            model = loader()
            with self._guard:
                self._models[key] = model
            return model

    @contextmanager
    def use(self, key: Hashable, loader: Callable[[], Any]) -> Iterator[Any]:
        """The model for ``key``, held for this caller alone for the length of the block."""
        model = self.get(key, loader)
        _, run_lock = self._locks(key)
        with run_lock:
            yield model

    def evict(self, keep: Callable[[Hashable], bool]) -> list[Hashable]:
        """Drop every model whose key ``keep`` rejects, each once its running call (if any) has finished.

        On one GPU, switching presets must free the previous model rather than hold both; returns the keys dropped.
        """
        with self._guard:
            doomed = [key for key in self._models if not keep(key)]
        for key in doomed:
            _, run_lock = self._locks(key)
            with run_lock, self._guard:
                self._models.pop(key, None)
        return doomed

    def busy(self, key: Hashable) -> bool:
        """Whether a call is running on ``key``'s model now."""
        return self._locks(key)[1].locked()

    def loaded(self) -> list[Hashable]:
        with self._guard:
            return list(self._models)


# Stop, a closed page, a cancelled request and the time budget: showme_i2g.app_runs (RunRegistry, RunControl).


class RunFolders:
    """A fresh folder per run under ``root`` (default: ``showme-i2g-app`` in the temp dir); old runs are pruned."""

    def __init__(self, root: str | os.PathLike | None = None, max_age_s: float = 6 * 3600) -> None:
        self.root = Path(root) if root is not None else Path(tempfile.gettempdir()) / "showme-i2g-app"
        self.max_age_s = max_age_s

    def new(self, kind: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        self.prune()
        folder = self.root / f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        return folder

    def prune(self) -> None:
        """Delete run folders older than ``max_age_s`` (the examples folder is left alone)."""
        cutoff = time.time() - self.max_age_s
        for entry in self.root.glob("*-*-*"):
            try:
                if entry.is_dir() and entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
            except OSError:
                continue


# ---------------------------------------------------------------------------------------------------------------------
# Example photos, drawn here: the project ships no photos of its own, so no licence question arises
# ---------------------------------------------------------------------------------------------------------------------


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
