"""Which device a model runs on when none is named: one rule for the pipelines, the metrics and the entry points.

CUDA when there is a GPU; Apple's MPS only for models that run there (``mps=True``: the SDXL pipeline); otherwise
the CPU. ShowMe's sampler keeps a float64 schedule, which MPS cannot hold, and the metrics' reference networks
are checked against published values on CUDA and CPU, so they keep the default ``mps=False``.
"""

from __future__ import annotations

import torch

__all__ = ["best_device"]


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def best_device(device: str | torch.device | None = None, *, mps: bool = False) -> torch.device:
    """``device`` when one is named, else the best available: CUDA, then MPS (when ``mps``), then the CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if mps and mps_available():
        return torch.device("mps")
    return torch.device("cpu")
