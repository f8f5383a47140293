"""Command line: ``python -m showme_i2g illustrate ...``.

Only argument handling and file writing live here; the work is the library's (``IllustrationPipeline``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .errors import InvalidInputError, run_cli
from .i2g.inputs import ANCHOR_CHOICES, MAX_STEPS
from .media import DEFAULT_FPS, FIT_MODES
from .presets import ILLUSTRATION_PRESETS
from .text.step_lines import DEFAULT_PLANNED_STEPS, MAX_PLANNED_STEPS, parse_step_lines
from .validation import CONDITIONING_MODES, DEFAULT_FRAMES, MAX_FRAMES


def read_steps_file(path: Path) -> list[str]:
    """One step per non-empty line; a leading "1." / "Step 2:" / "-" marker is dropped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"The steps file {path} does not exist.") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"The steps file {path} is not UTF-8 text.") from None
    except OSError as exc:
        raise InvalidInputError(f"The steps file {path} cannot be read ({exc.strerror}).") from None
    return parse_step_lines(text)


def _add_illustrate(subparsers) -> None:
    p = subparsers.add_parser(
        "illustrate",
        help="goal + steps -> one illustration per step, a storyboard and run.json",
        description="Illustrate every step of a recipe with SDXL and I2G's neighbour attention.",
    )
    p.add_argument("--preset", choices=sorted(ILLUSTRATION_PRESETS),
                   help="model preset (default: tiny, or with --keep that run's)")
    p.add_argument("--goal", help='what the recipe achieves, e.g. "Make pancakes" (default with --keep: that run\'s)')
    p.add_argument("--step", action="append", default=[], help="one step (repeat for each step, in order)")
    p.add_argument("--steps-file", type=Path, help="a text file with one step per line")
    p.add_argument("--plan", action="store_true", help="let the language model write the steps")
    p.add_argument("--max-steps", type=int, default=DEFAULT_PLANNED_STEPS,
                   help=f"planned steps (with --plan; 1 to {MAX_PLANNED_STEPS}, default {DEFAULT_PLANNED_STEPS})")
    p.add_argument("--planner", help="planner model: hub id, local folder or .gguf file (default: offline one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="folder for step_XX.png, storyboard.png, run.json")
    p.add_argument("--inference-steps", type=int, help="denoising steps (default: the preset's)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the preset's)")
    p.add_argument("--size", type=int, help="image side in pixels (default: the preset's)")
    p.add_argument("--neighbour-weight", type=float, help="0 = independent steps; 1 = full pairs (default 1)")
    p.add_argument("--reference", type=Path, metavar="PHOTO",
                   help="a photo of your kitchen: placed before step 1, so the scene carries on from it")
    p.add_argument("--reference-weight", type=float,
                   help="how strongly step 1 sees --reference (default: --neighbour-weight)")
    p.add_argument("--keep", type=Path, metavar="DIR",
                   help="a previous run's output folder: its steps are kept from step_NN.png except --redraw ones; "
                        "every setting not given here (goal, steps, preset, size, sampler, weights, anchor, kitchen "
                        "photo, LoRA) is that run's")
    p.add_argument("--redraw", type=int, action="append", default=[], metavar="N",
                   help="with --keep: draw step N again with this run's seed (repeat for more steps)")
    p.add_argument("--anchor", choices=ANCHOR_CHOICES,
                   help="every step also attends to this image, against drift over long recipes")
    p.add_argument("--anchor-weight", type=float, help="how strongly steps see --anchor (default 1)")
    p.add_argument("--max-batch", type=int,
                   help="most step images denoised together; longer recipes are drawn in overlapping windows "
                        f"(without it at most {MAX_STEPS} steps)")
    p.add_argument("--negative", help="negative prompt")
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--no-cuda-graphs", action="store_true",
                   help="run every denoising step eagerly instead of replaying a captured CUDA graph (GPU only)")
    p.add_argument("--weights", type=Path, help="local folder holding the preset's base weights")
    p.add_argument("--lora", type=Path,
                   help="a trained I2G LoRA: pytorch_lora_weights.safetensors or the lora/ folder training wrote")
    p.add_argument("--lora-scale", type=float, help="strength of --lora (0 = off; default 1)")
    p.set_defaults(run=_illustrate)


def _gather_steps(args) -> list[str] | None:
    given = list(args.step)
    if args.steps_file:
        given += read_steps_file(args.steps_file)
    if args.plan and given:
        raise InvalidInputError("Give the steps (--step/--steps-file) or ask for a plan (--plan), not both.")
    if not args.plan and not given:
        raise InvalidInputError("Give the steps with --step or --steps-file, or add --plan to have them written.")
    return None if args.plan else given


