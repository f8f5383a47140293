"""ShowMe in half precision: the DDIM schedule comes from float64, never from cast buffers, and the step stays real.

Half precision cannot hold ``alphas_cumprod`` near 1: sampled from cast buffers, bf16 gave a NaN sigma at the 256
settings and fp16/bf16 a negative radicand (complex latents) at the 512/1024 settings (v, zero SNR, trailing).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from showme_i2g.showme.dynamicrafter.config import TINY
from showme_i2g.showme.dynamicrafter.ddim import DDIMSampler, ddim_timesteps, linear_betas
from showme_i2g.showme.dynamicrafter.model import DynamiCrafter
from showme_i2g.showme.pipeline import ShowMePipeline, build_random_model

# the 512/1024 releases' schedule settings on the tiny architecture
TINY_512_SCHEDULE = replace(
    TINY, name="tiny-512-schedule", parameterization="v", rescale_betas_zero_snr=True, use_dynamic_rescale=True,
    base_scale=0.7, perframe_ae=True, timestep_spacing="uniform_trailing", guidance_rescale=0.7,
)
SCHEDULE_KINDS = {"256": TINY, "512/1024": TINY_512_SCHEDULE}
HALF = (torch.float16, torch.bfloat16)


def float64_reference(config, num_steps: int, eta: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """alphas, alphas_prev, sigmas of a DDIM run, computed in float64 from the config alone (sampling order)."""
    bar = np.cumprod(1.0 - linear_betas(config.timesteps, config.linear_start, config.linear_end,
                                        config.rescale_betas_zero_snr))
    steps = ddim_timesteps(num_steps, config.timesteps, config.timestep_spacing)
    alphas = bar[steps]
    alphas_prev = np.concatenate([bar[:1], alphas[:-1]])
    sigmas = eta * np.sqrt(np.maximum((1 - alphas_prev) / (1 - alphas) * (1 - alphas / alphas_prev), 0))
    return alphas[::-1], alphas_prev[::-1], sigmas[::-1]


@pytest.fixture(scope="module", params=list(SCHEDULE_KINDS))
def half_models(request) -> tuple[object, dict]:
    config = SCHEDULE_KINDS[request.param]
    with torch.device("meta"):  # only the schedule matters here: no weights are materialised
        models = {dtype: DynamiCrafter(config).to(dtype) for dtype in HALF}
    return config, models


def test_the_buffers_are_cast_but_the_schedule_is_not(half_models):
    config, models = half_models
    for dtype, model in models.items():
        assert model.alphas_cumprod.dtype == dtype  # what broke the sampler before
        assert model.sampler().alphas_cumprod.dtype == torch.float64


@pytest.mark.parametrize("dtype", HALF)
def test_every_step_count_gives_a_finite_real_schedule_equal_to_float64(half_models, dtype):
    config, models = half_models
    sampler = models[dtype].sampler()
    for num_steps in range(1, 51):
        schedule = sampler.schedule(num_steps, eta=1.0, spacing=config.timestep_spacing)
        alphas, alphas_prev, sigmas = float64_reference(config, num_steps)
        assert torch.isfinite(schedule.sigmas).all(), num_steps
        radicand = 1.0 - schedule.alphas_prev.double() - schedule.sigmas.double() ** 2
        assert (radicand >= -1e-7).all(), num_steps  # float32 storage rounds by at most ~1e-7
        for ours, reference in ((schedule.alphas, alphas), (schedule.alphas_prev, alphas_prev),
                                (schedule.sigmas, sigmas)):
            np.testing.assert_allclose(ours.double().numpy(), reference, rtol=0, atol=1e-6)


def test_the_step_clamps_the_radicand_and_never_goes_complex():
    """Zero terminal SNR: the first trailing step has a = 0, so 1 - a_prev - sigma² is 0 up to rounding."""
    config = TINY_512_SCHEDULE
    bar = torch.from_numpy(np.cumprod(1 - linear_betas(1000, config.linear_start, config.linear_end, True)))
    sampler = DDIMSampler(bar, "v")
    for num_steps in (4, 10, 25, 50):
        schedule = sampler.schedule(num_steps, eta=1.0, spacing="uniform_trailing")
        x = torch.randn(1, 4, 2, 4, 4, dtype=torch.bfloat16)
        for index in range(num_steps):
            x_prev, x0 = sampler.step(torch.randn_like(x), x, index, schedule, torch.Generator().manual_seed(0))
            assert x_prev.dtype == torch.bfloat16 and not x_prev.is_complex() and torch.isfinite(x_prev).all()


def test_a_half_precision_schedule_is_refused():
    with pytest.raises(ValueError, match="half-precision"):
        DDIMSampler(torch.linspace(0.99, 0.01, 1000).to(torch.bfloat16))


def test_a_model_cast_to_half_and_back_gives_the_schedule_of_one_never_cast():
    with torch.device("meta"):
        never, round_trip = DynamiCrafter(TINY_512_SCHEDULE), DynamiCrafter(TINY_512_SCHEDULE)
    round_trip.to(torch.bfloat16).to(torch.float32)
    for num_steps in (10, 50):
        a = never.sampler().schedule(num_steps, spacing="uniform_trailing")
        b = round_trip.sampler().schedule(num_steps, spacing="uniform_trailing")
        for field in ("timesteps", "alphas", "alphas_prev", "sigmas", "rescale"):
            assert torch.equal(getattr(a, field), getattr(b, field)), field


def test_add_noise_uses_float32_coefficients_for_half_latents():
    with torch.device("meta"):
        model = DynamiCrafter(TINY).to(torch.float16)
    sampler = model.sampler()
    x0 = torch.randn(3, 4, 2, 4, 4)
    noise = torch.randn_like(x0)
    t = torch.tensor([0, 1, 500])
    exact = sampler.add_noise(x0, noise, t)  # float32 latents
    half = sampler.add_noise(x0.half(), noise.half(), t)
    assert half.dtype == torch.float16
    # the only error left is the rounding of the inputs and the result to fp16, not of the coefficients
    torch.testing.assert_close(half.float(), exact, rtol=2e-3, atol=2e-3)


def _photo() -> Image.Image:
    y, x = np.mgrid[0:64, 0:64]
    return Image.fromarray(np.stack([x * 4, y * 4, (x + y) % 256], axis=-1).astype(np.uint8))


def test_a_bf16_model_with_the_512_schedule_animates_finite_moving_frames():
    model = build_random_model(TINY_512_SCHEDULE).to(torch.bfloat16)
    pipe = ShowMePipeline(model, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    clip = pipe.animate(_photo(), "cut the onion", num_frames=4, seed=0, num_inference_steps=10)
    frames = np.stack([np.asarray(f, dtype=np.float32) for f in clip.frames])
    assert np.isfinite(frames).all() and frames.std() > 1.0
    assert np.abs(frames[1:] - frames[:1]).max() > 0  # not four copies of one frame
    assert clip.metadata["dtype"] == "bfloat16"
