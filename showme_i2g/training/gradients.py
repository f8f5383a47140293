"""Checks that exactly the intended parameters train: which ones are trainable, and which ones got a gradient.

Why: a LoRA run that silently also updates the frozen base, or whose loss never reaches the adapter (ShowMe's
released structure reward runs under ``no_grad``), trains the wrong thing without any error. Tests call these
after one backward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

__all__ = ["assert_gradients_exactly", "gradient_norms", "parameters_with_gradient", "trainable_parameter_names"]


def trainable_parameter_names(model: torch.nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def parameters_with_gradient(model: torch.nn.Module) -> set[str]:
    """Names of parameters whose ``.grad`` exists and is not all zeros."""
    return {name for name, p in model.named_parameters() if p.grad is not None and bool(p.grad.abs().sum() > 0)}


def gradient_norms(model: torch.nn.Module) -> dict[str, float]:
    return {name: float(p.grad.norm()) for name, p in model.named_parameters() if p.grad is not None}


def assert_gradients_exactly(
    model: torch.nn.Module, expected: Iterable[str] | Callable[[str], bool], *, allow_zero: Iterable[str] = ()
) -> set[str]:
    """Assert that the parameters with a non-zero gradient are exactly ``expected`` (names or a name predicate).

    ``allow_zero`` names expected parameters that may legitimately get a zero gradient on this batch (for
    example LoRA ``A`` matrices while every ``B`` is still zero). Returns the set that received gradients.
    """
    names = [name for name, _ in model.named_parameters()]
    wanted = {n for n in names if expected(n)} if callable(expected) else set(expected)
    if not wanted:
        raise AssertionError("No parameter matches the expected set; the check would prove nothing.")
    got = parameters_with_gradient(model)
    allowed_zero = set(allow_zero)
    unexpected = sorted(got - wanted)
    missing = sorted(wanted - got - allowed_zero)
    if unexpected or missing:
        raise AssertionError(
            f"{len(unexpected)} parameters got an unexpected gradient (e.g. {unexpected[:3]}), "
            f"{len(missing)} expected ones got none (e.g. {missing[:3]})."
        )
    return got
