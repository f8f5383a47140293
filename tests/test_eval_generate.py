"""``python -m eval.generate`` with the tiny twins of every method: layouts eval.i2g / eval.showme read, resuming,
and ``independent`` differing from ``ours`` by the neighbour weight alone; then the library's typed functions
(:mod:`showme_i2g.evaluation.generate`) called directly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from showme_i2g.data import Recipe, Step
from showme_i2g.errors import InvalidInputError
from showme_i2g.evaluation import generate as library
from showme_i2g.evaluation.generate import (
    METHODS,
    GenerationSettings,
    Sample,
    folder_name,
    generate_i2g,
    generate_showme,
    generate_split,
    load_recipes,
    prompt_batches,
    read_items,
    recipe_samples,
)

from eval import generate  # noqa: E402
from eval.showme import find_samples, load_instructions  # noqa: E402

RECIPES = [
    {"id": "tea", "goal": "Make tea", "split": "test",
     "steps": ["Boil water in a kettle", "Put a tea bag in a cup", "Pour the hot water into the cup"]},
    {"id": "toast/1", "goal": "Make toast", "split": "test", "steps": ["Slice the bread", "Toast the slices"]},
    {"id": "salad", "goal": "Make salad", "split": "train", "steps": ["Wash lettuce", "Toss it"]},
]


@pytest.fixture(scope="module")
def recipes(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "recipes.json"
    path.write_text(json.dumps(RECIPES))
    return path


@pytest.fixture(scope="module")
def items(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((70, 90, 3)) * 255).astype(np.uint8)).save(folder / "onion.png")
    path = folder / "items.json"
    path.write_text(json.dumps([{"name": "onion 1", "image": "onion.png", "instruction": "cut  the onion"}]))
    return path


def _run(*argv: str) -> int:
    return generate.main(["--tiny", *argv])


def _pixels(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("step_*.png"))]


@pytest.fixture(scope="module")
def ours_and_independent(recipes, tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("out")
    for method in ("ours", "independent"):
        assert _run("--method", method, "--data", str(recipes), "--out", str(out / method)) == 0
    return out / "ours", out / "independent"


def test_ours_writes_the_illustrate_layout_for_the_test_split(ours_and_independent):
    ours, _ = ours_and_independent
    assert sorted(p.name for p in ours.iterdir()) == ["tea", "toast_1"]  # the train recipe is not rendered
    tea = ours / "tea"
    assert sorted(p.name for p in tea.iterdir()) == ["run.json", "step_01.png", "step_02.png", "step_03.png",
                                                    "storyboard.png"]
    record = json.loads((tea / "run.json").read_text())
    assert record["method"] == "ours" and record["id"] == "tea" and record["preset"] == "tiny"
    assert record["goal"] == "Make tea" and record["steps"] == RECIPES[0]["steps"]
    assert record["neighbour_weight"] == 1.0 and record["seed"] == 0
    assert json.loads((ours / "toast_1" / "run.json").read_text())["id"] == "toast/1"


def test_independent_differs_from_ours_only_by_the_neighbour_weight(ours_and_independent):
    ours, independent = ours_and_independent
    a = json.loads((ours / "tea" / "run.json").read_text())
    b = json.loads((independent / "tea" / "run.json").read_text())
    assert (a["neighbour_weight"], b["neighbour_weight"]) == (1.0, 0.0)
    volatile = {"method", "neighbour_weight", "seconds"}
    assert {k: v for k, v in a.items() if k not in volatile} == {k: v for k, v in b.items() if k not in volatile}
    pixels_a, pixels_b = _pixels(ours / "tea"), _pixels(independent / "tea")
    assert len(pixels_a) == len(pixels_b) == 3
    assert all(x.shape == y.shape for x, y in zip(pixels_a, pixels_b))
    assert any(np.abs(x.astype(int) - y.astype(int)).max() > 0 for x, y in zip(pixels_a, pixels_b))


@pytest.mark.parametrize("method, pipeline", [("sdxl", "StableDiffusionXLPipeline"),
                                              ("sd15", "StableDiffusionPipeline"),
                                              ("sd21-turbo", "StableDiffusionPipeline")])
def test_text_to_image_baselines_render_each_step_from_its_text(recipes, tmp_path, method, pipeline):
    assert _run("--method", method, "--data", str(recipes), "--out", str(tmp_path), "--limit", "1") == 0
    record = json.loads((tmp_path / "tea" / "run.json").read_text())
    assert record["pipeline"] == pipeline and record["preset"] == f"{METHODS[method].preset}-tiny"
    assert record["prompts"] == RECIPES[0]["steps"]
    images = _pixels(tmp_path / "tea")
    assert len(images) == 3 and images[0].shape == (64, 64, 3)
    assert not np.array_equal(images[0], images[1])  # different prompts and noise per step


def test_rerun_skips_finished_samples_and_redoes_unfinished_ones(recipes, tmp_path, capsys):
    argv = ("--method", "sd15", "--data", str(recipes), "--out", str(tmp_path))
    assert _run(*argv) == 0
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.png")}
    assert _run(*argv) == 0
    assert "Rendered 0 samples, skipped 2" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.png")} == stamps
    (tmp_path / "toast_1" / "run.json").unlink()  # as if the run died before finishing this sample
    assert generate.run(generate.build_parser().parse_args(["--tiny", *argv])) == {"rendered": 1, "skipped": 1}
    assert (tmp_path / "tea" / "step_01.png").stat().st_mtime_ns == stamps[tmp_path / "tea" / "step_01.png"]
    assert (tmp_path / "toast_1" / "run.json").is_file()
    assert not list(tmp_path.rglob(".run-*"))  # no temporary files left


@pytest.mark.parametrize("method", ["showme-edit", "instructpix2pix"])
def test_image_editing_methods_write_what_eval_showme_reads(items, tmp_path, method):
    assert _run("--method", method, "--data", str(items), "--split", "all", "--out", str(tmp_path)) == 0
    found = find_samples(tmp_path, "image", "generated")
    assert list(found) == ["onion_1"] and found["onion_1"].name == "edited.png"
    assert load_instructions(None, found) == {"onion_1": "cut the onion"}
    record = json.loads((tmp_path / "onion_1" / "run.json").read_text())
    assert record["method"] == method and record["id"] == "onion 1"
    edited = np.asarray(Image.open(found["onion_1"]))
    assert edited.ndim == 3 and edited.shape[2] == 3 and edited.std() > 0
    if method == "instructpix2pix":
        assert record["pipeline"] == "StableDiffusionInstructPix2PixPipeline" and record["image_guidance_scale"] == 1.5
    else:
        assert record["mode"] == "image" and record["preset"] == "tiny"


def test_dynamicrafter_is_vanilla_video_mode(items, tmp_path):
    assert _run("--method", "dynamicrafter", "--data", str(items), "--split", "all", "--out", str(tmp_path),
                "--frames", "3") == 0
    found = find_samples(tmp_path, "video", "generated")
    assert found["onion_1"].name == "video.mp4"
    record = json.loads((tmp_path / "onion_1" / "run.json").read_text())
    assert (record["mode"], record["conditioning"], record["lora_dir"], record["num_frames"]) == (
        "video", "repeat", None, 3)


def test_long_recipes_are_rendered_in_balanced_chunks():
    steps = tuple(f"step {i}" for i in range(18))
    assert [len(c) for c in prompt_batches(steps)] == [9, 9]
    assert [len(c) for c in prompt_batches(steps[:16])] == [16]
    assert sum(prompt_batches(steps), ()) == steps


def test_a_long_recipe_is_drawn_whole_in_windows(tmp_path):
    steps = [f"Stir the pot, round {i}." for i in range(1, 21)]
    data = tmp_path / "long.json"
    data.write_text(json.dumps([{"id": "stew", "goal": "Make stew", "split": "test", "steps": steps}]))
    assert _run("--method", "ours", "--data", str(data), "--out", str(tmp_path / "out"), "--size", "64",
                "--inference-steps", "1", "--max-batch", "8") == 0
    record = json.loads((tmp_path / "out" / "stew" / "run.json").read_text())
    assert len(list((tmp_path / "out" / "stew").glob("step_*.png"))) == 20
    assert record["max_batch"] == 8 and record["seed"] == 0 and "chunks" not in record
    assert sorted(n for window in record["windows"] for n in window["decides"]) == list(range(1, 21))
    assert all(len(window["images"]) <= 8 for window in record["windows"])


def test_a_batch_too_small_for_the_chain_is_refused_before_loading(tmp_path, recipes, capsys):
    assert _run("--method", "ours", "--data", str(recipes), "--out", str(tmp_path), "--max-batch", "2") == 2
    assert "max_batch must be a whole number of at least 3 images" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_folder_names_are_safe_and_unique():
    taken: set[str] = set()
    assert [folder_name(i, taken) for i in ("12345/1", "12345 1", "../x", "")] == [
        "12345_1", "12345_1-2", "x", "sample"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--method", "ours", "--split", "val"], "has no 'val' items; its splits are test, train."),
        (["--method", "sd15", "--format", "json", "--data", "missing.json"], "does not exist."),
        (["--method", "showme-edit"], "needs an 'image' path and an 'instruction'."),
    ],
)
def test_bad_input_is_one_sentence_and_exit_code_2(recipes, tmp_path, capsys, argv, message):
    if "--data" not in argv:
        argv = [*argv, "--data", str(recipes)]
    argv = [a if a != "missing.json" else str(tmp_path / a) for a in argv]
    assert _run(*argv, "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and err.endswith(message)
    assert not (tmp_path / "out").exists()


def test_unlabelled_splits_need_split_all(tmp_path):
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps([{"goal": "Make tea", "steps": ["Boil water"]}]))
    with pytest.raises(InvalidInputError, match="labels no splits; pass --split all"):
        load_recipes(path, "json", "test")
    assert [s.name for s in load_recipes(path, "json", "all")] == ["1"]


# --- the library functions, typed (showme_i2g.evaluation.generate) -------------------------------------------------


def test_generate_i2g_renders_recipes_with_typed_settings_and_resumes(recipes, tmp_path, capsys):
    samples = load_recipes(recipes, "json", "test")
    settings = GenerationSettings(tiny=True, limit=1, size=64)
    done = generate_i2g(samples, "sd15", tmp_path, settings, progress=False)
    assert done.folders == done.rendered == (tmp_path / "tea",) and done.skipped == ()
    record = json.loads((tmp_path / "tea" / "run.json").read_text())
    assert (record["method"], record["preset"], record["prompts"]) == ("sd15", "sd15-tiny", RECIPES[0]["steps"])
    again = generate_i2g(samples, "sd15", tmp_path, settings, progress=False)
    assert again.rendered == () and again.skipped == (tmp_path / "tea",)
    assert capsys.readouterr().err == ""  # progress=False: nothing on stderr


def test_recipes_already_read_become_samples():
    recipe = Recipe("Make tea", [Step("Boil water"), Step("Pour it")], "json", "tea/1")
    untitled = Recipe(None, [Step("Take plate")], "epic100", "P01_01")
    assert recipe_samples([recipe, untitled]) == [
        Sample("tea_1", "tea/1", goal="Make tea", steps=("Boil water", "Pour it")),
        Sample("P01_01", "P01_01", goal="P01_01", steps=("Take plate",)),
    ]


def test_generate_showme_edits_the_items_read_by_read_items(items, tmp_path):
    samples = read_items(items)  # the library's default split is "all"
    assert [(s.name, s.instruction) for s in samples] == [("onion_1", "cut the onion")]
    done = generate_showme(samples, "showme-edit", tmp_path / "out", GenerationSettings(tiny=True), progress=False)
    assert done.rendered == (tmp_path / "out" / "onion_1",)
    assert (tmp_path / "out" / "onion_1" / "edited.png").is_file()
    assert json.loads((tmp_path / "out" / "onion_1" / "run.json").read_text())["instruction"] == "cut the onion"


def test_the_command_line_defaults_are_the_library_settings(recipes, tmp_path):
    args = generate.build_parser().parse_args(["--method", "ours", "--data", str(recipes), "--out", str(tmp_path)])
    assert generate.settings(args) == GenerationSettings()
    args = generate.build_parser().parse_args(["--method", "ours", "--data", str(recipes), "--out", str(tmp_path),
                                               "--tiny", "--max-batch", "8", "--lora-dir", "loras"])
    assert generate.settings(args) == GenerationSettings(tiny=True, max_batch=8, lora_dir=Path("loras"))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda r, i, out: generate_i2g(r, "showme-edit", out), "'showme-edit' is not one of I2G's methods"),
        (lambda r, i, out: generate_showme(i, "ours", out), "'ours' is not one of ShowMe's methods"),
        (lambda r, i, out: generate_i2g(r, "ours", out, GenerationSettings(max_batch=2)),
         "max_batch must be a whole number of at least 3 images, got 2."),
        (lambda r, i, out: generate_i2g(i, "sd15", out), "'onion 1' has no steps to illustrate."),
        (lambda r, i, out: generate_showme(r, "instructpix2pix", out), "needs a photo and an instruction."),
        (lambda r, i, out: generate_i2g(r + r, "sd15", out), "Two samples render to the same folder 'tea'"),
        (lambda r, i, out: generate_split("dall-e", Path("recipes.json"), out, split="test"),
         "Unknown method 'dall-e'; the methods are ours, independent, sdxl"),
    ],
)
def test_library_bad_input_is_one_sentence_before_any_model_loads(recipes, items, tmp_path, monkeypatch, call,
                                                                  message):
    monkeypatch.setattr(library, "RENDERERS", {})  # loading any model would be a KeyError, not one sentence
    with pytest.raises(InvalidInputError) as caught:
        call(load_recipes(recipes, "json", "test"), read_items(items), tmp_path / "out")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_a_limit_of_zero_renders_nothing_and_loads_nothing(recipes, tmp_path, monkeypatch):
    monkeypatch.setattr(library, "RENDERERS", {})
    done = generate_split("ours", recipes, tmp_path, GenerationSettings(tiny=True, limit=0), split="test",
                          progress=False)
    assert (done.folders, done.rendered, done.skipped) == ((), (), ())
