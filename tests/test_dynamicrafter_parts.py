"""DynamiCrafter's condition encoders, resampler and autoencoder: checkpoint layout, shapes and numerics.

The layout tests build the real 256-config modules on the meta device and compare them with
``tests/data/dynamicrafter256_keys.json`` (every key and shape of the release's ``model.ckpt``). The numeric tests
use tiny configs and check against independent implementations: transformers' CLIP towers and diffusers'
``AutoencoderKL`` (weights converted), diffusers' copy of kornia's antialiased resize, and the release's formulas.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from showme_i2g.showme.dynamicrafter.autoencoder import AttnBlock, AutoencoderKL, DiagonalGaussianDistribution
from showme_i2g.showme.dynamicrafter.openclip import (
    OPENCLIP_MEAN,
    OPENCLIP_STD,
    OpenCLIPImageEncoder,
    OpenCLIPTextEncoder,
    clip_preprocess,
    resize_bicubic,
    tokenize,
)
from showme_i2g.showme.dynamicrafter.resampler import Resampler

REFERENCE_KEYS = Path(__file__).parent / "data" / "dynamicrafter256_keys.json"

# The release's configs/inference_256_v1.0.yaml (identical for 512 and 1024).
AE_256 = {
    "embed_dim": 4,
    "monitor": "val/rec_loss",
    "ddconfig": {
        "double_z": True,
        "z_channels": 4,
        "resolution": 256,
        "in_channels": 3,
        "out_ch": 3,
        "ch": 128,
        "ch_mult": [1, 2, 4, 4],
        "num_res_blocks": 2,
        "attn_resolutions": [],
        "dropout": 0.0,
    },
    "lossconfig": {"target": "torch.nn.Identity"},
}
TEXT_256 = {"freeze": True, "layer": "penultimate"}
IMAGE_256 = {"freeze": True}
RESAMPLER_256 = {
    "dim": 1024,
    "depth": 4,
    "dim_head": 64,
    "heads": 12,
    "num_queries": 16,
    "embedding_dim": 1280,
    "output_dim": 1024,
    "ff_mult": 4,
    "video_length": 16,
}

# Tiny configs (the shapes a tiny preset can use).
TINY_TEXT_CFG = {"width": 32, "layers": 2, "heads": 4}
TINY_VISION_CFG = {"width": 32, "layers": 2, "heads": 4, "patch_size": 14, "image_size": 224}
TINY_AE_DDCONFIG = {**AE_256["ddconfig"], "ch": 32, "num_res_blocks": 1, "resolution": 64}
TINY_RESAMPLER = {
    "dim": 32,
    "depth": 2,
    "dim_head": 8,
    "heads": 4,
    "num_queries": 16,
    "embedding_dim": 32,
    "output_dim": 48,
    "ff_mult": 2,
    "video_length": 3,
}

PARTS = {
    "cond_stage_model.": lambda: OpenCLIPTextEncoder(**TEXT_256),
    "embedder.": lambda: OpenCLIPImageEncoder(**IMAGE_256),
    "image_proj_model.": lambda: Resampler(**RESAMPLER_256),
    "first_stage_model.": lambda: AutoencoderKL(**AE_256),
}


@pytest.fixture(scope="module")
def reference_keys() -> dict[str, list[int]]:
    return json.loads(REFERENCE_KEYS.read_text())


def _randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter non-trivial values (LayerNorm/GroupNorm affine and biases included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.2 if p.dim() < 2 else 1 / math.sqrt(p[0].numel())))
            if p.dim() == 1 and p.shape[0] > 0:
                p.add_(1.0 if torch.rand((), generator=gen) < 0.5 else 0.0)
    return module.eval()


# --------------------------------------------------------------------------------------------------------------------
# Checkpoint layout (256 config, meta device)
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", list(PARTS))
def test_layout_matches_release_checkpoint(prefix: str, reference_keys: dict[str, list[int]]) -> None:
    with torch.device("meta"):
        module = PARTS[prefix]()
    expected = {k[len(prefix) :]: shape for k, shape in reference_keys.items() if k.startswith(prefix)}
    assert {k: list(v.shape) for k, v in module.state_dict().items()} == expected
    assert not list(module.buffers()), "buffers would stay on the meta device after an assign-load"

    checkpoint = {k: torch.empty(shape, device="meta") for k, shape in expected.items()}
    module.load_state_dict(checkpoint, strict=True, assign=True)


def test_reference_counts(reference_keys: dict[str, list[int]]) -> None:
    counts = {p: sum(k.startswith(p) for k in reference_keys) for p in PARTS}
    assert counts == {"cond_stage_model.": 294, "embedder.": 398, "image_proj_model.": 51, "first_stage_model.": 248}


# --------------------------------------------------------------------------------------------------------------------
# Text encoder
# --------------------------------------------------------------------------------------------------------------------


def test_tokenize_matches_open_clip_layout() -> None:
    tokens = tokenize(["a photo of a cat", "  A  PHOTO of a &amp;amp; cat "])
    assert tokens.dtype == torch.long and tokens.shape == (2, 77)
    assert tokens[0, :7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert not tokens[0, 7:].any()
    assert tokens[1, :3].tolist() == [49406, 320, 1125]
    assert tokens[1, 4:6].tolist() == [320, 261]  # "&amp;amp;" unescaped twice to "&"

    assert tokenize("")[0, :3].tolist() == [49406, 49407, 0]  # the release's unconditional prompt

    long = tokenize("cat " * 200)[0]
    assert long.tolist() == [49406] + [2368] * 75 + [49407]


@pytest.fixture(scope="module")
def tiny_text() -> OpenCLIPTextEncoder:
    torch.manual_seed(0)
    return _randomise(OpenCLIPTextEncoder(layer="penultimate", text_cfg=TINY_TEXT_CFG, embed_dim=32))


def test_text_encoder_shapes_and_layers(tiny_text: OpenCLIPTextEncoder) -> None:
    out = tiny_text.encode(["a photo of a cat", "a dog"])
    assert out.shape == (2, 77, 32)
    assert torch.equal(out, tiny_text(tiny_text.tokenize(["a photo of a cat", "a dog"])))
    last = OpenCLIPTextEncoder(layer="last", text_cfg=TINY_TEXT_CFG, embed_dim=32)
    last.load_state_dict(tiny_text.state_dict())
    assert not torch.allclose(last.encode("a dog"), out[1:])


def test_text_encoder_is_causal(tiny_text: OpenCLIPTextEncoder) -> None:
    tokens = tokenize("a photo of a cat")
    changed = tokens.clone()
    changed[0, 4] = 1929  # a different word at position 4
    a, b = tiny_text(tokens), tiny_text(changed)
    assert torch.allclose(a[0, :4], b[0, :4], atol=1e-6)
    assert (a[0, 4:] - b[0, 4:]).abs().amax(dim=-1).min() > 1e-4


def test_text_encoder_matches_transformers_clip(tiny_text: OpenCLIPTextEncoder) -> None:
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = CLIPTextConfig(
        vocab_size=49408, hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=32,
    )  # fmt: skip
    hf = CLIPTextModel(cfg).eval()
    m = tiny_text.model
    sd = {
        "embeddings.token_embedding.weight": m.token_embedding.weight,
        "embeddings.position_embedding.weight": m.positional_embedding,
        "final_layer_norm.weight": m.ln_final.weight,
        "final_layer_norm.bias": m.ln_final.bias,
    }
    for i, block in enumerate(m.transformer.resblocks):
        sd.update(_hf_layer(f"encoder.layers.{i}.", block))
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing)

    tokens = tokenize(["a photo of a cat", "a dog"])
    with torch.no_grad():
        hidden = hf(input_ids=tokens, output_hidden_states=True).hidden_states[-2]
        expected = hf.final_layer_norm(hidden)
        assert torch.allclose(tiny_text(tokens), expected, atol=1e-5)


def _hf_layer(prefix: str, block: nn.Module) -> dict[str, torch.Tensor]:
    """One open_clip residual block as a transformers CLIPEncoderLayer state dict."""
    sd = {}
    for name, w, b in zip(
        ("q_proj", "k_proj", "v_proj"),
        block.attn.in_proj_weight.chunk(3),
        block.attn.in_proj_bias.chunk(3),
        strict=True,
    ):
        sd[f"{prefix}self_attn.{name}.weight"], sd[f"{prefix}self_attn.{name}.bias"] = w, b
    pairs = {
        "self_attn.out_proj": block.attn.out_proj,
        "layer_norm1": block.ln_1,
        "layer_norm2": block.ln_2,
        "mlp.fc1": block.mlp.c_fc,
        "mlp.fc2": block.mlp.c_proj,
    }
    for name, mod in pairs.items():
        sd[f"{prefix}{name}.weight"], sd[f"{prefix}{name}.bias"] = mod.weight, mod.bias
    return sd


def test_text_encoder_constructor_checks() -> None:
    with pytest.raises(ValueError):
        OpenCLIPTextEncoder(layer="pooled", text_cfg=TINY_TEXT_CFG)
    with pytest.raises(ValueError):
        OpenCLIPTextEncoder(arch="ViT-L-14", text_cfg=TINY_TEXT_CFG)
    enc = OpenCLIPTextEncoder(text_cfg=TINY_TEXT_CFG, embed_dim=32)
    enc.train()
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())
    thawed = OpenCLIPTextEncoder(freeze=False, text_cfg=TINY_TEXT_CFG, embed_dim=32)
    assert thawed.train().training and all(p.requires_grad for p in thawed.parameters())


# --------------------------------------------------------------------------------------------------------------------
# Image encoder
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(224, 224), (300, 500), (64, 48), (100, 400)])
def test_preprocess_constant_image(size: tuple[int, int]) -> None:
    values = torch.tensor([-0.5, 0.25, 1.0]).view(1, 3, 1, 1)
    image = values.expand(2, 3, *size).contiguous()
    out = clip_preprocess(image)
    assert out.shape == (2, 3, 224, 224)
    mean, std = torch.tensor(OPENCLIP_MEAN), torch.tensor(OPENCLIP_STD)
    expected = ((values.flatten() + 1) / 2 - mean) / std
    assert torch.allclose(out, expected.view(1, 3, 1, 1).expand_as(out), atol=1e-5)


@pytest.mark.parametrize("size", [(300, 500), (100, 400), (256, 256)])
def test_resize_matches_kornia(size: tuple[int, int]) -> None:
    # diffusers ships a copy of kornia's antialiased resize (for SVD's CLIP preprocessing); kornia itself is absent.
    from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing

    image = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    expected = _resize_with_antialiasing(image, (224, 224))
    assert torch.allclose(resize_bicubic(image, (224, 224)), expected, atol=1e-5)
    already = torch.rand(1, 3, 224, 224)
    assert resize_bicubic(already, (224, 224)) is already  # kornia returns an image of the right size untouched


@pytest.fixture(scope="module")
def tiny_image() -> OpenCLIPImageEncoder:
    torch.manual_seed(0)
    enc = OpenCLIPImageEncoder(vision_cfg=TINY_VISION_CFG, text_cfg=TINY_TEXT_CFG, embed_dim=32)
    return _randomise(enc)


def test_image_encoder_shapes(tiny_image: OpenCLIPImageEncoder) -> None:
    image = torch.rand(2, 3, 96, 80) * 2 - 1
    assert tiny_image(image).shape == (2, 257, 32)
    assert tiny_image.model.transformer is None and tiny_image.model.visual is not None
    small = OpenCLIPImageEncoder(vision_cfg={**TINY_VISION_CFG, "image_size": 56}, text_cfg=TINY_TEXT_CFG)
    assert small(image).shape == (2, 17, 32)


def test_image_encoder_matches_transformers_clip(tiny_image: OpenCLIPImageEncoder) -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    cfg = CLIPVisionConfig(
        hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, image_size=224,
        patch_size=14, hidden_act="gelu", layer_norm_eps=1e-5,
    )  # fmt: skip
    hf = CLIPVisionModel(cfg).eval()
    v = tiny_image.model.visual
    sd = {
        "embeddings.class_embedding": v.class_embedding,
        "embeddings.patch_embedding.weight": v.conv1.weight,
        "embeddings.position_embedding.weight": v.positional_embedding,
        "pre_layrnorm.weight": v.ln_pre.weight,
        "pre_layrnorm.bias": v.ln_pre.bias,
        "post_layernorm.weight": v.ln_post.weight,
        "post_layernorm.bias": v.ln_post.bias,
    }
    for i, block in enumerate(v.transformer.resblocks):
        sd.update(_hf_layer(f"encoder.layers.{i}.", block))
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing)

    image = torch.rand(2, 3, 240, 260, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        out = hf(pixel_values=tiny_image.preprocess(image))
        assert torch.allclose(tiny_image(image), out.last_hidden_state, atol=1e-5)  # before ln_post
        pooled = v(tiny_image.preprocess(image))
        assert torch.allclose(pooled, out.pooler_output @ v.proj, atol=1e-5)


# --------------------------------------------------------------------------------------------------------------------
# Resampler
# --------------------------------------------------------------------------------------------------------------------


def _release_resampler(r: Resampler, x: torch.Tensor) -> torch.Tensor:
    """The release's arithmetic, written out: attention weights softmax((q d^-1/4)(k d^-1/4)^T)."""
    latents = r.latents.repeat(x.shape[0], 1, 1)
    x = r.proj_in(x)
    for attn, ff in r.layers:
        xn, ln = attn.norm1(x), attn.norm2(latents)
        b, m, _ = ln.shape
        q = attn.to_q(ln).view(b, m, attn.heads, -1).transpose(1, 2)
        k, v = attn.to_kv(torch.cat([xn, ln], dim=1)).chunk(2, dim=-1)
        k = k.view(b, k.shape[1], attn.heads, -1).transpose(1, 2)
        v = v.view(b, v.shape[1], attn.heads, -1).transpose(1, 2)
        scale = attn.dim_head**-0.25
        weight = torch.softmax((q * scale) @ (k * scale).transpose(-2, -1), dim=-1)
        latents = attn.to_out((weight @ v).transpose(1, 2).reshape(b, m, -1)) + latents
        latents = ff(latents) + latents
    return r.norm_out(r.proj_out(latents))


