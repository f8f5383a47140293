"""ShowMe's motion consistency reward (stage 2): latent motion should follow the real clip's optical flow in time.

At high noise levels (t ≥ 500 in the paper, 700 in the release) the one-step estimate ẑ0 of a clip has lost its
detail but still shows *when* things move. For every latent position (h, w):

    Q(τ) ∝ ‖ẑ0[τ+1] − ẑ0[τ]‖₂ over channels          (the predicted clip's temporal motion profile)
    P(τ) ∝ |flow(x[τ] → x[τ+1])|, average-pooled to the latent grid   (the real clip's)

both + 1e-6 and normalised over τ, and L = λ · mean_hw KL(P ‖ Q), λ = 0.01. The reward never decodes latents, so
it sees the whole clip at once. The flow is computed from the real frames once per clip (no gradient through it);
the gradient flows through Q into the ``animate`` LoRA. As for the structure reward, samples below the threshold
contribute nothing and the batch loss is the eligible samples' sum over the batch size.

(The paper's appendix states 0.001 for the motion weight, the project's restored equations 0.01: ``weight`` is a
config value.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...flow import FlowEstimator, estimate_flow, flow_magnitude

DEFAULT_MIN_TIMESTEP = 500
DEFAULT_MOTION_WEIGHT = 0.01
EPS = 1e-6


def latent_motion(x0: torch.Tensor) -> torch.Tensor:
    """‖ẑ0[τ+1] − ẑ0[τ]‖ over channels: latents (b, c, T, h, w) -> (b, T−1, h, w)."""
    return torch.linalg.vector_norm(x0[:, :, 1:] - x0[:, :, :-1], dim=1)


def temporal_distribution(magnitudes: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """(b, T−1, h, w) non-negative magnitudes -> a distribution over the time axis (dim 1) at every position."""
    shifted = magnitudes + eps
    return shifted / shifted.sum(dim=1, keepdim=True)


def motion_kl(flow_magnitude: torch.Tensor, latent_magnitude: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """mean over (h, w) of KL(P ‖ Q), per sample (b,): P from the real flow, Q from the latents."""
    p = temporal_distribution(flow_magnitude.to(latent_magnitude.dtype), eps)
    q = temporal_distribution(latent_magnitude, eps)
    return (p * (p.log() - q.log())).sum(dim=1).flatten(1).mean(dim=1)


class MotionReward(nn.Module):
    """λ · mean_hw KL(P ‖ Q) for samples with t ≥ ``min_timestep``. Has no parameters."""

    def __init__(
        self, weight: float = DEFAULT_MOTION_WEIGHT, min_timestep: int = DEFAULT_MIN_TIMESTEP, eps: float = EPS
    ) -> None:
        super().__init__()
        self.weight = float(weight)
        self.min_timestep = int(min_timestep)
        self.eps = float(eps)

    def forward(self, x0_latents: torch.Tensor, flow_magnitude: torch.Tensor) -> torch.Tensor:
        """Unweighted KL per sample (b,) for latents (b, c, T, h, w) and flow magnitudes (b, T−1, h, w)."""
        if flow_magnitude.shape[1:] != (x0_latents.shape[2] - 1, *x0_latents.shape[3:]):
            raise ValueError(
                f"flow magnitudes {tuple(flow_magnitude.shape)} do not fit latents {tuple(x0_latents.shape)}: "
                "expected (b, T-1, h, w)"
            )
        return motion_kl(flow_magnitude.to(x0_latents.device), latent_motion(x0_latents), self.eps)

    def eligible(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Which samples the reward applies to: t ≥ ``min_timestep``."""
        return timesteps >= self.min_timestep

    def loss(
        self, x0_latents: torch.Tensor, timesteps: torch.Tensor, flow_magnitude: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """(λ · Σ_eligible KL / b, {"kl": mean KL of the eligible samples, "eligible": count})."""
        mask = self.eligible(timesteps.to(x0_latents.device))
        if not bool(mask.any()):
            return x0_latents.sum() * 0.0, {"eligible": 0.0}
        kl = self(x0_latents[mask], flow_magnitude.to(x0_latents.device)[mask])
        stats = {"kl": float(kl.detach().mean()), "eligible": float(mask.sum())}
        return self.weight * kl.sum() / x0_latents.shape[0], stats


def pool_flow_magnitudes(magnitudes: np.ndarray | torch.Tensor, latent_size: tuple[int, int]) -> torch.Tensor:
    """Per-pixel flow magnitudes (T−1, H, W) -> their means over each latent cell (T−1, h, w), float32."""
    magnitudes = torch.as_tensor(np.asarray(magnitudes), dtype=torch.float32)
    return F.adaptive_avg_pool2d(magnitudes.unsqueeze(1), latent_size).squeeze(1)


def clip_flow_magnitudes(
    frames: Any, latent_size: tuple[int, int], estimator: FlowEstimator | None = None
) -> torch.Tensor:
    """P's raw input for one clip: optical-flow magnitude between consecutive real frames, pooled to the latent grid.

    :param frames: the clip's frames as sampled for training ((T, H, W, 3) uint8, or anything
        :func:`showme_i2g.flow.estimate_flow` takes).
    :param estimator: a two-frame flow estimator; the project's :func:`~showme_i2g.flow.default_flow` when None.
    :return: (T−1, h, w) float32, no gradient.
    """
    return pool_flow_magnitudes(flow_magnitude(estimate_flow(frames, estimator)), latent_size)
