"""The app's plain-Python helpers: steps box parsing, downloads, captions, preset picking, shared models, Stop."""

import json
import os
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from showme_i2g.app.examples import make_example_photos
from showme_i2g.app.models import ModelCache
from showme_i2g.app.outputs import (
    fit_instruction,
    make_html_storyboard,
    stitch_clips,
    write_animation_outputs,
    write_recipe_outputs,
)
from showme_i2g.app.presets import (
    ILLUSTRATION_ORDER,
    SHOWME_ORDER,
    TINY_LABEL,
    banner_markdown,
    pick_presets,
    preset_choices,
)
from showme_i2g.app.runs import RunFolders
from showme_i2g.captions import burn_caption
from showme_i2g.errors import InvalidInputError
from showme_i2g.media import read_video_frames
from showme_i2g.presets import ILLUSTRATION_PRESETS, SHOWME_PRESETS
from showme_i2g.text.step_lines import parse_step_lines, steps_to_text


def _solid(colour, size=(64, 48)) -> Image.Image:
    return Image.new("RGB", size, colour)


# ---------------------------------------------------------------------------------------------------------------------
# Steps box
# ---------------------------------------------------------------------------------------------------------------------


def test_parse_step_lines_drops_list_markers_but_keeps_quantities() -> None:
    text = ("1. Sift the flour.\n\n  2) Add 1.5 cups of milk.\nStep 3: Stir.\n- Rest 10 min.\n• Bake\n"
            "1.5 cups of sugar\n4.")
    assert parse_step_lines(text) == [
        "Sift the flour.", "Add 1.5 cups of milk.", "Stir.", "Rest 10 min.", "Bake", "1.5 cups of sugar",
    ]
    assert parse_step_lines(None) == [] and parse_step_lines(" \n\t\n") == []
    with pytest.raises(InvalidInputError, match="one step per line"):
        parse_step_lines(["a list"])


def test_steps_to_text_round_trips() -> None:
    steps = ["Boil  the\nwater.", "Pour it."]
    assert parse_step_lines(steps_to_text(steps)) == ["Boil the water.", "Pour it."]


def test_fit_instruction_cuts_at_a_word_boundary() -> None:
    assert fit_instruction("Stir  the soup", 50) == "Stir the soup"
    assert fit_instruction("Stir the soup slowly, then serve", 21) == "Stir the soup slowly"
    assert fit_instruction("x" * 30, 10) == "x" * 10


# ---------------------------------------------------------------------------------------------------------------------
# Recipe downloads
# ---------------------------------------------------------------------------------------------------------------------


def _result(n: int = 2) -> SimpleNamespace:
    """Stands in for an IllustrationOutput: the same fields, without loading diffusers."""
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    return SimpleNamespace(
        images=[_solid(colours[i], (32, 32)) for i in range(n)],
        goal="Make <b>tea</b>",
        steps=[f"Step {i} & more" for i in range(1, n + 1)],
        clauses=[[f"Step {i} & more"] for i in range(1, n + 1)],
        metadata={"preset": "tiny", "seed": 3, "num_inference_steps": 2, "guidance_scale": 5.0},
    )


def test_write_recipe_outputs_writes_steps_storyboard_run_json_zip_and_html(tmp_path) -> None:
    files = write_recipe_outputs(_result(), tmp_path, source="app")
    assert [p.name for p in files.steps] == ["step_01.png", "step_02.png"]
    assert Image.open(files.steps[1]).getpixel((5, 5)) == (30, 200, 30)
    assert Image.open(files.storyboard).width > 2 * 32
    record = json.loads(files.run_json.read_text())
    assert record["goal"] == "Make <b>tea</b>" and record["seed"] == 3 and record["source"] == "app"
    assert record["clauses"] == [["Step 1 & more"], ["Step 2 & more"]]
    with zipfile.ZipFile(files.zip) as archive:
        assert sorted(archive.namelist()) == ["run.json", "step_01.png", "step_02.png", "storyboard.png"]
        assert archive.getinfo("step_01.png").compress_type == zipfile.ZIP_STORED
        assert json.loads(archive.read("run.json")) == record
    page = files.html.read_text(encoding="utf-8")
    assert page.count('<img src="data:image/jpeg;base64,') == 2


