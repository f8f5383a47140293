"""DynamiCrafter's attention modules: spatial and temporal transformers with dual (text + image) cross-attention.

A port of the public release's ``lvdm/modules/attention.py``. Module and parameter names follow the release so that
its ``model.ckpt`` loads strictly; the arithmetic goes through ``F.scaled_dot_product_attention`` instead of
xformers or explicit einsums.

* :class:`CrossAttention` splits its context into ``text_context_len`` (77) text tokens and the image tokens that
  follow. With ``image_cross_attention`` the image tokens get their own keys and values (``to_k_ip``, ``to_v_ip``)
  and the two attention outputs are summed, the image half weighted by ``image_cross_attention_scale * (1 +
  tanh(alpha))`` when the scale is learnable (``alpha`` is a 0-d parameter, initialised to 0, i.e. weight 1).
  Without it, only the text tokens are attended to.
* :class:`SpatialTransformer` works on ``(b*t, c, h, w)``: every frame on its own.
* :class:`TemporalTransformer` works on ``(b, c, t, h, w)``: every pixel attends over the frames (self-attention
  only). Setting its ``bypass`` attribute to True turns it into the identity, which makes the UNet purely spatial.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

TEXT_CONTEXT_LEN = 77
"""Number of text tokens at the head of every cross-attention context (the release hard-codes 77)."""

# Fused SDPA kernels on CUDA launch one block row per batch item and fail beyond 65,535 of them
# (pytorch/pytorch#146704); temporal attention can have (batch * height * width) items, so it is cut into chunks.
_MAX_SDPA_BATCH = 32768


def maybe_checkpoint(module: nn.Module, enabled: bool, function, *args: torch.Tensor | None) -> torch.Tensor:
    """Run ``function(*args)``, with activation checkpointing when enabled, training and gradients are on."""
    if enabled and module.training and torch.is_grad_enabled():
        return checkpoint(function, *args, use_reentrant=False)
    return function(*args)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, H*D) -> (B, H, N, D)."""
    b, n, _ = x.shape
    return x.view(b, n, heads, -1).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, N, D) -> (B, N, H*D)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, scale: float) -> torch.Tensor:
    """Scaled dot-product attention on (B, H, N, D) tensors, in batch chunks small enough for the fused kernels."""
    if q.shape[0] <= _MAX_SDPA_BATCH:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    chunks = []
    for start in range(0, q.shape[0], _MAX_SDPA_BATCH):
        stop = start + _MAX_SDPA_BATCH
        chunk_mask = mask if mask is None or mask.dim() < 4 or mask.shape[0] == 1 else mask[start:stop]
        q_chunk, k_chunk, v_chunk = q[start:stop], k[start:stop], v[start:stop]
        chunks.append(F.scaled_dot_product_attention(q_chunk, k_chunk, v_chunk, attn_mask=chunk_mask, scale=scale))
    return torch.cat(chunks)


class RelativePosition(nn.Module):
    """Learned embeddings of clipped relative distances ``k - q`` in ``[-max, max]`` (temporal attention only)."""

    def __init__(self, num_units: int, max_relative_position: int) -> None:
        super().__init__()
        self.num_units = num_units
        self.max_relative_position = max_relative_position
        self.embeddings_table = nn.Parameter(torch.empty(2 * max_relative_position + 1, num_units))
        nn.init.xavier_uniform_(self.embeddings_table)

    def forward(self, length_q: int, length_k: int) -> torch.Tensor:
        """(length_q, length_k, num_units) embeddings of the distance from every query to every key."""
        device = self.embeddings_table.device
        distance = torch.arange(length_k, device=device)[None, :] - torch.arange(length_q, device=device)[:, None]
        index = distance.clamp(-self.max_relative_position, self.max_relative_position) + self.max_relative_position
        return self.embeddings_table[index]


