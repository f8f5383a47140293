"""DynamiCrafter's noise schedule and DDIM sampler (eta, classifier-free guidance, eps or v prediction).

The schedule buffers keep the release's names because ``model.ckpt`` stores them at its top level (12 tensors:
``betas``, ``alphas_cumprod``, ... ``posterior_mean_coef2``) and must load strictly. The sampler follows the
release's DDIM: "uniform" timesteps ``range(0, T, T // S) + 1`` (or "uniform_trailing"), ``alpha_prev`` of the
first step is ``alphas_cumprod[0]``, ``sigma = eta * sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))``, and the
optional dynamic rescale of the 512/1024 models (``pred_x0 *= scale_prev / scale``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SCHEDULE_BUFFERS = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
)


def linear_betas(timesteps: int, linear_start: float, linear_end: float, zero_terminal_snr: bool = False) -> np.ndarray:
    """LDM's "linear" schedule (linear in sqrt(beta)), optionally rescaled to zero terminal SNR (Lin et al. 2024)."""
    betas = np.linspace(linear_start**0.5, linear_end**0.5, timesteps, dtype=np.float64) ** 2
    if not zero_terminal_snr:
        return betas
    sqrt_bar = np.sqrt(np.cumprod(1.0 - betas))
    first, last = sqrt_bar[0], sqrt_bar[-1]
    sqrt_bar = (sqrt_bar - last) * first / (first - last)
    bar = sqrt_bar**2
    alphas = np.concatenate([bar[:1], bar[1:] / bar[:-1]])
    return 1.0 - alphas


def schedule_buffers(betas: np.ndarray, parameterization: str = "eps") -> dict[str, torch.Tensor]:
    """The release's 12 schedule buffers, float32, computed in float64 as it does."""
    alphas = 1.0 - betas
    bar = np.cumprod(alphas)
    bar_prev = np.append(1.0, bar[:-1])
    posterior_variance = betas * (1.0 - bar_prev) / (1.0 - bar)
    v = parameterization == "v"  # the release stores zeros for the eps-only helpers of v models
    values = {
        "betas": betas,
        "alphas_cumprod": bar,
        "alphas_cumprod_prev": bar_prev,
        "sqrt_alphas_cumprod": np.sqrt(bar),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - bar),
        "log_one_minus_alphas_cumprod": np.log(1.0 - bar),
        "sqrt_recip_alphas_cumprod": np.zeros_like(bar) if v else np.sqrt(1.0 / bar),
        "sqrt_recipm1_alphas_cumprod": np.zeros_like(bar) if v else np.sqrt(1.0 / bar - 1),
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": np.log(np.maximum(posterior_variance, 1e-20)),
        "posterior_mean_coef1": betas * np.sqrt(bar_prev) / (1.0 - bar),
        "posterior_mean_coef2": (1.0 - bar_prev) * np.sqrt(alphas) / (1.0 - bar),
    }
    return {name: torch.tensor(values[name], dtype=torch.float32) for name in SCHEDULE_BUFFERS}


def dynamic_rescale_array(timesteps: int, base_scale: float, turning_step: int = 400) -> torch.Tensor:
    """The 512/1024 models' ``scale_arr``: 1 -> base_scale over the first ``turning_step`` steps, then flat."""
    ramp = np.linspace(1.0, base_scale, turning_step)
    return torch.tensor(np.concatenate([ramp, np.full(timesteps, base_scale)]), dtype=torch.float32)


