"""IllustrationPipeline end to end on the tiny preset: SDXL equivalence, seeds, neighbour coupling, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline

from showme_i2g.errors import InvalidInputError
from showme_i2g.i2g.pipeline import IllustrationPipeline

RECIPES = json.loads((Path(__file__).parents[1] / "examples" / "i2g_appendix_recipes.json").read_text())["recipes"]
COOKIES = RECIPES[0]


@pytest.fixture(scope="module")
def pipe(tiny_illustrator) -> IllustrationPipeline:
    return tiny_illustrator


def _np(pipe, goal, steps, **kwargs) -> np.ndarray:
    kwargs.setdefault("seed", 0)
    return pipe(goal, steps, output_type="np", **kwargs).images


def test_one_step_reproduces_plain_sdxl(pipe):
    sdxl = StableDiffusionXLPipeline(**pipe.components)
    sdxl.set_progress_bar_config(disable=True)
    goal, step = "Make pancakes", "Whisk flour and eggs."
    expected = sdxl(prompt=goal, prompt_2=step, num_inference_steps=4, guidance_scale=5.0, height=128, width=128,
                    generator=torch.Generator().manual_seed(7), output_type="np").images
    got = _np(pipe, goal, [step], num_inference_steps=4, guidance_scale=5.0, seed=7)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_seven_step_cookie_recipe(pipe):
    calls = []
    result = pipe(COOKIES["goal"], COOKIES["steps"], seed=0, progress_callback=lambda i, n: calls.append((i, n)))
    assert len(result.images) == 7 and all(im.size == (128, 128) for im in result.images)
    assert result.steps == COOKIES["steps"] and len(result.clauses) == 7
    assert all(" ".join(c).split() == s.split() for c, s in zip(result.clauses, result.steps))
    assert calls == [(i, 4) for i in range(1, 5)]
    meta = result.metadata
    assert meta["preset"] == "tiny" and meta["seed"] == 0 and meta["num_inference_steps"] == 4
    assert meta["guidance_scale"] == 5.0 and meta["height"] == meta["width"] == 128
    assert meta["neighbour_weight"] == 1.0 and meta["clause_backend"] in ("benepar", "spacy", "punctuation")
    # the step images are not all the same picture
    arrays = [np.asarray(im, dtype=np.float32) for im in result.images]
    assert min(np.abs(a - b).mean() for a, b in zip(arrays, arrays[1:])) > 0.5


def test_seed_reproduces_and_differs(pipe):
    steps = COOKIES["steps"][:3]
    a = _np(pipe, COOKIES["goal"], steps, seed=1)
    b = _np(pipe, COOKIES["goal"], steps, seed=1)
    c = _np(pipe, COOKIES["goal"], steps, seed=2)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    g = _np(pipe, COOKIES["goal"], steps, seed=None, generator=torch.Generator().manual_seed(1))
    assert np.array_equal(a, g)


def test_long_steps_are_split_into_clauses(pipe):
    pupusas = RECIPES[1]
    result = pipe(pupusas["goal"], pupusas["steps"][:2], seed=0, output_type="np")
    assert len(result.clauses[0]) > 1  # "Combine 2 cups ... Mix until ... If it's too dry ..."
    assert result.images.shape == (2, 128, 128, 3)


def test_neighbour_weight_couples_steps(pipe):
    goal, steps = COOKIES["goal"], COOKIES["steps"][:4]
    other = list(steps)
    other[2] = "Pour melted butter over the dough."  # a different step 3 (one clause, like the original)
    independent = _np(pipe, goal, steps, neighbour_weight=0.0)
    independent_other = _np(pipe, goal, other, neighbour_weight=0.0)
    assert np.allclose(independent[0], independent_other[0], atol=1e-6)  # step 1 ignores step 3
    assert not np.allclose(independent[2], independent_other[2])
    coupled = _np(pipe, goal, steps, neighbour_weight=1.0)
    coupled_other = _np(pipe, goal, other, neighbour_weight=1.0)
    assert not np.allclose(coupled[1], coupled_other[1], atol=1e-4)  # step 2 sees step 3
    assert not np.allclose(coupled, independent)


def test_planner_writes_missing_steps(pipe):
    class ListPlanner:
        name = "list-planner"

        def plan(self, goal, *, max_steps, seed):
            return [f"{goal}: step {i}" for i in range(1, max_steps + 1)]

    pipe.planner = ListPlanner()
    try:
        result = pipe("Make tea", None, max_planned_steps=3, seed=0, output_type="np")
    finally:
        pipe.planner = None
    assert result.steps == ["Make tea: step 1", "Make tea: step 2", "Make tea: step 3"]
    assert result.metadata["planner"] == "list-planner" and result.images.shape[0] == 3


def test_more_planned_steps_than_the_planner_writes_are_refused_before_it_runs(pipe):
    from showme_i2g.errors import InvalidInputError
    from showme_i2g.text.step_lines import MAX_PLANNED_STEPS

    class NeverAsked:
        def plan(self, goal, *, max_steps, seed):
            raise AssertionError("the planner must not be asked")

    pipe.planner = NeverAsked()
    try:
        with pytest.raises(InvalidInputError, match=f"max_planned_steps must be a whole number from 1 to "
                                                    f"{MAX_PLANNED_STEPS}"):
            pipe("Make tea", None, max_planned_steps=MAX_PLANNED_STEPS + 1, seed=0)
    finally:
        pipe.planner = None


@pytest.mark.parametrize(
    "goal,steps,kwargs,message",
    [
        ("   ", ["Whisk."], {}, r"^The goal is empty"),
        ("Make pancakes", [], {}, r"^There are no steps"),
        ("Make pancakes", ["Whisk."] * 3, {"anchor": "reference"}, r"^The anchor 'reference' needs a reference"),
        ("Make pancakes", ["Whisk."] * 3, {"max_batch": 2}, r"^max_batch must be a whole number of at least 3"),
        ("Make pancakes", ["Whisk the eggs. " * 1250], {}, r"^The text of step 1 is 19,999 characters long"),
        ("Make pancakes", ["Whisk", "Po\x07ur"], {}, r"^The text of step 2 contains a control character \(U\+0007\)"),
        ("Make\x00 pancakes", ["Whisk"], {}, r"^The goal contains a control character"),
        ("Make pancakes", ["Whisk"], {"num_inference_steps": 0}, r"^num_inference_steps must be a whole number"),
        ("Make pancakes", ["Whisk"], {"height": 100}, r"^Height must be a multiple of 16"),
        ("Make pancakes", ["Whisk"], {"neighbour_weight": float("nan")}, r"^neighbour_weight must be a number"),
        ("Make pancakes", "Whisk", {}, r"^The steps must be a list"),
    ],
)
def test_bad_input_is_one_clear_sentence(pipe, goal, steps, kwargs, message):
    with pytest.raises(InvalidInputError, match=message) as info:
        pipe(goal, steps, **kwargs)
    text = str(info.value)
    assert "\n" not in text and text.endswith(".") and len(text) < 200


# ---------------------------------------------------------------------------------------------------------------------
# A trained I2G LoRA loaded by path
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_lora(tmp_path_factory) -> Path:
    """An I2G LoRA in the training helper's format (``save_i2g_lora``) with random non-zero up-projections."""
    from showme_i2g.i2g.training import I2GConfig, add_i2g_lora, save_i2g_lora

    unet = IllustrationPipeline.from_preset("tiny", device="cpu").unet
    add_i2g_lora(unet, I2GConfig(preset="tiny", rank=2))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    folder = tmp_path_factory.mktemp("i2g") / "lora"
    save_i2g_lora(unet, folder)
    return folder


