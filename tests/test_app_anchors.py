"""The recipe tab's kitchen photo, anchor options and "Re-draw this step", through the Studio and the served API."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from showme_i2g.app.presets import pick_presets
from showme_i2g.errors import InvalidInputError

from script_loading import load_app

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STEPS = "1. Boil the water.\n2. Warm the pot.\n3. Pour it over the leaves.\n4. Wait."


app = load_app()


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return app.Studio(pick_presets("tiny", "tiny"), device="cpu", runs_dir=tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def kitchen(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "kitchen.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(path)
    return path


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_redraw_keeps_every_other_step_of_the_last_run(studio, kitchen):
    _, _, run = studio.illustrate("Make tea", STEPS, "tiny", 0, 2, 5.0, 64, 1.0, str(kitchen), "reference", 1.5)
    copy = Path(run["metadata"]["reference"])  # the run keeps its own copy of the photo
    assert run["metadata"]["anchor"] == "reference" and copy.name == "kitchen.png" and copy.is_file()
    assert np.array_equal(_pixels(copy), _pixels(kitchen))
    gallery, files, again = studio.redraw(run, STEPS, 3, seed=11)
    assert len(gallery) == 4 and again["metadata"]["kept_steps"] == [1, 2, 4] and again["metadata"]["seed"] == 11
    for number in (1, 2, 4):
        assert np.array_equal(_pixels(again["images"][number - 1]), _pixels(run["images"][number - 1]))
    assert not np.array_equal(_pixels(again["images"][2]), _pixels(run["images"][2]))
    # the redraw used the last run's settings: the same kitchen photo and anchor
    assert again["metadata"]["reference_pixels_sha256"] == run["metadata"]["reference_pixels_sha256"]
    assert (again["metadata"]["anchor"], again["metadata"]["anchor_weight"]) == ("reference", 1.5)
    assert again["metadata"]["redrawn"] == [3] and again["metadata"]["kept_from"] == str(Path(run["images"][0]).parent)


def test_redraw_keeps_an_anchor_weight_of_zero(studio):
    _, _, run = studio.illustrate("Make tea", STEPS, "tiny", 0, 2, 5.0, 64, 1.0, None, "first", 0.0)
    _, _, again = studio.redraw(run, None, 2, seed=3)
    assert (again["metadata"]["anchor"], again["metadata"]["anchor_weight"]) == ("first", 0.0)


def test_redraw_takes_the_new_text_of_its_own_step_only(studio):
    _, _, run = studio.illustrate("Make tea", STEPS, "tiny", 0, 2, 5.0, 64, 1.0)
    edited = STEPS.replace("Warm the pot.", "Rinse the pot with hot water.")
    _, _, again = studio.redraw(run, edited, 2, seed=3)
    assert again["steps"][1] == "Rinse the pot with hot water." and again["steps"][0] == run["steps"][0]
    with pytest.raises(app.Refusal, match="The steps changed since the last run") as caught:
        studio.check_redraw(run, edited, 3)  # step 2 changed, but step 3 is the one asked for
    assert caught.value.field == "steps"
    with pytest.raises(app.Refusal, match="The steps changed"):
        studio.check_redraw(run, STEPS + "\n5. Drink it.", 2)


def test_redraw_of_a_run_whose_files_were_cleared_is_refused_before_any_model(studio, tmp_path):
    _, _, run = studio.illustrate("Make tea", STEPS, "tiny", 0, 2, 5.0, 64, 1.0)
    gone = {**run, "images": [str(tmp_path / "gone.png"), *run["images"][1:]]}
    with pytest.raises(app.Refusal, match="cleared from the server") as caught:
        studio.check_redraw(gone, None, 2)
    assert caught.value.field == "run"


@pytest.mark.parametrize(
    "kwargs,field,message",
    [
        ({"anchor": "reference"}, "anchor", "Add a photo of your kitchen"),
        ({"anchor": "everything"}, "anchor", "Choose what every step also looks at"),
        ({"kitchen": "{text}"}, "kitchen", "is not a picture we can open"),
        ({"anchor": "first", "anchor_weight": 12.0}, "anchor_weight", "The anchor weight"),
    ],
)
def test_bad_kitchen_and_anchor_input_names_its_box(studio, tmp_path, kwargs, field, message):
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    kwargs = {k: v.format(text=text) if isinstance(v, str) else v for k, v in kwargs.items()}
    with pytest.raises(app.Refusal) as caught:
        studio.check_recipe("Make tea", STEPS, "tiny", 0, 2, 5.0, 64, 1.0, **kwargs)
    assert caught.value.field == field and message in str(caught.value)


def test_redraw_before_any_run_or_of_a_missing_step_is_refused(studio):
    with pytest.raises(InvalidInputError, match="Illustrate a recipe first"):
        studio.check_redraw(None, None, 1)
    with pytest.raises(InvalidInputError, match="The step to draw again"):
        studio.check_redraw({"images": ["a.png", "b.png"]}, None, 3)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_page_redraws_the_step_picked_in_the_gallery(studio, kitchen, tmp_path):
    demo = app.build_demo(studio)
    _, url, _ = app.launch(demo, studio, "127.0.0.1", _free_port(), block=False, quiet=True, ssr_mode=False)
    try:
        client = Client(url, verbose=False, download_files=str(tmp_path))
        first, _, _ = client.predict("Make tea", STEPS, "tiny", 0, 2, 5.0, 64, 1.0, handle_file(str(kitchen)), "first",
                                  1.0, api_name="/illustrate")
        again, _, _ = client.predict(STEPS, 2, api_name="/redraw")  # the session's last run is kept in its state
        assert np.array_equal(_pixels(again[0]["image"]), _pixels(first[0]["image"]))
        assert not np.array_equal(_pixels(again[1]["image"]), _pixels(first[1]["image"]))
        assert np.array_equal(_pixels(again[3]["image"]), _pixels(first[3]["image"]))
    finally:
        demo.close()
