"""How the app keeps one shared model slot free for everybody: runs that can be ended, budgets, hardware limits.

A run holds the single model slot from its first denoising step to its last file. Three things end it early, each
by setting the run's stop flag, which the run reads between steps (every denoising step, every decoded image, every
written clip, every stitched frame), so the slot is free again within about one step:

* its user presses Stop, or closes the page (``demo.unload``): :meth:`RunRegistry.stop` ends every run of a session;
* its client cancels the request (gradio cancels the task awaiting the run): :meth:`RunControl.stop`;
* its time budget is spent: :meth:`RunControl.check` raises :class:`RunOutOfTime`.

The budget and the largest settings the page offers depend on the hardware (:class:`HardwareLimits`): on a CPU one
denoising step of a 1536 px recipe takes minutes, so the CPU's page offers sizes up to 512 px and fewer steps.
:func:`gpu_seconds` sizes a ZeroGPU allocation from the request itself.

Plain Python: nothing here imports gradio or torch.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class RunStopped(Exception):
    """A run ended before it finished: its user pressed Stop, closed the page or cancelled the request."""


class RunOutOfTime(RunStopped):
    """A run spent its time budget; the message says so in one sentence."""

    def __init__(self, budget_s: float) -> None:
        super().__init__(
            f"The run used up its {budget_s:g}-second budget on this machine and was ended; "
            "try fewer steps, fewer frames or a smaller size."
        )
        self.budget_s = budget_s


class RunControl:
    """One run's stop flag and deadline. :meth:`check` is what the run calls between steps."""

    def __init__(self, session: str = "", budget_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if budget_s is not None and not budget_s > 0:
            raise ValueError(f"budget_s must be positive or None, got {budget_s!r}.")
        self.session = session
        self.budget_s = budget_s
        self._clock = clock
        self._deadline = None if budget_s is None else clock() + budget_s
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the run to end at its next check (Stop, a closed page, a cancelled request)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def out_of_time(self) -> bool:
        return self._deadline is not None and self._clock() >= self._deadline

    def check(self) -> None:
        """Raise :class:`RunStopped` once the run was asked to stop, :class:`RunOutOfTime` once its budget is spent."""
        if self._stop.is_set():
            raise RunStopped
        if self.out_of_time:
            raise RunOutOfTime(self.budget_s)


class RunRegistry:
    """The runs going now, by browser session: Stop and a closed page end all of a session's runs, and only those.

    A run is registered only while it runs, so a Stop pressed after a run ended cannot stop the user's next run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, set[RunControl]] = {}
        self._by_id: dict[str, RunControl] = {}
        self._cancelled_early: set[str] = set()  # run ids cancelled before their run started

    @contextmanager
    def start(self, session: str | None, budget_s: float | None = None,
              run_id: str | None = None) -> Iterator[RunControl]:
        """A :class:`RunControl` for the length of the block, reachable by :meth:`stop` through ``session`` and by
        :meth:`stop_run` through ``run_id`` (the id its request's handler chose, to end it when the client cancels)."""
        control = RunControl(session or "", budget_s)
        with self._lock:
            self._runs.setdefault(control.session, set()).add(control)
            if run_id is not None:
                self._by_id[run_id] = control
                if run_id in self._cancelled_early:
                    self._cancelled_early.discard(run_id)
                    control.stop()
        try:
            yield control
        finally:
            with self._lock:
                runs = self._runs.get(control.session, set())
                runs.discard(control)
                if not runs:
                    self._runs.pop(control.session, None)
                if run_id is not None:
                    self._by_id.pop(run_id, None)

    def stop_run(self, run_id: str) -> None:
        """Stop one run (its client cancelled); a run not started yet is stopped as soon as it starts."""
        with self._lock:
            control = self._by_id.get(run_id)
            if control is None:  # not started yet, or already over (then the id is never asked for again)
                if len(self._cancelled_early) >= 256:
                    self._cancelled_early.pop()
                self._cancelled_early.add(run_id)
        if control is not None:
            control.stop()

    def stop(self, session: str | None) -> int:
        """Stop every run of ``session`` that is going now; returns how many there were."""
        with self._lock:
            runs = list(self._runs.get(session or "", ()))
        for run in runs:
            run.stop()
        return len(runs)

    def running(self, session: str | None = None) -> int:
        """How many runs are going (of ``session``, or of everybody)."""
        with self._lock:
            if session is None:
                return sum(len(runs) for runs in self._runs.values())
            return len(self._runs.get(session, ()))


# ---------------------------------------------------------------------------------------------------------------------
# What this machine offers: sizes, steps, frames and each run's budget
# ---------------------------------------------------------------------------------------------------------------------


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
            limits = cls("cuda", max_size=1536, max_inference_steps=100, max_frames=32, budget_s=300)
        elif kind == "mps":
            limits = cls("mps", max_size=1024, max_inference_steps=50, max_frames=16, budget_s=600)
        else:
            limits = cls("cpu", max_size=512, max_inference_steps=50, max_frames=16, budget_s=600)
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
    from .devices import best_device  # imports torch

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
                frames: int = 16) -> int:
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
