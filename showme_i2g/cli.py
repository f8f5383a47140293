"""Command line: ``python -m showme_i2g illustrate ...``.

Only argument handling and file writing live here; the work is the library's (``IllustrationPipeline``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .errors import InvalidInputError, ShowMeError
from .presets import ILLUSTRATION_PRESETS

_LIST_MARKER = re.compile(r"^\s*(?:(?:step\s*)?\d+\s*[.):-]|[-*•])\s*", re.IGNORECASE)


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
    return [_LIST_MARKER.sub("", line).strip() for line in text.splitlines() if line.strip()]


def _add_illustrate(subparsers) -> None:
    p = subparsers.add_parser(
        "illustrate",
        help="goal + steps -> one illustration per step, a storyboard and run.json",
        description="Illustrate every step of a recipe with SDXL and I2G's neighbour attention.",
    )
    p.add_argument("--preset", default="tiny", choices=sorted(ILLUSTRATION_PRESETS), help="model preset")
    p.add_argument("--goal", required=True, help='what the recipe achieves, e.g. "Make pancakes"')
    p.add_argument("--step", action="append", default=[], help="one step (repeat for each step, in order)")
    p.add_argument("--steps-file", type=Path, help="a text file with one step per line")
    p.add_argument("--plan", action="store_true", help="let the language model write the steps")
    p.add_argument("--max-steps", type=int, default=8, help="at most this many planned steps (with --plan)")
    p.add_argument("--planner", help="planner model: hub id, local folder or .gguf file (default: offline one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="folder for step_XX.png, storyboard.png, run.json")
    p.add_argument("--inference-steps", type=int, help="denoising steps (default: the preset's)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the preset's)")
    p.add_argument("--size", type=int, help="image side in pixels (default: the preset's)")
    p.add_argument("--neighbour-weight", type=float, default=1.0, help="0 = independent steps; 1 = full pairs")
    p.add_argument("--negative", help="negative prompt")
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--weights", type=Path, help="local folder holding the preset's base weights")
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


def _illustrate(args) -> int:
    from .i2g import inputs

    goal = inputs.clean_goal(args.goal)
    steps = _gather_steps(args)
    if steps is not None:
        steps = inputs.clean_steps(steps)  # refuse bad input before loading any model

    from .i2g.pipeline import IllustrationPipeline
    from .media import make_storyboard, save_step_images

    print(f"Loading the '{args.preset}' preset...", file=sys.stderr)
    pipe = IllustrationPipeline.from_preset(args.preset, device=args.device, weights=args.weights)
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
    )
    paths = save_step_images(result.images, args.out)
    make_storyboard(result.images, result.steps, title=result.goal).save(args.out / "storyboard.png")
    record = {"goal": result.goal, "steps": result.steps, "clauses": result.clauses, **result.metadata}
    (args.out / "run.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"Wrote {len(paths)} step images, storyboard.png and run.json to {args.out}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m showme_i2g", description="Show people how to do things.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_illustrate(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ShowMeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
