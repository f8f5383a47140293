"""FID: the Fréchet distance against its closed form, streaming statistics, and the real offline Inception features."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from showme_i2g.errors import InvalidInputError, WeightsNotFoundError
from showme_i2g.metrics.fid import (
    FID,
    InceptionFeatures,
    RunningStatistics,
    default_inception_path,
    feature_statistics,
    frechet_distance,
    images_to_uint8,
)


def _scipy_fid(mu1, s1, mu2, s2) -> float:
    """The textbook formula with scipy's sqrtm, as pytorch-fid computes it."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm warns on the singular covariances of few samples
        covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_a_set_against_itself_is_zero():
    features = np.random.default_rng(0).normal(size=(64, 8))
    metric = FID(lambda batch: batch)
    metric.update(features, real=True)
    metric.update(features, real=False)
    assert metric.compute() == pytest.approx(0.0, abs=1e-9)


def test_two_gaussians_match_the_closed_form():
    # N(mu1, diag(a)) vs N(mu2, diag(b)): FD = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 1) ** 2
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    # full covariances from samples: equals scipy's sqrtm formula
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 6)), rng.normal(size=(150, 6)) @ rng.normal(size=(6, 6)) + 0.5
    (m1, s1), (m2, s2) = feature_statistics(x), feature_statistics(y)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(_scipy_fid(m1, s1, m2, s2), rel=1e-8)


def test_streaming_statistics_equal_the_whole_set():
    rng = np.random.default_rng(2)
    data = rng.normal(loc=100.0, size=(37, 5))  # a large mean: the naive sum of squares would lose precision
    stats = RunningStatistics()
    for chunk in np.array_split(data, [5, 6, 20]):
        stats.update(chunk)
    mean, cov = stats.statistics()
    np.testing.assert_allclose(mean, data.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(data, rowvar=False), rtol=1e-9, atol=1e-12)


def test_bad_statistics_are_one_sentence():
    with pytest.raises(InvalidInputError, match="at least two"):
        FID(lambda b: b).compute()
    with pytest.raises(InvalidInputError, match="do not match"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_a_missing_inception_file_is_one_sentence(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        InceptionFeatures(path=tmp_path / "missing.pt", device="cpu")


def test_images_to_uint8_accepts_pil_arrays_and_float_tensors():
    pil = [Image.new("RGB", (4, 3), (255, 0, 0)), Image.new("RGB", (4, 3), (0, 0, 255))]
    batch = images_to_uint8(pil)
    assert batch.shape == (2, 3, 3, 4) and batch.dtype == torch.uint8 and batch[0, 0].eq(255).all()
    assert torch.equal(images_to_uint8(batch.float() / 255), batch)


def test_real_offline_inception_gives_pool3_features_and_a_closed_form_fid():
    assert default_inception_path().name == "default_1.pt"
    inception = InceptionFeatures(device="cpu", batch_size=2)
    rng = np.random.default_rng(0)
    noise = [Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)) for _ in range(2)]
    flat = [Image.new("RGB", (64, 48), colour) for colour in ("red", "blue")]
    features = inception(noise + flat)
    assert features.shape == (4, 2048) and features.dtype == torch.float32
    assert (features >= 0).all()  # pool3 follows a ReLU
    assert torch.allclose(features[:2], inception(noise), atol=1e-5)  # deterministic, batch-independent
    # noise images resemble each other more than they resemble a flat red picture
    cos = torch.nn.functional.cosine_similarity
    assert cos(features[0:1], features[1:2]) > cos(features[0:1], features[2:3]) + 0.1
    # the FID path on the Inception features, against scipy's formula (first 64 dimensions: sqrtm of 2048 is slow)
    width = 64
    metric = FID(lambda batch: batch[:, :width])  # the features computed above stand for the images
    metric.update(features[:2], real=True)
    metric.update(features[2:], real=False)
    (m1, s1), (m2, s2) = (feature_statistics(f[:, :width].double().numpy()) for f in (features[:2], features[2:]))
    assert metric.compute() == pytest.approx(_scipy_fid(m1, s1, m2, s2), rel=1e-4)
    assert metric.compute() > 1.0
