"""DynamiCrafter's 3D UNet: checkpoint layout of the release, shapes, temporal bypass, frame-stride and image scale.

``tests/data/dynamicrafter256_keys.json`` maps every key of DynamiCrafter-256's ``model.ckpt`` to its shape. It was
read off the public release's own model classes (``lvdm``) built from its ``configs/inference_256_v1.0.yaml`` with
random weights (names and shapes only, no weights); the UNet's tensors are those under ``model.diffusion_model.``.

All other tests use a tiny UNet (32 channels: every GroupNorm has 32 groups) whose weights are re-drawn at random,
because the release zero-initialises the last layer of every residual branch and of the output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from showme_i2g.showme.dynamicrafter.attention import TemporalTransformer
from showme_i2g.showme.dynamicrafter.unet import TemporalConvBlock, UNetModel

KEYS_FILE = Path(__file__).parent / "data" / "dynamicrafter256_keys.json"
PREFIX = "model.diffusion_model."

# unet_config.params of the release's configs/inference_256_v1.0.yaml
RELEASE_256_PARAMS = {
    "in_channels": 8,
    "out_channels": 4,
    "model_channels": 320,
    "attention_resolutions": [4, 2, 1],
    "num_res_blocks": 2,
    "channel_mult": [1, 2, 4, 4],
    "dropout": 0.1,
    "num_head_channels": 64,
    "transformer_depth": 1,
    "context_dim": 1024,
    "use_linear": True,
    "use_checkpoint": True,
    "temporal_conv": True,
    "temporal_attention": True,
    "temporal_selfatt_only": True,
    "use_relative_position": False,
    "use_causal_attention": False,
    "temporal_length": 16,
    "addition_attention": True,
    "image_cross_attention": True,
    "image_cross_attention_scale_learnable": True,
    "default_fs": 3,
    "fs_condition": True,
}

TINY_PARAMS = {
    **RELEASE_256_PARAMS,
    "model_channels": 32,
    "attention_resolutions": [2, 1],
    "num_res_blocks": 1,
    "channel_mult": [1, 2],
    "num_head_channels": 8,
    "context_dim": 32,
    "temporal_length": 4,
}
TEXT, PER_FRAME, DIM = 77, 16, 32


def tiny_unet(seed: int = 0, **overrides: object) -> UNetModel:
    """The tiny UNet in eval mode with every parameter drawn from N(0, 0.1^2) (``alpha`` included)."""
    torch.manual_seed(seed)
    unet = UNetModel(**{**TINY_PARAMS, **overrides}).eval()
    with torch.no_grad():
        for parameter in unet.parameters():
            parameter.normal_(0.0, 0.1)
    return unet


def inputs(frames: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Latents (2, 8, t, 8, 8), timesteps, per-frame context (2, 77 + 16 t, 32) and frame strides."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 8, frames, 8, 8, generator=generator)
    context = torch.randn(2, TEXT + PER_FRAME * frames, DIM, generator=generator)
    return x, torch.tensor([10, 500]), context, torch.tensor([3, 7])


def run(unet: UNetModel, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, fs: torch.Tensor | None):
    with torch.no_grad():
        return unet(x, t, context=context, fs=fs)


def frames_changed(a: torch.Tensor, b: torch.Tensor) -> list[bool]:
    """Per frame: does the output differ (beyond float noise) between two (b, c, t, h, w) outputs?"""
    return [not torch.allclose(a[:, :, i], b[:, :, i], atol=1e-5, rtol=0) for i in range(a.shape[2])]


def test_state_dict_matches_release_256_checkpoint_layout() -> None:
    reference = json.loads(KEYS_FILE.read_text())
    expected = {key[len(PREFIX) :]: shape for key, shape in reference.items() if key.startswith(PREFIX)}
    assert len(expected) == 1532

    with torch.device("meta"):
        unet = UNetModel(**RELEASE_256_PARAMS)
    assert {key: list(value.shape) for key, value in unet.state_dict().items()} == expected

    with torch.device("meta"):
        weights = {key: torch.empty(shape) for key, shape in expected.items()}
    unet.load_state_dict(weights, strict=True, assign=True)


@pytest.mark.parametrize("frames", [1, 4])
def test_forward_shape(frames: int) -> None:
    unet = tiny_unet()
    x, t, context, fs = inputs(frames)
    out = run(unet, x, t, context, fs)
    assert out.shape == (2, 4, frames, 8, 8)
    assert torch.isfinite(out).all()


def test_bypass_covers_every_temporal_module_and_keeps_the_state_dict() -> None:
    unet = tiny_unet()
    keys = list(unet.state_dict())
    temporal_types = (TemporalTransformer, TemporalConvBlock)
    names = {name for name, module in unet.named_modules() if isinstance(module, temporal_types)}
    assert "init_attn.0" in names
    assert "input_blocks.1.0.temopral_conv" in names and "middle_block.0.temopral_conv" in names
    assert len(names) == 16  # 8 ResBlocks with a temporal conv, 7 temporal transformers after spatial ones + init_attn
    assert {name for name, module in unet.named_modules() if module in set(unet.temporal_modules())} == names

    unet.set_temporal_bypass(True)
    assert all(module.bypass for module in unet.temporal_modules())
    assert list(unet.state_dict()) == keys
    features = torch.randn(1, 32, 4, 2, 2)
    assert unet.init_attn[0](features) is features
    assert unet.input_blocks[1][0].temopral_conv(features) is features
    unet.set_temporal_bypass(False)
    assert not torch.equal(unet.init_attn[0](features), features)
    assert not torch.equal(unet.input_blocks[1][0].temopral_conv(features), features)


def test_bypassed_frames_are_independent() -> None:
    unet = tiny_unet()
    unet.set_temporal_bypass(True)
    x, t, context, fs = inputs(4)
    base = run(unet, x, t, context, fs)
    perturbed = x.clone()
    perturbed[:, :, 2] += torch.randn_like(perturbed[:, :, 2])
    assert frames_changed(base, run(unet, perturbed, t, context, fs)) == [False, False, True, False]


def test_bypassed_single_frame_equals_frame_zero_of_a_video() -> None:
    """With per-frame image tokens (77 text, then 16 per frame), frame 0 sees text + image tokens 0..15."""
    unet = tiny_unet()
    unet.set_temporal_bypass(True)
    x, t, context, fs = inputs(4)
    video = run(unet, x, t, context, fs)
    single = run(unet, x[:, :, :1], t, context[:, : TEXT + PER_FRAME], fs)
    torch.testing.assert_close(single[:, :, 0], video[:, :, 0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("active", ["all", "init_attn", "temporal_conv", "temporal_transformer"])
def test_temporal_layers_mix_frames(active: str) -> None:
    unet = tiny_unet()
    if active != "all":
        unet.set_temporal_bypass(True)
        for name, module in unet.named_modules():
            kind = (
                "init_attn"
                if name.startswith("init_attn.")
                else "temporal_conv"
                if isinstance(module, TemporalConvBlock)
                else "temporal_transformer"
            )
            if hasattr(module, "bypass") and kind == active:
                module.bypass = False
    x, t, context, fs = inputs(4)
    base = run(unet, x, t, context, fs)
    perturbed = x.clone()
    perturbed[:, :, 2] += torch.randn_like(perturbed[:, :, 2])
    assert all(frames_changed(base, run(unet, perturbed, t, context, fs)))


def test_each_frame_sees_its_own_image_tokens() -> None:
    unet = tiny_unet()
    unet.set_temporal_bypass(True)
    x, t, context, fs = inputs(4)
    base = run(unet, x, t, context, fs)
    changed = context.clone()
    changed[:, TEXT + PER_FRAME : TEXT + 2 * PER_FRAME] += 1.0  # frame 1's image tokens
    assert frames_changed(base, run(unet, x, t, changed, fs)) == [False, True, False, False]

    shared = context[:, : TEXT + 20]  # not 16 per frame: every frame sees all 20 image tokens
    frame_context = unet.frame_context(shared, 4)
    assert frame_context.shape == (8, TEXT + 20, DIM)
    assert torch.equal(frame_context[5], shared[1])


def test_frame_stride_conditions_the_output() -> None:
    unet = tiny_unet()
    x, t, context, _ = inputs(4)
    out_3 = run(unet, x, t, context, torch.tensor([3, 3]))
    assert not torch.allclose(out_3, run(unet, x, t, context, torch.tensor([7, 7])))
    torch.testing.assert_close(run(unet, x, t, context, None), out_3)  # default_fs = 3
    assert "fps_embedding.0.weight" in dict(unet.named_parameters())


def test_learnable_image_cross_attention_scale() -> None:
    unet = tiny_unet()
    parameters = dict(unet.named_parameters())
    alphas = [name for name in parameters if name.endswith(".alpha")]
    assert "input_blocks.1.1.transformer_blocks.0.attn2.alpha" in alphas
    assert "middle_block.1.transformer_blocks.0.attn2.alpha" in alphas
    assert all(".attn2." in name and parameters[name].shape == () for name in alphas)
    assert len(alphas) == 7  # one per spatial transformer
    assert "alpha" not in " ".join(dict(tiny_unet(image_cross_attention_scale_learnable=False).named_parameters()))

    # the image branch is weighted by 1 + tanh(alpha): alpha -> -inf switches the image tokens off
    x, t, context, fs = inputs(4)
    other_images = context.clone()
    other_images[:, TEXT:] = torch.randn_like(other_images[:, TEXT:])
    assert not torch.allclose(run(unet, x, t, context, fs), run(unet, x, t, other_images, fs))
    with torch.no_grad():
        for name in alphas:
            parameters[name].fill_(-30.0)
    torch.testing.assert_close(run(unet, x, t, context, fs), run(unet, x, t, other_images, fs))


def test_temporal_attention_in_batch_chunks_matches_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Huge (batch * pixels) temporal batches are cut into chunks for the fused CUDA kernels; same result."""
    from showme_i2g.showme.dynamicrafter import attention

    torch.manual_seed(0)
    layer = TemporalTransformer(32, 4, 8, use_linear=True, causal_attention=True, temporal_length=4).eval()
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.normal_(0.0, 0.1)
        features = torch.randn(2, 32, 4, 3, 3)
        whole = layer(features)
        monkeypatch.setattr(attention, "_MAX_SDPA_BATCH", 5)
        torch.testing.assert_close(layer(features), whole)
