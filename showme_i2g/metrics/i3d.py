"""I3D (Inflated Inception-v1, Carreira & Zisserman 2017): the Kinetics-400 video network whose logits FVD compares.

FVD (Unterthiner et al. 2018) embeds each clip with the Kinetics-400 I3D from TF-Hub and takes the Fréchet distance
of the 400-d outputs (logits, before the softmax). Two PyTorch forms of that network are in common use, and
:class:`I3DFeatures` loads either:

- **TorchScript** ``i3d_torchscript.pt`` — the TF-Hub network exported by StyleGAN-V (Skorokhodov et al. 2022) and
  used by most recent video papers' FVD code (hub copy: ``flateon/FVD-I3D-torchscript``; original URL
  ``https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt``). It is called as
  ``model(x, rescale=False, resize=False, return_features=True)`` on ``[-1, 1]`` clips already resized to 224.
  This is the default: its numbers match published FVDs.
- **A state dict** for :class:`InceptionI3d` below, whose module names follow the widely used ``pytorch-i3d``
  layout (``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.running_mean``, ``logits.conv3d.bias``), e.g.
  ``rgb_imagenet.pt`` or VideoGPT's ``i3d_pretrained_400.pt``. Our port is our own code, written from the paper's
  architecture; TensorFlow's "SAME" padding is computed per input as TF does.

Preprocessing follows the standard FVD code: frames in ``[0, 1]``, the short side resized to 224 (bilinear,
``align_corners=False``), a centre crop of 224 x 224, then ``x * 2 - 1``.

:class:`InceptionI3d` takes a ``width`` factor so tests build a tiny network with the same code path (same blocks,
same padding, same pooling) in milliseconds. Its final average pool is the TF model's ``[2, 7, 7]`` VALID window,
clamped to the feature map so small test inputs still run; at 224 x 224 and 16 frames it is exactly the original.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..devices import best_device
from ..errors import WeightsNotFoundError, missing_weights

__all__ = [
    "DEFAULT_I3D_FILE",
    "DEFAULT_I3D_REPO",
    "I3DFeatures",
    "InceptionI3d",
    "preprocess_fvd",
]

DEFAULT_I3D_REPO = "flateon/FVD-I3D-torchscript"
DEFAULT_I3D_FILE = "i3d_torchscript.pt"
FVD_RESOLUTION = 224

# Inception-v1 branch widths per mixed block: (1x1, 3x3 reduce, 3x3, 3x3 reduce, 3x3, pool projection).
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def _same_padding(size: Sequence[int], kernel: Sequence[int], stride: Sequence[int]) -> list[int]:
    """TensorFlow's SAME padding for (t, h, w), in F.pad order (w, h, t), the odd pixel after (as TF does)."""
    pad: list[int] = []
    for s, k, st in reversed(list(zip(size, kernel, stride))):
        total = max(k - st, 0) if s % st == 0 else max(k - s % st, 0)
        pad += [total // 2, total - total // 2]
    return pad


class Unit3D(nn.Module):
    """Conv3d (TF SAME padding, no bias) + BatchNorm (eps 1e-3) + ReLU; the logits layer has a bias and no norm."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        norm_and_relu: bool = True,
    ) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, bias=not norm_and_relu)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01) if norm_and_relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(F.pad(x, _same_padding(x.shape[2:], self.kernel, self.stride)))
        return F.relu(self.bn(x)) if self.bn is not None else x


class MaxPoolSame(nn.Module):
    """Max pooling with TF SAME padding (zero padding, as the TF graph's inputs are post-ReLU and non-negative)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(F.pad(x, _same_padding(x.shape[2:], self.kernel, self.stride)), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four parallel branches (1x1; 1x1->3x3; 1x1->3x3; 3x3 max-pool->1x1) concatenated on channels."""

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        self.b0 = Unit3D(in_channels, widths[0])
        self.b1a = Unit3D(in_channels, widths[1])
        self.b1b = Unit3D(widths[1], widths[2], (3, 3, 3))
        self.b2a = Unit3D(in_channels, widths[3])
        self.b2b = Unit3D(widths[3], widths[4], (3, 3, 3))
        self.b3a = MaxPoolSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, widths[5])
        self.out_channels = widths[0] + widths[2] + widths[4] + widths[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """The RGB I3D network; ``forward`` returns time-averaged logits ``(B, num_classes)`` — FVD's features.

    ``width`` scales every channel count (1.0 = the real network, 12.7 M parameters); tests use ``width=1/16``.
    Input: ``(B, 3, T, H, W)`` in ``[-1, 1]``.
    """

    def __init__(self, num_classes: int = 400, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()

        def c(n: int) -> int:
            return max(1, round(n * width))

        self.num_classes = num_classes
        self.Conv3d_1a_7x7 = Unit3D(in_channels, c(64), (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(c(64), c(64))
        self.Conv3d_2c_3x3 = Unit3D(c(64), c(192), (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        channels = c(192)
        pools = {"Mixed_4b": ((3, 3, 3), (2, 2, 2)), "Mixed_5b": ((2, 2, 2), (2, 2, 2))}
        for name, widths in _MIXED.items():
            if name in pools:  # MaxPool3d_4a_3x3 before Mixed_4b, MaxPool3d_5a_2x2 before Mixed_5b
                pool_name = "MaxPool3d_4a_3x3" if name == "Mixed_4b" else "MaxPool3d_5a_2x2"
                self.add_module(pool_name, MaxPoolSame(*pools[name]))
            block = InceptionModule(channels, [c(w) for w in widths])
            self.add_module(name, block)
            channels = block.out_channels
        self.dropout = nn.Dropout(0.5)
        self.logits = Unit3D(channels, num_classes, norm_and_relu=False)
        self.feature_channels = channels

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Mixed_5c activations ``(B, C, T/8, H/32, W/32)``."""
        for module in self.children():
            if module is self.dropout:
                break
            x = module(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        window = (min(2, x.shape[2]), min(7, x.shape[3]), min(7, x.shape[4]))
        x = self.logits(self.dropout(F.avg_pool3d(x, window, stride=1)))
        return x.mean(dim=(2, 3, 4))  # average the logits over time (and the 1x1 space at 224 px)


def preprocess_fvd(videos: torch.Tensor, resolution: int = FVD_RESOLUTION) -> torch.Tensor:
    """``(B, T, 3, H, W)`` floats in ``[0, 1]`` -> ``(B, 3, T, R, R)`` in ``[-1, 1]``: short side to R, centre crop."""
    if videos.ndim != 5 or videos.shape[2] != 3:
        raise ValueError(f"videos must be (B, T, 3, H, W), got {tuple(videos.shape)}")
    b, t, _, h, w = videos.shape
    scale = resolution / min(h, w)
    size = (resolution, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), resolution)
    frames = F.interpolate(videos.reshape(b * t, 3, h, w).float(), size=size, mode="bilinear", align_corners=False)
    top, left = (frames.shape[-2] - resolution) // 2, (frames.shape[-1] - resolution) // 2
    frames = frames[..., top : top + resolution, left : left + resolution]
    return (frames.reshape(b, t, 3, resolution, resolution).permute(0, 2, 1, 3, 4) * 2.0 - 1.0).contiguous()


class I3DFeatures:
    """FVD's feature extractor: clips ``(B, T, 3, H, W)`` in ``[0, 1]`` (or uint8 ``(B, T, H, W, 3)``) -> ``(B, 400)``.

    ``model``: an :class:`InceptionI3d` (any width), a TorchScript I3D, or None for the default TorchScript file
    from ``DEFAULT_I3D_REPO`` on the hub (or the path in ``SHOWME_I3D``). Use :meth:`from_file` for a local file.
    ``resolution`` is 224 for real FVD; tiny test networks may use less.
    """

    def __init__(
        self,
        model: nn.Module | torch.jit.ScriptModule | None = None,
        device: str | torch.device | None = None,
        resolution: int = FVD_RESOLUTION,
        batch_size: int = 8,
    ) -> None:
        self.device = best_device(device)
        if model is None:
            model = self.load(os.environ.get("SHOWME_I3D") or None)
        self.model = model.eval().to(self.device)
        self.resolution = int(resolution)
        self.batch_size = int(batch_size)
        self.torchscript = isinstance(model, torch.jit.ScriptModule)

    @classmethod
    def tiny(cls, seed: int = 0, device: str | torch.device | None = "cpu") -> I3DFeatures:
        """A random :class:`InceptionI3d` at 1/16 width on 32-px clips (16 classes): offline runs and tests only."""
        torch.manual_seed(seed)
        return cls(InceptionI3d(num_classes=16, width=1 / 16), device=device, resolution=32)

    @staticmethod
    def load(path: str | os.PathLike | None = None) -> nn.Module:
        """A TorchScript I3D file, an :class:`InceptionI3d` state dict, or (None) the hub's TorchScript export."""
        if path is None:
            try:
                from huggingface_hub import hf_hub_download

                path = hf_hub_download(DEFAULT_I3D_REPO, DEFAULT_I3D_FILE)
            except Exception as error:  # noqa: BLE001 - offline, missing repo, network
                raise missing_weights(f"The I3D network for FVD ({DEFAULT_I3D_FILE} from {DEFAULT_I3D_REPO})",
                                      DEFAULT_I3D_REPO, DEFAULT_I3D_FILE,
                                      instead="set SHOWME_I3D to a local i3d_torchscript.pt") from error
        path = Path(path)
        if not path.is_file():
            raise WeightsNotFoundError(f"There is no I3D file at {path}.")
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except RuntimeError:
            pass  # not TorchScript: a state dict for our port
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        model = InceptionI3d(num_classes=state["logits.conv3d.weight"].shape[0])
        model.load_state_dict(state, strict=True)
        return model

    @classmethod
    def from_file(cls, path: str | os.PathLike, **kwargs) -> I3DFeatures:
        return cls(cls.load(path), **kwargs)

    def _run(self, clips: torch.Tensor) -> torch.Tensor:
        if self.torchscript:
            return self.model(clips, rescale=False, resize=False, return_features=True)
        return self.model(clips)

    @torch.no_grad()
    def __call__(self, videos: torch.Tensor) -> torch.Tensor:
        videos = torch.as_tensor(videos)
        if videos.dtype == torch.uint8:  # (B, T, H, W, 3) as read from files
            videos = videos.permute(0, 1, 4, 2, 3).float() / 255.0
        out = [
            self._run(preprocess_fvd(videos[i : i + self.batch_size].to(self.device), self.resolution)).float().cpu()
            for i in range(0, videos.shape[0], self.batch_size)
        ]
        return torch.cat(out)
