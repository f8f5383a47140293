"""DynamiCrafter's image-query resampler (a Perceiver / IP-Adapter "Q-Former"), checkpoint prefix ``image_proj_model.``.

Learned queries (``latents``) read the OpenCLIP image tokens through ``depth`` rounds of cross-attention and a
feed-forward layer, then are projected to the UNet's context width. With ``video_length`` set (every DynamiCrafter
config: 16) there are ``num_queries`` queries *per frame*, so one image becomes ``num_queries * video_length``
context tokens, frame-major: token ``t * num_queries + q`` belongs to frame t. The release's UNet reshapes them to
``(b * video_length, num_queries, c)`` and appends each frame's 16 tokens to the 77 text tokens.

Shapes for the 256/512/1024 configs: ``(b, 257, 1280)`` image tokens -> ``(b, 256, 1024)``.

Names follow the release (``layers.N.0`` attention with ``norm1``/``norm2``/``to_q``/``to_kv``/``to_out``,
``layers.N.1`` the feed-forward ``Sequential``: 0 LayerNorm, 1 Linear, 2 GELU, 3 Linear).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PerceiverAttention(nn.Module):
    """Queries (latents) attend to the image tokens and to themselves: keys/values are ``[norm1(x), norm2(latents)]``.

    The release computes ``softmax((q / d^0.25) @ (k / d^0.25)^T)`` in float32, i.e. the usual 1/sqrt(d) scaling;
    here that is :func:`F.scaled_dot_product_attention`.
    """

    def __init__(self, dim: int, dim_head: int = 64, heads: int = 8) -> None:
        super().__init__()
        self.heads = heads
        self.dim_head = dim_head
        inner = dim_head * heads
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.dim_head).transpose(1, 2)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """Image features (b, n, dim) and latents (b, m, dim) -> update for the latents (b, m, dim)."""
        x = self.norm1(x)
        latents = self.norm2(latents)
        q = self._split_heads(self.to_q(latents))
        k, v = self.to_kv(torch.cat([x, latents], dim=1)).chunk(2, dim=-1)
        out = F.scaled_dot_product_attention(q, self._split_heads(k), self._split_heads(v))
        b, m, _ = latents.shape
        return self.to_out(out.transpose(1, 2).reshape(b, m, self.heads * self.dim_head))


class FeedForward(nn.Sequential):
    """LayerNorm -> Linear (no bias) -> GELU -> Linear (no bias), widening by ``mult``."""

    def __init__(self, dim: int, mult: float = 4) -> None:
        inner = int(dim * mult)
        super().__init__(
            nn.LayerNorm(dim),
            nn.Linear(dim, inner, bias=False),
            nn.GELU(),
            nn.Linear(inner, dim, bias=False),
        )


class Resampler(nn.Module):
    """Image tokens (b, n, embedding_dim) -> (b, num_queries * video_length, output_dim) context tokens.

    Without ``video_length`` the output is (b, num_queries, output_dim). Parameters as in the release YAML.
    """

    def __init__(
        self,
        dim: int = 1024,
        depth: int = 8,
        dim_head: int = 64,
        heads: int = 16,
        num_queries: int = 8,
        embedding_dim: int = 768,
        output_dim: int = 1024,
        ff_mult: float = 4,
        video_length: int | None = None,
    ) -> None:
        super().__init__()
        self.num_queries = num_queries
        self.video_length = video_length
        total_queries = num_queries * (video_length or 1)
        self.latents = nn.Parameter(torch.randn(1, total_queries, dim) / dim**0.5)
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(dim, dim_head, heads), FeedForward(dim, ff_mult)]) for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, n, embedding_dim) -> (b, num_queries * video_length, output_dim), frame-major."""
        latents = self.latents.expand(x.shape[0], -1, -1)
        x = self.proj_in(x)
        for attn, ff in self.layers:
            latents = latents + attn(x, latents)
            latents = latents + ff(latents)
        return self.norm_out(self.proj_out(latents))
