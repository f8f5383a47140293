"""I2G training: pairwise LoRA fine-tuning on adjacent steps, then reward fine-tuning through sampling (DRaFT-K).

**Pairwise** (I2G 4.1-4.2). I2G factorises a recipe's images into overlapping pairs p(v_i, v_j | g, s_i, s_j) of
adjacent steps and learns them with neighbour attention on. A training item is one pair: both images are VAE
latents of one group of 2 consecutive batch items, so in every ``attn1`` each sees the other
(:mod:`showme_i2g.i2g.attention`), exactly as the n images of a recipe do at inference. Both images get the same
timestep (at inference the whole recipe is denoised in lockstep). The text is encoded as at inference
(:mod:`showme_i2g.i2g.encoding`: the goal through ``text_encoder``, each clause of the step through
``text_encoder_2``). Conditioning dropout for classifier-free guidance replaces a *whole pair's* conditioning with
SDXL's unconditional zeros with probability ``uncond_prob``, because at inference the unconditional half of the
batch is a group of its own. The loss is the MSE to the scheduler's prediction type (epsilon or v).

**Reward** (I2G 4.4-4.5). Prompts (g, s) come from a JSON file or from the planner LLM. A window of ``group_size``
consecutive steps is sampled with neighbour attention and CFG; gradients flow only through the last ``K``
denoising steps (DRaFT-K; the latent entering step T-K is detached, earlier steps run under ``no_grad``), through
the VAE decoder, into a differentiable image-text alignment reward (:mod:`showme_i2g.i2g.reward`). The loss
is the negative mean reward; only the LoRA parameters train. Gradient checkpointing keeps K-step backprop
affordable at 1024 px.

Adapters are peft LoRAs on the UNet's attention projections (``to_q``, ``to_k``, ``to_v``, ``to_out.0``) with a
name (``i2g``), saved in diffusers' LoRA format (``pytorch_lora_weights.safetensors``) so that
``IllustrationPipeline.load_lora_weights`` (or :func:`load_i2g_lora`) reads them by path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from ..data.clips import KEY_FRAMES, FrameExtraction, extract_step_frames
from ..data.records import Recipe, Step
from ..errors import InvalidInputError
from ..training.config import DataError, RunConfig, TrainingConfigError
from ..training.loop import ResumableBatches, StepContext, TrainResult, create_accelerator, train, weight_dtype
from . import lora
from .attention import apply_neighbour_attention
from .denoise import guided_step
from .encoding import encode_instruction, guidance_batch, sdxl_time_ids
from .lora import ADAPTER_NAME, LORA_FILENAME, LORA_TARGETS, load_i2g_lora, lora_parameter_names, save_i2g_lora
from .vae import decode_latents

logger = logging.getLogger(__name__)

__all__ = [
    "ADAPTER_NAME",
    "DATA_FORMATS",
    "LORA_FILENAME",
    "PairwiseConfig",
    "RewardConfig",
    "StepPair",
    "StepWindow",
    "add_i2g_lora",
    "draft_sample",
    "encode_groups",
    "extract_pairwise_frames",
    "frame_cache",
    "load_i2g_lora",
    "load_prompt_windows",
    "load_step_pairs",
    "lora_parameter_names",
    "save_i2g_lora",
    "train_pairwise",
    "train_reward",
]

LORA_DIR = "lora"
DATA_FORMATS = ("json", "wikihow", "htstep", "captaincook4d")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


# ====================================================================== configs
@dataclass
class I2GConfig(RunConfig):
    """Settings both I2G stages share: the base model, the adapter, neighbour attention and text encoding."""

    preset: str = field(default="sdxl", metadata={"help": "illustration preset (sdxl, tiny, ...)"})
    weights: str | None = field(default=None, metadata={"help": "local copy of the preset's base model"})
    adapter_name: str = ADAPTER_NAME
    lora_alpha: float | None = field(default=None, metadata={"help": "LoRA alpha (default: rank)"})
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    init_lora: str | None = field(default=None, metadata={"help": "start from this LoRA (file or folder)"})
    neighbour_weight: float = 1.0
    resolution: int | None = field(default=None, metadata={"help": "image side (default: the preset's)"})
    clause_backend: str = field(default="auto", metadata={"help": "auto, benepar, spacy or punctuation"})
    gradient_checkpointing: bool = False

    def validate(self) -> None:
        super().validate()
        from ..presets import ILLUSTRATION_PRESETS

        if self.preset not in ILLUSTRATION_PRESETS:
            raise TrainingConfigError(
                f"preset must be one of {', '.join(ILLUSTRATION_PRESETS)}, got {self.preset!r}."
            )
        if not (0 <= self.neighbour_weight <= 10):
            raise TrainingConfigError(f"neighbour_weight must be between 0 and 10, got {self.neighbour_weight}.")
        if self.resolution is not None and (self.resolution < 8 or self.resolution % 8):
            raise TrainingConfigError(f"resolution must be a multiple of 8 pixels, got {self.resolution}.")
        if not self.lora_targets:
            raise TrainingConfigError("lora_targets must name at least one module.")
        for name, path in (("init_lora", self.init_lora), ("weights", self.weights)):
            if path and not Path(path).exists():
                raise TrainingConfigError(f"{name} names {path}, which does not exist.")


@dataclass
class PairwiseConfig(I2GConfig):
    """I2G pairwise LoRA fine-tuning on adjacent step pairs of instructional data."""

    data: str | None = field(default=None, metadata={"help": "recipes file (format: --data-format)"})
    data_format: str = field(default="json", metadata={"help": ", ".join(DATA_FORMATS)})
    images: str | None = field(default=None, metadata={
        "help": "folder of step images (with --videos-root: the key-frame cache; default <out>/step_frames)"})
    annotations: str | None = field(default=None, metadata={
        "help": "HT-Step: annotations.json (step segments in videos); CaptainCook4D: activity_step_description.csv"})
    videos_root: str | None = field(default=None, metadata={
        "help": "folder of HT-Step/CaptainCook4D videos: extract each step's key frame into --images once"})
    frame: str = field(default="last", metadata={"help": "key frame of a step's segment: last or middle"})
    extract_only: bool = field(default=False, metadata={"help": "extract the key frames, then stop (no training)"})
    uncond_prob: float = field(default=0.1, metadata={"help": "conditioning dropout probability (per pair)"})
    lr: float = 1e-4
    rank: int = 16

    def validate(self) -> None:
        super().validate()
        if not self.data:
            raise TrainingConfigError("Give the training recipes with --data FILE.")
        if self.data_format not in DATA_FORMATS:
            raise TrainingConfigError(
                f"data_format must be one of {', '.join(DATA_FORMATS)}, got {self.data_format!r}."
            )
        if not Path(self.data).is_file():
            raise DataError(f"The recipes file {self.data} does not exist.")
        if self.annotations is not None and not Path(self.annotations).is_file():
            raise DataError(f"The annotations file {self.annotations} does not exist.")
        if self.videos_root is not None and not Path(self.videos_root).is_dir():
            raise DataError(f"The videos folder {self.videos_root} does not exist.")
        if self.images and not self.videos_root and not Path(self.images).is_dir():
            raise DataError(f"The images folder {self.images} does not exist.")
        if self.frame not in KEY_FRAMES:
            raise TrainingConfigError(f"frame must be one of {', '.join(KEY_FRAMES)}, got {self.frame!r}.")
        if self.extract_only and not self.videos_root:
            raise TrainingConfigError("extract_only needs --videos-root to extract key frames from.")
        if not 0 <= self.uncond_prob < 1:
            raise TrainingConfigError(f"uncond_prob must be in [0, 1), got {self.uncond_prob}.")


@dataclass
class RewardConfig(I2GConfig):
    """I2G reward fine-tuning through sampling (DRaFT-K / AlignProp) with a differentiable alignment reward."""

    prompts: str | None = field(default=None, metadata={"help": "JSON of recipes: [{goal, steps: [...]}, ...]"})
    goals: str | None = field(default=None, metadata={"help": "text file, one goal per line; the planner writes steps"})
    planned_steps: int = 6
    reward_model: str = field(default="openai/clip-vit-large-patch14", metadata={"help": "CLIP hub id/folder or tiny"})
    text_template: str = field(default="{goal}. {step}", metadata={"help": "reward text from {goal} and {step}"})
    truncation_k: int = field(default=1, metadata={"help": "K: denoising steps the gradient flows through"})
    num_inference_steps: int = 20
    guidance_scale: float = 5.0
    group_size: int = field(default=2, metadata={"help": "consecutive steps sampled together"})
    lr: float = 1e-4
    rank: int = 16
    gradient_checkpointing: bool = True

    def validate(self) -> None:
        super().validate()
        if bool(self.prompts) == bool(self.goals):
            raise TrainingConfigError("Give the prompts with exactly one of --prompts FILE.json or --goals FILE.txt.")
        source = self.prompts or self.goals
        if not Path(source).is_file():
            raise DataError(f"The prompts file {source} does not exist.")
        if not 1 <= self.truncation_k <= self.num_inference_steps:
            raise TrainingConfigError(
                f"truncation_k must be between 1 and num_inference_steps ({self.num_inference_steps}), "
                f"got {self.truncation_k}."
            )
        if not 1 <= self.group_size <= 16:
            raise TrainingConfigError(f"group_size must be between 1 and 16, got {self.group_size}.")
        if self.guidance_scale < 0 or self.num_inference_steps < 1:
            raise TrainingConfigError("guidance_scale must be >= 0 and num_inference_steps >= 1.")
        try:
            self.text_template.format(goal="g", step="s")
        except (KeyError, IndexError, ValueError) as exc:
            raise TrainingConfigError(
                f"text_template may only use {{goal}} and {{step}}, got {self.text_template!r}."
            ) from exc


# ====================================================================== data
@dataclass
class StepPair:
    """Two adjacent steps (i, i+1) of one recipe: the pairwise unit I2G trains on."""

    goal: str
    texts: tuple[str, str]
    clauses: tuple[list[str], list[str]]
    images: tuple[Path, Path]
    recipe: str


@dataclass
class StepWindow:
    """``group_size`` consecutive steps of one recipe, sampled together in reward fine-tuning."""

    goal: str
    steps: list[str]
    clauses: list[list[str]]


def _splitter(backend: str):
    from ..text.clauses import ClauseSplitter

    try:
        return ClauseSplitter(backend=backend)
    except RuntimeError as exc:
        raise TrainingConfigError(
            f"The clause backend {backend!r} is not installed here; use auto or punctuation."
        ) from exc


def _read_json_recipes(path: Path, images: Path | None) -> list[Recipe]:
    """Our own simple layout: ``[{"goal": ..., "steps": [{"text": ..., "image": "rel/path.png"}, ...]}, ...]``.

    A step may also be a plain string (no image: the images-folder convention below applies).
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"The recipes file {path} is not readable JSON ({type(exc).__name__}).") from exc
    raw = raw.get("recipes", raw) if isinstance(raw, dict) else raw
    if not isinstance(raw, list):
        raise DataError(f"The recipes file {path} must hold a list of recipes.")
    recipes = []
    for index, item in enumerate(raw):
        if not (isinstance(item, dict) and isinstance(item.get("goal"), str) and isinstance(item.get("steps"), list)):
            raise DataError(f"Recipe {index + 1} in {path} needs a goal text and a list of steps.")
        steps = []
        for step in item["steps"]:
            if isinstance(step, str):
                steps.append(Step(step))
            elif isinstance(step, dict) and isinstance(step.get("text"), str):
                media = step.get("image")
                steps.append(Step(step["text"], media=Path(media) if media else None))
            else:
                raise DataError(f"A step of recipe {index + 1} in {path} is neither a text nor {{text, image}}.")
        recipes.append(Recipe(item["goal"], steps, "json", str(item.get("id", index))))
    return recipes


