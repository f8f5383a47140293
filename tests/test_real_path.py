"""The real-size path, checked on the tiny presets: inference never builds an autograd graph (forward hooks see
no grad mode and no output that requires grad), loaded weights are frozen, SDXL decoding is one image at a time
with memory independent of the number of steps, a recipe animated as one batch equals clip-by-clip calls, and
the graph-replay plumbing gives the eager outputs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from showme_i2g.cuda_graphs import StepGraphs
from showme_i2g.i2g.pipeline import IllustrationPipeline
from showme_i2g.i2g.vae import decode_latents, decoding_precision
from showme_i2g.showme.pipeline import ShowMePipeline

STEPS = ["Cream the butter and sugar.", "Beat in the egg.", "Fold in the flour.", "Bake for ten minutes."]


@pytest.fixture(scope="module")
def showme(tiny_showme) -> ShowMePipeline:
    return tiny_showme


@pytest.fixture(scope="module")
def i2g(tiny_illustrator) -> IllustrationPipeline:
    return tiny_illustrator


def _photo(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (48, 72, 3), dtype=np.uint8))


def _frames(clip) -> np.ndarray:
    return np.stack([np.asarray(f, dtype=np.int16) for f in clip.frames])


# ------------------------------------------------------------------------------------------------ no autograd
def test_loaded_presets_are_frozen(showme, i2g):
    assert not any(p.requires_grad for p in showme.model.parameters())
    for component in (i2g.unet, i2g.vae, i2g.text_encoder, i2g.text_encoder_2):
        assert not any(p.requires_grad for p in component.parameters())


def test_inference_builds_no_graph_even_with_trainable_weights(showme, i2g):
    """A model handed over with trainable weights (e.g. from a training script) still samples without autograd."""
    showme.model.requires_grad_(True)
    i2g.unet.requires_grad_(True)
    seen = []
    try:
        hooks = [module.register_forward_hook(
            lambda module, args, output: seen.append(torch.is_grad_enabled() or output.requires_grad))
            for module in (showme.model.unet, showme.model.first_stage_model.decoder)]
        showme.edit(_photo(0), "cut the onion", seed=0, num_inference_steps=2)
        showme.animate(_photo(0), "cut the onion", seed=0, num_frames=4, num_inference_steps=2)
        for hook in hooks:
            hook.remove()
        latents = i2g("Bake", STEPS[:2], seed=0, output_type="latent").images
        assert not latents.requires_grad
    finally:
        showme.model.requires_grad_(False)
        i2g.unet.requires_grad_(False)
    assert len(seen) >= 6 and not any(seen)  # 4 UNet calls and at least 2 decodes, none with autograd


# ------------------------------------------------------------------------------------------------ I2G decode
def test_the_vae_decodes_one_image_at_a_time_and_matches_a_whole_batch(i2g, monkeypatch):
    batch_sizes = []
    real = i2g.vae.decode

    def counting(latents, *args, **kwargs):
        batch_sizes.append(latents.shape[0])
        return real(latents, *args, **kwargs)

    monkeypatch.setattr(i2g.vae, "decode", counting)
    one = i2g("Bake cookies", STEPS, seed=3, output_type="np")
    assert batch_sizes == [1, 1, 1, 1]
    whole = i2g("Bake cookies", STEPS, seed=3, output_type="np", decode_chunk_size=None)
    assert batch_sizes[4:] == [4]
    assert np.abs(one.images - whole.images).max() <= 1 / 255


def test_an_upcast_vae_gets_its_dtype_back(i2g):
    vae = i2g.vae
    vae.to(torch.float16)
    vae.register_to_config(force_upcast=True)
    try:
        with decoding_precision(vae) as dtype:
            assert dtype == torch.float32 and vae.dtype == torch.float32
        assert vae.dtype == torch.float16
        latents = torch.randn(2, 4, 4, 4)
        images = decode_latents(vae, latents)
        assert images.dtype == torch.float32 and vae.dtype == torch.float16  # decoded in float32, cast back after
        i2g("Bake a cake", steps=STEPS[:2], num_inference_steps=1, output_type="np")
        assert vae.dtype == torch.float16  # a long-lived pipeline (the app keeps one) does not keep an fp32 VAE
        vae.register_to_config(force_upcast=False)  # an fp16-safe VAE (sdxl-vae-fp16-fix) is not upcast
        with decoding_precision(vae) as dtype:
            assert dtype == torch.float16
    finally:
        vae.register_to_config(force_upcast=True)
        vae.to(torch.float32)


def test_a_vae_that_overflows_in_half_precision_decodes_with_autocast_off(i2g):
    """Mixed-precision training runs each loss under autocast, which would compute the float32 SDXL VAE's
    convolutions in half precision (where it overflows); decoding turns autocast off for it, gradients and all."""
    vae = i2g.vae
    latents = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    reference = decode_latents(vae, latents)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = decode_latents(vae, latents)
        assert torch.is_autocast_enabled("cpu")  # only the decode ran in full precision
    assert inside.dtype == torch.float32 and torch.equal(inside, reference)
    inside.sum().backward()
    assert latents.grad is not None and torch.isfinite(latents.grad).all()
    vae.register_to_config(force_upcast=False)  # a VAE safe in half precision keeps the caller's autocast
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert decode_latents(vae, latents.detach()).dtype == torch.bfloat16
    finally:
        vae.register_to_config(force_upcast=True)


def test_a_bad_chunk_size_is_refused(i2g):
    with pytest.raises(ValueError, match="chunk_size"):
        decode_latents(i2g.vae, torch.randn(1, 4, 4, 4), chunk_size=0)


_PROC_STATUS = textwrap.dedent('''
    from pathlib import Path
    import torch
    torch.set_num_threads(1)

    def status(field):
        """A memory figure of this process in bytes (VmRSS: resident now; VmHWM: the peak since clear_refs)."""
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
''')

_RSS_WORKER = _PROC_STATUS + textwrap.dedent('''
    import json, sys
    from showme_i2g.i2g.pipeline import IllustrationPipeline

    def growth(run):
        run()  # warm-up: the allocator's first touch of every size
        Path("/proc/self/clear_refs").write_text("5")
        before = status("VmRSS")
        run()
        return status("VmHWM") - before

    from showme_i2g.i2g.vae import decode_latents

    kind, count = sys.argv[1], int(sys.argv[2])
    pipe = IllustrationPipeline.from_preset("tiny", device="cpu")
    # 512 px: at 256 px one picture's working memory (a few MiB) was within the allocator's noise (+-10 MiB)
    latents = torch.randn(count, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    chunk = None if kind == "i2g-whole" else 1
    # working memory: the peak less the decoded images themselves, which any decode must return
    peak = growth(lambda: decode_latents(pipe.vae, latents, chunk)) - count * 3 * 512 * 512 * 4
    print(json.dumps({"peak": peak}))
''')


def _peak_rss(kind: str, count: int) -> int:
    out = subprocess.run([sys.executable, "-c", _RSS_WORKER, kind, str(count)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak"]


def test_decode_memory_does_not_grow_with_the_number_of_steps():
    """Decoding 16 step images at 512 px one at a time needs about the working memory of 4 (the images themselves
    aside): 12 more images add less than four images' worth of a whole-batch decode (which would add twelve), and a
    whole-batch decode is what the default avoids. A ratio to the 4-image figure was flaky: that figure, 10-60 MiB
    in repeated runs, is within the allocator's noise, while 16 whole-batch images need about 720 MiB."""
    whole = _peak_rss("i2g-whole", 16)
    one_at_a_time = _peak_rss("i2g", 16)
    assert one_at_a_time < _peak_rss("i2g", 4) + 4 * whole / 16
    assert whole > 2 * one_at_a_time


