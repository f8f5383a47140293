"""OpenCLIP ViT-H-14, written natively, in the two roles DynamiCrafter gives it.

* :class:`OpenCLIPTextEncoder` (the release's ``FrozenOpenCLIPEmbedder``, checkpoint prefix ``cond_stage_model.``):
  token ids ``(b, 77)`` -> per-token features ``(b, 77, 1024)``. With ``layer="penultimate"`` (what every DynamiCrafter
  config uses) the last residual block is skipped and ``ln_final`` is applied to the output of the one before it.
* :class:`OpenCLIPImageEncoder` (the release's ``FrozenOpenCLIPImageEmbedderV2``, prefix ``embedder.``): images in
  [-1, 1] ``(b, 3, H, W)`` -> every token of the vision transformer, ``(b, 257, 1280)``: the class token and the 256
  patch tokens straight out of the last residual block, i.e. *before* ``ln_post`` and ``proj``.

Parameter names mirror ``open_clip.CLIP`` (open_clip 2.22, which the release pins) so that the release checkpoint
loads strictly: the text stem and head (``token_embedding``, ``positional_embedding``, ``ln_final``,
``text_projection``, ``logit_scale``) sit at the top of ``model``, the vision tower under ``model.visual``. The release
builds the whole CLIP model and deletes the tower it does not need: the text encoder has no ``visual``, and the image
encoder keeps the text stem and head (unused, but in the checkpoint) and only lacks the text ``transformer``.

Attention uses :func:`torch.nn.functional.scaled_dot_product_attention`; the text tower's causal mask is its
``is_causal`` flag. No tensor is held in a buffer (the release's ``attn_mask``, ``mean`` and ``std`` are
non-persistent), so a model built on the meta device and loaded with ``assign=True`` is complete.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from showme_i2g.text.tokenizers import default_clip_tokenizer

OPENCLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENCLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SUPPORTED_ARCH = "ViT-H-14"


@dataclass(frozen=True)
class TextTowerConfig:
    """Shape of the OpenCLIP text transformer; the defaults are ViT-H-14's."""

    width: int = 1024
    layers: int = 24
    heads: int = 16
    context_length: int = 77
    vocab_size: int = 49408
    mlp_ratio: float = 4.0


@dataclass(frozen=True)
class VisionTowerConfig:
    """Shape of the OpenCLIP vision transformer; the defaults are ViT-H-14's (257 tokens of width 1280)."""

    width: int = 1280
    layers: int = 32
    heads: int = 16
    patch_size: int = 14
    image_size: int = 224
    mlp_ratio: float = 4.0

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        """Class token plus one token per patch."""
        return self.grid_size**2 + 1


DEFAULT_EMBED_DIM = 1024  # ViT-H-14's joint embedding width (text_projection and visual.proj outputs)


# --------------------------------------------------------------------------------------------------------------------
# Transformer blocks (open_clip's ResidualAttentionBlock layout)
# --------------------------------------------------------------------------------------------------------------------


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter layout, batch-first.

    ``in_proj_weight`` packs the query, key and value projections as ``(3 * width, width)``; ``out_proj`` is a Linear.
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        """(b, n, width) -> (b, n, width); with ``causal`` token i only sees tokens 0..i."""
        b, n, width = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(b, n, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, width))


class MLP(nn.Module):
    """``c_fc`` -> exact GELU -> ``c_proj`` (ViT-H-14 does not use QuickGELU)."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = MLP(width, int(width * mlp_ratio))

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal=causal)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of :class:`ResidualAttentionBlock` under ``resblocks``."""

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads, mlp_ratio) for _ in range(layers))

    def forward(self, x: torch.Tensor, causal: bool = False, num_layers: int | None = None) -> torch.Tensor:
        """Run the first ``num_layers`` blocks (all by default) on batch-first tokens ``(b, n, width)``."""
        for block in self.resblocks[:num_layers]:
            x = block(x, causal=causal)
        return x


# --------------------------------------------------------------------------------------------------------------------
# Towers
# --------------------------------------------------------------------------------------------------------------------


