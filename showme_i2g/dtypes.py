"""diffusers renamed ``torch_dtype`` to ``dtype``: the one place that accepts both, for every loader of this library."""

from __future__ import annotations

import warnings

import torch

__all__ = ["resolve_dtype"]


def resolve_dtype(dtype: torch.dtype | None, torch_dtype: torch.dtype | None) -> torch.dtype | None:
    """``dtype``, or the deprecated ``torch_dtype`` with a FutureWarning; both given and different is an error."""
    if torch_dtype is None:
        return dtype
    warnings.warn("`torch_dtype` is deprecated; pass `dtype`.", FutureWarning, stacklevel=3)
    if dtype is not None and dtype != torch_dtype:
        raise ValueError(f"give dtype or torch_dtype, not both ({dtype} and {torch_dtype})")
    return torch_dtype
