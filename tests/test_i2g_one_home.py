"""One home per I2G rule: the CFG step, the CFG batch, the time ids and the LoRA, shared by inference and training."""

from __future__ import annotations

import pytest
import torch
from diffusers.utils.torch_utils import randn_tensor

from showme_i2g.i2g.attention import neighbour_attention_enabled
from showme_i2g.i2g.encoding import encode_instruction, sdxl_time_ids
from showme_i2g.i2g.lora import add_i2g_lora, lora_parameter_names, save_i2g_lora
from showme_i2g.i2g.pipeline import IllustrationPipeline
from showme_i2g.i2g.training import I2GConfig, draft_sample
from showme_i2g.i2g.training import add_i2g_lora as add_configured_lora
from showme_i2g.training.config import TrainingConfigError

GOAL = "Make tea"
STEPS = ["Boil water in a kettle.", "Put a tea bag in a cup.", "Pour the hot water into the cup."]


@pytest.fixture(scope="module")
def pipe(tiny_illustrator) -> IllustrationPipeline:
    return tiny_illustrator


def test_draft_k_samples_exactly_what_the_pipeline_draws(pipe):
    """DRaFT-K's loop (training) and the pipeline's loop step through the same guided step and CFG batch."""
    expected = pipe(GOAL, STEPS, seed=3, num_inference_steps=3, guidance_scale=4.0, output_type="latent").images
    embeddings = encode_instruction(
        GOAL, pipe.split_steps(STEPS), tokenizer=pipe.tokenizer, tokenizer_2=pipe.tokenizer_2,
        text_encoder=pipe.text_encoder, text_encoder_2=pipe.text_encoder_2, guidance=True, dtype=pipe.unet.dtype,
    )
    states, pooled, mask = embeddings.unet_inputs(guidance=True)
    noise = randn_tensor(expected.shape, generator=torch.Generator().manual_seed(3), dtype=expected.dtype)
    scheduler = pipe.scheduler.__class__.from_config(pipe.scheduler.config)
    with torch.no_grad(), neighbour_attention_enabled(pipe.unet, num_steps=len(STEPS)):
        got = draft_sample(pipe.unet, scheduler, noise, states, pooled, mask, sdxl_time_ids(128, 128, 6),
                           num_inference_steps=3, truncation_k=1, guidance_scale=4.0)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_time_ids_are_diffusers_own(pipe):
    theirs = pipe._get_add_time_ids((96, 160), (0, 0), (96, 160), dtype=torch.float32,
                                    text_encoder_projection_dim=pipe.text_encoder_2.config.projection_dim)
    assert torch.equal(sdxl_time_ids(96, 160, 3), theirs.repeat(3, 1))


def test_a_saved_lora_continues_in_a_new_adapter_and_a_wrong_rank_is_one_sentence(tmp_path):
    from showme_i2g.i2g.tiny import build_tiny_sdxl_components

    unet = build_tiny_sdxl_components()["unet"]
    add_i2g_lora(unet, rank=2)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if name in lora_parameter_names(unet):
                param.normal_()
    file = save_i2g_lora(unet, tmp_path)
    trained = {n: p.detach().clone() for n, p in unet.named_parameters() if n in lora_parameter_names(unet)}

    again = build_tiny_sdxl_components()["unet"]
    add_configured_lora(again, I2GConfig(preset="tiny", rank=2, init_lora=str(file)))
    loaded = {n: p for n, p in again.named_parameters() if p.requires_grad}
    assert loaded.keys() == trained.keys() and all(torch.equal(loaded[n], trained[n]) for n in trained)

    other = build_tiny_sdxl_components()["unet"]
    with pytest.raises(TrainingConfigError, match=r"^init_lora: The LoRA .* does not fit this adapter") as info:
        add_configured_lora(other, I2GConfig(preset="tiny", rank=3, init_lora=str(file)))
    assert "\n" not in str(info.value)
