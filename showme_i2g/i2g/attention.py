"""Pairwise neighbour attention: how step i's image sees steps i-1 and i+1 (I2G, section 4.2).

The n images of one recipe are consecutive items of the UNet batch. In every self-attention (``attn1``) each image
attends to its own tokens and to the tokens of its previous and next step; the keys and values of the neighbours
are concatenated to its own along the token axis. Memory and time therefore grow linearly in n (3 slices per
image, whatever n is), unlike full joint attention over all steps (quadratic, and capped at 6 steps in
StackedDiffusion).

The paper's soft mask that favours the own slice is the ``neighbour_weight`` w: the unnormalised attention mass
of every neighbour token is multiplied by w, i.e. ``log(w)`` is added to its logits before the softmax.
w = 1 is plain attention over the three slices, w -> 0 approaches independent steps and w = 0 *is* independent
steps (the neighbour keys are skipped altogether). Classifier-free guidance doubles the batch as
[unconditional x n, conditional x n]; images are grouped in blocks of n consecutive items, so the halves never mix.

Anchors (a reference photo before step 1, kept steps, a global anchor) generalise the chain: a
:class:`ChainLayout` gives every link between consecutive images its own weight (0 = no link) and may name one
image that every image also attends to, as a fourth slice of keys. :func:`chain_attention` runs it; a layout with
equal links and no global anchor is the plain chain and runs :func:`neighbour_attention` itself, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention


def _neighbour_slices(x: torch.Tensor, num_steps: int) -> torch.Tensor:
    """(B, H, L, D) -> (B, H, 3L, D): for each image, [previous step, itself, next step] along the token axis.

    Edge images get zeros where they have no neighbour; the bias below masks those out.
    """
    b, h, length, d = x.shape
    grouped = x.view(b // num_steps, num_steps, h, length, d)
    zeros = torch.zeros_like(grouped[:, :1])
    previous = torch.cat([zeros, grouped[:, :-1]], dim=1)
    following = torch.cat([grouped[:, 1:], zeros], dim=1)
    return torch.cat([previous, grouped, following], dim=3).view(b, h, 3 * length, d)


def _neighbour_bias(num_steps: int, groups: int, length: int, weight: float, like: torch.Tensor) -> torch.Tensor:
    """Additive logit bias of shape (B, 1, 1, 3L): 0 on the own slice, log(w) on neighbours, -inf where none."""
    log_w = torch.full((num_steps,), math.log(weight), dtype=like.dtype, device=like.device)  # not via float32
    missing = torch.full_like(log_w, -math.inf)
    step = torch.arange(num_steps, device=like.device)
    per_slice = torch.stack(
        [
            torch.where(step > 0, log_w, missing),  # previous step exists
            torch.zeros_like(log_w),
            torch.where(step < num_steps - 1, log_w, missing),  # next step exists
        ],
        dim=1,
    )  # (n, 3)
    bias = per_slice.repeat_interleave(length, dim=1)  # (n, 3L)
    return bias.repeat(groups, 1).view(groups * num_steps, 1, 1, 3 * length)


def _token_windows(x: torch.Tensor, groups: int, width: int) -> torch.Tensor:
    """(B, H, L, D) -> (groups, n - width + 1, H, width * L, D): every run of ``width`` consecutive images of each
    group, their tokens end to end, as a *view* (no copy) when ``x`` came from a (B, L, H * D) projection.

    In token-major memory the tokens of images i-1, i and i+1 already lie one after the other, so the keys an
    image sees are a window of that memory; ``unfold`` names the overlapping windows without writing them out
    (concatenating wrote 3x the keys and values of every attention layer), and its backward sums the overlaps.
    """
    b, h, length, d = x.shape
    tokens = x.transpose(1, 2).reshape(groups, b // groups * length, h * d)  # a view for projection outputs
    windows = tokens.unfold(1, width * length, length)  # (groups, windows, H * D, width * L)
    return windows.transpose(2, 3).unflatten(3, (h, d)).transpose(2, 3)


def _unmasked_neighbour_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, num_steps: int
) -> torch.Tensor:
    """``neighbour_attention`` at w = 1 without any mask, so SDPA can pick its flash kernel.

    A mask is only needed for the -inf of a missing neighbour and the log(w) of a weighted one. At w = 1 the
    interior images attend over [previous, own, next] and the two end images of each group over [own, next] or
    [previous, own]: the same keys and values, none masked. On an H200 the masked call took 1.9x the unmasked one
    over the same three slices. The keys and values are windows of the projections' memory
    (:func:`_token_windows`), so nothing but the two end images' pairs is copied.
    """
    b, h, length, d = key.shape
    groups, n = b // num_steps, num_steps
    q = query.view(groups, n, h, query.shape[2], d)
    out_shape = (*query.shape[:3], value.shape[-1])  # values may be wider than keys, as SDPA allows
    pairs_k, pairs_v = _token_windows(key, groups, 2), _token_windows(value, groups, 2)
    ends = F.scaled_dot_product_attention(  # the first image of every group over [0, 1], the last over [n-2, n-1]
        torch.cat([q[:, 0], q[:, -1]]), torch.cat([pairs_k[:, 0], pairs_k[:, -1]]),
        torch.cat([pairs_v[:, 0], pairs_v[:, -1]]),
    )
    first, last = ends[:groups], ends[groups:]
    if n == 2:
        return torch.stack([first, last], dim=1).view(out_shape)
    triples_k, triples_v = _token_windows(key, groups, 3), _token_windows(value, groups, 3)
    parts = []
    for g in range(groups):  # one call per group: windows of different groups are not one strided batch
        inner = F.scaled_dot_product_attention(q[g, 1:-1], triples_k[g], triples_v[g])
        parts += [first[g : g + 1], inner, last[g : g + 1]]
    return torch.cat(parts).view(out_shape)


def neighbour_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, num_steps: int, neighbour_weight: float = 1.0
) -> torch.Tensor:
    """Scaled dot-product attention where each image of a group of ``num_steps`` also sees its two neighbours.

    Tensors are (B, heads, tokens, head_dim) with B a multiple of ``num_steps``; returns the same shape as
    ``query``. With ``num_steps == 1`` or ``neighbour_weight == 0`` this is exactly ordinary attention. At the
    default weight 1 no mask is built, so SDPA runs its fastest (flash) kernel; other weights pass the log(w)
    bias as an additive mask.
    """
    batch = query.shape[0]
    if num_steps < 1 or batch % num_steps:
        raise ValueError(f"num_steps must be a positive divisor of the batch size {batch}, got {num_steps}.")
    if not math.isfinite(neighbour_weight) or neighbour_weight < 0:
        raise ValueError(f"neighbour_weight must be a finite number >= 0, got {neighbour_weight}.")
    if num_steps == 1 or neighbour_weight == 0:
        return F.scaled_dot_product_attention(query, key, value)
    if neighbour_weight == 1:
        return _unmasked_neighbour_attention(query, key, value, num_steps)
    return masked_neighbour_attention(query, key, value, num_steps, neighbour_weight)


def masked_neighbour_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, num_steps: int, neighbour_weight: float
) -> torch.Tensor:
    """Every image over [previous, own, next] in one call, with the log(w) / -inf bias as an additive mask.

    Exact for any weight > 0, but a mask rules out the flash kernel; :func:`neighbour_attention` uses it only for
    weights other than 0 and 1 (benchmarks call it to measure what the unmasked path saves).
    """
    keys = _neighbour_slices(key, num_steps)
    values = _neighbour_slices(value, num_steps)
    bias = _neighbour_bias(num_steps, query.shape[0] // num_steps, key.shape[2], neighbour_weight, query)
    return F.scaled_dot_product_attention(query, keys, values, attn_mask=bias)


@dataclass(frozen=True)
class ChainLayout:
    """Who sees whom among the m consecutive images of one group (one CFG half) of the UNet batch.

    ``links[j]`` is the weight of the link between images j and j + 1 (``m - 1`` links): both see each other's
    tokens with that weight, and 0 means they do not see each other. ``anchor`` is the index of one image that
    every image also attends to with ``anchor_weight`` (I2G's chain plus a global anchor against drift); an image
    that already sees the anchor as itself or through a link does not see it twice.
    """

    links: tuple[float, ...]
    anchor: int | None = None
    anchor_weight: float = 1.0

    def __post_init__(self) -> None:
        for name, weight in [*(("a link weight", w) for w in self.links), ("anchor_weight", self.anchor_weight)]:
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {weight}.")
        if self.anchor is not None and not 0 <= self.anchor < self.num_images:
            raise ValueError(f"anchor must index one of the {self.num_images} images, got {self.anchor}.")

    @classmethod
    def plain(cls, num_images: int, neighbour_weight: float = 1.0) -> ChainLayout:
        """I2G's chain: every consecutive pair linked with the same weight, no global anchor."""
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images}.")
        return cls(links=(float(neighbour_weight),) * (num_images - 1))

    @property
    def num_images(self) -> int:
        return len(self.links) + 1

    @property
    def is_plain(self) -> bool:
        """True when :func:`neighbour_attention` computes it: all links equal and no global anchor that counts."""
        no_anchor = self.anchor is None or self.anchor_weight == 0
        return no_anchor and len(set(self.links)) <= 1

    def key_slices(self) -> tuple[list[list[int]], list[list[float]]]:
        """Per image, the images its keys come from ([previous, own, next] and the anchor when there is one) and
        each slice's weight (0 = masked out)."""
        m = self.num_images
        sources, weights = [], []
        for j in range(m):
            previous = self.links[j - 1] if j > 0 else 0.0
            following = self.links[j] if j < m - 1 else 0.0
            row_sources = [max(j - 1, 0), j, min(j + 1, m - 1)]
            row_weights = [previous, 1.0, following]
            if self.anchor is not None:
                seen = self.anchor == j or (self.anchor == j - 1 and previous > 0) or (
                    self.anchor == j + 1 and following > 0)
                row_sources.append(self.anchor)
                row_weights.append(0.0 if seen else self.anchor_weight)
            sources.append(row_sources)
            weights.append(row_weights)
        return sources, weights

    def key(self) -> tuple:
        """A hashable description (CUDA graphs are cached per layout)."""
        return (self.links, self.anchor, self.anchor_weight)


