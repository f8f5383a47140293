"""The real-size path on one GPU, measured in one run: ShowMe edit/video latency and memory (eager vs CUDA graphs),
a whole recipe animated in one batch and where its time goes, SDXL neighbour attention on flash kernels, a 7-step
recipe and its decode memory, one optimizer step of every training entry point with the largest batch that fits
80 GB, and the Space case (both models resident under 22 GiB).

    python benchmarks/gpu_real_size.py                 # real architectures, random weights, on the GPU at hand
    python benchmarks/gpu_real_size.py --tiny          # the same code on the tiny twins (a CPU smoke test)
    python benchmarks/gpu_real_size.py --only showme   # some sections: showme profile attention recipe training space

Time and memory do not depend on the weights' values, so every model is its real architecture with random
weights, built directly on the GPU: no download is needed. That includes the reward networks (CLIP ViT-L/14,
Depth-Anything-V2-Small, HED). It prints one table (each figure next to its target and the published anchor)
and, with ``--json``, writes the rows there. Sections that fail print their error and the run goes on.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from showme_i2g.cuda_graphs import ran_out_of_memory  # noqa: E402
from showme_i2g.devices import best_device  # noqa: E402
from showme_i2g.i2g import attention  # noqa: E402
from showme_i2g.i2g.attention import neighbour_attention_enabled  # noqa: E402
from showme_i2g.i2g.pipeline import IllustrationPipeline  # noqa: E402
from showme_i2g.presets import get_illustration_preset  # noqa: E402
from showme_i2g.showme import adapters  # noqa: E402
from showme_i2g.showme.dynamicrafter.config import CONFIGS  # noqa: E402
from showme_i2g.showme.pipeline import ShowMePipeline, build_random_model  # noqa: E402

GIB = 2**30
SECTIONS = ("showme", "profile", "attention", "recipe", "training", "space")
SPACE_LIMIT_GIB = 22.0  # an L4's 24 GB less headroom
RECIPE = [
    "Preheat the oven to 180 C and line a tray.", "Cream the butter and both sugars.", "Beat in the egg and vanilla.",
    "Stir in the flour, salt and baking soda.", "Fold in the chocolate chips.", "Scoop balls of dough onto the tray.",
    "Bake for 11 minutes until golden.",
]

# The architecture-defining entries of stabilityai/stable-diffusion-xl-base-1.0's component configs
SDXL_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), block_out_channels=(320, 640, 1280),
    layers_per_block=2, transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20),
    cross_attention_dim=2048, use_linear_projection=True, addition_embed_type="text_time",
    addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
)
SDXL_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    latent_channels=4, sample_size=1024, scaling_factor=0.13025, force_upcast=True,
)
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              hidden_act="quick_gelu", projection_dim=768)
CLIP_BIGG = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                 hidden_act="gelu", projection_dim=1280)

# The architecture-defining entries of the reward networks' configs: openai/clip-vit-large-patch14 (I2G's alignment
# reward) and depth-anything/Depth-Anything-V2-Small-hf (ShowMe's depth reward; HED is built by HED() itself)
CLIP_VIT_L14 = dict(
    text_config=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                     num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                     bos_token_id=49406, eos_token_id=49407, pad_token_id=1),
    vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                       image_size=224, patch_size=14, hidden_act="quick_gelu"),
    projection_dim=768,
)
DEPTH_ANYTHING_V2_SMALL = dict(
    backbone_config=dict(model_type="dinov2", hidden_size=384, num_attention_heads=6, image_size=518, patch_size=14,
                         out_indices=[3, 6, 9, 12], reshape_hidden_states=False),
    neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64, reassemble_hidden_size=384, patch_size=14,
    depth_estimation_type="relative",
)


# ------------------------------------------------------------------------------------------------ measuring
class Table:
    """Rows of (section, what, measured, unit, target, anchor), printed as they come and at the end."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, section: str, what: str, value: float | str, unit: str = "", target: str = "", anchor: str = ""):
        row = {"section": section, "what": what, "value": value, "unit": unit, "target": target, "anchor": anchor}
        self.rows.append(row)
        print(f"  {what}: {_fmt(value)} {unit}  [target {target or '-'}; {anchor or '-'}]", flush=True)

    def print(self, device: str) -> None:
        print(f"\n## Real size on {device}, torch {torch.__version__}\n")
        print("| section | what | measured | target | published / before |")
        print("|---|---|---|---|---|")
        for r in self.rows:
            print(f"| {r['section']} | {r['what']} | {_fmt(r['value'])} {r['unit']} | {r['target'] or '–'} | "
                  f"{r['anchor'] or '–'} |")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(
    device: torch.device, run: Callable[[], object], repeats: int = 1, warmup: int = 1
) -> tuple[float, float, object]:
    """(median seconds, peak GiB allocated during the timed calls, last result)."""
    for _ in range(warmup):
        run()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    times, result = [], None
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = run()
        sync(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / GIB if device.type == "cuda" else float("nan")
    return statistics.median(times), peak, result


def reserved_peak(device: torch.device) -> float:
    """GiB the caching allocator held at most since :func:`timed` reset the statistics. A replayed CUDA graph keeps
    its activations in its own pool, reserved but not allocated, so this is the footprint of a graphed call."""
    return torch.cuda.max_memory_reserved() / GIB if device.type == "cuda" else float("nan")


def pixels_diff(a: list[Image.Image], b: list[Image.Image]) -> int:
    return int(max(np.abs(np.asarray(x, np.int16) - np.asarray(y, np.int16)).max() for x, y in zip(a, b)))


# ------------------------------------------------------------------------------------------------ models
def showme_pipeline(args, device: torch.device) -> ShowMePipeline:
    config = CONFIGS["tiny" if args.tiny else "dynamicrafter-256"]
    with torch.device(device):
        model = build_random_model(config)
    ranks = (4, 4) if args.tiny else (128, 64)
    adapters.add_showme_adapters(model, edit_rank=ranks[0], animate_rank=ranks[1])
    with torch.no_grad():  # trained-like adapters (lora_B starts at zero), so fused and unfused outputs can differ
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.01)
    model.to(args.dtype)
    pipe = ShowMePipeline(model, device=device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sdxl_pipeline(args, device: torch.device) -> IllustrationPipeline:
    """SDXL base's real architecture (random weights) under the sdxl-lightning preset's settings."""
    if args.tiny:
        pipe = IllustrationPipeline.from_preset("tiny", device=device)
        pipe.set_progress_bar_config(disable=True)
        return pipe
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from showme_i2g.text.tokenizers import load_clip_tokenizer

    common = dict(vocab_size=49408, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**SDXL_UNET)
        vae = AutoencoderKL(**SDXL_VAE)
        text_encoder = CLIPTextModel(CLIPTextConfig(**common, **CLIP_L))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**common, **CLIP_BIGG))
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, steps_offset=1,
        timestep_spacing="trailing", prediction_type="epsilon",
    )
    pipe = IllustrationPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
        tokenizer=load_clip_tokenizer(pad_token="<|endoftext|>"), tokenizer_2=load_clip_tokenizer(pad_token="!"),
        unet=unet, scheduler=scheduler,
    )
    pipe.preset = get_illustration_preset("sdxl-lightning")
    pipe.freeze()
    pipe.to(device, args.dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def photo(size: int) -> Image.Image:
    y, x = np.mgrid[0:size, 0:size]
    return Image.fromarray(np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8))


