"""DynamiCrafter's 3D UNet: a Stable-Diffusion-style 2D UNet whose blocks are interleaved with temporal layers.

A port of the public release's ``lvdm/modules/networks/openaimodel3d.py`` (``UNetModel``). Module names, and hence
the state-dict keys, follow the release (including its spelling ``temopral_conv`` in :class:`ResBlock`), so that the
``model.diffusion_model.*`` tensors of its ``model.ckpt`` load strictly; the constructor takes the
``unet_config.params`` of the release's ``configs/inference_*_v1.0.yaml`` as keyword arguments.

Data flow: the video latent (b, c, t, h, w) is folded to (b*t, c, h, w). ResBlocks, down/up-sampling and the
spatial transformers treat every frame as an image; the temporal layers unfold to (b, c, t, h, w) and mix frames:
the temporal convolution at the end of every ResBlock (:class:`TemporalConvBlock`), the :class:`TemporalTransformer`
after every spatial transformer and, with ``addition_attention``, one more temporal transformer (``init_attn``) after
the input convolution.

**Image mode.** Every temporal module has a plain boolean attribute ``bypass`` (default False; not a parameter or
buffer, so state dicts are unchanged). When True the module is the identity, and then no frame sees another: the
UNet is a per-frame 2D UNet. :meth:`UNetModel.set_temporal_bypass` switches all of them at once (the release,
which merely skips temporal attention in image mode, still runs the temporal convolutions).

**Context layout.** ``context`` is (b, 77 + L, context_dim): 77 text tokens, then L image tokens. When L equals
``t * image_tokens_per_frame`` (16 per frame in the release, whose Resampler emits 16 queries per frame for 16
frames: L = 256 for t = 16) frame i cross-attends to the text and to image tokens
``[16*i, 16*(i+1))``; otherwise every frame sees the text and all L image tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import TEXT_CONTEXT_LEN, SpatialTransformer, TemporalTransformer, maybe_checkpoint

IMAGE_TOKENS_PER_FRAME = 16
"""Image tokens per frame in the released models (the Resampler's ``num_queries``; hard-coded in the release)."""


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (N,) -> (N, dim): ``[cos(t * f_i), sin(t * f_i)]``, ``f_i = max_period^(-i / (dim/2))``.

    Odd ``dim`` gets a trailing zero column.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = F.pad(embedding, (0, 1))
    return embedding


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 and cast back to the input's dtype (the release's ``normalization``).

    The affine parameters are upcast too, so the module also works when the weights are stored in half precision
    (the release only ever ran half precision under autocast, with float32 weights).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).type(x.dtype)


def normalization(channels: int, num_groups: int = 32) -> GroupNorm32:
    """The UNet's standard normalization layer: float32 GroupNorm with 32 groups."""
    return GroupNorm32(num_groups, channels)


