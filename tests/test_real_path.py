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


_RSS_WORKER = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from showme_i2g.i2g.pipeline import IllustrationPipeline

    def status(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

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


def test_modes_switched_with_graphs_on_give_the_eager_outputs(showme):
    """Edit, video, edit again with graph replay allowed equal the same calls with it off (on a CPU both run
    eagerly; on a GPU benchmarks/gpu_real_size.py compares the captured graphs with eager calls)."""
    outputs = {}
    for graphs in (True, False):
        showme.cuda_graphs = graphs
        first = np.asarray(showme.edit(_photo(4), "cut the onion", seed=5, num_inference_steps=2).image)
        clip = _frames(showme.animate(_photo(4), "cut the onion", seed=5, num_frames=4, num_inference_steps=2))
        again = np.asarray(showme.edit(_photo(4), "cut the onion", seed=5, num_inference_steps=2).image)
        assert np.array_equal(first, again)
        outputs[graphs] = (first, clip)
    showme.cuda_graphs = True
    assert np.array_equal(outputs[True][0], outputs[False][0]) and np.array_equal(outputs[True][1], outputs[False][1])


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
