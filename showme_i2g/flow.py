"""Dense optical flow between consecutive video frames, for ShowMe's motion reward and the VBench motion metrics.

Two estimators share one small interface, so the callers never care which one runs:

- :class:`RAFTFlow` — RAFT (Teed & Deng 2020) through ``torchvision.models.optical_flow.raft_large`` with
  torchvision's released weights. VBench's dynamic degree uses RAFT, so this is the faithful choice on a GPU.
  torchvision is an optional GPU extra (its PyPI build breaks this CPU torch), so it is imported only when a
  :class:`RAFTFlow` is built, never when this module is imported.
- :class:`OpenCVFlow` — OpenCV's classical flow (DIS by default, Farnebäck on request). No weights, runs anywhere;
  the offline default. Fine for the motion reward (no gradient flows through the flow) and for the metrics where a
  coarser flow is acceptable; see :mod:`showme_i2g.metrics.motion` for where that approximates VBench.
  Measured limit: a small (40 px) textured object moving more than about 8 px per frame over a *textured*
  background is lost by DIS and Farnebäck alike (coarse-to-fine search); over flat backgrounds DIS tracks 16 px.
  RAFT's all-pairs correlation has no such limit.

:func:`default_flow` picks RAFT when torchvision imports and OpenCV otherwise (``backend=`` or the
``SHOWME_FLOW`` environment variable, ``auto|raft|opencv``, overrides the choice).

API (stable; ShowMe's stage-2 training computes its motion reward with it)::

    flows = estimate_flow(frames)            # (T-1, 2, H, W) float32 numpy, pixels
    mags = flow_magnitude(flows)             # (T-1, H, W)   float32 numpy, pixels
    pair = default_flow()(frame_a, frame_b)  # (H, W, 2)     float32 numpy, one pair (OpenCV layout)

Conventions:

- **Frames in.** A sequence of PIL images or ``(H, W, 3)`` uint8 arrays; a ``(T, H, W, 3)`` uint8 array; or a float
  array/tensor ``(T, H, W, 3)`` or ``(T, 3, H, W)`` with values in ``value_range`` (default ``(0, 1)``; pass
  ``(-1, 1)`` for diffusion-model output). Everything becomes RGB uint8 first, so both estimators see the same
  pixels whatever the caller held. At least two frames, all the same size.
- **Flow out.** Forward flow from frame ``t`` to frame ``t + 1``: the content at pixel ``(x, y)`` of frame ``t``
  is at ``(x + dx, y + dy)`` in frame ``t + 1``. Channel 0 is ``dx`` (positive = right), channel 1 is ``dy``
  (positive = down), in pixels of the input resolution. ``estimate_flow`` returns the torch layout
  ``(T-1, 2, H, W)``; a pair estimator returns OpenCV's ``(H, W, 2)``.
- **Magnitude.** ``sqrt(dx^2 + dy^2)`` per pixel. The motion reward average-pools it to the latent grid
  (``showme_i2g.showme.rewards.motion.pool_flow_magnitudes``); VBench takes the mean of its top 5 % per frame pair.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .devices import best_device
from .errors import InvalidInputError, WeightsNotFoundError

__all__ = [
    "FlowEstimator",
    "OpenCVFlow",
    "RAFTFlow",
    "default_flow",
    "estimate_flow",
    "flow_magnitude",
    "to_uint8_frames",
    "torchvision_available",
]

FlowEstimator = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(frame_a, frame_b)`` RGB uint8 ``(H, W, 3)`` -> forward flow ``(H, W, 2)`` float32 in pixels (dx, dy)."""

BACKENDS = ("auto", "raft", "opencv")


# ---------------------------------------------------------------------------------------------------------------------
# Frames in
# ---------------------------------------------------------------------------------------------------------------------