_ANIMATE_RSS_WORKER = _PROC_STATUS + textwrap.dedent('''
    import ctypes, json
    import numpy as np
    from PIL import Image
    from showme_i2g.showme.pipeline import ShowMePipeline

    pipe = ShowMePipeline.from_preset("tiny", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    marks = {}

    def at_decode(done, total):
        if done == 0:  # sampling is over: from here on only decoding allocates
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed memory back to the system, so the peak shows as growth
            Path("/proc/self/clear_refs").write_text("5")
            marks["before"] = status("VmRSS")

    def decode_growth(frames):
        run = lambda: pipe.animate(photo, "cut the onion", seed=0, num_frames=frames, num_inference_steps=1,
                                   decode_chunk_size=1, callback_on_decode=at_decode)
        run()  # warm-up: the allocator's first touch of every size
        run()
        return status("VmHWM") - marks["before"]

    result = {"inference": decode_growth(16)}
    # what this guards against: decoding under autograd with trainable weights keeps every frame's activations
    ShowMePipeline._decode = ShowMePipeline._decode.__wrapped__
    pipe.model.requires_grad_(True)
    result["autograd_2"], result["autograd_16"] = decode_growth(2), decode_growth(16)
    print(json.dumps(result))
''')


def test_animate_memory_grows_by_about_one_decoded_frame_not_sixteen():
    """Decoding a 16-frame clip (frame by frame) raises the resident set by less than three frames' working memory.
    A frame's working memory is measured in the same process as what one more frame costs when decoding keeps an
    autograd graph (the failure this guards against: every frame's activations kept until the clip is freed). In
    repeated runs: 10-12 MiB for the 16-frame clip, about 11 MiB per frame, 180 MiB for 16 frames under autograd."""
    out = subprocess.run([sys.executable, "-c", _ANIMATE_RSS_WORKER], capture_output=True, text=True, check=True)
    growth = json.loads(out.stdout.strip().splitlines()[-1])
    per_frame = (growth["autograd_16"] - growth["autograd_2"]) / 14
    assert per_frame > 2 * 2**20  # the measurement sees a frame's activations at all
    assert growth["inference"] < 3 * per_frame