class VisionTransformer(nn.Module):
    """open_clip's ``VisionTransformer`` (class token, ``ln_pre``/``ln_post``, ``proj``), without patch dropout."""

    def __init__(self, config: VisionTowerConfig, embed_dim: int) -> None:
        super().__init__()
        self.config = config
        width = config.width
        self.conv1 = nn.Conv2d(3, width, kernel_size=config.patch_size, stride=config.patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(width) * width**-0.5)
        self.positional_embedding = nn.Parameter(torch.randn(config.num_tokens, width) * width**-0.5)
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, config.layers, config.heads, config.mlp_ratio)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.randn(width, embed_dim) * width**-0.5)

    def forward_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised pixels (b, 3, S, S) -> (b, 1 + (S/patch)^2, width), the last block's output (no ``ln_post``).

        This is what DynamiCrafter's ``FrozenOpenCLIPImageEmbedderV2`` returns.
        """
        x = self.conv1(pixels).flatten(2).transpose(1, 2)  # (b, grid^2, width)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.transformer(self.ln_pre(x))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """open_clip's ``encode_image``: ``ln_post`` of the class token, projected: (b, embed_dim)."""
        return self.ln_post(self.forward_tokens(pixels)[:, 0]) @ self.proj


class OpenCLIPModel(nn.Module):
    """``open_clip.CLIP``'s attribute layout: the text tower at the top level, the vision tower under ``visual``.

    ``vision=None`` leaves out ``visual`` (the release's ``del model.visual``); ``text_transformer=False`` leaves out
    the text ``transformer`` but keeps the text stem and head (``del model.transformer``).
    """

    def __init__(
        self,
        text: TextTowerConfig,
        vision: VisionTowerConfig | None = None,
        embed_dim: int = DEFAULT_EMBED_DIM,
        text_transformer: bool = True,
    ) -> None:
        super().__init__()
        self.text_config = text
        self.token_embedding = nn.Embedding(text.vocab_size, text.width)
        self.positional_embedding = nn.Parameter(torch.empty(text.context_length, text.width))
        self.transformer: Transformer | None = (
            Transformer(text.width, text.layers, text.heads, text.mlp_ratio) if text_transformer else None
        )
        self.ln_final = nn.LayerNorm(text.width)
        self.text_projection = nn.Parameter(torch.empty(text.width, embed_dim))
        self.logit_scale = nn.Parameter(torch.full((), math.log(1 / 0.07)))
        self.visual: VisionTransformer | None = VisionTransformer(vision, embed_dim) if vision is not None else None
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=text.width**-0.5)

    def encode_text_tokens(self, tokens: torch.Tensor, skip_last_layers: int = 0) -> torch.Tensor:
        """Token ids (b, n <= context) -> ``ln_final`` of the causal transformer's tokens (b, n, width).

        ``skip_last_layers=1`` stops after the penultimate block (``ln_final`` is still applied, as in the release).
        """
        if self.transformer is None:
            raise RuntimeError("this OpenCLIP model was built without its text transformer")
        n = tokens.shape[1]
        x = self.token_embedding(tokens) + self.positional_embedding[:n].to(self.token_embedding.weight.dtype)
        x = self.transformer(x, causal=True, num_layers=len(self.transformer.resblocks) - skip_last_layers)
        return self.ln_final(x)


# --------------------------------------------------------------------------------------------------------------------
# Tokenizer and image preprocessing
# --------------------------------------------------------------------------------------------------------------------


def _clean_text(text: str) -> str:
    """open_clip's cleaning (HTML entities unescaped twice, whitespace collapsed, stripped; ftfy is not applied).

    The CLIP tokenizer's own normaliser then lower-cases.
    """
    text = html.unescape(html.unescape(text))
    return re.sub(r"\s+", " ", text).strip()