def test_resampler_shapes_and_numerics() -> None:
    torch.manual_seed(0)
    r = _randomise(Resampler(**TINY_RESAMPLER))
    x = torch.randn(2, 257, 32)
    with torch.no_grad():
        out = r(x)
        assert out.shape == (2, 16 * 3, 48)  # (b, num_queries * video_length, output_dim), frame-major
        assert torch.allclose(out, _release_resampler(r, x), atol=1e-5)
    single = Resampler(**{**TINY_RESAMPLER, "video_length": None})
    assert single(x).shape == (2, 16, 48)


# --------------------------------------------------------------------------------------------------------------------
# Autoencoder
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_ae() -> AutoencoderKL:
    torch.manual_seed(0)
    ae = AutoencoderKL(ddconfig=TINY_AE_DDCONFIG, lossconfig={"target": "torch.nn.Identity"}, embed_dim=4, monitor="x")
    return _randomise(ae)


def test_autoencoder_round_trip_shapes(tiny_ae: AutoencoderKL) -> None:
    x = torch.rand(2, 3, 48, 32) * 2 - 1
    with torch.no_grad():
        posterior = tiny_ae.encode(x)
        assert isinstance(posterior, DiagonalGaussianDistribution)
        assert posterior.mode().shape == (2, 4, 6, 4)
        z = posterior.sample(generator=torch.Generator().manual_seed(0))
        assert z.shape == (2, 4, 6, 4) and not torch.equal(z, posterior.mode())
        assert tiny_ae.decode(z).shape == (2, 3, 48, 32)
        assert posterior.kl().shape == (2,)