def load_recipes(
    path: str | Path, data_format: str, images: str | Path | None = None, annotations: str | Path | None = None
) -> list[Recipe]:
    """Recipes from any supported source, as the data readers' :class:`Recipe` records.

    ``annotations`` is the source's second file: HT-Step's ``annotations.json`` (without it the recipes are the
    taxonomy's articles, with no video segments) or CaptainCook4D's ``activity_step_description.csv`` (the goal
    texts; without it recordings have no goal and give no training pairs).
    """
    path = Path(path)
    images = Path(images) if images else None
    if data_format == "json":
        return _read_json_recipes(path, images)
    from .. import data as readers

    try:
        if data_format == "wikihow":
            result = readers.read_wikihow(path, image_root=images)
        elif data_format == "htstep":
            result = readers.read_htstep(path, annotations=annotations)
        elif data_format == "captaincook4d":
            result = readers.read_captaincook4d(path, step_descriptions=annotations)
        else:
            raise TrainingConfigError(f"data_format must be one of {', '.join(DATA_FORMATS)}, got {data_format!r}.")
    except InvalidInputError as exc:
        raise DataError(str(exc)) from exc
    for problem in result.problems[:5]:
        logger.warning("Skipped %s", problem)
    return list(result)


def _step_image(recipe: Recipe, index: int, step: Step, images: Path | None) -> Path | None:
    """A step's image: its own ``media`` if that is an image file, else ``images/<recipe id>/<index>.<ext>``.

    The folder convention serves video datasets (HT-Step, CaptainCook4D): one key frame per step under the
    recipe's id with the 0-based step number, which ``videos_root`` fills (:func:`extract_pairwise_frames`).
    """
    if step.media is not None:
        media = Path(step.media)
        if not media.is_absolute() and images is not None:
            media = images / media
        if media.suffix.lower() in IMAGE_SUFFIXES and media.is_file():
            return media
    if images is not None:
        for suffix in IMAGE_SUFFIXES:
            candidate = images / recipe.id / f"{index}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def frame_cache(config: PairwiseConfig) -> Path:
    """Where key frames extracted from videos go: ``--images`` if given, else ``<out>/step_frames``."""
    return Path(config.images) if config.images else Path(config.output_dir) / "step_frames"


