"""LPIPS (Zhang et al. 2018), ShowMe's perceptual distance between an edited image and its target (Table 1).

LPIPS compares deep features: both images pass through a frozen ImageNet backbone; at each tapped ReLU the features
are unit-normalised over channels, their squared difference is weighted per channel by a learned non-negative 1x1
"linear calibration" head, averaged over space and summed over the taps. 0 means identical.

The backbones are written here in plain torch, with module indices equal to torchvision's ``alexnet().features``,
``vgg16().features`` and ``squeezenet1_1().features``, so torchvision's ImageNet state dicts load as they are
(``features.``-prefixed whole-model dicts too). torchvision itself is only needed to *download* those weights
(the ``gpu`` extra); offline, give ``backbone_weights`` as a local ``.pth``. The calibration heads are the official
v0.1 files (``lin0.model.1.weight`` ...) that the ``lpips`` wheel ships in
``lpips/weights/v0.1/{alex,vgg,squeeze}.pth``;
they are found in that package's folder without importing it, or read from ``head_weights``.

Inputs are images in ``[0, 1]`` (PIL images, uint8 arrays or float tensors), rescaled to the ``[-1, 1]`` the
networks were calibrated on, then LPIPS's fixed input shift/scale.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..devices import best_device
from ..errors import InvalidInputError, WeightsNotFoundError
from .fid import images_to_uint8

__all__ = ["LPIPS", "LPIPS_TAPS", "build_backbone", "default_head_path"]

# backbone -> (indices of `features` whose outputs are tapped, channels at each tap)
LPIPS_TAPS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "alex": ((1, 4, 7, 9, 11), (64, 192, 384, 256, 256)),
    "vgg": ((3, 8, 15, 22, 29), (64, 128, 256, 512, 512)),
    "squeeze": ((1, 4, 7, 9, 10, 11, 12), (64, 128, 256, 384, 384, 512, 512)),
}
_TORCHVISION = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class Fire(nn.Module):
    """SqueezeNet's fire module, with torchvision's parameter names."""

    def __init__(self, inplanes: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        left = self.expand1x1_activation(self.expand1x1(x))
        return torch.cat([left, self.expand3x3_activation(self.expand3x3(x))], 1)


def _vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for width in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if width == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(width), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = int(width)
    return nn.Sequential(*layers)


def build_backbone(net: str) -> nn.Sequential:
    """The ``features`` part of torchvision's alexnet / vgg16 / squeezenet1_1 (random init, same module indices)."""
    if net == "alex":
        return nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
    if net == "vgg":
        return _vgg16_features()
    if net == "squeeze":
        return nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=3, stride=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(64, 16, 64, 64), Fire(128, 16, 64, 64),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(128, 32, 128, 128), Fire(256, 32, 128, 128),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256),
        )
    raise ValueError(f"net must be one of {sorted(LPIPS_TAPS)}, got {net!r}")