def test_decode_frames_chunks_match(tiny_ae: AutoencoderKL) -> None:
    z = torch.randn(5, 4, 4, 3)
    with torch.no_grad():
        whole = tiny_ae.decode(z)
        for chunk in (1, 2, None):
            assert torch.allclose(tiny_ae.decode_frames(z, chunk_size=chunk), whole, atol=1e-5)
        video = z.view(1, 5, 4, 4, 3).transpose(1, 2)  # (b, c, t, h, w)
        frames = tiny_ae.decode_frames(video, chunk_size=2)
        assert frames.shape == (1, 3, 5, 32, 24)
        assert torch.allclose(frames.transpose(1, 2)[0], whole, atol=1e-5)
    with pytest.raises(ValueError):
        tiny_ae.decode_frames(z, chunk_size=0)


def test_autoencoder_matches_diffusers(tiny_ae: AutoencoderKL) -> None:
    from diffusers import AutoencoderKL as DiffusersAutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    config = {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [32, 64, 128, 128],
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 32,
        "sample_size": 64,
    }
    reference = DiffusersAutoencoderKL(**config).eval()
    ldm = {f"first_stage_model.{k}": v for k, v in tiny_ae.state_dict().items()}
    reference.load_state_dict(convert_ldm_vae_checkpoint(ldm, config), strict=True)
    x = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        mean = tiny_ae.encode(x).mode()
        assert torch.allclose(mean, reference.encode(x).latent_dist.mode(), atol=1e-4)
        assert torch.allclose(tiny_ae.decode(mean), reference.decode(mean).sample, atol=1e-4)


def test_attention_block_matches_release_formula() -> None:
    torch.manual_seed(0)
    block = _randomise(AttnBlock(32))
    x = torch.randn(2, 32, 5, 4)
    with torch.no_grad():
        h = block.norm(x)
        q, k, v = (p(h).flatten(2) for p in (block.q, block.k, block.v))  # (b, c, hw)
        w = torch.softmax(q.transpose(1, 2) @ k * 32**-0.5, dim=2)  # (b, hw_q, hw_k)
        expected = x + block.proj_out((v @ w.transpose(1, 2)).view_as(x))
        assert torch.allclose(block(x), expected, atol=1e-5)


def test_autoencoder_refuses_ckpt_path() -> None:
    with pytest.raises(ValueError):
        AutoencoderKL(ddconfig=TINY_AE_DDCONFIG, embed_dim=4, ckpt_path="model.ckpt")
