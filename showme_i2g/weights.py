"""Loading a preset's diffusers weights, one rule for the I2G pipeline and the baselines alike.

A preset names a hub repo (or the user gives a local folder with ``--weights``). Loading tries the repo's fp16
files first on a GPU, then the full-precision ones (:meth:`weight_variants` of the preset); a repo that is
neither cached nor downloadable, or whose tokenizer came back empty (offline, ``from_pretrained`` of a hub id can
do that), is the preset's one-sentence :class:`~showme_i2g.errors.WeightsNotFoundError`, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from typing import Any, Protocol, TypeVar

from .errors import WeightsNotFoundError
from .text.tokenizers import check_tokenizer

__all__ = ["freeze", "load_preset_weights", "weights_location"]

P = TypeVar("P")


class _Preset(Protocol):
    base: str | None

    def weight_variants(self, on_gpu: bool) -> tuple[str | None, ...]: ...

    def missing_weights_message(self, source: str) -> str: ...


def freeze(pipe: P) -> P:
    """No weight of a loaded diffusers pipeline requires grad (``from_pretrained`` leaves every one trainable, and
    a call outside ``no_grad`` would then build an autograd graph); training makes its own parameters trainable."""
    import torch

    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.requires_grad_(False)
    return pipe


def weights_location(weights: str | PathLike | None) -> str:
    """Where the weights were looked for, as the missing-weights sentence says it."""
    return f"the folder {weights}" if weights else "the Hugging Face cache (and the hub could not be reached)"


def load_preset_weights(
    load: Callable[..., P], preset: _Preset, weights: str | PathLike | None, *, on_gpu: bool, **kwargs: Any
) -> P:
    """``load(source, variant=..., use_safetensors=True, **kwargs)`` (a diffusers ``from_pretrained``) for the first
    of the preset's variants that loads, from ``weights`` or the preset's repo; its tokenizers are checked."""
    source = str(weights) if weights else preset.base
    missing = WeightsNotFoundError(preset.missing_weights_message(weights_location(weights)))
    error: Exception | None = None
    for variant in preset.weight_variants(on_gpu):
        try:
            pipe = load(source, variant=variant, use_safetensors=True, **kwargs)
            break
        except (OSError, ValueError) as exc:  # hub/offline/missing-file errors are OSError subclasses
            error = exc
    else:
        raise missing from error
    for attribute in ("tokenizer", "tokenizer_2"):
        if getattr(pipe, attribute, None) is not None:
            try:
                check_tokenizer(getattr(pipe, attribute), source)
            except OSError as exc:  # an empty tokenizer: the download is incomplete
                raise missing from exc
    return pipe
