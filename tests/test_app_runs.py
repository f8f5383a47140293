"""Ending runs early (Stop, a closed page, a cancelled request, a spent budget), the hardware's limits, ZeroGPU
durations, and fetching weights only with ``--download``: the plain-Python parts the app builds on."""

import threading

import pytest
from PIL import Image

from showme_i2g.app.downloads import download_command, download_weights, missing_preset_message
from showme_i2g.app.hardware import MAX_GPU_S, MIN_GPU_S, HardwareLimits, detect_device, gpu_seconds
from showme_i2g.app.outputs import stitch_clips
from showme_i2g.app.runs import RunControl, RunOutOfTime, RunRegistry, RunStopped
from showme_i2g.errors import InvalidInputError, WeightsNotFoundError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_run_checks_its_stop_flag_then_its_budget() -> None:
    clock = FakeClock()
    run = RunControl("me", budget_s=30, clock=clock)
    run.check()
    clock.now += 29.9
    run.check()
    clock.now += 0.1
    with pytest.raises(RunOutOfTime, match=r"^The run used up its 30-second budget on this machine and was ended; "):
        run.check()
    stopped = RunControl("me", budget_s=None, clock=clock)
    stopped.stop()
    with pytest.raises(RunStopped) as caught:
        stopped.check()
    assert not isinstance(caught.value, RunOutOfTime)
    with pytest.raises(ValueError, match="budget_s must be positive"):
        RunControl(budget_s=0)


def test_stop_ends_the_runs_of_one_session_only_and_not_later_runs() -> None:
    runs = RunRegistry()
    with runs.start("me") as mine, runs.start("me") as also_mine, runs.start("you") as theirs:
        assert runs.running() == 3 and runs.running("me") == 2
        assert runs.stop("me") == 2
        assert mine.stopped and also_mine.stopped and not theirs.stopped
    assert runs.running() == 0
    with runs.start("me") as later:
        assert not later.stopped  # a Stop pressed before a run started does not stop it


def test_a_cancelled_request_stops_its_own_run_even_before_it_starts() -> None:
    runs = RunRegistry()
    with runs.start("me", run_id="a") as first, runs.start("me", run_id="b") as second:
        runs.stop_run("a")
        assert first.stopped and not second.stopped
    runs.stop_run("c")  # cancelled while its thread was still on its way
    with runs.start("me", run_id="c") as late:
        assert late.stopped
    with runs.start("me", run_id="c") as reused:
        assert not reused.stopped  # the early cancel is used once


