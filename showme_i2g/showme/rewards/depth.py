"""Monocular depth for ShowMe's structure reward: any transformers depth model, differentiable end to end.

The paper uses a DPT/MiDaS depth estimator (Ranftl et al.). Any ``AutoModelForDepthEstimation`` model works here
(DPT, DPT-hybrid MiDaS, Depth-Anything V1/V2, ...); the default is Depth-Anything-V2-Small. The image processors of
transformers work on numpy arrays and would cut the gradient, so preprocessing is redone in torch: resize to the
model's input size (a multiple of its patch size), normalise with the processor's mean and std. The predicted depth
(or disparity) is resized back to the image and min-max normalised per image, as the structure reward compares
shapes, not scales: a model's depth is only defined up to an affine map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...dtypes import resolve_dtype
from ...errors import missing_weights

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
"""Depth-Anything V2 Small (24.8 M parameters), the default depth reward network."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def minmax_normalise(maps: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each map of (b, ...) to [0, 1] by its own minimum and maximum (constant maps become 0)."""
    flat = maps.flatten(1)
    low = flat.min(dim=1, keepdim=True).values
    high = flat.max(dim=1, keepdim=True).values
    return ((flat - low) / (high - low).clamp_min(eps)).view_as(maps)


class DepthEstimator(nn.Module):
    """A frozen depth network behind differentiable preprocessing: RGB in [-1, 1] -> (b, 1, H, W) in [0, 1].

    :param model: a transformers depth model (its output has ``predicted_depth`` (b, h, w)) or any module that maps
        normalised pixels (b, 3, h, w) to (b, h, w) or (b, 1, h, w).
    :param size: the (height, width) the model sees; rounded up to a multiple of ``multiple_of``.
    :param mean: per-channel mean of the model's normalisation (on the 0..1 scale).
    :param std: per-channel std of the model's normalisation.
    """

    def __init__(
        self,
        model: nn.Module,
        size: tuple[int, int] = (518, 518),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        multiple_of: int = 14,
    ) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.size = tuple(-(-int(s) // multiple_of) * multiple_of for s in size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> DepthEstimator:
        """The reward network stays in eval mode (no dropout, fixed norms) whatever its owner does."""
        super().train(mode)
        self.model.eval()
        return self

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """RGB in [-1, 1] (b, 3, H, W) -> the model's input: resized (bicubic, as the processors do), normalised."""
        x = (images + 1.0) / 2.0
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bicubic", align_corners=False)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def raw(self, images: torch.Tensor) -> torch.Tensor:
        """The model's own prediction (b, 1, h, w), before resizing and normalisation."""
        pixel_values = self.preprocess(images)
        out = self.model(pixel_values=pixel_values)
        depth = out.predicted_depth if hasattr(out, "predicted_depth") else out
        return depth.unsqueeze(1) if depth.dim() == 3 else depth

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Depth maps (b, 1, H, W), min-max normalised per image, at the input's size."""
        depth = self.raw(images)
        depth = F.interpolate(depth.float(), size=images.shape[-2:], mode="bilinear", align_corners=False)
        return minmax_normalise(depth)

    @classmethod
    def from_pretrained(
        cls, model_id: str = DEFAULT_DEPTH_MODEL, *, dtype: torch.dtype | None = None,
        torch_dtype: torch.dtype | None = None, **kwargs
    ) -> DepthEstimator:
        """Load a hub depth model and read its input size and normalisation from its image processor config.

        ``dtype`` is the weights' type (``torch_dtype``, its old name, still works with a FutureWarning).

        :raises WeightsNotFoundError: when the weights are neither cached nor downloadable.
        """
        dtype = resolve_dtype(dtype, torch_dtype)
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        try:
            model = AutoModelForDepthEstimation.from_pretrained(model_id, dtype=dtype, **kwargs)
            processor = AutoImageProcessor.from_pretrained(model_id, **kwargs)
        except (OSError, ValueError) as exc:
            raise missing_weights(f"The depth reward model {model_id!r}", model_id,
                                  instead="pass another depth model") from exc
        size = getattr(processor, "size", None) or {}
        side = size.get("height") or size.get("shortest_edge") or 518
        width = size.get("width") or side
        multiple = int(getattr(processor, "ensure_multiple_of", None) or getattr(model.config, "patch_size", 1) or 1)
        mean = getattr(processor, "image_mean", None) or IMAGENET_MEAN
        std = getattr(processor, "image_std", None) or IMAGENET_STD
        return cls(model, size=(side, width), mean=mean, std=std, multiple_of=multiple)
