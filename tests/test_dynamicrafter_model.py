"""The assembled DynamiCrafter: the release's whole checkpoint layout, and strict loading of a saved checkpoint.

``tests/data/dynamicrafter256_keys.json`` lists every key and shape of DynamiCrafter-256's ``model.ckpt``. It was
read off the public release's own model classes built from ``configs/inference_256_v1.0.yaml`` with random weights
(see ``../shared/reference/README.md``), so matching it means the real file loads with ``strict=True``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from showme_i2g.showme.dynamicrafter.config import DYNAMICRAFTER_256, DYNAMICRAFTER_512, TINY
from showme_i2g.showme.dynamicrafter.model import DynamiCrafter, load_state_dict

REFERENCE = json.loads((Path(__file__).parent / "data" / "dynamicrafter256_keys.json").read_text())


def test_whole_model_has_the_release_checkpoint_layout():
    with torch.device("meta"):
        model = DynamiCrafter(DYNAMICRAFTER_256)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == REFERENCE  # 2,535 tensors: UNet, both OpenCLIP towers, VAE, Resampler, schedule buffers
    state = {k: torch.empty(shape, device="meta") for k, shape in REFERENCE.items()}
    model.load_state_dict(state, strict=True, assign=True)


def test_512_model_adds_the_dynamic_rescale_buffer():
    with torch.device("meta"):
        model = DynamiCrafter(DYNAMICRAFTER_512)
    keys = set(model.state_dict())
    assert keys - set(REFERENCE) == {"scale_arr"}
    assert {k for k in REFERENCE if k not in keys} == {
        k for k in REFERENCE if k.endswith(".alpha")  # the 512 UNet has no learnable image-attention scale
    }


@pytest.mark.parametrize("wrap", [True, False])
def test_checkpoint_round_trip_is_strict(tmp_path, wrap):
    torch.manual_seed(0)
    model = DynamiCrafter(TINY).eval()
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "epoch": 3} if wrap else model.state_dict(), path)
    loaded = DynamiCrafter.from_checkpoint(path, TINY)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    broken = dict(model.state_dict())
    broken.pop("first_stage_model.quant_conv.bias")
    torch.save({"state_dict": broken}, path)
    with pytest.raises(RuntimeError, match="quant_conv.bias"):
        DynamiCrafter.from_checkpoint(path, TINY)


def test_safetensors_checkpoint(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = DynamiCrafter(TINY)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "model.safetensors")
    assert set(load_state_dict(tmp_path / "model.safetensors")) == set(model.state_dict())
