"""The LDM KL autoencoder DynamiCrafter works in (checkpoint prefix ``first_stage_model.``).

An image (b, 3, H, W) in [-1, 1] is encoded to a diagonal Gaussian over latents (b, embed_dim, H/f, W/f) with
f = 2^(len(ch_mult) - 1) (8 for the release's ``ch_mult: [1, 2, 4, 4]``); decoding maps latents back. The LDM's
``scale_factor`` (0.18215) is *not* applied here: that belongs to the diffusion model.

Names follow the release's ``Encoder``/``Decoder`` (``conv_in``, ``down.N.block.M``, ``down.N.downsample.conv``,
``mid.block_1``, ``mid.attn_1`` with 1x1-conv ``q``/``k``/``v``/``proj_out``, ``mid.block_2``, ``up.N.block.M``,
``up.N.upsample.conv``, ``norm_out``, ``conv_out``) plus ``quant_conv``/``post_quant_conv``. GroupNorm uses 32 groups,
so every channel count (``ch * mult``) must be a multiple of 32.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class DiagonalGaussianDistribution:
    """A Gaussian with diagonal covariance whose mean and log-variance are the two channel halves of ``parameters``."""

    def __init__(self, parameters: torch.Tensor, deterministic: bool = False) -> None:
        self.parameters = parameters
        self.mean, logvar = parameters.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.deterministic = deterministic
        if deterministic:
            self.std = self.var = torch.zeros_like(self.mean)
        else:
            self.std = torch.exp(0.5 * self.logvar)
            self.var = torch.exp(self.logvar)

    def sample(self, noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``mean + std * noise``. Without ``noise`` it is drawn on the CPU in float32 (with ``generator`` if given,
        else the global CPU RNG), as the release does, so seeded runs match it whatever the device."""
        if noise is None:
            noise = torch.randn(self.mean.shape, generator=generator)
        return self.mean + self.std * noise.to(device=self.mean.device, dtype=self.mean.dtype)

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL divergence to the standard normal, summed over (c, h, w): shape (b,)."""
        if self.deterministic:
            return torch.zeros(self.mean.shape[0], device=self.mean.device)
        return 0.5 * torch.sum(self.mean**2 + self.var - 1.0 - self.logvar, dim=[1, 2, 3])


class ResnetBlock(nn.Module):
    """GroupNorm -> SiLU -> 3x3 conv, twice, plus a 1x1 ``nin_shortcut`` when the channel count changes."""

    def __init__(self, in_channels: int, out_channels: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        self.norm1 = _group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        shortcut = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return shortcut + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the h*w positions, channels as features, with 1x1-conv projections."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        normed = self.norm(x)
        q, k, v = (proj(normed).flatten(2).transpose(1, 2).unsqueeze(1) for proj in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)  # (b, 1, hw, c)
        out = out.squeeze(1).transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(out)


def _make_attn(channels: int, attn_type: str) -> nn.Module:
    if attn_type == "vanilla":
        return AttnBlock(channels)
    if attn_type == "none":
        return nn.Identity()
    raise NotImplementedError(f"attn_type {attn_type!r} is not ported (only 'vanilla' and 'none')")


class Downsample(nn.Module):
    """Halve h and w: pad right/bottom by one then a stride-2 3x3 conv (or 2x2 average pooling without conv)."""

    def __init__(self, channels: int, with_conv: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2) if with_conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is None:
            return F.avg_pool2d(x, kernel_size=2, stride=2)
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Double h and w by nearest-neighbour interpolation, then (optionally) a 3x3 conv."""

    def __init__(self, channels: int, with_conv: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if with_conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x if self.conv is None else self.conv(x)


class _Level(nn.Module):
    """One resolution level: ``block`` (ResnetBlocks), ``attn`` (possibly empty) and an optional resampler."""

    def __init__(self, blocks: list[ResnetBlock], attns: list[nn.Module]) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attns)

    def run_blocks(self, h: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.block):
            h = block(h)
            if len(self.attn) > 0:
                h = self.attn[i](h)
        return h


