"""LPIPS: torchvision-compatible backbones, the official head layout, and the metric's defining properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from showme_i2g.errors import InvalidInputError, WeightsNotFoundError
from showme_i2g.metrics.lpips import LPIPS, LPIPS_TAPS, build_backbone

# torchvision's `features` parameter names and shapes (alexnet, squeezenet1_1) and vgg16's tensor count
ALEX = {"0.weight": (64, 3, 11, 11), "3.weight": (192, 64, 5, 5), "6.weight": (384, 192, 3, 3),
        "8.weight": (256, 384, 3, 3), "10.weight": (256, 256, 3, 3)}
SQUEEZE = {"0.weight": (64, 3, 3, 3), "3.squeeze.weight": (16, 64, 1, 1), "12.expand3x3.weight": (256, 64, 3, 3)}


def test_backbones_have_torchvisions_parameter_names():
    alex = build_backbone("alex").state_dict()
    assert {k: tuple(v.shape) for k, v in alex.items() if k.endswith("weight")} == ALEX
    squeeze = build_backbone("squeeze").state_dict()
    assert all(tuple(squeeze[k].shape) == shape for k, shape in SQUEEZE.items())
    assert len(squeeze) == 50  # 8 fire modules x 6 tensors + the first convolution's 2
    vgg = build_backbone("vgg").state_dict()
    assert len(vgg) == 26 and tuple(vgg["28.weight"].shape) == (512, 512, 3, 3)


def _heads(net: str, seed: int = 0) -> nn.ModuleList:
    torch.manual_seed(seed)
    heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in LPIPS_TAPS[net][1])
    for head in heads:
        head.weight.data.uniform_(0.0, 0.1)  # the official heads are non-negative
    return heads


@pytest.fixture(scope="module")
def alex_lpips() -> LPIPS:
    torch.manual_seed(0)
    return LPIPS("alex", backbone=build_backbone("alex"), heads=_heads("alex"), device="cpu")


def test_lpips_is_zero_on_equal_images_grows_with_distortion_and_is_symmetric(alex_lpips):
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    noisy = [np.clip(clean.astype(float) + rng.normal(0, s, clean.shape), 0, 255).astype(np.uint8) for s in (8, 64)]
    assert torch.allclose(alex_lpips(clean, clean), torch.zeros(2), atol=1e-7)
    mild, strong = alex_lpips(clean, noisy[0]), alex_lpips(clean, noisy[1])
    assert (mild > 0).all() and (strong > mild).all()
    assert torch.allclose(alex_lpips(noisy[1], clean), strong, rtol=1e-5)


def test_official_head_files_and_torchvision_state_dicts_load(tmp_path):
    heads = _heads("squeeze", seed=3)
    official = {f"lin{i}.model.1.weight": h.weight.detach().clone() for i, h in enumerate(heads)}
    torch.save(official, tmp_path / "squeeze.pth")
    backbone = build_backbone("squeeze")
    torch.save({f"features.{k}": v for k, v in backbone.state_dict().items()} | {"classifier.1.weight": torch.zeros(1)},
               tmp_path / "squeezenet1_1.pth")
    metric = LPIPS("squeeze", backbone_weights=tmp_path / "squeezenet1_1.pth", head_weights=tmp_path / "squeeze.pth",
                   device="cpu")
    assert torch.equal(metric.heads[6].weight, official["lin6.model.1.weight"])
    assert torch.equal(metric.backbone[12].expand3x3.weight, backbone[12].expand3x3.weight)
    a = torch.rand(1, 3, 48, 48)
    assert metric(a, a).item() == pytest.approx(0.0, abs=1e-7) and metric(a, 1 - a).item() > 0


def test_missing_weights_and_mismatched_sizes_are_one_sentence(alex_lpips, tmp_path):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        LPIPS("alex", backbone=build_backbone("alex"), head_weights=tmp_path / "nope.pth")
    with pytest.raises(InvalidInputError, match="equal size"):
        alex_lpips(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 40, 32))