def _previous_run(folder: Path) -> dict:
    """The run.json of a folder written by ``illustrate``, or one sentence."""
    try:
        record = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"{folder} holds no run.json; --keep takes a folder written by illustrate.") from None
    except (OSError, ValueError):
        raise InvalidInputError(f"The run.json in {folder} cannot be read.") from None
    if not isinstance(record, dict) or not isinstance(record.get("steps"), list):
        raise InvalidInputError(f"The run.json in {folder} lists no steps.")
    return record


def _kept_images(args, num_steps: int) -> dict[int, Path]:
    """Step number -> step_NN.png of --keep, for every step but the --redraw ones."""
    if args.redraw and args.keep is None:
        raise InvalidInputError("--redraw needs --keep, the folder of the run whose other steps are kept.")
    if args.keep is None:
        return {}
    if not args.redraw:
        raise InvalidInputError("With --keep, name the steps to draw again with --redraw N.")
    bad = sorted({n for n in args.redraw if not 1 <= n <= num_steps})
    if bad:
        raise InvalidInputError(f"--redraw takes step numbers from 1 to {num_steps}, got {bad[0]}.")
    kept = {n: args.keep / f"step_{n:02d}.png" for n in range(1, num_steps + 1) if n not in args.redraw}
    missing = [path.name for path in kept.values() if not path.is_file()]
    if missing:
        raise InvalidInputError(f"{args.keep} has no {missing[0]} to keep.")
    return kept


def _inherit(args, previous: dict) -> None:
    """With --keep: every setting not given on the command line is the kept run's (outputs.redraw_settings)."""
    from .outputs import redraw_settings

    settings = redraw_settings(previous)
    flags = {"preset": "preset", "inference_steps": "num_inference_steps", "guidance": "guidance_scale",
             "neighbour_weight": "neighbour_weight", "negative": "negative_prompt", "reference": "reference",
             "reference_weight": "reference_weight", "anchor": "anchor", "anchor_weight": "anchor_weight",
             "max_batch": "max_batch", "lora": "lora", "lora_scale": "lora_scale"}
    for flag, name in flags.items():
        if getattr(args, flag) is None and settings[name] is not None:
            setattr(args, flag, Path(settings[name]) if flag in ("reference", "lora") else settings[name])
    if args.size is None and settings["height"] is not None:
        if settings["height"] != settings["width"]:
            raise InvalidInputError(f"The run in {args.keep} is not square; --size draws square pictures only.")
        args.size = settings["height"]
    if args.reference is not None and not args.reference.is_file():
        raise InvalidInputError(f"The kitchen photo {args.reference} of the run in {args.keep} is no longer there; "
                                "pass --reference again.")


def _illustrate(args) -> int:
    from .i2g import inputs
    from .presets import get_illustration_preset

    previous = _previous_run(args.keep) if args.keep is not None else {}
    if args.goal is None and not previous:
        raise InvalidInputError("Give the goal with --goal (or --keep a previous run's folder).")
    goal = inputs.clean_goal(args.goal if args.goal is not None else previous.get("goal"))
    if previous:
        _inherit(args, previous)
        if not (args.step or args.steps_file or args.plan):
            args.step = list(previous["steps"])
    args.preset = args.preset or "tiny"
    args.neighbour_weight = 1.0 if args.neighbour_weight is None else args.neighbour_weight
    args.anchor_weight = 1.0 if args.anchor_weight is None else args.anchor_weight
    args.lora_scale = 1.0 if args.lora_scale is None else args.lora_scale
    steps = _gather_steps(args)
    if steps is not None:  # refuse bad input before loading any model
        steps = inputs.clean_steps(steps, max_steps=None if args.max_batch else inputs.MAX_STEPS)
    if args.plan and args.keep is not None:
        raise InvalidInputError("--keep re-draws steps of a written recipe; it cannot be combined with --plan.")
    for flag, value in (("neighbour_weight", args.neighbour_weight), ("anchor_weight", args.anchor_weight),
                        ("reference_weight", args.reference_weight)):
        if value is not None:
            inputs.check_number(value, flag, 0, inputs.MAX_NEIGHBOUR_WEIGHT)
    inputs.check_anchor_options(args.anchor, args.reference is not None, args.max_batch)
    size = args.size or get_illustration_preset(args.preset).size
    keep = inputs.check_kept_images(_kept_images(args, len(steps)), len(steps), size, size) if steps else {}
    keep = {number + 1: image for number, image in keep.items()}
    reference = None
    if args.reference is not None:
        from .media import load_photo

        reference = load_photo(args.reference)

    from .i2g.pipeline import IllustrationPipeline
    from .outputs import RUN_JSON, write_illustrations, write_run_json

    print(f"Loading the '{args.preset}' preset...", file=sys.stderr)
    pipe = IllustrationPipeline.from_preset(args.preset, device=args.device, weights=args.weights, lora=args.lora,
                                            lora_scale=args.lora_scale)
    pipe.cuda_graphs = not args.no_cuda_graphs
    if args.plan:
        from .text.planner import StepPlanner

        print("Loading the step planner...", file=sys.stderr)
        device = str(pipe.device)
        pipe.planner = (
            StepPlanner.from_pretrained(args.planner, device=device) if args.planner else StepPlanner.default(device)
        )
    result = pipe(
        goal,
        steps,
        seed=args.seed,
        num_inference_steps=args.inference_steps,
        guidance_scale=args.guidance,
        height=args.size,
        width=args.size,
        neighbour_weight=args.neighbour_weight,
        negative_prompt=args.negative,
        max_planned_steps=args.max_steps,
        keep=keep or None,
        reference_image=reference,
        reference_weight=args.reference_weight,
        anchor=args.anchor,
        anchor_weight=args.anchor_weight,
        max_batch=args.max_batch,
    )
    files = write_illustrations(result.images, result.steps, result.goal, args.out)
    record = {"goal": result.goal, "steps": result.steps, "clauses": result.clauses, **result.metadata,
              "kept_from": args.keep, "reference": args.reference and args.reference.resolve()}
    write_run_json(args.out / RUN_JSON, record)
    print(f"Wrote {len(files.steps)} step images, storyboard.png and run.json to {args.out}", file=sys.stderr)
    return 0


