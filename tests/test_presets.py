"""Presets: the tiny one is the SDXL architecture built in code; real ones fail clearly without their weights."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from showme_i2g.errors import InvalidInputError, WeightsNotFoundError
from showme_i2g.i2g.pipeline import IllustrationPipeline
from showme_i2g.i2g.tiny import build_tiny_sdxl_components
from showme_i2g.presets import ILLUSTRATION_PRESETS, get_illustration_preset


def test_tiny_has_the_sdxl_architecture(tiny_components):
    c = tiny_components
    assert isinstance(c["unet"], UNet2DConditionModel) and c["unet"].config.addition_embed_type == "text_time"
    assert type(c["text_encoder"]) is CLIPTextModel
    assert type(c["text_encoder_2"]) is CLIPTextModelWithProjection
    assert isinstance(c["vae"], AutoencoderKL) and 2 ** (len(c["vae"].config.block_out_channels) - 1) == 8
    assert isinstance(c["scheduler"], EulerDiscreteScheduler)
    width = c["text_encoder"].config.hidden_size + c["text_encoder_2"].config.hidden_size
    assert c["unet"].config.cross_attention_dim == width
    assert len(c["tokenizer"]) == len(c["tokenizer_2"]) == 49408
    assert c["tokenizer"].pad_token == "<|endoftext|>" and c["tokenizer_2"].pad_token == "!"
    total = sum(p.numel() for k in ("unet", "vae", "text_encoder", "text_encoder_2") for p in c[k].parameters())
    assert total < 6_000_000


def test_tiny_is_deterministic(tiny_components):
    again = build_tiny_sdxl_components()
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        for (k, a), (_, b) in zip(tiny_components[name].state_dict().items(), again[name].state_dict().items()):
            assert torch.equal(a, b), f"{name}.{k} differs between two builds"


def test_real_presets_name_public_weights():
    assert get_illustration_preset("sdxl").base == "stabilityai/stable-diffusion-xl-base-1.0"
    lightning = get_illustration_preset("sdxl-lightning")
    assert lightning.lora == ("ByteDance/SDXL-Lightning", "sdxl_lightning_4step_lora.safetensors")
    assert lightning.guidance_scale == 0 and lightning.num_inference_steps == 4
    assert set(ILLUSTRATION_PRESETS) >= {"sdxl", "sdxl-lightning", "tiny"}


def test_unknown_preset_is_one_sentence():
    with pytest.raises(InvalidInputError, match=r"^Unknown preset 'sdxl-turbo'; choose one of: .*tiny\.$"):
        get_illustration_preset("sdxl-turbo")


def test_missing_sdxl_weights_name_preset_files_and_remedy():
    with pytest.raises(WeightsNotFoundError) as info:
        IllustrationPipeline.from_preset("sdxl", device="cpu")
    message = str(info.value)
    assert "'sdxl' preset" in message and "stabilityai/stable-diffusion-xl-base-1.0" in message
    assert "unet/" in message and "text_encoder_2/" in message and "hf download" in message
    assert "\n" not in message


def test_missing_weights_in_local_folder(tmp_path):
    with pytest.raises(WeightsNotFoundError, match=f"'sdxl-lightning' preset.*the folder {tmp_path}"):
        IllustrationPipeline.from_preset("sdxl-lightning", device="cpu", weights=tmp_path)


# --- baselines (python -m eval.generate) ---------------------------------------------------------------------------


def test_baseline_presets_name_the_public_weights_and_pipelines():
    from showme_i2g.presets import BASELINE_PRESETS, get_baseline_preset

    expected = {
        "sdxl-base": ("stabilityai/stable-diffusion-xl-base-1.0", "StableDiffusionXLPipeline"),
        "sd15": ("stable-diffusion-v1-5/stable-diffusion-v1-5", "StableDiffusionPipeline"),
        "sd21-turbo": ("stabilityai/sd-turbo", "StableDiffusionPipeline"),
        "instructpix2pix": ("timbrooks/instruct-pix2pix", "StableDiffusionInstructPix2PixPipeline"),
    }
    for name, (base, pipeline) in expected.items():
        preset, tiny = get_baseline_preset(name), get_baseline_preset(f"{name}-tiny")
        assert (preset.base, preset.pipeline) == (base, pipeline)
        assert tiny.base is None and (tiny.pipeline, tiny.architecture) == (preset.pipeline, preset.architecture)
    turbo = get_baseline_preset("sd21-turbo")
    assert (turbo.num_inference_steps, turbo.guidance_scale, turbo.size) == (1, 0.0, 512)
    assert get_baseline_preset("instructpix2pix").image_guidance_scale == 1.5
    assert len(BASELINE_PRESETS) == 8
    with pytest.raises(InvalidInputError, match=r"^Unknown baseline preset 'sd3'; choose one of: .*\.$"):
        get_baseline_preset("sd3")


@pytest.mark.parametrize("name, in_channels, linear", [("sd15-tiny", 4, False), ("sd21-turbo-tiny", 4, True),
                                                        ("instructpix2pix-tiny", 8, False)])
def test_tiny_baselines_mirror_their_architecture(name, in_channels, linear):
    from showme_i2g.baselines import load_baseline

    pipe = load_baseline(name)
    assert pipe.unet.config.in_channels == in_channels and pipe.unet.config.use_linear_projection is linear
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    assert pipe.vae.config.scaling_factor == 0.18215 and len(pipe.tokenizer) == 49408
    assert sum(p.numel() for p in pipe.unet.parameters()) < 1_000_000
    assert not any(p.requires_grad for c in (pipe.unet, pipe.vae, pipe.text_encoder) for p in c.parameters())
    again = load_baseline(name)
    assert all(torch.equal(a, b) for a, b in zip(pipe.unet.state_dict().values(), again.unet.state_dict().values()))


def test_real_baseline_without_weights_is_one_sentence(tmp_path, monkeypatch):
    from showme_i2g.baselines import load_baseline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match=r"^The 'sd15' baseline needs the weights of "
                                                   r"stable-diffusion-v1-5/stable-diffusion-v1-5 .*--weights"):
        load_baseline("sd15", weights=tmp_path / "empty")


def test_the_showme_preset_reads_the_authors_loras_unless_both_adapters_are_ours():
    from showme_i2g.presets import SHOWME_ADAPTERS, get_showme_preset
    from showme_i2g.showme import adapters

    showme, base = get_showme_preset("showme"), get_showme_preset("dynamicrafter-256")
    assert SHOWME_ADAPTERS == adapters.ADAPTERS
    assert showme.reads_release_loras() and showme.reads_release_loras(["edit"])
    assert not showme.reads_release_loras(["animate", "edit"])
    assert not base.reads_release_loras()  # a plain DynamiCrafter preset names no LoRA files
