"""The metrics modules' tiny random twins (``.tiny()``), which offline evaluation runs use: same code paths, random
weights, reproducible from a seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from showme_i2g.metrics.fid import InceptionFeatures
from showme_i2g.metrics.i3d import I3DFeatures
from showme_i2g.metrics.lpips import LPIPS
from showme_i2g.metrics.video import EmbeddingVQA, FrameAverageCLIP


def _images(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)) for _ in range(count)]


def test_tiny_twins_are_reproducible_from_their_seed():
    images = _images(2)
    assert torch.equal(InceptionFeatures.tiny(0)(images), InceptionFeatures.tiny(0)(images))
    assert not torch.equal(InceptionFeatures.tiny(0)(images), InceptionFeatures.tiny(1)(images))
    a, b = LPIPS.tiny(0), LPIPS.tiny(0)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    clips = torch.rand(1, 8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(I3DFeatures.tiny(0)(clips), I3DFeatures.tiny(0)(clips))


def test_tiny_lpips_is_zero_for_identical_images_only():
    metric = LPIPS.tiny()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert metric(x, x).abs().max() < 1e-6
    assert (metric(x, x.flip(-1)) > 0).all()


def test_embedding_vqa_is_sigmoid_of_the_clip_cosine():
    clip = FrameAverageCLIP.tiny(0)
    images, questions = _images(2), ["Does this show cutting?", "Is the lid on the pot?"]
    scores = EmbeddingVQA.tiny(clip)(images, questions)
    cos = (clip.image_embedder(images) * clip.text_embedder(questions)).sum(-1)
    assert scores == pytest.approx(torch.sigmoid(10 * cos).tolist(), abs=1e-6)
    assert all(0 < s < 1 for s in scores)