# ------------------------------------------------------------------------------------------------ sections
def section_showme(args, device, table: Table, pipe: ShowMePipeline) -> None:
    steps, frames = (4, 8) if args.tiny else (50, 16)
    image = photo(pipe.config.width)
    kwargs = {"seed": 0, "num_inference_steps": steps}
    results = {}
    entry = pipe.cuda_graphs, pipe.fuse_adapters

    def run(label: str, graphs: bool, fused: bool) -> None:
        pipe.cuda_graphs, pipe.fuse_adapters = graphs, fused
        try:
            e_s, e_gib, edit = timed(device, lambda: pipe.edit(image, "cut the onion", **kwargs))
            e_reserved = reserved_peak(device)
            v_s, v_gib, video = timed(device, lambda: pipe.animate(image, "cut the onion", num_frames=frames,
                                                                   **kwargs))
            v_reserved = reserved_peak(device)
        finally:
            pipe.cuda_graphs, pipe.fuse_adapters = entry
        results[label] = (edit, video, v_s)
        table.add("ShowMe", f"edit, 1 frame, DDIM {steps}, {label}", e_s, "s",
                  "≤ 0.8 s" if graphs else "≤ 1.5 s", "before: 2.3–3.3 s (H200)")
        table.add("ShowMe", f"edit peak memory, {label}", f"{e_gib:.2f} allocated, {e_reserved:.2f} reserved", "GiB")
        table.add("ShowMe", f"video {frames} frames, DDIM {steps}, {label}", v_s, "s",
                  "≤ 5 s" if graphs else "≤ 10 s", "A100 published 10 s; before 6.8 s (H200)")
        table.add("ShowMe", f"video peak memory, {label}", f"{v_gib:.2f} allocated, {v_reserved:.2f} reserved",
                  "GiB", "≤ 12 GB", "A100 published 11.9 GB; before 16.7 GiB (allocated)")

    def compare(label: str, first: str, second: str, target: str) -> None:
        (edit, video, _), (other_edit, other_video, _) = results[first], results[second]
        table.add("ShowMe", f"{label}, max pixel difference (edit / video)",
                  f"{pixels_diff([edit.image], [other_edit.image])} / {pixels_diff(video.frames, other_video.frames)}",
                  "levels of 255", target)

    run("eager", False, False)
    run("CUDA graphs", True, False)
    table.add("ShowMe", "CUDA graphs captured (edit, video)", pipe._step_graphs.captures, "", "2 on a GPU")
    compare("graph vs eager", "CUDA graphs", "eager", "0")
    # a whole recipe animated as one batch
    count, one_clip = len(RECIPE), results["CUDA graphs"][2]
    images = [photo(pipe.config.width)] * count
    instructions = ["cut the onion"] + RECIPE[1:]  # clip 1 is the video above (same photo, text and seed)
    many_s, many_gib, many = timed(
        device, lambda: pipe.animate_many(images, instructions, seeds=list(range(count)), num_frames=frames,
                                          num_inference_steps=steps), warmup=0)
    table.add("ShowMe", f"animate_many: {count} clips x {frames} frames (first call, capture included)", many_s, "s",
              "≤ 15 s (H200)", f"one by one: {count} x {one_clip:.2f} = {count * one_clip:.1f} s")
    table.add("ShowMe", "animate_many peak memory", f"{many_gib:.2f} allocated, {reserved_peak(device):.2f} reserved",
              "GiB")
    table.add("ShowMe", "animate_many clip 1 vs animate(seed 0), max pixel difference",
              pixels_diff(many[0].frames, results["CUDA graphs"][1].frames), "levels of 255")
    # the adapters folded into the weights, last: a failure here loses nothing measured above
    try:
        run("eager, fused adapters", False, True)
        run("CUDA graphs, fused adapters", True, True)
        compare("fused: graph vs eager (folded weights replayed)", "CUDA graphs, fused adapters",
                "eager, fused adapters", "0")
        compare("graph: fused vs unfused", "CUDA graphs, fused adapters", "CUDA graphs", "rounding")
    except Exception as exc:  # noqa: BLE001 - reported in the table, the run goes on
        traceback.print_exc()
        table.add("ShowMe", "fused adapters: failed", f"{type(exc).__name__}: {str(exc)[:120]}")
    grads = any(p.requires_grad for p in pipe.model.parameters())
    table.add("ShowMe", "parameters requiring grad after loading", str(grads), "", "False")