class CrossAttention(nn.Module):
    """Multi-head attention; self-attention when called without context, else text (+ image) cross-attention.

    :param query_dim: channels of the queries (and of the output).
    :param context_dim: channels of the context tokens; ``None`` for self-attention layers.
    :param heads: number of heads; ``dim_head``: channels per head.
    :param relative_position: add learned relative-position terms to logits and values (needs ``temporal_length``).
    :param temporal_length: frames the relative positions are clipped to.
    :param video_length: unused; accepted for compatibility with the release.
    :param image_cross_attention: attend to the image tokens (after the first ``text_context_len`` context tokens)
        with separate projections ``to_k_ip`` / ``to_v_ip`` and add the result.
    :param image_cross_attention_scale: fixed weight of the image branch.
    :param image_cross_attention_scale_learnable: multiply that weight by ``1 + tanh(alpha)``, ``alpha`` a learned
        scalar parameter initialised to 0.
    :param text_context_len: number of text tokens at the head of the context.
    """

    def __init__(
        self,
        query_dim: int,
        context_dim: int | None = None,
        heads: int = 8,
        dim_head: int = 64,
        dropout: float = 0.0,
        relative_position: bool = False,
        temporal_length: int | None = None,
        video_length: int | None = None,
        image_cross_attention: bool = False,
        image_cross_attention_scale: float = 1.0,
        image_cross_attention_scale_learnable: bool = False,
        text_context_len: int = TEXT_CONTEXT_LEN,
    ) -> None:
        super().__init__()
        inner_dim = heads * dim_head
        context_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.dim_head = dim_head
        self.scale = dim_head**-0.5
        self.video_length = video_length
        self.text_context_len = text_context_len
        self.image_cross_attention = image_cross_attention
        self.image_cross_attention_scale = image_cross_attention_scale
        self.image_cross_attention_scale_learnable = image_cross_attention_scale_learnable
        self.relative_position = relative_position

        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_k = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_v = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner_dim, query_dim), nn.Dropout(dropout))
        if relative_position:
            if temporal_length is None:
                raise ValueError("relative_position needs temporal_length")
            self.relative_position_k = RelativePosition(dim_head, temporal_length)
            self.relative_position_v = RelativePosition(dim_head, temporal_length)
        if image_cross_attention:
            self.to_k_ip = nn.Linear(context_dim, inner_dim, bias=False)
            self.to_v_ip = nn.Linear(context_dim, inner_dim, bias=False)
            if image_cross_attention_scale_learnable:
                self.alpha = nn.Parameter(torch.tensor(0.0))

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attend from ``x`` (B, N, query_dim) to itself or to ``context`` (B, L, context_dim).

        :param mask: optional boolean mask broadcastable to (B, heads, N, keys); True = may attend. It does not
            apply to the image branch.
        """
        q = _split_heads(self.to_q(x), self.heads)
        image_tokens = None
        if context is None:
            context = x
        else:
            if self.image_cross_attention:
                image_tokens = context[:, self.text_context_len :]
            context = context[:, : self.text_context_len]
        k = _split_heads(self.to_k(context), self.heads)
        v = _split_heads(self.to_v(context), self.heads)
        out = self._relative_attention(q, k, v, mask) if self.relative_position else _sdpa(q, k, v, mask, self.scale)
        out = _merge_heads(out)

        if image_tokens is not None:
            k_ip = _split_heads(self.to_k_ip(image_tokens), self.heads)
            v_ip = _split_heads(self.to_v_ip(image_tokens), self.heads)
            out_ip = _merge_heads(_sdpa(q, k_ip, v_ip, None, self.scale))
            weight = self.image_cross_attention_scale
            if self.image_cross_attention_scale_learnable:
                out = out + weight * out_ip * (torch.tanh(self.alpha) + 1)
            else:
                out = out + weight * out_ip
        return self.to_out(out)

    def _relative_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Explicit attention with relative-position terms on logits and values: (B, H, N, D) -> (B, H, N, D)."""
        len_q, len_k = q.shape[2], k.shape[2]
        rel_k = self.relative_position_k(len_q, len_k)  # (N, M, D)
        rel_v = self.relative_position_v(len_q, len_k)
        logits = (q @ k.transpose(-1, -2) + torch.einsum("bhnd,nmd->bhnm", q, rel_k)) * self.scale
        if mask is not None:
            logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        weights = logits.softmax(dim=-1)
        return weights @ v + torch.einsum("bhnm,nmd->bhnd", weights, rel_v)