def extract_pairwise_frames(config: PairwiseConfig, recipes: Sequence[Recipe] | None = None) -> FrameExtraction:
    """Extract (once) the key frame of every step of the config's recipes from ``videos_root`` into the cache.

    Steps that cannot be used are logged one by one (file and step) and counted; if no step at all has a frame
    the run stops with one sentence, before any model is built.
    """
    if not config.videos_root:
        raise TrainingConfigError("Give the folder of the recipes' videos with --videos-root DIR.")
    cache = frame_cache(config)
    if recipes is None:
        recipes = load_recipes(config.data, config.data_format, cache, config.annotations)
    result = extract_step_frames(recipes, config.videos_root, cache, frame=config.frame)
    for problem in result.problems:
        logger.warning("No key frame: %s", problem)
    if result.problems:
        logger.warning("%d of %d steps have no key frame and are left out.", len(result.problems),
                       len(result.problems) + result.usable)
    if not result.usable:
        steps = len(result.problems)
        first = result.problems[0] if result.problems else None
        raise DataError(
            f"None of the {steps} steps in {config.data} has a usable video under {config.videos_root}"
            + (f" (first: {first})" if first else "") + "; check --videos-root and --data-format."
        )
    logger.info("Key frames in %s: %d extracted, %d already cached.", cache, result.written, result.reused)
    return result