def section_profile(args, device, table: Table, pipe: ShowMePipeline) -> None:
    """Where a recipe animation's time goes: one eager UNet call at ``animate_many``'s batch (7 clips x 16 frames
    under CFG), timed, its FLOPs counted (so the achieved TFLOP/s says how far the step is from compute-bound), and
    ``torch.profiler``'s kernels printed by time."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    clips, frames = (2, 4) if args.tiny else (len(RECIPE), 16)
    found: dict = {}

    def measure_step(p: ShowMePipeline, i: int, t: int, tensors: dict) -> dict:
        if i > 0:
            return {}
        context, concat = tensors["context"], tensors["concat"]
        batch = concat.shape[0]
        latents = tensors["latents"].to(p.model.dtype).repeat(batch // tensors["latents"].shape[0], 1, 1, 1, 1)
        timesteps = torch.full((batch,), t, device=device, dtype=torch.long)
        fs = torch.full((batch,), p.model.config.default_fs, device=device, dtype=torch.long)

        def call():
            return p._unet_step(latents, timesteps, concat, context, fs)

        found["seconds"], found["gib"], _ = timed(device, call, repeats=args.repeats, warmup=2)
        try:
            with adapters.fused(p.model):  # the mode's adapters folded into the weights: no LoRA branches
                found["fused"], _, _ = timed(device, call, repeats=args.repeats, warmup=2)
        except Exception as exc:  # noqa: BLE001 - reported in the table, the other rows go on
            traceback.print_exc()
            found["fused"] = f"{type(exc).__name__}: {str(exc)[:80]}"
        # cuDNN's plan cache is keyed by shape, dtype and the TF32 flag, not by the benchmark flag, so every shape of
        # this call would reuse the plans already chosen; flipping TF32 (which fp16 convolutions do not use) gives
        # new keys, and cuDNN times its algorithms for each and keeps the fastest
        cudnn = torch.backends.cudnn
        saved = cudnn.benchmark, cudnn.allow_tf32
        cudnn.benchmark, cudnn.allow_tf32 = True, not cudnn.allow_tf32
        try:
            found["autotuned"], _, _ = timed(device, call, repeats=args.repeats, warmup=2)
        finally:
            cudnn.benchmark, cudnn.allow_tf32 = saved
        with FlopCounterMode(display=False) as flops:
            call()
        found["flops"], found["batch"] = flops.get_total_flops(), batch
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            call()
            sync(device)
        found["profile"] = prof.key_averages().table(
            sort_by="cuda_time_total" if device.type == "cuda" else "cpu_time_total", row_limit=30)
        found["temporal"] = temporal_conv_layouts(device, p.model, call)
        return {}

    graphs, pipe.cuda_graphs = pipe.cuda_graphs, False
    try:
        pipe.animate_many([photo(pipe.config.width)] * clips, RECIPE[:clips], seeds=list(range(clips)),
                          num_frames=frames, num_inference_steps=1, callback_on_step_end=measure_step,
                          callback_on_step_end_tensor_inputs=("latents", "context", "concat"))
    finally:
        pipe.cuda_graphs = graphs
    what = f"UNet call, {clips} clips x {frames} frames, CFG (batch {found['batch']})"
    table.add("profile", f"{what}: eager time", found["seconds"] * 1e3, "ms")
    fused = found["fused"]
    table.add("profile", f"{what}: eager time, adapters fused", fused * 1e3 if isinstance(fused, float) else fused,
              "ms")
    table.add("profile", f"{what}: eager time with torch.backends.cudnn.benchmark", found["autotuned"] * 1e3, "ms")
    table.add("profile", f"{what}: FLOPs", found["flops"] / 1e12, "TFLOP")
    table.add("profile", f"{what}: achieved", found["flops"] / found["seconds"] / 1e12, "TFLOP/s", "",
              "H200 dense fp16 peak: 989 TFLOP/s")
    table.add("profile", f"the UNet share of a {clips}-clip animation at DDIM 50 (50 such calls)",
              50 * found["seconds"], "s", "≤ 15 s in all")
    conv3d_s, conv2d_s, calls, difference = found["temporal"]
    table.add("profile", f"its {calls} temporal convolutions: Conv3d (3, 1, 1) / the same as Conv2d (3, 1) on (T, H·W)",
              f"{conv3d_s * 1e3:.1f} / {conv2d_s * 1e3:.1f} (outputs differ by at most {difference:.2g})", "ms")
    print(f"\n### Operators of one such UNet call, by total time (torch.profiler)\n\n{found['profile']}", flush=True)


def temporal_conv_layouts(device, model, call: Callable[[], object]) -> tuple[float, float, int, float]:
    """Seconds per UNet call of its temporal (3, 1, 1) convolutions as they run (``Conv3d``) and as a ``Conv2d``
    with a (3, 1) kernel over the (T, H·W) view of the same memory (the same arithmetic), how many there are, and
    the largest difference of their outputs. Which is faster on a GPU decides whether the port should use the
    view."""
    import torch.nn.functional as F

    seen: dict[tuple, list] = {}

    def record(module, inputs):
        if module.kernel_size == (3, 1, 1):
            key = (tuple(inputs[0].shape), tuple(module.weight.shape))
            seen.setdefault(key, [inputs[0], module.weight, module.bias, 0])[3] += 1

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    try:
        call()
    finally:
        for hook in hooks:
            hook.remove()
    totals, difference = [0.0, 0.0], 0.0
    for x, weight, bias, count in seen.values():
        b, c, t, h, w = x.shape
        flat, kernel = x.view(b, c, t, h * w), weight.view(*weight.shape[:2], 3, 1)
        runs = (partial(F.conv3d, x, weight, bias, padding=(1, 0, 0)),
                partial(F.conv2d, flat, kernel, bias, padding=(1, 0)))
        reference = runs[0]()
        difference = max(difference, float((runs[1]().view(reference.shape) - reference).abs().max()))
        for index, run in enumerate(runs):
            seconds, _, _ = timed(device, run, repeats=5, warmup=2)
            totals[index] += seconds * count
    return totals[0], totals[1], sum(entry[3] for entry in seen.values()), difference


def concatenated_neighbour_attention(query, key, value, num_steps: int):
    """The unmasked kernel as it was before its keys became views (each image's [previous, own, next] keys and
    values written out by ``torch.cat``), kept here only to measure what the views save."""
    b, h, length, d = key.shape
    groups, n = b // num_steps, num_steps
    q = query.view(groups, n, h, query.shape[2], d)
    k, v = key.view(groups, n, h, length, d), value.view(groups, n, h, length, value.shape[-1])
    out_shape = (*query.shape[:3], value.shape[-1])
    ends_k = torch.cat([torch.cat([k[:, 0], k[:, 1]], dim=2), torch.cat([k[:, -2], k[:, -1]], dim=2)])
    ends_v = torch.cat([torch.cat([v[:, 0], v[:, 1]], dim=2), torch.cat([v[:, -2], v[:, -1]], dim=2)])
    ends = torch.nn.functional.scaled_dot_product_attention(torch.cat([q[:, 0], q[:, -1]]), ends_k, ends_v)
    first, last = ends[:groups].unsqueeze(1), ends[groups:].unsqueeze(1)
    if n == 2:
        return torch.cat([first, last], dim=1).view(out_shape)
    inner_k = torch.cat([k[:, :-2], k[:, 1:-1], k[:, 2:]], dim=3).flatten(0, 1)
    inner_v = torch.cat([v[:, :-2], v[:, 1:-1], v[:, 2:]], dim=3).flatten(0, 1)
    inner = torch.nn.functional.scaled_dot_product_attention(q[:, 1:-1].flatten(0, 1), inner_k, inner_v)
    return torch.cat([first, inner.view(groups, n - 2, *inner.shape[1:]), last], dim=1).view(out_shape)


def feature_biased_neighbour_attention(query, key, value, num_steps: int, weight: float):
    """Neighbour attention at a weight other than 1 without a mask (the issue's second option, measured here
    against the masked kernel that runs such weights): log(w) rides on one extra feature, 1 in every query and
    log(w) / scale in every neighbour key (0 in own keys), so q·k·scale gains exactly log(w) on neighbour slices.
    The head dimension is padded to a multiple of 8 for the flash kernel; missing neighbours are left out, as in
    the unmasked kernel. The keys are written out per image (their extra feature depends on whose neighbour they
    are), which is the copy the windowed keys avoid at w = 1."""
    b, h, length, d = key.shape
    groups, n = b // num_steps, num_steps
    scale = 1 / math.sqrt(d)
    width = -(-max(d + 1, value.shape[-1]) // 8) * 8  # values may be wider than keys, as SDPA allows
    neighbour = math.log(weight) / scale

    def widen(x: torch.Tensor, feature: float) -> torch.Tensor:
        column = x.new_full((*x.shape[:-1], 1), feature)
        return torch.cat([x, column, x.new_zeros(*x.shape[:-1], width - x.shape[-1] - 1)], dim=-1)

    def pad(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(x, (0, width - x.shape[-1]))

    q = widen(query, 1.0).view(groups, n, h, query.shape[2], width)
    k, v = key.view(groups, n, h, length, d), pad(value).view(groups, n, h, length, width)
    own, other = partial(widen, feature=0.0), partial(widen, feature=neighbour)
    ends = torch.nn.functional.scaled_dot_product_attention(
        torch.cat([q[:, 0], q[:, -1]]),
        torch.cat([torch.cat([own(k[:, 0]), other(k[:, 1])], dim=2),
                   torch.cat([other(k[:, -2]), own(k[:, -1])], dim=2)]),
        torch.cat([torch.cat([v[:, 0], v[:, 1]], dim=2), torch.cat([v[:, -2], v[:, -1]], dim=2)]), scale=scale)
    first, last = ends[:groups].unsqueeze(1), ends[groups:].unsqueeze(1)
    if n == 2:
        out = torch.cat([first, last], dim=1)
    else:
        inner_k = torch.cat([other(k[:, :-2]), own(k[:, 1:-1]), other(k[:, 2:])], dim=3).flatten(0, 1)
        inner_v = torch.cat([v[:, :-2], v[:, 1:-1], v[:, 2:]], dim=3).flatten(0, 1)
        inner = torch.nn.functional.scaled_dot_product_attention(q[:, 1:-1].flatten(0, 1), inner_k, inner_v,
                                                                 scale=scale)
        out = torch.cat([first, inner.view(groups, n - 2, *inner.shape[1:]), last], dim=1)
    return out[..., :value.shape[-1]].reshape(*query.shape[:3], value.shape[-1])


def section_attention(args, device, table: Table, pipe: IllustrationPipeline) -> None:
    size = pipe.preset.size if not args.tiny else 128
    side = size // pipe.vae_scale_factor
    unet = pipe.unet
    masked_kernel = attention.masked_neighbour_attention
    masked = lambda q, k, v, n: masked_kernel(q, k, v, n, 1.0)  # noqa: E731
    unmasked = attention._unmasked_neighbour_attention
    weighted = masked_kernel  # how weights other than 1 run today
    for n in ((2, 4) if args.tiny else (4, 7, 8, 16)):
        g = torch.Generator().manual_seed(n)
        rand = lambda *shape, g=g: torch.randn(*shape, generator=g).to(device, unet.dtype)  # noqa: E731
        inputs = dict(sample=rand(2 * n, 4, side, side), timestep=torch.tensor(500, device=device),
                      encoder_hidden_states=rand(2 * n, 77, unet.config.cross_attention_dim),
                      added_cond_kwargs={"text_embeds": rand(2 * n, pipe.text_encoder_2.config.projection_dim),
                                         "time_ids": torch.tensor([[size, size, 0, 0, size, size]],
                                                                  device=device, dtype=unet.dtype).repeat(2 * n, 1)})

        def forward(weight: float, kernel=unmasked, layout=None, n=n, inputs=inputs, weighted=weighted) -> None:
            attention._unmasked_neighbour_attention = kernel
            attention.masked_neighbour_attention = weighted  # what neighbour_attention runs for w other than 1
            try:
                with torch.inference_mode(), neighbour_attention_enabled(unet, n, weight, layout=layout):
                    unet(**inputs, return_dict=False)
            finally:
                attention._unmasked_neighbour_attention = unmasked
                attention.masked_neighbour_attention = masked_kernel

        anchored = attention.ChainLayout((1.0,) * (n - 1), anchor=0, anchor_weight=1.0)  # issue 11: + global anchor
        modes = {"independent": lambda: forward(0.0), "neighbour (masked, before)": lambda: forward(1.0, masked),
                 "neighbour (unmasked, concatenated keys)": lambda: forward(1.0, concatenated_neighbour_attention),
                 "neighbour (unmasked)": lambda: forward(1.0),
                 "anchored": lambda anchored=anchored: forward(1.0, layout=anchored),
                 "w = 0.5, masked": lambda: forward(0.5),
                 "w = 0.5, feature": lambda: forward(0.5, weighted=feature_biased_neighbour_attention)}
        for run in modes.values():
            run()
        samples = {name: [] for name in modes}
        for _ in range(args.repeats):
            for name, run in modes.items():
                sync(device)
                start = time.perf_counter()
                run()
                sync(device)
                samples[name].append(time.perf_counter() - start)
        t = {name: statistics.median(v) for name, v in samples.items()}
        table.add("I2G attention", f"UNet {size}², CFG batch 2n, n = {n}: independent / masked / concatenated / "
                  "windowed keys", f"{t['independent'] * 1e3:.1f} / {t['neighbour (masked, before)'] * 1e3:.1f} / "
                  f"{t['neighbour (unmasked, concatenated keys)'] * 1e3:.1f} / {t['neighbour (unmasked)'] * 1e3:.1f}",
                  "ms")
        table.add("I2G attention", f"neighbour / independent at n = {n}",
                  t["neighbour (unmasked)"] / t["independent"], "x", "≤ 1.25", "before: 1.39–1.47x; FLOPs 1.22x")
        table.add("I2G attention", f"keys as windows / keys concatenated at n = {n}",
                  t["neighbour (unmasked)"] / t["neighbour (unmasked, concatenated keys)"], "x", "< 1")
        table.add("I2G attention", f"w = 0.5, n = {n}: masked (as it runs) / log(w) as a key feature, vs independent",
                  f"{t['w = 0.5, masked'] / t['independent']:.2f} / {t['w = 0.5, feature'] / t['independent']:.2f}",
                  "x", "the faster one for weights other than 1")
        table.add("I2G attention", f"chain + global anchor / chain alone at n = {n}",
                  t["anchored"] / t["neighbour (unmasked)"], "x", "≤ 1.35")


def section_recipe(args, device, table: Table, pipe: IllustrationPipeline) -> None:
    goal = "Make chocolate chip cookies"
    for graphs in (False, True):
        pipe.cuda_graphs = graphs
        s, gib, out = timed(device, lambda: pipe(goal, RECIPE, seed=0))
        label = "CUDA graphs" if graphs else "eager"
        table.add("I2G recipe", f"7 steps, {pipe.preset.num_inference_steps} steps, {label}, decode one at a time",
                  s, "s", "< 3 s", "before: 1.55–2.5 s (H200)")
        table.add("I2G recipe", f"peak memory, {label}", gib, "GiB", "fits 22 GiB", "before: 34.8 GiB")
    captures = pipe._step_graphs.captures if pipe._step_graphs is not None else 0
    table.add("I2G recipe", "CUDA graphs captured", captures, "", "1 on a GPU")
    pipe.cuda_graphs = False
    s, gib, whole = timed(device, lambda: pipe(goal, RECIPE, seed=0, decode_chunk_size=None))
    table.add("I2G recipe", "7 steps, whole-batch decode (before)", s, "s")
    table.add("I2G recipe", "peak memory, whole-batch decode (before)", gib, "GiB", "", "before: 34.8 GiB")
    table.add("I2G recipe", "one-at-a-time vs whole-batch decode, max pixel difference",
              pixels_diff(out.images, whole.images), "levels of 255", "≤ 1")
    table.add("I2G recipe", "VAE dtype after a call", str(pipe.vae.dtype).replace("torch.", ""), "",
              str(args.dtype).replace("torch.", ""))


def reward_networks(args, device: torch.device) -> SimpleNamespace:
    """The reward networks' real architectures with random weights (tiny twins with ``--tiny``): I2G's CLIP
    alignment reward, ShowMe's depth and HED edge networks."""
    from transformers import CLIPConfig, CLIPModel, DepthAnythingConfig, DepthAnythingForDepthEstimation

    from showme_i2g.i2g.reward import CLIPAlignmentReward
    from showme_i2g.showme.rewards.depth import DepthEstimator
    from showme_i2g.showme.rewards.hed import HED
    from showme_i2g.text.tokenizers import load_clip_tokenizer

    torch.manual_seed(0)
    if args.tiny:
        clip = CLIPAlignmentReward.tiny()
        depth_config = DepthAnythingConfig(
            backbone_config=dict(model_type="dinov2", hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                                 intermediate_size=64, image_size=28, patch_size=14, out_indices=[1, 2, 3, 4],
                                 reshape_hidden_states=False),
            neck_hidden_sizes=[8, 16, 32, 32], reassemble_hidden_size=32, fusion_hidden_size=8, head_hidden_size=8)
        depth_size = (28, 28)
    else:
        with torch.device(device):
            clip = CLIPAlignmentReward(CLIPModel(CLIPConfig(**CLIP_VIT_L14)), load_clip_tokenizer())
        depth_config, depth_size = DepthAnythingConfig(**DEPTH_ANYTHING_V2_SMALL), (518, 518)
    with torch.device(device):
        depth = DepthEstimator(DepthAnythingForDepthEstimation(depth_config), size=depth_size)
        edge = HED()
    return SimpleNamespace(clip=clip.to(device), depth=depth.to(device), edge=edge.eval().requires_grad_(False))