def _add_photo_arguments(p, default_preset: str = "tiny") -> None:
    from .presets import SHOWME_PRESETS

    p.add_argument("--preset", default=default_preset, choices=sorted(SHOWME_PRESETS), help="model preset")
    p.add_argument("--image", type=Path, required=True, help="the photo (JPEG, PNG, WebP...)")
    p.add_argument("--instruction", required=True, help='the action, e.g. "cut the onion"')
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the noise: the same seed and settings give the same result (default 0)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--inference-steps", type=int, help="DDIM steps (default: the preset's, 50 for real ones)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (default 7.5)")
    p.add_argument("--eta", type=float, help="DDIM eta (default 1.0)")
    p.add_argument("--fs", type=int, help="frame-stride conditioning (default: the model's)")
    p.add_argument("--fit", choices=FIT_MODES, default=FIT_MODES[0],
                   help="crop: the photo's centre at the model's shape (the result has that shape); pad: the whole "
                   "photo, padded (the result keeps the photo's shape)")
    p.add_argument("--device", help="cuda or cpu (default: the best available)")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), help="weights' dtype on the GPU")
    p.add_argument("--cpu-offload", action="store_true", help="keep parts on the CPU until needed (less GPU memory)")
    p.add_argument("--no-cuda-graphs", action="store_true",
                   help="run every denoising step eagerly instead of replaying a captured CUDA graph (GPU only)")
    p.add_argument("--weights", type=Path, help="local DynamiCrafter model.ckpt")
    p.add_argument("--lora-dir", type=Path, help="folder with the ShowMe LoRA files (lora_image.pth, lora_video.pth)")
    p.add_argument("--edit-adapter", type=Path, help="a trained edit adapter: stage 1's adapter folder (<out>/edit)")
    p.add_argument("--animate-adapter", type=Path,
                   help="a trained animate adapter: stage 2's adapter folder (<out>/animate)")


def _add_edit(subparsers) -> None:
    p = subparsers.add_parser(
        "edit",
        help="photo + instruction -> the photo after the action (edited.png, run.json)",
        description="Show the moment after an action: ShowMe's image mode turns a photo and an instruction into the "
        "photo after it. Writes edited.png and run.json (every setting, to reproduce it).",
    )
    _add_photo_arguments(p)
    p.set_defaults(run=_edit)


def _add_animate(subparsers) -> None:
    p = subparsers.add_parser(
        "animate",
        help="photo + instruction -> a video of the action (video.mp4/.gif, run.json)",
        description="Show an action as it happens: ShowMe's video mode turns a photo and an instruction into a short "
        "clip that starts from the photo. Writes video.mp4 (H.264), video.gif and run.json.",
    )
    _add_photo_arguments(p)
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                   help=f"number of frames (2-{MAX_FRAMES}; the models are trained on {DEFAULT_FRAMES})")
    p.add_argument("--fps", type=int, default=DEFAULT_FPS, help="frames per second of the written video")
    p.add_argument("--conditioning", choices=CONDITIONING_MODES, default=CONDITIONING_MODES[0],
                   help="photo latent on frame 0 only (ShowMe) or on every frame (DynamiCrafter)")
    p.add_argument("--decode-chunk-size", type=int, help="decode this many frames at a time (less memory)")
    p.set_defaults(run=_animate)