def load_step_pairs(config: PairwiseConfig) -> list[StepPair]:
    """Every adjacent pair (i, i+1) whose two steps both have an image, with clauses split once up front.

    With ``videos_root`` the images are the steps' key frames, extracted into the cache first.
    """
    images = frame_cache(config) if config.videos_root else Path(config.images) if config.images else None
    recipes = load_recipes(config.data, config.data_format, images, config.annotations)
    if config.videos_root:
        extract_pairwise_frames(config, recipes)
    splitter = _splitter(config.clause_backend)
    pairs, skipped = [], 0
    for recipe in recipes:
        if not recipe.goal:
            skipped += max(len(recipe.steps) - 1, 0)
            continue
        paths = [_step_image(recipe, i, step, images) for i, step in enumerate(recipe.steps)]
        for i in range(len(recipe.steps) - 1):
            first, second = recipe.steps[i], recipe.steps[i + 1]
            if paths[i] is None or paths[i + 1] is None:
                skipped += 1
                continue
            pairs.append(StepPair(
                recipe.goal, (first.text, second.text),
                (splitter(first.text) or [first.text], splitter(second.text) or [second.text]),
                (paths[i], paths[i + 1]), recipe.id,
            ))
    if skipped:
        logger.warning("%d adjacent step pairs have no image for one of their steps and are left out.", skipped)
    if len(pairs) < config.batch_size:
        raise DataError(
            f"{config.data} gives {len(pairs)} adjacent step pairs with images, fewer than one batch of "
            f"{config.batch_size}; check --images and --data-format."
        )
    return pairs


