"""Anchors in the neighbour chain (kept steps, a reference photo, a global anchor) and windows for long recipes."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import StableDiffusionXLPipeline

from showme_i2g.errors import InvalidInputError
from showme_i2g.i2g import attention as attention_module
from showme_i2g.i2g.anchors import REFERENCE, plan_chain
from showme_i2g.i2g.attention import (
    ChainLayout,
    chain_attention,
    chain_attention_mass,
    masked_neighbour_attention,
    neighbour_attention,
    neighbour_attention_enabled,
)
from showme_i2g.i2g.encoding import encode_instruction
from showme_i2g.i2g.inputs import MAX_STEPS, clean_steps
from showme_i2g.i2g.pipeline import IllustrationPipeline

GOAL = "Make pancakes"
STEPS = ["Crack the eggs into a bowl.", "Whisk in the flour.", "Pour batter into the pan.", "Flip the pancake."]


def _qkv(images: int, groups: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(images * groups, 2, 6, 8, generator=generator) for _ in range(3))


# ---------------------------------------------------------------------------------------------------------------------
# The attention kernel
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("weight", [0.0, 0.4, 1.0])
def test_plain_layout_is_neighbour_attention_bit_for_bit(weight):
    q, k, v = _qkv(5)
    expected = neighbour_attention(q, k, v, 5, weight)
    assert torch.equal(chain_attention(q, k, v, ChainLayout.plain(5, weight)), expected)
    assert torch.equal(chain_attention(q, k, v, ChainLayout((weight,) * 4, anchor=2, anchor_weight=0.0)), expected)


def test_unequal_links_match_the_masked_kernel_where_they_agree():
    q, k, v = _qkv(5)
    nearly = ChainLayout((0.5, 0.5, 0.5, 0.5 + 1e-9))
    torch.testing.assert_close(chain_attention(q, k, v, nearly), masked_neighbour_attention(q, k, v, 5, 0.5))


@pytest.mark.parametrize("layout", [
    ChainLayout((1.0, 0.0, 1.0, 1.0), anchor=0),  # a window: an island anchor, then the chain
    ChainLayout((1.0,) * 5, anchor=0),  # anchor = step 1 (also image 1's neighbour: seen once)
    ChainLayout((0.0, 1.0, 1.0), anchor=None),  # a reference at weight 0
    ChainLayout((1.0,), anchor=1),
])
def test_zero_one_layouts_run_unmasked_and_equal_the_masked_kernel(layout, monkeypatch):
    q, k, v = _qkv(layout.num_images)
    sources, weights = layout.key_slices()
    masked = torch.nn.functional.scaled_dot_product_attention(
        q, attention_module._stack_slices(k, 2, layout.num_images, sources),
        attention_module._stack_slices(v, 2, layout.num_images, sources),
        attn_mask=attention_module._layout_bias(weights, 2, k.shape[2], q),
    )
    masks = []
    real = attention_module.F.scaled_dot_product_attention
    monkeypatch.setattr(attention_module.F, "scaled_dot_product_attention",
                        lambda *a, attn_mask=None, **kw: masks.append(attn_mask) or real(*a, attn_mask=attn_mask, **kw))
    torch.testing.assert_close(chain_attention(q, k, v, layout), masked)
    assert masks and all(mask is None for mask in masks)


def test_a_kept_image_reaches_its_neighbours_only_in_one_layer():
    layout = ChainLayout((1.0, 0.7, 1.0, 1.0, 1.0))  # image 2 plays a kept step: its keys are given, not drawn
    q, k, v = _qkv(6)
    k2, v2 = k.clone(), v.clone()
    for group in range(2):
        k2[group * 6 + 2] += 1.0
        v2[group * 6 + 2] -= 1.0
    changed = (chain_attention(q, k2, v2, layout) - chain_attention(q, k, v, layout)).abs().amax(dim=(1, 2, 3))
    changed = changed.view(2, 6)
    assert (changed[:, [1, 2, 3]] > 1e-3).all()
    assert (changed[:, [0, 4, 5]] == 0).all()


def test_the_global_anchor_reaches_every_image_and_weight_zero_reaches_none():
    q, k, v = _qkv(6)
    k2 = k.clone()
    k2[[0, 6]] += 1.0  # the anchor is image 0 in both CFG halves
    for weight, reaches in ((1.0, True), (0.0, False)):
        layout = ChainLayout((1.0,) * 5, anchor=0, anchor_weight=weight)
        changed = (chain_attention(q, k2, v, layout) - chain_attention(q, k, v, layout)).abs().amax(dim=(1, 2, 3))
        far = changed.view(2, 6)[:, 2:]
        assert bool((far > 1e-4).all()) is reaches and (reaches or bool((far == 0).all()))


def test_cfg_halves_never_mix_with_an_anchor():
    layout = ChainLayout((1.0, 0.0, 2.0), anchor=3, anchor_weight=1.5)
    q, k, v = _qkv(4)
    k2 = k.clone()
    k2[:4] += 3.0  # only the unconditional half changes
    out, out2 = chain_attention(q, k, v, layout), chain_attention(q, k2, v, layout)
    assert torch.equal(out[4:], out2[4:]) and not torch.equal(out[:4], out2[:4])


def test_attention_mass_follows_the_weights_and_sees_the_anchor_once():
    q, k, _ = _qkv(5, groups=1)
    none = chain_attention_mass(q, k, ChainLayout((1.0,) * 4, anchor=0, anchor_weight=0.0))
    strong = chain_attention_mass(q, k, ChainLayout((1.0,) * 4, anchor=0, anchor_weight=4.0))
    torch.testing.assert_close(none.sum(dim=1), torch.ones(5))
    assert (none[2:, 0] == 0).all() and (strong[2:, 0] > 0.3).all()
    # image 1's previous neighbour is the anchor: it is one slice, not two, so the weight does not change it
    torch.testing.assert_close(none[1], strong[1])


def test_a_zero_link_cuts_the_chain():
    q, k, v = _qkv(4)
    layout = ChainLayout((1.0, 0.0, 1.0))
    k2 = k.clone()
    k2[[2, 6]] += 1.0
    changed = (chain_attention(q, k2, v, layout) - chain_attention(q, k, v, layout)).abs().amax(dim=(1, 2, 3))
    assert (changed.view(2, 4)[:, :2] == 0).all()


def test_bad_layouts_are_refused():
    with pytest.raises(ValueError, match="link weight"):
        ChainLayout((1.0, -1.0))
    with pytest.raises(ValueError, match="anchor must index"):
        ChainLayout((1.0,), anchor=2)
    q, k, v = _qkv(3)
    with pytest.raises(ValueError, match="not a multiple"):
        chain_attention(q, k, v, ChainLayout((1.0,) * 3))


# ---------------------------------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------------------------------
def test_no_anchors_is_one_plain_window():
    plan = plan_chain(7, neighbour_weight=0.5)
    (window,) = plan.windows
    assert window.items == tuple(range(7)) and not any(window.anchored)
    assert window.layout == ChainLayout.plain(7, 0.5) and window.layout.is_plain


def _neighbours_in(window, step: int) -> bool:
    """Step is decided in ``window`` with its previous and next steps present and linked (when they exist)."""
    position = window.items.index(step)
    links = window.layout.links
    ok_previous = step == 0 or (position > 0 and window.items[position - 1] == step - 1 and links[position - 1] > 0)
    last = window.items[-1] == step
    ok_next = last or (window.items[position + 1] == step + 1 and links[position] > 0)
    return ok_previous and ok_next


@pytest.mark.parametrize("anchor,reference", [(None, False), ("first", False), ("reference", True)])
def test_forty_steps_in_windows_of_eight_each_see_both_neighbours(anchor, reference):
    plan = plan_chain(40, max_batch=8, anchor=anchor, has_reference=reference, kept=[9])
    decided = [step for window in plan.windows for step in window.decides]
    assert sorted(decided) == [s for s in range(40) if s != 9]  # each drawn once, the kept one never
    for window in plan.windows:
        assert len(window.items) <= 8
        for step in window.decides:
            assert _neighbours_in(window, step)
            assert not window.anchored[window.items.index(step)]
        if window is not plan.windows[-1]:  # a window that is not the last ends with an image it does not decide
            assert window.items[-1] not in window.decides
        if anchor:
            wanted = REFERENCE if anchor == "reference" else 0
            assert window.items[window.layout.anchor] == wanted
    assert decided[-1] == 39


def test_an_image_nothing_attends_to_takes_no_batch_slot():
    """A global anchor of weight 0, or a reference whose link has weight 0, would only move the windows."""
    plain = plan_chain(6, max_batch=4)
    assert plan_chain(6, max_batch=4, anchor="first", anchor_weight=0.0).windows == plain.windows
    silent = plan_chain(6, max_batch=4, has_reference=True, reference_weight=0.0)
    assert silent.windows == plain.windows and not silent.has_reference
    assert plan_chain(6, has_reference=True, reference_weight=0.0, anchor="reference").has_reference


def test_reference_link_has_its_own_weight():
    plan = plan_chain(3, has_reference=True, neighbour_weight=1.0, reference_weight=0.25)
    (window,) = plan.windows
    assert window.items == (REFERENCE, 0, 1, 2) and window.anchored == (True, False, False, False)
    assert window.layout.links == (0.25, 1.0, 1.0)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"kept": [7]}, r"^Kept steps must be numbered 1 to 4"),
        ({"kept": [0, 1, 2, 3]}, r"^Every step is kept"),
        ({"anchor": "middle"}, r"^The anchor must be 'reference', 'first' or none"),
        ({"anchor": "first", "max_batch": 3}, r"^max_batch must be a whole number of at least 4 images with a"),
    ],
)
def test_bad_plans_are_one_sentence(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        plan_chain(4, **kwargs)


def test_the_step_cap_belongs_to_the_entry_points():
    with pytest.raises(InvalidInputError, match=rf"^There are {MAX_STEPS + 1} steps; at most {MAX_STEPS}"):
        clean_steps(["Stir."] * (MAX_STEPS + 1))
    assert len(clean_steps(["Stir."] * 40, max_steps=None)) == 40


# ---------------------------------------------------------------------------------------------------------------------
# The pipeline, tiny preset
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipe(tiny_illustrator) -> IllustrationPipeline:
    return tiny_illustrator


def _run(pipe, steps=STEPS, **kwargs):
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("num_inference_steps", 3)
    return pipe(GOAL, steps, **kwargs)


def _photo(seed: int = 0, size: tuple[int, int] = (160, 120)) -> PIL.Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return PIL.Image.fromarray(pixels)


def test_without_anchors_the_run_is_diffusers_sdxl_with_neighbour_attention(pipe):
    """Today's chain, rebuilt from diffusers' own SDXL loop: the anchor machinery changes nothing without anchors."""
    clauses = pipe.split_steps(STEPS)
    embeddings = encode_instruction(
        GOAL, clauses, tokenizer=pipe.tokenizer, tokenizer_2=pipe.tokenizer_2, text_encoder=pipe.text_encoder,
        text_encoder_2=pipe.text_encoder_2, guidance=True, dtype=pipe.unet.dtype,
    )
    assert embeddings.attention_mask is None  # one clause per step here, so SDXL's pipeline can take them
    sdxl = StableDiffusionXLPipeline(**pipe.components)
    sdxl.set_progress_bar_config(disable=True)
    with neighbour_attention_enabled(pipe.unet, num_steps=len(STEPS)):
        expected = sdxl(
            prompt_embeds=embeddings.prompt_embeds, pooled_prompt_embeds=embeddings.pooled_prompt_embeds,
            negative_prompt_embeds=embeddings.negative_prompt_embeds,
            negative_pooled_prompt_embeds=embeddings.negative_pooled_prompt_embeds,
            num_inference_steps=3, guidance_scale=5.0, height=128, width=128,
            generator=torch.Generator().manual_seed(0), output_type="np",
        ).images
    got = _run(pipe, guidance_scale=5.0, output_type="np").images
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.array_equal(got, _run(pipe, guidance_scale=5.0, output_type="np", max_batch=len(STEPS)).images)
    assert np.array_equal(got, _run(pipe, guidance_scale=5.0, output_type="np", anchor="first",
                                    anchor_weight=0.0).images)


def test_kept_steps_come_back_pixel_identical_and_the_redrawn_step_changes(pipe):
    first = _run(pipe, seed=1)
    keep = {1: first.images[0], 2: first.images[1], 4: first.images[3]}
    redrawn = _run(pipe, seed=2, keep=keep)
    for number, image in keep.items():
        assert redrawn.images[number - 1].tobytes() == image.tobytes()
    assert redrawn.images[2].tobytes() != first.images[2].tobytes()
    assert redrawn.metadata["kept_steps"] == [1, 2, 4]
    assert redrawn.metadata["windows"] == [{"images": [1, 2, 3, 4], "anchored": [1, 2, 4], "decides": [3]}]
    for output_type, shape in (("np", (4, 128, 128, 3)), ("pt", (4, 3, 128, 128)), ("latent", (4, 4, 16, 16))):
        assert tuple(_run(pipe, seed=2, keep=keep, output_type=output_type).images.shape) == shape
    kept_pixels = _run(pipe, seed=2, keep=keep, output_type="np").images[0]
    assert np.array_equal(np.round(kept_pixels * 255).astype(np.uint8), np.asarray(keep[1]))


def test_a_kept_image_reaches_the_step_drawn_next_to_it(pipe):
    first = _run(pipe, seed=1)
    for weight in (0.0, 1.0):
        base = _run(pipe, seed=2, keep={2: first.images[1]}, output_type="np", neighbour_weight=weight).images
        other = _run(pipe, seed=2, keep={2: _photo(5, (128, 128))}, output_type="np", neighbour_weight=weight).images
        assert np.abs(base[1] - other[1]).mean() > 0.1  # step 2 is what was given
        sees = not np.allclose(base[2], other[2], atol=1e-6)  # step 3 sees kept step 2 through its link
        assert sees is (weight > 0)


def test_reference_photo_changes_step_one_and_weight_zero_changes_nothing(pipe):
    plain = _run(pipe, output_type="np").images
    referenced = _run(pipe, reference_image=_photo(), output_type="np")
    assert np.abs(referenced.images[0] - plain[0]).mean() > 1e-3
    assert referenced.metadata["reference_pixels_sha256"] and referenced.metadata["reference_weight"] == 1.0
    silent = _run(pipe, reference_image=_photo(), reference_weight=0.0, output_type="np").images
    np.testing.assert_allclose(silent, plain, atol=1e-5)


def test_weight_zero_changes_nothing_in_windows_either(pipe):
    steps = [f"Step {i}: stir." for i in range(1, 7)]
    plain = _run(pipe, steps, max_batch=4, output_type="np", height=64, width=64).images
    for extra in ({"anchor": "first", "anchor_weight": 0.0}, {"reference_image": _photo(), "reference_weight": 0.0}):
        assert np.array_equal(_run(pipe, steps, max_batch=4, output_type="np", height=64, width=64, **extra).images,
                              plain)


def test_global_anchor_changes_late_steps(pipe):
    plain = _run(pipe, output_type="np").images
    anchored = _run(pipe, anchor="first", anchor_weight=2.0, output_type="np")
    assert np.abs(anchored.images[3] - plain[3]).mean() > 1e-3
    assert anchored.metadata["anchor"] == "first" and anchored.metadata["anchor_weight"] == 2.0


def _record_attention(monkeypatch) -> list[tuple[int, int]]:
    """(batch, key tokens) of every self-attention kernel call in the neighbour chain."""
    calls: list[tuple[int, int]] = []
    real = attention_module.F.scaled_dot_product_attention

    def spy(q, k, v, *args, **kwargs):
        calls.append((q.shape[0], k.shape[2] * k.shape[0]))
        return real(q, k, v, *args, **kwargs)

    monkeypatch.setattr(attention_module.F, "scaled_dot_product_attention", spy)
    return calls


def test_forty_steps_with_max_batch_eight_finish_in_bounded_batches(pipe, monkeypatch):
    calls = _record_attention(monkeypatch)
    steps = [f"Step {i}: stir the pot." for i in range(1, 41)]
    result = _run(pipe, steps, max_batch=8, num_inference_steps=2, height=64, width=64, anchor="first")
    assert len(result.images) == 40 and calls
    assert max(batch for batch, _ in calls) <= 2 * 8  # CFG doubles the images of one window
    windows = result.metadata["windows"]
    assert sorted(n for w in windows for n in w["decides"]) == list(range(1, 41))
    for window in windows:
        for number in window["decides"]:
            assert number - 1 in window["images"] or number == 1
            assert number + 1 in window["images"] or number == 40


def test_attention_memory_grows_linearly_in_the_number_of_steps(pipe, monkeypatch):
    keys = []
    for n in (4, 8, 16):
        calls = _record_attention(monkeypatch)
        _run(pipe, [f"Step {i}." for i in range(n)], num_inference_steps=1, height=64, width=64,
             anchor="first", neighbour_weight=0.5)
        keys.append(max(tokens for _, tokens in calls))
        monkeypatch.undo()
    assert keys[1] == 2 * keys[0] and keys[2] == 4 * keys[0]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"keep": {5: "x"}}, r"^Kept steps are numbered 1 to 4 \(as in step_01.png\), got 5\."),
        ({"keep": {1: _photo(0, (64, 64))}}, r"^The kept image of step 1 is 64x64 pixels, but this run draws 128x128"),
        ({"reference_image": b"not a picture"}, r"^The uploaded photo is not a picture we can open"),
        ({"anchor_weight": -1}, r"^anchor_weight must be a number"),
    ],
)
def test_bad_anchor_input_is_one_sentence(pipe, kwargs, message):
    with pytest.raises(InvalidInputError, match=message) as info:
        _run(pipe, **kwargs)
    text = str(info.value)
    assert "\n" not in text and len(text) < 200


@pytest.mark.parametrize("layout", [ChainLayout.plain(4, 1.0), ChainLayout((1.0, 0.0, 1.0), anchor=0),
                                    ChainLayout((0.5, 1.0, 1.0), anchor=3)])
def test_values_may_be_wider_than_keys(layout):
    """SDPA allows a value width other than the key width (the README figure reads attention mass that way)."""
    q, k, _ = _qkv(4)
    v = torch.randn(8, 2, 6, 5)
    sources, weights = layout.key_slices()
    expected = torch.nn.functional.scaled_dot_product_attention(
        q, attention_module._stack_slices(k, 2, 4, sources), attention_module._stack_slices(v, 2, 4, sources),
        attn_mask=attention_module._layout_bias(weights, 2, 6, q),
    )
    torch.testing.assert_close(chain_attention(q, k, v, layout), expected)
