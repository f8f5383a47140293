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

Metrics: image mode CLIP-I, CLIP-T, DINO-I, FID, PSNR (and LPIPS when ``showme_i2g.metrics.lpips`` provides it);
video mode FVD, FID over frames, CLIP-I (frame t against target frame t), video-text similarity (frame-average
CLIP, the approximation of ViCLIP/EgoVLP), VQAScore (mean over 4 sampled frames) and the Motion Score (VBench
dynamic degree and motion smoothness, harmonic mean). ``--models tiny`` builds tiny random networks in code so a
whole run works offline (its numbers test the plumbing, not a model). Writes ``results.json``, ``results.md`` and
``grid.png`` (generated above target for the first samples) to ``--out``. Bad input: one sentence, exit code 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from showme_i2g.errors import InvalidInputError, ShowMeError
from showme_i2g.media import read_video_frames

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".gif", ".webm", ".mov")
CLI_OUTPUTS = {"image": ("edited.png",), "video": ("video.mp4", "video.gif")}


# ---------------------------------------------------------------------------------------------------------------------
# Reading the folders
# ---------------------------------------------------------------------------------------------------------------------


def _frame_folder(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def find_samples(root: Path, mode: str, what: str) -> dict[str, Path]:
    """NAME -> the file (or frame folder) holding that sample, per the documented layouts."""
    if not root.is_dir():
        raise InvalidInputError(f"The {what} folder {root} does not exist.")
    suffixes = IMAGE_SUFFIXES if mode == "image" else VIDEO_SUFFIXES
    samples: dict[str, Path] = {}
    for entry in sorted(root.iterdir()):
        if entry.is_file() and entry.suffix.lower() in suffixes:
            samples[entry.stem] = entry
        elif entry.is_dir():
            cli = [entry / name for name in CLI_OUTPUTS[mode] if (entry / name).is_file()]
            if cli:
                samples[entry.name] = cli[0]
            elif mode == "video" and len(_frame_folder(entry)) >= 2:
                samples[entry.name] = entry
    if not samples:
        kinds = "images (.png)" if mode == "image" else "videos (.mp4/.gif or frame folders)"
        raise InvalidInputError(f"The {what} folder {root} holds no {kinds}.")
    return samples


def load_instructions(path: Path | None, generated: dict[str, Path]) -> dict[str, str]:
    """NAME -> instruction from a JSON/CSV file, or from each sample's run.json."""
    if path is not None:
        if not path.is_file():
            raise InvalidInputError(f"There is no instructions file at {path}.")
        try:
            if path.suffix.lower() == ".csv":
                with path.open(newline="", encoding="utf-8") as handle:
                    return {row["name"]: row["instruction"] for row in csv.DictReader(handle)}
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return {str(k): str(v) for k, v in data.items()}
            return {str(row["name"]): str(row["instruction"]) for row in data}
        except (KeyError, TypeError, ValueError, UnicodeDecodeError):
            raise InvalidInputError(
                f"{path} must map names to instructions (a JSON object, a JSON list of name/instruction "
                "records, or a CSV with name and instruction columns)."
            ) from None
    found = {}
    for name, sample in generated.items():
        record = (sample if sample.is_dir() else sample.parent) / "run.json"
        if record.is_file():
            try:
                found[name] = str(json.loads(record.read_text(encoding="utf-8"))["instruction"])
            except (KeyError, ValueError):
                raise InvalidInputError(f"{record} has no instruction.") from None
    return found


def read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError:
        raise InvalidInputError(f"{path} is not an image we can read.") from None


def read_clip(path: Path) -> np.ndarray:
    frames = [read_image(p) for p in _frame_folder(path)] if path.is_dir() else read_video_frames(path)
    if len(frames) < 3 or len({f.shape for f in frames}) != 1:
        raise InvalidInputError(f"{path} must hold at least three frames of one size.")
    return np.stack(frames)


# ---------------------------------------------------------------------------------------------------------------------
# The networks
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class Suite:
    """The networks behind the metrics; ``None`` entries are skipped and reported as such."""

    name: str
    clip: Any  # FrameAverageCLIP: image_embedder / text_embedder / video_embedder
    dino: Callable | None
    fid_features: Callable | None
    i3d: Callable | None
    vqa: Callable | None
    flow: Callable | None
    lpips: Callable | None = None
    fvd_resolution: int = 224
    notes: list[str] = field(default_factory=list)


def _tiny_suite() -> Suite:
    """Random tiny networks built in code: every metric runs offline (numbers are meaningless)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from showme_i2g.flow import OpenCVFlow
    from showme_i2g.metrics.i3d import I3DFeatures, InceptionI3d
    from showme_i2g.metrics.video import FrameAverageCLIP
    from showme_i2g.text.tokenizers import load_clip_tokenizer

    torch.manual_seed(0)
    tiny = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = CLIPConfig(text_config=tiny, vision_config=dict(tiny, image_size=32, patch_size=8), projection_dim=16)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=load_clip_tokenizer(),
    )
    clip = FrameAverageCLIP(CLIPModel(config), processor, device="cpu")

    def tiny_vqa(images, questions):  # P(yes) = sigmoid(10 cos(image, question)) from the tiny CLIP
        cos = (clip.image_embedder(images) * clip.text_embedder(questions)).sum(-1)
        return torch.sigmoid(10 * cos).tolist()

    return Suite(
        name="tiny",
        clip=clip,
        dino=clip.image_embedder,
        fid_features=clip.image_embedder,
        i3d=I3DFeatures(InceptionI3d(num_classes=16, width=1 / 16), device="cpu", resolution=32),
        vqa=tiny_vqa,
        flow=OpenCVFlow(),
        fvd_resolution=32,
        notes=["tiny random networks: the numbers test the pipeline, not a model"],
    )


def _real_suite(device: str | None) -> Suite:
    """The real networks (hub weights): CLIP ViT-L/14, DINOv2, I3D, LLaVA-1.5 for VQAScore, RAFT or DIS flow."""
    import importlib

    import torch
    from transformers import AutoImageProcessor, AutoModel

    from showme_i2g.flow import default_flow
    from showme_i2g.metrics.i3d import I3DFeatures
    from showme_i2g.metrics.video import FrameAverageCLIP, TransformersVQA

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    clip = FrameAverageCLIP.from_pretrained(device=device)
    dino_processor = AutoImageProcessor.from_pretrained("facebook/dinov2-base")
    dino_model = AutoModel.from_pretrained("facebook/dinov2-base").eval().to(device)

    @torch.no_grad()
    def dino(images):  # DINO-I: the CLS token of the last layer
        pixels = dino_processor(images=list(images), return_tensors="pt")["pixel_values"].to(device)
        return dino_model(pixel_values=pixels).last_hidden_state[:, 0].float().cpu()

    suite = Suite("real", clip, dino, None, I3DFeatures(device=device), TransformersVQA.from_pretrained(device=device),
                  default_flow(device=device))
    metrics = importlib.import_module("showme_i2g.metrics")
    for attribute, name in (("fid_features", "InceptionFeatures"), ("lpips", "LPIPS")):
        factory = getattr(metrics, name, None)
        if factory is not None:
            setattr(suite, attribute, factory())
        else:
            suite.notes.append(f"showme_i2g.metrics.{name} is not available: its metric is skipped")
    return suite


# ---------------------------------------------------------------------------------------------------------------------
# The tables
# ---------------------------------------------------------------------------------------------------------------------


def _mean(values: Any) -> float:
    return float(np.mean(np.asarray(values, dtype=np.float64)))


def evaluate_images(suite: Suite, names, generated, targets, instructions) -> dict[str, float]:
    from showme_i2g.metrics.fid import FID
    from showme_i2g.metrics.image import batch_psnr, clip_i, clip_t, dino_i

    gen = [Image.fromarray(read_image(generated[n])) for n in names]
    tgt = [Image.fromarray(read_image(targets[n])) for n in names]
    gen_sized = [g.resize(t.size, Image.Resampling.BICUBIC) if g.size != t.size else g for g, t in zip(gen, tgt)]
    results = {
        "CLIP-I": clip_i(suite.clip.image_embedder).mean(gen, tgt),
        "CLIP-T": clip_t(suite.clip.image_embedder, suite.clip.text_embedder).mean(
            gen, [instructions[n] for n in names]
        ),
        "PSNR": _mean([batch_psnr(np.asarray(g)[None], np.asarray(t)[None], 255.0)[0] for g, t in zip(gen_sized, tgt)]),
    }
    if suite.dino is not None:
        results["DINO-I"] = dino_i(suite.dino).mean(gen, tgt)
    if suite.fid_features is not None:
        fid = FID(suite.fid_features)
        fid.update(tgt, real=True)
        fid.update(gen, real=False)
        results["FID"] = fid.compute()
    if suite.lpips is not None:
        results["LPIPS"] = _mean(suite.lpips(gen_sized, tgt))
    return results


def evaluate_videos(suite: Suite, names, generated, targets, instructions) -> dict[str, float]:
    from showme_i2g.metrics.image import clip_i
    from showme_i2g.metrics.motion import motion_score
    from showme_i2g.metrics.video import FVD, FrameFID, VQAScore, video_text_similarity

    gen = [read_clip(generated[n]) for n in names]
    tgt = [read_clip(targets[n]) for n in names]
    texts = [instructions[n] for n in names]
    frames = min(16, *(len(c) for c in gen + tgt))
    fvd = FVD(suite.i3d, num_frames=frames)
    fvd.update(tgt, real=True)
    fvd.update(gen, real=False)
    per_video_clip_i = []
    for g, t in zip(gen, tgt):
        index = np.linspace(0, len(t) - 1, len(g)).round().astype(int)  # frame t of each against its target frame
        pairs = [Image.fromarray(f) for f in g], [Image.fromarray(t[i]) for i in index]
        per_video_clip_i.append(clip_i(suite.clip.image_embedder).mean(*pairs))
    motion = motion_score(gen, suite.flow)
    results = {
        "FVD": fvd.compute(),
        "FVD frames": float(frames),
        "CLIP-I": _mean(per_video_clip_i),
        "ViCLIP (frame-average CLIP)": video_text_similarity(suite.clip.video_embedder, suite.clip.text_embedder).mean(
            gen, texts
        ),
        "VQAScore": _mean(VQAScore(suite.vqa).videos(gen, texts)),
        "Motion": motion.motion_score,
        "Dynamic degree": motion.dynamic_degree,
        "Motion smoothness": motion.motion_smoothness,
    }
    if suite.fid_features is not None:
        frame_fid = FrameFID(suite.fid_features)
        frame_fid.update(tgt, real=True)
        frame_fid.update(gen, real=False)
        results["FID"] = frame_fid.compute()
    return results


def write_report(out: Path, mode: str, suite: Suite, names: list[str], results: dict[str, float], grid: Image.Image):
    out.mkdir(parents=True, exist_ok=True)
    record = {"mode": mode, "models": suite.name, "samples": len(names), "names": names, "metrics": results,
              "notes": suite.notes}
    (out / "results.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    lines = [f"# ShowMe {mode} evaluation ({len(names)} samples, {suite.name} models)", "",
             "| " + " | ".join(results) + " |", "|" + "---|" * len(results),
             "| " + " | ".join(f"{v:.4f}" for v in results.values()) + " |", ""]
    lines += [f"- {note}" for note in suite.notes]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    grid.save(out / "grid.png")


def sample_grid(mode: str, names, generated, targets, count: int = 4, cell: int = 128) -> Image.Image:
    """Generated (top) above target (bottom) for the first samples; middle frame of videos."""
    names = names[:count]
    grid = Image.new("RGB", (cell * len(names), 2 * cell), "white")
    for column, name in enumerate(names):
        for row, path in enumerate((generated[name], targets[name])):
            if mode == "image":
                picture = read_image(path)
            else:
                clip = read_clip(path)
                picture = clip[len(clip) // 2]
            grid.paste(Image.fromarray(picture).resize((cell, cell)), (column * cell, row * cell))
    return grid


def run(args: argparse.Namespace) -> dict[str, float]:
    generated = find_samples(args.generated, args.mode, "generated")
    targets = find_samples(args.targets, args.mode, "targets")
    missing = sorted(set(generated) - set(targets))
    if missing:
        raise InvalidInputError(f"{len(missing)} generated samples have no target, for example {missing[0]!r}.")
    names = sorted(generated)
    instructions = load_instructions(args.instructions, generated)
    unexplained = [n for n in names if not instructions.get(n, "").strip()]
    if unexplained:
        raise InvalidInputError(f"{len(unexplained)} samples have no instruction, for example {unexplained[0]!r}.")
    if len(names) < 2:
        raise InvalidInputError("FID and FVD need at least two samples.")
    suite = _tiny_suite() if args.models == "tiny" else _real_suite(args.device)
    evaluate = evaluate_images if args.mode == "image" else evaluate_videos
    results = evaluate(suite, names, generated, targets, instructions)
    write_report(args.out, args.mode, suite, names, results, sample_grid(args.mode, names, generated, targets))
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m eval.showme", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--generated", type=Path, required=True, help="folder of generated samples (see layouts)")
    parser.add_argument("--targets", type=Path, required=True, help="folder of ground-truth samples, same names")
    parser.add_argument("--mode", choices=("image", "video"), required=True, help="ShowMe's image or video table")
    parser.add_argument("--out", type=Path, required=True, help="report folder: results.md, results.json, grid.png")
    parser.add_argument("--instructions", type=Path, help="JSON/CSV of name -> instruction (default: run.json)")
    parser.add_argument("--models", choices=("real", "tiny"), default="real", help="real weights or tiny offline nets")
    parser.add_argument("--device", help="torch device for the real networks (default: cuda when available)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        results = run(args)
    except ShowMeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for key, value in results.items():
        print(f"{key}: {value:.4f}")
    print(f"Wrote results.md, results.json and grid.png to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