def _read_prompt_recipes(path: Path) -> list[tuple[str, list[str]]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"The prompts file {path} is not readable JSON ({type(exc).__name__}).") from exc
    if isinstance(raw, dict):
        raw = [raw] if "goal" in raw else raw.get("recipes", raw)
    if not isinstance(raw, list):
        raise DataError(f"The prompts file {path} must hold a list of {{goal, steps}} recipes.")
    recipes = []
    for index, item in enumerate(raw):
        steps = item.get("steps") if isinstance(item, dict) else None
        if not isinstance(item.get("goal") if isinstance(item, dict) else None, str) or not isinstance(steps, list):
            raise DataError(f"Recipe {index + 1} in {path} needs a goal text and a list of step texts.")
        steps = [s["text"] if isinstance(s, dict) else s for s in steps]
        if not all(isinstance(s, str) and s.strip() for s in steps):
            raise DataError(f"Recipe {index + 1} in {path} has a step that is not a text.")
        recipes.append((item["goal"], steps))
    return recipes


def _planned_recipes(config: RewardConfig) -> list[tuple[str, list[str]]]:
    """(g, s) drawn from the planner LLM, as I2G samples them (the LLM stays frozen)."""
    goals = [line.strip() for line in Path(config.goals).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not goals:
        raise DataError(f"The goals file {config.goals} has no goals.")
    from ..text.planner import StepPlanner

    planner = StepPlanner.default()
    return [(goal, planner.plan(goal, max_steps=config.planned_steps, seed=config.seed + i))
            for i, goal in enumerate(goals)]


def load_prompt_windows(config: RewardConfig) -> list[StepWindow]:
    """Every window of ``group_size`` consecutive steps of the prompt recipes, clauses split once."""
    recipes = _read_prompt_recipes(Path(config.prompts)) if config.prompts else _planned_recipes(config)
    splitter = _splitter(config.clause_backend)
    windows = []
    for goal, steps in recipes:
        for start in range(len(steps) - config.group_size + 1):
            chosen = steps[start : start + config.group_size]
            windows.append(StepWindow(goal, chosen, [splitter(s) or [s] for s in chosen]))
    if len(windows) < config.batch_size:
        raise DataError(
            f"The prompts give {len(windows)} windows of {config.group_size} consecutive steps, fewer than one "
            f"batch of {config.batch_size}."
        )
    return windows


class PairImages(torch.utils.data.Dataset):
    """Step pairs -> SDXL training tensors: resize the shorter side, centre crop, [-1, 1], plus SDXL's size ids."""

    def __init__(self, pairs: Sequence[StepPair], resolution: int) -> None:
        self.pairs, self.resolution = list(pairs), resolution

    def __len__(self) -> int:
        return len(self.pairs)

    def _image(self, path: Path) -> tuple[torch.Tensor, list[int]]:
        try:
            with PIL.Image.open(path) as image:
                image = image.convert("RGB")
        except (OSError, ValueError) as exc:
            raise DataError(f"The step image {path} cannot be read as an image.") from exc
        width, height = image.size
        size = self.resolution
        scale = size / min(width, height)
        new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
        image = image.resize((new_w, new_h), PIL.Image.Resampling.BICUBIC)
        top, left = (new_h - size) // 2, (new_w - size) // 2
        image = image.crop((left, top, left + size, top + size))
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)
        return pixels, [height, width, top, left, size, size]  # SDXL: original size, crop top-left, target size

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        (a, ids_a), (b, ids_b) = self._image(pair.images[0]), self._image(pair.images[1])
        return {"pixels": torch.stack([a, b]), "time_ids": torch.tensor([ids_a, ids_b], dtype=torch.float32),
                "goal": pair.goal, "clauses": list(pair.clauses)}