def _stack_slices(x: torch.Tensor, groups: int, m: int, sources: Sequence[Sequence[int]]) -> torch.Tensor:
    """(groups * m, h, L, d) -> (groups * r, h, S * L, d): for each of r rows of ``sources``, its S images' tokens
    one after the other. Plain slicing, no index tensor, so nothing is copied from the host (CUDA-graph safe)."""
    _, h, length, d = x.shape
    grouped = x.view(groups, m, h, length, d)
    count = len(sources[0])
    picked = torch.stack([grouped[:, s] for row in sources for s in row], dim=1)  # (groups, r * S, h, L, d)
    picked = picked.view(groups, len(sources), count, h, length, d).transpose(2, 3)
    return picked.reshape(groups * len(sources), h, count * length, d)


def _layout_bias(weights: Sequence[Sequence[float]], groups: int, length: int, like: torch.Tensor) -> torch.Tensor:
    """(B, 1, 1, S*L) additive bias: log(weight) per key slice, -inf for weight 0 (built on the device by fills)."""
    def value(weight: float) -> float:
        return math.log(weight) if weight > 0 else -math.inf

    rows = [
        torch.cat([torch.full((length,), value(w), dtype=like.dtype, device=like.device) for w in row])
        for row in weights
    ]
    bias = torch.stack(rows)  # (m, S*L)
    return bias.repeat(groups, 1).view(groups * len(weights), 1, 1, -1)