class _NoTorchvisionFallback(logging.Filter):
    """Drops transformers' "requires torchvision (not installed); falling back to ..." notices (see below)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision (not installed)" not in record.getMessage()


def quiet_torchvision_notices() -> None:
    """Silence transformers' two "requires torchvision (not installed)" notices, and nothing else.

    Importing diffusers touches CLIP and SigLIP image processors that this project never uses; without torchvision
    (left out on purpose: see the README's install notes) transformers would print both lines to every user.
    """
    logger = logging.getLogger("transformers.utils.import_utils")
    if not any(isinstance(existing, _NoTorchvisionFallback) for existing in logger.filters):
        logger.addFilter(_NoTorchvisionFallback())


def _check_photo_request(args, num_frames: int | None = None):
    """Everything a user typed, checked before torch is imported or a model built: the photo opened (refused in one
    sentence if it is not one), the instruction and settings in range, the adapter files present. Returns the photo."""
    from .media import load_photo
    from .validation import check_number, check_showme_settings

    check_showme_settings(args.instruction, num_frames=num_frames, num_inference_steps=args.inference_steps,
                          guidance_scale=args.guidance, eta=args.eta, fs=args.fs)
    if num_frames is not None:
        check_number(args.fps, "--fps", 1, 60, integer=True)
    for flag, path in (("--weights", args.weights), ("--edit-adapter", args.edit_adapter),
                       ("--animate-adapter", args.animate_adapter), ("--lora-dir", args.lora_dir)):
        if path is not None and not path.exists():
            raise InvalidInputError(f"{flag} {path}: there is no such file or folder.")
    if args.out.exists() and not args.out.is_dir():
        raise InvalidInputError(f"--out {args.out} is a file; give a folder for the results.")
    return load_photo(args.image)


def _load_showme(args, num_frames: int | None = None):
    photo = _check_photo_request(args, num_frames)  # refuse bad input before importing torch or loading a model
    quiet_torchvision_notices()
    import torch

    from .showme.pipeline import ShowMePipeline

    print(f"Loading the '{args.preset}' preset...", file=sys.stderr)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    pipe = ShowMePipeline.from_preset(args.preset, device=args.device, dtype=dtype, weights=args.weights,
                                      lora_dir=args.lora_dir, cpu_offload=args.cpu_offload,
                                      edit_adapter=args.edit_adapter, animate_adapter=args.animate_adapter,
                                      cuda_graphs=not args.no_cuda_graphs)
    return pipe, photo


def _write_run(out: Path, metadata: dict, **extra) -> None:
    from .outputs import RUN_JSON, write_run_json

    write_run_json(out / RUN_JSON, {**metadata, **extra})


def _sampling_kwargs(args) -> dict:
    return {"seed": args.seed, "num_inference_steps": args.inference_steps, "guidance_scale": args.guidance,
            "eta": args.eta, "fs": args.fs, "fit": args.fit}


def _edit(args) -> int:
    pipe, photo = _load_showme(args)
    result = pipe.edit(photo, args.instruction, **_sampling_kwargs(args))
    args.out.mkdir(parents=True, exist_ok=True)
    result.image.save(args.out / "edited.png")
    _write_run(args.out, result.metadata, image=str(args.image))
    print(f"Wrote edited.png and run.json to {args.out}", file=sys.stderr)
    return 0


def _animate(args) -> int:
    pipe, photo = _load_showme(args, num_frames=args.frames)
    from .media import save_video

    result = pipe.animate(photo, args.instruction, num_frames=args.frames, conditioning=args.conditioning,
                          decode_chunk_size=args.decode_chunk_size, **_sampling_kwargs(args))
    args.out.mkdir(parents=True, exist_ok=True)
    save_video(result.frames, args.out / "video.mp4", fps=args.fps)
    save_video(result.frames, args.out / "video.gif", fps=args.fps)
    _write_run(args.out, result.metadata, image=str(args.image), fps=args.fps)
    print(f"Wrote video.mp4, video.gif and run.json to {args.out}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m showme_i2g",
        description="Show people how to do things: illustrate every step of a recipe (illustrate), or show an action "
        "on a photo as the moment after it (edit) or as a short video (animate). Bad input is refused in one sentence "
        "before any model loads.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_illustrate(subparsers)
    _add_edit(subparsers)
    _add_animate(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: args.run(args))