def _tiny_images(**kwargs) -> tuple[np.ndarray, dict]:
    pipe = IllustrationPipeline.from_preset("tiny", device="cpu", **kwargs)
    pipe.set_progress_bar_config(disable=True)
    result = pipe("Bake bread", ["Add flour.", "Knead the dough."], seed=0, output_type="np")
    return result.images, result.metadata


def test_from_preset_loads_a_trained_lora_by_path(trained_lora):
    base, base_meta = _tiny_images()
    tuned, meta = _tiny_images(lora=trained_lora)  # the run folder; the file itself works the same
    off, _ = _tiny_images(lora=trained_lora / "pytorch_lora_weights.safetensors", lora_scale=0.0)
    assert np.isfinite(tuned).all() and np.abs(base - tuned).max() > 1e-3
    np.testing.assert_allclose(off, base, atol=1e-5)  # scale 0 switches the adapter off
    assert meta["lora"] == str(trained_lora / "pytorch_lora_weights.safetensors") and meta["lora_scale"] == 1.0
    assert base_meta["lora"] is None and base_meta["lora_scale"] is None


def test_a_lora_loaded_into_a_running_pipeline_is_frozen(trained_lora):
    pipe = IllustrationPipeline.from_preset("tiny", device="cpu")
    pipe.load_trained_lora(trained_lora, scale=0.5)
    assert any("lora" in name for name, _ in pipe.unet.named_parameters())
    assert not any(p.requires_grad for p in pipe.unet.parameters())