def tokenize(texts: str | Sequence[str], context_length: int = 77) -> torch.Tensor:
    """Texts -> LongTensor (b, context_length) of real CLIP ids, exactly as ``open_clip.tokenize`` lays them out.

    ``<start> tokens <end>``, then zeros; a text too long is cut to ``context_length`` ids whose last is ``<end>``.
    """
    if isinstance(texts, str):
        texts = [texts]
    tokenizer = default_clip_tokenizer()
    start, end = tokenizer.bos_token_id, tokenizer.eos_token_id
    encoded = tokenizer(
        [_clean_text(t) for t in texts], add_special_tokens=False, truncation=False, verbose=False
    ).input_ids
    result = torch.zeros(len(texts), context_length, dtype=torch.long)
    for row, ids in enumerate(encoded):
        ids = [start, *ids, end]
        if len(ids) > context_length:
            ids = ids[:context_length]
            ids[-1] = end
        result[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return result


def _gaussian_kernel1d(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """Normalised 1-D Gaussian of odd ``size`` centred on its middle tap."""
    x = torch.arange(size, dtype=like.dtype, device=like.device) - size // 2
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _blur_axis(x: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """Depthwise 1-D convolution of (b, c, h, w) along ``dim`` (2: height, 3: width) with reflect padding."""
    c = x.shape[1]
    pad = kernel.numel() // 2
    if dim == 3:
        weight, padding = kernel.view(1, 1, 1, -1), (pad, pad, 0, 0)
    else:
        weight, padding = kernel.view(1, 1, -1, 1), (0, 0, pad, pad)
    x = F.pad(x, padding, mode="reflect")
    return F.conv2d(x, weight.expand(c, 1, -1, -1), groups=c)


def resize_bicubic(x: torch.Tensor, size: tuple[int, int], antialias: bool = True) -> torch.Tensor:
    """``kornia.geometry.resize(x, size, interpolation="bicubic", align_corners=True, antialias=...)`` in torch ops.

    An image already of ``size`` is returned as is. When shrinking along either axis and ``antialias`` is set, kornia
    first blurs with a Gaussian of sigma ``max((factor - 1) / 2, 0.001)`` per axis (factor = input / output size) and
    odd kernel size ``max(int(4 * sigma), 3)`` (reflect padding), then interpolates. This is not torch's own
    ``antialias=True`` filter.
    """
    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x
    factors = (h / size[0], w / size[1])
    if antialias and max(factors) > 1:
        sigmas = [max((f - 1.0) / 2.0, 0.001) for f in factors]
        sizes = [max(int(4.0 * s), 3) for s in sigmas]
        sizes = [k + 1 if k % 2 == 0 else k for k in sizes]
        x = _blur_axis(x, _gaussian_kernel1d(sizes[1], sigmas[1], x), dim=3)
        x = _blur_axis(x, _gaussian_kernel1d(sizes[0], sigmas[0], x), dim=2)
    return F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=True)


def clip_preprocess(images: torch.Tensor, image_size: int = 224, antialias: bool = True) -> torch.Tensor:
    """Images in [-1, 1] (b, 3, H, W) -> (b, 3, image_size, image_size) normalised with OpenCLIP's mean and std."""
    x = resize_bicubic(images, (image_size, image_size), antialias=antialias)
    x = (x + 1.0) / 2.0
    mean = torch.tensor(OPENCLIP_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(OPENCLIP_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


# --------------------------------------------------------------------------------------------------------------------
# The release's encoders
# --------------------------------------------------------------------------------------------------------------------


def _check_arch(arch: str) -> None:
    if arch != SUPPORTED_ARCH:
        raise ValueError(
            f"only OpenCLIP {SUPPORTED_ARCH} is ported (got arch={arch!r}); shrink it with text_cfg/vision_cfg"
        )


class _FrozenModule(nn.Module):
    """A module that, once frozen, has no trainable parameters and stays in eval mode."""

    frozen: bool = False

    def freeze(self) -> None:
        self.frozen = True
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> _FrozenModule:
        return super().train(False if self.frozen else mode)


class OpenCLIPTextEncoder(_FrozenModule):
    """DynamiCrafter's text condition: OpenCLIP ViT-H-14 text tokens (the release's ``FrozenOpenCLIPEmbedder``).

    Constructed with the release YAML's params (``freeze``, ``layer``); ``version`` and ``device`` are accepted and
    ignored (weights come from the DynamiCrafter checkpoint, the device from the parameters). ``text_cfg`` overrides
    fields of :class:`TextTowerConfig` and ``embed_dim`` the projection width, e.g. for tiny test models.
    """

    LAYERS = ("last", "penultimate")

    def __init__(
        self,
        arch: str = SUPPORTED_ARCH,
        version: str | None = None,
        device: Any = None,
        max_length: int = 77,
        freeze: bool = True,
        layer: str = "last",
        *,
        text_cfg: Mapping[str, Any] | None = None,
        embed_dim: int = DEFAULT_EMBED_DIM,
    ) -> None:
        super().__init__()
        _check_arch(arch)
        if layer not in self.LAYERS:
            raise ValueError(f"layer must be one of {self.LAYERS}, got {layer!r}")
        config = replace(TextTowerConfig(), **dict(text_cfg or {}))
        if max_length != config.context_length:
            raise ValueError(f"max_length {max_length} differs from the text context length {config.context_length}")
        self.layer = layer
        self.skip_last_layers = 1 if layer == "penultimate" else 0
        self.model = OpenCLIPModel(config, vision=None, embed_dim=embed_dim)
        if freeze:
            self.freeze()

    @property
    def context_length(self) -> int:
        return self.model.text_config.context_length

    def tokenize(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Texts -> (b, context_length) CLIP ids on the model's device (see :func:`tokenize`)."""
        return tokenize(texts, self.context_length).to(self.model.token_embedding.weight.device)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids (b, 77) -> (b, 77, width) features (``ln_final`` of the last or penultimate block)."""
        return self.model.encode_text_tokens(tokens, skip_last_layers=self.skip_last_layers)

    def encode(self, text: str | Sequence[str] | torch.Tensor) -> torch.Tensor:
        """Texts or token ids -> (b, 77, width); the release's ``encode(prompts)``."""
        tokens = text if isinstance(text, torch.Tensor) else self.tokenize(text)
        return self(tokens)


class OpenCLIPImageEncoder(_FrozenModule):
    """DynamiCrafter's image condition: all ViT-H-14 vision tokens (the release's ``FrozenOpenCLIPImageEmbedderV2``).

    Holds the whole OpenCLIP model except the text transformer, as the release checkpoint does. ``layer``
    (``"pooled"``) is accepted for the YAML's sake and does not change the output; ``version`` and ``device`` are
    ignored. ``vision_cfg``/``text_cfg`` override :class:`VisionTowerConfig`/:class:`TextTowerConfig` fields.
    """

    def __init__(
        self,
        arch: str = SUPPORTED_ARCH,
        version: str | None = None,
        device: Any = None,
        freeze: bool = True,
        layer: str = "pooled",
        antialias: bool = True,
        *,
        vision_cfg: Mapping[str, Any] | None = None,
        text_cfg: Mapping[str, Any] | None = None,
        embed_dim: int = DEFAULT_EMBED_DIM,
    ) -> None:
        super().__init__()
        _check_arch(arch)
        if layer == "penultimate":
            raise NotImplementedError("the release's image embedder has no penultimate-layer output")
        self.layer = layer
        self.antialias = antialias
        vision = replace(VisionTowerConfig(), **dict(vision_cfg or {}))
        text = replace(TextTowerConfig(), **dict(text_cfg or {}))
        self.model = OpenCLIPModel(text, vision=vision, embed_dim=embed_dim, text_transformer=False)
        if freeze:
            self.freeze()

    @property
    def image_size(self) -> int:
        return self.model.visual.config.image_size

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images of any size -> normalised (b, 3, image_size, image_size), computed in float32."""
        return clip_preprocess(images.float(), self.image_size, antialias=self.antialias)

    def forward(self, images: torch.Tensor, no_dropout: bool = False) -> torch.Tensor:
        """Images in [-1, 1] (b, 3, H, W) -> (b, 257, 1280) tokens, before ``ln_post`` (in the parameters' dtype)."""
        pixels = self.preprocess(images).to(self.model.visual.conv1.weight.dtype)
        return self.model.visual.forward_tokens(pixels)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self(images)
