"""What this machine offers the app: the largest sizes, steps and frames, each run's time budget, and ZeroGPU.

On a CPU one denoising step of a 1536 px recipe takes minutes, so the CPU's page offers sizes up to 512 px and fewer
steps (:class:`HardwareLimits`). :func:`detect_device` finds the device without importing torch where no GPU can be;
:func:`gpu_seconds` sizes a ZeroGPU allocation from the request itself.

Plain Python: nothing here imports gradio, and torch only where a GPU may be present.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

from ..validation import DEFAULT_FRAMES, MAX_FRAMES


@dataclass(frozen=True)
class HardwareLimits:
    """The largest settings the page offers on this hardware, and how long one run may hold the model slot.

    On a CPU a denoising step grows with the pixels: 16 steps at 1536 px took 139 s per step, so Stop, a closed page
    and the next user waited that long. Up to 512 px a step stays within seconds.
    """

    device: str
    max_size: int
    max_inference_steps: int
    max_frames: int
    budget_s: float

    @classmethod
    def for_device(cls, device: str, budget_s: float | None = None) -> HardwareLimits:
        """Limits for a device type (``cuda``, ``mps``, ``cpu``); ``budget_s`` overrides the default budget."""
        kind = device.split(":")[0]
        if kind == "cuda":
            limits = cls("cuda", max_size=1536, max_inference_steps=100, max_frames=MAX_FRAMES, budget_s=300)
        elif kind == "mps":
            limits = cls("mps", max_size=1024, max_inference_steps=50, max_frames=DEFAULT_FRAMES,
                         budget_s=600)
        else:
            limits = cls("cpu", max_size=512, max_inference_steps=50, max_frames=DEFAULT_FRAMES, budget_s=600)
        if budget_s is not None:
            if not budget_s > 0:
                raise ValueError(f"budget_s must be positive, got {budget_s!r}.")
            limits = cls(limits.device, limits.max_size, limits.max_inference_steps, limits.max_frames, budget_s)
        return limits


def zero_gpu() -> bool:
    """Whether this is a Hugging Face ZeroGPU Space (a GPU is attached only inside ``spaces.GPU`` calls)."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


def detect_device(device: str | None = None) -> str:
    """The device type the models will run on, importing torch only where a GPU may be present.

    ``device`` is the user's ``--device``; a ZeroGPU Space counts as ``cuda``. On Linux without the NVIDIA driver
    (``/proc/driver/nvidia``) it is ``cpu`` at once, so a CPU machine's page starts without torch's import time.
    """
    if device:
        return device.split(":")[0]
    if zero_gpu():
        return "cuda"
    if sys.platform.startswith("linux") and not os.path.exists("/proc/driver/nvidia"):
        return "cpu"
    from ..devices import best_device  # imports torch

    return best_device(mps=True).type


# Per-step seconds measured on one H200 (README, "Real size on a GPU"): a 16-frame 256 px clip's DDIM step with CFG,
# an edit's, and one 1024 px SDXL image's step without CFG, plus one image's VAE decode.
_CLIP_STEP_S = 6.24 / 50
_EDIT_STEP_S = 3.07 / 50
_SDXL_IMAGE_STEP_S = 1.79 / (7 * 4)
_SDXL_DECODE_S = 0.15
_MARGIN = 3.0  # ZeroGPU slices, first-call graph capture and model moves cost more than the bench
_OVERHEAD_S = 20.0
MIN_GPU_S, MAX_GPU_S = 30, 300


def gpu_seconds(job: str, *, items: int = 1, inference_steps: int = 1, size: int = 1024, guidance: float = 0.0,
                frames: int = DEFAULT_FRAMES) -> int:
    """The GPU time to ask ZeroGPU for, from the request: ``job`` is ``recipe``, ``edit``, ``video``, ``photo`` (an
    edit and a video in one call) or ``animate``; ``items`` are the recipe's steps (``recipe``, ``animate``).

    Estimated from the H200 timings with a 3x margin, kept within [30, 300] s: asking for more than a job needs
    puts it behind other users in ZeroGPU's queue, asking for less kills it.
    """
    steps, items = max(1, int(inference_steps)), max(1, int(items))
    if job == "recipe":
        per_step = _SDXL_IMAGE_STEP_S * items * (size / 1024) ** 2 * (2 if guidance > 1 else 1)
        seconds = steps * per_step + items * _SDXL_DECODE_S
    elif job == "edit":
        seconds = steps * _EDIT_STEP_S
    elif job == "video":
        seconds = steps * _CLIP_STEP_S * frames / 16
    elif job == "photo":  # edit and video in one call
        seconds = steps * (_EDIT_STEP_S + _CLIP_STEP_S * frames / 16)
    elif job == "animate":
        seconds = items * steps * _CLIP_STEP_S * frames / 16
    else:
        raise ValueError(f"Unknown job {job!r}; expected recipe, edit, video, photo or animate.")
    return int(min(MAX_GPU_S, max(MIN_GPU_S, math.ceil(_OVERHEAD_S + _MARGIN * seconds))))
