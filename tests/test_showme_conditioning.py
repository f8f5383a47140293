"""ShowMe's first-frame-only conditioning, the one function sampling and training share: the photo's latent on
frame 0 and zeros on the others ("mask"), against vanilla DynamiCrafter's photo on every frame ("repeat")."""

from __future__ import annotations

import pytest
import torch

from showme_i2g.showme.conditioning import CONDITIONING_MODES, first_frame_concat
from showme_i2g.showme.pipeline import CONDITIONING_MODES as PIPELINE_MODES
from showme_i2g.training.showme import first_frame_concat as training_concat


def _latent() -> torch.Tensor:
    return torch.arange(2 * 4 * 3 * 5, dtype=torch.float32).view(2, 4, 3, 5) + 1  # no zeros anywhere


def test_mask_keeps_the_first_frame_and_zeros_the_others():
    latent = _latent()
    concat = first_frame_concat(latent, 5)
    assert concat.shape == (2, 4, 5, 3, 5) and concat.dtype == latent.dtype
    assert torch.equal(concat[:, :, 0], latent)
    assert torch.count_nonzero(concat[:, :, 1:]) == 0


def test_repeat_gives_every_frame_the_photo():
    latent = _latent()
    concat = first_frame_concat(latent, 5, "repeat")
    assert all(torch.equal(concat[:, :, t], latent) for t in range(5))
    assert not torch.equal(concat, first_frame_concat(latent, 5, "mask"))


def test_one_frame_is_the_latent_in_both_modes_and_gradients_reach_it():
    latent = _latent().requires_grad_()
    for mode in CONDITIONING_MODES:
        assert torch.equal(first_frame_concat(latent, 1, mode)[:, :, 0], latent)
    first_frame_concat(latent, 4, "mask").sum().backward()
    assert torch.equal(latent.grad, torch.ones_like(latent))  # only frame 0 carries it, once


def test_pipeline_and_training_use_this_function():
    assert training_concat is first_frame_concat and PIPELINE_MODES is CONDITIONING_MODES


@pytest.mark.parametrize(("args", "message"), [((4, "zeros"), "mode must be"), ((0,), "num_frames"),
                                               ((4, "mask", True), "batch, channels")])
def test_bad_arguments_name_themselves(args, message):
    latent = _latent()
    if len(args) == 3:
        latent, args = latent[0], args[:2]
    with pytest.raises(ValueError, match=message):
        first_frame_concat(latent, *args)
