"""Steps per second and peak memory of ShowMe's two training stages (with and without their rewards).

    python benchmarks/train_showme.py                                   # tiny preset, CPU (synthetic clips)
    python benchmarks/train_showme.py --preset dynamicrafter-256 --weights model.ckpt --frames 16 --steps 10  # GPU

Stage 1 runs the ``edit`` LoRA in image mode (HED edge reward; the depth model is added when ``--depth-model``
names one that is available); stage 2 the ``animate`` LoRA in video mode with the motion reward (OpenCV flow).
Rewards apply to every sample here (thresholds 999 / 0), so the figures are upper bounds of the reward cost.
Peak memory is ``torch.cuda.max_memory_allocated`` on a GPU and the growth of the process's peak resident set on
CPU. The first update (warm-up) is excluded from the rate.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from showme_i2g.devices import best_device  # noqa: E402
from showme_i2g.media import save_video  # noqa: E402
from showme_i2g.showme.training import Stage1Config, Stage2Config, train_stage1, train_stage2  # noqa: E402


def draw_clips(root: Path, size: int, frames: int) -> Path:
    """Four clips of a textured square sliding right, and their instructions."""
    rng = np.random.default_rng(0)
    entries = []
    for i in range(4):
        texture = rng.integers(60, 255, (size // 4, size // 4, 3), dtype=np.uint8)
        clip = np.full((frames, size, size, 3), 30 + 40 * i, dtype=np.uint8)
        for t in range(frames):
            x = int(t * (size - size // 4) / max(frames - 1, 1))
            clip[:, size // 3 : size // 3 + size // 4][t, :, x : x + size // 4] = texture
        save_video(clip, root / f"clip{i}.mp4", fps=8)
        entries.append({"video": f"clip{i}.mp4", "instruction": f"push box {i} to the right"})
    (root / "clips.json").write_text(json.dumps(entries), encoding="utf-8")
    return root / "clips.json"


def peak_memory_mib(device: str, rss_before: float) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024) - rss_before  # ru_maxrss is KiB on Linux


def measure(run, config, device: str) -> dict:
    """Run one configuration in a forked child, so the CPU peak-memory figure is that run's alone."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=lambda: queue.put(_measure(run, config, device)))
    child.start()
    result = queue.get()
    child.join()
    return result


def _measure(run, config, device: str) -> dict:
    times: list[float] = []

    def tick(step, record):
        times.append(time.perf_counter())

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    run(config, on_step_end=tick)
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 1 / (times[0] - started)
    return {"steps_per_s": round(rate, 3), "peak_mib": round(peak_memory_mib(device, rss_before), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--depth-model", default=None)
    parser.add_argument("--mixed-precision", default="no")
    args = parser.parse_args()
    device = str(best_device())  # (no torch work in this process: children fork)
    rank = 4 if args.preset == "tiny" else None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        size = args.resolution or (64 if args.preset == "tiny" else 256)
        data = str(draw_clips(root, size, max(args.frames, 2)))
        common = dict(data=data, preset=args.preset, weights=args.weights, resolution=args.resolution,
                      max_steps=args.steps, batch_size=args.batch_size, checkpoint_every=0, log_every=1000,
                      mixed_precision=args.mixed_precision)
        results = {}
        for reward in (False, True):
            stage1 = Stage1Config(output_dir=str(root / f"s1{reward}"), structure_reward=reward,
                                  depth_model=args.depth_model, reward_max_timestep=999, **common,
                                  **({"rank": rank} if rank else {}))
            results[f"stage1{' + structure reward' if reward else ''}"] = measure(train_stage1, stage1, device)
        edit = str(root / "s1True" / "edit")  # training writes each adapter as a peft folder
        for reward in (False, True):
            stage2 = Stage2Config(output_dir=str(root / f"s2{reward}"), motion_reward=reward, motion_min_timestep=0,
                                  num_frames=args.frames, edit_adapter=edit, flow="opencv", **common,
                                  **({"rank": rank} if rank else {}))
            results[f"stage2{' + motion reward' if reward else ''}"] = measure(train_stage2, stage2, device)
    print(f"device: {device}, preset: {args.preset}, batch {args.batch_size}, {args.frames} frames (stage 2)")
    for name, figures in results.items():
        print(f"  {name:<30} {figures['steps_per_s']:>8.3f} steps/s   peak {figures['peak_mib']:>9.1f} MiB")
    base1, base2 = results["stage1"]["steps_per_s"], results["stage2"]["steps_per_s"]
    print(f"  structure reward slows stage 1 by {base1 / results['stage1 + structure reward']['steps_per_s']:.2f}x; "
          f"motion reward slows stage 2 by {base2 / results['stage2 + motion reward']['steps_per_s']:.2f}x")


if __name__ == "__main__":
    main()
