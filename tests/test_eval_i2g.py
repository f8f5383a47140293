"""A whole `python -m eval.i2g --tiny` run on drawn illustrations, and one-sentence errors for bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root holds eval/
from eval.i2g import main  # noqa: E402

RECIPES = [
    {"id": "pancakes", "goal": "Make pancakes",
     "steps": [{"text": "Whisk flour, eggs and milk.", "image": "refs/p1.png"},
               {"text": "Pour batter into a hot pan.", "image": "refs/p2.png"}, "Flip and serve."]},
    {"id": "wiki/2", "goal": "Plant tulips",
     "steps": ["Dig a hole.", {"text": "Place the bulb.", "image": "refs/t2.png"}]},
    {"id": "omelette", "goal": "Cook an omelette", "steps": ["Beat the eggs.", "Fry them in butter."]},
]


def _picture(seed: int, size: int = 48) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    x, y = (int(v) for v in rng.integers(0, size // 2, 2))
    draw.ellipse((x, y, x + size // 2, y + size // 2), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return image


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    annotations = tmp_path / "recipes.json"
    annotations.write_text(json.dumps(RECIPES), encoding="utf-8")
    (tmp_path / "refs").mkdir()
    for i, name in enumerate(("p1", "p2", "t2")):
        _picture(100 + i).save(tmp_path / "refs" / f"{name}.png")
    generated = tmp_path / "generated"
    folders = {"pancakes": "pancakes", "wiki_2": "wiki/2", "run_3": "omelette"}  # id, safe id, run.json id
    seed = 0
    for folder, recipe_id in folders.items():
        (generated / folder).mkdir(parents=True)
        recipe = next(r for r in RECIPES if r["id"] == recipe_id)
        for k in range(len(recipe["steps"])):
            _picture(seed := seed + 1).save(generated / folder / f"step_{k + 1:02d}.png")
        (generated / folder / "storyboard.png").write_bytes(b"")  # other files are ignored
    (generated / "run_3" / "run.json").write_text(json.dumps({"id": "omelette", "goal": "Cook an omelette"}))
    human = tmp_path / "human.csv"
    human.write_text("recipe_id,step,score\n" + "".join(f"r{i},1,{s}\n" for i, s in
                                                        enumerate([2.5, 2.0, 1.5, 2.25, 0.5, 1.75, 2.5])))
    return {"generated": generated, "references": annotations, "human": human, "out": tmp_path / "report"}


def _argv(paths: dict[str, Path], *extra: str) -> list[str]:
    argv = [item for key, path in paths.items() for item in (f"--{key}", str(path))]
    return argv + ["--tiny", "--quiet", *extra]


def test_a_tiny_run_writes_a_sane_report(inputs, capsys):
    assert main(_argv(inputs, "--batch-size", "3")) == 0
    out = inputs["out"]
    for name in ("results.md", "results.json", "hist_alignment.png", "hist_clipscore.png", "grid_samples.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    record = json.loads((out / "results.json").read_text())
    metrics = record["metrics"]
    assert set(metrics) >= {"KL x100", "Chi2 x100", "Alignment (caption, mean)", "CLIPScore (step)",
                            "CLIPScore (goal)", "Goal faithfulness %", "Step faithfulness %",
                            "Cross-image consistency %", "FID"}
    assert all(isinstance(v, float) and np.isfinite(v) for v in metrics.values())
    assert metrics["KL x100"] >= 0 and metrics["Chi2 x100"] >= 0
    assert 0 <= metrics["Alignment (caption, mean)"] <= 2.5 and 0 <= metrics["CLIPScore (step)"] <= 2.5
    assert 0 <= metrics["Goal faithfulness %"] <= 100 and 0 <= metrics["Step faithfulness %"] <= 100
    assert -100 <= metrics["Cross-image consistency %"] <= 100 and metrics["FID"] >= 0
    assert metrics["Human score (mean)"] == pytest.approx(np.mean([2.5, 2.0, 1.5, 2.25, 0.5, 1.75, 2.5]))
    settings = record["settings"]
    assert settings["recipes"] == 3 and settings["images"] == 7 and settings["FID references"] == 3
    assert "10 equal bins" in settings["binning"] and settings["captioner"] == "tiny-blip2"
    assert settings["text embedder"].endswith("(offline copy)")
    samples = record["details"]["samples"]
    # folders in name order: pancakes, run_3 (the omelette, by run.json id), wiki_2 (the safe form of "wiki/2")
    assert [s["recipe"] for s in samples] == ["pancakes"] * 3 + ["omelette"] * 2 + ["wiki/2"] * 2
    assert samples[0]["step text"] == "Whisk flour, eggs and milk." and samples[4]["step"] == 2
    from showme_i2g.i2g.captioning import draw_prompts

    assert [s["prompt"] for s in samples] == draw_prompts(7, seed=0)
    # the distribution metrics are the ones scipy computes on the report's own scores (same binning)
    from showme_i2g.metrics.distribution import compare_distributions

    again = compare_distributions([2.5, 2.0, 1.5, 2.25, 0.5, 1.75, 2.5], [s["alignment"] for s in samples])
    assert metrics["KL x100"] == pytest.approx(again.kl_x100, rel=1e-9)
    markdown = (out / "results.md").read_text()
    assert "| KL x100 ↓ |" in markdown and "- **binning**: 10 equal bins" in markdown
    assert "![hist_alignment](hist_alignment.png)" in markdown
    assert "| Chi2 x100 ↓ |" in capsys.readouterr().out
    # the library function behind the entry point, called with typed arguments, gives the same numbers
    from showme_i2g.i2g.evaluation import Networks, evaluate_i2g

    report = evaluate_i2g(inputs["generated"], inputs["references"], inputs["human"], networks=Networks(tiny=True),
                          batch_size=3, progress=False)
    assert report.metrics == pytest.approx(metrics)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: {**p, "generated": p["generated"] / "missing"}, "does not exist"),
        (lambda p: (p["human"].write_text("recipe,score\nr1,abc\n"), p)[1], "line 2: the score 'abc' is not a number"),
        (lambda p: (p["human"].write_text("recipe,rating\nr1,2\n"), p)[1], "no 'score' column"),
        (lambda p: (p["human"].write_text("score\n1\n7\n"), p)[1], "outside CLIPScore's scale"),
        (lambda p: ((p["generated"] / "pancakes" / "step_03.png").unlink(), p)[1], "2 step images for a recipe of 3"),
        (lambda p: ((p["generated"] / "stray").mkdir(), _picture(0).save(p["generated"] / "stray" / "step_01.png"),
                    p)[2], "'stray' matches no recipe"),
        (lambda p: (p["references"].write_text("{not json"), p)[1], "is not valid JSON"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_code_2(inputs, capsys, change, message):
    paths = change(inputs)
    assert main(_argv(paths)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "Traceback" not in err and err.count("\n") == 0


def test_captaincook4d_annotations_as_references(tmp_path: Path) -> None:
    """--format captaincook4d reads the real sample annotations (goals from the step descriptions beside them)."""
    import shutil

    source = Path(__file__).parent / "data" / "samples" / "captaincook4d"
    annotations = tmp_path / "cc4d"
    annotations.mkdir()
    header, *rows = (source / "step_annotations.csv").read_text(encoding="utf-8").splitlines()
    kept = [row for row in rows if row.startswith(('"1_28"', '"1_30"'))]  # two short recordings
    (annotations / "step_annotations.csv").write_text("\n".join([header, *kept]) + "\n", encoding="utf-8")
    shutil.copy(source / "activity_step_description.csv", annotations / "activity_step_description.csv")
    from showme_i2g.data.formats import read_recipe_file

    recipes = {r.id: r for r in read_recipe_file(annotations / "step_annotations.csv", "captaincook4d")}
    assert set(recipes) == {"1_28", "1_30"} and recipes["1_30"].goal == "Microwave Egg Sandwich"
    generated, seed = tmp_path / "generated", 0
    for recipe_id, recipe in recipes.items():
        (generated / recipe_id).mkdir(parents=True)
        for k in range(len(recipe.steps)):
            _picture(seed := seed + 1, size=32).save(generated / recipe_id / f"step_{k + 1:02d}.png")
    human = tmp_path / "human.csv"
    human.write_text("score\n2.5\n1.0\n2.0\n")
    out = tmp_path / "report"
    argv = ["--generated", str(generated), "--references", str(annotations / "step_annotations.csv"),
            "--format", "captaincook4d", "--human", str(human), "--out", str(out), "--tiny", "--quiet"]
    assert main(argv) == 0
    record = json.loads((out / "results.json").read_text())
    total = sum(len(r.steps) for r in recipes.values())
    assert record["settings"]["images"] == total and record["settings"]["recipes"] == 2
    samples = record["details"]["samples"]
    assert [s["step text"] for s in samples] == [step.text for rid in ("1_28", "1_30") for step in recipes[rid].steps]
    assert "FID skipped" in " ".join(record["notes"])  # the annotations carry no step pictures
    # the JSON reader would take the CSV for a JSON file: the format decides how the references are read
    assert main(argv[:4] + ["--format", "json"] + argv[6:]) == 2


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--bins", "0", "at least 1 bin (bins=0)"),
    ("--smoothing", "-1", "must be zero or positive (smoothing=-1"),
    ("--choices", "1", "at least 2 options (choices=1)"),
    ("--batch-size", "0", "batch size must be at least 1 (batch_size=0)"),
])
def test_settings_the_library_cannot_use_are_one_sentence(inputs, capsys, monkeypatch, flag, value, message):
    from showme_i2g.i2g import evaluation

    def no_networks(*args, **kwargs):
        raise AssertionError("the settings are checked before any network is built")

    monkeypatch.setattr(evaluation, "build_suite", no_networks)
    assert main([*_argv(inputs), flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and err.count("\n") == 0
