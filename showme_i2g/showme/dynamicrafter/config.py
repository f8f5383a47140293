"""DynamiCrafter configurations: the release's 256 / 512 / 1024 models and the tiny twin used by tests.

Component dictionaries hold exactly the ``params`` of the release YAMLs (``configs/inference_*_v1.0.yaml``), so
``UNetModel(**config.unet)`` builds what the release builds and its ``model.ckpt`` loads strictly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

_SD_AUTOENCODER = {
    "embed_dim": 4,
    "ddconfig": {
        "double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
        "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0,
    },
}
_RESAMPLER = {
    "dim": 1024, "depth": 4, "dim_head": 64, "heads": 12, "num_queries": 16, "embedding_dim": 1280,
    "output_dim": 1024, "ff_mult": 4, "video_length": 16,
}


def _unet(**overrides) -> dict:
    params = {
        "in_channels": 8, "out_channels": 4, "model_channels": 320, "attention_resolutions": [4, 2, 1],
        "num_res_blocks": 2, "channel_mult": [1, 2, 4, 4], "dropout": 0.1, "num_head_channels": 64,
        "transformer_depth": 1, "context_dim": 1024, "use_linear": True, "use_checkpoint": True,
        "temporal_conv": True, "temporal_attention": True, "temporal_selfatt_only": True,
        "use_relative_position": False, "use_causal_attention": False, "temporal_length": 16,
        "addition_attention": True, "image_cross_attention": True, "default_fs": 3, "fs_condition": True,
    }
    params.update(overrides)
    return params


@dataclass(frozen=True)
class DynamiCrafterConfig:
    """Everything needed to build a DynamiCrafter model and sample from it with the release's defaults."""

    name: str
    unet: dict
    first_stage: dict = field(default_factory=lambda: dict(_SD_AUTOENCODER))
    text_encoder: dict = field(default_factory=lambda: {"layer": "penultimate"})
    image_encoder: dict = field(default_factory=dict)
    image_proj: dict = field(default_factory=lambda: dict(_RESAMPLER))
    height: int = 256  # pixels
    width: int = 256
    num_frames: int = 16
    linear_start: float = 0.00085
    linear_end: float = 0.012
    timesteps: int = 1000
    parameterization: str = "eps"
    rescale_betas_zero_snr: bool = False
    use_dynamic_rescale: bool = False
    base_scale: float = 0.7
    scale_factor: float = 0.18215
    perframe_ae: bool = False  # decode one frame at a time (the 512/1024 releases do, to bound memory)
    timestep_spacing: str = "uniform"
    guidance_rescale: float = 0.0

    @property
    def default_fs(self) -> int:
        return int(self.unet["default_fs"])

    @property
    def latent_downsampling(self) -> int:
        return 2 ** (len(self.first_stage["ddconfig"]["ch_mult"]) - 1)


DYNAMICRAFTER_256 = DynamiCrafterConfig(
    name="dynamicrafter-256",
    unet=_unet(image_cross_attention_scale_learnable=True, default_fs=3),
)
DYNAMICRAFTER_512 = DynamiCrafterConfig(
    name="dynamicrafter-512",
    unet=_unet(default_fs=24),
    height=320, width=512,
    parameterization="v", rescale_betas_zero_snr=True, use_dynamic_rescale=True, base_scale=0.7,
    perframe_ae=True, timestep_spacing="uniform_trailing", guidance_rescale=0.7,
)
DYNAMICRAFTER_1024 = replace(
    DYNAMICRAFTER_512, name="dynamicrafter-1024", unet=_unet(default_fs=10), height=576, width=1024, base_scale=0.3
)

# The same architecture at a few million parameters (most of them the 49,408-token CLIP vocabulary, kept so the
# real tokenizer works). GroupNorm uses 32 groups, so every channel count is a multiple of 32; the image tokens
# stay at 16 queries per frame and the text at 77 tokens, which the UNet relies on to split context per frame.
TINY = DynamiCrafterConfig(
    name="tiny",
    unet=_unet(
        model_channels=32, attention_resolutions=[2, 1], num_res_blocks=1, channel_mult=[1, 2],
        num_head_channels=16, context_dim=32, dropout=0.0, use_checkpoint=False,
        image_cross_attention_scale_learnable=True,
    ),
    first_stage={
        "embed_dim": 4,
        "ddconfig": {
            "double_z": True, "z_channels": 4, "resolution": 64, "in_channels": 3, "out_ch": 3, "ch": 32,
            "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0,
        },
    },
    text_encoder={"layer": "penultimate", "text_cfg": {"width": 32, "layers": 2, "heads": 4}, "embed_dim": 32},
    image_encoder={
        "vision_cfg": {"width": 32, "layers": 2, "heads": 4, "patch_size": 14, "image_size": 56},
        "text_cfg": {"width": 32, "layers": 2, "heads": 4},
        "embed_dim": 32,
    },
    image_proj={
        "dim": 32, "depth": 2, "dim_head": 8, "heads": 4, "num_queries": 16, "embedding_dim": 32,
        "output_dim": 32, "ff_mult": 2, "video_length": 16,
    },
    height=64, width=64,
)

CONFIGS = {c.name: c for c in (DYNAMICRAFTER_256, DYNAMICRAFTER_512, DYNAMICRAFTER_1024, TINY)}
