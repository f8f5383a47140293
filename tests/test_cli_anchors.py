"""``illustrate --reference / --keep DIR --redraw N / --anchor / --max-batch``: re-draw one step, a kitchen photo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from showme_i2g.cli import main

GOAL = "Make tea"
STEPS = ["Boil water in a kettle.", "Put a tea bag in a cup.", "Pour the hot water into the cup."]


def _illustrate(out: Path, *extra: str, steps=STEPS, goal: str | None = GOAL) -> int:
    argv = ["illustrate", "--preset", "tiny", "--out", str(out), "--inference-steps", "2", "--size", "64"]
    if goal is not None:
        argv += ["--goal", goal]
    for step in steps or []:
        argv += ["--step", step]
    return main(argv + list(extra))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("first")
    assert _illustrate(out, "--seed", "1") == 0
    return out


def test_redraw_keeps_every_other_step_pixel_identical(first_run, tmp_path):
    out = tmp_path / "again"
    assert _illustrate(out, "--keep", str(first_run), "--redraw", "2", "--seed", "5", steps=None, goal=None) == 0
    for number in (1, 3):
        name = f"step_{number:02d}.png"
        assert np.array_equal(np.asarray(Image.open(out / name)), np.asarray(Image.open(first_run / name)))
    assert not np.array_equal(np.asarray(Image.open(out / "step_02.png")),
                              np.asarray(Image.open(first_run / "step_02.png")))
    record = json.loads((out / "run.json").read_text())
    assert record["goal"] == GOAL and record["steps"] == STEPS and record["kept_steps"] == [1, 3]
    assert record["kept_from"] == str(first_run) and record["seed"] == 5


def test_keep_draws_with_every_setting_of_the_kept_run(tmp_path):
    photo = tmp_path / "kitchen.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(photo)
    assert _illustrate(tmp_path / "one", "--reference", str(photo), "--anchor", "first", "--anchor-weight", "0.5",
                       "--neighbour-weight", "0.8", "--guidance", "3") == 0
    argv = ["illustrate", "--keep", str(tmp_path / "one"), "--redraw", "2", "--out", str(tmp_path / "two")]
    assert main(argv) == 0  # no preset, size, sampler, weights or photo given: all are the kept run's
    one, two = (json.loads((tmp_path / name / "run.json").read_text()) for name in ("one", "two"))
    for key in ("preset", "num_inference_steps", "guidance_scale", "height", "width", "neighbour_weight", "anchor",
                "anchor_weight", "reference", "reference_pixels_sha256"):
        assert two[key] == one[key], key
    assert two["kept_steps"] == [1, 3]


def test_reference_photo_and_anchor_are_recorded(tmp_path):
    photo = tmp_path / "kitchen.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(photo)
    assert _illustrate(tmp_path / "out", "--reference", str(photo), "--anchor", "reference",
                       "--anchor-weight", "0.5") == 0
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["reference"] == str(photo.resolve()) and len(record["reference_pixels_sha256"]) == 64
    assert (record["anchor"], record["anchor_weight"]) == ("reference", 0.5)


def test_max_batch_lifts_the_step_cap(tmp_path, capsys):
    many = [f"Stir, round {i}." for i in range(1, 18)]
    assert _illustrate(tmp_path / "capped", steps=many) == 2
    assert "at most 16 can be illustrated at once" in capsys.readouterr().err
    assert _illustrate(tmp_path / "windows", "--max-batch", "6", "--inference-steps", "1", steps=many) == 0
    assert len(list((tmp_path / "windows").glob("step_*.png"))) == 17


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--redraw", "2"], "--redraw needs --keep"),
        (["--keep", "{first}"], "name the steps to draw again with --redraw N"),
        (["--keep", "{first}", "--redraw", "9"], "--redraw takes step numbers from 1 to 3, got 9"),
        (["--keep", "{empty}", "--redraw", "1"], "holds no run.json"),
        (["--anchor", "reference"], "The anchor 'reference' needs a reference photo"),
        (["--reference", "{text}"], "is not a picture we can open"),
        (["--max-batch", "2"], "max_batch must be a whole number of at least 3"),
        (["--keep", "{first}", "--redraw", "1", "--size", "128"], "The kept image of step 2 is 64x64 pixels"),
        (["--anchor", "first", "--anchor-weight", "-1"], "anchor_weight must be a number"),
        (["--keep", "{moved}", "--redraw", "1"], "is no longer there; pass --reference again"),
    ],
)
def test_bad_anchor_options_are_refused_before_any_model_loads(first_run, tmp_path, capsys, monkeypatch, extra,
                                                                message):
    from showme_i2g.i2g import pipeline

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(pipeline.IllustrationPipeline, "from_preset", no_model)
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    (tmp_path / "empty").mkdir()
    moved = tmp_path / "moved"  # a run whose kitchen photo was deleted since
    moved.mkdir()
    for path in first_run.glob("step_*.png"):
        (moved / path.name).write_bytes(path.read_bytes())
    record = json.loads((first_run / "run.json").read_text())
    (moved / "run.json").write_text(json.dumps({**record, "reference": str(tmp_path / "deleted.jpg")}))
    names = {"first": str(first_run), "empty": str(tmp_path / "empty"), "text": str(text), "moved": str(moved)}
    argv = [arg.format(**names) for arg in extra]
    assert _illustrate(tmp_path / "out", *argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()

