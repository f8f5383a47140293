"""Neighbour vs independent attention: UNet time and peak memory for n = 2, 4, 8, 16 steps, as ratios.

One denoising step of the UNet with a classifier-free-guidance batch (2n images) is timed for each n with
neighbour attention (weight 1) and with independent steps (weight 0, i.e. diffusers' plain attention), the two
interleaved in the same run so machine noise hits both alike. Peak memory is the growth over the memory held
before the forward pass: ``torch.cuda.max_memory_allocated`` on a GPU; on a CPU, the process's peak resident set
(VmHWM, reset through /proc/self/clear_refs) measured in a fresh subprocess per configuration.

    python benchmarks/neighbour_attention.py                    # tiny preset, CPU
    python benchmarks/neighbour_attention.py --preset sdxl      # real SDXL at 1024 px on a GPU

``--anchored`` compares the chain with a global anchor (every step also attends to step 1, the fourth key slice
of issue 11) against the chain alone, at weight 1 both:

    python benchmarks/neighbour_attention.py --anchored --steps 4 8 16

``--flops`` instead counts the floating-point operations of the *real* SDXL UNet (its public config, built on
PyTorch's meta device, so no weights and no GPU are needed) with both kinds of attention: the hardware-free
expectation for the GPU time ratio.

    python benchmarks/neighbour_attention.py --flops

Targets: neighbour time <= 1.3x independent at the same n (issue 2); neighbour peak memory at n = 16 <= 2.2x
n = 8; anchored time <= 1.35x neighbour-only on a GPU (issue 11).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from showme_i2g.devices import best_device  # noqa: E402
from showme_i2g.i2g.attention import ChainLayout, neighbour_attention_enabled  # noqa: E402
from showme_i2g.i2g.pipeline import IllustrationPipeline  # noqa: E402

MODES = {"independent": 0.0, "neighbour": 1.0}  # neighbour weight of each mode
ANCHORED_MODES = ("neighbour", "anchored")


def attention_settings(mode: str, n: int) -> dict:
    """``neighbour_attention_enabled`` keywords of a mode: a neighbour weight, or the chain with a global anchor."""
    if mode == "anchored":
        return {"neighbour_weight": 1.0, "layout": ChainLayout((1.0,) * (n - 1), anchor=0, anchor_weight=1.0)}
    return {"neighbour_weight": MODES[mode]}

# unet/config.json of stabilityai/stable-diffusion-xl-base-1.0 (the architecture-defining entries)
SDXL_UNET_CONFIG = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "block_out_channels": (320, 640, 1280),
    "layers_per_block": 2,
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}


def load(preset: str, device: str) -> IllustrationPipeline:
    pipe = IllustrationPipeline.from_preset(preset, device=device)
    pipe.unet.requires_grad_(False)
    return pipe


def unet_inputs(pipe: IllustrationPipeline, n: int, size: int) -> dict:
    """Random UNet inputs for n steps with CFG (2n images), in the UNet's dtype and device."""
    unet, device, dtype = pipe.unet, pipe.device, pipe.unet.dtype
    side = size // pipe.vae_scale_factor
    gen = torch.Generator().manual_seed(0)
    proj = pipe.text_encoder_2.config.projection_dim

    def rand(*shape):
        return torch.randn(*shape, generator=gen).to(device, dtype)

    return {
        "sample": rand(2 * n, unet.config.in_channels, side, side),
        "timestep": torch.tensor(500, device=device),
        "encoder_hidden_states": rand(2 * n, 77, unet.config.cross_attention_dim),
        "added_cond_kwargs": {
            "text_embeds": rand(2 * n, proj),
            "time_ids": torch.tensor([[size, size, 0, 0, size, size]], device=device, dtype=dtype).repeat(2 * n, 1),
        },
    }


@torch.no_grad()
def forward(pipe: IllustrationPipeline, inputs: dict, n: int, mode: str) -> None:
    with neighbour_attention_enabled(pipe.unet, num_steps=n, **attention_settings(mode, n)):
        pipe.unet(**inputs, return_dict=False)
    if pipe.device.type == "cuda":
        torch.cuda.synchronize()


def time_modes(pipe: IllustrationPipeline, n: int, size: int, repeats: int, modes: tuple[str, ...]
               ) -> dict[str, float]:
    """Median seconds per UNet forward for each mode, the modes interleaved."""
    inputs = unet_inputs(pipe, n, size)
    for mode in modes:  # warm-up
        forward(pipe, inputs, n, mode)
    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(repeats):
        for mode in modes:
            start = time.perf_counter()
            forward(pipe, inputs, n, mode)
            samples[mode].append(time.perf_counter() - start)
    return {mode: statistics.median(values) for mode, values in samples.items()}


