"""I2G's alignment-distribution metrics (I2G §5.2-5.3, Table 1) and the CLIPScore scale they live on.

I2G does not judge a model by its mean alignment score. It scores every generated image against its step text
(caption the image, embed caption and step, take the cosine, scale like CLIPScore: ``2.5 * max(cos, 0)``), then asks
how far the *distribution* of those scores is from the distribution of human scores on the same 0-2.5 scale:
KL divergence and chi-square between the two histograms, both reported x100 (lower is better).

The paper does not state its binning, so it is explicit here and recorded with every result:

- **Bins.** ``bins`` equal-width bins over ``range`` (default 10 bins over [0, 2.5], i.e. width 0.25); scores
  outside the range are clipped into the end bins so no sample is lost; each histogram is normalised to sum to 1.
- **Smoothing.** ``smoothing`` (default 1e-6) is added to every bin's probability of *both* histograms, which are
  then renormalised, so an empty bin gives a large but finite KL instead of infinity.
- **Direction.** The first argument is the reference (human scores), the second the model's:
  ``KL(P || Q) = sum p log(p / q)`` (natural log) and Pearson's ``chi2 = sum (q - p)^2 / p`` (the reference is the
  expected distribution; OpenCV's ``HISTCMP_CHISQR`` with the reference first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError

__all__ = [
    "CLIP_SCORE_WEIGHT",
    "DistributionComparison",
    "chi_square",
    "clip_score",
    "compare_distributions",
    "histogram",
    "kl_divergence",
]

CLIP_SCORE_WEIGHT = 2.5  # CLIPScore's w (Hessel et al. 2021), used by I2G for its own scores too
DEFAULT_BINS = 10
DEFAULT_RANGE = (0.0, CLIP_SCORE_WEIGHT)
DEFAULT_SMOOTHING = 1e-6


def clip_score(cosine: Any, w: float = CLIP_SCORE_WEIGHT) -> Any:
    """CLIPScore's scaling ``w * max(cos, 0)``: tensors stay tensors (gradients flow), numbers stay numbers."""
    if isinstance(cosine, torch.Tensor):
        return w * cosine.clamp(min=0)
    scaled = w * np.maximum(np.asarray(cosine, dtype=np.float64), 0.0)
    return float(scaled) if scaled.ndim == 0 else scaled


def _scores(scores: Any, name: str) -> np.ndarray:
    """Any sequence, array or tensor of scores as a flat float64 array of finite values."""
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().double().numpy()
    try:
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidInputError(f"The {name} must be numbers.") from None
    if values.size == 0:
        raise InvalidInputError(f"The {name} are empty; a distribution needs at least one score.")
    if not np.all(np.isfinite(values)):
        raise InvalidInputError(f"The {name} contain NaN or infinite values.")
    return values


def histogram(
    scores: Any, bins: int = DEFAULT_BINS, range: tuple[float, float] = DEFAULT_RANGE  # noqa: A002 (numpy's name)
) -> np.ndarray:
    """Fraction of ``scores`` in each of ``bins`` equal-width bins over ``range`` (clipped into it); sums to 1."""
    low, high = float(range[0]), float(range[1])
    if not isinstance(bins, int) or bins < 1:
        raise InvalidInputError(f"The number of bins must be a positive whole number, got {bins!r}.")
    if not high > low:
        raise InvalidInputError(f"The score range must run from low to high, got {range!r}.")
    values = np.clip(_scores(scores, "scores"), low, high)
    counts, _ = np.histogram(values, bins=bins, range=(low, high))
    return counts / values.size


def _smoothed_pair(
    p_scores: Any, q_scores: Any, bins: int, range: tuple[float, float], smoothing: float  # noqa: A002
) -> tuple[np.ndarray, np.ndarray]:
    if not smoothing >= 0:
        raise InvalidInputError(f"The smoothing must be zero or positive, got {smoothing!r}.")
    p = histogram(p_scores, bins, range) + smoothing
    q = histogram(q_scores, bins, range) + smoothing
    return p / p.sum(), q / q.sum()


def kl_divergence(
    p_scores: Any,
    q_scores: Any,
    bins: int = DEFAULT_BINS,
    range: tuple[float, float] = DEFAULT_RANGE,  # noqa: A002
    smoothing: float = DEFAULT_SMOOTHING,
) -> float:
    """``KL(P || Q)`` in nats between the smoothed histograms of reference ``p_scores`` and model ``q_scores``.

    Not scaled: Table 1 reports 100x this (:func:`compare_distributions`). Infinite only when ``smoothing`` is 0
    and the model leaves a bin empty that the reference uses.
    """
    p, q = _smoothed_pair(p_scores, q_scores, bins, range, smoothing)
    used = p > 0
    with np.errstate(divide="ignore"):
        return float(np.sum(p[used] * (np.log(p[used]) - np.log(q[used]))))


def chi_square(
    p_scores: Any,
    q_scores: Any,
    bins: int = DEFAULT_BINS,
    range: tuple[float, float] = DEFAULT_RANGE,  # noqa: A002
    smoothing: float = DEFAULT_SMOOTHING,
) -> float:
    """Pearson's ``sum (q - p)^2 / p`` between the smoothed histograms, reference ``p_scores`` as expected.

    Not scaled: Table 1 reports 100x this (:func:`compare_distributions`). Bins where the reference is empty are
    skipped when ``smoothing`` is 0 (they would divide by zero).
    """
    p, q = _smoothed_pair(p_scores, q_scores, bins, range, smoothing)
    used = p > 0
    return float(np.sum((q[used] - p[used]) ** 2 / p[used]))


@dataclass(frozen=True)
class DistributionComparison:
    """One cell pair of I2G Table 1: KL and chi-square x100, with the binning that produced them."""

    kl_x100: float
    chi2_x100: float
    bins: int
    range: tuple[float, float]
    smoothing: float
    n_reference: int
    n_model: int


def compare_distributions(
    reference_scores: Any,
    model_scores: Any,
    bins: int = DEFAULT_BINS,
    range: tuple[float, float] = DEFAULT_RANGE,  # noqa: A002
    smoothing: float = DEFAULT_SMOOTHING,
) -> DistributionComparison:
    """Table 1's KL and Chi2 (x100) of a model's alignment scores against the reference (human) scores."""
    return DistributionComparison(
        kl_x100=100.0 * kl_divergence(reference_scores, model_scores, bins, range, smoothing),
        chi2_x100=100.0 * chi_square(reference_scores, model_scores, bins, range, smoothing),
        bins=bins,
        range=(float(range[0]), float(range[1])),
        smoothing=smoothing,
        n_reference=_scores(reference_scores, "reference scores").size,
        n_model=_scores(model_scores, "model scores").size,
    )