def ddim_timesteps(num_steps: int, num_train_timesteps: int, spacing: str = "uniform") -> np.ndarray:
    """Ascending DDPM timesteps visited by DDIM (the sampler walks them from the end)."""
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"num_steps must be from 1 to {num_train_timesteps}, got {num_steps}.")
    if spacing == "uniform":
        return np.arange(0, num_train_timesteps, num_train_timesteps // num_steps) + 1
    if spacing == "uniform_trailing":
        c = num_train_timesteps / num_steps
        return np.flip(np.round(np.arange(num_train_timesteps, 0, -c))).astype(np.int64) - 1
    raise ValueError(f"spacing must be 'uniform' or 'uniform_trailing', got {spacing!r}.")


@dataclass
class DDIMSchedule:
    """Per-step coefficients of one DDIM run, indexed in sampling order (first = noisiest)."""

    timesteps: torch.Tensor  # (S,) long, descending
    alphas: torch.Tensor  # (S,) alphas_cumprod at each step
    alphas_prev: torch.Tensor
    sigmas: torch.Tensor
    rescale: torch.Tensor | None  # (S,) pred_x0 multipliers of the dynamic rescale, or None


class DDIMSampler:
    """DDIM over a DDPM schedule; the model call and guidance stay with the caller (see ``ShowMePipeline``)."""

    def __init__(
        self, alphas_cumprod: torch.Tensor, parameterization: str = "eps", scale_arr: torch.Tensor | None = None
    ) -> None:
        if parameterization not in ("eps", "v"):
            raise ValueError(f"parameterization must be 'eps' or 'v', got {parameterization!r}.")
        self.alphas_cumprod = alphas_cumprod.detach().double().cpu()
        self.parameterization = parameterization
        self.scale_arr = None if scale_arr is None else scale_arr.detach().double().cpu()

    @property
    def num_train_timesteps(self) -> int:
        return self.alphas_cumprod.shape[0]

    def schedule(self, num_steps: int, eta: float = 1.0, spacing: str = "uniform") -> DDIMSchedule:
        steps = torch.from_numpy(ddim_timesteps(num_steps, self.num_train_timesteps, spacing).copy())
        alphas = self.alphas_cumprod[steps]
        alphas_prev = torch.cat([self.alphas_cumprod[:1], alphas[:-1]])
        sigmas = eta * torch.sqrt((1 - alphas_prev) / (1 - alphas) * (1 - alphas / alphas_prev))
        rescale = None
        if self.scale_arr is not None:
            scale = self.scale_arr[steps]
            rescale = torch.cat([scale[:1], scale[:-1]]) / scale
        flip = lambda t: None if t is None else t.flip(0).float()  # noqa: E731
        return DDIMSchedule(steps.flip(0).long(), flip(alphas), flip(alphas_prev), flip(sigmas), flip(rescale))

    def predict_x0_and_eps(
        self, x: torch.Tensor, model_output: torch.Tensor, alpha: torch.Tensor | float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The one-step estimate of the clean latent and the noise, for eps or v prediction.

        eps: x0 = (x - sqrt(1 - a) eps) / sqrt(a).  v: x0 = sqrt(a) x - sqrt(1 - a) v, eps = sqrt(a) v + sqrt(1 - a) x.
        """
        a = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
        if self.parameterization == "v":
            return a.sqrt() * x - (1 - a).sqrt() * model_output, a.sqrt() * model_output + (1 - a).sqrt() * x
        return (x - (1 - a).sqrt() * model_output) / a.sqrt(), model_output

    def step(
        self, model_output: torch.Tensor, x: torch.Tensor, index: int, schedule: DDIMSchedule,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x_t -> x_{t-1} at sampling position ``index``; returns (x_prev, pred_x0)."""
        a, a_prev, sigma = (float(v[index]) for v in (schedule.alphas, schedule.alphas_prev, schedule.sigmas))
        pred_x0, eps = self.predict_x0_and_eps(x, model_output, a)
        if schedule.rescale is not None:
            pred_x0 = pred_x0 * float(schedule.rescale[index])
        direction = (1.0 - a_prev - sigma**2) ** 0.5 * eps
        x_prev = a_prev**0.5 * pred_x0 + direction
        if sigma > 0:
            noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
            x_prev = x_prev + sigma * noise
        return x_prev, pred_x0

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0) for training: sqrt(a_t) x0 + sqrt(1 - a_t) noise, per batch item."""
        a = self.alphas_cumprod.to(x0.device)[timesteps.to(x0.device)].to(x0.dtype)
        a = a.view(-1, *([1] * (x0.ndim - 1)))
        return a.sqrt() * x0 + (1 - a).sqrt() * noise
