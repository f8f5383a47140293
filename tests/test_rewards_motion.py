"""Motion reward: KL between the real clip's temporal flow profile and the one-step latents' motion, per position;
smaller when the latents move when the real frames move; its gradient reaches the ``animate`` LoRA."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from showme_i2g.flow import OpenCVFlow
from showme_i2g.showme import adapters
from showme_i2g.showme.dynamicrafter.config import TINY
from showme_i2g.showme.pipeline import build_random_model
from showme_i2g.showme.rewards import (
    MotionReward,
    clip_flow_magnitudes,
    latent_motion,
    motion_kl,
    temporal_distribution,
)
from showme_i2g.showme.training import ShowMeTrainingModel, conditioning_dropout, first_frame_concat


def square_clip(positions: list[int], size: int = 64) -> np.ndarray:
    """A textured square at the given x positions on a flat background: (T, size, size, 3) uint8."""
    rng = np.random.default_rng(0)
    texture = rng.integers(60, 255, (20, 20, 3), dtype=np.uint8)
    frames = np.full((len(positions), size, size, 3), 30, dtype=np.uint8)
    for t, x in enumerate(positions):
        frames[t, 22:42, x : x + 20] = texture
    return frames


def test_latent_motion_and_the_distributions_on_known_values():
    x0 = torch.zeros(1, 2, 3, 1, 1)
    x0[0, :, 1] = torch.tensor([3.0, 4.0]).view(2, 1, 1)  # frame 1 is (3, 4): |0->1| = 5, |1->2| = 5
    x0[0, :, 2] = torch.tensor([3.0, 4.0]).view(2, 1, 1) * 2  # frame 2 is (6, 8)
    assert torch.allclose(latent_motion(x0).flatten(), torch.tensor([5.0, 5.0]))
    dist = temporal_distribution(torch.tensor([[1.0, 3.0]]).view(1, 2, 1, 1), eps=0.0)
    assert torch.allclose(dist.flatten(), torch.tensor([0.25, 0.75]))
    p, q = torch.tensor([0.25, 0.75]), torch.tensor([0.5, 0.5])
    expected = float((p * (p / q).log()).sum())
    kl = motion_kl(torch.tensor([1.0, 3.0]).view(1, 2, 1, 1), torch.tensor([2.0, 2.0]).view(1, 2, 1, 1), eps=0.0)
    assert float(kl) == pytest.approx(expected, rel=1e-6)
    assert float(motion_kl(torch.ones(1, 4, 2, 2), 5 * torch.ones(1, 4, 2, 2))) == pytest.approx(0.0, abs=1e-7)


def test_the_reward_is_smaller_for_latents_that_move_with_the_real_flow():
    # The real clip: the square moves right during the first half, then stays.
    real = square_clip([4, 10, 16, 22, 28, 28, 28, 28, 28])
    flow = clip_flow_magnitudes(real, (8, 8), OpenCVFlow())
    assert flow.shape == (8, 8, 8)
    assert float(flow[:4].sum()) > 5 * float(flow[4:].sum())  # the real flow is in the first half

    def latents(frames: np.ndarray) -> torch.Tensor:  # a stand-in encoder: 4 channels pooled to the 8x8 grid
        x = torch.from_numpy(frames).float().permute(0, 3, 1, 2) / 127.5 - 1
        x = torch.cat([x, x.mean(1, keepdim=True)], dim=1)
        return F.adaptive_avg_pool2d(x, 8).transpose(0, 1).unsqueeze(0)  # (1, 4, T, 8, 8)

    follows = latents(real)
    late = latents(square_clip([4, 4, 4, 4, 4, 10, 16, 22, 28]))  # same path, moving in the second half
    reward = MotionReward()
    kl_follows = float(reward(follows, flow.unsqueeze(0)))
    kl_late = float(reward(late, flow.unsqueeze(0)))
    assert kl_follows < kl_late / 3


def test_loss_weight_threshold_and_shape_check():
    reward = MotionReward(weight=0.01, min_timestep=500)
    x0 = torch.randn(3, 4, 5, 2, 2, requires_grad=True)
    flow = torch.rand(3, 4, 2, 2)
    loss, parts = reward.loss(x0, torch.tensor([499, 500, 999]), flow)
    loss.backward()
    expected = 0.01 * float(reward(x0[1:].detach(), flow[1:]).sum()) / 3
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5) and parts["eligible"] == 2
    assert float(x0.grad[0].abs().sum()) == 0.0 and float(x0.grad[1:].abs().sum()) > 0
    zero, parts = reward.loss(x0, torch.tensor([0, 100, 499]), flow)
    assert float(zero.detach()) == 0.0 and parts["eligible"] == 0
    with pytest.raises(ValueError, match="T-1"):
        reward(x0, torch.rand(3, 5, 2, 2))
    assert math.isfinite(float(reward(torch.zeros(1, 4, 3, 2, 2), torch.zeros(1, 2, 2, 2))))  # static: no NaN


def test_the_motion_gradient_reaches_the_animate_lora_only():
    torch.manual_seed(0)
    model = build_random_model(TINY)
    adapters.add_showme_adapters(model, edit_rank=4, animate_rank=4)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.normal_(std=0.02)
    trainer = ShowMeTrainingModel(model, stage=2, motion=MotionReward())
    trainer.train()
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(1, 3, 4, 64, 64) * 2 - 1
    with torch.no_grad():
        latents = model.encode_latents(frames[0].transpose(0, 1)).transpose(0, 1).unsqueeze(0)  # (1, 4, 4, 8, 8)
    drop_text, drop_image = conditioning_dropout(1, 0.0, g)
    context = trainer.context(frames[:, :, 0], ["push the cup"], drop_text, drop_image)
    timesteps = torch.tensor([800])
    noisy = model.sampler().add_noise(latents, torch.randn(latents.shape, generator=g), timesteps)
    output = model.predict(noisy, timesteps, first_frame_concat(latents[:, :, 0], 4), context, torch.tensor([3]))
    alpha = model.alphas_cumprod[timesteps].view(-1, 1, 1, 1, 1)
    x0 = (noisy - (1 - alpha).sqrt() * output) / alpha.sqrt()
    loss, _ = trainer.motion.loss(x0, timesteps, torch.rand(1, 3, 8, 8))
    loss.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert grads and all(".animate." in n for n in grads)
    assert any(".temporal" in n or "init_attn" in n or ".2.transformer_blocks" in n for n in grads)
