"""The DynamiCrafter schedule and DDIM sampler agree with diffusers' independent implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from showme_i2g.showme.dynamicrafter.ddim import (
    SCHEDULE_BUFFERS,
    DDIMSampler,
    ddim_timesteps,
    dynamic_rescale_array,
    linear_betas,
    schedule_buffers,
)


def _diffusers(prediction: str = "epsilon", zero_snr: bool = False) -> DDIMScheduler:
    return DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading",
        prediction_type=prediction, rescale_betas_zero_snr=zero_snr,
    )


@pytest.mark.parametrize("zero_snr", [False, True])
def test_betas_match_diffusers(zero_snr):
    ours = linear_betas(1000, 0.00085, 0.012, zero_terminal_snr=zero_snr)
    # diffusers computes in float32, we in float64 as the release does
    np.testing.assert_allclose(ours, _diffusers(zero_snr=zero_snr).betas.double().numpy(), rtol=1e-3, atol=1e-6)
    if zero_snr:
        assert ours[-1] == pytest.approx(1.0)  # alphas_cumprod reaches exactly 0: zero terminal SNR


def test_schedule_buffers_are_the_release_twelve():
    buffers = schedule_buffers(linear_betas(1000, 0.00085, 0.012))
    assert tuple(buffers) == SCHEDULE_BUFFERS and all(b.shape == (1000,) for b in buffers.values())
    bar = buffers["alphas_cumprod"]
    torch.testing.assert_close(buffers["sqrt_recipm1_alphas_cumprod"], (1 / bar - 1).sqrt())
    assert buffers["alphas_cumprod_prev"][0] == 1.0
    v = schedule_buffers(linear_betas(1000, 0.00085, 0.012), parameterization="v")
    assert torch.count_nonzero(v["sqrt_recip_alphas_cumprod"]) == 0


def test_uniform_timesteps_are_the_release_ones():
    assert ddim_timesteps(50, 1000)[:3].tolist() == [1, 21, 41] and ddim_timesteps(50, 1000)[-1] == 981
    scheduler = _diffusers()
    scheduler.set_timesteps(50)
    assert sorted(scheduler.timesteps.tolist()) == ddim_timesteps(50, 1000).tolist()
    with pytest.raises(ValueError, match="num_steps"):
        ddim_timesteps(0, 1000)


@pytest.mark.parametrize("prediction,param", [("epsilon", "eps"), ("v_prediction", "v")])
def test_deterministic_steps_match_diffusers(prediction, param):
    betas = linear_betas(1000, 0.00085, 0.012)
    sampler = DDIMSampler(schedule_buffers(betas)["alphas_cumprod"], parameterization=param)
    sched = sampler.schedule(10, eta=0.0)
    reference = _diffusers(prediction)
    reference.set_timesteps(10)
    assert sched.timesteps.tolist() == reference.timesteps.tolist()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 3, 8, 8, generator=gen, dtype=torch.float64)
    y = x.clone()
    for i, t in enumerate(sched.timesteps):
        out = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        x, _ = sampler.step(out, x, i, sched)
        y = reference.step(out, int(t), y, eta=0.0).prev_sample
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


def test_eta_adds_the_release_variance():
    sampler = DDIMSampler(schedule_buffers(linear_betas(1000, 0.00085, 0.012))["alphas_cumprod"])
    sched = sampler.schedule(50, eta=1.0)
    a, a_prev = sched.alphas[0].double(), sched.alphas_prev[0].double()
    expected = torch.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
    torch.testing.assert_close(sched.sigmas[0].double(), expected, rtol=1e-6, atol=0)
    x, out = torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 8, 8)
    first = sampler.step(out, x, 0, sched, generator=torch.Generator().manual_seed(1))[0]
    again = sampler.step(out, x, 0, sched, generator=torch.Generator().manual_seed(1))[0]
    assert torch.equal(first, again) and first.std() > 0.5 * float(sched.sigmas[0])


def test_dynamic_rescale():
    arr = dynamic_rescale_array(1000, 0.7)
    assert arr.shape == (1400,) and arr[0] == 1.0 and arr[399] == pytest.approx(0.7) and arr[-1] == pytest.approx(0.7)
    sampler = DDIMSampler(schedule_buffers(linear_betas(1000, 0.00085, 0.012))["alphas_cumprod"], "v", arr)
    sched = sampler.schedule(50)
    ascending = ddim_timesteps(50, 1000)
    # at each step, x0 is scaled by scale(next less noisy timestep) / scale(this timestep); 1 at the last step
    expected = [float(arr[ascending[k - 1]] / arr[ascending[k]]) if k else 1.0 for k in range(50)][::-1]
    np.testing.assert_allclose(sched.rescale.numpy(), expected, rtol=1e-6)
    assert sched.rescale[0] == 1.0  # t = 981 and 961 both lie past the turning step: flat scale


def test_add_noise_and_x0_estimate_invert_each_other():
    sampler = DDIMSampler(schedule_buffers(linear_betas(1000, 0.00085, 0.012))["alphas_cumprod"])
    x0, noise = torch.randn(3, 4, 2, 8, 8), torch.randn(3, 4, 2, 8, 8)
    t = torch.tensor([10, 500, 990])
    xt = sampler.add_noise(x0, noise, t)
    for i in range(3):
        est, eps = sampler.predict_x0_and_eps(xt[i], noise[i], sampler.alphas_cumprod[t[i]].float())
        torch.testing.assert_close(est, x0[i], rtol=1e-4, atol=1e-4)
