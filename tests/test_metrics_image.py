"""ShowMe's image metrics: PSNR of a known noise level and the embedding cosines with known embedders."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from showme_i2g.errors import InvalidInputError
from showme_i2g.metrics.image import EmbeddingSimilarity, batch_psnr, clip_t, psnr


def test_psnr_of_a_known_noise_level():
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.2, 0.8, size=(4, 64, 64, 3))
    sigma = 0.05
    noisy = clean + rng.choice([-sigma, sigma], size=clean.shape)  # MSE is exactly sigma^2
    assert psnr(noisy, clean) == pytest.approx(10 * math.log10(1 / sigma**2), rel=1e-12)  # 26.02 dB
    np.testing.assert_allclose(batch_psnr(noisy, clean), 10 * math.log10(1 / sigma**2), rtol=1e-12)
    assert psnr(noisy * 255, clean * 255, data_range=255.0) == pytest.approx(psnr(noisy, clean), rel=1e-12)
    assert psnr(clean, clean) == math.inf


def test_psnr_refuses_mismatched_shapes():
    with pytest.raises(InvalidInputError, match="shape"):
        psnr(np.zeros((2, 2)), np.zeros((2, 3)))


def test_embedding_similarity_is_the_rowwise_cosine():
    table = {"a": [1.0, 0.0], "b": [1.0, 1.0], "c": [0.0, -2.0]}

    def embed(items):
        return torch.tensor([table[i] for i in items])

    metric = EmbeddingSimilarity(embed)
    out = metric(["a", "a", "b"], ["a", "b", "c"])
    assert torch.allclose(out, torch.tensor([1.0, 1 / math.sqrt(2), -1 / math.sqrt(2)]), atol=1e-6)
    assert metric.mean(["a", "b"], ["a", "b"]) == pytest.approx(1.0)
    assert torch.allclose(metric.one_to_many("a", ["a", "c"]), torch.tensor([1.0, 0.0]))
    with pytest.raises(InvalidInputError, match="paired"):
        clip_t(embed, embed)(["a"], ["a", "b"])
