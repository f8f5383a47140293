"""VBench motion metrics: dynamic degree, motion smoothness, their harmonic mean, and VBench's thresholds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from showme_i2g.errors import InvalidInputError
from showme_i2g.flow import OpenCVFlow
from showme_i2g.metrics.motion import (
    FlowMidpointInterpolator,
    dynamic_degree,
    dynamic_thresholds,
    harmonic_mean,
    is_dynamic,
    motion_score,
    motion_smoothness,
    pair_motion,
    top_fraction_mean,
    vbench_subsample,
)

SIZE = (128, 160)


def _texture(seed: int = 1) -> np.ndarray:
    coarse = np.random.default_rng(seed).integers(0, 256, (10, 10, 3), dtype=np.uint8)
    return cv2.resize(coarse, (40, 40), interpolation=cv2.INTER_CUBIC)


def _clip(positions: list[tuple[int, int]], seed: int = 1) -> np.ndarray:
    texture = _texture(seed)
    frames = np.full((len(positions), *SIZE, 3), 40, np.uint8)
    for frame, (x, y) in zip(frames, positions):
        frame[y : y + 40, x : x + 40] = texture
    return frames


SMOOTH = [(20 + 6 * t, 40) for t in range(9)]
STATIC = [(20, 40)] * 9


def test_vbench_thresholds() -> None:
    # 256 px short side, 16 frames at 8 fps: 6 px and 4 pairs, VBench's base values.
    assert dynamic_thresholds(256, 320, 16, fps=8) == (6.0, 4)
    # Scaled to the short side and the frame count; lower frame rates raise the threshold by 8 / fps.
    assert dynamic_thresholds(128, 160, 8, fps=8) == (3.0, 2)
    assert dynamic_thresholds(512, 512, 16, fps=4) == (24.0, 4)
    assert dynamic_thresholds(256, 256, 16, fps=24) == (6.0, 4)
    assert len(vbench_subsample(np.zeros((48, 8, 8, 3)), fps=24)) == 16  # every 3rd frame at 24 fps
    assert len(vbench_subsample(np.zeros((16, 8, 8, 3)), fps=8)) == 16


def test_top_fraction_mean_takes_the_largest_five_percent() -> None:
    magnitude = np.zeros((10, 20))  # 200 pixels -> the 10 largest
    magnitude.flat[:10] = 7.0
    magnitude.flat[10:20] = 1.0
    assert top_fraction_mean(magnitude) == pytest.approx(7.0)
    magnitude.flat[:5] = 3.0  # the 10 largest are now five 7s and five 3s
    assert top_fraction_mean(magnitude) == pytest.approx(5.0)


def test_dynamic_degree_static_vs_moving() -> None:
    flow = OpenCVFlow()
    static, moving = _clip(STATIC), _clip(SMOOTH)
    np.testing.assert_allclose(pair_motion(static, flow), 0.0, atol=1e-3)
    np.testing.assert_allclose(pair_motion(moving, flow), 6.0, atol=0.3)  # the square moves 6 px per frame
    assert not is_dynamic(static, flow) and is_dynamic(moving, flow)
    assert dynamic_degree([static, static], flow) == 0.0
    assert dynamic_degree([static, moving, moving, moving], flow) == 0.75


def test_slow_motion_below_the_threshold_is_not_dynamic() -> None:
    slow = _clip([(20 + 2 * t, 40) for t in range(9)])  # 2 px per frame < 3 px threshold at 128 px
    assert not is_dynamic(slow, OpenCVFlow())


def test_smooth_motion_scores_higher_than_jitter() -> None:
    rng = np.random.default_rng(0)
    jitter = [(x + int(rng.integers(-5, 6)), y + int(rng.integers(-5, 6))) for x, y in SMOOTH]
    interpolator = FlowMidpointInterpolator(OpenCVFlow())
    smooth_score = motion_smoothness(_clip(SMOOTH), interpolator)
    jitter_score = motion_smoothness(_clip(jitter), interpolator)
    assert smooth_score > 0.995  # linear motion: the flow midpoint re-creates the odd frames almost exactly
    assert jitter_score < smooth_score - 0.01
    assert motion_smoothness(_clip(STATIC), interpolator) == 1.0


def test_motion_smoothness_arithmetic_with_a_known_interpolator() -> None:
    """VBench's formula: odd frames re-created from even ones, (255 - mean |diff|) / 255."""
    clip = np.zeros((5, 8, 8, 3), np.uint8)
    clip[1], clip[3] = 51, 102  # the real odd frames
    # Interpolating zeros with zeros gives 0; the real odd frames are 51 and 102 -> mean abs diff 76.5.
    assert motion_smoothness(clip, lambda a, b: np.zeros_like(a)) == pytest.approx((255 - 76.5) / 255)
    with pytest.raises(InvalidInputError, match="three frames"):
        motion_smoothness(clip[:2], lambda a, b: a)


def test_flow_midpoint_interpolator_recreates_a_translated_middle_frame() -> None:
    frames = _clip([(30, 40), (36, 43), (42, 46)])
    middle = FlowMidpointInterpolator(OpenCVFlow())(frames[0], frames[2])
    error = np.abs(middle.astype(int) - frames[1].astype(int))
    assert error.mean() < 1.0
    naive = (frames[0].astype(int) + frames[2].astype(int)) // 2  # blending without flow ghosts the square
    assert np.abs(naive - frames[1].astype(int)).mean() > 5 * error.mean()


def test_harmonic_mean_and_motion_score() -> None:
    assert harmonic_mean(0.5, 1.0) == pytest.approx(2 / 3)
    assert harmonic_mean(0.0, 0.9) == 0.0
    assert harmonic_mean(0.0, 0.0) == 0.0
    with pytest.raises(ValueError):
        harmonic_mean(-0.1, 0.5)
    flow = OpenCVFlow()
    result = motion_score([_clip(SMOOTH), _clip(STATIC)], flow, FlowMidpointInterpolator(flow))
    assert result.dynamic == (True, False)
    assert result.dynamic_degree == 0.5
    assert result.motion_smoothness == pytest.approx(np.mean(result.smoothness))
    assert result.motion_score == pytest.approx(harmonic_mean(0.5, result.motion_smoothness))
    with pytest.raises(InvalidInputError):
        motion_score([], flow)
