"""The papers' baseline models as plain diffusers pipelines: real weights by hub id, or tiny twins built in code.

I2G's Table 1 compares against SDXL, SD 1.5 and SD-Turbo rendering each step on its own; ShowMe's image table
compares against InstructPix2Pix. These are diffusers' own pipelines (``StableDiffusionXLPipeline``,
``StableDiffusionPipeline``, ``StableDiffusionInstructPix2PixPipeline``) loaded with ``from_pretrained``, so the
comparison runs the models exactly as their authors publish them. The tiny twins reuse the tiny SDXL's VAE, text
encoder and shipped CLIP tokenizer (:mod:`showme_i2g.i2g.tiny`) and add a UNet of the baseline's kind (SD 1.5:
conv projections; SD 2.1: linear projections; InstructPix2Pix: 8 input channels for the photo's latent) and the
real model's scheduler class, so tests run the same pipeline code without any download.
"""

from __future__ import annotations

from os import PathLike

import torch
from diffusers import (
    DiffusionPipeline,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionInstructPix2PixPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)

from .devices import best_device
from .dtypes import resolve_dtype
from .presets import BaselinePreset, get_baseline_preset
from .weights import freeze, load_preset_weights

__all__ = ["PIPELINES", "build_tiny_baseline", "load_baseline"]

PIPELINES: dict[str, type[DiffusionPipeline]] = {
    cls.__name__: cls
    for cls in (StableDiffusionPipeline, StableDiffusionXLPipeline, StableDiffusionInstructPix2PixPipeline)
}

_SD_SCHEDULE = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}


def _scheduler(architecture: str):
    """The scheduler class and settings each real model ships in its ``scheduler_config.json``."""
    if architecture == "sd15":
        return PNDMScheduler(**_SD_SCHEDULE, skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)
    if architecture == "sd21":  # sd-turbo
        return EulerDiscreteScheduler(**_SD_SCHEDULE, timestep_spacing="trailing", steps_offset=1)
    if architecture == "instructpix2pix":
        return EulerAncestralDiscreteScheduler(**_SD_SCHEDULE, steps_offset=1)
    raise ValueError(f"no tiny scheduler for architecture {architecture!r}")


def _tiny_sd_unet(architecture: str, cross_attention_dim: int, seed: int) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=8 if architecture == "instructpix2pix" else 4,  # noisy latent + the photo's latent
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        attention_head_dim=(2, 4) if architecture == "sd21" else 4,
        cross_attention_dim=cross_attention_dim,
        norm_num_groups=8,
        use_linear_projection=architecture == "sd21",
    )
    return unet.eval()


def build_tiny_baseline(preset: BaselinePreset, seed: int = 0) -> DiffusionPipeline:
    """The preset's pipeline class around tiny random components (deterministic for a given ``seed``)."""
    from .i2g.tiny import build_tiny_sdxl_components

    components = build_tiny_sdxl_components(seed)
    if preset.architecture == "sdxl":
        return StableDiffusionXLPipeline(**components)
    vae = components["vae"]
    vae.register_to_config(scaling_factor=0.18215)  # SD 1.x/2.x's latent scale (SDXL's is 0.13025)
    text_encoder = components["text_encoder"]
    unet = _tiny_sd_unet(preset.architecture, text_encoder.config.hidden_size, seed + 10)
    cls = PIPELINES[preset.pipeline]
    return cls(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=components["tokenizer"],
        unet=unet,
        scheduler=_scheduler(preset.architecture),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def load_baseline(
    name: str,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    weights: str | PathLike | None = None,
    torch_dtype: torch.dtype | None = None,
) -> DiffusionPipeline:
    """Load baseline preset ``name`` (see :data:`~showme_i2g.presets.BASELINE_PRESETS`) onto ``device`` (default:
    the best available, as for the papers' pipelines).

    Real presets load ``base`` (or the local folder ``weights``) with ``from_pretrained``: fp16 weights on a GPU,
    float32 on the CPU. The SD 1.5 / InstructPix2Pix safety checker is left out, as evaluation code does: it
    replaces flagged images by black ones, which would bias every metric.

    ``dtype`` is diffusers' name; the older ``torch_dtype`` is still accepted, with a FutureWarning.

    :raises WeightsNotFoundError: when the weights are neither local nor downloadable, in one sentence.
    """
    dtype = resolve_dtype(dtype, torch_dtype)
    preset = get_baseline_preset(name)
    device = best_device(device)
    if preset.base is None:
        pipe = build_tiny_baseline(preset)
    else:
        on_gpu = device.type == "cuda"
        dtype = dtype or (torch.float16 if on_gpu else torch.float32)
        extra = {} if preset.architecture == "sdxl" else {"safety_checker": None, "requires_safety_checker": False}
        pipe = load_preset_weights(PIPELINES[preset.pipeline].from_pretrained, preset, weights, on_gpu=on_gpu,
                                   dtype=dtype, **extra)
    pipe.preset = preset
    pipe.set_progress_bar_config(disable=True)
    return freeze(pipe).to(device)