def default_head_path(net: str) -> Path:
    """The official v0.1 calibration head inside the installed ``lpips`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(
            f"The LPIPS calibration weights for '{net}' are missing; "
            "`pip install --no-deps lpips` or pass head_weights."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / f"{net}.pth"


def _load(path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    if not Path(path).is_file():
        raise WeightsNotFoundError(f"The LPIPS {what} file {path} does not exist.")
    return torch.load(path, map_location="cpu", weights_only=True)


def _torchvision_backbone(net: str) -> dict[str, torch.Tensor]:
    try:
        import torchvision.models as models
    except Exception as error:  # a CUDA torchvision on a CPU torch fails with several exception types
        raise WeightsNotFoundError(
            f"LPIPS-{net} needs ImageNet backbone weights: install the gpu extra (torchvision) or pass "
            "backbone_weights with a local torchvision .pth file."
        ) from error
    return getattr(models, _TORCHVISION[net])(weights="DEFAULT").features.state_dict()


class LPIPS(nn.Module):
    """Learned Perceptual Image Patch Similarity with an AlexNet (default), VGG16 or SqueezeNet1.1 backbone.

    ``backbone``/``heads`` may be given as modules (tests inject random ones); otherwise the backbone loads
    ``backbone_weights`` (a torchvision state dict path) or torchvision's ImageNet weights, and the heads load
    ``head_weights`` or the ``lpips`` wheel's v0.1 file. Call as ``lpips(images_a, images_b)`` -> ``(N,)``.
    """

    def __init__(
        self,
        net: str = "alex",
        backbone: nn.Sequential | None = None,
        heads: nn.ModuleList | None = None,
        backbone_weights: str | os.PathLike | None = None,
        head_weights: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 16,
    ) -> None:
        super().__init__()
        if net not in LPIPS_TAPS:
            raise ValueError(f"net must be one of {sorted(LPIPS_TAPS)}, got {net!r}")
        self.net = net
        self.taps, channels = LPIPS_TAPS[net]
        if backbone is None:
            backbone = build_backbone(net)
            state = _load(backbone_weights, "backbone") if backbone_weights else _torchvision_backbone(net)
            state = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
            backbone.load_state_dict(state, strict=True)
        self.backbone = backbone
        if heads is None:
            heads = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in channels)
            state = _load(head_weights or default_head_path(net), "calibration")
            heads.load_state_dict({k.replace("lin", "", 1).replace(".model.1", ""): v for k, v in state.items()})
        if len(heads) != len(self.taps):
            raise ValueError(f"LPIPS-{net} needs {len(self.taps)} heads, got {len(heads)}")
        self.heads = heads
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.batch_size = int(batch_size)
        self.requires_grad_(False)
        self.eval().to(best_device(device))

    @classmethod
    def tiny(cls, seed: int = 0, device: str | torch.device | None = "cpu") -> LPIPS:
        """LPIPS with a tiny random backbone laid out like AlexNet's ``features`` (ReLUs at the tapped indices 1, 4,
        7, 9, 11) and random non-negative calibration heads, as the official heads are: offline runs and tests."""
        torch.manual_seed(seed)
        widths = (8, 16, 16, 16, 16)
        backbone = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(widths[0], widths[1], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(widths[1], widths[2], 3, padding=1), nn.ReLU(),
            nn.Conv2d(widths[2], widths[3], 3, padding=1), nn.ReLU(),
            nn.Conv2d(widths[3], widths[4], 3, padding=1), nn.ReLU(),
        )
        heads = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in widths)
        with torch.no_grad():
            for head in heads:
                head.weight.abs_()
        return cls("alex", backbone=backbone, heads=heads, device=device)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Channel-normalised activations at the tapped layers for ``x`` in ``[-1, 1]``."""
        x = (x - self.shift) / self.scale
        out, last = [], max(self.taps)
        for index, layer in enumerate(self.backbone):
            x = layer(x)
            if index in self.taps:
                out.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
            if index == last:
                break
        return out

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """LPIPS of two ``(N, 3, H, W)`` batches in ``[-1, 1]`` (differentiable), shape ``(N,)``."""
        total = torch.zeros(a.shape[0], device=a.device)
        for head, fa, fb in zip(self.heads, self.features(a), self.features(b)):
            total = total + head((fa - fb) ** 2).mean(dim=(1, 2, 3))
        return total

    @torch.no_grad()
    def forward(self, images_a: Sequence[Any] | torch.Tensor, images_b: Sequence[Any] | torch.Tensor) -> torch.Tensor:
        """LPIPS of each pair of images (PIL, uint8 arrays, or float tensors in ``[0, 1]``); sizes must match."""
        a, b = images_to_uint8(images_a), images_to_uint8(images_b)
        if a.shape != b.shape:
            raise InvalidInputError(f"LPIPS compares images of equal size, got {tuple(a.shape)} and {tuple(b.shape)}.")
        device = self.shift.device
        out = []
        for start in range(0, a.shape[0], self.batch_size):
            xa, xb = (t[start : start + self.batch_size].to(device).float() / 127.5 - 1 for t in (a, b))
            out.append(self.distance(xa, xb).cpu())
        return torch.cat(out)
