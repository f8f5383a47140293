"""``python -m eval.i2g``: I2G's Table 1 for one method's illustrations, plus StackedDiffusion's metrics.

Usage::

    python -m eval.i2g --generated DIR --references ANNOTATIONS [--format json] --human SCORES.csv --out REPORT_DIR

    # large sets, one process per GPU: each captions and embeds its share of the images, the main process
    # gathers them, computes the set-level numbers (KL, Chi2, faithfulness, FID) and writes the report
    accelerate launch --num_processes 8 -m eval.i2g --generated DIR --references ANNOTATIONS ...

Inputs
    ``--generated DIR``: one folder per recipe, as ``python -m eval.generate`` and ``python -m showme_i2g
    illustrate`` write them: ``DIR/<recipe>/step_01.png, step_02.png, ...`` (one image per step, in order) and
    optionally ``run.json``. A folder is matched to its recipe by ``run.json``'s ``"id"``, else by the folder name
    (the recipe id, or the id with ``/`` and other unsafe characters written as ``_``), else by ``run.json``'s
    ``"goal"``. Every recipe folder must match a recipe and hold exactly one image per step.

    ``--references ANNOTATIONS``: the recipes, read by :func:`showme_i2g.data.formats.read_recipe_file` as
    ``--format``: ``json`` (default), the layout of :func:`showme_i2g.data.read_recipes_json`:
    ``[{"id", "goal", "steps": ["text", {"text", "image"?}, ...], "split"?}, ...]`` (or ``{"recipes": [...]}``);
    or a dataset's own annotations: ``captaincook4d`` (``step_annotations.csv``, with
    ``activity_step_description.csv`` and ``error_annotations.json`` when they lie beside it; recipe id = recording
    id such as ``1_7``, steps with errors dropped), ``htstep`` (``taxonomy.csv``) or ``wikihow`` (VGSI JSON lines,
    images under ``--image-root``). Step images, when given (paths relative to the file or ``--image-root``), are
    the real pictures FID compares against; without at least two of them FID is skipped and the report says so.

    ``--human SCORES.csv``: human alignment scores on CLIPScore's scale, 0 (unrelated) to 2.5 (perfect), one row
    per judged image; a ``score`` column is required, ``recipe_id`` and ``step`` (1-based) are optional and only
    identify the row. Only the distribution of the scores enters KL and chi-square, as in I2G.

Metrics (``results.md`` / ``results.json``)
    - *Alignment*: each image is captioned (BLIP-2 by default; one of the paper's 21 prompts drawn with ``--seed``),
      caption and step text are embedded (all-MiniLM-L6-v2 offline by default), score = 2.5 * max(cos, 0).
    - *KL x100, Chi2 x100*: the model's alignment-score distribution against the human one. Binning: ``--bins``
      (10) equal bins over [0, 2.5], scores clipped into the end bins; smoothing: ``--smoothing`` (1e-6) added to
      each bin of both normalised histograms, then renormalised; KL(human || model) in nats; chi2 = sum (model -
      human)^2 / human. Lower is better.
    - *CLIPScore* of each image with its step text and with its goal (CLIP ViT-L/14, w = 2.5).
    - *Goal / step faithfulness* (%): StackedDiffusion's CLIP multiple choice among ``--choices`` (4) goals / steps.
    - *Cross-image consistency* (%): mean pairwise DINOv2 cosine of the steps of one recipe.
    - *FID* against the references' step images (TF-FID Inception, 2048-d pool3).

Outputs in ``REPORT_DIR``: ``results.md``, ``results.json`` (metrics, settings, per-image captions and scores),
``hist_alignment.png`` (model vs human score histograms with KDE, the bins of the KL), ``hist_clipscore.png``, and
``grid_samples.png`` (the first recipes, one row each).

Models: ``--clip``, ``--dino``, ``--captioner`` (a BLIP-2 or LLaVA hub id or folder) and ``--embedder`` (a
sentence-transformers id or folder, or ``llm2vec``) pick the networks; ``--tiny`` builds tiny random CLIP, DINOv2 and
BLIP-2 networks in code (the real offline MiniLM still embeds the text) so a whole run works offline; its numbers
test the pipeline, not a model. Bad input: one sentence, exit code 2.

Several processes (``accelerate launch -m eval.i2g ...``): the images are split into contiguous shards, one per
process (:func:`showme_i2g.evaluation.distributed.map_in_shards`); each process opens, captions and embeds only its
shard (CLIP, DINOv2, FID features) on its own GPU, the results are gathered in image order, and the main process alone
computes the set-level metrics and writes the report. The caption prompts are drawn over the whole set before the
split, so they do not depend on the number of processes; one process gives exactly the undistributed results.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from showme_i2g.data.formats import RECIPE_FORMATS
from showme_i2g.errors import run_cli
from showme_i2g.i2g.evaluation import DEFAULT_CAPTIONER, DEFAULT_CLIP, DEFAULT_DINO, Networks, evaluate_i2g
from showme_i2g.metrics.distribution import DEFAULT_BINS, DEFAULT_SMOOTHING


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m eval.i2g",
        description="I2G Table 1 (caption alignment vs human scores: KL, Chi2 x100), CLIPScore, goal/step "
                    "faithfulness, cross-image consistency and FID for one folder of illustrations.",
        epilog="Layouts: DIR/<recipe id>/step_01.png ... (+ run.json), as eval.generate and `showme_i2g illustrate` "
               "write them; ANNOTATIONS: [{\"id\", \"goal\", \"steps\": [text | {\"text\", \"image\"}]}] JSON, "
               "or a dataset's annotations with --format; "
               "SCORES.csv: a 'score' column in [0, 2.5] (optional recipe_id, step). See the module docstring.",
    )
    parser.add_argument("--generated", type=Path, required=True, help="folder of recipe folders with step images")
    parser.add_argument("--references", type=Path, required=True,
                        help="the recipes: a JSON file (goal + steps [+ images]) or a dataset file, see --format")
    parser.add_argument("--format", choices=RECIPE_FORMATS, default="json",
                        help="how --references is read: the project's JSON or a dataset's own annotations")
    parser.add_argument("--human", type=Path, required=True, help="CSV of human alignment scores (column 'score')")
    parser.add_argument("--out", type=Path, required=True, help="report folder (results.md, results.json, plots)")
    parser.add_argument("--image-root", type=Path, help="folder the annotations' step images are relative to")
    parser.add_argument("--clip", default=DEFAULT_CLIP, help="CLIP hub id or folder")
    parser.add_argument("--dino", default=DEFAULT_DINO, help="DINOv2 hub id or folder")
    parser.add_argument("--captioner", default=DEFAULT_CAPTIONER,
                        help="BLIP-2 or LLaVA (e.g. llava-hf/llava-1.5-7b-hf) hub id or folder")
    parser.add_argument("--embedder", default=None,
                        help="sentence-transformers id or folder, or 'llm2vec' (default: the offline all-MiniLM-L6-v2)")
    parser.add_argument("--tiny", action="store_true", help="tiny random CLIP/DINOv2/BLIP-2 built in code (offline)")
    parser.add_argument("--models", choices=("real", "tiny"), help="same as --tiny when 'tiny'")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when present)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the caption-prompt draw and the distractors")
    parser.add_argument("--bins", type=int, default=DEFAULT_BINS, help="histogram bins over [0, 2.5] for KL/Chi2")
    parser.add_argument("--smoothing", type=float, default=DEFAULT_SMOOTHING, help="added to every histogram bin")
    parser.add_argument("--choices", type=int, default=4, help="options in the faithfulness multiple choice")
    parser.add_argument("--batch-size", type=int, default=8, help="images per network call")
    parser.add_argument("--grid-recipes", type=int, default=6, help="recipes shown in grid_samples.png")
    parser.add_argument("--no-fid", action="store_true", help="skip FID")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, evaluate, write the report; bad input is one sentence and exit code 2 (``showme_i2g.errors.run_cli``)."""
    args = build_parser().parse_args(argv)

    def body() -> None:
        networks = Networks(clip=args.clip, dino=args.dino, captioner=args.captioner, embedder=args.embedder,
                            tiny=args.tiny or args.models == "tiny")
        report = evaluate_i2g(
            args.generated, args.references, args.human, data_format=args.format, image_root=args.image_root,
            networks=networks, device=args.device, seed=args.seed, bins=args.bins, smoothing=args.smoothing,
            choices=args.choices,
            batch_size=args.batch_size, grid_recipes=args.grid_recipes, fid=not args.no_fid, progress=not args.quiet,
        )
        if report is None:  # not the main process: its shard is gathered, the main process writes the report
            return
        report.write(args.out)
        print(report.markdown().split("\n## ")[0])
        print(f"Wrote results.md, results.json and plots to {args.out}", file=sys.stderr)

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