# ------------------------------------------------------------------------------------------------ ShowMe batch
def test_animate_many_equals_separate_animate_calls(showme):
    photos = [_photo(1), _photo(2), _photo(3)]
    texts = ["cut the onion", "stir the soup", "open the lid"]
    progress = []
    many = showme.animate_many(photos, texts, seeds=[11, 12, 13], batch_size=2, num_frames=4,
                               num_inference_steps=3,
                               progress_callback=lambda done, total: progress.append((done, total)))
    assert progress == [(i, 6) for i in range(1, 7)]  # 2 chunks x 3 DDIM steps
    for clip, image, text, seed in zip(many, photos, texts, [11, 12, 13]):
        alone = showme.animate(image, text, seed=seed, num_frames=4, num_inference_steps=3)
        assert np.abs(_frames(clip) - _frames(alone)).max() <= 1
        assert clip.metadata["seed"] == seed and clip.metadata["instruction"] == text
    assert many[0].metadata["batch_size"] == 2 and many[2].metadata["batch_size"] == 1


def test_animate_many_refuses_mismatched_lists(showme):
    from showme_i2g.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="one each"):
        showme.animate_many([_photo(1)], ["a", "b"])
    with pytest.raises(InvalidInputError, match="seeds"):
        showme.animate_many([_photo(1)], ["a"], seeds=[1, 2])
    with pytest.raises(InvalidInputError, match="at least one"):
        showme.animate_many([], [])


# ------------------------------------------------------------------------------------------------ graphs
def test_step_graphs_fall_back_to_eager_off_the_gpu():
    graphs = StepGraphs()
    calls = []

    def double(x):
        calls.append(x.shape)
        return 2 * x

    x = torch.ones(2, 3)
    assert not graphs.active_for([x])  # CPU tensors: eager
    assert torch.equal(graphs.run("mode", double, x), 2 * x) and calls == [(2, 3)] and len(graphs) == 0
    with torch.no_grad():
        assert not graphs.active_for([x])


def test_the_weights_key_changes_when_a_network_moves_or_gains_layers():
    """A graph replays fixed addresses: a cast or an added layer must give a new key, hence a new capture."""
    net = torch.nn.Sequential(torch.nn.Linear(4, 4))
    key = StepGraphs.weights_key(net)
    assert StepGraphs.weights_key(net) == key
    net.to(torch.float64)
    assert StepGraphs.weights_key(net) != key
    key = StepGraphs.weights_key(net)
    net.append(torch.nn.Linear(4, 4).double())
    assert StepGraphs.weights_key(net) != key