class TimestepBlock(nn.Module):
    """A module whose forward takes the timestep embedding (and the batch size, to unfold frames) as well."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        raise NotImplementedError


class TimestepEmbedSequential(nn.Sequential):
    """A sequence of layers on (b*t, c, h, w) features, each called with the inputs it needs.

    :class:`TimestepBlock` s get the embedding, :class:`SpatialTransformer` s the context, and
    :class:`TemporalTransformer` s run on the features unfolded to (b, c, t, h, w).
    """

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None = None, batch_size: int | None = None
    ) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, TimestepBlock):
                x = layer(x, emb, batch_size=batch_size)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, TemporalTransformer):
                if batch_size is None:
                    raise ValueError("TemporalTransformer needs batch_size to unfold the frames")
                x = fold_frames(layer(unfold_frames(x, batch_size), context))
            else:
                x = layer(x)
        return x


def unfold_frames(x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(b*t, c, h, w) -> (b, c, t, h, w)."""
    bt, c, h, w = x.shape
    return x.view(batch_size, bt // batch_size, c, h, w).transpose(1, 2)


def fold_frames(x: torch.Tensor) -> torch.Tensor:
    """(b, c, t, h, w) -> (b*t, c, h, w)."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


class Downsample(nn.Module):
    """Halve height and width: a stride-2 3x3 convolution, or 2x2 average pooling without ``use_conv``."""

    def __init__(
        self, channels: int, use_conv: bool, dims: int = 2, out_channels: int | None = None, padding: int = 1
    ) -> None:
        super().__init__()
        _check_dims(dims)
        self.channels = channels
        self.out_channels = out_channels or channels
        self.use_conv = use_conv
        self.dims = dims
        if use_conv:
            self.op: nn.Module = nn.Conv2d(channels, self.out_channels, 3, stride=2, padding=padding)
        else:
            if self.out_channels != channels:
                raise ValueError("Downsample without a convolution cannot change the channel count")
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Double height and width (nearest neighbour), then a 3x3 convolution if ``use_conv``."""

    def __init__(
        self, channels: int, use_conv: bool, dims: int = 2, out_channels: int | None = None, padding: int = 1
    ) -> None:
        super().__init__()
        _check_dims(dims)
        self.channels = channels
        self.out_channels = out_channels or channels
        self.use_conv = use_conv
        self.dims = dims
        if use_conv:
            self.conv = nn.Conv2d(channels, self.out_channels, 3, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class TemporalConvBlock(nn.Module):
    """Four residual GroupNorm-SiLU-Conv3d stages along time, on (B, C, T, H, W); the last is zero-initialised.

    Kernels are (3, 1, 1); with ``spatial_aware`` they alternate (3, 3, 1) and (3, 1, 3).

    ``bypass`` (a plain attribute, default False, not part of the state dict): when True, :meth:`forward` returns
    its input unchanged, so that frames do not interact here (image mode).
    """

    def __init__(
        self, in_channels: int, out_channels: int | None = None, dropout: float = 0.0, spatial_aware: bool = False
    ) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.bypass = False
        height_kernel, height_pad = ((3, 3, 1), (1, 1, 0)) if spatial_aware else ((3, 1, 1), (1, 0, 0))
        width_kernel, width_pad = ((3, 1, 3), (1, 0, 1)) if spatial_aware else ((3, 1, 1), (1, 0, 0))

        def stage(cin: int, cout: int, kernel: tuple[int, ...], pad: tuple[int, ...], drop: bool) -> nn.Sequential:
            layers: list[nn.Module] = [nn.GroupNorm(32, cin), nn.SiLU()]
            if drop:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.Conv3d(cin, cout, kernel, padding=pad))
            return nn.Sequential(*layers)

        self.conv1 = stage(in_channels, out_channels, height_kernel, height_pad, drop=False)
        self.conv2 = stage(out_channels, in_channels, width_kernel, width_pad, drop=True)
        self.conv3 = stage(out_channels, in_channels, height_kernel, height_pad, drop=True)
        self.conv4 = stage(out_channels, in_channels, width_kernel, width_pad, drop=True)
        nn.init.zeros_(self.conv4[-1].weight)
        nn.init.zeros_(self.conv4[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bypass:
            return x
        return x + self.conv4(self.conv3(self.conv2(self.conv1(x))))


class ResBlock(TimestepBlock):
    """Residual block on (b*t, C, H, W) conditioned on the timestep embedding, then an optional temporal conv.

    :param channels: input channels; ``out_channels``: output channels (default: the same).
    :param emb_channels: channels of the timestep embedding.
    :param dropout: dropout before the last convolution.
    :param use_scale_shift_norm: FiLM-like conditioning (scale and shift after the norm) instead of addition.
    :param use_checkpoint: activation checkpointing (only while training with gradients enabled).
    :param use_conv: a 3x3 instead of a 1x1 convolution on the skip path when the channel count changes.
    :param up, down: up- or down-sample inside the block.
    :param use_temporal_conv: end with a :class:`TemporalConvBlock` (attribute ``temopral_conv``, the release's
        spelling), applied when the forward gets ``batch_size``.
    :param tempspatial_aware: spatially aware temporal convolution kernels.
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int | None = None,
        use_scale_shift_norm: bool = False,
        dims: int = 2,
        use_checkpoint: bool = False,
        use_conv: bool = False,
        up: bool = False,
        down: bool = False,
        use_temporal_conv: bool = False,
        tempspatial_aware: bool = False,
    ) -> None:
        super().__init__()
        _check_dims(dims)
        self.channels = channels
        self.emb_channels = emb_channels
        self.dropout = dropout
        self.out_channels = out_channels or channels
        self.use_conv = use_conv
        self.use_checkpoint = use_checkpoint
        self.use_scale_shift_norm = use_scale_shift_norm
        self.use_temporal_conv = use_temporal_conv

        self.in_layers = nn.Sequential(
            normalization(channels), nn.SiLU(), nn.Conv2d(channels, self.out_channels, 3, padding=1)
        )
        self.updown = up or down
        if up:
            self.h_upd: nn.Module = Upsample(channels, False, dims)
            self.x_upd: nn.Module = Upsample(channels, False, dims)
        elif down:
            self.h_upd = Downsample(channels, False, dims)
            self.x_upd = Downsample(channels, False, dims)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * self.out_channels if use_scale_shift_norm else self.out_channels)
        )
        self.out_layers = nn.Sequential(
            normalization(self.out_channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            nn.Conv2d(self.out_channels, self.out_channels, 3, padding=1),
        )
        nn.init.zeros_(self.out_layers[-1].weight)
        nn.init.zeros_(self.out_layers[-1].bias)
        if self.out_channels == channels:
            self.skip_connection: nn.Module = nn.Identity()
        elif use_conv:
            self.skip_connection = nn.Conv2d(channels, self.out_channels, 3, padding=1)
        else:
            self.skip_connection = nn.Conv2d(channels, self.out_channels, 1)
        if use_temporal_conv:
            self.temopral_conv = TemporalConvBlock(
                self.out_channels, self.out_channels, dropout=0.1, spatial_aware=tempspatial_aware
            )

    def forward(self, x: torch.Tensor, emb: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """(b*t, C, H, W) features and (b*t, emb_channels) embeddings -> (b*t, out_channels, H', W')."""
        return maybe_checkpoint(self, self.use_checkpoint, lambda a, e: self._forward(a, e, batch_size), x, emb)

    def _forward(self, x: torch.Tensor, emb: torch.Tensor, batch_size: int | None) -> torch.Tensor:
        if self.updown:
            h = self.in_layers[:-1](x)
            h = self.in_layers[-1](self.h_upd(h))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        h = self.skip_connection(x) + h
        if self.use_temporal_conv and batch_size:
            h = fold_frames(self.temopral_conv(unfold_frames(h, batch_size)))
        return h


def _check_dims(dims: int) -> None:
    if dims != 2:
        raise NotImplementedError("DynamiCrafter's UNet works on per-frame 2D features (dims=2)")


class UNetModel(nn.Module):
    """DynamiCrafter's denoising UNet: (b, in_channels, t, h, w) -> (b, out_channels, t, h, w).

    Keyword arguments are the release's ``unet_config.params`` (``UNetModel(**params)`` works), plus two constants
    that the release hard-codes: ``text_context_len`` (77) and ``image_tokens_per_frame`` (16). In the released
    models ``in_channels`` is 8: the noisy latent concatenated with the conditioning frame's latent.

    :param model_channels: channels of the first level; ``channel_mult``: multipliers per level.
    :param num_res_blocks: ResBlocks per level on the way down (one more on the way up).
    :param attention_resolutions: down-sampling factors (1, 2, 4, ...) at which transformers follow ResBlocks.
    :param num_heads, num_head_channels: head count, or channels per head (one of them must be set, not -1).
    :param transformer_depth: blocks per transformer; ``use_linear``: linear (not 1x1 conv) projections.
    :param context_dim: channels of the context tokens.
    :param temporal_conv: ResBlocks end with a temporal convolution; ``tempspatial_aware``: its spatial variant.
    :param temporal_attention: a TemporalTransformer after every SpatialTransformer.
    :param use_relative_position, use_causal_attention, temporal_length: options of the temporal attention.
    :param addition_attention: a temporal transformer (``init_attn``, 8 heads of ``num_head_channels``) after the
        input convolution.
    :param temporal_selfatt_only: for ``init_attn``; must be True (temporal cross-attention is not ported).
    :param image_cross_attention: separate cross-attention to the image tokens of the context.
    :param image_cross_attention_scale_learnable: weight it with a learned ``1 + tanh(alpha)``.
    :param fs_condition: add an embedding of the frame stride ``fs`` (``fps_embedding``) to the time embedding;
        ``default_fs`` is used when the forward gets none.
    :param use_fp16: run the blocks in float16 (weights must be converted by the caller).
    :param use_checkpoint: activation checkpointing, only while training with gradients enabled.
    """

    def __init__(
        self,
        in_channels: int,
        model_channels: int,
        out_channels: int,
        num_res_blocks: int,
        attention_resolutions: Sequence[int],
        dropout: float = 0.0,
        channel_mult: Sequence[int] = (1, 2, 4, 8),
        conv_resample: bool = True,
        dims: int = 2,
        context_dim: int | None = None,
        use_scale_shift_norm: bool = False,
        resblock_updown: bool = False,
        num_heads: int = -1,
        num_head_channels: int = -1,
        transformer_depth: int = 1,
        use_linear: bool = False,
        use_checkpoint: bool = False,
        temporal_conv: bool = False,
        tempspatial_aware: bool = False,
        temporal_attention: bool = True,
        use_relative_position: bool = True,
        use_causal_attention: bool = False,
        temporal_length: int | None = None,
        use_fp16: bool = False,
        addition_attention: bool = False,
        temporal_selfatt_only: bool = True,
        image_cross_attention: bool = False,
        image_cross_attention_scale_learnable: bool = False,
        default_fs: int = 4,
        fs_condition: bool = False,
        text_context_len: int = TEXT_CONTEXT_LEN,
        image_tokens_per_frame: int = IMAGE_TOKENS_PER_FRAME,
    ) -> None:
        super().__init__()
        if num_heads == -1 and num_head_channels == -1:
            raise ValueError("Either num_heads or num_head_channels has to be set")
        _check_dims(dims)
        self.in_channels = in_channels
        self.model_channels = model_channels
        self.out_channels = out_channels
        self.num_res_blocks = num_res_blocks
        self.attention_resolutions = tuple(attention_resolutions)
        self.dropout = dropout
        self.channel_mult = tuple(channel_mult)
        self.conv_resample = conv_resample
        self.temporal_attention = temporal_attention
        self.use_checkpoint = use_checkpoint
        self.dtype = torch.float16 if use_fp16 else torch.float32
        self.addition_attention = addition_attention
        self.temporal_length = temporal_length
        self.image_cross_attention = image_cross_attention
        self.image_cross_attention_scale_learnable = image_cross_attention_scale_learnable
        self.default_fs = default_fs
        self.fs_condition = fs_condition
        self.text_context_len = text_context_len
        self.image_tokens_per_frame = image_tokens_per_frame
        time_embed_dim = model_channels * 4

        def heads_for(ch: int) -> tuple[int, int]:
            if num_head_channels == -1:
                return num_heads, ch // num_heads
            return ch // num_head_channels, num_head_channels

        def res_block(ch: int, out_ch: int | None = None, temporal: bool = True, **updown: bool) -> ResBlock:
            return ResBlock(
                ch,
                time_embed_dim,
                dropout,
                out_channels=out_ch,
                use_scale_shift_norm=use_scale_shift_norm,
                use_checkpoint=use_checkpoint,
                use_temporal_conv=temporal_conv and temporal,
                tempspatial_aware=tempspatial_aware,
                **updown,
            )

        def transformers(ch: int) -> list[nn.Module]:
            heads, dim_head = heads_for(ch)
            layers: list[nn.Module] = [
                SpatialTransformer(
                    ch,
                    heads,
                    dim_head,
                    depth=transformer_depth,
                    context_dim=context_dim,
                    use_checkpoint=use_checkpoint,
                    use_linear=use_linear,
                    video_length=temporal_length,
                    image_cross_attention=image_cross_attention,
                    image_cross_attention_scale_learnable=image_cross_attention_scale_learnable,
                    text_context_len=text_context_len,
                )
            ]
            if temporal_attention:
                layers.append(
                    TemporalTransformer(
                        ch,
                        heads,
                        dim_head,
                        depth=transformer_depth,
                        context_dim=context_dim,
                        use_checkpoint=use_checkpoint,
                        use_linear=use_linear,
                        only_self_att=True,
                        causal_attention=use_causal_attention,
                        relative_position=use_relative_position,
                        temporal_length=temporal_length,
                    )
                )
            return layers

        self.time_embed = _embedding_mlp(model_channels, time_embed_dim)
        if fs_condition:
            self.fps_embedding = _embedding_mlp(model_channels, time_embed_dim)
            nn.init.zeros_(self.fps_embedding[-1].weight)
            nn.init.zeros_(self.fps_embedding[-1].bias)

        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(nn.Conv2d(in_channels, model_channels, 3, padding=1))]
        )
        if addition_attention:
            self.init_attn = TimestepEmbedSequential(
                TemporalTransformer(
                    model_channels,
                    n_heads=8,
                    d_head=num_head_channels,
                    depth=transformer_depth,
                    context_dim=context_dim,
                    use_checkpoint=use_checkpoint,
                    only_self_att=temporal_selfatt_only,
                    causal_attention=False,
                    relative_position=use_relative_position,
                    temporal_length=temporal_length,
                )
            )

        skip_channels = [model_channels]
        ch = model_channels
        ds = 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [res_block(ch, mult * model_channels)]
                ch = mult * model_channels
                if ds in attention_resolutions:
                    layers.extend(transformers(ch))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_channels.append(ch)
            if level != len(channel_mult) - 1:
                down: nn.Module = (
                    res_block(ch, ch, temporal=False, down=True)
                    if resblock_updown
                    else Downsample(ch, conv_resample, out_channels=ch)
                )
                self.input_blocks.append(TimestepEmbedSequential(down))
                skip_channels.append(ch)
                ds *= 2

        self.middle_block = TimestepEmbedSequential(res_block(ch), *transformers(ch), res_block(ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [res_block(ch + skip_channels.pop(), model_channels * mult)]
                ch = model_channels * mult
                if ds in attention_resolutions:
                    layers.extend(transformers(ch))
                if level and i == num_res_blocks:
                    layers.append(
                        res_block(ch, ch, temporal=False, up=True)
                        if resblock_updown
                        else Upsample(ch, conv_resample, out_channels=ch)
                    )
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(
            normalization(ch), nn.SiLU(), nn.Conv2d(model_channels, out_channels, 3, padding=1)
        )
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    # ----------------------------------------------------------------------------------------------- temporal
    def temporal_modules(self) -> Iterator[TemporalTransformer | TemporalConvBlock]:
        """Every module that mixes frames: the temporal transformers (``init_attn`` included) and temporal convs."""
        for module in self.modules():
            if isinstance(module, (TemporalTransformer, TemporalConvBlock)):
                yield module

    def set_temporal_bypass(self, bypass: bool) -> None:
        """Make every temporal module the identity (True: a per-frame image UNet) or active again (False)."""
        for module in self.temporal_modules():
            module.bypass = bypass

    # ------------------------------------------------------------------------------------------------ forward
    def frame_context(self, context: torch.Tensor, num_frames: int) -> torch.Tensor:
        """(b, 77 + L, d) context -> (b*t, tokens, d) context for every frame (see the module docstring)."""
        b, length, d = context.shape
        per_frame = self.image_tokens_per_frame
        if length == self.text_context_len + num_frames * per_frame:
            text, image = context[:, : self.text_context_len], context[:, self.text_context_len :]
            text = text.repeat_interleave(num_frames, dim=0)
            image = image.reshape(b * num_frames, per_frame, d)
            return torch.cat([text, image], dim=1)
        return context.repeat_interleave(num_frames, dim=0)

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor | float,
        context: torch.Tensor | None = None,
        fs: torch.Tensor | int | None = None,
        *,
        features_adapter: Sequence[torch.Tensor] | None = None,
        **kwargs: object,
    ) -> torch.Tensor:
        """Predict the denoising target for a batch of videos.

        :param x: (b, in_channels, t, h, w) latents; h and w divisible by ``2 ** (len(channel_mult) - 1)``.
        :param timesteps: (b,) diffusion timesteps (a scalar is broadcast).
        :param context: (b, 77 + L, context_dim) text tokens then image tokens (see the module docstring).
        :param fs: (b,) frame strides (a scalar is broadcast; ``default_fs`` when None); used with ``fs_condition``.
        :param features_adapter: optional T2I-adapter features added after every third input block (as the release).
        :param kwargs: ignored (the release accepts and ignores extra keywords).
        :return: (b, out_channels, t, h, w).
        """
        if context is None:
            raise ValueError("UNetModel needs a context (text tokens, then image tokens)")
        b, _, t, _, _ = x.shape
        timesteps = torch.as_tensor(timesteps, device=x.device).expand(b) if _is_scalar(timesteps) else timesteps
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).type(x.dtype))
        if self.fs_condition:
            if fs is None:
                fs = self.default_fs
            fs_tensor = torch.as_tensor(fs, device=x.device).expand(b) if _is_scalar(fs) else fs
            emb = emb + self.fps_embedding(timestep_embedding(fs_tensor, self.model_channels).type(x.dtype))
        emb = emb.repeat_interleave(t, dim=0)
        context = self.frame_context(context, t)

        # the release's use_fp16 flag, else the dtype the weights are stored in (float16/bfloat16 models)
        h = fold_frames(x).type(torch.float16 if self.dtype == torch.float16 else self.input_blocks[0][0].weight.dtype)
        skips = []
        adapter_index = 0
        for index, module in enumerate(self.input_blocks):
            h = module(h, emb, context=context, batch_size=b)
            if index == 0 and self.addition_attention:
                h = self.init_attn(h, emb, context=context, batch_size=b)
            if features_adapter is not None and (index + 1) % 3 == 0:
                h = h + features_adapter[adapter_index]
                adapter_index += 1
            skips.append(h)
        if features_adapter is not None and adapter_index != len(features_adapter):
            raise ValueError(f"Expected {adapter_index} adapter features, got {len(features_adapter)}")

        h = self.middle_block(h, emb, context=context, batch_size=b)
        for module in self.output_blocks:
            h = module(torch.cat([h, skips.pop()], dim=1), emb, context=context, batch_size=b)
        y = self.out(h.type(x.dtype))
        return unfold_frames(y, b).contiguous()


def _embedding_mlp(in_dim: int, out_dim: int) -> nn.Sequential:
    """Linear-SiLU-Linear, the MLP of the time and frame-stride embeddings."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))


def _is_scalar(value: torch.Tensor | float | int) -> bool:
    return not isinstance(value, torch.Tensor) or value.dim() == 0
