"""I2G training entry points end to end on a synthetic data set, gradients, DRaFT-K truncation, resume, errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import load_file

from showme_i2g.i2g.attention import apply_neighbour_attention
from showme_i2g.i2g.reward import CLIPAlignmentReward
from showme_i2g.i2g.training import (
    PairImages,
    PairwiseConfig,
    RewardConfig,
    _build_parts,
    collate_pairs,
    draft_sample,
    encode_groups,
    load_i2g_lora,
    load_step_pairs,
    lora_parameter_names,
    pairwise_loss,
    reward_loss,
)
from showme_i2g.training import assert_gradients_exactly, create_accelerator, read_log
from showme_i2g.training.loop import StepContext, step_generator

from train import i2g_pairwise, i2g_reward  # noqa: E402

FAST = ["--preset", "tiny", "--resolution", "32", "--clause-backend", "punctuation", "--log-every", "1"]


def draw_dataset(root: Path) -> tuple[Path, Path]:
    """Two recipes of three steps; each step image a coloured board with a bright square that moves step to step."""
    images = root / "images"
    images.mkdir(parents=True)
    recipes = []
    for r in range(2):
        steps = []
        for k in range(3):
            pixels = np.full((40, 48, 3), 40 * (r + 1), np.uint8)
            pixels[..., k] = 200
            pixels[4 + 6 * k : 20 + 6 * k, 8:28] = 255
            PIL.Image.fromarray(pixels).save(images / f"r{r}_{k}.png")
            steps.append({"text": f"Stir the bowl, then add {k + 1} cups of flour.", "image": f"r{r}_{k}.png"})
        recipes.append({"goal": f"Bake bread number {r}", "steps": steps})
    data = root / "recipes.json"
    data.write_text(json.dumps(recipes))
    return data, images


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path]:
    return draw_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def prompts(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.json"
    path.write_text(json.dumps([{"goal": "Make tea", "steps": ["Boil water.", "Add the leaves.", "Pour a cup."]}]))
    return path


def pairwise_argv(dataset, out: Path, *extra: str) -> list[str]:
    data, images = dataset
    return ["--data", str(data), "--images", str(images), "--out", str(out), "--batch-size", "1", "--lr", "1e-2",
            "--rank", "4", *FAST, *extra]


@pytest.fixture(scope="module")
def pairwise_run(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pairwise")
    assert i2g_pairwise.main(pairwise_argv(dataset, out, "--max-steps", "3", "--checkpoint-every", "1")) == 0
    return out


def illustrate(components: dict, lora: Path | None = None) -> np.ndarray:
    from showme_i2g.i2g.pipeline import IllustrationPipeline

    pipe = IllustrationPipeline(**copy.deepcopy(components))
    pipe.clause_splitter = __import__("showme_i2g.text.clauses", fromlist=["ClauseSplitter"]).ClauseSplitter(
        "punctuation")
    if lora is not None:
        load_i2g_lora(pipe, lora)
    pipe.set_progress_bar_config(disable=True)
    return pipe("Bake bread", ["Add flour.", "Knead the dough."], num_inference_steps=2, guidance_scale=3.0,
                height=32, width=32, seed=0, output_type="np").images


def test_pairwise_entry_point_trains_a_lora_that_changes_the_pipeline(pairwise_run, tiny_components):
    log = read_log(pairwise_run)
    assert [e["step"] for e in log] == [1, 2, 3] and all(np.isfinite(e["loss"]) for e in log)
    lora = pairwise_run / "lora" / "pytorch_lora_weights.safetensors"
    state = load_file(str(lora))
    assert state and all(k.startswith("unet.") and "lora" in k for k in state)
    assert any(v.abs().sum() > 0 for k, v in state.items() if "lora.up" in k or "lora_B" in k)
    base, tuned = illustrate(tiny_components), illustrate(tiny_components, pairwise_run / "lora")
    assert np.isfinite(tuned).all() and np.abs(base - tuned).max() > 1e-4
    assert json.loads((pairwise_run / "lora" / "adapter.json").read_text())["rank"] == 4


def test_pairwise_kill_and_resume_equals_an_uninterrupted_run(pairwise_run, dataset, tmp_path):
    out = tmp_path / "killed"
    assert i2g_pairwise.main(pairwise_argv(dataset, out, "--max-steps", "2", "--checkpoint-every", "1")) == 0
    assert i2g_pairwise.main(pairwise_argv(dataset, out, "--max-steps", "3", "--resume", "latest")) == 0
    straight = load_file(str(pairwise_run / "lora" / "pytorch_lora_weights.safetensors"))
    resumed = load_file(str(out / "lora" / "pytorch_lora_weights.safetensors"))
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert [e["loss"] for e in read_log(out)] == [e["loss"] for e in read_log(pairwise_run)]


def test_reward_entry_point_trains_a_lora_that_changes_the_pipeline(prompts, tmp_path, tiny_components):
    argv = ["--prompts", str(prompts), "--out", str(tmp_path), "--reward-model", "tiny", "--max-steps", "2",
            "--lr", "5e-2", "--rank", "4", "--num-inference-steps", "2", "--truncation-k", "1", *FAST]
    assert i2g_reward.main(argv) == 0
    log = read_log(tmp_path)
    assert len(log) == 2 and all(np.isfinite(e["loss"]) and e["loss"] == -e["reward"] for e in log)
    tuned = illustrate(tiny_components, tmp_path / "lora")
    assert np.abs(illustrate(tiny_components) - tuned).max() > 1e-4


# ---------------------------------------------------------------------- gradients
def _parts(config):
    accelerator = create_accelerator(config)
    parts = _build_parts(config, accelerator)
    torch.manual_seed(1)
    with torch.no_grad():  # non-zero B matrices, so every LoRA matrix gets a gradient
        for name, param in parts.unet.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    return accelerator, parts


def _context(accelerator, parts, config) -> StepContext:
    return StepContext(accelerator, parts.unet, config, 0, 0, step_generator(0, 0))


def test_pairwise_loss_gives_gradients_to_exactly_the_lora(dataset, tmp_path):
    data, images = dataset
    config = PairwiseConfig(data=str(data), images=str(images), output_dir=str(tmp_path), preset="tiny",
                            resolution=32, clause_backend="punctuation", rank=4, uncond_prob=0.0)
    accelerator, parts = _parts(config)
    apply_neighbour_attention(parts.unet, 2)
    pairs = load_step_pairs(config)
    assert len(pairs) == 4 and pairs[0].texts[1] == pairs[1].texts[0] or pairs[0].recipe != pairs[1].recipe
    from diffusers import DDPMScheduler

    batch = collate_pairs([PairImages(pairs, 32)[i] for i in (0, 1)])
    assert batch["pixels"].shape == (4, 3, 32, 32)
    loss = pairwise_loss(batch, _context(accelerator, parts, config), parts,
                         DDPMScheduler.from_config(parts.components["scheduler"].config), config)["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    lora = lora_parameter_names(parts.unet)
    assert len(lora) > 20
    assert_gradients_exactly(parts.unet, lora)
    for module in ("vae", "text_encoder", "text_encoder_2"):
        assert all(p.grad is None for p in parts.components[module].parameters())


def test_reward_loss_gives_gradients_to_exactly_the_lora(prompts, tmp_path):
    config = RewardConfig(prompts=str(prompts), output_dir=str(tmp_path), preset="tiny", resolution=32,
                          clause_backend="punctuation", rank=4, num_inference_steps=2, truncation_k=2)
    accelerator, parts = _parts(config)
    apply_neighbour_attention(parts.unet, 2)
    from showme_i2g.i2g.training import StepWindow

    window = StepWindow("Make tea", ["Boil water.", "Add the leaves."], [["Boil water."], ["Add the leaves."]])
    out = reward_loss([window], _context(accelerator, parts, config), parts, CLIPAlignmentReward.tiny(), config)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert_gradients_exactly(parts.unet, lora_parameter_names(parts.unet))


@pytest.mark.parametrize("k", [1])
def test_draft_k_gradient_comes_only_from_the_last_k_steps(prompts, tmp_path, k):
    """DRaFT-K's gradient equals full backpropagation through a sampler whose first T-K steps use a frozen copy.

    Both samplers compute the same images; in the reference, earlier steps' LoRA is a constant, so its gradient
    is exactly "the LoRA's effect in the last K steps". Full backpropagation through the real LoRA differs.
    """
    steps = 3
    config = RewardConfig(prompts=str(prompts), output_dir=str(tmp_path), preset="tiny", resolution=32,
                          clause_backend="punctuation", rank=4, num_inference_steps=steps, truncation_k=k,
                          guidance_scale=2.0)
    accelerator, parts = _parts(config)
    unet = parts.unet
    unet.enable_gradient_checkpointing()
    apply_neighbour_attention(unet, 2)
    frozen = copy.deepcopy(unet).requires_grad_(False)
    states, pooled, mask = encode_groups(parts.components, ["Make tea"], [[["Boil water."], ["Add leaves."]]],
                                         [False], torch.device("cpu"), torch.float32)
    states, pooled = torch.cat([torch.zeros_like(states), states]), torch.cat([torch.zeros_like(pooled), pooled])
    time_ids = torch.tensor([[32, 32, 0, 0, 32, 32]], dtype=torch.float32).repeat(4, 1)
    noise = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    reward = CLIPAlignmentReward.tiny()
    vae = parts.components["vae"]
    scheduler_config = parts.components["scheduler"].config

    def grads(model, truncation_k):
        unet.zero_grad(set_to_none=True)
        scheduler = parts.components["scheduler"].__class__.from_config(scheduler_config)
        latents = draft_sample(model, scheduler, noise, states, pooled, mask, time_ids, num_inference_steps=steps,
                               truncation_k=truncation_k, guidance_scale=2.0)
        images = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
        reward(images, ["Boil water.", "Add leaves."]).sum().backward()
        return {n: p.grad.clone() for n, p in unet.named_parameters() if p.grad is not None}

    calls = {"n": 0}

    def frozen_early(*args, **kwargs):  # the first T-K calls use the frozen copy, the last K the real UNet
        calls["n"] += 1
        return (frozen if calls["n"] <= steps - k else unet)(*args, **kwargs)

    truncated = grads(unet, k)
    reference = grads(frozen_early, steps)
    full = grads(unet, steps)
    assert truncated.keys() == reference.keys() == lora_parameter_names(unet)
    for name in truncated:
        assert torch.allclose(truncated[name], reference[name], rtol=1e-4, atol=1e-7), name
    assert any(not torch.allclose(truncated[n], full[n], rtol=1e-3, atol=1e-6) for n in truncated)


# ---------------------------------------------------------------------- data and errors
def test_images_folder_convention_and_skipped_pairs(tmp_path):
    images = tmp_path / "frames"
    (images / "video7").mkdir(parents=True)
    for k in (0, 1, 3):  # step 2 has no key frame: pairs (1, 2) and (2, 3) are left out
        PIL.Image.new("RGB", (16, 16), (k * 60, 0, 0)).save(images / "video7" / f"{k}.jpg")
    data = tmp_path / "recipes.json"
    data.write_text(json.dumps([{"id": "video7", "goal": "Fry an egg",
                                 "steps": ["Heat the pan.", "Crack the egg.", "Season it.", "Serve."]}]))
    config = PairwiseConfig(data=str(data), images=str(images), clause_backend="punctuation")
    pairs = load_step_pairs(config)
    assert [(p.texts, p.images[1].name) for p in pairs] == [(("Heat the pan.", "Crack the egg."), "1.jpg")]
    item = PairImages(pairs, 8)[0]
    assert item["pixels"].shape == (2, 3, 8, 8) and item["pixels"].min() >= -1 and item["pixels"].max() <= 1
    assert item["time_ids"][0].tolist() == [16, 16, 0, 0, 8, 8]


def test_dropped_groups_get_the_unconditional_zeros(tiny_components):
    states, pooled, mask = encode_groups(tiny_components, ["Goal a", "Goal b"],
                                         [[["one."], ["two."]], [["three, and more."], ["four."]]], [True, False],
                                         torch.device("cpu"), torch.float32)
    assert states.shape[0] == pooled.shape[0] == 4
    assert states[:2].abs().sum() == 0 and pooled[:2].abs().sum() == 0
    assert states[2:].abs().sum() > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--images", "{images}"], "Give the training recipes with --data FILE."),
        (["--data", "{root}/nope.json"], "The recipes file {root}/nope.json does not exist."),
        (["--data", "{data}", "--images", "{root}/nowhere"], "The images folder {root}/nowhere does not exist."),
        (["--data", "{data}", "--lr", "5"], "lr must be a number between 0 and 1, got 5.0."),
        (["--data", "{data}", "--data-format", "csv"], "data_format must be one of json, wikihow, htstep, "
                                                       "captaincook4d, got 'csv'."),
        (["--data", "{data}"], "{data} gives 0 adjacent step pairs with images, fewer than one batch of 1; "
                               "check --images and --data-format."),
    ],
)
def test_pairwise_bad_config_or_data_is_one_sentence_and_exit_2(dataset, argv, message, capsys):
    data, images = dataset
    root = data.parent
    fill = {"data": data, "images": images, "root": root}
    argv = [a.format(**fill) for a in argv] + ["--preset", "tiny", "--clause-backend", "punctuation"]
    assert i2g_pairwise.main(argv) == 2
    assert capsys.readouterr().err.strip() == "error: " + message.format(**fill)


def test_reward_bad_config_is_one_sentence_and_exit_2(prompts, tmp_path, capsys):
    assert i2g_reward.main(["--prompts", str(prompts), "--goals", str(prompts)]) == 2
    assert "exactly one of --prompts" in capsys.readouterr().err
    assert i2g_reward.main(["--prompts", str(prompts), "--truncation-k", "9", "--num-inference-steps", "4"]) == 2
    assert "truncation_k must be between 1 and num_inference_steps (4), got 9." in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"goal": "x", "steps": "not a list"}]))
    assert i2g_reward.main(["--prompts", str(bad), "--preset", "tiny", "--clause-backend", "punctuation"]) == 2
    assert capsys.readouterr().err.strip() == f"error: Recipe 1 in {bad} needs a goal text and a list of step texts."
    assert i2g_reward.main(["--prompts", str(prompts), "--preset", "tiny", "--clause-backend", "punctuation",
                            "--reward-model", "openai/clip-vit-large-patch14"]) == 2
    assert "hf download openai/clip-vit-large-patch14" in capsys.readouterr().err
