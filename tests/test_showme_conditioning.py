"""ShowMe's first-frame-only conditioning, the one function sampling and training share: the photo's latent on
frame 0 and zeros on the others ("mask"), against vanilla DynamiCrafter's photo on every frame ("repeat")."""

from __future__ import annotations

import pytest
import torch

from showme_i2g.showme.conditioning import CONDITIONING_MODES, first_frame_concat
from showme_i2g.showme.pipeline import CONDITIONING_MODES as PIPELINE_MODES
from showme_i2g.showme.training import first_frame_concat as training_concat


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


def test_sampling_and_training_build_the_same_cross_attention_context():
    from showme_i2g.showme.pipeline import ShowMePipeline
    from showme_i2g.showme.training import ShowMeTrainingModel

    pipe = ShowMePipeline.from_preset("tiny", device="cpu")
    trainer = ShowMeTrainingModel(pipe.model, 1)
    torch.manual_seed(0)
    photos = torch.rand(2, 3, pipe.config.height, pipe.config.width) * 2 - 1
    texts = ["cut the onion", "stir the soup"]
    generators = [torch.Generator().manual_seed(i) for i in range(2)]
    with torch.no_grad():
        sampled, _ = pipe._conditioning(photos, texts, True, generators)  # [uncond x 2, cond x 2]
        kept = torch.zeros(1, dtype=torch.bool)
        # the pipeline encodes each item alone (a batch equals separate calls), so compare item by item
        trained = torch.cat([trainer.context(photos[i : i + 1], texts[i : i + 1], kept, kept) for i in range(2)])
        dropped = torch.cat([trainer.context(photos[i : i + 1], texts[i : i + 1], ~kept, ~kept) for i in range(2)])
        text_only = torch.cat([trainer.context(photos[i : i + 1], texts[i : i + 1], kept, ~kept) for i in range(2)])
        batched = trainer.context(photos, texts, kept.repeat(2), kept.repeat(2))
    torch.testing.assert_close(sampled[2:], trained, rtol=0, atol=0)
    torch.testing.assert_close(sampled[:2], dropped, rtol=0, atol=0)  # both dropped: the unconditional input
    torch.testing.assert_close(batched, trained, rtol=0, atol=1e-5)  # a training batch: the same, to rounding
    assert sampled.shape[1] > 77 and not torch.equal(text_only, trained)  # text tokens, then the image's
    assert torch.equal(text_only[:, :77], trained[:, :77]) and torch.equal(text_only[:, 77:], dropped[:, 77:])


def test_context_needs_a_text_per_image():
    from showme_i2g.showme.conditioning import cross_attention_context

    with pytest.raises(ValueError, match="texts and images must pair up, got 1 texts and 2 images"):
        cross_attention_context(None, ["a"], torch.zeros(2, 3, 8, 8))
