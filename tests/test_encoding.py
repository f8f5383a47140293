"""Clause-level encoding: goal -> text_encoder, clauses -> text_encoder_2, concatenated along tokens."""

from __future__ import annotations

import pytest
import torch

from showme_i2g.i2g.encoding import encode_instruction, encode_texts


def _encode(c, goal, step_clauses, guidance=False, negative_prompt=None):
    return encode_instruction(
        goal,
        step_clauses,
        tokenizer=c["tokenizer"],
        tokenizer_2=c["tokenizer_2"],
        text_encoder=c["text_encoder"],
        text_encoder_2=c["text_encoder_2"],
        guidance=guidance,
        negative_prompt=negative_prompt,
    )


@torch.no_grad()
def test_shapes_and_mask(tiny_components):
    e = _encode(tiny_components, "Make pupusas", [["Heat a skillet."], ["Combine masa.", "Mix well.", "Rest it."]])
    assert e.prompt_embeds.shape == (2, 3 * 77, 64)
    assert e.pooled_prompt_embeds.shape == (2, 32)
    assert e.attention_mask.shape == (2, 3 * 77)
    assert e.attention_mask[0].tolist() == [True] * 77 + [False] * 154
    assert e.attention_mask[1].all()
    assert torch.equal(e.prompt_embeds[0, 77:], torch.zeros(154, 64))
    assert e.negative_prompt_embeds is None


@torch.no_grad()
def test_goal_feeds_only_the_first_encoder_and_steps_only_the_second(tiny_components):
    a = _encode(tiny_components, "Make pancakes", [["Whisk flour and eggs."]])
    goal_changed = _encode(tiny_components, "Make kolaches", [["Whisk flour and eggs."]])
    step_changed = _encode(tiny_components, "Make pancakes", [["Pour batter into the pan."]])
    vit_l = slice(0, 32)
    big_g = slice(32, 64)
    assert not torch.equal(a.prompt_embeds[..., vit_l], goal_changed.prompt_embeds[..., vit_l])
    assert torch.equal(a.prompt_embeds[..., big_g], goal_changed.prompt_embeds[..., big_g])
    assert torch.equal(a.pooled_prompt_embeds, goal_changed.pooled_prompt_embeds)  # pooled comes from bigG
    assert torch.equal(a.prompt_embeds[..., vit_l], step_changed.prompt_embeds[..., vit_l])
    assert not torch.equal(a.prompt_embeds[..., big_g], step_changed.prompt_embeds[..., big_g])


@torch.no_grad()
def test_clauses_are_encoded_separately_and_concatenated(tiny_components):
    c = tiny_components
    clauses = ["Combine two cups of masa harina with warm water.", "Mix until the dough is smooth."]
    e = _encode(c, "Make pupusas", [clauses])
    goal, _ = encode_texts(c["tokenizer"], c["text_encoder"], ["Make pupusas"])
    for k, clause in enumerate(clauses):
        alone, pooled = encode_texts(c["tokenizer_2"], c["text_encoder_2"], [clause])
        block = e.prompt_embeds[0, 77 * k : 77 * (k + 1)]
        assert torch.equal(block[:, 32:], alone[0])
        assert torch.equal(block[:, :32], goal[0])  # the goal repeats next to every clause
    _, pooled = encode_texts(c["tokenizer_2"], c["text_encoder_2"], clauses)
    torch.testing.assert_close(e.pooled_prompt_embeds[0], pooled.mean(0))


@torch.no_grad()
def test_padding_a_short_step_is_exactly_masked_out(tiny_components):
    """Step 1 padded next to a 3-clause step conditions the UNet as if it were alone."""
    c = tiny_components
    short = ["Stir in chocolate chips."]
    padded = _encode(c, "Make cookies", [short, ["Sift flour.", "Add soda.", "Add salt."]])
    alone = _encode(c, "Make cookies", [short])
    unet = c["unet"]
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    time_ids = torch.tensor([[64.0, 64, 0, 0, 64, 64]])

    def run(states, pooled, mask):
        return unet(latents, 500, encoder_hidden_states=states, encoder_attention_mask=mask,
                    added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample

    expected = run(alone.prompt_embeds, alone.pooled_prompt_embeds, None)
    got = run(padded.prompt_embeds[:1], padded.pooled_prompt_embeds[:1], padded.attention_mask[:1])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    unmasked = run(padded.prompt_embeds[:1], padded.pooled_prompt_embeds[:1], None)
    assert (unmasked - expected).abs().max() > 1e-4  # without the mask the zero padding would leak in


@torch.no_grad()
def test_negatives_for_guidance(tiny_components):
    steps = [["Sift flour."], ["Add soda.", "Add salt."]]
    zeros = _encode(tiny_components, "Make cookies", steps, guidance=True)
    assert torch.equal(zeros.negative_prompt_embeds, torch.zeros_like(zeros.prompt_embeds))
    neg = _encode(tiny_components, "Make cookies", steps, guidance=True, negative_prompt="blurry, text")
    assert neg.negative_prompt_embeds.shape == neg.prompt_embeds.shape
    assert torch.equal(neg.negative_prompt_embeds[0, :77], neg.negative_prompt_embeds[1, 77:])  # one block, tiled
    states, pooled, mask = neg.unet_inputs(guidance=True)
    assert states.shape[0] == pooled.shape[0] == mask.shape[0] == 4
    assert mask[:2].all()  # the unconditional half is never masked


def test_step_without_clauses_is_refused(tiny_components):
    with pytest.raises(ValueError, match="at least one clause"):
        _encode(tiny_components, "Make cookies", [["Sift flour."], []])