class GEGLU(nn.Module):
    """Linear projection to ``2 * dim_out`` channels, gated by GELU: ``a * gelu(b)``."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """Transformer MLP: (GE)GLU or Linear+GELU to ``mult * dim`` channels, dropout, linear back to ``dim_out``."""

    def __init__(
        self, dim: int, dim_out: int | None = None, mult: int = 4, glu: bool = False, dropout: float = 0.0
    ) -> None:
        super().__init__()
        inner_dim = int(dim * mult)
        project_in = GEGLU(dim, inner_dim) if glu else nn.Sequential(nn.Linear(dim, inner_dim), nn.GELU())
        project_out = nn.Linear(inner_dim, dim if dim_out is None else dim_out)
        self.net = nn.Sequential(project_in, nn.Dropout(dropout), project_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Pre-norm block: self-attention (``attn1``), cross-attention (``attn2``), GEGLU feed-forward, all residual.

    ``attn2`` is self-attention too when no context is passed (the temporal transformers).

    :param checkpoint: use activation checkpointing (only while training with gradients enabled).
    :param disable_self_attn: let ``attn1`` attend to the context as well.
    :param relative_position, temporal_length: passed to both attentions (temporal blocks).
    """

    def __init__(
        self,
        dim: int,
        n_heads: int,
        d_head: int,
        dropout: float = 0.0,
        context_dim: int | None = None,
        gated_ff: bool = True,
        checkpoint: bool = True,
        disable_self_attn: bool = False,
        relative_position: bool = False,
        temporal_length: int | None = None,
        video_length: int | None = None,
        image_cross_attention: bool = False,
        image_cross_attention_scale: float = 1.0,
        image_cross_attention_scale_learnable: bool = False,
        text_context_len: int = TEXT_CONTEXT_LEN,
    ) -> None:
        super().__init__()
        temporal = {"relative_position": relative_position, "temporal_length": temporal_length}
        self.disable_self_attn = disable_self_attn
        self.attn1 = CrossAttention(
            dim, context_dim if disable_self_attn else None, n_heads, d_head, dropout, **temporal
        )
        self.ff = FeedForward(dim, dropout=dropout, glu=gated_ff)
        self.attn2 = CrossAttention(
            dim,
            context_dim,
            n_heads,
            d_head,
            dropout,
            video_length=video_length,
            image_cross_attention=image_cross_attention,
            image_cross_attention_scale=image_cross_attention_scale,
            image_cross_attention_scale_learnable=image_cross_attention_scale_learnable,
            text_context_len=text_context_len,
            **temporal,
        )
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.checkpoint = checkpoint

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return maybe_checkpoint(self, self.checkpoint, self._forward, x, context, mask)

    def _forward(self, x: torch.Tensor, context: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attn1(self.norm1(x), context if self.disable_self_attn else None, mask) + x
        x = self.attn2(self.norm2(x), context, mask) + x
        return self.ff(self.norm3(x)) + x


def _projection(use_linear: bool, dims: int, in_channels: int, out_channels: int) -> nn.Module:
    """A per-token channel projection: ``nn.Linear`` or a 1x1 convolution (the checkpoint's layout differs)."""
    if use_linear:
        return nn.Linear(in_channels, out_channels)
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    return conv(in_channels, out_channels, kernel_size=1)


class SpatialTransformer(nn.Module):
    """Transformer over the pixels of each image: input and output (N, C, H, W), N = batch * frames.

    GroupNorm, channel projection in, ``depth`` :class:`BasicTransformerBlock` s with cross-attention to the
    context (N, L, context_dim), zero-initialised projection out, residual.
    """

    def __init__(
        self,
        in_channels: int,
        n_heads: int,
        d_head: int,
        depth: int = 1,
        dropout: float = 0.0,
        context_dim: int | None = None,
        use_checkpoint: bool = True,
        disable_self_attn: bool = False,
        use_linear: bool = False,
        video_length: int | None = None,
        image_cross_attention: bool = False,
        image_cross_attention_scale_learnable: bool = False,
        text_context_len: int = TEXT_CONTEXT_LEN,
    ) -> None:
        super().__init__()
        inner_dim = n_heads * d_head
        self.in_channels = in_channels
        self.use_linear = use_linear
        self.norm = nn.GroupNorm(num_groups=32, num_channels=in_channels, eps=1e-6, affine=True)
        self.proj_in = _projection(use_linear, 2, in_channels, inner_dim)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(
                inner_dim,
                n_heads,
                d_head,
                dropout=dropout,
                context_dim=context_dim,
                checkpoint=use_checkpoint,
                disable_self_attn=disable_self_attn,
                video_length=video_length,
                image_cross_attention=image_cross_attention,
                image_cross_attention_scale_learnable=image_cross_attention_scale_learnable,
                text_context_len=text_context_len,
            )
            for _ in range(depth)
        )
        self.proj_out = _projection(use_linear, 2, inner_dim, in_channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        n, _, h, w = x.shape
        residual = x
        x = self.norm(x)
        if not self.use_linear:
            x = self.proj_in(x)
        x = x.flatten(2).transpose(1, 2)  # (N, H*W, C)
        if self.use_linear:
            x = self.proj_in(x)
        for block in self.transformer_blocks:
            x = block(x, context)
        if self.use_linear:
            x = self.proj_out(x)
        x = x.transpose(1, 2).reshape(n, -1, h, w)
        if not self.use_linear:
            x = self.proj_out(x)
        return x + residual


class TemporalTransformer(nn.Module):
    """Transformer over the frames of each pixel: input and output (B, C, T, H, W).

    GroupNorm (statistics over all frames), channel projection in, ``depth`` blocks in which every pixel's T
    tokens attend to each other (both ``attn1`` and ``attn2`` are self-attention: the released models use
    ``only_self_att=True``), zero-initialised projection out, residual.

    ``bypass`` (a plain attribute, default False, not part of the state dict): when True, :meth:`forward` returns
    its input unchanged, so that frames do not interact here (image mode).

    :param causal_attention: frame i attends only to frames <= i (self-attention blocks).
    :param relative_position: learned relative-position terms, clipped to ``temporal_length``.
    :param only_self_att: must be True; the release's temporal cross-attention to the context is not ported.
    :param causal_block_size: unused (as in the release).
    """

    def __init__(
        self,
        in_channels: int,
        n_heads: int,
        d_head: int,
        depth: int = 1,
        dropout: float = 0.0,
        context_dim: int | None = None,
        use_checkpoint: bool = True,
        use_linear: bool = False,
        only_self_att: bool = True,
        causal_attention: bool = False,
        causal_block_size: int = 1,
        relative_position: bool = False,
        temporal_length: int | None = None,
    ) -> None:
        super().__init__()
        if not only_self_att:
            raise NotImplementedError("TemporalTransformer ports only the self-attention variant (only_self_att=True)")
        if (causal_attention or relative_position) and temporal_length is None:
            raise ValueError("causal_attention and relative_position need temporal_length")
        inner_dim = n_heads * d_head
        self.in_channels = in_channels
        self.use_linear = use_linear
        self.only_self_att = only_self_att
        self.causal_attention = causal_attention
        self.causal_block_size = causal_block_size
        self.relative_position = relative_position
        self.temporal_length = temporal_length
        self.bypass = False
        self.norm = nn.GroupNorm(num_groups=32, num_channels=in_channels, eps=1e-6, affine=True)
        self.proj_in = _projection(use_linear, 1, in_channels, inner_dim)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(
                inner_dim,
                n_heads,
                d_head,
                dropout=dropout,
                context_dim=None,
                checkpoint=use_checkpoint,
                relative_position=relative_position,
                temporal_length=temporal_length,
            )
            for _ in range(depth)
        )
        self.proj_out = _projection(use_linear, 1, inner_dim, in_channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def _project(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Apply a channel projection to (N, T, C) tokens (a Conv1d wants channels first)."""
        if self.use_linear:
            return layer(x)
        return layer(x.transpose(1, 2)).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, T, H, W) -> same shape; ``context`` is ignored (self-attention only)."""
        if self.bypass:
            return x
        b, c, t, h, w = x.shape
        residual = x
        x = self.norm(x)
        x = x.permute(0, 3, 4, 2, 1).reshape(b * h * w, t, c)  # every pixel's frames
        x = self._project(self.proj_in, x)
        mask = None
        if self.causal_attention:
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        for block in self.transformer_blocks:
            x = block(x, None, mask)
        x = self._project(self.proj_out, x)
        x = x.reshape(b, h, w, t, c).permute(0, 4, 3, 1, 2)
        return x + residual
