"""ShowMe's per-image metrics (ShowMe §4, Tables 1-2): PSNR and the embedding cosines CLIP-I, CLIP-T and DINO-I.

The embedding metrics are one mechanism: embed two things, take the cosine of each pair. Only the embedders
differ (CLIP image tower for CLIP-I, CLIP image and text towers for CLIP-T, DINOv2 for DINO-I), so they are
plugged in as callables and the arithmetic is tested with tiny deterministic embedders. ShowMe reports the raw
cosine (ground-truth CLIP-T is 0.28 on SSv2), not the 2.5-scaled CLIPScore of I2G
(:func:`~.distribution.clip_score`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError

__all__ = [
    "EmbeddingSimilarity",
    "batch_psnr",
    "clip_i",
    "clip_t",
    "cosine_similarity",
    "dino_i",
    "psnr",
]

Embedder = Callable[[Sequence[Any]], Any]


def _array(values: Any, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise InvalidInputError(f"The {name} is empty.")
    if not np.all(np.isfinite(array)):
        raise InvalidInputError(f"The {name} contains NaN or infinite values.")
    return array


def _checked_pair(pred: Any, target: Any, data_range: float) -> tuple[np.ndarray, np.ndarray]:
    a, b = _array(pred, "prediction"), _array(target, "target")
    if a.shape != b.shape:
        raise InvalidInputError(f"The prediction has shape {a.shape} but the target has shape {b.shape}.")
    if not data_range > 0:
        raise InvalidInputError(f"The data range must be positive (1.0 for images in [0, 1]), not {data_range!r}.")
    return a, b


def _psnr_from_mse(mse: np.ndarray, data_range: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)


def psnr(pred: Any, target: Any, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over all elements: ``10 log10(data_range^2 / MSE)``.

    ``data_range`` is the span of pixel values (1.0 for images in [0, 1], 255 for 8-bit, 2.0 for [-1, 1]).
    Identical inputs give ``inf``. For a batch averaged per image (how papers report it) use :func:`batch_psnr`.
    """
    a, b = _checked_pair(pred, target, data_range)
    return float(_psnr_from_mse(np.mean((a - b) ** 2), data_range))


def batch_psnr(preds: Any, targets: Any, data_range: float = 1.0) -> np.ndarray:
    """PSNR of each item along the first axis (one value per image or per video); average it for a table."""
    a, b = _checked_pair(preds, targets, data_range)
    if a.ndim < 2:
        raise InvalidInputError("A batch needs a leading batch axis and at least one axis per item.")
    mse = np.mean((a - b).reshape(a.shape[0], -1) ** 2, axis=1)
    return _psnr_from_mse(mse, data_range)


def cosine_similarity(a: Any, b: Any, eps: float = 1e-8) -> torch.Tensor:
    """Cosine of each row of ``a`` with the same row of ``b`` (shapes ``(N, D)``; a single ``(D,)`` row broadcasts)."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    a = a if a.is_floating_point() else a.float()
    b = b if b.is_floating_point() else b.float()
    dtype = torch.promote_types(a.dtype, b.dtype)
    a, b = torch.atleast_2d(a.to(dtype)), torch.atleast_2d(b.to(a.device, dtype))
    if a.shape[-1] != b.shape[-1]:
        raise InvalidInputError(f"Embeddings of width {a.shape[-1]} and {b.shape[-1]} cannot be compared.")
    return torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=eps)


class EmbeddingSimilarity:
    """Pairwise cosine between two embedders' outputs: CLIP-I, CLIP-T and DINO-I are instances of this class.

    ``embed_a`` and ``embed_b`` map a batch (a list of images, texts, or a tensor) to an ``(N, D)`` tensor or array;
    ``embed_b`` defaults to ``embed_a`` (image-image metrics). Calls run without gradients: this is a metric, not a
    reward.
    """

    def __init__(self, embed_a: Embedder, embed_b: Embedder | None = None) -> None:
        self.embed_a = embed_a
        self.embed_b = embed_b if embed_b is not None else embed_a

    @staticmethod
    def _embed(embed: Embedder, items: Any, name: str) -> torch.Tensor:
        out = torch.as_tensor(embed(items))
        if out.ndim != 2:
            raise ValueError(f"{name} must return an (N, D) batch of embeddings, got shape {tuple(out.shape)}")
        return out

    @torch.no_grad()
    def __call__(self, a_items: Any, b_items: Any) -> torch.Tensor:
        """Cosine of each ``a_items[i]`` with ``b_items[i]``, shape ``(N,)``."""
        if len(a_items) != len(b_items):
            raise InvalidInputError(f"{len(a_items)} items cannot be paired with {len(b_items)} items.")
        a = self._embed(self.embed_a, a_items, "embed_a")
        b = self._embed(self.embed_b, b_items, "embed_b")
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"the embedders returned {a.shape[0]} and {b.shape[0]} rows for equal batches")
        return cosine_similarity(a, b)

    @torch.no_grad()
    def one_to_many(self, a_item: Any, b_items: Any) -> torch.Tensor:
        """Cosine of one ``a_item`` with each of ``b_items``, shape ``(N,)`` (e.g. a narration against frames).

        ``a_item`` is embedded once, as a batch of one.
        """
        a = self._embed(self.embed_a, [a_item] if not isinstance(a_item, torch.Tensor) else a_item[None], "embed_a")
        b = self._embed(self.embed_b, b_items, "embed_b")
        return cosine_similarity(a.expand(b.shape[0], -1), b)

    def mean(self, a_items: Any, b_items: Any) -> float:
        """The metric as a table reports it: the mean cosine over the pairs."""
        return float(self(a_items, b_items).double().mean())


def clip_i(image_embedder: Embedder) -> EmbeddingSimilarity:
    """CLIP-I: generated image vs reference image, both through the CLIP image tower."""
    return EmbeddingSimilarity(image_embedder)


def clip_t(image_embedder: Embedder, text_embedder: Embedder) -> EmbeddingSimilarity:
    """CLIP-T: generated image vs instruction text (call as ``metric(images, texts)``)."""
    return EmbeddingSimilarity(image_embedder, text_embedder)


def dino_i(dino_embedder: Embedder) -> EmbeddingSimilarity:
    """DINO-I: generated image vs reference image through DINOv2 (global/CLS embedding)."""
    return EmbeddingSimilarity(dino_embedder)
