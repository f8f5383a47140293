"""Step key frames from videos for I2G pairwise training: the right frame (last / middle), decoded by seeking,
cached once, missing videos reported, and the pairwise entry point training end to end from videos."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

import showme_i2g.media as media
from showme_i2g.data.clips import extract_step_frames, step_key_frame
from showme_i2g.data.readers import read_captaincook4d, read_htstep
from showme_i2g.data.records import Recipe, Step
from showme_i2g.errors import InvalidInputError
from showme_i2g.media import probe_video, read_video_frame, save_video

from train import i2g_pairwise  # noqa: E402

FPS = 10
FRAMES = 30
STEP = 8  # frame i is a solid grey of value 8 i: its index survives H.264 compression


def frame_index(pixels: np.ndarray) -> int:
    return int(round(float(np.asarray(pixels).mean()) / STEP))


def draw_video(path: Path, offset: int = 0) -> Path:
    frames = np.zeros((FRAMES, 16, 16, 3), np.uint8)
    for i in range(FRAMES):
        frames[i] = STEP * i + offset
    return save_video(frames, path, fps=FPS)


# Segments in seconds at 10 fps, 30 frames: 0..9 (last 9, middle 4), 10..20 (last 20, middle 15), and one
# that runs past the video's end (22..29 after clamping: last 29, middle 25).
SEGMENTS = [(0.0, 1.0), (1.0, 2.05), (2.2, 9.0)]
LAST, MIDDLE = [9, 20, 29], [4, 15, 25]


def write_captaincook(root: Path, recordings: list[str]) -> tuple[Path, Path]:
    """CaptainCook4D's two CSV files for ``recordings`` (activity 1), three steps each, times as SEGMENTS."""
    steps = root / "step_annotations.csv"
    with steps.open("w", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
        writer.writerow(["recording_id", "step_id", "start_time", "end_time", "description", "has_errors"])
        for recording in recordings:
            for k, (start, end) in enumerate(SEGMENTS):
                writer.writerow([recording, k + 1, start, end, f"Stir-Stir the pot {k + 1} times", "False"])
    names = root / "activity_step_description.csv"
    with names.open("w", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
        writer.writerow(["activity_idx", "activity_name", "step_index", "step_description"])
        writer.writerow(["1", "Cook soup", "1", "Stir-Stir the pot"])
    return steps, names


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    draw_video(root / "1_7_360p.mp4")  # CaptainCook4D's download name
    draw_video(root / "1_9.mp4")
    return root


def test_read_video_frame_seeks_to_exactly_the_asked_frame(videos):
    video = videos / "1_9.mp4"
    info = probe_video(video)
    assert (info.fps, info.frame_count) == (FPS, FRAMES)
    assert [frame_index(read_video_frame(video, i, info=info)) for i in (0, 1, 7, 13, 28, 29)] == [0, 1, 7, 13, 28, 29]
    with pytest.raises(InvalidInputError, match="has no frame 30"):
        read_video_frame(video, 30)
    gif = save_video(np.stack([np.full((8, 8, 3), STEP * i, np.uint8) for i in range(5)]), videos / "a.gif", fps=5)
    assert frame_index(read_video_frame(gif, 3)) == 3


def test_key_frame_is_the_segments_last_or_middle_frame(videos, tmp_path):
    steps, names = write_captaincook(tmp_path, ["1_7", "1_9"])
    recipes = list(read_captaincook4d(steps, step_descriptions=names))
    video = videos / "1_9.mp4"
    assert [step_key_frame(s, video) for s in recipes[1].steps] == LAST
    assert [step_key_frame(s, video, "middle") for s in recipes[1].steps] == MIDDLE
    for frame, expected in (("last", LAST), ("middle", MIDDLE)):
        cache = tmp_path / frame
        done = extract_step_frames(recipes, videos, cache, frame=frame)
        assert (done.written, done.reused, done.problems) == (6, 0, [])
        for recipe in ("1_7", "1_9"):  # 1_7 is found under its _360p name
            got = [frame_index(PIL.Image.open(cache / recipe / f"{k}.png")) for k in range(3)]
            assert got == expected
    with pytest.raises(InvalidInputError, match="last, middle"):
        extract_step_frames(recipes, videos, tmp_path / "x", frame="first")


def test_cached_frames_are_reused_without_decoding(videos, tmp_path, monkeypatch):
    steps, names = write_captaincook(tmp_path, ["1_9"])
    recipes = list(read_captaincook4d(steps, step_descriptions=names))
    first = extract_step_frames(recipes, videos, tmp_path / "cache")
    files = sorted((tmp_path / "cache" / "1_9").iterdir())
    assert first.written == 3 and [f.name for f in files] == ["0.png", "1.png", "2.png"]  # no temporaries left
    stamps = [f.stat().st_mtime_ns for f in files]
    calls = []
    monkeypatch.setattr(media, "read_video_frame", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(media, "probe_video", lambda *a, **k: calls.append(a))
    again = extract_step_frames(recipes, videos, tmp_path / "cache")
    assert (again.written, again.reused, calls) == (0, 3, [])
    assert [f.stat().st_mtime_ns for f in files] == stamps


def test_missing_video_and_untimed_steps_are_reported_per_step(videos, tmp_path):
    recipes = [
        Recipe("Cook soup", [Step("a", start=0.0, end=1.0), Step("b", start=1.0, end=2.0)], "captaincook4d", "2_1"),
        Recipe("Cook soup", [Step("a", start=0.0, end=1.0), Step("no times")], "htstep", "1_9"),
    ]
    done = extract_step_frames(recipes, videos, tmp_path / "cache")
    assert done.written == 1
    messages = [(Path(p.file).name, p.message) for p in done.problems]
    assert messages == [
        ("2_1.mp4", "recipe 2_1 step 0: the video does not exist"),
        ("2_1.mp4", "recipe 2_1 step 1: the video does not exist"),
        ("1_9.mp4", "recipe 1_9 step 1: the step has no start and end time in its video"),
    ]


def test_htstep_segments_through_the_pairwise_loader(videos, tmp_path):
    """HT-Step: taxonomy + annotations.json place steps in a video; the loader extracts and pairs them."""
    from showme_i2g.i2g.training import PairwiseConfig, load_step_pairs

    taxonomy = tmp_path / "taxonomy.csv"
    taxonomy.write_text("global_step_index,activity,step_index,variation,headline,paragraph\n"
                        + "".join(f"{k},Make soup,{k},none,Step {k}.,Stir {k} times.\n" for k in range(3)))
    annotations = tmp_path / "annotations.json"
    annotations.write_text(json.dumps({"1_9": {"annotations": [
        {"id": k, "segment": list(seg)} for k, seg in enumerate(SEGMENTS)]}}))
    assert [s.end for s in read_htstep(taxonomy, annotations=annotations).recipes[0].steps] == [1.0, 2.05, 9.0]
    config = PairwiseConfig(data=str(taxonomy), data_format="htstep", annotations=str(annotations),
                            videos_root=str(videos), images=str(tmp_path / "frames"), frame="middle",
                            clause_backend="punctuation")
    pairs = load_step_pairs(config)
    assert [(p.texts[0], p.images[1].name) for p in pairs] == [("Step 0. Stir 0 times.", "1.png"),
                                                              ("Step 1. Stir 1 times.", "2.png")]
    assert frame_index(PIL.Image.open(pairs[1].images[1])) == MIDDLE[2]


FAST = ["--preset", "tiny", "--resolution", "32", "--clause-backend", "punctuation", "--batch-size", "1",
        "--rank", "4", "--log-every", "1"]


def test_pairwise_entry_point_extracts_then_trains_from_videos(videos, tmp_path, capsys):
    steps, names = write_captaincook(tmp_path, ["1_7", "1_9", "3_3"])  # 3_3 has no video
    base = ["--data", str(steps), "--data-format", "captaincook4d", "--annotations", str(names),
            "--videos-root", str(videos), *FAST]
    frames = tmp_path / "frames"
    assert i2g_pairwise.main([*base, "--images", str(frames), "--extract-only"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"Key frames in {frames}: 6 extracted, 0 already cached, 3 steps skipped")
    out = tmp_path / "run"
    assert i2g_pairwise.main([*base, "--out", str(out), "--max-steps", "2"]) == 0  # cache: <out>/step_frames
    assert frame_index(PIL.Image.open(out / "step_frames" / "1_7" / "1.png")) == LAST[1]
    assert (out / "lora" / "pytorch_lora_weights.safetensors").is_file()
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [1, 2] and all(np.isfinite(e["loss"]) for e in log if "loss" in e)


def test_no_usable_video_is_one_sentence_and_exit_2(videos, tmp_path, capsys):
    steps, names = write_captaincook(tmp_path, ["3_3"])
    argv = ["--data", str(steps), "--data-format", "captaincook4d", "--annotations", str(names),
            "--videos-root", str(videos), "--out", str(tmp_path / "run"), *FAST]
    assert i2g_pairwise.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: None of the 3 steps in {steps} has a usable video under {videos} (first: ")
    assert "recipe 3_3 step 0: the video does not exist" in err
    assert err.endswith("check --videos-root and --data-format.")
    assert i2g_pairwise.main([*argv[:6], "--videos-root", str(tmp_path / "nope"), *FAST]) == 2
    assert capsys.readouterr().err.strip() == f"error: The videos folder {tmp_path / 'nope'} does not exist."
    assert i2g_pairwise.main([*argv, "--frame", "first"]) == 2
    assert capsys.readouterr().err.strip() == "error: frame must be one of last, middle, got 'first'."
    assert not os.path.exists(tmp_path / "run" / "lora")