def test_animate_many_checks_every_photo_before_sampling(showme, monkeypatch):
    from showme_i2g.errors import InvalidInputError

    sampled = []
    monkeypatch.setattr(showme, "sample_latents", lambda *a, **k: sampled.append(1))
    with pytest.raises(InvalidInputError):
        showme.animate_many([_photo(1), b"not an image"], ["a", "b"], batch_size=1)
    with pytest.raises(InvalidInputError):
        showme.animate_many([_photo(1), _photo(2)], ["a", "   "], batch_size=1)
    assert sampled == []


class _RecordedGraph:
    """A CPU stand-in for :class:`~showme_i2g.cuda_graphs.GraphedCall`: the same static input and output buffers,
    the function run again at each replay, so the cache's keys, reuse and buffer handling can be tested here."""

    def __init__(self, function, example_inputs) -> None:
        self.function = function
        self.static_inputs = [t.detach().clone() for t in example_inputs]
        self.static_output = function(*self.static_inputs).clone()

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        for static, tensor in zip(self.static_inputs, inputs, strict=True):
            static.copy_(tensor)
        self.static_output.copy_(self.function(*self.static_inputs))
        return self.static_output  # overwritten by the next replay, as a real graph's output is


def _forced_graphs(capture: type = _RecordedGraph, max_graphs: int = 2) -> StepGraphs:
    """A graph cache that treats CPU tensors as CUDA ones and captures with ``capture``."""

    class Forced(StepGraphs):
        graphed_call = capture

        @staticmethod
        def _on_cuda(inputs) -> bool:
            return True

    return Forced(max_graphs=max_graphs)


def _failing_capture(error: type[BaseException], message: str) -> tuple[type, list[int]]:
    """A capture stand-in that raises a fresh ``error(message)``, and the list counting its attempts."""
    attempts: list[int] = []

    class Failing:
        def __init__(self, function, inputs) -> None:
            attempts.append(1)
            raise error(message)

    return Failing, attempts


