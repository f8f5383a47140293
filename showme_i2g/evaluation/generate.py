"""Rendering a split with one method of the papers' comparisons, resumably: :func:`generate_split`,
:func:`generate_i2g` and :func:`generate_showme`.

``python -m eval.generate`` parses its arguments into a :class:`GenerationSettings`, calls :func:`generate_split`
and prints what was rendered; its module docstring documents the methods, the input files and the output layout.

- :data:`METHODS` says how each method renders: which loader (the I2G pipeline, a diffusers baseline from
  :mod:`showme_i2g.baselines`, the ShowMe pipeline), which preset (real and tiny) and its fixed options.
- :func:`load_recipes` and :func:`read_items` read the inputs as samples (:class:`Sample`: a recipe, or a photo
  and an instruction, with a file-system-safe folder name); :func:`recipe_samples` makes them from recipes read
  already.
- :func:`generate_i2g` (I2G's methods, on recipes) and :func:`generate_showme` (ShowMe's, on photos) render every
  unfinished sample into ``out_dir/<name>/``. A sample is finished when its ``run.json`` exists: it is written
  last and atomically (:func:`showme_i2g.outputs.write_run_json`), so a killed run resumes where it stopped.

Bad input (an unknown method, a batch too small for the chain, an unreadable file, a missing split) raises
:class:`~showme_i2g.errors.InvalidInputError` with one sentence before any model loads.
"""

from __future__ import annotations

import csv
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..media.videos import DEFAULT_FPS
from ..outputs import RUN_JSON, write_run_json
from ..validation import DEFAULT_FRAMES

__all__ = ["I2G_METHODS", "MAX_BATCH", "METHODS", "SHOWME_METHODS", "GenerationRun", "GenerationSettings", "Method",
           "Sample", "folder_name", "generate_i2g", "generate_showme", "generate_split", "load_recipes",
           "prompt_batches", "read_items", "recipe_samples"]

I2G_METHODS = ("ours", "independent", "sdxl", "sd15", "sd21-turbo")
SHOWME_METHODS = ("showme-edit", "instructpix2pix", "showme-video", "dynamicrafter")
MAX_BATCH = 16  # images per denoising batch: windows of the I2G chain, prompts of a baseline


@dataclass(frozen=True)
class Method:
    """How one method renders: which loader, which preset (real and tiny), and its fixed options."""

    kind: str  # "illustrate", "text2image", "showme", "instructpix2pix"
    preset: str
    tiny_preset: str
    options: dict[str, Any] = field(default_factory=dict)


METHODS: dict[str, Method] = {
    "ours": Method("illustrate", "sdxl", "tiny", {"neighbour_weight": 1.0}),
    "independent": Method("illustrate", "sdxl", "tiny", {"neighbour_weight": 0.0}),
    "sdxl": Method("text2image", "sdxl-base", "sdxl-base-tiny"),
    "sd15": Method("text2image", "sd15", "sd15-tiny"),
    "sd21-turbo": Method("text2image", "sd21-turbo", "sd21-turbo-tiny"),
    "showme-edit": Method("showme", "showme", "tiny", {"mode": "image"}),
    "showme-video": Method("showme", "showme", "tiny", {"mode": "video", "conditioning": "mask"}),
    "dynamicrafter": Method("showme", "dynamicrafter-256", "tiny", {"mode": "video", "conditioning": "repeat"}),
    "instructpix2pix": Method("instructpix2pix", "instructpix2pix", "instructpix2pix-tiny"),
}