def test_html_storyboard_escapes_text_and_loads_nothing_from_outside() -> None:
    page = make_html_storyboard([_solid("white")], ['<script>alert("x")</script>'], "Tea & <i>cake</i>",
                                {"preset": "tiny", "seed": 0})
    assert "<script>" not in page and "&lt;script&gt;" in page and "Tea &amp; &lt;i&gt;cake&lt;/i&gt;" in page
    assert "seed: 0" in page and "preset: tiny" in page
    assert "http://" not in page and "https://" not in page
    with pytest.raises(ValueError):
        make_html_storyboard([_solid("white")], [], "Tea")


# ---------------------------------------------------------------------------------------------------------------------
# Captions and the stitched video
# ---------------------------------------------------------------------------------------------------------------------


def test_burn_caption_darkens_only_a_bottom_band_and_writes_white_text() -> None:
    frame = _solid((200, 200, 200), (384, 216))
    captioned = np.asarray(burn_caption(frame, "Step 1/2: Boil the water."))
    original = np.asarray(frame)
    changed_rows = np.flatnonzero((captioned != original).any(axis=(1, 2)))
    assert changed_rows.min() > 216 // 2 and changed_rows.max() == 215  # a band at the bottom, nothing above it
    band = captioned[changed_rows.min():]
    assert band.max() == 255 and np.median(band) < 100  # white letters on a dark band
    assert np.array_equal(np.asarray(burn_caption(frame, "  ")), original)


def test_burn_caption_keeps_long_text_to_three_lines() -> None:
    frame = _solid((200, 200, 200), (384, 216))
    short = np.asarray(burn_caption(frame, "Stir."))
    long = np.asarray(burn_caption(frame, "stir " * 200))
    band = lambda a: int(((a != np.asarray(frame)).any(axis=(1, 2))).sum())  # noqa: E731
    assert band(short) < band(long) <= 3 * band(short)


def test_stitch_clips_keeps_every_frame_scales_up_and_captions_each_step() -> None:
    clips = [[_solid((255, 0, 0))] * 3, [_solid((0, 0, 255), (50, 30))] * 2]
    frames = stitch_clips(clips, ["Boil.", "Pour."], min_width=128)
    assert len(frames) == 5 and {f.size for f in frames} == {(128, 96)}
    top = [f.getpixel((64, 5)) for f in frames]
    assert top[:3] == [(255, 0, 0)] * 3 and top[3:] == [(0, 0, 255)] * 2  # clips in order, caption at the bottom only
    with pytest.raises(InvalidInputError, match="no clips"):
        stitch_clips([[], []], ["a", "b"])
    with pytest.raises(ValueError):
        stitch_clips(clips, ["one caption"])


def test_write_animation_outputs_writes_clips_stitched_video_and_zip(tmp_path) -> None:
    clips = [[_solid((255, 0, 0)), _solid((250, 0, 0))], [_solid((0, 255, 0)), _solid((0, 250, 0))]]
    files = write_animation_outputs(clips, ["Boil.", "Pour."], tmp_path, fps=4, record={"goal": "Tea"})
    assert [len(read_video_frames(p)) for p in files.clips] == [2, 2]
    stitched = read_video_frames(files.stitched)
    assert len(stitched) == 4 and stitched[0].shape == (288, 384, 3)
    with zipfile.ZipFile(files.zip) as archive:
        assert sorted(archive.namelist()) == ["clip_01.mp4", "clip_02.mp4", "recipe_video.mp4", "run.json"]
    assert json.loads(files.run_json.read_text()) == {"goal": "Tea"}


# ---------------------------------------------------------------------------------------------------------------------
# Presets: picked from what the Hugging Face cache holds
# ---------------------------------------------------------------------------------------------------------------------

