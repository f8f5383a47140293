"""How the photo's latent conditions each generated frame: ShowMe's first-frame-only rule, or vanilla DynamiCrafter's.

DynamiCrafter concatenates the conditioning image's latent to the noisy latent of *every* frame on the channel axis
("repeat"). ShowMe gives it to frame 0 only and zeros to the others (``mask``, the release's ``mask_frame_cond``),
so the later frames must come from the motion the model learned instead of copying the photo. Sampling
(:class:`~showme_i2g.showme.pipeline.ShowMePipeline`) and training (:mod:`showme_i2g.training.showme`) must build
exactly the same tensor, so both call :func:`first_frame_concat`.
"""

from __future__ import annotations

import torch

__all__ = ["CONDITIONING_MODES", "first_frame_concat"]

CONDITIONING_MODES = ("mask", "repeat")
"""``mask``: ShowMe (photo on frame 0, zeros elsewhere); ``repeat``: vanilla DynamiCrafter (photo on every frame)."""


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
