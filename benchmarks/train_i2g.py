"""Steps per second and peak memory of the two I2G training entry points.

    python benchmarks/train_i2g.py                       # tiny preset, CPU (synthetic data drawn here)
    python benchmarks/train_i2g.py --preset sdxl --resolution 1024 --steps 10    # real size on a GPU

Peak memory is ``torch.cuda.max_memory_allocated`` on a GPU and the growth of the process's peak resident set
(``resource.getrusage``) on CPU. The first update (warm-up: allocations, autotuning) is excluded from the rate.
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
import PIL.Image
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from showme_i2g.i2g.training import PairwiseConfig, RewardConfig, train_pairwise, train_reward  # noqa: E402


def draw_data(root: Path, size: int) -> tuple[Path, Path, Path]:
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    recipes = []
    for r in range(4):
        steps = []
        for k in range(3):
            name = f"r{r}_{k}.png"
            PIL.Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(images / name)
            steps.append({"text": f"Step {k}: mix the batter, then pour it into the pan.", "image": name})
        recipes.append({"goal": f"Bake cake {r}", "steps": steps})
    (root / "recipes.json").write_text(json.dumps(recipes))
    (root / "prompts.json").write_text(json.dumps([{"goal": r["goal"], "steps": [s["text"] for s in r["steps"]]}
                                                   for r in recipes]))
    return root / "recipes.json", images, root / "prompts.json"


def measure(name: str, run) -> dict:
    times: list[float] = []
    last = [time.perf_counter()]

    def tick(step, record):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    last[0] = time.perf_counter()
    run(tick)
    rate = (len(times) - 1) / sum(times[1:]) if len(times) > 1 else float("nan")
    if torch.cuda.is_available():
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB GPU"
    else:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        peak = f"process peak RSS {rss / 2**20:.2f} GiB (+{(rss - rss_before) / 2**20:.2f} GiB in this run)"
    return {"entry point": name, "steps/s": round(rate, 3), "s/step": round(1 / rate, 3), "peak memory": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--inference-steps", type=int, default=4)
    parser.add_argument("--reward-model", default=None, help="default: tiny for the tiny preset, else CLIP ViT-L/14")
    parser.add_argument("--mixed-precision", default="no")
    args = parser.parse_args()
    reward_model = args.reward_model or ("tiny" if args.preset == "tiny" else "openai/clip-vit-large-patch14")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data, images, prompts = draw_data(root, args.resolution)
        common = dict(preset=args.preset, resolution=args.resolution, max_steps=args.steps, batch_size=args.batch_size,
                      clause_backend="punctuation", log_every=args.steps, checkpoint_every=0,
                      mixed_precision=args.mixed_precision, gradient_checkpointing=True)
        rows = [
            measure("i2g_pairwise", lambda tick: train_pairwise(
                PairwiseConfig(data=str(data), images=str(images), output_dir=str(root / "p"), **common),
                on_step_end=tick)),
            measure("i2g_reward", lambda tick: train_reward(
                RewardConfig(prompts=str(prompts), output_dir=str(root / "r"), reward_model=reward_model,
                             num_inference_steps=args.inference_steps, truncation_k=1, **common),
                on_step_end=tick)),
        ]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    print(f"preset={args.preset} resolution={args.resolution} batch={args.batch_size} pairs/windows of 2 images, "
          f"reward sampling {args.inference_steps} steps with K=1, gradient checkpointing on, {device}")
    for row in rows:
        print("  " + ", ".join(f"{k}: {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