SDXL = "stabilityai/stable-diffusion-xl-base-1.0"
SDXL_FILES = [
    "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json", "text_encoder_2/config.json",
    "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer_2/vocab.json", "tokenizer_2/merges.txt",
    "unet/config.json", "vae/config.json",
]
SDXL_WEIGHTS = ["text_encoder/model{}.safetensors", "text_encoder_2/model{}.safetensors",
                "unet/diffusion_pytorch_model{}.safetensors", "vae/diffusion_pytorch_model{}.safetensors"]


def _cache(root: Path, repo: str, files: list[str]) -> None:
    """Files laid out as huggingface_hub caches them: snapshots/<revision>/..., refs/main naming the revision."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text("0" * 40)
    for name in files:
        path = folder / "snapshots" / ("0" * 40) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_every_preset_is_ranked_once_with_tiny_last() -> None:
    """A preset added to presets.py must be ranked here too, or the app could never offer it."""
    for order, presets in ((ILLUSTRATION_ORDER, ILLUSTRATION_PRESETS), (SHOWME_ORDER, SHOWME_PRESETS)):
        assert sorted(order) == sorted(presets) and order[-1] == "tiny"


def test_pick_presets_with_an_empty_cache_runs_tiny(tmp_path) -> None:
    choice = pick_presets(cache_dir=tmp_path)
    assert (choice.illustration, choice.showme) == ("tiny", "tiny")
    assert choice.illustration_available == ("tiny",) and choice.showme_available == ("tiny",)


def test_pick_presets_finds_sdxl_then_lightning(tmp_path) -> None:
    _cache(tmp_path, SDXL, SDXL_FILES + [f.format("") for f in SDXL_WEIGHTS[:-1]])
    assert pick_presets(cache_dir=tmp_path).illustration == "tiny"  # the VAE is missing
    _cache(tmp_path, SDXL, [SDXL_WEIGHTS[-1].format("")])
    assert pick_presets(cache_dir=tmp_path).illustration == "sdxl"
    _cache(tmp_path, "ByteDance/SDXL-Lightning", ["sdxl_lightning_4step_lora.safetensors"])
    choice = pick_presets(cache_dir=tmp_path)
    assert choice.illustration == "sdxl-lightning"
    assert choice.illustration_available == ("sdxl-lightning", "sdxl", "tiny")


def test_pick_presets_counts_fp16_weights_only_on_a_gpu(tmp_path) -> None:
    _cache(tmp_path, SDXL, SDXL_FILES + [f.format(".fp16") for f in SDXL_WEIGHTS])
    assert pick_presets(cache_dir=tmp_path, on_gpu=False).illustration == "tiny"
    assert pick_presets(cache_dir=tmp_path, on_gpu=True).illustration == "sdxl"


def test_pick_presets_prefers_showme_when_its_loras_are_given(tmp_path) -> None:
    _cache(tmp_path, "Doubiiu/DynamiCrafter", ["model.ckpt"])
    assert pick_presets(cache_dir=tmp_path).showme == "dynamicrafter-256"
    loras = tmp_path / "loras"
    loras.mkdir()
    (loras / "lora_image.pth").write_bytes(b"x")
    assert pick_presets(cache_dir=tmp_path, lora_dir=loras).showme == "dynamicrafter-256"  # one file missing
    (loras / "lora_video.pth").write_bytes(b"x")
    assert pick_presets(cache_dir=tmp_path, lora_dir=loras).showme == "showme"


def test_pick_presets_honours_named_presets_and_refuses_unknown_ones(tmp_path) -> None:
    choice = pick_presets("sdxl", "dynamicrafter-512", cache_dir=tmp_path)
    assert (choice.illustration, choice.showme) == ("sdxl", "dynamicrafter-512")
    with pytest.raises(InvalidInputError, match="Unknown preset 'sd15'"):
        pick_presets("sd15", cache_dir=tmp_path)
    with pytest.raises(InvalidInputError, match="Unknown ShowMe preset"):
        pick_presets(None, "/models/mine.ckpt", cache_dir=tmp_path)


def test_banner_and_dropdown_labels_say_what_runs(tmp_path) -> None:
    tiny = banner_markdown(pick_presets(cache_dir=tmp_path))
    assert tiny.count(TINY_LABEL) == 2 and "noise" in tiny
    missing = banner_markdown(pick_presets("sdxl", cache_dir=tmp_path))
    assert "`sdxl`: Stable Diffusion XL base 1.0" in missing and "weights are not on this machine" in missing
    assert "restart with `python app.py --download --preset sdxl`" in missing
    assert preset_choices(("sdxl", "tiny"), ("tiny",)) == [
        ("sdxl (weights not on this machine)", "sdxl"), (f"tiny ({TINY_LABEL})", "tiny")]


# ---------------------------------------------------------------------------------------------------------------------
# Shared models, Stop, run folders, example photos
# ---------------------------------------------------------------------------------------------------------------------


def test_model_cache_loads_once_however_many_users_ask_at_once() -> None:
    cache, calls, start = ModelCache(), [], threading.Barrier(8)

    def loader():
        calls.append(1)
        time.sleep(0.05)
        return object()

    found = []

    def user():
        start.wait()
        found.append(cache.get("sdxl", loader))

    threads = [threading.Thread(target=user) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len({id(model) for model in found}) == 1 and cache.loaded() == ["sdxl"]


def test_model_cache_retries_a_failed_load_and_runs_one_call_at_a_time() -> None:
    cache = ModelCache()

    def broken():
        raise OSError("disk full")

    with pytest.raises(OSError):
        cache.get("m", broken)
    assert cache.loaded() == []
    with cache.use("m", lambda: "model") as model:
        assert model == "model" and cache.busy("m")
        waited = threading.Event()
        other = threading.Thread(target=lambda: (cache.use("m", broken).__enter__(), waited.set()))
        other.start()
        assert not waited.wait(0.2)  # the second caller waits for the first
    other.join(5)
    assert waited.is_set() and not other.is_alive()


def test_model_cache_evicts_a_model_only_after_its_running_call() -> None:
    cache = ModelCache()
    cache.get(("illustration", "sdxl"), lambda: "big")
    cache.get(("showme", "tiny"), lambda: "other family")
    evicted = []
    with cache.use(("illustration", "sdxl"), lambda: "unused"):
        other = threading.Thread(target=lambda: evicted.extend(cache.evict(lambda key: key[0] != "illustration")))
        other.start()
        other.join(0.2)
        assert other.is_alive() and ("illustration", "sdxl") in cache.loaded()  # waits for the call to end
    other.join(5)
    assert evicted == [("illustration", "sdxl")] and cache.loaded() == [("showme", "tiny")]


def test_run_folders_are_fresh_and_old_ones_are_pruned(tmp_path) -> None:
    runs = RunFolders(tmp_path, max_age_s=60)
    first, second = runs.new("recipe"), runs.new("recipe")
    assert first != second and first.is_dir() and first.parent == tmp_path
    examples = tmp_path / "examples"
    examples.mkdir()
    old = time.time() - 3600
    os.utime(first, (old, old))
    os.utime(examples, (old, old))
    runs.prune()
    assert not first.exists() and second.exists() and examples.exists()


def test_example_photos_are_drawn_once(tmp_path) -> None:
    examples = make_example_photos(tmp_path, size=(160, 120))
    assert len(examples) == 3 and all(instruction for _, instruction in examples)
    pixels = []
    for path, _ in examples:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (160, 120)
            pixels.append(np.asarray(image.convert("RGB")))
    assert all(p.std() > 10 for p in pixels)  # drawn scenes, not blank canvases
    stamp = os.stat(examples[0][0]).st_mtime_ns
    assert make_example_photos(tmp_path, size=(160, 120)) == examples
    assert os.stat(examples[0][0]).st_mtime_ns == stamp


def test_pick_presets_counts_showme_as_present_with_both_trained_adapters(tmp_path) -> None:
    _cache(tmp_path, "Doubiiu/DynamiCrafter", ["model.ckpt"])
    assert "showme" not in pick_presets(cache_dir=tmp_path).showme_available
    assert pick_presets(cache_dir=tmp_path, trained_adapters=("edit", "animate")).showme == "showme"
