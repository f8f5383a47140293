"""ShowMePipeline on the tiny preset: image mode vs video mode, seeds, aspect, progress and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from showme_i2g.errors import InvalidInputError, WeightsNotFoundError
from showme_i2g.showme import adapters
from showme_i2g.showme.pipeline import ShowMePipeline


@pytest.fixture(scope="module")
def pipe(tiny_showme) -> ShowMePipeline:
    return tiny_showme


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A 120 x 80 (w x h) kitchen-ish gradient photo."""
    y, x = np.mgrid[0:80, 0:120]
    rgb = np.stack([x * 2, y * 3, (x + y) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb)


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def test_edit_runs_in_image_mode_and_keeps_the_photo_aspect(pipe, photo):
    states = []

    def spy(done, total):
        unet = pipe.model.unet
        states.append((all(m.bypass for m in unet.temporal_modules()), done, total))

    result = pipe.edit(photo, "cut the onion", seed=0, fit="pad", progress_callback=spy)
    assert states == [(True, i, 4) for i in range(1, 5)]  # temporal modules bypassed during every step
    assert not any(m.bypass for m in pipe.model.unet.temporal_modules())  # ...and restored afterwards
    w, h = result.image.size
    assert abs(w / h - 1.5) < 0.05 and max(w, h) == 64  # the photo's 3:2 aspect at the model's resolution
    meta = result.metadata
    assert meta["mode"] == "image" and meta["num_frames"] == 1 and meta["seed"] == 0 and meta["preset"] == "tiny"
    assert meta["instruction"] == "cut the onion" and meta["num_inference_steps"] == 4 and meta["fs"] == 3


def test_edit_is_seeded(pipe, photo):
    a = _array(pipe.edit(photo, "put the lid on the pot", seed=1).image)
    b = _array(pipe.edit(photo, "put the lid on the pot", seed=1).image)
    c = _array(pipe.edit(photo, "put the lid on the pot", seed=2).image)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == (64, 64, 3)  # crop: the centre square of the photo


def test_animate_runs_in_video_mode(pipe, photo):
    states = []

    def spy(done, total):
        states.append(any(m.bypass for m in pipe.model.unet.temporal_modules()))

    result = pipe.animate(photo, "cut the onion", num_frames=8, seed=0, progress_callback=spy)
    assert states == [False] * 4
    assert len(result.frames) == 8 and all(f.size == (64, 64) for f in result.frames)
    assert result.metadata["mode"] == "video" and result.metadata["conditioning"] == "mask"
    repeat = pipe.animate(photo, "cut the onion", num_frames=8, seed=0, conditioning="repeat")
    assert not np.array_equal(_array(result.frames[3]), _array(repeat.frames[3]))


def test_animate_adapter_changes_video_but_never_the_edit(pipe, photo):
    edit_before = _array(pipe.edit(photo, "cut the onion", seed=0).image)
    video_before = [_array(f) for f in pipe.animate(photo, "cut the onion", num_frames=4, seed=0).frames]
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in pipe.model.named_parameters():
            if f".{adapters.ANIMATE}." in name and "lora_B" in name:
                param.normal_(std=0.5)
    try:
        edit_after = _array(pipe.edit(photo, "cut the onion", seed=0).image)
        video_after = [_array(f) for f in pipe.animate(photo, "cut the onion", num_frames=4, seed=0).frames]
    finally:
        with torch.no_grad():
            for name, param in pipe.model.named_parameters():
                if f".{adapters.ANIMATE}." in name and "lora_B" in name:
                    param.zero_()
    assert np.array_equal(edit_before, edit_after)
    assert any(not np.array_equal(a, b) for a, b in zip(video_before, video_after))


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda p, photo: p.edit(photo, "   "), "The instruction is empty"),
        (lambda p, photo: p.edit(photo, "cut " * 5000), "The instruction is 19,999 characters long"),
        (lambda p, photo: p.edit(photo, "cut\x1b[0m the onion"), "control character"),
        (lambda p, photo: p.edit(b"not an image at all", "cut"), "not"),
        (lambda p, photo: p.animate(photo, "cut", num_frames=1), "num_frames must be a whole number from 2 to 32"),
        (lambda p, photo: p.animate(photo, "cut", num_frames=100), "num_frames must be"),
        (lambda p, photo: p.animate(photo, "cut", conditioning="both"), "conditioning must be one of"),
        (lambda p, photo: p.edit(photo, "cut", fit="stretch"), "stretch"),
        (lambda p, photo: p.edit(photo, "cut", guidance_scale=-1), "guidance_scale must be"),
        (lambda p, photo: p.edit(Image.new("RGB", (1, 1)), "cut"), "1"),
    ],
)
def test_bad_input_is_one_sentence(pipe, photo, call, message):
    with pytest.raises(InvalidInputError) as info:
        call(pipe, photo)
    text = str(info.value)
    assert message in text and "\n" not in text and text.endswith(".")


