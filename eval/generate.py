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

The rendering lives in the library: :func:`showme_i2g.evaluation.generate.generate_split` (and
:func:`~showme_i2g.evaluation.generate.generate_i2g` / :func:`~showme_i2g.evaluation.generate.generate_showme` on
samples already read), with the options below as a :class:`~showme_i2g.evaluation.generate.GenerationSettings`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from showme_i2g.data.formats import RECIPE_FORMATS
from showme_i2g.errors import run_cli
from showme_i2g.evaluation.generate import I2G_METHODS, SHOWME_METHODS, GenerationSettings, generate_split

DEFAULTS = GenerationSettings()


def settings(args: argparse.Namespace) -> GenerationSettings:
    """The parsed options as the library's typed settings."""
    return GenerationSettings(
        tiny=args.tiny, seed=args.seed, limit=args.limit, inference_steps=args.inference_steps,
        guidance=args.guidance, size=args.size, max_batch=args.max_batch, frames=args.frames, fps=args.fps,
        device=args.device, weights=args.weights, lora_dir=args.lora_dir,
    )


def run(args: argparse.Namespace) -> dict[str, int]:
    """Render every unfinished sample; returns how many were rendered and skipped."""
    done = generate_split(args.method, args.data, args.out, settings(args), data_format=args.format,
                          split=args.split)
    return {"rendered": len(done.rendered), "skipped": len(done.skipped)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.generate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", required=True, choices=I2G_METHODS + SHOWME_METHODS)
    parser.add_argument("--data", type=Path, required=True, help="recipes (I2G methods) or photo items (ShowMe)")
    parser.add_argument("--format", choices=RECIPE_FORMATS, default="json", help="recipes file format (I2G methods)")
    parser.add_argument("--split", default="test", help="which split to render, or 'all'")
    parser.add_argument("--out", type=Path, required=True, help="one folder per sample is written here")
    parser.add_argument("--tiny", action="store_true", help="the method's tiny twin (random weights; tests)")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--limit", type=int, help="render at most this many samples")
    parser.add_argument("--inference-steps", type=int, help="denoising steps (default: the preset's)")
    parser.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the preset's)")
    parser.add_argument("--size", type=int, help="image side in pixels (I2G methods, InstructPix2Pix)")
    parser.add_argument("--max-batch", type=int, default=DEFAULTS.max_batch,
                        help=f"most step images denoised together (I2G methods; default {DEFAULTS.max_batch}); longer "
                             "recipes are drawn in overlapping windows")
    parser.add_argument("--frames", type=int, default=DEFAULTS.frames,
                        help="video frames (showme-video, dynamicrafter)")
    parser.add_argument("--fps", type=int, default=DEFAULTS.fps, help="frames per second of written videos")
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