def test_training_package_re_exports_the_one_loader():
    from showme_i2g.i2g import lora, training

    assert training.load_i2g_lora is lora.load_i2g_lora and training.LORA_FILENAME == lora.LORA_FILENAME


@pytest.mark.parametrize("make, error, message", [
    (lambda d: d / "missing.safetensors", "WeightsNotFoundError", "There is no I2G LoRA at"),
    (lambda d: (d / "junk.safetensors").write_text("not a LoRA") and d / "junk.safetensors", "InvalidInputError",
     "is not an SDXL LoRA that fits the 'tiny' preset's UNet"),
])
def test_a_bad_lora_is_one_sentence(tmp_path, make, error, message):
    from showme_i2g import errors

    with pytest.raises(getattr(errors, error), match=message) as info:
        IllustrationPipeline.from_preset("tiny", device="cpu", lora=make(tmp_path))
    assert "\n" not in str(info.value)


def test_a_lora_scale_out_of_range_is_one_sentence(trained_lora):
    with pytest.raises(InvalidInputError, match="lora_scale must be a number from 0 to 4"):
        IllustrationPipeline.from_preset("tiny", device="cpu", lora=trained_lora, lora_scale=9.0)


# ---------------------------------------------------------------------------------------------------------------------
# diffusers' conventions: callback_on_step_end, interrupt, return_dict
# ---------------------------------------------------------------------------------------------------------------------
def test_step_end_callback_sees_every_step_and_may_replace_latents(pipe):
    seen = []

    def watch(p, step, timestep, tensors):
        seen.append((step, int(timestep), tuple(tensors)))
        return {}

    base = _np(pipe, COOKIES["goal"], COOKIES["steps"][:2], num_inference_steps=3, callback_on_step_end=watch,
               callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"])
    assert [s for s, _, _ in seen] == [0, 1, 2] and all(names == ("latents", "prompt_embeds") for *_, names in seen)
    assert [t for _, t, _ in seen] == [int(t) for t in pipe.scheduler.timesteps]

    def scale_last(p, step, timestep, tensors):
        return {"latents": tensors["latents"] * 0.5} if step == 2 else {}

    halved = _np(pipe, COOKIES["goal"], COOKIES["steps"][:2], num_inference_steps=3, callback_on_step_end=scale_last)
    assert not np.allclose(base, halved, atol=1e-3)


def test_interrupt_ends_sampling_after_the_current_step(pipe):
    steps_run = []

    def stop_after_two(p, step, timestep, tensors):
        steps_run.append(step)
        if step == 1:
            p._interrupt = True
        return {}

    result = pipe(COOKIES["goal"], COOKIES["steps"][:2], seed=0, num_inference_steps=5,
                  callback_on_step_end=stop_after_two)
    assert steps_run == [0, 1] and result.metadata["interrupted"] is True and len(result.images) == 2
    assert pipe(COOKIES["goal"], COOKIES["steps"][:2], seed=0, num_inference_steps=2).metadata["interrupted"] is False


def test_return_dict_false_gives_a_tuple_and_bad_callbacks_are_refused(pipe):
    images, goal, steps, clauses, metadata = pipe(COOKIES["goal"], COOKIES["steps"][:1], seed=0, return_dict=False)
    assert len(images) == 1 and goal == COOKIES["goal"] and metadata["seed"] == 0
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs may name"):
        pipe(COOKIES["goal"], COOKIES["steps"][:1], callback_on_step_end=lambda *a: {},
             callback_on_step_end_tensor_inputs=["noise"])


class _Stop(Exception):
    """What a caller's ``callback_on_decode`` raises to end a run (the app's RunStopped)."""


def test_decode_callback_comes_once_before_each_picture_and_may_stop_the_rest(pipe):
    steps = COOKIES["steps"][:4]
    seen, decoded = [], []

    def record(done: int, total: int) -> None:
        seen.append((done, total))

    # each VAE decoder call records how many callbacks came before it
    handle = pipe.vae.decoder.register_forward_hook(lambda *args: decoded.append(len(seen)))
    try:
        result = pipe(COOKIES["goal"], steps, seed=0, num_inference_steps=2, callback_on_decode=record)
        assert seen == [(0, 4), (1, 4), (2, 4), (3, 4)] and decoded == [1, 2, 3, 4] and len(result.images) == 4

        seen[:], decoded[:] = [], []
        pipe(COOKIES["goal"], steps, seed=0, num_inference_steps=2, decode_chunk_size=2, callback_on_decode=record)
        assert seen == [(0, 2), (1, 2)] and decoded == [1, 2]  # one call per chunk of two pictures

        seen[:], decoded[:] = [], []
        pipe(COOKIES["goal"], steps[:3], seed=0, num_inference_steps=2, keep={2: result.images[1]},
             callback_on_decode=record)
        assert seen == [(0, 2), (1, 2)] and decoded == [1, 2]  # a kept step is not decoded

        seen[:], decoded[:] = [], []
        pipe(COOKIES["goal"], steps, seed=0, num_inference_steps=2, output_type="latent", callback_on_decode=record)
        assert seen == [] and decoded == []

        def stop_at_the_third(done: int, total: int) -> None:
            seen.append((done, total))
            if done == 2:
                raise _Stop

        with pytest.raises(_Stop):
            pipe(COOKIES["goal"], steps, seed=0, num_inference_steps=2, callback_on_decode=stop_at_the_third)
        assert seen == [(0, 4), (1, 4), (2, 4)] and decoded == [1, 2]  # pictures 3 and 4 were never decoded
    finally:
        handle.remove()
    again = pipe(COOKIES["goal"], steps[:1], seed=0, num_inference_steps=2)  # the pipeline still works
    assert len(again.images) == 1 and not again.metadata["interrupted"]


def test_model_hooks_are_freed_however_a_call_ends(pipe, monkeypatch):
    """A caller that stops a run by raising from a callback (the app, between decoded pictures) must not leave an
    offloaded model on the GPU: ``maybe_free_model_hooks`` runs once per call, whether it returns or raises."""
    freed = []
    monkeypatch.setattr(pipe, "maybe_free_model_hooks", lambda: freed.append(True))
    pipe(COOKIES["goal"], COOKIES["steps"][:2], seed=0, num_inference_steps=1)
    assert freed == [True]

    def stop(done: int, total: int) -> None:
        raise _Stop

    with pytest.raises(_Stop):
        pipe(COOKIES["goal"], COOKIES["steps"][:2], seed=0, num_inference_steps=1, callback_on_decode=stop)
    assert freed == [True, True]

