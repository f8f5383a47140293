"""ShowMe's Motion Score: the harmonic mean of VBench's dynamic degree and motion smoothness (Huang et al. 2024).

ShowMe (§4) reports ``2 * D * S / (D + S)`` with D = dynamic degree and S = motion smoothness, each the VBench
dimension score over the evaluated set. Both follow VBench's code (``vbench/dynamic_degree.py`` and
``vbench/motion_smoothness.py``) as closely as the available networks allow.

**Dynamic degree.** For each pair of consecutive frames, the optical-flow magnitude's mean over its largest 5 % of
pixels (``int(0.05 * H * W)`` pixels). A video is *dynamic* when at least ``count_num = round(4 * T / 16)`` pairs
exceed ``thres = max(1, 8 / fps) * 6.0 * min(H, W) / 256`` pixels (T = frames after VBench's subsampling of an
MP4 to about 8 fps, every ``round(fps / 8)``-th frame). D is the fraction of dynamic videos.

**Motion smoothness.** Keep the even frames (0, 2, 4, ...), re-create each odd frame from its two kept neighbours
with a frame interpolator, and score ``(255 - mean |reconstructed - real|) / 255`` over the re-created frames
(pixels in 0-255, the mean over frames of each frame's mean absolute difference). S is the mean over videos.

**Where we approximate VBench, and why.**

- *Flow.* VBench runs RAFT (``raft-things.pth``, 20 iterations). We use :mod:`showme_i2g.flow`: torchvision's RAFT
  (Chairs + Things weights, 20 updates) where torchvision works, OpenCV's DIS flow otherwise, because no RAFT
  weights or torchvision exist offline. DIS is blurrier at motion boundaries, which can move the top-5 % mean.
- *Interpolator.* VBench re-creates frames with AMT-S (Li et al. 2023, ``amt-s.pth``), whose code and weights are
  not available here. The default :class:`FlowMidpointInterpolator` estimates the flow both ways, builds the
  midpoint flows of Super SloMo (Jiang et al. 2018: ``F(t->0) = -t(1-t) F01 + t^2 F10``,
  ``F(t->1) = (1-t)^2 F01 - t(1-t) F10`` at t = 1/2) and blends the two backward-warped frames (OpenCV remap).
  It has no learned occlusion handling, so absolute values run lower than AMT's; rankings between methods are what
  it supports. Any callable ``(frame_a, frame_b) -> middle`` plugs in, so AMT can be used on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..flow import FlowEstimator, default_flow, estimate_flow, flow_magnitude, to_uint8_frames

__all__ = [
    "FlowMidpointInterpolator",
    "MotionScore",
    "dynamic_degree",
    "dynamic_thresholds",
    "harmonic_mean",
    "is_dynamic",
    "motion_score",
    "motion_smoothness",
    "pair_motion",
    "top_fraction_mean",
    "vbench_subsample",
]

TOP_FRACTION = 0.05  # VBench: mean of the largest 5 % flow magnitudes per frame pair
BASE_THRESHOLD = 6.0  # VBench: pixels at a 256-pixel short side and 8 fps
BASE_COUNT = 4  # VBench: dynamic pairs needed per 16 frames
VBENCH_FPS = 8.0

Interpolator = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(frame_a, frame_b) uint8 (H, W, 3) -> the frame halfway between them, uint8 (H, W, 3)."""


def harmonic_mean(a: float, b: float) -> float:
    """``2ab / (a + b)``, 0 when both are 0 (a static set scores 0, not NaN)."""
    if a < 0 or b < 0:
        raise ValueError(f"the harmonic mean needs non-negative values, got {a} and {b}")
    return 0.0 if a + b == 0 else 2.0 * a * b / (a + b)


# ---------------------------------------------------------------------------------------------------------------------
# Dynamic degree
# ---------------------------------------------------------------------------------------------------------------------


