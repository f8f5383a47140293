"""The real-size path on one GPU, measured in one run: ShowMe edit/video latency and memory (eager vs CUDA graphs),
a whole recipe animated in one batch, SDXL neighbour attention on flash kernels, a 7-step recipe and its decode
memory, one optimizer step of the training entry points, and the Space case (both models resident under 22 GiB).

    python benchmarks/gpu_real_size.py                 # real architectures, random weights, on the GPU at hand
    python benchmarks/gpu_real_size.py --tiny          # the same code on the tiny twins (a CPU smoke test)
    python benchmarks/gpu_real_size.py --only showme   # one section: showme, attention, recipe, training, space

Time and memory do not depend on the weights' values, so every model is its real architecture with random
weights, built directly on the GPU: no download is needed. It prints one table (each figure next to its target
and the published anchor) and, with ``--json``, writes the rows there. Sections that fail print their error and
the run goes on.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from showme_i2g.devices import best_device  # noqa: E402
from showme_i2g.i2g import attention  # noqa: E402
from showme_i2g.i2g.attention import neighbour_attention_enabled  # noqa: E402
from showme_i2g.i2g.pipeline import IllustrationPipeline  # noqa: E402
from showme_i2g.presets import get_illustration_preset  # noqa: E402
from showme_i2g.showme import adapters  # noqa: E402
from showme_i2g.showme.dynamicrafter.config import CONFIGS  # noqa: E402
from showme_i2g.showme.pipeline import ShowMePipeline, build_random_model  # noqa: E402

GIB = 2**30
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


def pixels_diff(a: list[Image.Image], b: list[Image.Image]) -> int:
    return int(max(np.abs(np.asarray(x, np.int16) - np.asarray(y, np.int16)).max() for x, y in zip(a, b)))


# ------------------------------------------------------------------------------------------------ models
def showme_pipeline(args, device: torch.device) -> ShowMePipeline:
    config = CONFIGS["tiny" if args.tiny else "dynamicrafter-256"]
    with torch.device(device):
        model = build_random_model(config)
    ranks = (4, 4) if args.tiny else (128, 64)
    adapters.add_showme_adapters(model, edit_rank=ranks[0], animate_rank=ranks[1])
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
    for graphs in (False, True):
        pipe.cuda_graphs = graphs
        label = "CUDA graphs" if graphs else "eager"
        e_s, e_gib, edit = timed(device, lambda: pipe.edit(image, "cut the onion", **kwargs))
        v_s, v_gib, video = timed(device, lambda: pipe.animate(image, "cut the onion", num_frames=frames, **kwargs))
        results[graphs] = (edit, video, v_s)
        table.add("ShowMe", f"edit, 1 frame, DDIM {steps}, {label}", e_s, "s", "≤ 0.8 s" if graphs else "≤ 1.5 s",
                  "before: 2.3–3.3 s (H200)")
        table.add("ShowMe", f"edit peak memory, {label}", e_gib, "GiB")
        table.add("ShowMe", f"video {frames} frames, DDIM {steps}, {label}", v_s, "s", "≤ 5 s" if graphs else "≤ 10 s",
                  "A100 published 10 s; before 6.8 s (H200)")
        table.add("ShowMe", f"video peak memory, {label}", v_gib, "GiB", "≤ 12 GB",
                  "A100 published 11.9 GB; before 16.7 GiB")
    table.add("ShowMe", "CUDA graphs captured (edit, video)", pipe._step_graphs.captures, "", "2 on a GPU")
    table.add("ShowMe", "graph vs eager, max pixel difference (edit / video)",
              f"{pixels_diff([results[0][0].image], [results[1][0].image])} / "
              f"{pixels_diff(results[0][1].frames, results[1][1].frames)}", "levels of 255")
    # a whole recipe animated as one batch
    count = len(RECIPE)
    images = [photo(pipe.config.width)] * count
    instructions = ["cut the onion"] + RECIPE[1:]  # clip 1 is the video above (same photo, text and seed)
    many_s, many_gib, many = timed(
        device, lambda: pipe.animate_many(images, instructions, seeds=list(range(count)), num_frames=frames,
                                          num_inference_steps=steps), warmup=0)
    table.add("ShowMe", f"animate_many: {count} clips x {frames} frames (first call, capture included)", many_s, "s",
              "≤ 15 s (H200)", f"one by one: {count} x {results[1][2]:.2f} = {count * results[1][2]:.1f} s")
    table.add("ShowMe", "animate_many peak memory", many_gib, "GiB")
    table.add("ShowMe", "animate_many clip 1 vs animate(seed 0), max pixel difference",
              pixels_diff(many[0].frames, results[1][1].frames), "levels of 255")
    grads = any(p.requires_grad for p in pipe.model.parameters())
    table.add("ShowMe", "parameters requiring grad after loading", str(grads), "", "False")


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


def section_attention(args, device, table: Table, pipe: IllustrationPipeline) -> None:
    size = pipe.preset.size if not args.tiny else 128
    side = size // pipe.vae_scale_factor
    unet = pipe.unet
    masked = lambda q, k, v, n: attention.masked_neighbour_attention(q, k, v, n, 1.0)  # noqa: E731
    unmasked = attention._unmasked_neighbour_attention
    for n in ((2, 4) if args.tiny else (4, 7, 8, 16)):
        g = torch.Generator().manual_seed(n)
        rand = lambda *shape, g=g: torch.randn(*shape, generator=g).to(device, unet.dtype)  # noqa: E731
        inputs = dict(sample=rand(2 * n, 4, side, side), timestep=torch.tensor(500, device=device),
                      encoder_hidden_states=rand(2 * n, 77, unet.config.cross_attention_dim),
                      added_cond_kwargs={"text_embeds": rand(2 * n, pipe.text_encoder_2.config.projection_dim),
                                         "time_ids": torch.tensor([[size, size, 0, 0, size, size]],
                                                                  device=device, dtype=unet.dtype).repeat(2 * n, 1)})

        def forward(weight: float, kernel=unmasked, layout=None, n=n, inputs=inputs) -> None:
            attention._unmasked_neighbour_attention = kernel
            try:
                with torch.inference_mode(), neighbour_attention_enabled(unet, n, weight, layout=layout):
                    unet(**inputs, return_dict=False)
            finally:
                attention._unmasked_neighbour_attention = unmasked

        anchored = attention.ChainLayout((1.0,) * (n - 1), anchor=0, anchor_weight=1.0)  # issue 11: + global anchor
        modes = {"independent": lambda: forward(0.0), "neighbour (masked, before)": lambda: forward(1.0, masked),
                 "neighbour (unmasked, concatenated keys)": lambda: forward(1.0, concatenated_neighbour_attention),
                 "neighbour (unmasked)": lambda: forward(1.0),
                 "anchored": lambda anchored=anchored: forward(1.0, layout=anchored)}
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
    table.add("I2G recipe", "CUDA graphs captured", pipe._step_graphs.captures if pipe._step_graphs else 0, "",
              "1 on a GPU")
    pipe.cuda_graphs = False
    s, gib, whole = timed(device, lambda: pipe(goal, RECIPE, seed=0, decode_chunk_size=None))
    table.add("I2G recipe", "7 steps, whole-batch decode (before)", s, "s")
    table.add("I2G recipe", "peak memory, whole-batch decode (before)", gib, "GiB", "", "before: 34.8 GiB")
    table.add("I2G recipe", "one-at-a-time vs whole-batch decode, max pixel difference",
              pixels_diff(out.images, whole.images), "levels of 255", "≤ 1")
    table.add("I2G recipe", "VAE dtype after a call", str(pipe.vae.dtype).replace("torch.", ""), "",
              str(args.dtype).replace("torch.", ""))


def section_training(args, device, table: Table, sdxl: IllustrationPipeline | None, showme: ShowMePipeline | None):
    """One optimizer step of each entry point's loss at the papers' settings, random weights, bf16 frozen weights."""
    from showme_i2g.showme.rewards.motion import MotionReward
    from showme_i2g.showme.training import ShowMeTrainingModel

    def step(name: str, parameters, loss_fn, target: str = "fits 40 GB") -> None:
        optimizer = torch.optim.AdamW(parameters, lr=1e-5)

        def run():
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn()["loss"]
            loss.backward()
            optimizer.step()

        try:
            s, gib, _ = timed(device, run)
            table.add("training", f"{name}: one optimizer step", s, "s")
            table.add("training", f"{name}: peak memory", gib, "GiB", target)
        except torch.OutOfMemoryError as exc:
            table.add("training", f"{name}", f"out of memory: {str(exc)[:80]}")
        finally:
            optimizer.zero_grad(set_to_none=True)
            optimizer = None  # frees its state before the next entry point's step  # noqa: F841
            gc.collect()
            torch.cuda.empty_cache() if device.type == "cuda" else None

    if showme is not None:
        model = showme.model
        model.train()  # the release's blocks checkpoint their activations when training
        size, frames = showme.config.height, (4 if args.tiny else 16)
        g = torch.Generator().manual_seed(0)
        for stage in (1, 2):
            motion = MotionReward(min_timestep=0) if stage == 2 else None
            trainer = ShowMeTrainingModel(model, stage, motion=motion)
            params = [p for p in model.parameters() if p.requires_grad]
            for p in params:  # LoRA weights train in float32 next to the frozen half-precision model
                p.data = p.data.float()
            if stage == 1:
                batch = {"first": torch.rand(1, 3, size, size) * 2 - 1, "last": torch.rand(1, 3, size, size) * 2 - 1,
                         "instruction": ["cut the onion"]}
                rank = adapters.adapter_rank(model, adapters.EDIT)
                label = f"ShowMe stage 1 ({size}², rank {rank}, no structure reward)"
            else:
                h = size // 8
                batch = {"frames": torch.rand(1, 3, frames, size, size) * 2 - 1, "instruction": ["cut the onion"],
                         "flow": torch.rand(1, frames - 1, h, h), "fs": torch.tensor([3])}
                rank = adapters.adapter_rank(model, adapters.ANIMATE)
                label = f"ShowMe stage 2 ({frames} frames, rank {rank}, motion reward)"
            # step() calls the loss at once; binding trainer as a default would keep the model alive past `del trainer`
            step(label, params, lambda: trainer(batch, g))  # noqa: B023
            for p in params:
                p.data = p.data.to(args.dtype)
            del trainer
        model.requires_grad_(False).eval()
    if sdxl is not None:
        from showme_i2g.i2g.training import LORA_TARGETS, I2GParts, add_i2g_lora, pairwise_loss

        unet, size = sdxl.unet, (128 if args.tiny else 1024)
        add_i2g_lora(unet, SimpleNamespace(rank=16, lora_alpha=None, lora_targets=LORA_TARGETS,
                                           adapter_name="i2g_bench", init_lora=None))
        for p in unet.parameters():
            if p.requires_grad:
                p.data = p.data.float()
        unet.enable_gradient_checkpointing()
        unet.train()
        parts = I2GParts(dict(sdxl.components), unet, size)
        g = torch.Generator().manual_seed(0)
        ctx = SimpleNamespace(model=unet, generator=g, device=device)
        batch = {"goals": ["Make cookies"], "clauses": [[["Cream the butter."], ["Beat in the egg."]]],
                 "pixels": torch.rand(2, 3, size, size) * 2 - 1,
                 "time_ids": torch.tensor([[size, size, 0, 0, size, size]], dtype=torch.float32).repeat(2, 1)}
        config = SimpleNamespace(uncond_prob=0.0)
        from diffusers import DDPMScheduler

        noise_scheduler = DDPMScheduler.from_config(sdxl.scheduler.config)  # as train_pairwise builds it
        with neighbour_attention_enabled(unet, 2, 1.0):
            step(f"I2G pairwise (SDXL {size}², one pair, rank 16, checkpointing)",
                 [p for p in unet.parameters() if p.requires_grad],
                 lambda: pairwise_loss(batch, ctx, parts, noise_scheduler, config))
        unet.eval()
        unet.disable_gradient_checkpointing()
        unet.delete_adapters("i2g_bench")
        sdxl.freeze()


def section_space(args, device, table: Table, sdxl: IllustrationPipeline, showme: ShowMePipeline) -> None:
    """Both fp16 models resident, the process capped at 22 GiB: a recipe, an edit, a video, a 7-clip animation."""
    steps, frames = (4, 8) if args.tiny else (50, 16)
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
    for name, job in jobs.items():
        try:
            s, gib, _ = timed(device, job, warmup=0)
            table.add("Space", f"{name} under {SPACE_LIMIT_GIB:.0f} GiB", f"ok, {s:.2f} s, peak {gib:.1f} GiB", "",
                      f"fits {SPACE_LIMIT_GIB:.0f} GiB")
        except torch.OutOfMemoryError:
            table.add("Space", f"{name} under {SPACE_LIMIT_GIB:.0f} GiB", "out of memory", "", "fits")
    if device.type == "cuda":
        torch.cuda.set_per_process_memory_fraction(1.0, torch.cuda.current_device())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny twins (a CPU smoke test of this script)")
    parser.add_argument("--device", default=str(best_device()))
    parser.add_argument("--dtype", default=None, choices=("float16", "bfloat16", "float32"),
                        help="default: float16 on a GPU, float32 on a CPU")
    parser.add_argument("--only", nargs="+", choices=("showme", "attention", "recipe", "training", "space"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the table's rows here")
    args = parser.parse_args()
    device = torch.device(args.device)
    args.dtype = getattr(torch, args.dtype or ("float16" if device.type == "cuda" else "float32"))
    sections = set(args.only or ("showme", "attention", "recipe", "training", "space"))
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
    if sections & {"showme", "training", "space"}:
        showme = showme_pipeline(args, device)
        table.add("ShowMe", "weights resident", torch.cuda.memory_allocated() / GIB if device.type == "cuda"
                  else float("nan"), "GiB", "", "5.1 GiB measured before")
    if "showme" in sections:
        attempt("showme", section_showme, showme)
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
