"""``python -m eval.showme``: ShowMe's image and video tables (ShowMe §4, Tables 1-2) for one folder of outputs.

Folder layouts (samples are matched by NAME; every generated sample needs a target of the same name):

- ``--generated DIR``, image mode: ``NAME.png`` (or .jpg), or ``NAME/edited.png`` as ``python -m showme_i2g edit
  --out DIR/NAME`` writes it. Video mode: ``NAME.mp4`` / ``NAME.gif``, ``NAME/video.mp4`` (``python -m showme_i2g
  animate --out DIR/NAME``), or ``NAME/`` holding the frames as images (sorted by file name).
- ``--targets DIR``: the ground truth in the same forms: ``NAME.png`` (image mode); ``NAME.mp4`` / ``NAME.gif`` /
  ``NAME/`` of frames (video mode).
- Instructions: ``--instructions FILE``, a JSON object ``{"NAME": "instruction"}``, a JSON list of
  ``{"name": ..., "instruction": ...}``, or a CSV with ``name`` and ``instruction`` columns; without it, the
  ``instruction`` recorded in ``DIR/NAME/run.json`` by the CLI.

Metrics: image mode CLIP-I, CLIP-T, DINO-I, FID (TF-FID Inception-v3 pool3), PSNR and LPIPS (generated image
resized to its target's size, bicubic); video mode FVD, FID over frames, CLIP-I (frame t against target frame t),
video-text similarity (frame-average CLIP, the approximation of ViCLIP/EgoVLP), VQAScore (mean over 4 sampled frames)
and the Motion Score (VBench dynamic degree and motion smoothness, harmonic mean). A network whose weights cannot be
had (LPIPS without torchvision or ``--lpips-backbone``, FID without the Inception file) is skipped and the report says
why. ``--models tiny`` builds tiny random networks in code (CLIP, DINOv2, FID and LPIPS features, I3D, VQA) so a whole
run works offline (its numbers test the plumbing, not a model).

Report (``--out``, written by :class:`showme_i2g.evaluation.report.Report`): ``results.json`` (strict JSON: metrics,
settings, notes, per-sample scores under ``details.samples``), ``results.md`` (table, settings, notes, figures),
``hist_*.png`` (per-sample score distributions with KDE) and per-sample grids, generated over target:
``grid_samples.png`` (image mode, first ``--grid-samples`` samples) or ``grid_sample_NAME.png`` (video mode, 4
frames each). Bad input: one sentence, exit code 2.

Large sets on several GPUs: ``accelerate launch --num_processes 8 -m eval.showme --generated DIR --targets DIR
--mode video --out REPORT_DIR``. The samples (in name order) are split into contiguous shards, one per process
(:func:`showme_i2g.evaluation.distributed.map_in_shards`); each process reads and scores only its shard on its own
GPU (CLIP, DINO, PSNR, LPIPS, VQA, optical flow, and the Inception / I3D features), the per-sample results and features
are gathered in order, and the main process alone computes FID, FVD, the means and the Motion Score and writes the
report. One process gives exactly the undistributed results.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from showme_i2g.errors import run_cli
from showme_i2g.showme.evaluation import MODES, evaluate_showme, find_samples, load_instructions, optional_network

__all__ = ["build_parser", "find_samples", "load_instructions", "main", "optional_network"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m eval.showme", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--generated", type=Path, required=True, help="folder of generated samples (see layouts)")
    parser.add_argument("--targets", type=Path, required=True, help="folder of ground-truth samples, same names")
    parser.add_argument("--mode", choices=MODES, required=True, help="ShowMe's image or video table")
    parser.add_argument("--out", type=Path, required=True, help="report folder: results.md, results.json, plots")
    parser.add_argument("--instructions", type=Path, help="JSON/CSV of name -> instruction (default: run.json)")
    parser.add_argument("--models", choices=("real", "tiny"), default="real", help="real weights or tiny offline nets")
    parser.add_argument("--device", help="torch device for the real networks (default: cuda when available)")
    parser.add_argument("--lpips-net", choices=("alex", "vgg", "squeeze"), default="alex", help="LPIPS backbone")
    parser.add_argument("--lpips-backbone", type=Path,
                        help="local torchvision ImageNet state dict for the LPIPS backbone (default: torchvision's)")
    parser.add_argument("--grid-samples", type=int, default=4, help="samples shown in the grids")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, evaluate, write the report; bad input is one sentence and exit code 2 (``showme_i2g.errors.run_cli``)."""
    args = build_parser().parse_args(argv)

    def body() -> None:
        report = evaluate_showme(
            args.generated, args.targets, args.mode, instructions=args.instructions, models=args.models,
            device=args.device, lpips_net=args.lpips_net, lpips_backbone=args.lpips_backbone,
            grid_samples=args.grid_samples,
        )
        if report is None:  # not the main process: the main process writes the report
            return
        written = report.write(args.out)
        print(report.markdown().split("\n## ")[0])
        print(f"Wrote {', '.join(written)} to {args.out}", file=sys.stderr)

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
