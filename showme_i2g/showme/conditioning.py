"""How ShowMe conditions the UNet: the cross-attention context and the photo's latent on the generated frames.

**Cross-attention context.** Every call of the UNet attends to ``[text tokens ; Resampler(image) tokens]``: the
OpenCLIP text tokens of the instruction, then the Resampler's tokens of the photo (the release's
``image_guided_synthesis`` and its training step). The unconditional input is the empty text and a zero image:
classifier-free guidance's unconditional branch at sampling, and the conditioning dropout of training (text, image
or both dropped per sample). :func:`cross_attention_context` is the one place that builds it; sampling
(``ShowMePipeline``) and training (:mod:`showme_i2g.showme.training`) both call it.

**First-frame latent.** DynamiCrafter concatenates the conditioning image's latent to the noisy latent of *every*
frame on the channel axis ("repeat"). ShowMe gives it to frame 0 only and zeros to the others (``mask``, the
release's ``mask_frame_cond``), so the later frames must come from the motion the model learned instead of copying
the photo. Sampling (:class:`~showme_i2g.showme.pipeline.ShowMePipeline`) and training
(:mod:`showme_i2g.showme.training`) must build exactly the same tensor, so both call :func:`first_frame_concat`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from ..validation import CONDITIONING_MODES

if TYPE_CHECKING:
    from .dynamicrafter.model import DynamiCrafter

__all__ = ["CONDITIONING_MODES", "UNCONDITIONAL_TEXT", "cross_attention_context", "first_frame_concat",
           "unconditional_context"]

UNCONDITIONAL_TEXT = ""
"""The text of the unconditional input (a dropped instruction; the unconditional branch of guidance)."""



def first_frame_concat(first_latent: torch.Tensor, num_frames: int, mode: str = "mask") -> torch.Tensor:
    """The channel-concat conditioning (b, c, num_frames, h, w) for a first-frame latent (b, c, h, w).

    ``mode="mask"`` puts the latent on frame 0 and zeros on frames 1.. (ShowMe); ``mode="repeat"`` puts it on every
    frame (DynamiCrafter). With ``num_frames=1`` (image mode, ShowMe's ``edit``) both are the latent itself.
    """
    if mode not in CONDITIONING_MODES:
        raise ValueError(f"mode must be one of {CONDITIONING_MODES}, got {mode!r}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if first_latent.dim() != 4:
        raise ValueError(f"first_latent must be (batch, channels, h, w), got shape {tuple(first_latent.shape)}")
    if mode == "repeat":
        return first_latent.unsqueeze(2).repeat(1, 1, num_frames, 1, 1)
    concat = first_latent.new_zeros(first_latent.shape[0], first_latent.shape[1], num_frames, *first_latent.shape[2:])
    concat[:, :, 0] = first_latent
    return concat


def cross_attention_context(
    model: DynamiCrafter,
    texts: Sequence[str],
    images: torch.Tensor,
    *,
    drop_text: torch.Tensor | None = None,
    drop_image: torch.Tensor | None = None,
) -> torch.Tensor:
    """ShowMe's cross-attention context (b, 77 + image tokens, d): the texts' tokens, then the images' Resampler tokens.

    ``images`` are (b, 3, H, W) in [-1, 1], one per text. Where ``drop_text[i]`` is true, item i gets
    :data:`UNCONDITIONAL_TEXT`; where ``drop_image[i]`` is true, a zero image (the photo times 0, so a gradient
    path stays the same). Both dropped is the unconditional input. The text tower is frozen in every stage, so its
    tokens are computed without autograd; the Resampler carries the ``edit`` LoRA and keeps its gradients.
    """
    texts = list(texts)
    if len(texts) != images.shape[0]:
        raise ValueError(f"texts and images must pair up, got {len(texts)} texts and {images.shape[0]} images")
    if drop_text is not None:
        texts = [UNCONDITIONAL_TEXT if drop else text for text, drop in zip(texts, drop_text.tolist(), strict=True)]
    if drop_image is not None:
        images = images * (~drop_image).to(images.device, images.dtype).view(-1, 1, 1, 1)
    with torch.no_grad():
        text_tokens = model.encode_text(texts)
    return torch.cat([text_tokens, model.encode_image_context(images)], dim=1)


def unconditional_context(model: DynamiCrafter, like: torch.Tensor) -> torch.Tensor:
    """The unconditional context (1, tokens, d): the empty text and a zero image shaped like ``like[:1]``."""
    dropped = torch.ones(1, dtype=torch.bool)
    return cross_attention_context(model, [UNCONDITIONAL_TEXT], like[:1], drop_text=dropped, drop_image=dropped)