def _scaled(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return x * t


def test_one_graph_per_key_serves_every_step_and_each_result_is_the_callers_own():
    graphs = _forced_graphs()
    x, t = torch.ones(2, 3), torch.full((2, 1), 2.0)
    with torch.inference_mode():
        results = [graphs.run("video", _scaled, x + i, t) for i in range(4)]
        assert graphs.captures == 1 and len(graphs) == 1
        # a later replay overwrites the graph's buffer, not what an earlier step returned (PNDM keeps past outputs)
        assert all(torch.equal(result, (x + i) * t) for i, result in enumerate(results))
        graphs.run("image", _scaled, x, t)  # another mode
        graphs.run("video", _scaled, x[:1], t[:1])  # another shape
        assert graphs.captures == 3 and len(graphs) == 2  # the least recently used (video at batch 2) was dropped
        graphs.run("video", _scaled, x, t)
        assert graphs.captures == 4
        graphs.begin_run(False)  # cuda_graphs=False
        assert torch.equal(graphs.run("new", _scaled, x, t), x * t) and graphs.captures == 4
    graphs.begin_run(True)
    graphs.run("new", _scaled, x, t)  # autograd on (training): eager
    assert graphs.captures == 4


def test_a_capture_out_of_memory_runs_that_key_eagerly_until_the_next_run():
    NoRoom, attempts = _failing_capture(torch.OutOfMemoryError, "CUDA out of memory (simulated)")
    graphs = _forced_graphs(NoRoom)
    x, t = torch.ones(2, 3), torch.full((2, 1), 3.0)
    with torch.inference_mode():
        assert all(torch.equal(graphs.run("video", _scaled, x, t), x * t) for _ in range(5))
        assert len(attempts) == 1  # not a failed capture (and its warm-up forwards) at every step
        graphs.begin_run(True)  # the next sampling run may have the memory
        graphs.run("video", _scaled, x, t)
        assert len(attempts) == 2 and graphs.replaying


def test_a_capture_that_fails_otherwise_turns_graphs_off_for_good(caplog):
    Uncapturable, attempts = _failing_capture(RuntimeError, "operation not permitted when stream is capturing")
    graphs = _forced_graphs(Uncapturable)
    graphs._graphs["edit"] = _RecordedGraph(_scaled, [torch.ones(1), torch.ones(1)])  # a graph captured before
    x, t = torch.ones(2, 3), torch.full((2, 1), 3.0)
    with torch.inference_mode(), caplog.at_level("WARNING"):
        for _ in range(3):
            graphs.begin_run(True)  # the pipelines start every run with their switch: it does not undo a failure
            assert torch.equal(graphs.run("video", _scaled, x, t), x * t)
    assert len(attempts) == 1 and not graphs.replaying and "not permitted" in graphs.failure
    assert len(graphs) == 0  # graphs that will never replay again give their memory back
    assert sum("capture failed" in record.message for record in caplog.records) == 1


def test_a_step_that_fails_by_itself_raises_and_leaves_graphs_on():
    """A bad input (e.g. a callback's tensor of the wrong shape) fails the capture's warm-up and the eager step
    alike: that is the caller's error, not a reason to give up graphs for the pipeline's life."""

    def broken(x, t):
        raise RuntimeError("The size of tensor a (3) must match the size of tensor b (4)")

    graphs = _forced_graphs()
    graphs._graphs["edit"] = _RecordedGraph(_scaled, [torch.ones(1), torch.ones(1)])  # a graph captured before
    with torch.inference_mode(), pytest.raises(RuntimeError, match="must match"):
        graphs.run("video", broken, torch.ones(2, 3), torch.ones(2, 1))
    assert graphs.replaying and graphs.failure is None and len(graphs) == 1


@pytest.mark.parametrize("error, message", [(torch.OutOfMemoryError, "CUDA out of memory (simulated)"),
                                            (RuntimeError, "operation not permitted when stream is capturing")])
def test_the_eager_step_after_a_failed_capture_runs_without_the_attempts_memory(error, message):
    """Near a memory cap the eager step only fits once the failed attempt's activations are gone; an exception's
    traceback keeps them alive for as long as its except block runs."""
    import weakref

    attempts = []

    class Hungry:
        def __init__(self, function, inputs) -> None:
            activations = torch.ones(1000)
            attempts.append(weakref.ref(activations))
            raise error(message)  # a fresh exception, as a failed capture raises: its traceback holds this frame

    def step(x, t):
        assert attempts[-1]() is None  # the attempt's activations were freed before this step ran
        return x * t

    with torch.inference_mode():
        assert torch.equal(_forced_graphs(Hungry).run("video", step, torch.ones(2, 3), torch.ones(2, 1)),
                           torch.ones(2, 3))


def test_a_library_out_of_memory_error_is_treated_as_out_of_memory():
    from showme_i2g.cuda_graphs import ran_out_of_memory

    NoEngine, attempts = _failing_capture(RuntimeError, "cuDNN error: unable to find an engine to execute this")
    graphs = _forced_graphs(NoEngine)
    x, t = torch.ones(2, 3), torch.full((2, 1), 3.0)
    with torch.inference_mode():
        for _ in range(3):
            graphs.run("video", _scaled, x, t)
    assert len(attempts) == 1 and graphs.replaying  # eager for this run, not off for good
    assert ran_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert ran_out_of_memory(RuntimeError(
        "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"))  # TORCH_CUDABLAS_CHECK's words
    try:  # ending a capture after an error inside it raises anew; the out-of-memory error is its context
        try:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
        except torch.OutOfMemoryError:
            raise RuntimeError("CUDA error: operation failed due to a previous error during capture")  # noqa: B904
    except RuntimeError as later:
        assert ran_out_of_memory(later)
    assert not ran_out_of_memory(RuntimeError("Expected all tensors to be on the same device"))
    assert not ran_out_of_memory(ValueError("out of memory"))


def test_the_adapters_key_changes_with_every_way_of_changing_what_the_adapters_do():
    """A capture bakes in the adapters' Python state: scales, active adapters, disabled or merged."""
    from peft import LoraConfig, inject_adapter_in_model

    net = inject_adapter_in_model(LoraConfig(r=2, target_modules=["0"]), torch.nn.Sequential(torch.nn.Linear(4, 4)))
    layer = net[0]
    keys = [StepGraphs.adapters_key(net)]
    layer.set_scale("default", 0.5)  # what diffusers' set_adapters(weights=...) does
    keys.append(StepGraphs.adapters_key(net))
    layer.enable_adapters(False)  # disable_lora
    keys.append(StepGraphs.adapters_key(net))
    layer.enable_adapters(True)
    layer.merge()  # fuse_lora
    keys.append(StepGraphs.adapters_key(net))
    assert len(set(keys)) == 4
    layer.unmerge()
    assert StepGraphs.adapters_key(net) == keys[1]
    assert StepGraphs.adapters_key(torch.nn.Linear(2, 2)) == ()


def test_modes_switched_with_graph_replay_give_the_eager_outputs(showme):
    """Edit, video, edit again through the graph cache (a CPU stand-in for capture and replay) equal the same
    calls run eagerly; the cache holds one graph per mode, reused, and fused adapters get their own."""
    kept = showme._step_graphs
    outputs = {}
    try:
        for replay in (True, False):
            showme._step_graphs = _forced_graphs()
            showme.cuda_graphs = replay
            first = np.asarray(showme.edit(_photo(4), "cut the onion", seed=5, num_inference_steps=2).image)
            video = showme.animate(_photo(4), "cut the onion", seed=5, num_frames=4, num_inference_steps=2)
            clip = _frames(video)
            again = np.asarray(showme.edit(_photo(4), "cut the onion", seed=5, num_inference_steps=2).image)
            assert np.array_equal(first, again)
            outputs[replay] = (first, clip, showme._step_graphs.captures, video.metadata["cuda_graphs"])
        assert outputs[True][2] == 2 and outputs[False][2] == 0  # edit and video captured once each
        assert outputs[True][3] is True and outputs[False][3] is False  # the run record says whether it replayed
        assert np.array_equal(outputs[True][0], outputs[False][0]) and np.array_equal(outputs[True][1],
                                                                                      outputs[False][1])
        showme._step_graphs, showme.cuda_graphs = _forced_graphs(), True
        showme.edit(_photo(4), "cut the onion", seed=5, num_inference_steps=2)
        showme.fuse_adapters = True
        showme.edit(_photo(4), "cut the onion", seed=5, num_inference_steps=2)
        assert showme._step_graphs.captures == 2  # folded weights never replay the unfolded graph
    finally:
        showme._step_graphs, showme.cuda_graphs, showme.fuse_adapters = kept, True, False


def test_a_recipe_animation_is_one_graph_run_and_each_call_its_own(showme):
    """A capture that ran out of memory is not tried again by the later chunks of the same ``animate_many``
    (each try costs two warm-up forwards), but the next call may have the memory and tries again."""
    NoRoom, attempts = _failing_capture(torch.OutOfMemoryError, "CUDA out of memory (simulated)")
    kept = showme._step_graphs
    showme._step_graphs = _forced_graphs(NoRoom)
    try:
        clips = showme.animate_many([_photo(1), _photo(2), _photo(3)], ["a", "b", "c"], seeds=[1, 2, 3],
                                    batch_size=1, num_frames=2, num_inference_steps=2)
        assert len(attempts) == 1 and not any(c.metadata["cuda_graphs"] for c in clips)
        showme.animate(_photo(1), "a", seed=1, num_frames=2, num_inference_steps=2)
        assert len(attempts) == 2
    finally:
        showme._step_graphs = kept


def test_an_i2g_lora_changed_through_diffusers_gets_a_new_graph():
    """``disable_lora`` and ``set_adapters(weights=...)`` change no weight's address, only what the LoRA layers
    do, so the graph key must see them; each call's pixels equal an eager call's."""
    from peft import LoraConfig

    pipe = IllustrationPipeline.from_preset("tiny", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    pipe.unet.add_adapter(LoraConfig(r=4, target_modules=["to_q", "to_v"]), adapter_name="mine")
    with torch.no_grad():
        for name, parameter in pipe.unet.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5, generator=torch.Generator().manual_seed(0))
    pipe._step_graphs = _forced_graphs(max_graphs=3)

    def draw() -> tuple[np.ndarray, np.ndarray]:
        kwargs = dict(steps=STEPS[:2], seed=3, num_inference_steps=2, output_type="np")
        pipe.cuda_graphs = True
        replayed = pipe("Bake a cake", **kwargs).images
        pipe.cuda_graphs = False
        eager = pipe("Bake a cake", **kwargs).images
        return replayed, eager

    drawn = [draw()]
    pipe.unet.disable_adapters()
    drawn.append(draw())
    pipe.unet.enable_adapters()
    pipe.unet.set_adapters(["mine"], weights=[0.5])
    drawn.append(draw())
    assert pipe._step_graphs.captures == 3
    assert all(np.array_equal(replayed, eager) for replayed, eager in drawn)
    assert not np.array_equal(drawn[0][1], drawn[1][1]) and not np.array_equal(drawn[0][1], drawn[2][1])


def test_animate_many_retries_a_chunk_that_runs_out_of_memory_at_half_the_size(showme, monkeypatch):
    real, chunks = showme._run, []

    def tight(mode, images, *args, **kwargs):
        chunks.append(len(images))
        if len(images) > 1 and len(chunks) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(mode, images, *args, **kwargs)

    monkeypatch.setattr(showme, "_run", tight)
    clips = showme.animate_many([_photo(1), _photo(2), _photo(3)], ["a", "b", "c"], seeds=[1, 2, 3], batch_size=3,
                                num_frames=2, num_inference_steps=2)
    assert chunks == [3, 1, 1, 1] and [c.metadata["seed"] for c in clips] == [1, 2, 3]


def test_animate_many_halves_on_a_library_out_of_memory_error_and_raises_any_other(showme, monkeypatch):
    real, chunks = showme._run, []
    error = {"kind": RuntimeError("cuDNN error: unable to find an engine to execute this computation")}

    def tight(mode, images, *args, **kwargs):
        chunks.append(len(images))
        if len(images) > 1:
            raise error["kind"]
        return real(mode, images, *args, **kwargs)

    monkeypatch.setattr(showme, "_run", tight)
    kwargs = dict(seeds=[1, 2], batch_size=2, num_frames=2, num_inference_steps=1)
    assert len(showme.animate_many([_photo(1), _photo(2)], ["a", "b"], **kwargs)) == 2 and chunks == [2, 1, 1]
    error["kind"] = RuntimeError("Expected all tensors to be on the same device")
    with pytest.raises(RuntimeError, match="same device"):
        showme.animate_many([_photo(1), _photo(2)], ["a", "b"], **kwargs)


def test_a_preset_can_name_an_fp16_safe_vae(monkeypatch):
    """The fp16-fix route: a preset's ``vae`` is loaded and handed to from_pretrained in place of the base's."""
    import dataclasses

    import diffusers

    from showme_i2g.errors import WeightsNotFoundError
    from showme_i2g.presets import get_illustration_preset

    preset = dataclasses.replace(get_illustration_preset("sdxl"), vae="madebyollin/sdxl-vae-fp16-fix")
    loaded = {}
    monkeypatch.setattr(diffusers.AutoencoderKL, "from_pretrained",
                        classmethod(lambda cls, source, **kw: loaded.setdefault("vae", (source, kw["dtype"]))))

    def fake_pipeline(cls, source, **kwargs):
        loaded["pipeline_vae"] = kwargs.get("vae")
        raise OSError("offline")

    monkeypatch.setattr(IllustrationPipeline, "from_pretrained", classmethod(fake_pipeline))
    with pytest.raises(WeightsNotFoundError):
        IllustrationPipeline._load_real_preset(preset, torch.device("cpu"), None, None)
    assert loaded["vae"] == ("madebyollin/sdxl-vae-fp16-fix", torch.float32)
    assert loaded["pipeline_vae"] == loaded["vae"]