def sdxl_flops_per_image(num_steps: int, weight: float, size: int = 1024) -> float:
    """FLOPs of one SDXL UNet forward per image, CFG batch of 2n, counted on the meta device (no weights)."""
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SDXL_UNET_CONFIG)
        batch, side = 2 * num_steps, size // 8
        inputs = {
            "sample": torch.empty(batch, 4, side, side),
            "timestep": torch.tensor(500),
            "encoder_hidden_states": torch.empty(batch, 77, 2048),
            "added_cond_kwargs": {"text_embeds": torch.empty(batch, 1280), "time_ids": torch.empty(batch, 6)},
        }
    counter = FlopCounterMode(display=False)
    with neighbour_attention_enabled(unet, num_steps, weight), counter, torch.no_grad():
        unet(**inputs)
    return counter.get_total_flops() / batch


def print_flop_table(steps: list[int]) -> None:
    print("SDXL UNet at 1024 px, FLOPs per image and forward (meta device, counted by torch's FlopCounterMode)")
    print(f"{'n':>3} | {'indep TFLOP':>11} {'neigh TFLOP':>11} {'flops x':>8}")
    for n in steps:
        indep, neigh = (sdxl_flops_per_image(n, w) / 1e12 for w in MODES.values())
        print(f"{n:>3} | {indep:11.2f} {neigh:11.2f} {neigh / indep:8.3f}")


def _proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_memory_bytes(pipe: IllustrationPipeline, n: int, size: int, mode: str) -> int:
    """Memory a forward pass adds on top of what is held before it."""
    inputs = unet_inputs(pipe, n, size)
    gc.collect()
    if pipe.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        forward(pipe, inputs, n, mode)
        return torch.cuda.max_memory_allocated() - before
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set (VmHWM) to the current one
    before = _proc_status_kib("VmRSS")
    forward(pipe, inputs, n, mode)
    return (_proc_status_kib("VmHWM") - before) * 1024


def cpu_peak_in_subprocess(preset: str, n: int, size: int, mode: str) -> int:
    """A fresh process per configuration, so the allocator's reuse of earlier runs' memory cannot hide a peak."""
    out = subprocess.run(
        [sys.executable, __file__, "--preset", preset, "--device", "cpu", "--size", str(size),
         "--_memory-worker", str(n), mode],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default=str(best_device()))
    parser.add_argument("--size", type=int, help="image side (default: the preset's)")
    parser.add_argument("--steps", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--flops", action="store_true", help="count real-SDXL FLOPs instead of timing")
    parser.add_argument("--anchored", action="store_true", help="chain + global anchor against the chain alone")
    parser.add_argument("--_memory-worker", nargs=2, metavar=("N", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flops:
        print_flop_table(args.steps)
        return

    pipe = load(args.preset, args.device)
    size = args.size or pipe.preset.size
    if args._memory_worker:
        n, mode = int(args._memory_worker[0]), args._memory_worker[1]
        print(json.dumps({"peak": peak_memory_bytes(pipe, n, size, mode)}))
        return

    modes = ANCHORED_MODES if args.anchored else tuple(MODES)
    base, other = modes
    rows = []
    for n in args.steps:
        times = time_modes(pipe, n, size, args.repeats, modes)
        peaks = {
            mode: peak_memory_bytes(pipe, n, size, mode) if pipe.device.type == "cuda"
            else cpu_peak_in_subprocess(args.preset, n, size, mode)
            for mode in modes
        }
        rows.append({"n": n, "time": times, "peak": peaks})

    device_name = torch.cuda.get_device_name() if pipe.device.type == "cuda" else "CPU"
    print(f"preset={args.preset} size={size} device={device_name} dtype={pipe.unet.dtype} "
          f"batch=2n (CFG), one UNet forward, median of {args.repeats}")
    a, b = base[:5], other[:5]
    print(f"{'n':>3} | {a + ' ms':>9} {b + ' ms':>9} {'time x':>7} | {a + ' MiB':>9} {b + ' MiB':>9} {'mem x':>6}")
    for row in rows:
        t, m = row["time"], row["peak"]
        print(f"{row['n']:>3} | {t[base] * 1e3:9.1f} {t[other] * 1e3:9.1f} "
              f"{t[other] / t[base]:7.2f} | {m[base] / 2**20:9.1f} "
              f"{m[other] / 2**20:9.1f} {m[other] / max(m[base], 1):6.2f}")
    by_n = {row["n"]: row for row in rows}
    if 8 in by_n and 16 in by_n:
        ratio = by_n[16]["peak"][other] / max(by_n[8]["peak"][other], 1)
        print(f"{other} peak memory n=16 / n=8: {ratio:.2f} (target <= 2.2)")
    worst = max(row["time"][other] / row["time"][base] for row in rows)
    target = 1.35 if args.anchored else 1.3
    print(f"worst time ratio {other} / {base}: {worst:.2f} (target <= {target})")
    if args.json:
        args.json.write_text(json.dumps({"preset": args.preset, "size": size, "device": device_name,
                                         "modes": modes, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