def search_largest_batch(
    trial: Callable[[int], tuple[bool, float, float]], peak_at_1: float, limit_gib: float, budget_s: float,
    cap: int = 1024,
) -> tuple[int, int | None, int, bool]:
    """The largest batch whose step fits in ``limit_gib``: (largest that fit, smallest that ran out of memory or
    None, the prediction, whether the time budget stopped the search).

    ``trial(batch)`` runs one step and says (fitted, peak GiB, seconds). Memory is affine in the batch, so the peaks
    at batches 1 and 2 predict the answer (at most ``cap``); trials then bracket it, 10 % up while steps fit and
    halving the gap once one has run out of memory. A step's time grows with the batch too, so no trial is larger
    than what the rest of ``budget_s`` affords: a short budget still verifies the largest batch it can.
    """
    started = time.perf_counter()
    fits, peak_at_2, seconds_at_2 = trial(2)
    if not fits:
        return 1, 2, 1, False
    slope = peak_at_2 - peak_at_1
    predicted = cap if slope <= 0 else max(2, min(cap, int(2 + (limit_gib - peak_at_2) / slope)))
    fit, failed, candidate, short_of_time = 2, None, max(3, predicted), False  # always try above 2
    while candidate > fit and (failed is None or candidate < failed):
        remaining = budget_s - (time.perf_counter() - started)
        affordable = int(2 * remaining / max(seconds_at_2, 1e-9))
        if affordable < candidate:
            short_of_time, candidate = True, affordable
            if candidate <= fit:
                break
        fits, _, _ = trial(candidate)
        fit, failed = (candidate, failed) if fits else (fit, candidate)
        if failed is None:
            candidate = min(cap, int(fit * 1.1) + 1)
        elif failed - fit <= max(1, fit // 20):
            break
        else:
            candidate = (fit + failed) // 2
    return fit, failed, predicted, short_of_time and failed is None


def largest_batch(device, run_at: Callable[[int], None], peak_at_1: float, limit_gib: float, budget_s: float) -> str:
    """:func:`search_largest_batch` on the GPU, its memory capped at ``limit_gib`` with
    ``torch.cuda.set_per_process_memory_fraction`` (which counts reserved memory, so callers free the CUDA graphs'
    pools first); the answer as a table cell."""
    total = torch.cuda.get_device_properties(device).total_memory / GIB

    def trial(batch: int) -> tuple[bool, float, float]:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        try:
            run_at(batch)
            sync(device)
            return True, torch.cuda.max_memory_allocated() / GIB, time.perf_counter() - start
        except RuntimeError as exc:
            if not ran_out_of_memory(exc):
                raise
            return False, float("nan"), time.perf_counter() - start

    try:
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit_gib / total), device)
        fit, failed, predicted, short_of_time = search_largest_batch(trial, peak_at_1, limit_gib, budget_s)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        gc.collect()
        torch.cuda.empty_cache()
    if failed is not None:
        text = f"{fit} ({failed} ran out of memory; predicted {predicted} from batches 1 and 2)"
    elif short_of_time:
        text = f"≥ {fit} (larger steps did not fit the time budget; predicted {predicted} from batches 1 and 2)"
    else:
        text = f"≥ {fit} (the search's cap; predicted {predicted} from batches 1 and 2)"
    return text + (f"; this card has only {total:.0f} GiB" if total < limit_gib else "")


