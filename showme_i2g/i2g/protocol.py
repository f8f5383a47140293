"""I2G's evaluation protocol (I2G §5.2-5.3, Table 1) and StackedDiffusion's faithfulness and consistency metrics.

**Caption alignment** (I2G §5.2). Each generated image is captioned by a multimodal LLM with one of the 21 prompts of
I2G appendix A.2 drawn with a seed (:mod:`.captioning`); the caption and the step text are embedded by a sentence
model (:mod:`showme_i2g.metrics.text`); their cosine is put on CLIPScore's scale, ``2.5 * max(cos, 0)``, like the
human scores. Table 1 compares the *distribution* of these scores with the human-score distribution by KL divergence
and chi-square, x100 (:func:`~showme_i2g.metrics.distribution.compare_distributions`; binning: 10 equal bins over [0,
2.5], scores clipped into the end bins; smoothing: 1e-6 added to every bin of both normalised histograms, which are
renormalised; KL(human || model) in nats, chi-square = sum (model - human)^2 / human).

**Goal and step faithfulness** (StackedDiffusion, Menon et al. 2023, §5; I2G §5.3) are multiple-choice accuracies of
CLIP. Goal faithfulness: each image is compared (CLIP cosine) with its own recipe's goal and ``choices - 1`` goals of
other recipes drawn at random; it counts as right when its own goal is the most similar. Step faithfulness: the same
among steps of the *same* recipe (its own step and up to ``choices - 1`` other steps of it), so it measures whether the
image shows this step rather than the recipe in general. Both are reported in percent; chance is ``100 / choices``
(StackedDiffusion uses 4 choices). StackedDiffusion's reproduction normalises the similarities over images before
picking a text; we pick the text with the highest raw cosine for each image, which is the definition in its paper.

**Cross-image consistency** (StackedDiffusion): the mean DINOv2 cosine over all unordered pairs of step images of one
recipe, averaged over recipes, in percent. I2G notes its weakness (near-identical images score highest), which is why
the distribution metrics lead Table 1; we report it next to them.

Everything here works on embeddings and callables, so it is tested with tiny networks; a ``progress`` flag shows tqdm
bars on long runs.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import InvalidInputError
from ..metrics.distribution import CLIP_SCORE_WEIGHT, clip_score
from ..metrics.text import text_cosine
from .captioning import draw_prompts

__all__ = [
    "CaptionAlignment",
    "caption_alignment",
    "cross_image_consistency",
    "goal_faithfulness",
    "multiple_choice_accuracy",
    "step_faithfulness",
]

Captioner = Callable[[Sequence[Image.Image], Sequence[str]], Sequence[str]]
TextEmbedder = Callable[[Sequence[str]], Any]


@dataclass
class CaptionAlignment:
    """Per-image results of the caption protocol: the prompt drawn, the caption, the cosine and the 0-2.5 score."""

    prompts: list[str]
    captions: list[str]
    cosines: np.ndarray
    scores: np.ndarray


def caption_alignment(
    images: Sequence[Image.Image],
    step_texts: Sequence[str],
    captioner: Captioner,
    embedder: TextEmbedder,
    seed: int = 0,
    batch_size: int = 8,
    w: float = CLIP_SCORE_WEIGHT,
    progress: bool = False,
    prompts: Sequence[str] | None = None,
) -> CaptionAlignment:
    """I2G's alignment score of each image with its step text: ``w * max(cos(embed(caption), embed(step)), 0)``.

    ``prompts`` (one per image) overrides the seeded draw: a sharded evaluation draws them over the whole set once,
    so the prompts do not depend on how the set was split.
    """
    if len(images) != len(step_texts):
        raise InvalidInputError(f"{len(images)} images cannot be paired with {len(step_texts)} step texts.")
    if len(images) == 0:
        raise InvalidInputError("There are no images to caption.")
    if prompts is None:
        prompts = draw_prompts(len(images), seed)
    elif len(prompts) != len(images):
        raise InvalidInputError(f"{len(prompts)} caption prompts cannot be paired with {len(images)} images.")
    prompts = list(prompts)
    starts = range(0, len(images), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="captioning", unit="batch")
    captions: list[str] = []
    for start in starts:
        chunk = list(images[start : start + batch_size])
        batch = list(captioner(chunk, prompts[start : start + batch_size]))
        if len(batch) != len(chunk):
            raise ValueError(f"the captioner returned {len(batch)} captions for {len(chunk)} images")
        captions += [str(c) for c in batch]
    # an empty caption embeds like any other string, and scores as the text it is
    cosines = text_cosine(embedder, captions, list(step_texts)).double().numpy()
    return CaptionAlignment(prompts, captions, cosines, clip_score(cosines, w))


def multiple_choice_accuracy(
    image_embeddings: Any, text_embeddings: Any, candidates: Sequence[Sequence[int]], answers: Sequence[int]
) -> float:
    """Percent of images whose own text (``answers[i]``) has the highest cosine among ``candidates[i]``.

    Ties count as wrong (a network that maps everything to one point must not score). Embeddings are normalised here.
    """
    if len(candidates) == 0:
        return float("nan")
    images = torch.nn.functional.normalize(torch.as_tensor(image_embeddings).double(), dim=-1)
    texts = torch.nn.functional.normalize(torch.as_tensor(text_embeddings).double(), dim=-1)
    right = 0
    for i, (options, answer) in enumerate(zip(candidates, answers)):
        if answer not in options:
            raise ValueError(f"image {i}: its own text {answer} is not among its candidates {list(options)}")
        sims = texts[list(options)] @ images[i]
        own = sims[list(options).index(answer)]
        right += int(bool((sims < own - 1e-12).sum() == len(options) - 1))
    return 100.0 * right / len(candidates)


def goal_faithfulness(
    image_embeddings: Any, recipe_of_image: Sequence[int], goal_embeddings: Any, choices: int = 4, seed: int = 0
) -> float:
    """StackedDiffusion's goal faithfulness (%): own goal vs ``choices - 1`` random other goals, per image.

    ``recipe_of_image[i]`` indexes ``goal_embeddings`` (one row per recipe). NaN with fewer than two recipes.
    """
    goals = torch.as_tensor(goal_embeddings)
    if goals.shape[0] < 2:
        return float("nan")
    rng = random.Random(seed)
    candidates, answers = [], []
    for own in recipe_of_image:
        others = [g for g in range(goals.shape[0]) if g != own]
        options = [own] + rng.sample(others, min(choices - 1, len(others)))
        rng.shuffle(options)
        candidates.append(options)
        answers.append(own)
    return multiple_choice_accuracy(image_embeddings, goals, candidates, answers)


def step_faithfulness(
    image_embeddings: Any, step_embeddings: Any, recipe_of_image: Sequence[int], choices: int = 4, seed: int = 0
) -> float:
    """StackedDiffusion's step faithfulness (%): image ``i`` vs its own step ``i`` and other steps of its recipe.

    Images and steps are aligned row by row; ``recipe_of_image`` groups them. Recipes of one step are skipped (no
    alternative exists); NaN when no recipe has two steps.
    """
    recipe_of_image = list(recipe_of_image)
    rng = random.Random(seed)
    candidates, answers = [], []
    for i, recipe in enumerate(recipe_of_image):
        siblings = [j for j, r in enumerate(recipe_of_image) if r == recipe and j != i]
        if not siblings:
            continue
        options = [i] + rng.sample(siblings, min(choices - 1, len(siblings)))
        rng.shuffle(options)
        candidates.append(options)
        answers.append(i)
    if not candidates:
        return float("nan")
    return multiple_choice_accuracy(image_embeddings, step_embeddings, candidates, answers)


def cross_image_consistency(embeddings_per_recipe: Sequence[Any]) -> float:
    """Mean pairwise cosine (%) between the step images of each recipe, averaged over recipes with >= 2 images."""
    per_recipe = []
    for embeddings in embeddings_per_recipe:
        x = torch.nn.functional.normalize(torch.as_tensor(embeddings).double(), dim=-1)
        n = x.shape[0]
        if n < 2:
            continue
        sims = x @ x.T
        per_recipe.append(float(sims[torch.triu_indices(n, n, offset=1).unbind()].mean()))
    return 100.0 * float(np.mean(per_recipe)) if per_recipe else float("nan")
