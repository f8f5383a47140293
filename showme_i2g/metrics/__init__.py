"""Evaluation metrics of both papers, each with a pluggable feature network so the arithmetic runs without weights.

- ``distribution``: I2G Table 1's comparison of alignment-score distributions (KL, chi-square x100, CLIPScore scale).
- ``fid``: the Fréchet distance and FID's standard features (the offline TF-FID Inception, :class:`InceptionFeatures`).
- ``image``: ShowMe's PSNR and the embedding cosines (CLIP-I, CLIP-T, DINO-I).
- ``encoders``: the CLIP and DINOv2 encoders those cosines plug in, and CLIPScore.
- ``lpips``: LPIPS with torchvision-compatible AlexNet/VGG16/SqueezeNet backbones.
- ``text``: sentence embedders for caption-vs-step similarity.
- ``video``, ``motion``, ``i3d``: ShowMe's video metrics (FVD, FID over frames, VQAScore, motion score).

I2G's caption-alignment protocol, StackedDiffusion's goal/step faithfulness and cross-image consistency live with
the paper, in :mod:`showme_i2g.i2g.protocol` and :mod:`showme_i2g.i2g.captioning`.
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
from .encoders import CLIPEncoder, CLIPScore, DINOEncoder
from .fid import FID, InceptionFeatures, RunningStatistics, feature_statistics, fid_from_images, frechet_distance
from .i3d import I3DFeatures, InceptionI3d
from .image import EmbeddingSimilarity, batch_psnr, clip_i, clip_t, cosine_similarity, dino_i, psnr
from .lpips import LPIPS
from .motion import (
    FlowMidpointInterpolator,
    MotionScore,
    dynamic_degree,
    harmonic_mean,
    motion_score,
    motion_smoothness,
)
from .text import LLM2VecEmbedder, SentenceEmbedder, text_cosine
from .video import (
    FVD,
    EmbeddingVQA,
    FrameAverageCLIP,
    FrameFID,
    TransformersVQA,
    VQAScore,
    video_text_similarity,
    yes_probability,
)

__all__ = [
    "CLIPEncoder",
    "CLIPScore",
    "CLIP_SCORE_WEIGHT",
    "DINOEncoder",
    "EmbeddingVQA",
    "DistributionComparison",
    "EmbeddingSimilarity",
    "FID",
    "FVD",
    "FlowMidpointInterpolator",
    "FrameAverageCLIP",
    "FrameFID",
    "I3DFeatures",
    "InceptionFeatures",
    "InceptionI3d",
    "LLM2VecEmbedder",
    "LPIPS",
    "MotionScore",
    "RunningStatistics",
    "SentenceEmbedder",
    "TransformersVQA",
    "VQAScore",
    "batch_psnr",
    "chi_square",
    "clip_i",
    "clip_score",
    "clip_t",
    "compare_distributions",
    "cosine_similarity",
    "dino_i",
    "dynamic_degree",
    "feature_statistics",
    "fid_from_images",
    "frechet_distance",
    "harmonic_mean",
    "histogram",
    "kl_divergence",
    "motion_score",
    "motion_smoothness",
    "psnr",
    "text_cosine",
    "video_text_similarity",
    "yes_probability",
]