def collate_pairs(items: list[dict]) -> dict:
    return {
        "pixels": torch.cat([item["pixels"] for item in items]),  # (2B, 3, R, R): pair k = items 2k, 2k+1
        "time_ids": torch.cat([item["time_ids"] for item in items]),
        "goals": [item["goal"] for item in items],
        "clauses": [item["clauses"] for item in items],
    }


# ====================================================================== conditioning
def encode_groups(
    components: dict, goals: Sequence[str], clauses: Sequence[Sequence[Sequence[str]]], dropped: Sequence[bool],
    device: torch.device, dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Encode groups (one goal, n steps' clauses each) into one batch: (states, pooled, encoder mask).

    Groups with different clause counts are zero-padded to the longest and masked. A ``dropped`` group gets
    SDXL's unconditional embedding (zeros) for the classifier-free-guidance dropout.
    """
    with torch.no_grad():
        parts = [
            encode_instruction(goal, group, tokenizer=components["tokenizer"], tokenizer_2=components["tokenizer_2"],
                               text_encoder=components["text_encoder"], text_encoder_2=components["text_encoder_2"],
                               guidance=False)
            for goal, group in zip(goals, clauses)
        ]
    length = max(p.prompt_embeds.shape[1] for p in parts)
    states, pooled, masks = [], [], []
    for part, drop in zip(parts, dropped):
        n, tokens = part.prompt_embeds.shape[:2]
        mask = part.attention_mask if part.attention_mask is not None else torch.ones(n, tokens, dtype=torch.bool)
        embeds, pool = part.prompt_embeds, part.pooled_prompt_embeds
        if drop:
            embeds, pool, mask = torch.zeros_like(embeds), torch.zeros_like(pool), torch.ones_like(mask)
        states.append(F.pad(embeds, (0, 0, 0, length - tokens)))
        masks.append(F.pad(mask.to(embeds.device), (0, length - tokens), value=False))
        pooled.append(pool)
    mask = torch.cat(masks)
    return (torch.cat(states).to(device, dtype), torch.cat(pooled).to(device, dtype),
            None if bool(mask.all()) else mask.to(device))


# ====================================================================== LoRA
def add_i2g_lora(unet: torch.nn.Module, config: I2GConfig) -> None:
    """The run's adapter (:func:`showme_i2g.i2g.lora.add_i2g_lora` with the config's settings)."""
    try:
        lora.add_i2g_lora(unet, rank=config.rank, lora_alpha=config.lora_alpha, targets=config.lora_targets,
                          adapter_name=config.adapter_name, init_from=config.init_lora)
    except InvalidInputError as exc:
        raise TrainingConfigError(f"init_lora: {exc}") from exc


# ====================================================================== shared set-up
@dataclass
class I2GParts:
    components: dict
    unet: torch.nn.Module  # unwrapped, with the adapter
    resolution: int


def _build_parts(config: I2GConfig, accelerator) -> I2GParts:
    from .pipeline import IllustrationPipeline

    pipe = IllustrationPipeline.from_preset(config.preset, device="cpu", weights=config.weights)
    resolution = config.resolution or pipe.preset.size
    components = dict(pipe.components)
    dtype = weight_dtype(accelerator)
    for name in ("vae", "text_encoder", "text_encoder_2"):
        components[name].requires_grad_(False).eval().to(accelerator.device)
    if dtype != torch.float32:  # an fp16 SDXL VAE overflows; keep it in float32 as diffusers' scripts do
        components["text_encoder"].to(dtype=dtype)
        components["text_encoder_2"].to(dtype=dtype)
    unet = components["unet"]
    add_i2g_lora(unet, config)
    unet.to(accelerator.device)
    if dtype != torch.float32:
        from diffusers.training_utils import cast_training_params

        unet.to(dtype=dtype)
        cast_training_params(unet, dtype=torch.float32)  # LoRA weights stay float32
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    return I2GParts(components, unet, resolution)


def _save_final(result: TrainResult, accelerator, config: I2GConfig, kind: str) -> Path:
    out = Path(config.output_dir) / LORA_DIR
    if accelerator.is_main_process:
        save_i2g_lora(result.model, out, config.adapter_name)
        (out / "adapter.json").write_text(json.dumps({
            "kind": kind, "adapter_name": config.adapter_name, "rank": config.rank,
            "lora_alpha": config.lora_alpha or config.rank, "targets": config.lora_targets, "preset": config.preset,
            "steps": result.step, "neighbour_weight": config.neighbour_weight,
        }, indent=1), encoding="utf-8")
    accelerator.wait_for_everyone()
    return out / LORA_FILENAME


# ====================================================================== pairwise
def pairwise_loss(batch: dict, ctx: StepContext, parts: I2GParts, noise_scheduler, config: PairwiseConfig) -> dict:
    """The noise-prediction loss on one batch of step pairs (each pair one neighbour-attention group)."""
    g, device = ctx.generator, ctx.device
    vae = parts.components["vae"]
    pairs = len(batch["goals"])
    dropped = (torch.rand(pairs, generator=g) < config.uncond_prob).tolist()
    states, pooled, mask = encode_groups(parts.components, batch["goals"], batch["clauses"], dropped, device,
                                         parts.unet.dtype)
    with torch.no_grad():
        posterior = vae.encode(batch["pixels"].to(device, vae.dtype)).latent_dist
        latents = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=g).to(device, vae.dtype)
        latents = (latents * vae.config.scaling_factor).float()
    noise = torch.randn(latents.shape, generator=g).to(device)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (pairs,), generator=g)
    timesteps = timesteps.repeat_interleave(2).to(device)  # both images of a pair share the noise level
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    prediction_type = noise_scheduler.config.prediction_type
    target = noise if prediction_type == "epsilon" else noise_scheduler.get_velocity(latents, noise, timesteps)
    prediction = ctx.model(
        noisy.to(parts.unet.dtype), timesteps, encoder_hidden_states=states, encoder_attention_mask=mask,
        added_cond_kwargs={"text_embeds": pooled, "time_ids": batch["time_ids"].to(device, parts.unet.dtype)},
        return_dict=False,
    )[0]
    return {"loss": F.mse_loss(prediction.float(), target.float()), "dropped": sum(dropped) / pairs}


def train_pairwise(config: PairwiseConfig, **train_kwargs) -> tuple[TrainResult, Path]:
    """Run pairwise LoRA fine-tuning; returns the result and the saved LoRA file."""
    config.validate()
    pairs = load_step_pairs(config)  # data problems surface before any model is built
    accelerator = create_accelerator(config)
    parts = _build_parts(config, accelerator)
    apply_neighbour_attention(parts.unet, num_steps=2, neighbour_weight=config.neighbour_weight)
    from diffusers import DDPMScheduler

    noise_scheduler = DDPMScheduler.from_config(parts.components["scheduler"].config)
    data = ResumableBatches(PairImages(pairs, parts.resolution), config.batch_size, seed=config.seed,
                            collate=collate_pairs, num_shards=accelerator.num_processes,
                            shard=accelerator.process_index)
    result = train(config, accelerator, parts.unet, lambda b, c: pairwise_loss(b, c, parts, noise_scheduler, config),
                   data, run_name="i2g_pairwise", **train_kwargs)
    return result, _save_final(result, accelerator, config, "pairwise")


# ====================================================================== reward
def draft_sample(
    unet, scheduler, latents: torch.Tensor, states: torch.Tensor, pooled: torch.Tensor, mask: torch.Tensor | None,
    time_ids: torch.Tensor, *, num_inference_steps: int, truncation_k: int, guidance_scale: float,
) -> torch.Tensor:
    """Sample from noise with gradients only through the last ``truncation_k`` steps (DRaFT-K).

    ``states``/``pooled``/``mask``/``time_ids`` hold the CFG halves stacked [uncond, cond] when
    ``guidance_scale > 1``. The latent entering step T-K is detached, so no gradient reaches earlier steps.
    ``scheduler`` is a fresh instance (schedulers keep a step index).
    """
    device = latents.device
    scheduler.set_timesteps(num_inference_steps, device=device)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(0)
    latents = latents * scheduler.init_noise_sigma
    first_with_grad = len(scheduler.timesteps) - truncation_k

    def predict(model_input: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return unet(model_input.to(states.dtype), t, encoder_hidden_states=states, encoder_attention_mask=mask,
                    added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}, return_dict=False)[0]

    for i, t in enumerate(scheduler.timesteps):
        if i == first_with_grad:
            latents = latents.detach()
        with torch.set_grad_enabled(i >= first_with_grad and torch.is_grad_enabled()):
            latents = guided_step(predict, scheduler, latents, t, guidance_scale)
    return latents


def reward_loss(batch: list[StepWindow], ctx: StepContext, parts: I2GParts, reward, config: RewardConfig) -> dict:
    """Sample each window with DRaFT-K, decode, score with the alignment reward; loss = -mean reward."""
    device, dtype, g = ctx.device, parts.unet.dtype, ctx.generator
    goals = [w.goal for w in batch]
    states, pooled, mask = encode_groups(parts.components, goals, [w.clauses for w in batch], [False] * len(batch),
                                         device, dtype)
    count = states.shape[0]
    guidance = config.guidance_scale > 1.0
    if guidance:  # SDXL's zero unconditional embedding; the halves are separate groups of group_size
        states, pooled, mask = guidance_batch(states, pooled, mask, torch.zeros_like(states), torch.zeros_like(pooled))
    size = parts.resolution
    time_ids = sdxl_time_ids(size, size, states.shape[0]).to(device, dtype)
    vae = parts.components["vae"]
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    shape = (count, parts.unet.config.in_channels, size // factor, size // factor)
    noise = torch.randn(shape, generator=g).to(device)
    scheduler = parts.components["scheduler"].__class__.from_config(parts.components["scheduler"].config)
    latents = draft_sample(ctx.model, scheduler, noise, states, pooled, mask, time_ids,
                           num_inference_steps=config.num_inference_steps, truncation_k=config.truncation_k,
                           guidance_scale=config.guidance_scale)
    images = decode_latents(vae, latents)  # one image per VAE call, as the pipeline decodes
    texts = [config.text_template.format(goal=w.goal, step=step) for w in batch for step in w.steps]
    scores = reward(images.float(), texts)
    return {"loss": -scores.mean(), "reward": scores.detach().mean()}


def train_reward(config: RewardConfig, **train_kwargs) -> tuple[TrainResult, Path]:
    """Run DRaFT-K reward fine-tuning of the I2G LoRA; returns the result and the saved LoRA file."""
    config.validate()
    windows = load_prompt_windows(config)
    from .reward import build_alignment_reward

    reward = build_alignment_reward(config.reward_model)  # a missing reward model is reported before training
    accelerator = create_accelerator(config)
    parts = _build_parts(config, accelerator)
    reward.to(accelerator.device)
    if config.gradient_checkpointing:
        parts.components["vae"].enable_gradient_checkpointing()
    apply_neighbour_attention(parts.unet, num_steps=config.group_size, neighbour_weight=config.neighbour_weight)
    data = ResumableBatches(windows, config.batch_size, seed=config.seed, num_shards=accelerator.num_processes,
                            shard=accelerator.process_index)
    result = train(config, accelerator, parts.unet, lambda b, c: reward_loss(b, c, parts, reward, config), data,
                   run_name="i2g_reward", **train_kwargs)
    return result, _save_final(result, accelerator, config, "reward")