def section_training(args, device, table: Table, sdxl: IllustrationPipeline | None, showme: ShowMePipeline | None):
    """One optimizer step of each entry point's loss at the papers' settings with random weights, as the training
    loop runs it (frozen weights in half precision, LoRA weights in float32, the loss under autocast), with only
    that entry point's models on the GPU; then the largest batch that fits ``--batch-limit`` GiB."""
    autocast = device.type == "cuda" and args.dtype != torch.float32
    rewards = reward_networks(args, device)

    def measure(name: str, parameters, loss_at: Callable[[int], dict]) -> None:
        """Time one step at batch 1, then search the largest batch (on a GPU, unless ``--batch-limit 0``)."""
        optimizer = torch.optim.AdamW(parameters, lr=1e-5)

        def run_at(batch: int) -> None:
            optimizer.zero_grad(set_to_none=True)
            try:
                with torch.autocast(device.type, dtype=args.dtype, enabled=autocast):
                    loss = loss_at(batch)["loss"]
                loss.backward()
                optimizer.step()
            finally:
                optimizer.zero_grad(set_to_none=True)

        try:
            s, gib, _ = timed(device, lambda: run_at(1))
            table.add("training", f"{name}: one optimizer step", s, "s")
            table.add("training", f"{name}: peak memory", gib, "GiB", "fits 40 GB")
            if device.type == "cuda" and args.batch_limit > 0:
                table.add("training", f"{name}: largest batch under {args.batch_limit:g} GiB",
                          largest_batch(device, run_at, gib, args.batch_limit, args.batch_search_seconds), "",
                          "report")
        except torch.OutOfMemoryError as exc:
            table.add("training", f"{name}", f"out of memory: {str(exc)[:80]}")
        except Exception as exc:  # noqa: BLE001 - reported in the table; the next entry point is measured
            traceback.print_exc()
            table.add("training", f"{name}: failed", f"{type(exc).__name__}: {str(exc)[:120]}")
        finally:
            optimizer = None  # frees its state before the next entry point's step  # noqa: F841
            gc.collect()
            torch.cuda.empty_cache() if device.type == "cuda" else None

    def only_on_gpu(keep: list[torch.nn.Module], away: list[torch.nn.Module]) -> None:
        """The other paper's models wait on the CPU, so each peak is this entry point's own."""
        for module in away:
            module.to("cpu")
        for module in keep:
            module.to(device)
        gc.collect()
        torch.cuda.empty_cache() if device.type == "cuda" else None

    sdxl_modules = [sdxl.unet, sdxl.vae, sdxl.text_encoder, sdxl.text_encoder_2] if sdxl is not None else []
    showme_modules = [showme.model, rewards.depth, rewards.edge] if showme is not None else []
    for pipe in (showme, sdxl):  # captured graphs keep memory pools, which the batch search's cap would count
        if pipe is not None and pipe._step_graphs is not None:
            pipe._step_graphs.clear()
    papers = [("ShowMe", train_showme, showme), ("I2G", train_i2g, sdxl)]
    try:
        for paper, train, pipe in papers:
            if pipe is None:
                continue
            try:  # one paper's failure leaves the other's rows to measure
                train(args, device, measure, only_on_gpu, pipe, rewards, showme_modules, sdxl_modules)
            except Exception as exc:  # noqa: BLE001 - reported in the table, the run goes on
                traceback.print_exc()
                table.add("training", f"{paper}: failed", f"{type(exc).__name__}: {str(exc)[:120]}")
    finally:  # whatever failed, the Space section finds both pipelines as they were
        only_on_gpu(sdxl_modules + showme_modules[:1], [rewards.clip] + showme_modules[1:])


