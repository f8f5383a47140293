"""Optical flow: known translations are recovered, static clips give zero, inputs of every documented kind agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from showme_i2g import flow as flow_module
from showme_i2g.errors import InvalidInputError
from showme_i2g.flow import OpenCVFlow, default_flow, estimate_flow, flow_magnitude, to_uint8_frames

SQUARE = 40


def _texture(seed: int = 0) -> np.ndarray:
    """A smooth random texture (flow needs texture; a flat square only has edges to track)."""
    import cv2

    coarse = np.random.default_rng(seed).integers(0, 256, (10, 10, 3), dtype=np.uint8)
    return cv2.resize(coarse, (SQUARE, SQUARE), interpolation=cv2.INTER_CUBIC)


def _frame(x: int, y: int, texture: np.ndarray, size: tuple[int, int] = (128, 160)) -> np.ndarray:
    frame = np.full((*size, 3), 40, np.uint8)
    frame[y : y + SQUARE, x : x + SQUARE] = texture
    return frame


def _inner(flows: np.ndarray, pair: int, x: int, y: int) -> np.ndarray:
    """Flow vectors of pair ``pair`` inside the square (6-pixel margin), as (2, N)."""
    return flows[pair, :, y + 6 : y + SQUARE - 6, x + 6 : x + SQUARE - 6].reshape(2, -1)


@pytest.mark.parametrize("method", ["dis", "farneback"])
@pytest.mark.parametrize(("dx", "dy"), [(3, 2), (-4, 5), (12, 6)])
def test_translated_square_gives_its_displacement(method: str, dx: int, dy: int) -> None:
    texture = _texture()
    positions = [(50 + dx * t, 20 + dy * t) for t in range(4)]
    frames = [_frame(x, y, texture) for x, y in positions]
    flows = estimate_flow(frames, OpenCVFlow(method))
    assert flows.shape == (3, 2, 128, 160) and flows.dtype == np.float32
    for pair, (x, y) in enumerate(positions[:-1]):
        median = np.median(_inner(flows, pair, x, y), axis=1)
        np.testing.assert_allclose(median, [dx, dy], atol=0.3)
    # The background away from the square stays put (DIS's smoothing spreads a little flow into flat areas).
    assert float(np.median(flow_magnitude(flows)[:, -20:, :])) < 0.3


def test_static_clip_gives_zero_flow_and_magnitude() -> None:
    frame = _frame(30, 30, _texture())
    flows = estimate_flow([frame] * 3, OpenCVFlow())
    assert flows.shape == (2, 2, 128, 160)
    assert float(flow_magnitude(flows).max()) < 1e-3


def test_flow_magnitude_is_the_vector_length_for_arrays_and_tensors() -> None:
    flows = np.zeros((1, 2, 2, 3), np.float32)
    flows[0, 0], flows[0, 1] = 3.0, 4.0
    np.testing.assert_allclose(flow_magnitude(flows), np.full((1, 2, 3), 5.0))
    tensor = flow_magnitude(torch.from_numpy(flows))
    assert isinstance(tensor, torch.Tensor)
    torch.testing.assert_close(tensor, torch.full((1, 2, 3), 5.0))
    with pytest.raises(ValueError, match="2, H, W"):
        flow_magnitude(np.zeros((1, 3, 4, 4)))


def test_every_frame_format_gives_the_same_pixels() -> None:
    texture = _texture()
    clip = np.stack([_frame(20, 20, texture), _frame(23, 21, texture)])
    as_pil = [Image.fromarray(f) for f in clip]
    as_float_thwc = clip.astype(np.float32) / 255.0
    as_tensor_tchw = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255.0
    as_signed = as_tensor_tchw * 2 - 1
    for frames, value_range in [
        (as_pil, (0, 1)),
        (list(clip), (0, 1)),
        (as_float_thwc, (0, 1)),
        (as_tensor_tchw, (0, 1)),
        (as_signed, (-1, 1)),
    ]:
        np.testing.assert_array_equal(to_uint8_frames(frames, value_range), clip)


class _Recorder:
    """A pair estimator that returns a constant flow and counts its calls (checks the layout plumbing)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.calls += 1
        out = np.zeros((*a.shape[:2], 2), np.float32)
        out[..., 0], out[..., 1] = 1.0, -2.0
        return out


def test_pluggable_estimator_and_layout() -> None:
    recorder = _Recorder()
    flows = estimate_flow(np.zeros((5, 16, 24, 3), np.uint8), recorder)
    assert recorder.calls == 4
    assert flows.shape == (4, 2, 16, 24)
    assert np.all(flows[:, 0] == 1.0) and np.all(flows[:, 1] == -2.0)

    def wrong(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.zeros((2, *a.shape[:2]), np.float32)

    with pytest.raises(ValueError, match="expected"):
        estimate_flow(np.zeros((2, 16, 24, 3), np.uint8), wrong)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.zeros((1, 16, 16, 3), np.uint8), "at least two frames"),
        (np.zeros((2, 16, 16), np.uint8), "shape"),
        (np.zeros((2, 4, 4, 3), np.uint8), "too small"),
        ([np.zeros((16, 16, 3), np.uint8), np.zeros((16, 20, 3), np.uint8)], "same size"),
        (np.zeros((2, 16, 16, 3), np.int32), "8-bit or floats"),
        ([], "no frames"),
    ],
)
def test_bad_frames_give_one_sentence(frames: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        estimate_flow(frames, OpenCVFlow())


def test_default_flow_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flow_module, "torchvision_available", lambda: False)
    assert isinstance(default_flow(), OpenCVFlow)
    assert isinstance(default_flow("opencv"), OpenCVFlow)
    monkeypatch.setenv("SHOWME_FLOW", "opencv")
    assert isinstance(default_flow(), OpenCVFlow)
    with pytest.raises(InvalidInputError, match="backend"):
        default_flow("magic")


def test_raft_without_torchvision_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    if flow_module.torchvision_available():
        pytest.skip("torchvision is usable here; the missing-torchvision message cannot be shown")
    from showme_i2g.errors import WeightsNotFoundError

    with pytest.raises(WeightsNotFoundError, match="torchvision"):
        default_flow("raft")


def test_motion_reward_pools_the_project_flow() -> None:
    """ShowMe stage 2's P(t): flow magnitudes of the real clip pooled to the latent grid, from this module."""
    from showme_i2g.showme.rewards.motion import clip_flow_magnitudes

    texture = _texture()
    frames = np.stack([_frame(30 + 4 * t, 30, texture) for t in range(3)])
    pooled = clip_flow_magnitudes(frames, (16, 20), estimator=OpenCVFlow())
    assert pooled.shape == (2, 16, 20)
    # The square moves 4 px per frame: the latent cells it covers carry most of the motion, the corners none.
    cell_x, cell_y = 8, 8  # 128x160 -> 16x20 grid: 8 px per cell
    inside = pooled[0, (30 + 10) // cell_y, (30 + 10) // cell_x]
    assert float(inside) == pytest.approx(4.0, abs=0.4)
    assert float(pooled[:, 0, -1].max()) < 0.1
