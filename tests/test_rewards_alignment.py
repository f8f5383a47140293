"""The differentiable CLIP alignment reward of I2G's reward fine-tuning."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from showme_i2g.errors import WeightsNotFoundError
from showme_i2g.i2g.reward import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    CLIPAlignmentReward,
    build_alignment_reward,
    differentiable_clip_preprocess,
)


@pytest.fixture(scope="module")
def reward() -> CLIPAlignmentReward:
    return CLIPAlignmentReward.tiny()


def test_preprocessing_matches_the_clip_formula_and_crops_the_centre():
    images = torch.rand(2, 3, 32, 48) * 2 - 1
    out = differentiable_clip_preprocess(images, 32)
    mean, std = torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1)
    expected = ((images + 1) / 2 - mean) / std
    assert torch.allclose(out, expected[..., :, 8:40], atol=1e-6)  # shorter side already 32: centre 32 columns


def test_preprocessing_resize_is_close_to_clip_image_processor():
    from transformers import CLIPImageProcessor

    rng = np.random.default_rng(0)
    smooth = (np.kron(rng.integers(0, 256, (8, 12, 3)), np.ones((8, 8, 1)))).astype(np.uint8)  # 64 x 96
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    reference = processor(images=PIL.Image.fromarray(smooth), return_tensors="pt").pixel_values
    ours = differentiable_clip_preprocess(torch.from_numpy(smooth).permute(2, 0, 1)[None].float() / 127.5 - 1, 32)
    assert ours.shape == reference.shape == (1, 3, 32, 32)
    assert (ours - reference).abs().mean() < 0.1  # PIL's and torch's bicubic differ slightly; values span ~4


def test_reward_is_clip_cosine_similarity(reward):
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    texts = ["Boil the water.", "Chop two onions finely."]
    scores = reward(images, texts)
    tokens = reward.tokenizer(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    pixels = differentiable_clip_preprocess(images, 32)
    with torch.no_grad():
        out = reward.model(input_ids=tokens.input_ids, pixel_values=pixels)
    cosine = out.logits_per_image.diagonal() / reward.model.logit_scale.exp()
    assert torch.allclose(scores, cosine, atol=1e-5)
    assert not torch.allclose(scores[0], scores[1])


def test_reward_gradient_reaches_the_pixels_but_not_the_reward_network(reward):
    images = (torch.rand(1, 3, 40, 40) * 2 - 1).requires_grad_()
    reward(images, ["Knead the dough."]).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in reward.parameters())


def test_bad_inputs_and_missing_weights(reward):
    with pytest.raises(ValueError, match="2 images but 1 texts"):
        reward(torch.zeros(2, 3, 32, 32), ["one"])
    with pytest.raises(ValueError, match=r"shape \(B, 3, H, W\)"):
        differentiable_clip_preprocess(torch.zeros(3, 32, 32), 32)
    with pytest.raises(WeightsNotFoundError, match="openai/clip-vit-large-patch14") as info:
        build_alignment_reward("openai/clip-vit-large-patch14")
    assert str(info.value).count(". ") == 0
    assert isinstance(build_alignment_reward("tiny"), CLIPAlignmentReward)
