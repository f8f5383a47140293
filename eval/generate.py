"""``python -m eval.generate``: render a split with one method of the papers' comparisons, resumably.

I2G (Table 1), on recipes: ``--method ours|independent|sdxl|sd15|sd21-turbo --data RECIPES --split test --out DIR``

- ``ours``: :class:`~showme_i2g.i2g.pipeline.IllustrationPipeline`, preset ``sdxl``, neighbour weight 1;
- ``independent``: the same pipeline, preset and seed with neighbour weight 0 (steps do not see each other);
- ``sdxl`` / ``sd15`` / ``sd21-turbo``: diffusers' own pipelines (:mod:`showme_i2g.baselines`), one image per step
  with the step text as the prompt (SDXL base 1.0, Stable Diffusion 1.5, SD-Turbo).

``--data`` is a recipes file: the JSON layout of :func:`showme_i2g.data.read_recipes_json` (default), or with
``--format captaincook4d|htstep|wikihow`` a dataset file its reader takes
(:func:`showme_i2g.data.formats.read_recipe_file`, shared with ``eval.i2g``). ``--split`` keeps the recipes whose
``split`` (HT-Step: ``subset``) matches; ``--split all`` takes every recipe. Output, as ``python -m showme_i2g
illustrate`` writes it: ``DIR/<recipe id>/step_01.png ...``, ``storyboard.png`` and ``run.json`` (goal, steps,
method, preset, seed and every setting). Every recipe is drawn whole, however long: ``ours`` and ``independent``
give the pipeline ``max_batch`` (``--max-batch``, default 16 images per batch), so a longer recipe is drawn in
overlapping windows in which every step sees both neighbours; the text-to-image baselines, whose steps are
independent, are batched 16 prompts at a time.

ShowMe (Tables 1-2), on photos: ``--method showme-edit|instructpix2pix|showme-video|dynamicrafter --data ITEMS``

- ``showme-edit``: ShowMe image mode (preset ``showme``: DynamiCrafter 256 + the authors' LoRAs, ``--lora-dir``);
- ``instructpix2pix``: diffusers' ``StableDiffusionInstructPix2PixPipeline`` (timbrooks/instruct-pix2pix);
- ``showme-video``: ShowMe video mode (first-frame conditioning);
- ``dynamicrafter``: the same DynamiCrafter 256 with no LoRA weights and its own conditioning (the photo on every
  frame), i.e. vanilla image-to-video.

``ITEMS`` is a JSON list of ``{"name"?, "image", "instruction", "split"?}`` or a CSV with those columns; image paths
are relative to the file. Output, as ``python -m showme_i2g edit/animate`` writes it and ``python -m eval.showme``
reads it: ``DIR/<name>/edited.png`` or ``DIR/<name>/video.mp4``, plus ``run.json`` (with the instruction).

Every method has a tiny twin (``--tiny``): the same classes and code path with random networks built in code, for
tests and CI. Resumable: a sample is finished when its ``run.json`` exists (written last, atomically), and finished
samples are skipped. Bad input: one sentence, exit code 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from showme_i2g.data.formats import RECIPE_FORMATS
from showme_i2g.errors import InvalidInputError, run_cli
from showme_i2g.outputs import write_run_json

I2G_METHODS = ("ours", "independent", "sdxl", "sd15", "sd21-turbo")
SHOWME_METHODS = ("showme-edit", "instructpix2pix", "showme-video", "dynamicrafter")
MAX_BATCH = 16  # images per denoising batch: windows of the I2G chain, prompts of a baseline


@dataclass(frozen=True)
class Method:
    """How one method renders: which loader, which preset (real and tiny), and its fixed settings."""

    kind: str  # "illustrate", "text2image", "showme", "instructpix2pix"
    preset: str
    tiny_preset: str
    settings: dict[str, Any] = field(default_factory=dict)


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


def load_recipes(path: Path, data_format: str, split: str) -> list[Sample]:
    """The split's recipes as samples; rows a reader skipped are printed (file:line and why)."""
    from showme_i2g.data.formats import read_recipe_file

    result = read_recipe_file(path, data_format)
    for problem in result.problems:
        print(f"skipped {problem}", file=sys.stderr)
    labelled = [(r.meta.get("split", r.meta.get("subset")), r) for r in result]
    recipes = _select_split(labelled, split, path)
    if not recipes:
        raise InvalidInputError(f"{path} holds no usable recipes.")
    taken: set[str] = set()
    return [
        Sample(folder_name(r.id, taken), r.id, goal=r.goal or r.id, steps=tuple(s.text for s in r.steps))
        for r in recipes
    ]


