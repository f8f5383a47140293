"""Neighbour attention: n = 1 is plain attention, weight 0 is independence, and a change reaches only neighbours."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from showme_i2g.i2g.attention import (
    NeighbourAttnProcessor,
    neighbour_attention,
    neighbour_attention_enabled,
)


def _layer(seed: int = 0) -> Attention:
    torch.manual_seed(seed)
    return Attention(query_dim=16, heads=2, dim_head=8).eval()


def _images(batch: int, tokens: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, tokens, 16, generator=torch.Generator().manual_seed(seed))


def _run(layer: Attention, x: torch.Tensor, processor) -> torch.Tensor:
    layer.set_processor(processor)
    with torch.no_grad():
        return layer(x)


def _changed(a: torch.Tensor, b: torch.Tensor) -> list[bool]:
    """Per image: did its output change?"""
    return [not torch.equal(a[i], b[i]) for i in range(a.shape[0])]


def test_one_step_equals_default_processor():
    layer, x = _layer(), _images(3)
    reference = _run(layer, x, AttnProcessor2_0())
    assert torch.equal(_run(layer, x, NeighbourAttnProcessor(num_steps=1, neighbour_weight=1.0)), reference)


def test_weight_zero_equals_independent_images():
    layer, x = _layer(), _images(4)
    independent = _run(layer, x, AttnProcessor2_0())
    assert torch.equal(_run(layer, x, NeighbourAttnProcessor(num_steps=4, neighbour_weight=0.0)), independent)


def test_weight_zero_step_one_ignores_step_three():
    layer, x = _layer(), _images(4)
    y = x.clone()
    y[2] += 1.0  # change step 3
    processor = NeighbourAttnProcessor(num_steps=4, neighbour_weight=0.0)
    assert _changed(_run(layer, x, processor), _run(layer, y, processor)) == [False, False, True, False]


def test_change_to_step_three_reaches_only_its_neighbours_in_one_layer():
    layer, x = _layer(), _images(5)
    y = x.clone()
    y[2] += 1.0  # change step 3 of 5
    processor = NeighbourAttnProcessor(num_steps=5, neighbour_weight=1.0)
    assert _changed(_run(layer, x, processor), _run(layer, y, processor)) == [False, True, True, True, False]


def test_cfg_halves_never_mix():
    # CFG batch = [uncond steps 1..3, cond steps 1..3]: changing conditional step 1 must leave the whole
    # unconditional half untouched, including unconditional step 3 which sits next to it in the batch.
    layer, x = _layer(), _images(6)
    y = x.clone()
    y[3] += 1.0
    processor = NeighbourAttnProcessor(num_steps=3, neighbour_weight=1.0)
    assert _changed(_run(layer, x, processor), _run(layer, y, processor)) == [False, False, False, True, True, False]


def _banded_reference(q, k, v, num_steps: int, weight: float) -> torch.Tensor:
    """Joint attention over all images of a group, with an explicit band mask (the O(n^2) definition)."""
    b, h, length, d = q.shape
    out = torch.empty_like(q)
    for g in range(b // num_steps):
        idx = slice(g * num_steps, (g + 1) * num_steps)
        keys = k[idx].permute(1, 0, 2, 3).reshape(h, num_steps * length, d)
        values = v[idx].permute(1, 0, 2, 3).reshape(h, num_steps * length, d)
        for i in range(num_steps):
            owner = torch.arange(num_steps).repeat_interleave(length)
            bias = torch.full((num_steps * length,), -math.inf)
            bias[owner == i] = 0.0
            bias[(owner - i).abs() == 1] = math.log(weight)
            logits = q[g * num_steps + i] @ keys.transpose(-1, -2) / math.sqrt(d) + bias
            out[g * num_steps + i] = torch.softmax(logits, dim=-1) @ values
    return out


@pytest.mark.parametrize("num_steps,weight", [(2, 1.0), (4, 0.25), (5, 3.0), (7, 1.0)])
def test_matches_banded_joint_attention(num_steps: int, weight: float):
    gen = torch.Generator().manual_seed(num_steps)
    q, k, v = (torch.randn(2 * num_steps, 2, 5, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    expected = _banded_reference(q, k, v, num_steps, weight)
    torch.testing.assert_close(neighbour_attention(q, k, v, num_steps, weight), expected)


@pytest.mark.parametrize("num_steps", [2, 3, 7])
def test_weight_one_unmasked_path_equals_the_masked_kernel(num_steps: int):
    """At w = 1 the kernel splits interior and end images instead of masking (so flash attention can run); it
    must equal the masked three-slice call, CFG-style groups included."""
    from showme_i2g.i2g.attention import _neighbour_bias, _neighbour_slices

    gen = torch.Generator().manual_seed(num_steps)
    q, k, v = (torch.randn(2 * num_steps, 2, 5, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    bias = _neighbour_bias(num_steps, 2, 5, 1.0, q)
    masked = torch.nn.functional.scaled_dot_product_attention(
        q, _neighbour_slices(k, num_steps), _neighbour_slices(v, num_steps), attn_mask=bias
    )
    torch.testing.assert_close(neighbour_attention(q, k, v, num_steps, 1.0), masked, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("num_steps", [2, 4])
def test_neighbour_keys_are_windows_of_the_projection_and_train_like_the_masked_kernel(num_steps: int):
    """In the processor's layout (a (B, L, H*D) projection seen as (B, H, L, D)) the [previous, own, next] keys
    are views of the projection's memory, nothing copied; forward and gradients equal the masked kernel's."""
    from showme_i2g.i2g.attention import _token_windows, masked_neighbour_attention

    batch, length, heads, dim = 2 * num_steps, 6, 2, 4
    gen = torch.Generator().manual_seed(num_steps)
    projections = [torch.randn(batch, length, heads * dim, generator=gen, dtype=torch.float64, requires_grad=True)
                   for _ in range(3)]

    def heads_first(x: torch.Tensor) -> torch.Tensor:
        return x.view(batch, length, heads, dim).transpose(1, 2)

    q, k, v = map(heads_first, projections)
    windows = _token_windows(k, 2, 3 if num_steps > 2 else 2)
    assert windows.untyped_storage().data_ptr() == k.untyped_storage().data_ptr()  # a view, not a copy
    torch.testing.assert_close(windows[1, 0, :, length:2 * length], k[num_steps + 1])  # group 2, its 2nd image
    out, reference = neighbour_attention(q, k, v, num_steps, 1.0), masked_neighbour_attention(q, k, v, num_steps, 1.0)
    torch.testing.assert_close(out, reference, rtol=1e-12, atol=1e-12)
    grad = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    ours = torch.autograd.grad(out, projections, grad)
    theirs = torch.autograd.grad(reference, projections, grad)
    for mine, expected in zip(ours, theirs):
        torch.testing.assert_close(mine, expected, rtol=1e-10, atol=1e-12)


def test_weight_one_builds_no_mask(monkeypatch):
    import showme_i2g.i2g.attention as attention

    masks = []
    real = attention.F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        masks.append(kwargs.get("attn_mask"))
        return real(*args, **kwargs)

    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", spy)
    q = torch.randn(8, 2, 5, 8)
    neighbour_attention(q, q, q, 4, 1.0)
    assert masks == [None, None, None]  # one call for the end images, one per CFG group for the interior ones
    neighbour_attention(q, q, q, 4, 0.5)
    assert masks[-1] is not None  # other weights keep the exact log(w) bias


def test_small_weight_favours_own_slice():
    # With w -> 0 the output approaches independent attention; larger w moves it further away.
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(4, 2, 5, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    independent = neighbour_attention(q, k, v, 4, 0.0)
    gaps = [(neighbour_attention(q, k, v, 4, w) - independent).abs().max().item() for w in (1e-6, 0.1, 1.0)]
    assert gaps[0] < 1e-4 < gaps[1] < gaps[2]


def test_any_number_of_steps_and_linear_key_length():
    layer = _layer()
    for n in (1, 2, 17):
        out = _run(layer, _images(n), NeighbourAttnProcessor(num_steps=n))
        assert out.shape == (n, 6, 16) and torch.isfinite(out).all()
    from showme_i2g.i2g.attention import _neighbour_slices

    keys = torch.randn(12, 2, 6, 8)
    assert _neighbour_slices(keys, 12).shape == (12, 2, 18, 8)  # 3 slices per image, whatever n is


def test_bad_settings_are_refused():
    q = torch.randn(6, 2, 5, 8)
    with pytest.raises(ValueError, match="divisor of the batch size 6"):
        neighbour_attention(q, q, q, 4)
    with pytest.raises(ValueError, match="neighbour_weight"):
        NeighbourAttnProcessor(num_steps=2, neighbour_weight=-1.0)
    with pytest.raises(ValueError, match="self-attention"):
        NeighbourAttnProcessor(2)(_layer(), torch.randn(2, 6, 16), encoder_hidden_states=torch.randn(2, 3, 16))


def test_context_manager_installs_only_in_self_attention_and_restores(tiny_components):
    unet = tiny_components["unet"]
    before = {name: type(p) for name, p in unet.attn_processors.items()}
    with neighbour_attention_enabled(unet, num_steps=3, neighbour_weight=0.5) as processor:
        inside = unet.attn_processors
        assert processor.num_steps == 3 and processor.neighbour_weight == 0.5
        for name, p in inside.items():
            assert isinstance(p, NeighbourAttnProcessor) == name.endswith("attn1.processor")
        assert any(isinstance(p, NeighbourAttnProcessor) for p in inside.values())
    assert {name: type(p) for name, p in unet.attn_processors.items()} == before


def _unet_out(unet, latents, states, pooled, time_ids):
    with torch.no_grad():
        return unet(latents, 10, encoder_hidden_states=states,
                    added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample


def test_whole_unet_one_step_equals_plain_and_weight_zero_isolates(tiny_components):
    unet = tiny_components["unet"]
    gen = torch.Generator().manual_seed(0)
    n = 4
    latents = torch.randn(n, 4, 8, 8, generator=gen)
    states, pooled = torch.randn(n, 77, 64, generator=gen), torch.randn(n, 32, generator=gen)
    time_ids = torch.tensor([[64.0, 64, 0, 0, 64, 64]]).repeat(n, 1)
    plain = _unet_out(unet, latents[:1], states[:1], pooled[:1], time_ids[:1])
    with neighbour_attention_enabled(unet, num_steps=1):
        assert torch.equal(_unet_out(unet, latents[:1], states[:1], pooled[:1], time_ids[:1]), plain)

    other_states = states.clone()
    other_states[2] = torch.randn(77, 64, generator=gen)  # new text for step 3
    with neighbour_attention_enabled(unet, num_steps=n, neighbour_weight=0.0):
        a = _unet_out(unet, latents, states, pooled, time_ids)
        b = _unet_out(unet, latents, other_states, pooled, time_ids)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=1e-6)
    with neighbour_attention_enabled(unet, num_steps=n, neighbour_weight=1.0):
        c = _unet_out(unet, latents, states, pooled, time_ids)
        d = _unet_out(unet, latents, other_states, pooled, time_ids)
    assert (c[1] - d[1]).abs().max() > 1e-4  # the neighbour sees step 3's new text