@dataclass(frozen=True)
class GenerationSettings:
    """The settings of one run, shared by every method (``python -m eval.generate``'s options).

    ``None`` means the preset's own value (denoising steps, guidance, size; ``device``: the best available).
    ``max_batch`` bounds the I2G chain's windows (``ours``, ``independent``); ``frames`` and ``fps`` are the videos'
    (``showme-video``, ``dynamicrafter``); ``lora_dir`` holds ShowMe's LoRA files (``showme-*``); ``weights`` is a
    local copy of the method's base weights. ``tiny`` renders with the method's tiny twin (random networks built in
    code). ``limit`` renders at most that many samples.
    """

    tiny: bool = False
    seed: int = 0
    limit: int | None = None
    inference_steps: int | None = None
    guidance: float | None = None
    size: int | None = None
    max_batch: int = MAX_BATCH
    frames: int = DEFAULT_FRAMES
    fps: int = DEFAULT_FPS
    device: str | None = None
    weights: Path | None = None
    lora_dir: Path | None = None


@dataclass(frozen=True)
class GenerationRun:
    """What a run did: every sample's folder (in sample order) and those it rendered now; the others were finished."""

    folders: tuple[Path, ...]
    rendered: tuple[Path, ...]

    @property
    def skipped(self) -> tuple[Path, ...]:
        """The folders already finished (holding a ``run.json``) before this run."""
        done = set(self.rendered)
        return tuple(folder for folder in self.folders if folder not in done)