def test_missing_real_weights_are_one_sentence(tmp_path):
    with pytest.raises(WeightsNotFoundError,
                       match=r"'showme' preset needs model.ckpt from Doubiiu/DynamiCrafter.*hf download"):
        ShowMePipeline.from_preset("showme", device="cpu")
    with pytest.raises(WeightsNotFoundError, match="pass --weights"):
        ShowMePipeline.from_preset("dynamicrafter-512", device="cpu", weights=tmp_path / "missing.ckpt")


def test_half_precision_weights_run_end_to_end(photo):
    """Weights stored in bfloat16 (as on a GPU) run through text, image, UNet, DDIM and VAE without dtype errors."""
    half = ShowMePipeline.from_preset("tiny", device="cpu")
    half.set_progress_bar_config(disable=True)
    half.model.to(torch.bfloat16)
    result = half.animate(photo, "cut the onion", num_frames=2, seed=0)
    assert result.metadata["dtype"] == "bfloat16" and len(result.frames) == 2
    assert np.isfinite(_array(result.frames[1])).all()


def test_cpu_offload_gives_the_same_result(pipe, photo):
    offloaded = ShowMePipeline(pipe.model, preset=pipe.preset, device="cpu", cpu_offload=True)
    offloaded.set_progress_bar_config(disable=True)
    try:
        a = _array(pipe.edit(photo, "cut the onion", seed=5).image)
        b = _array(offloaded.edit(photo, "cut the onion", seed=5).image)
        assert np.array_equal(a, b)
        # accelerate hooks on every part, in the order a call uses them; the autoencoder's encode/decode trigger it
        assert offloaded.cpu_offload and all(hasattr(part, "_hf_hook") for part in offloaded._offloaded_parts())
        assert "encode" in vars(pipe.model.first_stage_model)
        calls = []

        def spy(index, pre_forward):
            def counted(module, *args, **kwargs):
                calls.append(index)
                return pre_forward(module, *args, **kwargs)

            return counted

        for index, part in enumerate(offloaded._offloaded_parts()):
            part._hf_hook.pre_forward = spy(index, part._hf_hook.pre_forward)
        offloaded.edit(photo, "cut the onion", seed=5, num_inference_steps=2)
        # text tower, image tower, Resampler, autoencoder (encode), UNet at each step, autoencoder (decode)
        assert sorted(set(calls)) == [0, 1, 2, 3, 4] and calls[-1] == 3 and calls.count(4) >= 2
    finally:
        offloaded.remove_all_hooks()  # the model is shared with the other tests' pipeline
    assert not offloaded.cpu_offload and not any(hasattr(p, "_hf_hook") for p in offloaded._offloaded_parts())
    assert "encode" not in vars(pipe.model.first_stage_model)


def test_chunked_decoding_matches_one_shot(pipe, photo):
    whole = pipe.animate(photo, "cut the onion", num_frames=4, seed=3)
    chunked = pipe.animate(photo, "cut the onion", num_frames=4, seed=3, decode_chunk_size=1)
    assert all(np.abs(_array(a) - _array(b)).max() <= 1 for a, b in zip(whole.frames, chunked.frames))


# ---------------------------------------------------------------------------------------------------------------------
# Trained adapter files (train/showme_stage1.py, stage 2) loaded by path, at the rank their file records
# ---------------------------------------------------------------------------------------------------------------------
def _save_trained(tmp_path, name: str, rank: int) -> tuple:
    """A ``save_adapter`` file of adapter ``name`` at ``rank`` (not the tiny preset's 4) with non-zero weights."""
    from showme_i2g.showme.pipeline import build_random_model

    model = build_random_model(ShowMePipeline.from_preset("tiny", device="cpu").config)
    adapters.add_showme_adapters(model, edit_rank=rank, animate_rank=rank)
    torch.manual_seed(1)
    with torch.no_grad():
        for _key, tensor in adapters._adapter_state_dict(model, name).items():
            tensor.normal_(std=0.3)
    path = tmp_path / name
    adapters.save_adapter(model, name, path)
    return path, adapters._adapter_state_dict(model, name)


