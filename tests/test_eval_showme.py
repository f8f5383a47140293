"""``python -m eval.showme`` end to end on tiny folders made here, with the tiny in-code networks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from showme_i2g.media import save_video

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root holds eval/
from eval import showme  # noqa: E402


def _square_clip(shift: int, frames: int = 6, size: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    clip = np.full((frames, size, size, 3), 60, np.uint8)
    for t in range(frames):
        x = 4 + shift * t
        clip[t, 16:32, x : x + 16] = texture
    return clip


def test_image_mode_with_cli_layout_and_run_json(tmp_path: Path) -> None:
    generated, targets, out = tmp_path / "gen", tmp_path / "gt", tmp_path / "report"
    rng = np.random.default_rng(0)
    for index, text in enumerate(["fold the towel", "open the jar", "cut the bread"]):
        name = f"sample{index}"
        (generated / name).mkdir(parents=True)
        image = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(image).save(generated / name / "edited.png")  # as `python -m showme_i2g edit` writes it
        (generated / name / "run.json").write_text(json.dumps({"instruction": text}))
        targets.mkdir(exist_ok=True)
        Image.fromarray(image // 2 if index == 0 else 255 - image).resize((48, 48)).save(targets / f"{name}.png")
    code = showme.main(["--generated", str(generated), "--targets", str(targets), "--mode", "image",
                        "--out", str(out), "--models", "tiny"])
    assert code == 0
    record = json.loads((out / "results.json").read_text())
    assert record["samples"] == 3 and record["mode"] == "image"
    metrics = record["metrics"]
    assert {"CLIP-I", "CLIP-T", "DINO-I", "FID", "PSNR"} <= set(metrics)
    assert -1 <= metrics["CLIP-I"] <= 1 and metrics["FID"] >= 0 and np.isfinite(metrics["PSNR"])
    assert "| CLIP-I |" in (out / "results.md").read_text()
    assert Image.open(out / "grid.png").size == (3 * 128, 256)


def test_video_mode_with_files_frame_folders_and_instruction_csv(tmp_path: Path) -> None:
    generated, targets, out = tmp_path / "gen", tmp_path / "gt", tmp_path / "report"
    generated.mkdir(), targets.mkdir()
    save_video(_square_clip(4), generated / "a.gif")  # moving
    save_video(_square_clip(0, seed=1), generated / "b.mp4")  # static (a GIF would merge equal frames)
    (generated / "c").mkdir()
    for t, frame in enumerate(_square_clip(3, seed=2)):
        Image.fromarray(frame).save(generated / "c" / f"{t:03d}.png")
    for name, seed in (("a", 0), ("b", 1), ("c", 2)):
        save_video(_square_clip(4, seed=seed), targets / f"{name}.gif")
    instructions = tmp_path / "instructions.csv"
    instructions.write_text("name,instruction\na,push the box\nb,lift the cup\nc,slide the book\n")
    code = showme.main(["--generated", str(generated), "--targets", str(targets), "--mode", "video",
                        "--out", str(out), "--models", "tiny", "--instructions", str(instructions)])
    assert code == 0
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    for key in ("FVD", "FID", "CLIP-I", "ViCLIP (frame-average CLIP)", "VQAScore", "Motion"):
        assert key in metrics and np.isfinite(metrics[key])
    assert metrics["FVD frames"] == 6
    # Two of the three clips move 3-4 px per frame at 48 px (threshold 6 * 48 / 256 = 1.1 px): 2/3 dynamic.
    assert metrics["Dynamic degree"] == pytest.approx(2 / 3)
    assert 0 < metrics["VQAScore"] < 1
    assert metrics["Motion"] == pytest.approx(
        2 * metrics["Dynamic degree"] * metrics["Motion smoothness"]
        / (metrics["Dynamic degree"] + metrics["Motion smoothness"])
    )


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no_targets", "no target"),
        ("no_instruction", "no instruction"),
        ("empty", "holds no images"),
        ("missing_dir", "does not exist"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(tmp_path: Path, capsys, setup: str, message: str) -> None:
    generated, targets = tmp_path / "gen", tmp_path / "gt"
    generated.mkdir(), targets.mkdir()
    image = Image.new("RGB", (16, 16), "red")
    if setup != "empty":
        for name in ("x", "y"):
            image.save(generated / f"{name}.png")
            if not (setup == "no_targets" and name == "y"):
                image.save(targets / f"{name}.png")
    args = ["--generated", str(generated if setup != "missing_dir" else tmp_path / "nope"), "--targets",
            str(targets), "--mode", "image", "--out", str(tmp_path / "out"), "--models", "tiny"]
    if setup != "no_instruction":
        (tmp_path / "i.json").write_text(json.dumps({"x": "a", "y": "b"}))
        args += ["--instructions", str(tmp_path / "i.json")]
    assert showme.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0 and "Traceback" not in err