# ---------------------------------------------------------------------------------------------------------------------
# Samples
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One unit of work: a recipe (goal + steps) or a photo + instruction, and the folder name it renders to."""

    name: str
    id: str
    goal: str | None = None
    steps: tuple[str, ...] = ()
    image: Path | None = None
    instruction: str | None = None


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def folder_name(identifier: str, taken: set[str]) -> str:
    """A file-system-safe, unique folder name for a sample id ("12345/1" -> "12345_1")."""
    base = _UNSAFE.sub("_", identifier).strip("._") or "sample"
    name, number = base, 2
    while name in taken:
        name, number = f"{base}-{number}", number + 1
    taken.add(name)
    return name


def _select_split(records: list[tuple[str | None, Any]], split: str, path: Path) -> list[Any]:
    if split == "all":
        return [record for _, record in records]
    if all(label is None for label, _ in records):
        raise InvalidInputError(f"{path} labels no splits; pass --split all to render every item.")
    chosen = [record for label, record in records if label == split]
    if not chosen:
        labels = sorted({label for label, _ in records if label is not None})
        raise InvalidInputError(f"{path} has no {split!r} items; its splits are {', '.join(labels)}.")
    return chosen


def recipe_samples(recipes: Iterable[Any]) -> list[Sample]:
    """Recipes (:class:`showme_i2g.data.Recipe`) as samples: the goal (the id when there is none), the step texts,
    and a unique folder name made from the id."""
    taken: set[str] = set()
    return [
        Sample(folder_name(r.id, taken), r.id, goal=r.goal or r.id, steps=tuple(s.text for s in r.steps))
        for r in recipes
    ]


def load_recipes(path: Path, data_format: str, split: str) -> list[Sample]:
    """The split's recipes as samples (``split`` "all": every recipe); rows a reader skipped are printed (file:line
    and why)."""
    from ..data.formats import read_recipe_file

    result = read_recipe_file(path, data_format)
    for problem in result.problems:
        print(f"skipped {problem}", file=sys.stderr)
    labelled = [(r.meta.get("split", r.meta.get("subset")), r) for r in result]
    recipes = _select_split(labelled, split, path)
    if not recipes:
        raise InvalidInputError(f"{path} holds no usable recipes.")
    return recipe_samples(recipes)


def read_items(path: Path, split: str = "all") -> list[Sample]:
    """(photo, instruction) items from a JSON list or a CSV with ``image`` and ``instruction`` columns (optional
    ``name`` and ``split``); image paths are relative to the file, and ``split`` "all" takes every item."""
    if not path.is_file():
        raise InvalidInputError(f"The items file {path} does not exist.")
    try:
        text = path.read_text(encoding="utf-8-sig")
        rows = list(csv.DictReader(text.splitlines())) if path.suffix.lower() == ".csv" else json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as error:
        raise InvalidInputError(f"The items file {path} cannot be parsed ({type(error).__name__}).") from None
    if not isinstance(rows, list) or not rows:
        raise InvalidInputError(f"The items file {path} holds no list of photo and instruction items.")
    labelled = []
    for number, row in enumerate(rows, start=1):
        image, instruction = (row.get("image"), row.get("instruction")) if isinstance(row, dict) else (None, None)
        if not all(isinstance(value, str) and value.strip() for value in (image, instruction)):
            raise InvalidInputError(f"Item {number} of {path} needs an 'image' path and an 'instruction'.")
        labelled.append((row.get("split") or None, (number, row)))
    taken: set[str] = set()
    samples = []
    for number, row in _select_split(labelled, split, path):
        identifier = str(row.get("name") or row.get("id") or Path(row["image"]).stem)
        image = (path.parent / row["image"].strip()).resolve()
        if not image.is_file():
            raise InvalidInputError(f"Item {number} of {path} names the photo {row['image']}, which does not exist.")
        samples.append(Sample(folder_name(identifier, taken), identifier, image=image,
                              instruction=" ".join(row["instruction"].split())))
    return samples


# ---------------------------------------------------------------------------------------------------------------------
# Renderers: each returns the run.json record after writing its files into the sample's folder
# ---------------------------------------------------------------------------------------------------------------------

Renderer = Callable[[Sample, Path], dict[str, Any]]


def prompt_batches(steps: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Balanced consecutive batches of at most :data:`MAX_BATCH` independent prompts (18 steps -> 9 + 9)."""
    count = -(-len(steps) // MAX_BATCH)
    size = -(-len(steps) // count)
    return [steps[i : i + size] for i in range(0, len(steps), size)]


def _generator(seed: int):
    import torch

    return torch.Generator("cpu").manual_seed(seed)


def _illustration_renderer(method: Method, preset: str, settings: GenerationSettings) -> Renderer:
    from ..i2g.pipeline import IllustrationPipeline
    from ..outputs import write_illustrations

    pipe = IllustrationPipeline.from_preset(preset, device=settings.device, weights=settings.weights)
    pipe.set_progress_bar_config(disable=True)

    def render(sample: Sample, folder: Path) -> dict[str, Any]:
        result = pipe(
            sample.goal, list(sample.steps), seed=settings.seed, num_inference_steps=settings.inference_steps,
            guidance_scale=settings.guidance, height=settings.size, width=settings.size,
            max_batch=settings.max_batch, **method.options,
        )
        write_illustrations(result.images, sample.steps, sample.goal, folder)
        return {"goal": sample.goal, "steps": list(sample.steps), "clauses": result.clauses, **result.metadata}

    return render


def _sampling(preset: Any, settings: GenerationSettings) -> dict[str, Any]:
    """The baseline preset's defaults with the settings' overrides."""
    return {
        "num_inference_steps": settings.inference_steps or preset.num_inference_steps,
        "guidance_scale": preset.guidance_scale if settings.guidance is None else settings.guidance,
    }


def _baseline_record(pipe: Any, preset: Any, sampling: dict[str, Any], seed: int, started: float) -> dict[str, Any]:
    from .. import __version__

    return {
        "preset": preset.name, "weights": preset.base or "built-in tiny", "pipeline": type(pipe).__name__,
        "scheduler": type(pipe.scheduler).__name__, "seed": seed, **sampling,
        "device": str(pipe.device), "dtype": str(pipe.unet.dtype).replace("torch.", ""),
        "seconds": round(time.perf_counter() - started, 3), "showme_i2g": __version__,
    }


def _text2image_renderer(method: Method, preset_name: str, settings: GenerationSettings) -> Renderer:
    from ..baselines import load_baseline
    from ..outputs import write_illustrations

    pipe = load_baseline(preset_name, device=settings.device, weights=settings.weights)
    preset = pipe.preset

    def render(sample: Sample, folder: Path) -> dict[str, Any]:
        started = time.perf_counter()
        size = settings.size or preset.size
        sampling = {**_sampling(preset, settings), "height": size, "width": size}
        images = []
        for index, batch in enumerate(prompt_batches(sample.steps)):  # each step on its own: the prompt is its text
            images += pipe(prompt=list(batch), generator=_generator(settings.seed + index), **sampling).images
        write_illustrations(images, sample.steps, sample.goal, folder)
        return {"goal": sample.goal, "steps": list(sample.steps), "prompts": list(sample.steps),
                **_baseline_record(pipe, preset, sampling, settings.seed, started)}

    return render


def _instructpix2pix_renderer(method: Method, preset_name: str, settings: GenerationSettings) -> Renderer:
    from ..baselines import load_baseline
    from ..media import fit_photo, load_photo

    pipe = load_baseline(preset_name, device=settings.device, weights=settings.weights)
    preset = pipe.preset

    def render(sample: Sample, folder: Path) -> dict[str, Any]:
        started = time.perf_counter()
        size = settings.size or preset.size
        photo, _ = fit_photo(load_photo(sample.image), (size, size), "crop")
        sampling = {**_sampling(preset, settings), "image_guidance_scale": preset.image_guidance_scale}
        image = pipe(prompt=sample.instruction, image=photo, generator=_generator(settings.seed), **sampling).images[0]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / "edited.png")
        return {"instruction": sample.instruction, "image": str(sample.image), "size": size,
                **_baseline_record(pipe, preset, sampling, settings.seed, started)}

    return render


def _showme_renderer(method: Method, preset: str, settings: GenerationSettings) -> Renderer:
    from ..media import save_video
    from ..showme.pipeline import ShowMePipeline

    lora_dir = settings.lora_dir if preset == "showme" else None  # dynamicrafter: the release's weights, no LoRA
    pipe = ShowMePipeline.from_preset(preset, device=settings.device, weights=settings.weights, lora_dir=lora_dir)
    pipe.set_progress_bar_config(disable=True)
    sampling = {"seed": settings.seed, "num_inference_steps": settings.inference_steps,
                "guidance_scale": settings.guidance}

    def render(sample: Sample, folder: Path) -> dict[str, Any]:
        folder.mkdir(parents=True, exist_ok=True)
        if method.options["mode"] == "image":
            result = pipe.edit(sample.image, sample.instruction, **sampling)
            result.image.save(folder / "edited.png")
        else:
            result = pipe.animate(sample.image, sample.instruction, num_frames=settings.frames,
                                  conditioning=method.options["conditioning"], **sampling)
            save_video(result.frames, folder / "video.mp4", fps=settings.fps)
        return {**result.metadata, "image": str(sample.image), "lora_dir": str(lora_dir) if lora_dir else None}

    return render


RENDERERS: dict[str, Callable[[Method, str, GenerationSettings], Renderer]] = {
    "illustrate": _illustration_renderer,
    "text2image": _text2image_renderer,
    "instructpix2pix": _instructpix2pix_renderer,
    "showme": _showme_renderer,
}


# ---------------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------------


def _check_method(method: str, methods: tuple[str, ...], paper: str) -> Method:
    if method not in methods:
        raise InvalidInputError(f"{method!r} is not one of {paper}'s methods ({', '.join(methods)}).")
    return METHODS[method]


def _check_settings(method: Method, settings: GenerationSettings) -> None:
    """Refuse settings that cannot work for ``method``, before any model loads."""
    if method.kind == "illustrate":
        from ..i2g.inputs import check_anchor_options

        check_anchor_options(None, has_reference=False, max_batch=settings.max_batch)


def _limited(samples: Sequence[Sample], settings: GenerationSettings) -> list[Sample]:
    return list(samples) if settings.limit is None else list(samples)[: settings.limit]


def _check_samples(samples: Sequence[Sample]) -> None:
    names = [sample.name for sample in samples]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidInputError(f"Two samples render to the same folder {repeated[0]!r}; give each a unique name.")


def _render(samples: Sequence[Sample], method_name: str, method: Method, out_dir: Path, settings: GenerationSettings,
            progress: bool) -> GenerationRun:
    """Render every unfinished sample (no ``run.json`` in its folder); ``run.json`` is written last."""
    folders = tuple(out_dir / sample.name for sample in samples)
    todo = [(s, folder) for s, folder in zip(samples, folders) if not (folder / RUN_JSON).is_file()]
    if progress:
        print(f"{method_name}: {len(samples) - len(todo)} of {len(samples)} samples already finished in {out_dir}",
              file=sys.stderr)
    if not todo:
        return GenerationRun(folders, ())
    preset = method.tiny_preset if settings.tiny else method.preset
    render = RENDERERS[method.kind](method, preset, settings)
    from tqdm.auto import tqdm

    for sample, folder in tqdm(todo, desc=method_name, unit="sample", disable=None if progress else True):
        folder.mkdir(parents=True, exist_ok=True)
        record = render(sample, folder)
        write_run_json(folder / RUN_JSON, {"method": method_name, "id": sample.id, "name": sample.name, **record})
    return GenerationRun(folders, tuple(folder for _, folder in todo))


def generate_i2g(recipes: Sequence[Sample], method: str, out_dir: Path, settings: GenerationSettings | None = None,
                 *, progress: bool = True) -> GenerationRun:
    """Render recipes (from :func:`load_recipes` or :func:`recipe_samples`) with one of :data:`I2G_METHODS` into
    ``out_dir/<name>/`` (``step_01.png ...``, ``storyboard.png``, ``run.json``), skipping finished samples.

    ``ours`` and ``independent`` draw each recipe whole with the I2G pipeline in windows of at most
    ``settings.max_batch`` images; the text-to-image baselines draw each step from its own text,
    :data:`MAX_BATCH` prompts at a time. ``progress``: the "already finished" line and a progress bar on stderr.
    """
    settings = settings or GenerationSettings()
    chosen = _check_method(method, I2G_METHODS, "I2G")
    _check_settings(chosen, settings)
    recipes = _limited(recipes, settings)
    for sample in recipes:
        if not sample.steps:
            raise InvalidInputError(f"The recipe {sample.id!r} has no steps to illustrate.")
    _check_samples(recipes)
    return _render(recipes, method, chosen, Path(out_dir), settings, progress)


def generate_showme(items: Sequence[Sample], method: str, out_dir: Path, settings: GenerationSettings | None = None,
                    *, progress: bool = True) -> GenerationRun:
    """Render photo items (from :func:`read_items`) with one of :data:`SHOWME_METHODS` into ``out_dir/<name>/``
    (``edited.png`` or ``video.mp4``, and ``run.json`` with the instruction), skipping finished samples.
    ``progress``: the "already finished" line and a progress bar on stderr."""
    settings = settings or GenerationSettings()
    chosen = _check_method(method, SHOWME_METHODS, "ShowMe")
    _check_settings(chosen, settings)
    items = _limited(items, settings)
    for sample in items:
        if sample.image is None or not sample.instruction:
            raise InvalidInputError(f"The item {sample.id!r} needs a photo and an instruction.")
    _check_samples(items)
    return _render(items, method, chosen, Path(out_dir), settings, progress)


def generate_split(method: str, data: Path, out_dir: Path, settings: GenerationSettings | None = None, *,
                   data_format: str = "json", split: str, progress: bool = True) -> GenerationRun:
    """``python -m eval.generate``: read ``data`` (recipes in ``data_format`` for an I2G method, photo items for a
    ShowMe method), keep ``split`` ("all": everything) and render it with ``method``, resumably.

    The method and settings are checked before the file is read, and both before any model loads.
    """
    settings = settings or GenerationSettings()
    if method not in METHODS:
        known = ", ".join(I2G_METHODS + SHOWME_METHODS)
        raise InvalidInputError(f"Unknown method {method!r}; the methods are {known}.")
    _check_settings(METHODS[method], settings)
    if method in SHOWME_METHODS:
        return generate_showme(read_items(Path(data), split), method, out_dir, settings, progress=progress)
    return generate_i2g(load_recipes(Path(data), data_format, split), method, out_dir, settings, progress=progress)