def test_the_registry_is_safe_across_threads() -> None:
    runs, seen = RunRegistry(), []

    def worker(session: str) -> None:
        for _ in range(200):
            with runs.start(session) as run:
                seen.append(run.session)

    threads = [threading.Thread(target=worker, args=(f"s{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 800 and runs.running() == 0


def test_limits_depend_on_the_hardware() -> None:
    cpu, gpu = HardwareLimits.for_device("cpu"), HardwareLimits.for_device("cuda:1")
    assert (cpu.max_size, cpu.max_inference_steps, cpu.max_frames) == (512, 50, 16)
    assert (gpu.max_size, gpu.max_inference_steps, gpu.max_frames) == (1536, 100, 32)
    assert HardwareLimits.for_device("cpu", budget_s=42).budget_s == 42
    assert detect_device("cuda:0") == "cuda" and detect_device("cpu") == "cpu"


def test_gpu_seconds_grow_with_the_request_and_stay_in_zero_gpus_range() -> None:
    assert gpu_seconds("edit", inference_steps=1) == MIN_GPU_S
    assert gpu_seconds("animate", items=16, inference_steps=1000, frames=32) == MAX_GPU_S
    recipe = [gpu_seconds("recipe", items=n, inference_steps=30, guidance=7.5) for n in (2, 8, 16)]
    assert recipe == sorted(recipe) and len(set(recipe)) == 3
    assert gpu_seconds("recipe", items=7, inference_steps=4, guidance=0) < gpu_seconds("recipe", items=7,
                                                                                        inference_steps=4, guidance=7.5)
    assert gpu_seconds("photo", inference_steps=50) > gpu_seconds("video", inference_steps=50)
    with pytest.raises(ValueError, match="Unknown job"):
        gpu_seconds("train")


def test_stitching_stops_between_frames() -> None:
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise RunStopped

    clips = [[Image.new("RGB", (64, 48), "red")] * 2, [Image.new("RGB", (64, 48), "blue")] * 2]
    with pytest.raises(RunStopped):
        stitch_clips(clips, ["Boil.", "Pour."], check=check)
    assert len(calls) == 3


# ---------------------------------------------------------------------------------------------------------------------
# Weights: the exact command, and --download's refusals (the tests run offline)
# ---------------------------------------------------------------------------------------------------------------------


def test_the_download_command_names_the_app_flags() -> None:
    assert download_command("sdxl") == "python app.py --download --preset sdxl"
    assert download_command(None, "dynamicrafter-256") == "python app.py --download --showme-preset dynamicrafter-256"
    assert download_command("sdxl-lightning", "showme") == (
        "python app.py --download --preset sdxl-lightning --showme-preset showme --lora-dir DIR")
    message = missing_preset_message("illustration", "sdxl")
    assert message.startswith("The 'sdxl' preset's weights are not on this machine;")
    assert message.endswith("restart it with `python app.py --download --preset sdxl` to fetch them first.")
    assert "--weights" not in message  # an option of the CLI, not of the app


def test_download_refuses_what_it_cannot_fetch(monkeypatch, tmp_path) -> None:
    from huggingface_hub import constants

    with pytest.raises(InvalidInputError, match="There is nothing to download"):
        download_weights("tiny", "tiny")
    with pytest.raises(WeightsNotFoundError, match=r"needs the ShowMe LoRA files lora_image.pth and lora_video.pth"):
        download_weights(None, "showme", lora_dir=tmp_path)  # on Google Drive, not the hub
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsNotFoundError,
                       match=r"^--download needs the Hugging Face Hub, but HF_HUB_OFFLINE is set"):
        download_weights("sdxl", None, cache_dir=tmp_path)


def test_download_fetches_exactly_the_files_the_preset_reads(monkeypatch, tmp_path) -> None:
    """The calls --download makes (the hub itself is stubbed: the tests are offline), then the presence check."""
    import huggingface_hub
    from huggingface_hub import constants

    from showme_i2g.app.presets import illustration_weights_present
    from showme_i2g.presets import ILLUSTRATION_PRESETS

    calls = []
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo, allow_patterns, cache_dir: calls.append((repo, tuple(allow_patterns))))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda repo, filename, cache_dir: calls.append((repo, filename)))
    fetched = download_weights("sdxl-lightning", "dynamicrafter-256", on_gpu=True, cache_dir=tmp_path)
    assert fetched == [
        "stabilityai/stable-diffusion-xl-base-1.0 for the 'sdxl-lightning' preset",
        "ByteDance/SDXL-Lightning sdxl_lightning_4step_lora.safetensors for the 'sdxl-lightning' preset",
        "Doubiiu/DynamiCrafter model.ckpt for the 'dynamicrafter-256' preset",
    ]
    (repo, patterns), lora, checkpoint = calls
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in patterns and "model_index.json" in patterns
    assert not any(p.endswith("model.safetensors") and ".fp16" not in p for p in patterns)  # no full-precision copy
    assert lora == ("ByteDance/SDXL-Lightning", "sdxl_lightning_4step_lora.safetensors")
    assert checkpoint == ("Doubiiu/DynamiCrafter", "model.ckpt")
    assert not illustration_weights_present(ILLUSTRATION_PRESETS["sdxl"], cache_dir=tmp_path)  # nothing real fetched

    def unreachable(*args, **kwargs):
        raise ConnectionError("Failed to establish a new connection")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    with pytest.raises(WeightsNotFoundError) as caught:
        download_weights("sdxl", None, cache_dir=tmp_path)
    assert str(caught.value) == ("Could not download stabilityai/stable-diffusion-xl-base-1.0 for the 'sdxl' preset: "
                                 "the Hugging Face Hub could not be reached.")
