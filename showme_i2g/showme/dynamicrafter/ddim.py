"""DynamiCrafter's noise schedule and DDIM sampler (eta, classifier-free guidance, eps or v prediction).

The schedule buffers keep the release's names because ``model.ckpt`` stores them at its top level (12 tensors:
``betas``, ``alphas_cumprod``, ... ``posterior_mean_coef2``) and must load strictly. The sampler follows the
release's DDIM: "uniform" timesteps ``range(0, T, T // S) + 1`` (or "uniform_trailing"), ``alpha_prev`` of the
first step is ``alphas_cumprod[0]``, ``sigma = eta * sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))``, and the
optional dynamic rescale of the 512/1024 models (``pred_x0 *= scale_prev / scale``).

Precision. The sampler never reads the registered buffers: a model cast to float16 or bfloat16 casts them too,
and half precision cannot hold ``alphas_cumprod`` near 1 (bf16 makes neighbouring alphas equal, so a DDIM sigma
becomes NaN; fp16/bf16 push the radicand ``1 - a_prev - sigma**2`` of the zero-terminal-SNR models below 0). The
model keeps a float64 copy of the schedule outside the dtype cast (:meth:`DynamiCrafter.sampler`), the per-step
coefficients are stored in float32 as the release's sampler stores them, and every step is computed in float32 and
cast back to the latents' dtype. The release runs its UNet under autocast with float32 buffers and float32
latents, so a half-precision model here does what the release does: only the UNet's matrix work is in half.
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


def alphas_cumprod(betas: np.ndarray) -> np.ndarray:
    """ᾱ_t = prod(1 - beta) in float64: the one source of every sampling and training coefficient."""
    return np.cumprod(1.0 - np.asarray(betas, dtype=np.float64))


def schedule_buffers(betas: np.ndarray, parameterization: str = "eps") -> dict[str, torch.Tensor]:
    """The release's 12 schedule buffers, float32, computed in float64 as it does."""
    alphas = 1.0 - betas
    bar = alphas_cumprod(betas)
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


def dynamic_rescale_values(timesteps: int, base_scale: float, turning_step: int = 400) -> np.ndarray:
    """The 512/1024 models' ``scale_arr`` in float64: 1 -> base_scale over ``turning_step`` steps, then flat."""
    ramp = np.linspace(1.0, base_scale, turning_step)
    return np.concatenate([ramp, np.full(timesteps, base_scale)])


def dynamic_rescale_array(timesteps: int, base_scale: float, turning_step: int = 400) -> torch.Tensor:
    """The ``scale_arr`` buffer (float32, as the release stores it)."""
    return torch.tensor(dynamic_rescale_values(timesteps, base_scale, turning_step), dtype=torch.float32)


