"""ShowMe image mode (edit) vs video mode (animate): wall time and peak memory, measured in one run.

    python benchmarks/showme_modes.py                                   # tiny preset, CPU
    python benchmarks/showme_modes.py --config dynamicrafter-256 --dtype float16   # real size on a GPU
    python benchmarks/showme_modes.py --config dynamicrafter-256 --flops           # FLOPs, no weights or GPU
    python benchmarks/showme_modes.py --config dynamicrafter-256 --fusing --frames 4   # fused vs unfused adapters

Timing and memory do not depend on the weights' values, so the real-size run builds DynamiCrafter-256 with random
weights: no download is needed. DynamiCrafter's published figure for 256x256x16 with DDIM 50 on an A100 is 10 s and
11.9 GB; the targets on an H100 are <= 10 s and <= 12 GB for a video and <= 1.5 s for an edit.
Peak memory is ``torch.cuda.max_memory_allocated`` on a GPU and the growth of the peak resident set on a CPU.

``--flops`` instead counts the floating-point operations of one UNet call under CFG in each mode, with and without
the ShowMe adapters (the model is built on PyTorch's meta device, so no weights and no GPU are needed), and the
time that arithmetic takes at a GPU's dense peak: the floor that measured times are compared with.

``--fusing`` times one UNet call under CFG in each mode with the adapters folded into the weights
(``adapters.fused``) and as branches, interleaved, each after an untimed call in the same state, and prints the
ratio of the medians; the adapters get random non-zero weights.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from showme_i2g.devices import best_device  # noqa: E402
from showme_i2g.showme import adapters  # noqa: E402
from showme_i2g.showme.dynamicrafter.config import CONFIGS  # noqa: E402
from showme_i2g.showme.pipeline import ShowMePipeline, build_random_model  # noqa: E402
from showme_i2g.validation import DEFAULT_FRAMES  # noqa: E402

PUBLISHED_A100 = {"seconds": 10.0, "gib": 11.9}
H200_DENSE_FP16_TFLOPS = 989.0  # NVIDIA's H200 datasheet, tensor cores without sparsity
SHOWME_RANKS = {"tiny": (4, 4)}  # (edit, animate); the papers' 128 and 64 otherwise


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(pipe: ShowMePipeline, run, repeats: int) -> tuple[float, float]:
    """Median seconds and peak GiB over ``repeats`` calls of ``run`` (after one warm-up)."""
    run()
    times, peak = [], 0.0
    for _ in range(repeats):
        if pipe.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")
            before = _rss_kib("VmRSS") * 1024
        start = time.perf_counter()
        run()
        if pipe.device.type == "cuda":
            torch.cuda.synchronize()
            grown = torch.cuda.max_memory_allocated()  # total, weights included, as the published figure
        else:
            grown = _rss_kib("VmHWM") * 1024 - before
        times.append(time.perf_counter() - start)
        peak = max(peak, grown / 2**30)
    return statistics.median(times), peak


def ranks(config_name: str) -> tuple[int, int]:
    return SHOWME_RANKS.get(config_name, (128, 64))


def unet_flops(config_name: str, frames: int, adapters_on: bool) -> float:
    """FLOPs of one UNet call with CFG (batch 2) of ``frames`` frames (1: image mode), counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    from showme_i2g.showme.dynamicrafter.model import DynamiCrafter

    config = CONFIGS[config_name]
    with torch.device("meta"):
        model = DynamiCrafter(config)
        if adapters_on:
            edit_rank, animate_rank = ranks(config_name)
            adapters.add_showme_adapters(model, edit_rank=edit_rank, animate_rank=animate_rank)
    if adapters_on:
        adapters.set_mode(model, "image" if frames == 1 else "video")
    else:
        model.unet.set_temporal_bypass(frames == 1)
    h, w = config.height // config.latent_downsampling, config.width // config.latent_downsampling
    latents = torch.zeros(2, config.unet["out_channels"], frames, h, w, device="meta")
    image_tokens = config.image_proj["num_queries"] * config.image_proj["video_length"]
    context = torch.zeros(2, 77 + image_tokens, config.unet["context_dim"], device="meta")
    steps = torch.full((2,), 500, device="meta", dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.predict(latents, steps, latents, context, torch.full((2,), 3, device="meta", dtype=torch.long))
    return counter.get_total_flops()


def print_flops(config_name: str, frames: int, steps: int) -> None:
    print(f"{config_name}: one UNet call with CFG (batch 2), FLOPs counted on the meta device")
    floor = f"DDIM {steps} at H200 peak"
    print(f"{'mode':<16} {'base TFLOP':>10} {'+ adapter':>10} {'adapter x':>9} {floor:>20}")
    for name, count in (("edit (1 frame)", 1), (f"video ({frames} fr.)", frames)):
        base, adapted = unet_flops(config_name, count, False), unet_flops(config_name, count, True)
        floor = steps * adapted / (H200_DENSE_FP16_TFLOPS * 1e12)
        print(f"{name:<16} {base / 1e12:10.3f} {adapted / 1e12:10.3f} {adapted / base:9.3f} {floor:18.2f} s")


def fusing_ratios(model, device: str, frames: int, repeats: int) -> None:
    """Median seconds of one UNet call under CFG, adapters as branches and folded (interleaved), per mode."""
    config = model.config
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:  # trained-like adapters: zero B would fold nothing
                parameter.normal_(std=0.01)
    h, w = config.height // config.latent_downsampling, config.width // config.latent_downsampling
    image_tokens = config.image_proj["num_queries"] * config.image_proj["video_length"]
    dtype = next(model.parameters()).dtype
    context = torch.randn(2, 77 + image_tokens, config.unet["context_dim"], device=device, dtype=dtype)
    steps = torch.full((2,), 500, device=device)
    fs = torch.full((2,), config.default_fs, device=device)
    print(f"{'mode':<16} {'branches s':>10} {'folded s':>9} {'folded / branches':>18}")
    for mode, count in (("image", 1), ("video", frames)):
        latents = torch.randn(2, config.unet["out_channels"], count, h, w, device=device, dtype=dtype)
        times: dict[bool, list[float]] = {False: [], True: []}
        with torch.inference_mode(), adapters.mode(model, mode):
            for _ in range(repeats):
                for fold in (False, True):
                    with adapters.fused(model) if fold else contextlib.nullcontext():
                        model.predict(latents, steps, latents, context, fs)  # a sampling call's later steps are
                        _sync(device)  # what counts, not the first one after folding touches the weights
                        start = time.perf_counter()
                        model.predict(latents, steps, latents, context, fs)
                        _sync(device)
                        times[fold].append(time.perf_counter() - start)
        unfused, fused = (statistics.median(times[fold]) for fold in (False, True))
        label = "edit (1 frame)" if count == 1 else f"video ({count} fr.)"
        print(f"{label:<16} {unfused:10.3f} {fused:9.3f} {fused / unfused:18.2f}")


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny", choices=sorted(CONFIGS))
    parser.add_argument("--device", default=str(best_device()))
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: 50, 4 for tiny)")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--flops", action="store_true", help="count FLOPs per UNet call instead of timing")
    parser.add_argument("--fusing", action="store_true",
                        help="time one UNet call with the adapters folded into the weights and as branches")
    args = parser.parse_args()

    config = CONFIGS[args.config]
    steps = args.steps or (4 if args.config == "tiny" else 50)
    if args.flops:
        print_flops(args.config, args.frames, steps)
        return
    with torch.device(args.device):
        model = build_random_model(config)  # random weights; values do not affect time or memory
    edit_rank, animate_rank = ranks(args.config)
    adapters.add_showme_adapters(model, edit_rank=edit_rank, animate_rank=animate_rank)
    model.to(getattr(torch, args.dtype))
    if args.fusing:
        fusing_ratios(model.to(args.device), args.device, args.frames, args.repeats)
        return
    pipe = ShowMePipeline(model, device=args.device)
    pipe.set_progress_bar_config(disable=True)
    photo = Image.new("RGB", (config.width, config.height), (180, 120, 60))
    kwargs = {"seed": 0, "num_inference_steps": steps}

    edit = measure(pipe, lambda: pipe.edit(photo, "cut the onion", **kwargs), args.repeats)
    video = measure(pipe, lambda: pipe.animate(photo, "cut the onion", num_frames=args.frames, **kwargs),
                    args.repeats)
    device = torch.cuda.get_device_name() if pipe.device.type == "cuda" else "CPU"
    print(f"config={args.config} {config.height}x{config.width} device={device} dtype={args.dtype} "
          f"DDIM {steps} steps, CFG on, median of {args.repeats}")
    print(f"{'mode':<16} {'seconds':>8} {'peak GiB':>9}")
    print(f"{'edit (1 frame)':<16} {edit[0]:8.2f} {edit[1]:9.2f}")
    print(f"{f'video ({args.frames} fr.)':<16} {video[0]:8.2f} {video[1]:9.2f}")
    print(f"video / edit: time {video[0] / edit[0]:.2f}x, memory {video[1] / max(edit[1], 1e-9):.2f}x")
    if args.config == "dynamicrafter-256" and pipe.device.type == "cuda":
        print(f"video vs published A100 ({PUBLISHED_A100['seconds']} s, {PUBLISHED_A100['gib']} GB): "
              f"{video[0] / PUBLISHED_A100['seconds']:.2f}x time, {video[1] / PUBLISHED_A100['gib']:.2f}x memory")


if __name__ == "__main__":
    main()