def _unmasked_chain_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, m: int,
    sources: Sequence[Sequence[int]], weights: Sequence[Sequence[float]],
) -> torch.Tensor:
    """A layout whose weights are all 0 or 1, with no mask: images are batched by how many slices they see (at
    most four kernel calls), and a weight-0 slice is simply left out, so SDPA may use its flash kernel."""
    groups = query.shape[0] // m
    by_count: dict[int, list[tuple[int, list[int]]]] = {}
    for j, (row_sources, row_weights) in enumerate(zip(sources, weights)):
        seen = [s for s, w in zip(row_sources, row_weights) if w > 0]
        by_count.setdefault(len(seen), []).append((j, seen))
    q = query.view(groups, m, *query.shape[1:])
    pieces: dict[int, torch.Tensor] = {}
    for members in by_count.values():
        rows = [j for j, _ in members]
        q_rows = torch.stack([q[:, j] for j in rows], dim=1).reshape(-1, *query.shape[1:])
        keys = _stack_slices(key, groups, m, [seen for _, seen in members])
        values = _stack_slices(value, groups, m, [seen for _, seen in members])
        out = F.scaled_dot_product_attention(q_rows, keys, values)
        out = out.view(groups, len(rows), *out.shape[1:])
        pieces.update({j: out[:, i] for i, j in enumerate(rows)})
    stacked = torch.stack([pieces[j] for j in range(m)], dim=1)
    return stacked.view(query.shape[0], *stacked.shape[2:])