def _float_to_uint8(array: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    low, high = float(value_range[0]), float(value_range[1])
    if not high > low:
        raise InvalidInputError(f"The frames' value range must run from low to high, got {value_range!r}.")
    scaled = (np.nan_to_num(array.astype(np.float32), nan=low) - low) / (high - low)
    return np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_uint8_frames(frames: Any, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Any supported clip (see the module docstring) as one contiguous ``(T, H, W, 3)`` RGB uint8 array."""
    from PIL import Image

    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().float().numpy()
    if isinstance(frames, np.ndarray):
        clip = frames
    else:
        try:
            items = list(frames)
        except TypeError:
            raise InvalidInputError("The frames must be a list of pictures or an array of them.") from None
        if not items:
            raise InvalidInputError("There are no frames to compute optical flow on.")
        arrays = []
        for item in items:
            if isinstance(item, Image.Image):
                arrays.append(np.asarray(item.convert("RGB"), dtype=np.uint8))
            elif isinstance(item, torch.Tensor):
                arrays.append(item.detach().cpu().float().numpy())
            else:
                arrays.append(np.asarray(item))
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise InvalidInputError(f"All frames must be the same size, got shapes {sorted(shapes)}.")
        clip = np.stack(arrays)
    if clip.ndim != 4:
        raise InvalidInputError(f"A clip must have shape (frames, height, width, 3), not {clip.shape}.")
    if clip.shape[-1] != 3 and clip.shape[1] == 3:
        clip = clip.transpose(0, 2, 3, 1)  # (T, 3, H, W) -> (T, H, W, 3)
    if clip.shape[-1] != 3:
        raise InvalidInputError(f"Frames must have 3 colour channels (RGB), got shape {clip.shape}.")
    if clip.dtype == np.uint8:
        return np.ascontiguousarray(clip)
    if np.issubdtype(clip.dtype, np.floating):
        return _float_to_uint8(clip, value_range)
    raise InvalidInputError(f"Frames must be 8-bit or floats, not {clip.dtype}.")


def _check_clip(clip: np.ndarray) -> None:
    if clip.shape[0] < 2:
        raise InvalidInputError("Optical flow needs at least two frames.")
    if min(clip.shape[1:3]) < 8:
        raise InvalidInputError(f"Frames of {clip.shape[2]}x{clip.shape[1]} pixels are too small for optical flow.")


# ---------------------------------------------------------------------------------------------------------------------
# Estimators
# ---------------------------------------------------------------------------------------------------------------------


class OpenCVFlow:
    """OpenCV's classical dense flow on grey frames: DIS (Kroeger et al. 2016, default) or Farnebäck (2003).

    DIS with OpenCV's ``MEDIUM`` preset (patch search plus variational refinement) is both faster and more
    accurate than Farnebäck on large, fast motion, which generated clips have. Deterministic; single-threaded use
    of OpenCV is left to OpenCV's own thread pool.
    """

    def __init__(self, method: str = "dis", preset: str = "medium") -> None:
        import cv2

        if method not in ("dis", "farneback"):
            raise ValueError(f"method must be 'dis' or 'farneback', got {method!r}")
        presets = {"ultrafast": 0, "fast": 1, "medium": 2}
        if preset not in presets:
            raise ValueError(f"preset must be one of {sorted(presets)}, got {preset!r}")
        self.method, self.preset = method, preset
        self._cv2 = cv2
        self._dis = cv2.DISOpticalFlow_create(presets[preset]) if method == "dis" else None

    def __repr__(self) -> str:
        return f"OpenCVFlow(method={self.method!r}, preset={self.preset!r})"

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        cv2 = self._cv2
        grey_a = cv2.cvtColor(np.ascontiguousarray(frame_a, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
        grey_b = cv2.cvtColor(np.ascontiguousarray(frame_b, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
        if self._dis is not None:
            flow = self._dis.calc(grey_a, grey_b, None)
        else:
            # OpenCV's documented example parameters: 3 levels, scale 0.5, 15-pixel window, 3 iterations.
            flow = cv2.calcOpticalFlowFarneback(grey_a, grey_b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        return flow.astype(np.float32, copy=False)


def torchvision_available() -> bool:
    """Whether torchvision imports (a broken CUDA build can raise anything, not only ImportError)."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure means "not usable here"
        return False
    return True


class RAFTFlow:
    """RAFT-large from torchvision with its released weights; pairs run batched on ``device``.

    ``weights`` names a ``torchvision.models.optical_flow.Raft_Large_Weights`` member. The default ``C_T_V2`` is
    trained on FlyingChairs + FlyingThings3D, the same training data as the ``raft-things.pth`` checkpoint that
    VBench's dynamic degree loads. ``num_flow_updates`` = 20 matches VBench's ``iters=20`` (torchvision's default
    is 12). Frames are padded to a multiple of 8 by edge replication and the flow is cropped back.
    """

    def __init__(
        self,
        weights: str = "C_T_V2",
        device: str | torch.device | None = None,
        num_flow_updates: int = 20,
        batch_size: int = 8,
    ) -> None:
        try:
            from torchvision.models.optical_flow import Raft_Large_Weights, raft_large
        except Exception as error:  # noqa: BLE001 - torchvision missing or broken
            raise WeightsNotFoundError(
                "RAFT needs torchvision, which is not usable here; install the project's gpu extra or use the "
                "OpenCV flow (SHOWME_FLOW=opencv)."
            ) from error
        try:
            weight_enum = Raft_Large_Weights[weights]
        except KeyError:
            raise ValueError(
                f"unknown RAFT weights {weights!r}; choose from {[w.name for w in Raft_Large_Weights]}"
            ) from None
        try:
            model = raft_large(weights=weight_enum, progress=False)
        except Exception as error:  # noqa: BLE001 - download failures come as URLError/OSError/RuntimeError
            raise WeightsNotFoundError(
                f"The RAFT weights {weight_enum.url} are not in the torch hub cache and cannot be downloaded; "
                "download them once with internet access or use the OpenCV flow (SHOWME_FLOW=opencv)."
            ) from error
        self.device = best_device(device)
        self.model = model.eval().to(self.device)
        self.num_flow_updates = int(num_flow_updates)
        self.batch_size = int(batch_size)

    def __repr__(self) -> str:
        return f"RAFTFlow(device={str(self.device)!r}, num_flow_updates={self.num_flow_updates})"

    @torch.no_grad()
    def _batch(self, frames_a: np.ndarray, frames_b: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 pairs -> (N, H, W, 2) flows."""

        def prepare(frames: np.ndarray) -> torch.Tensor:
            x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float()
            return x / 127.5 - 1.0  # RAFT's input range [-1, 1]

        a, b = prepare(frames_a), prepare(frames_b)
        height, width = a.shape[-2:]
        pad = (0, (-width) % 8, 0, (-height) % 8)
        if any(pad):
            a = torch.nn.functional.pad(a, pad, mode="replicate")
            b = torch.nn.functional.pad(b, pad, mode="replicate")
        flow = self.model(a, b, num_flow_updates=self.num_flow_updates)[-1][..., :height, :width]
        return flow.permute(0, 2, 3, 1).float().cpu().numpy()

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        return self._batch(np.asarray(frame_a)[None], np.asarray(frame_b)[None])[0]

    def clip(self, frames: np.ndarray) -> np.ndarray:
        """All consecutive pairs of a ``(T, H, W, 3)`` uint8 clip in batches: ``(T-1, H, W, 2)``."""
        out = [
            self._batch(frames[i : i + self.batch_size], frames[i + 1 : i + 1 + self.batch_size])
            for i in range(0, len(frames) - 1, self.batch_size)
        ]
        return np.concatenate(out)[: len(frames) - 1]


def default_flow(backend: str | None = None, device: str | torch.device | None = None) -> FlowEstimator:
    """The project's flow: RAFT when torchvision imports, OpenCV DIS otherwise.

    ``backend`` (or the ``SHOWME_FLOW`` environment variable when ``backend`` is None) is ``auto``, ``raft`` or
    ``opencv``. ``raft`` fails with a clear message when torchvision or its weights are missing; ``auto`` only
    falls back when torchvision itself is unusable, so a RAFT set-up with missing weights is reported, not silently
    replaced by a different estimator.
    """
    choice = (backend or os.environ.get("SHOWME_FLOW") or "auto").lower()
    if choice not in BACKENDS:
        raise InvalidInputError(f"The optical-flow backend must be one of {', '.join(BACKENDS)}, not {choice!r}.")
    if choice == "opencv" or (choice == "auto" and not torchvision_available()):
        return OpenCVFlow()
    return RAFTFlow(device=device)


# ---------------------------------------------------------------------------------------------------------------------
# Clips
# ---------------------------------------------------------------------------------------------------------------------


def estimate_flow(
    frames: Any,
    estimator: FlowEstimator | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    """Forward flow between every pair of consecutive frames: ``(T-1, 2, H, W)`` float32, pixels (dx, dy).

    ``estimator`` is any :data:`FlowEstimator` (default :func:`default_flow`); one with a ``clip`` method gets the
    whole clip at once (RAFT batches the pairs). ``value_range`` applies to float frames only.
    """
    clip = to_uint8_frames(frames, value_range)
    _check_clip(clip)
    estimator = estimator if estimator is not None else default_flow()
    batched = getattr(estimator, "clip", None)
    if callable(batched):
        flows = np.asarray(batched(clip), dtype=np.float32)
    else:
        flows = np.stack([np.asarray(estimator(clip[i], clip[i + 1]), dtype=np.float32) for i in range(len(clip) - 1)])
    expected = (len(clip) - 1, *clip.shape[1:3], 2)
    if flows.shape != expected:
        raise ValueError(f"the flow estimator returned shape {flows.shape}, expected {expected} (T-1, H, W, 2)")
    return np.ascontiguousarray(flows.transpose(0, 3, 1, 2))


def flow_magnitude(flows: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Per-pixel length ``sqrt(dx^2 + dy^2)`` of flows laid out ``(..., 2, H, W)``; tensors stay tensors."""
    if flows.ndim < 3 or flows.shape[-3] != 2:
        raise ValueError(f"flows must be laid out (..., 2, H, W), got shape {tuple(flows.shape)}")
    if isinstance(flows, torch.Tensor):
        return torch.linalg.vector_norm(flows, dim=-3)
    return np.sqrt(np.sum(np.square(np.asarray(flows, dtype=np.float32)), axis=-3))