def test_from_preset_loads_a_trained_edit_adapter_at_its_rank(pipe, photo, tmp_path):
    path, saved = _save_trained(tmp_path, adapters.EDIT, rank=3)
    assert adapters.adapter_file_info(path) == ("edit", 3)
    tuned = ShowMePipeline.from_preset("tiny", device="cpu", edit_adapter=path)
    tuned.set_progress_bar_config(disable=True)
    assert adapters.adapter_rank(tuned.model, "edit") == 3 and adapters.adapter_rank(tuned.model, "animate") == 4
    loaded = adapters._adapter_state_dict(tuned.model, "edit")
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    plain = pipe.edit(photo, "cut the onion", seed=0)
    edited = tuned.edit(photo, "cut the onion", seed=0)
    assert np.abs(_array(plain.image) - _array(edited.image)).max() > 1.0
    assert edited.metadata["edit_adapter"] == str(path) and edited.metadata["animate_adapter"] is None
    assert plain.metadata["edit_adapter"] is None


def test_from_preset_loads_a_trained_animate_adapter(pipe, photo, tmp_path):
    path, _ = _save_trained(tmp_path, adapters.ANIMATE, rank=2)
    tuned = ShowMePipeline.from_preset("tiny", device="cpu", animate_adapter=path)
    tuned.set_progress_bar_config(disable=True)
    plain = pipe.animate(photo, "cut the onion", num_frames=2, seed=0).frames
    video = tuned.animate(photo, "cut the onion", num_frames=2, seed=0)
    assert np.abs(_array(plain[1]) - _array(video.frames[1])).max() > 1.0
    assert video.metadata["animate_adapter"] == str(path)