def ddim_timesteps(num_steps: int, num_train_timesteps: int, spacing: str = "uniform") -> np.ndarray:
    """Ascending DDPM timesteps visited by DDIM (the sampler walks them from the end)."""
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"num_steps must be from 1 to {num_train_timesteps}, got {num_steps}.")
    if spacing == "uniform":
        # The release's range(0, T, T // S) + 1 holds more than S steps when S does not divide T, and for some S
        # (3, 6, 9, 11, ...) its last step is T itself, past the schedule's end. Keeping the first S steps is the
        # release's choice wherever it works (S dividing T) and gives exactly S valid steps everywhere else.
        return np.arange(0, num_train_timesteps, num_train_timesteps // num_steps)[:num_steps] + 1
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
    """DDIM over a DDPM schedule; the model call and guidance stay with the caller (see ``ShowMePipeline``).

    ``alphas_cumprod`` should be the float64 schedule (``DynamiCrafter.sampler`` passes it); a half-precision copy
    is refused, since its rounding breaks the schedule (see the module docstring).
    """

    def __init__(
        self, alphas_cumprod: torch.Tensor, parameterization: str = "eps", scale_arr: torch.Tensor | None = None
    ) -> None:
        if parameterization not in ("eps", "v"):
            raise ValueError(f"parameterization must be 'eps' or 'v', got {parameterization!r}.")
        if alphas_cumprod.dtype in (torch.float16, torch.bfloat16):
            raise ValueError("DDIMSampler needs the schedule in float32 or float64, not a half-precision copy.")
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
        # (1 - a / a_prev) >= 0 in exact arithmetic; clamp the rounding so no sigma is NaN
        sigmas = eta * torch.sqrt(((1 - alphas_prev) / (1 - alphas) * (1 - alphas / alphas_prev)).clamp(min=0))
        rescale = None
        if self.scale_arr is not None:
            scale = self.scale_arr[steps]
            rescale = torch.cat([scale[:1], scale[:-1]]) / scale
        flip = lambda t: None if t is None else t.flip(0).float()  # noqa: E731
        return DDIMSchedule(steps.flip(0).long(), flip(alphas), flip(alphas_prev), flip(sigmas), flip(rescale))

    def predict_x0_and_eps(
        self, x: torch.Tensor, model_output: torch.Tensor, alpha: torch.Tensor | float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The one-step estimate of the clean latent and the noise, for eps or v prediction, in ``x``'s dtype.

        eps: x0 = (x - sqrt(1 - a) eps) / sqrt(a).  v: x0 = sqrt(a) x - sqrt(1 - a) v, eps = sqrt(a) v + sqrt(1 - a) x.
        The arithmetic runs in float32 (at least) whatever the latents' dtype; gradients flow through it.
        """
        dtype = torch.promote_types(x.dtype, torch.float32)
        a = torch.as_tensor(alpha, device=x.device).to(dtype)
        xf, out = x.to(dtype), model_output.to(dtype)
        if self.parameterization == "v":
            x0, eps = a.sqrt() * xf - (1 - a).sqrt() * out, a.sqrt() * out + (1 - a).sqrt() * xf
        else:
            x0, eps = (xf - (1 - a).sqrt() * out) / a.sqrt(), out
        return x0.to(x.dtype), eps.to(x.dtype)

    def step(
        self, model_output: torch.Tensor, x: torch.Tensor, index: int, schedule: DDIMSchedule,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x_t -> x_{t-1} at sampling position ``index``; returns (x_prev, pred_x0) in ``x``'s dtype.

        The step is computed in float32 whatever the latents' dtype. The radicand ``1 - a_prev - sigma**2`` is
        clamped at 0: rounding can push it a hair below 0 (zero terminal SNR makes it exactly 0 at the first
        step), and a Python float's ``** 0.5`` would then be a complex number. ``generator`` may be a list with one
        generator per batch item; each draws its item's noise as a batch of one would.
        """
        a, a_prev, sigma = (float(v[index]) for v in (schedule.alphas, schedule.alphas_prev, schedule.sigmas))
        dtype = torch.promote_types(x.dtype, torch.float32)
        pred_x0, eps = self.predict_x0_and_eps(x.to(dtype), model_output.to(dtype), a)
        if schedule.rescale is not None:
            pred_x0 = pred_x0 * float(schedule.rescale[index])
        direction = max(1.0 - a_prev - sigma**2, 0.0) ** 0.5 * eps
        x_prev = a_prev**0.5 * pred_x0 + direction
        if sigma > 0:
            x_prev = x_prev + sigma * standard_normal(x.shape, generator).to(x.device, dtype)
        return x_prev.to(x.dtype), pred_x0.to(x.dtype)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0) for training: sqrt(a_t) x0 + sqrt(1 - a_t) noise, per batch item, in x0's dtype.

        The coefficients come from the float64 schedule and are applied in float32 (never in half precision).
        """
        a = self.alphas_at(timesteps, x0.device).view(-1, *([1] * (x0.ndim - 1)))
        return (a.sqrt() * x0.float() + (1 - a).sqrt() * noise.float()).to(x0.dtype)

    def alphas_at(self, timesteps: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
        """ᾱ at training timesteps, float32 from the float64 schedule (the training losses' coefficients)."""
        return self.alphas_cumprod[timesteps.cpu()].float().to(device or timesteps.device)


def standard_normal(shape: tuple[int, ...], generator: torch.Generator | list[torch.Generator] | None) -> torch.Tensor:
    """float32 N(0, 1) noise on the CPU. With a list of generators, item i of the batch comes from generator i,
    exactly as a batch of one drawn from that generator: batched sampling then equals separate runs."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}.")
        return torch.cat([torch.randn((1, *shape[1:]), generator=g, dtype=torch.float32) for g in generator])
    return torch.randn(shape, generator=generator, dtype=torch.float32)