def top_fraction_mean(magnitude: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """Mean of the ``int(fraction * H * W)`` largest values of one ``(H, W)`` magnitude map (at least one)."""
    flat = np.asarray(magnitude, dtype=np.float64).reshape(-1)
    count = max(1, int(flat.size * fraction))
    return float(np.mean(np.partition(flat, flat.size - count)[flat.size - count :]))


def dynamic_thresholds(height: int, width: int, num_frames: int, fps: float = VBENCH_FPS) -> tuple[float, int]:
    """VBench's ``(thres, count_num)`` for a clip: pixel threshold scaled to the short side and fps, pairs needed."""
    factor = max(1.0, VBENCH_FPS / float(fps))
    return factor * BASE_THRESHOLD * min(height, width) / 256.0, round(BASE_COUNT * num_frames / 16.0)


def vbench_subsample(frames: np.ndarray, fps: float) -> np.ndarray:
    """Every ``round(fps / 8)``-th frame, as VBench reads an MP4 for dynamic degree (no change at 8 fps or less)."""
    return frames[:: max(1, round(float(fps) / VBENCH_FPS))]


def pair_motion(frames: Any, estimator: FlowEstimator | None = None) -> np.ndarray:
    """The top-5 % mean flow magnitude of every consecutive pair, ``(T-1,)`` pixels."""
    magnitudes = flow_magnitude(estimate_flow(frames, estimator))
    return np.array([top_fraction_mean(m) for m in magnitudes])


def is_dynamic(frames: Any, estimator: FlowEstimator | None = None, fps: float = VBENCH_FPS) -> bool:
    """VBench's per-video decision: at least ``count_num`` pairs move more than ``thres`` pixels."""
    clip = vbench_subsample(to_uint8_frames(frames), fps)
    thres, count_num = dynamic_thresholds(clip.shape[1], clip.shape[2], len(clip), fps)
    return int(np.sum(pair_motion(clip, estimator) > thres)) >= count_num


def dynamic_degree(videos: Sequence[Any], estimator: FlowEstimator | None = None, fps: float = VBENCH_FPS) -> float:
    """Fraction of ``videos`` that are dynamic (VBench's dynamic-degree dimension score)."""
    if not videos:
        raise InvalidInputError("There are no videos to score.")
    estimator = estimator if estimator is not None else default_flow()
    return float(np.mean([is_dynamic(video, estimator, fps) for video in videos]))


# ---------------------------------------------------------------------------------------------------------------------
# Motion smoothness
# ---------------------------------------------------------------------------------------------------------------------


def _backward_warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``out(x) = image(x + flow(x))`` with bilinear sampling and edge replication; ``flow`` is (H, W, 2) pixels."""
    import cv2

    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
    return cv2.remap(image.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


class FlowMidpointInterpolator:
    """Halfway frame from bidirectional optical flow (Super SloMo's intermediate-flow approximation, t = 1/2).

    ``F(½→0) = (F10 - F01) / 4`` and ``F(½→1) = (F01 - F10) / 4``; the middle frame is the mean of frame 0
    warped by ``F(½→0)`` and frame 1 warped by ``F(½→1)``. Without occlusion reasoning, so it stands in for AMT
    offline only.
    """

    def __init__(self, estimator: FlowEstimator | None = None) -> None:
        self.estimator = estimator if estimator is not None else default_flow()

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        forward = np.asarray(self.estimator(frame_a, frame_b), dtype=np.float32)
        backward = np.asarray(self.estimator(frame_b, frame_a), dtype=np.float32)
        to_a, to_b = (backward - forward) / 4.0, (forward - backward) / 4.0
        middle = 0.5 * _backward_warp(frame_a, to_a) + 0.5 * _backward_warp(frame_b, to_b)
        return np.clip(np.rint(middle), 0, 255).astype(np.uint8)


def motion_smoothness(frames: Any, interpolator: Interpolator | None = None) -> float:
    """VBench's motion smoothness of one video: ``(255 - mean |interpolated odd frame - real odd frame|) / 255``."""
    clip = to_uint8_frames(frames)
    if len(clip) < 3:
        raise InvalidInputError("Motion smoothness needs a video of at least three frames.")
    interpolator = interpolator if interpolator is not None else FlowMidpointInterpolator()
    kept, real_odd = clip[0::2], clip[1::2]
    differences = []
    for index in range(len(kept) - 1):
        middle = np.asarray(interpolator(kept[index], kept[index + 1]))
        if middle.shape != real_odd[index].shape:
            raise ValueError(f"the interpolator returned shape {middle.shape}, expected {real_odd[index].shape}")
        differences.append(np.mean(np.abs(middle.astype(np.int16) - real_odd[index].astype(np.int16))))
    return float((255.0 - np.mean(differences)) / 255.0)


# ---------------------------------------------------------------------------------------------------------------------
# Motion score
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MotionScore:
    """ShowMe's Motion column with its two VBench parts and the per-video values behind them."""

    motion_score: float
    dynamic_degree: float
    motion_smoothness: float
    dynamic: tuple[bool, ...]
    smoothness: tuple[float, ...]


def motion_score(
    videos: Sequence[Any],
    estimator: FlowEstimator | None = None,
    interpolator: Interpolator | None = None,
    fps: float = VBENCH_FPS,
) -> MotionScore:
    """Harmonic mean of the set's dynamic degree and mean motion smoothness (ShowMe's Motion Score)."""
    if not videos:
        raise InvalidInputError("There are no videos to score.")
    estimator = estimator if estimator is not None else default_flow()
    interpolator = interpolator if interpolator is not None else FlowMidpointInterpolator(estimator)
    dynamic = tuple(is_dynamic(video, estimator, fps) for video in videos)
    smooth = tuple(motion_smoothness(video, interpolator) for video in videos)
    degree, smoothness = float(np.mean(dynamic)), float(np.mean(smooth))
    return MotionScore(harmonic_mean(degree, smoothness), degree, smoothness, dynamic, smooth)
