"""Evaluation metrics of both papers, each with a pluggable feature network so the arithmetic runs without weights.

``distribution`` holds I2G's Table-1 comparison of alignment-score distributions (KL, chi-square, CLIPScore scale);
``image`` ShowMe's PSNR and embedding cosines (CLIP-I, CLIP-T, DINO-I); ``fid`` the Fréchet distance.
"""

from .distribution import (
    CLIP_SCORE_WEIGHT,
    DistributionComparison,
    chi_square,
    clip_score,
    compare_distributions,
    histogram,
    kl_divergence,
)
from .fid import FID, RunningStatistics, feature_statistics, frechet_distance
from .image import EmbeddingSimilarity, batch_psnr, clip_i, clip_t, cosine_similarity, dino_i, psnr

__all__ = [
    "CLIP_SCORE_WEIGHT",
    "FID",
    "DistributionComparison",
    "EmbeddingSimilarity",
    "RunningStatistics",
    "batch_psnr",
    "chi_square",
    "clip_i",
    "clip_score",
    "clip_t",
    "compare_distributions",
    "cosine_similarity",
    "dino_i",
    "feature_statistics",
    "frechet_distance",
    "histogram",
    "kl_divergence",
    "psnr",
]