def chain_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, layout: ChainLayout) -> torch.Tensor:
    """Attention where each image sees the images its :class:`ChainLayout` row names, with their weights.

    Tensors are (B, heads, tokens, head_dim) with B a multiple of ``layout.num_images`` (one group per CFG half).
    Cost stays linear in the number of images: three or four key slices per image. A plain layout runs
    :func:`neighbour_attention`, so adding the layout machinery changes nothing for I2G's own chain; a layout whose
    weights are all 0 or 1 runs without a mask; other weights add log(weight) to the logits as a mask.
    """
    m = layout.num_images
    batch = query.shape[0]
    if batch % m:
        raise ValueError(f"The batch size {batch} is not a multiple of the layout's {m} images.")
    if layout.is_plain:
        return neighbour_attention(query, key, value, m, layout.links[0] if layout.links else 1.0)
    sources, weights = layout.key_slices()
    if all(w in (0.0, 1.0) for row in weights for w in row):
        return _unmasked_chain_attention(query, key, value, m, sources, weights)
    groups = batch // m
    bias = _layout_bias(weights, groups, key.shape[2], query)
    keys, values = _stack_slices(key, groups, m, sources), _stack_slices(value, groups, m, sources)
    return F.scaled_dot_product_attention(query, keys, values, attn_mask=bias)


def chain_attention_mass(query: torch.Tensor, key: torch.Tensor, layout: ChainLayout) -> torch.Tensor:
    """How much of each image's attention goes to each image: (B, m), rows sum to 1, averaged over heads and
    query tokens. Explicit softmax for analysis and figures (small sizes only); the same bias as the kernel."""
    m = layout.num_images
    groups = query.shape[0] // m
    sources, weights = layout.key_slices()
    length = key.shape[2]
    keys = _stack_slices(key, groups, m, sources)
    logits = query.float() @ keys.float().transpose(-1, -2) / math.sqrt(key.shape[-1])
    probs = (logits + _layout_bias(weights, groups, length, logits)).softmax(dim=-1)
    per_slice = probs.view(*probs.shape[:3], -1, length).sum(-1).mean(dim=(1, 2))  # (B, S)
    mass = torch.zeros(query.shape[0], m, dtype=per_slice.dtype, device=per_slice.device)
    rows = torch.tensor(sources, device=key.device).repeat(groups, 1)
    return mass.scatter_add_(1, rows, per_slice)


class NeighbourAttnProcessor:
    """A diffusers attention processor for self-attention layers (``attn1``) that applies :func:`neighbour_attention`.

    It mirrors diffusers' ``AttnProcessor2_0`` (so LoRA layers on ``to_q``/``to_k``/``to_v``/``to_out`` work
    unchanged) and differs only in which keys each image sees. It is stateless apart from its two settings, so one
    instance can serve every layer.
    """

    def __init__(self, num_steps: int, neighbour_weight: float = 1.0, layout: ChainLayout | None = None) -> None:
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}.")
        if not math.isfinite(neighbour_weight) or neighbour_weight < 0:
            raise ValueError(f"neighbour_weight must be a finite number >= 0, got {neighbour_weight}.")
        if layout is not None and layout.num_images != num_steps:
            raise ValueError(f"The layout has {layout.num_images} images but num_steps is {num_steps}.")
        self.num_steps = num_steps
        self.neighbour_weight = float(neighbour_weight)
        self.layout = layout

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None:
            raise ValueError("NeighbourAttnProcessor is for self-attention (attn1); it was given encoder states.")
        if attention_mask is not None:
            raise ValueError("NeighbourAttnProcessor does not take an attention_mask for self-attention.")
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        batch = hidden_states.shape[0]
        query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (t.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for t in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        if self.layout is None:
            hidden_states = neighbour_attention(query, key, value, self.num_steps, self.neighbour_weight)
        else:
            hidden_states = chain_attention(query, key, value, self.layout)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))

        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def is_self_attention(processor_name: str) -> bool:
    """diffusers names every transformer block's self-attention ``...attn1.processor``."""
    return processor_name.endswith("attn1.processor")


def apply_neighbour_attention(
    unet: torch.nn.Module, num_steps: int, neighbour_weight: float = 1.0, layout: ChainLayout | None = None
) -> dict:
    """Install neighbour attention (or a :class:`ChainLayout`'s) in every ``attn1`` of ``unet``; returns the
    processors it replaced."""
    previous = dict(unet.attn_processors)
    processor = NeighbourAttnProcessor(num_steps, neighbour_weight, layout)
    unet.set_attn_processor(
        {name: processor if is_self_attention(name) else proc for name, proc in previous.items()}
    )
    return previous


@contextmanager
def neighbour_attention_enabled(
    unet: torch.nn.Module, num_steps: int, neighbour_weight: float = 1.0, layout: ChainLayout | None = None
) -> Iterator[NeighbourAttnProcessor]:
    """Neighbour attention for the duration of a ``with`` block; the UNet's own processors come back afterwards."""
    previous = apply_neighbour_attention(unet, num_steps, neighbour_weight, layout)
    try:
        yield next(p for n, p in unet.attn_processors.items() if is_self_attention(n))
    finally:
        unet.set_attn_processor(dict(previous))
