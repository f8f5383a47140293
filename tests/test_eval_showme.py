"""``python -m eval.showme`` end to end on tiny folders made here, with the tiny in-code networks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from showme_i2g.media import save_video

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root holds eval/
from eval import showme  # noqa: E402


def _strict_json(path: Path) -> dict:
    def refuse(constant: str):
        raise AssertionError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


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
    record = _strict_json(out / "results.json")
    assert record["title"] == "ShowMe image evaluation"
    assert record["settings"]["samples"] == 3 and record["settings"]["mode"] == "image"
    metrics = record["metrics"]
    assert list(metrics) == ["CLIP-I", "CLIP-T", "DINO-I", "FID", "PSNR", "LPIPS"]  # nothing skipped with tiny nets
    assert record["lower_is_better"]["FID"] and record["lower_is_better"]["LPIPS"]
    assert not record["lower_is_better"]["PSNR"]
    assert -1 <= metrics["CLIP-I"] <= 1 and metrics["FID"] >= 0 and metrics["LPIPS"] > 0
    samples = record["details"]["samples"]
    assert [s["instruction"] for s in samples] == ["fold the towel", "open the jar", "cut the bread"]
    # PSNR against the 48 px target: the generated image is resized to it, so recompute that way.
    image = np.asarray(Image.open(generated / "sample1" / "edited.png").resize((48, 48), Image.Resampling.BICUBIC))
    mse = np.mean((image.astype(float) - np.asarray(Image.open(targets / "sample1.png"), float)) ** 2)
    assert samples[1]["PSNR"] == pytest.approx(10 * np.log10(255**2 / mse))
    assert metrics["PSNR"] == pytest.approx(np.mean([s["PSNR"] for s in samples]))
    assert metrics["LPIPS"] == pytest.approx(np.mean([s["LPIPS"] for s in samples]))
    # the library function behind the entry point, called with typed arguments, gives the same numbers
    from showme_i2g.showme.evaluation import evaluate_showme

    report = evaluate_showme(generated, targets, "image", models="tiny")
    assert report.metrics == pytest.approx(metrics, nan_ok=True)
    markdown = (out / "results.md").read_text()
    assert "| CLIP-T ↑ |" in markdown and "| LPIPS ↓ |" in markdown and "## Settings" in markdown
    assert "tiny random AlexNet-layout backbone" in markdown
    for name in ("hist_clip_t.png", "hist_image_similarity.png", "hist_psnr.png", "hist_lpips.png",
                 "grid_samples.png"):
        assert name in record["plots"] and Image.open(out / name).size[0] > 100
    with Image.open(out / "grid_samples.png") as grid:  # two rows (generated over target) of three 128 px cells
        assert grid.size == (4 + 3 * 132, 4 + 2 * (14 + 128 + 4))


def test_identical_pair_gives_zero_lpips_and_strict_json_for_infinite_psnr(tmp_path: Path) -> None:
    generated, targets, out = tmp_path / "gen", tmp_path / "gt", tmp_path / "report"
    generated.mkdir(), targets.mkdir()
    rng = np.random.default_rng(1)
    for name in ("same", "other"):
        image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(image).save(generated / f"{name}.png")
        Image.fromarray(image if name == "same" else 255 - image).save(targets / f"{name}.png")
    (tmp_path / "i.json").write_text(json.dumps([{"name": "same", "instruction": "keep it"},
                                                  {"name": "other", "instruction": "invert it"}]))
    assert showme.main(["--generated", str(generated), "--targets", str(targets), "--mode", "image", "--out",
                        str(out), "--models", "tiny", "--instructions", str(tmp_path / "i.json")]) == 0
    record = _strict_json(out / "results.json")
    other, same = record["details"]["samples"]  # sorted by name
    assert same["LPIPS"] == pytest.approx(0.0, abs=1e-6) and other["LPIPS"] > 0
    assert same["PSNR"] is None and record["metrics"]["PSNR"] is None  # infinite: null, not Infinity
    assert same["CLIP-I"] == pytest.approx(1.0, abs=1e-5)


def test_tiny_lpips_taps_match_alexnet_layout() -> None:
    from showme_i2g.metrics.lpips import LPIPS, LPIPS_TAPS

    metric = LPIPS.tiny()
    relus = tuple(i for i, layer in enumerate(metric.backbone) if isinstance(layer, torch.nn.ReLU))
    assert relus == LPIPS_TAPS["alex"][0]
    assert all((head.weight >= 0).all() for head in metric.heads)


def test_unavailable_network_is_skipped_with_the_reason(monkeypatch, tmp_path: Path) -> None:
    from showme_i2g.metrics.fid import InceptionFeatures
    from showme_i2g.metrics.lpips import LPIPS

    notes: list[str] = []
    monkeypatch.setenv("SHOWME_FID_INCEPTION", str(tmp_path / "missing.pt"))
    assert showme.optional_network("FID", InceptionFeatures, notes) is None
    assert showme.optional_network("LPIPS", lambda: LPIPS("alex", backbone_weights=tmp_path / "no.pth"), notes) is None
    assert notes[0].startswith("FID skipped: ") and "missing.pt" in notes[0]
    assert notes[1].startswith("LPIPS skipped: ") and "no.pth" in notes[1]
    with pytest.raises(ZeroDivisionError):  # anything but missing weights is a bug and keeps its traceback
        showme.optional_network("X", lambda: 1 / 0, notes)


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
    record = _strict_json(out / "results.json")
    metrics = record["metrics"]
    for key in ("FVD", "FID", "CLIP-I", "ViCLIP (frame-average CLIP)", "VQAScore", "Motion"):
        assert key in metrics and np.isfinite(metrics[key])
    assert record["settings"]["FVD frames"] == 6 and record["lower_is_better"]["FVD"]
    assert [s["dynamic"] for s in record["details"]["samples"]] == [True, False, True]
    for name in ("hist_video_similarity.png", "hist_vqascore.png", "hist_motion_smoothness.png",
                 "grid_sample_a.png", "grid_sample_b.png", "grid_sample_c.png"):
        assert name in record["plots"] and (out / name).is_file()
    with Image.open(out / "grid_sample_a.png") as grid:  # 4 generated frames over 4 target frames
        assert grid.size == (4 + 4 * 132, 4 + 2 * (14 + 128 + 4))
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
