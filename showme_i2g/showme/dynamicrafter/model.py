"""``DynamiCrafter``: the whole image-to-video latent diffusion model, laid out like the release's checkpoint.

Attribute names equal the release's top-level prefixes, so ``model.ckpt`` loads with ``strict=True``:
``model.diffusion_model`` (3D UNet), ``first_stage_model`` (SD autoencoder), ``cond_stage_model`` (OpenCLIP text
tower), ``embedder`` (OpenCLIP image tower), ``image_proj_model`` (Resampler) and the 12 noise-schedule buffers
(plus ``scale_arr`` for the 512/1024 models). The methods are the conditioning steps of the release's
``image_guided_synthesis``, one per job, so a pipeline (or a training step) composes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from os import PathLike

import torch
from torch import nn

from .autoencoder import AutoencoderKL
from .config import DynamiCrafterConfig
from .ddim import (
    DDIMSampler,
    alphas_cumprod,
    dynamic_rescale_array,
    dynamic_rescale_values,
    linear_betas,
    schedule_buffers,
)
from .openclip import OpenCLIPImageEncoder, OpenCLIPTextEncoder
from .resampler import Resampler
from .unet import UNetModel

logger = logging.getLogger(__name__)


class DiffusionWrapper(nn.Module):
    """Holds the UNet under the release's name (``model.diffusion_model``) and joins the "hybrid" conditioning:
    the conditioning latents are concatenated to the noisy latents on the channel axis, the text and image tokens
    go to cross-attention."""

    def __init__(self, unet: UNetModel) -> None:
        super().__init__()
        self.diffusion_model = unet

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, concat: torch.Tensor, context: torch.Tensor, fs: torch.Tensor | None
    ) -> torch.Tensor:
        return self.diffusion_model(torch.cat([x, concat], dim=1), t, context=context, fs=fs)


class DynamiCrafter(nn.Module):
    def __init__(self, config: DynamiCrafterConfig) -> None:
        super().__init__()
        self.config = config
        self.model = DiffusionWrapper(UNetModel(**config.unet))
        self.first_stage_model = AutoencoderKL(**config.first_stage)
        self.cond_stage_model = OpenCLIPTextEncoder(**config.text_encoder)
        self.embedder = OpenCLIPImageEncoder(**config.image_encoder)
        self.image_proj_model = Resampler(**config.image_proj)
        betas = linear_betas(config.timesteps, config.linear_start, config.linear_end, config.rescale_betas_zero_snr)
        for name, value in schedule_buffers(betas, config.parameterization).items():
            self.register_buffer(name, value)
        if config.use_dynamic_rescale:
            self.register_buffer("scale_arr", dynamic_rescale_array(config.timesteps, config.base_scale))
        # The sampler's float64 schedule: plain attributes, so neither ``.to(dtype)`` nor loading touches them
        # (``torch.from_numpy`` stays on the CPU even under a meta-device context).
        self._alphas_cumprod64 = torch.from_numpy(alphas_cumprod(betas))
        self._scale_arr64 = (
            torch.from_numpy(dynamic_rescale_values(config.timesteps, config.base_scale))
            if config.use_dynamic_rescale else None
        )

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_checkpoint(
        cls, path: str | PathLike, config: DynamiCrafterConfig, device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
    ) -> DynamiCrafter:
        """Build on the meta device (no 2.6 B-value random init) and load the release checkpoint strictly."""
        with torch.device("meta"):
            model = cls(config)
        state = load_state_dict(path)
        model.load_state_dict(state, strict=True, assign=True)
        model.to(device)
        if dtype is not None:
            model.to(dtype)
        return model.eval()

    @property
    def unet(self) -> UNetModel:
        return self.model.diffusion_model

    @property
    def device(self) -> torch.device:
        return self.betas.device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def sampler(self) -> DDIMSampler:
        """DDIM over the float64 schedule computed from the config, never over the registered buffers, which a
        half-precision cast rounds (see :mod:`.ddim`). The buffers stay for strict loading of ``model.ckpt``."""
        return DDIMSampler(self._alphas_cumprod64, self.config.parameterization, self._scale_arr64)

    # ------------------------------------------------------------------ conditioning
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """(b, 77, d) penultimate-layer OpenCLIP tokens; the unconditional branch uses the empty prompt."""
        tokens = self.cond_stage_model.tokenize(prompts).to(self.device)
        return self.cond_stage_model(tokens).to(self.dtype)

    def encode_image_context(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (b, 3, H, W) -> Resampler tokens (b, 16 * video_length, d) for cross-attention."""
        tokens = self.embedder(images.to(self.device, self.embedder_dtype))
        return self.image_proj_model(tokens.to(self.dtype))

    @property
    def embedder_dtype(self) -> torch.dtype:
        return next(self.embedder.parameters()).dtype

    def encode_latents(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Frames in [-1, 1] (n, 3, H, W) -> scaled latents (n, 4, H/8, W/8), sampled from the posterior."""
        vae = self.first_stage_model
        posterior = vae.encode(images.to(self.device, next(vae.parameters()).dtype))
        return self.config.scale_factor * posterior.sample(generator=generator).to(self.dtype)

    def decode_latents(self, latents: torch.Tensor, chunk_size: int | None = None,
                       callback_on_decode: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Scaled latents (b, 4, t, h, w) -> frames in [-1, 1] (b, 3, t, H, W), ``chunk_size`` frames at a time;
        ``callback_on_decode(done, total)`` before each decoder call (:meth:`AutoencoderKL.decode_frames`)."""
        vae = self.first_stage_model
        if chunk_size is None and self.config.perframe_ae:
            chunk_size = 1
        z = (latents / self.config.scale_factor).to(next(vae.parameters()).dtype)
        return vae.decode_frames(z, chunk_size=chunk_size, callback_on_decode=callback_on_decode)

    def predict(
        self, noisy: torch.Tensor, timesteps: torch.Tensor, concat: torch.Tensor, context: torch.Tensor,
        fs: torch.Tensor | None,
    ) -> torch.Tensor:
        """The UNet's output (noise or v) for noisy latents (b, 4, t, h, w) with hybrid conditioning."""
        return self.model(noisy, timesteps, concat, context, fs)


def load_state_dict(path: str | PathLike) -> dict[str, torch.Tensor]:
    """The weights of a release checkpoint (``.ckpt``/``.pth`` Lightning file, or ``.safetensors``).

    Lightning checkpoints nest the weights under ``state_dict``. They are read with ``weights_only=True`` first;
    only if that refuses (old pickles with extra objects) is the full unpickler used, with a warning, since it can
    run code from the file.
    """
    path = str(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - any refusal of the safe loader
        logger.warning("%s holds more than tensors; loading it with the full unpickler (trust the file).", path)
        data = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(data, dict) and "state_dict" in data:
        data = data["state_dict"]
    return data
