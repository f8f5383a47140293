"""The tiny SDXL: every component of the real architecture, built in code with random weights and a fixed seed.

Why: real SDXL weights cannot be downloaded here (and are 7 GB), yet every code path (two text encoders of the
SDXL kinds, the ``text_time`` add-embedding, the VAE's 8x downsampling, the real Euler scheduler, the shipped CLIP
BPE tokenizers) must run in tests and CI. The shapes mirror SDXL at a few percent of a percent of its size:
``cross_attention_dim`` = width(ViT-L) + width(bigG), add-embedding input = 6 time ids x ``addition_time_embed_dim``
+ the bigG projection width. Outputs are noise-like images: this preset proves plumbing, not quality.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from ..text.tokenizers import CLIP_CONTEXT_LENGTH, CLIP_VOCAB_SIZE, load_clip_tokenizer

TINY_SEED = 0
_TEXT_WIDTH = 32  # hidden width of each tiny text encoder (SDXL: 768 for ViT-L, 1280 for bigG)
_TIME_ID_DIM = 8  # SDXL: 256


def _text_config(projection_dim: int | None = None) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        max_position_embeddings=CLIP_CONTEXT_LENGTH,
        hidden_size=_TEXT_WIDTH,
        intermediate_size=64,
        num_hidden_layers=3,  # SDXL reads the penultimate layer, so at least two layers are needed
        num_attention_heads=4,
        hidden_act="gelu",
        projection_dim=projection_dim or _TEXT_WIDTH,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=1,
    )


def build_tiny_sdxl_components(seed: int = TINY_SEED) -> dict:
    """All seven SDXL pipeline components, deterministic for a given ``seed``."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=16,  # latent side; x8 VAE -> 128 px images by default
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        transformer_layers_per_block=(1, 2),
        attention_head_dim=(2, 4),
        cross_attention_dim=2 * _TEXT_WIDTH,
        norm_num_groups=8,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=_TIME_ID_DIM,
        projection_class_embeddings_input_dim=6 * _TIME_ID_DIM + _TEXT_WIDTH,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=128,
        scaling_factor=0.13025,  # SDXL's
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(_text_config())
    torch.manual_seed(seed + 3)
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(projection_dim=_TEXT_WIDTH))
    scheduler = EulerDiscreteScheduler(  # SDXL base 1.0's scheduler config
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type="epsilon",
        interpolation_type="linear",
        use_karras_sigmas=False,
    )
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "text_encoder_2": text_encoder_2.eval(),
        "tokenizer": load_clip_tokenizer(pad_token="<|endoftext|>"),
        "tokenizer_2": load_clip_tokenizer(pad_token="!"),
        "scheduler": scheduler,
    }