class _Middle(nn.Module):
    """``block_1`` -> ``attn_1`` -> ``block_2`` at the lowest resolution."""

    def __init__(self, channels: int, dropout: float, attn_type: str) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, dropout)
        self.attn_1 = _make_attn(channels, attn_type)
        self.block_2 = ResnetBlock(channels, channels, dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


class Encoder(nn.Module):
    """Image (b, in_channels, H, W) -> moments (b, 2 * z_channels, H/f, W/f) (``double_z``)."""

    def __init__(
        self,
        *,
        ch: int,
        ch_mult: Sequence[int] = (1, 2, 4, 8),
        num_res_blocks: int,
        attn_resolutions: Sequence[int] = (),
        dropout: float = 0.0,
        resamp_with_conv: bool = True,
        in_channels: int,
        resolution: int,
        z_channels: int,
        double_z: bool = True,
        attn_type: str = "vanilla",
        **_unused: Any,
    ) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        res, block_in = resolution, ch
        for i, mult in enumerate(ch_mult):
            block_out = ch * mult
            blocks, attns = [], []
            for _ in range(num_res_blocks):
                blocks.append(ResnetBlock(block_in, block_out, dropout))
                block_in = block_out
                if res in attn_resolutions:
                    attns.append(_make_attn(block_in, attn_type))
            level = _Level(blocks, attns)
            if i != len(ch_mult) - 1:
                level.downsample = Downsample(block_in, resamp_with_conv)
                res //= 2
            self.down.append(level)
        self.mid = _Middle(block_in, dropout, attn_type)
        self.norm_out = _group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, 2 * z_channels if double_z else z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level.run_blocks(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Latents (b, z_channels, h, w) -> image (b, out_ch, h*f, w*f)."""

    def __init__(
        self,
        *,
        ch: int,
        out_ch: int,
        ch_mult: Sequence[int] = (1, 2, 4, 8),
        num_res_blocks: int,
        attn_resolutions: Sequence[int] = (),
        dropout: float = 0.0,
        resamp_with_conv: bool = True,
        resolution: int,
        z_channels: int,
        give_pre_end: bool = False,
        tanh_out: bool = False,
        attn_type: str = "vanilla",
        **_unused: Any,
    ) -> None:
        super().__init__()
        self.give_pre_end = give_pre_end
        self.tanh_out = tanh_out
        block_in = ch * ch_mult[-1]
        res = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, padding=1)
        self.mid = _Middle(block_in, dropout, attn_type)
        levels: list[_Level] = []
        for i in reversed(range(len(ch_mult))):
            block_out = ch * ch_mult[i]
            blocks, attns = [], []
            for _ in range(num_res_blocks + 1):
                blocks.append(ResnetBlock(block_in, block_out, dropout))
                block_in = block_out
                if res in attn_resolutions:
                    attns.append(_make_attn(block_in, attn_type))
            level = _Level(blocks, attns)
            if i != 0:
                level.upsample = Upsample(block_in, resamp_with_conv)
                res *= 2
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)  # up[0] is the highest resolution; it runs last
        self.norm_out = _group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level.run_blocks(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        if self.give_pre_end:
            return h
        h = self.conv_out(F.silu(self.norm_out(h)))
        return torch.tanh(h) if self.tanh_out else h


class AutoencoderKL(nn.Module):
    """The release's ``AutoencoderKL``, inference only: ``encode`` -> posterior, ``decode`` latents -> images.

    Built from the YAML's ``ddconfig`` and ``embed_dim``. Training-only params (``lossconfig``, ``monitor``,
    ``image_key``, ``colorize_nlabels``, ``ignore_keys``, ``test``, ``logdir``, ``test_args``, ``input_dim``) are
    accepted and ignored; ``ckpt_path`` is refused (load the state dict explicitly).
    """

    def __init__(
        self,
        ddconfig: Mapping[str, Any],
        lossconfig: Mapping[str, Any] | None = None,
        embed_dim: int = 4,
        ckpt_path: str | None = None,
        **_training_only: Any,
    ) -> None:
        super().__init__()
        if ckpt_path is not None:
            raise ValueError("AutoencoderKL does not load checkpoints itself; call load_state_dict")
        if not ddconfig.get("double_z", True):
            raise ValueError("the KL autoencoder needs double_z=True (mean and log-variance)")
        self.embed_dim = embed_dim
        self.encoder = Encoder(**ddconfig)
        self.decoder = Decoder(**ddconfig)
        z_channels = ddconfig["z_channels"]
        self.quant_conv = nn.Conv2d(2 * z_channels, 2 * embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)
        self.downscale = 2 ** (len(ddconfig.get("ch_mult", (1, 2, 4, 8))) - 1)

    def encode(self, x: torch.Tensor) -> DiagonalGaussianDistribution:
        """Images (b, 3, H, W) in [-1, 1] -> posterior over latents (b, embed_dim, H/f, W/f)."""
        return DiagonalGaussianDistribution(self.quant_conv(self.encoder(x)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (b, embed_dim, h, w) -> images (b, 3, h*f, w*f)."""
        return self.decoder(self.post_quant_conv(z))

    def forward(
        self, x: torch.Tensor, sample_posterior: bool = True
    ) -> tuple[torch.Tensor, DiagonalGaussianDistribution]:
        posterior = self.encode(x)
        z = posterior.sample() if sample_posterior else posterior.mode()
        return self.decode(z), posterior

    def decode_frames(self, z: torch.Tensor, chunk_size: int | None = None,
                      callback_on_decode: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Decode many frames, ``chunk_size`` at a time to bound memory (all at once when None).

        ``z`` is (n, embed_dim, h, w) -> (n, 3, h*f, w*f), or a video (b, embed_dim, t, h, w) -> (b, 3, t, h*f, w*f).
        ``chunk_size=1`` is the release's ``perframe_ae`` mode. ``callback_on_decode(done, total)`` is called before
        each of the ``total`` decoder calls, so a caller can report progress or raise to stop between them.
        """
        if z.dim() == 5:
            b, c, t, h, w = z.shape
            frames = self.decode_frames(z.transpose(1, 2).reshape(b * t, c, h, w), chunk_size, callback_on_decode)
            return frames.view(b, t, *frames.shape[1:]).transpose(1, 2)
        if chunk_size is None or chunk_size >= z.shape[0]:
            parts = [z]
        elif chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        else:
            parts = z.split(chunk_size)
        decoded = []
        for done, part in enumerate(parts):
            if callback_on_decode is not None:
                callback_on_decode(done, len(parts))
            decoded.append(self.decode(part))
        return decoded[0] if len(decoded) == 1 else torch.cat(decoded, dim=0)