def train_showme(args, device, measure, only_on_gpu, showme: ShowMePipeline, rewards, showme_modules, sdxl_modules):
    """Stage 1 without and with the structure reward, stage 2 with the motion reward."""
    from showme_i2g.showme.rewards.motion import MotionReward
    from showme_i2g.showme.rewards.structure import StructureReward
    from showme_i2g.showme.training import ShowMeTrainingModel

    model = showme.model
    only_on_gpu(showme_modules, sdxl_modules + [rewards.clip])
    size, frames = showme.config.height, (4 if args.tiny else 16)
    g = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.rand(*shape, generator=g) * 2 - 1  # noqa: E731

    def edit_pairs(b: int) -> dict:
        return {"first": rand(b, 3, size, size), "last": rand(b, 3, size, size), "instruction": ["cut it"] * b}

    def clips(b: int) -> dict:
        return {"frames": rand(b, 3, frames, size, size), "instruction": ["cut the onion"] * b,
                "flow": torch.rand(b, frames - 1, size // 8, size // 8, generator=g), "fs": torch.full((b,), 3)}

    structure = StructureReward(depth=rewards.depth.to(args.dtype), edge=rewards.edge.to(args.dtype),
                                max_timestep=model.config.timesteps)  # every sample eligible: the costly case
    stages = [(1, {}, edit_pairs, "no structure reward"),
              (1, {"structure": structure}, edit_pairs, "structure reward on every sample"),
              (2, {"motion": MotionReward(min_timestep=0)}, clips, "motion reward")]
    model.train()  # the release's blocks checkpoint their activations when training
    try:
        for stage, reward, batch_at, what in stages:
            trainer = ShowMeTrainingModel(model, stage, **reward)
            params = [p for p in model.parameters() if p.requires_grad]
            for p in params:  # LoRA weights train in float32 next to the frozen half-precision model
                p.data = p.data.float()
            adapter = adapters.EDIT if stage == 1 else adapters.ANIMATE
            shape = f"{size}²" if stage == 1 else f"{frames} frames"
            label = f"ShowMe stage {stage} ({shape}, rank {adapters.adapter_rank(model, adapter)}, {what})"
            try:  # measure() calls the loss at once; a default argument would keep the trainer alive afterwards
                measure(label, params, lambda b: trainer(batch_at(b), g))  # noqa: B023
            finally:
                for p in params:
                    p.data = p.data.to(args.dtype)
                trainer = None  # frees the trainer (and its reward networks' graph) before the next stage
    finally:
        model.requires_grad_(False).eval()
        adapters.set_mode(model, "video")  # a training stage leaves its own mode


def train_i2g(args, device, measure, only_on_gpu, sdxl: IllustrationPipeline, rewards, showme_modules, sdxl_modules):
    """Pairwise LoRA training and reward fine-tuning (DRaFT-K) at their defaults."""
    from dataclasses import MISSING, fields

    from diffusers import DDPMScheduler

    from showme_i2g.i2g import training as i2g

    only_on_gpu(sdxl_modules + [rewards.clip], showme_modules)
    unet, vae, size = sdxl.unet, sdxl.vae, (128 if args.tiny else 1024)
    vae.to(torch.float32)  # I2G training keeps the SDXL VAE in float32, as diffusers' scripts do
    i2g.add_i2g_lora(unet, SimpleNamespace(rank=16, lora_alpha=None, lora_targets=i2g.LORA_TARGETS,
                                           adapter_name="i2g_bench", init_lora=None))
    try:
        for p in unet.parameters():
            if p.requires_grad:
                p.data = p.data.float()
        unet.enable_gradient_checkpointing()
        vae.enable_gradient_checkpointing()
        unet.train()
        parts = i2g.I2GParts(dict(sdxl.components), unet, size)
        params = [p for p in unet.parameters() if p.requires_grad]
        g = torch.Generator().manual_seed(0)
        ctx = SimpleNamespace(model=unet, generator=g, device=device)
        noise_scheduler = DDPMScheduler.from_config(sdxl.scheduler.config)  # as train_pairwise builds it
        goal, steps = "Make cookies", RECIPE[:2]

        def pairs_at(b: int) -> dict:
            return {"goals": [goal] * b, "clauses": [[[steps[0]], [steps[1]]]] * b,
                    "pixels": torch.rand(2 * b, 3, size, size, generator=g) * 2 - 1,
                    "time_ids": torch.tensor([[size, size, 0, 0, size, size]], dtype=torch.float32).repeat(2 * b, 1)}

        with neighbour_attention_enabled(unet, 2, 1.0):
            no_dropout = SimpleNamespace(uncond_prob=0.0)
            measure(f"I2G pairwise (SDXL {size}², one pair, rank 16, checkpointing)", params,
                    lambda b: i2g.pairwise_loss(pairs_at(b), ctx, parts, noise_scheduler, no_dropout))
            # the reward stage at its defaults: K = 1 of 20 steps, CFG 5, windows of 2 steps, the CLIP ViT-L/14 reward
            defaults = {f.name: f.default for f in fields(i2g.RewardConfig) if f.default is not MISSING}
            config = SimpleNamespace(**defaults)
            window = i2g.StepWindow(goal, steps, [[steps[0]], [steps[1]]])
            clip = "tiny CLIP" if args.tiny else "CLIP ViT-L/14"
            measure(f"I2G reward (SDXL {size}², K = {config.truncation_k} of {config.num_inference_steps} steps, "
                    f"CFG {config.guidance_scale:g}, {clip}, checkpointing)", params,
                    lambda b: i2g.reward_loss([window] * b, ctx, parts, rewards.clip, config))
    finally:
        unet.eval()
        unet.disable_gradient_checkpointing()
        vae.disable_gradient_checkpointing()
        unet.delete_adapters("i2g_bench")
        vae.to(args.dtype)
        sdxl.freeze()


def section_space(args, device, table: Table, sdxl: IllustrationPipeline, showme: ShowMePipeline) -> None:
    """Both fp16 models resident, the process capped at 22 GiB: a recipe, an edit, a video, a 7-clip animation."""
    steps, frames = (4, 8) if args.tiny else (50, 16)
    sdxl.cuda_graphs = showme.cuda_graphs = True  # the app's settings: graphs on, adapters as branches
    showme.fuse_adapters = False
    showme._step_graphs.clear()
    if sdxl._step_graphs is not None:
        sdxl._step_graphs.clear()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, SPACE_LIMIT_GIB * GIB / total), torch.cuda.current_device())
        torch.cuda.reset_peak_memory_stats()
    resident = torch.cuda.memory_allocated() / GIB if device.type == "cuda" else float("nan")
    table.add("Space", "both models resident (SDXL + DynamiCrafter-256, fp16)", resident, "GiB")
    image = photo(showme.config.width)
    jobs = {
        "recipe (7 steps)": lambda: sdxl("Make cookies", RECIPE, seed=0),
        "edit": lambda: showme.edit(image, "cut the onion", seed=0, num_inference_steps=steps),
        "video": lambda: showme.animate(image, "cut the onion", seed=0, num_frames=frames, num_inference_steps=steps),
        "animate 7 steps": lambda: showme.animate_many([image] * 7, RECIPE, seeds=list(range(7)), num_frames=frames,
                                                        num_inference_steps=steps),
    }
    try:
        for name, job in jobs.items():
            what = f"{name} under {SPACE_LIMIT_GIB:.0f} GiB"
            try:
                s, gib, _ = timed(device, job, warmup=0)
                table.add("Space", what,
                          f"ok, {s:.2f} s, peak {gib:.1f} GiB allocated, {reserved_peak(device):.1f} GiB reserved",
                          "", f"fits {SPACE_LIMIT_GIB:.0f} GiB")
            except Exception as exc:  # noqa: BLE001 - reported, and the other jobs still run
                if not ran_out_of_memory(exc):
                    traceback.print_exc()
                table.add("Space", what, "out of memory" if ran_out_of_memory(exc) else
                          f"failed: {type(exc).__name__}: {str(exc)[:100]}", "", "fits")
    finally:
        if device.type == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0, torch.cuda.current_device())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the tiny twins (a CPU smoke test of this script)")
    parser.add_argument("--device", default=str(best_device()))
    parser.add_argument("--dtype", default=None, choices=("float16", "bfloat16", "float32"),
                        help="default: float16 on a GPU, float32 on a CPU")
    parser.add_argument("--only", nargs="+", choices=SECTIONS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-limit", type=float, default=78.0, metavar="GIB",
                        help="search each training entry point's largest batch that fits this many GiB of the "
                             "allocator (78: an 80 GB card, about 79.2 GiB, less its CUDA context; 0: skip)")
    parser.add_argument("--batch-search-seconds", type=float, default=15.0,
                        help="time allowed to each entry point's batch search")
    parser.add_argument("--json", type=Path, help="write the table's rows here")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:  # the memory-fraction calls need the device's index
        device = torch.device("cuda", torch.cuda.current_device())
    args.dtype = getattr(torch, args.dtype or ("float16" if device.type == "cuda" else "float32"))
    sections = set(args.only or SECTIONS)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; dtype {args.dtype}; {'tiny twins' if args.tiny else 'real architectures, random weights'}")
    table, started = Table(), time.perf_counter()

    def attempt(label: str, function, *extra) -> None:
        print(f"# {label}", flush=True)
        try:
            function(args, device, table, *extra)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other sections
            traceback.print_exc()
            table.add(label, "failed", f"{type(exc).__name__}: {str(exc)[:120]}")
        print(f"  ({time.perf_counter() - started:.0f} s so far)", flush=True)

    showme = sdxl = None
    if sections & {"showme", "profile", "training", "space"}:
        showme = showme_pipeline(args, device)
        table.add("ShowMe", "weights resident", torch.cuda.memory_allocated() / GIB if device.type == "cuda"
                  else float("nan"), "GiB", "", "5.1 GiB measured before")
    if "showme" in sections:
        attempt("showme", section_showme, showme)
    if "profile" in sections:
        attempt("profile", section_profile, showme)
    if sections & {"attention", "recipe", "training", "space"}:
        sdxl = sdxl_pipeline(args, device)
    if "attention" in sections:
        attempt("attention", section_attention, sdxl)
    if "recipe" in sections:
        attempt("recipe", section_recipe, sdxl)
    if "training" in sections:
        attempt("training", section_training, sdxl, showme)
    if "space" in sections and not args.tiny:
        attempt("space", section_space, sdxl, showme)
    table.add("run", "wall time of this script", time.perf_counter() - started, "s", "< 360 s")
    table.print(name)
    if args.json:
        args.json.write_text(json.dumps({"device": name, "torch": torch.__version__, "rows": table.rows}, indent=1))


if __name__ == "__main__":
    main()