def test_a_bad_adapter_file_is_one_sentence(tmp_path):
    animate, _ = _save_trained(tmp_path, adapters.ANIMATE, rank=2)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors at all")
    cases = [
        (dict(edit_adapter=tmp_path / "none.safetensors"), WeightsNotFoundError, "There is no ShowMe adapter file"),
        (dict(edit_adapter=junk), InvalidInputError, "is not a readable safetensors adapter file"),
        (dict(edit_adapter=animate), InvalidInputError, "holds the 'animate' adapter, not the 'edit' one"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message) as info:
            ShowMePipeline.from_preset("tiny", device="cpu", **kwargs)
        assert "\n" not in str(info.value)


def test_one_trained_adapter_must_match_the_release_rank_it_sits_beside(tmp_path):
    path, _ = _save_trained(tmp_path, adapters.EDIT, rank=3)
    with pytest.raises(InvalidInputError, match="rank-3 'edit' adapter, but the 'showme' preset's LoRA files"):
        ShowMePipeline.from_preset("showme", device="cpu", weights=tmp_path / "model.ckpt", edit_adapter=path)


def test_progress_bar_follows_diffusers(pipe, photo, capsys):
    pipe.set_progress_bar_config(disable=False, desc="sampling")
    try:
        pipe.edit(photo, "cut the onion", seed=0, num_inference_steps=2)
        assert "sampling" in capsys.readouterr().err
    finally:
        pipe.set_progress_bar_config(disable=True)
    pipe.edit(photo, "cut the onion", seed=0, num_inference_steps=2)
    assert "sampling" not in capsys.readouterr().err
    with pytest.warns(FutureWarning, match="set_progress_bar_config"):
        pipe.progress_bar = False  # the old switch still works
    assert pipe._progress_bar_config == {"disable": True}


def test_callback_on_step_end_sees_every_step_and_can_replace_the_latents(pipe, photo):
    seen = []

    def spy(p, step, timestep, tensors):
        seen.append((p, step, timestep, sorted(tensors), tuple(tensors["latents"].shape)))
        return {}

    plain = pipe.animate(photo, "cut the onion", num_frames=2, seed=0, num_inference_steps=3, callback_on_step_end=spy,
                         callback_on_step_end_tensor_inputs=["latents", "context"])
    schedule = pipe.model.sampler().schedule(3, eta=1.0, spacing=pipe.config.timestep_spacing)
    expected = [int(t) for t in schedule.timesteps]
    assert [s[1] for s in seen] == [0, 1, 2] and [s[2] for s in seen] == expected
    assert all(s[0] is pipe and s[3] == ["context", "latents"] and s[4][:3] == (1, 4, 2) for s in seen)
    again = pipe.animate(photo, "cut the onion", num_frames=2, seed=0, num_inference_steps=3)
    # a callback that replaces nothing changes nothing
    assert all(np.array_equal(_array(a), _array(b)) for a, b in zip(plain.frames, again.frames))

    def halve(p, step, timestep, tensors):
        return {"latents": tensors["latents"] * 0.5}

    halved = pipe.animate(photo, "cut the onion", num_frames=2, seed=0, num_inference_steps=3,
                          callback_on_step_end=halve)
    assert np.abs(_array(plain.frames[1]) - _array(halved.frames[1])).max() > 1.0


def test_callback_names_only_known_tensors(pipe, photo):
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs may name"):
        pipe.edit(photo, "cut", callback_on_step_end=lambda *a: {}, callback_on_step_end_tensor_inputs=["noise"])


def test_interrupt_ends_the_loop_after_the_current_step(pipe, photo):
    steps = []

    def stop_after_two(p, step, timestep, tensors):
        steps.append(step)
        if step == 1:
            p._interrupt = True
        return {}

    cut = pipe.edit(photo, "cut the onion", seed=0, num_inference_steps=5, callback_on_step_end=stop_after_two)
    assert steps == [0, 1] and cut.metadata["steps_done"] == 2 and cut.metadata["num_inference_steps"] == 5
    assert cut.metadata["interrupted"]
    assert cut.image.size == pipe.edit(photo, "cut the onion", seed=0, num_inference_steps=5).image.size
    full = pipe.edit(photo, "cut the onion", seed=0, num_inference_steps=5)  # the next call starts uninterrupted
    assert full.metadata["steps_done"] == 5 and not full.metadata["interrupted"] and not pipe.interrupt
    assert np.abs(_array(cut.image) - _array(full.image)).max() > 1.0
    many = pipe.animate_many([photo] * 3, ["cut"] * 3, seeds=[1, 2, 3], batch_size=1, num_frames=2,
                             num_inference_steps=2, callback_on_step_end=stop_after_two)
    assert [clip.metadata["steps_done"] for clip in many] == [2]  # no chunk after the interrupted one


def test_output_types_hold_the_same_pixels(pipe, photo):
    kwargs = dict(seed=4, num_inference_steps=2)
    image = pipe.edit(photo, "cut the onion", **kwargs).image
    array = pipe.edit(photo, "cut the onion", output_type="np", **kwargs).image
    tensor = pipe.edit(photo, "cut the onion", output_type="pt", **kwargs).image
    assert array.dtype == np.float32 and array.shape == (image.height, image.width, 3)
    assert np.array_equal(array * 255, _array(image)) and torch.equal(tensor, torch.from_numpy(array).permute(2, 0, 1))
    latent = pipe.edit(photo, "cut the onion", output_type="latent", **kwargs).image
    assert latent.shape[:3] == (1, 4, 1) and latent.dtype == torch.float32
    clip = pipe.animate(photo, "cut the onion", num_frames=3, output_type="np", **kwargs)
    assert clip.frames.shape == (3, image.height, image.width, 3)
    frames = pipe.animate(photo, "cut the onion", num_frames=3, output_type="pt", **kwargs).frames
    assert frames.shape == (3, 3, image.height, image.width)
    with pytest.raises(InvalidInputError, match="output_type must be one of pil, np, pt, latent"):
        pipe.edit(photo, "cut", output_type="jpeg")


def test_return_dict_false_gives_a_tuple(pipe, photo):
    output = pipe.edit(photo, "cut the onion", seed=2, num_inference_steps=2)
    image, metadata = pipe.edit(photo, "cut the onion", seed=2, num_inference_steps=2, return_dict=False)
    assert np.array_equal(_array(image), _array(output.image)) and metadata["seed"] == 2
    assert output["image"] is output.image and output.to_tuple()[1] is output.metadata  # a diffusers BaseOutput
    frames, metadata = pipe.animate(photo, "cut", num_frames=2, seed=2, num_inference_steps=2, return_dict=False)
    assert len(frames) == 2 and metadata["mode"] == "video"
    [(frames, metadata)] = pipe.animate_many([photo], ["cut"], seeds=[2], num_frames=2, num_inference_steps=2,
                                             return_dict=False)
    assert len(frames) == 2 and metadata["seed"] == 2


class _Stop(Exception):
    """What a caller's ``callback_on_decode`` raises to end a run (the app's RunStopped)."""


def test_decode_callback_comes_once_before_each_decode_and_may_stop_the_rest(pipe, photo):
    seen, decoded = [], []

    def record(done: int, total: int) -> None:
        seen.append((done, total))

    # each autoencoder decoder call records how many callbacks came before it
    handle = pipe.model.first_stage_model.decoder.register_forward_hook(lambda *args: decoded.append(len(seen)))
    quick = dict(num_inference_steps=2)
    try:
        pipe.edit(photo, "cut the onion", seed=0, callback_on_decode=record, **quick)
        assert seen == [(0, 1)] and decoded == [1]

        seen[:], decoded[:] = [], []
        pipe.animate(photo, "cut the onion", num_frames=4, seed=0, callback_on_decode=record, **quick)
        assert seen == [(0, 1)] and decoded == [1]  # the tiny preset decodes a clip in one call

        seen[:], decoded[:] = [], []
        pipe.animate(photo, "cut the onion", num_frames=4, seed=0, decode_chunk_size=2, callback_on_decode=record,
                     **quick)
        assert seen == [(0, 2), (1, 2)] and decoded == [1, 2]

        seen[:], decoded[:] = [], []  # three clips of two frames, frame by frame, sampled two clips at a time
        pipe.animate_many([photo] * 3, ["cut"] * 3, seeds=[1, 2, 3], batch_size=2, num_frames=2, decode_chunk_size=1,
                          callback_on_decode=record, **quick)
        assert seen == [(i, 6) for i in range(6)] and decoded == [1, 2, 3, 4, 5, 6]

        seen[:], decoded[:] = [], []
        pipe.edit(photo, "cut the onion", seed=0, output_type="latent", callback_on_decode=record, **quick)
        assert seen == [] and decoded == []

        def stop_at_the_second(done: int, total: int) -> None:
            seen.append((done, total))
            if done == 1:
                raise _Stop

        with pytest.raises(_Stop):
            pipe.animate_many([photo] * 3, ["cut"] * 3, seeds=[1, 2, 3], batch_size=1, num_frames=2,
                              callback_on_decode=stop_at_the_second, **quick)
        assert seen == [(0, 3), (1, 3)] and decoded == [1]  # clips 2 and 3 were never decoded
    finally:
        handle.remove()
    assert len(pipe.animate(photo, "cut", num_frames=2, seed=0, **quick).frames) == 2  # the pipeline still works


def test_fused_adapters_give_the_unfused_outputs_and_leave_the_model_as_it_was(photo):
    """``fuse_adapters``: both adapters folded into the weights during a call (no branch runs), the same latents up
    to rounding, the same edit after a fused video, and every weight restored bit for bit."""
    pipe = ShowMePipeline.from_preset("tiny", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(seed=3, num_inference_steps=3, output_type="latent")
    base = pipe.edit(photo, "cut the onion", **kwargs).image  # zero lora_B: the adapters change nothing yet
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in pipe.model.named_parameters():
            if "lora_B" in name:  # the tiny preset's adapters start at zero, which any fusing would reproduce
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    branches: list[str] = []
    for _, layer in adapters._lora_layers(pipe.model):
        for module in layer.lora_A.values():
            module.register_forward_hook(lambda *_: branches.append("lora"))
    edit = pipe.edit(photo, "cut the onion", **kwargs).image
    video = pipe.animate(photo, "cut the onion", num_frames=4, **kwargs).frames
    before = {name: value.clone() for name, value in pipe.model.state_dict().items()}
    assert branches and not pipe.edit(photo, "cut the onion", **kwargs).metadata["fused_adapters"]

    keys: list[str] = []  # the CUDA-graph key: a graph of folded weights must never replay unfolded, or back
    record_key = lambda p, *_: keys.append(p._mode_key()) or {}  # noqa: E731
    pipe.edit(photo, "cut the onion", callback_on_step_end=record_key, **kwargs)
    branches.clear()
    pipe.fuse_adapters = True
    pipe.edit(photo, "cut the onion", callback_on_step_end=record_key, **kwargs)
    assert keys[0] != keys[-1] and "fused=True" in keys[-1] and "fused=False" in keys[0]
    fused_edit = pipe.edit(photo, "cut the onion", **kwargs)
    fused_video = pipe.animate(photo, "cut the onion", num_frames=4, **kwargs).frames
    again = pipe.edit(photo, "cut the onion", **kwargs).image
    assert branches == []
    assert fused_edit.metadata["fused_adapters"] is True
    assert (edit - base).abs().max() > 0.1 * edit.abs().max()  # the adapters matter, so folding them is tested
    for folded, branched in ((fused_edit.image, edit), (fused_video, video)):  # float32 rounding, no more
        assert (folded - branched).abs().max() <= 1e-4 * branched.abs().max()
    assert torch.equal(again, fused_edit.image)  # a fused video in between changed nothing
    after = pipe.model.state_dict()
    assert all(torch.equal(after[name], value) for name, value in before.items())
    assert not adapters.is_fused(pipe.model)