def load_photo_items(path: Path, split: str) -> list[Sample]:
    """(photo, instruction) items from a JSON list or a CSV with ``image`` and ``instruction`` columns."""
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


def _chunks(steps: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Balanced consecutive batches of at most MAX_BATCH independent prompts (18 steps -> 9 + 9)."""
    count = -(-len(steps) // MAX_BATCH)
    size = -(-len(steps) // count)
    return [steps[i : i + size] for i in range(0, len(steps), size)]


def _generator(seed: int):
    import torch

    return torch.Generator("cpu").manual_seed(seed)


def _illustration_renderer(method: Method, preset: str, args) -> Callable[[Sample, Path], dict]:
    from showme_i2g.i2g.pipeline import IllustrationPipeline
    from showme_i2g.outputs import write_illustrations

    pipe = IllustrationPipeline.from_preset(preset, device=args.device, weights=args.weights)
    pipe.set_progress_bar_config(disable=True)

    def render(sample: Sample, folder: Path) -> dict:
        result = pipe(
            sample.goal, list(sample.steps), seed=args.seed, num_inference_steps=args.inference_steps,
            guidance_scale=args.guidance, height=args.size, width=args.size, max_batch=args.max_batch,
            **method.settings,
        )
        write_illustrations(result.images, sample.steps, sample.goal, folder)
        return {"goal": sample.goal, "steps": list(sample.steps), "clauses": result.clauses, **result.metadata}

    return render


def _sampling(preset, args) -> dict:
    """The preset's defaults with the command line's overrides."""
    return {
        "num_inference_steps": args.inference_steps or preset.num_inference_steps,
        "guidance_scale": preset.guidance_scale if args.guidance is None else args.guidance,
    }


def _run_record(pipe, preset, settings: dict, seed: int, started: float) -> dict:
    from showme_i2g import __version__

    return {
        "preset": preset.name, "weights": preset.base or "built-in tiny", "pipeline": type(pipe).__name__,
        "scheduler": type(pipe.scheduler).__name__, "seed": seed, **settings,
        "device": str(pipe.device), "dtype": str(pipe.unet.dtype).replace("torch.", ""),
        "seconds": round(time.perf_counter() - started, 3), "showme_i2g": __version__,
    }


def _text2image_renderer(method: Method, preset_name: str, args) -> Callable[[Sample, Path], dict]:
    from showme_i2g.baselines import load_baseline
    from showme_i2g.outputs import write_illustrations

    pipe = load_baseline(preset_name, device=args.device or _device(), weights=args.weights)
    preset = pipe.preset

    def render(sample: Sample, folder: Path) -> dict:
        started = time.perf_counter()
        size = args.size or preset.size
        settings = {**_sampling(preset, args), "height": size, "width": size}
        images = []
        for chunk_index, chunk in enumerate(_chunks(sample.steps)):  # each step on its own: the prompt is its text
            images += pipe(prompt=list(chunk), generator=_generator(args.seed + chunk_index), **settings).images
        write_illustrations(images, sample.steps, sample.goal, folder)
        return {"goal": sample.goal, "steps": list(sample.steps), "prompts": list(sample.steps),
                **_run_record(pipe, preset, settings, args.seed, started)}

    return render


def _instructpix2pix_renderer(method: Method, preset_name: str, args) -> Callable[[Sample, Path], dict]:
    from showme_i2g.baselines import load_baseline
    from showme_i2g.media import fit_photo, load_photo

    pipe = load_baseline(preset_name, device=args.device or _device(), weights=args.weights)
    preset = pipe.preset

    def render(sample: Sample, folder: Path) -> dict:
        started = time.perf_counter()
        size = args.size or preset.size
        photo, _ = fit_photo(load_photo(sample.image), (size, size), "crop")
        settings = {**_sampling(preset, args), "image_guidance_scale": preset.image_guidance_scale}
        image = pipe(prompt=sample.instruction, image=photo, generator=_generator(args.seed), **settings).images[0]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / "edited.png")
        return {"instruction": sample.instruction, "image": str(sample.image), "size": size,
                **_run_record(pipe, preset, settings, args.seed, started)}

    return render


def _showme_renderer(method: Method, preset: str, args) -> Callable[[Sample, Path], dict]:
    from showme_i2g.media import save_video
    from showme_i2g.showme.pipeline import ShowMePipeline

    lora_dir = args.lora_dir if preset == "showme" else None  # dynamicrafter: the release's weights, no LoRA
    pipe = ShowMePipeline.from_preset(preset, device=args.device, weights=args.weights, lora_dir=lora_dir)
    pipe.set_progress_bar_config(disable=True)
    sampling = {"seed": args.seed, "num_inference_steps": args.inference_steps, "guidance_scale": args.guidance}

    def render(sample: Sample, folder: Path) -> dict:
        folder.mkdir(parents=True, exist_ok=True)
        if method.settings["mode"] == "image":
            result = pipe.edit(sample.image, sample.instruction, **sampling)
            result.image.save(folder / "edited.png")
        else:
            result = pipe.animate(sample.image, sample.instruction, num_frames=args.frames,
                                  conditioning=method.settings["conditioning"], **sampling)
            save_video(result.frames, folder / "video.mp4", fps=args.fps)
        return {**result.metadata, "image": str(sample.image), "lora_dir": str(lora_dir) if lora_dir else None}

    return render


RENDERERS = {
    "illustrate": _illustration_renderer,
    "text2image": _text2image_renderer,
    "instructpix2pix": _instructpix2pix_renderer,
    "showme": _showme_renderer,
}


def _device() -> str:
    from showme_i2g.devices import best_device

    return str(best_device())


# ---------------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, int]:
    """Render every unfinished sample; returns how many were rendered and skipped."""
    method = METHODS[args.method]
    if method.kind == "illustrate":
        from showme_i2g.i2g.inputs import check_anchor_options

        check_anchor_options(None, has_reference=False, max_batch=args.max_batch)  # before any model loads
    if args.method in SHOWME_METHODS:
        samples = load_photo_items(args.data, args.split)
    else:
        samples = load_recipes(args.data, args.format, args.split)
    if args.limit is not None:
        samples = samples[: args.limit]
    todo = [s for s in samples if not (args.out / s.name / "run.json").is_file()]
    print(f"{args.method}: {len(samples) - len(todo)} of {len(samples)} samples already finished in {args.out}",
          file=sys.stderr)
    if not todo:
        return {"rendered": 0, "skipped": len(samples)}
    preset = method.tiny_preset if args.tiny else method.preset
    render = RENDERERS[method.kind](method, preset, args)
    from tqdm.auto import tqdm

    for sample in tqdm(todo, desc=args.method, unit="sample", disable=None):
        folder = args.out / sample.name
        folder.mkdir(parents=True, exist_ok=True)
        record = render(sample, folder)
        write_run_json(folder / "run.json", {"method": args.method, "id": sample.id, "name": sample.name, **record})
    return {"rendered": len(todo), "skipped": len(samples) - len(todo)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.generate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", required=True, choices=I2G_METHODS + SHOWME_METHODS)
    parser.add_argument("--data", type=Path, required=True, help="recipes (I2G methods) or photo items (ShowMe)")
    parser.add_argument("--format", choices=RECIPE_FORMATS, default="json", help="recipes file format (I2G methods)")
    parser.add_argument("--split", default="test", help="which split to render, or 'all'")
    parser.add_argument("--out", type=Path, required=True, help="one folder per sample is written here")
    parser.add_argument("--tiny", action="store_true", help="the method's tiny twin (random weights; tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="render at most this many samples")
    parser.add_argument("--inference-steps", type=int, help="denoising steps (default: the preset's)")
    parser.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the preset's)")
    parser.add_argument("--size", type=int, help="image side in pixels (I2G methods, InstructPix2Pix)")
    parser.add_argument("--max-batch", type=int, default=MAX_BATCH,
                        help=f"most step images denoised together (I2G methods; default {MAX_BATCH}); longer recipes "
                             "are drawn in overlapping windows")
    parser.add_argument("--frames", type=int, default=16, help="video frames (showme-video, dynamicrafter)")
    parser.add_argument("--fps", type=int, default=8, help="frames per second of written videos")
    parser.add_argument("--device", help="cuda or cpu (default: the best available)")
    parser.add_argument("--weights", type=Path, help="local copy of the method's base weights")
    parser.add_argument("--lora-dir", type=Path, help="folder with the ShowMe LoRA files (showme-* methods)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> None:
        counts = run(args)
        print(f"Rendered {counts['rendered']} samples, skipped {counts['skipped']} finished ones.", file=sys.stderr)

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
