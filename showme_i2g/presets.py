"""Named presets: which weights a pipeline loads, and the sampling settings that suit them.

Real presets name public weights on the Hugging Face Hub and load through ``from_pretrained`` /
``hf_hub_download``, so the hub cache, ``HF_HOME``, ``HF_HUB_OFFLINE`` and local folders behave as users expect.
Every real preset has a tiny twin built in code (same architecture and code path, random weights) for tests and CI.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import InvalidInputError, hub_download_command

PresetT = TypeVar("PresetT")

SDXL_BASE = "stabilityai/stable-diffusion-xl-base-1.0"
SDXL_FILES = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/",
    "text_encoder_2/",
    "tokenizer/",
    "tokenizer_2/",
    "unet/",
    "vae/",
)


# What ``from_pretrained`` reads from an SDXL repo: configs and tokenizers, and four weight files whose name carries
# the variant (``{}``: "" or ".fp16").
SDXL_CONFIG_FILES = (
    "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json", "text_encoder_2/config.json",
    "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer_2/vocab.json", "tokenizer_2/merges.txt",
    "unet/config.json", "vae/config.json",
)
SDXL_WEIGHT_FILES = (
    "text_encoder/model{}.safetensors", "text_encoder_2/model{}.safetensors",
    "unet/diffusion_pytorch_model{}.safetensors", "vae/diffusion_pytorch_model{}.safetensors",
)


def fp16_first(on_gpu: bool) -> tuple[str | None, ...]:
    """The diffusers variants loading tries, in order: the repo's fp16 files first on a GPU (half the download
    and memory), then the full-precision ones; only those on a CPU, where half precision is slow."""
    return ("fp16", None) if on_gpu else (None,)


@dataclass(frozen=True)
class IllustrationPreset:
    """Where an :class:`~showme_i2g.i2g.pipeline.IllustrationPipeline` gets its weights, and its default settings.

    ``base`` is a hub id (or ``None`` for the tiny model built in code); ``lora`` an optional (hub id, file name)
    fused into the UNet after loading; ``scheduler_overrides`` are applied to the base scheduler's config.
    """

    name: str
    description: str
    base: str | None
    num_inference_steps: int
    guidance_scale: float
    size: int
    lora: tuple[str, str] | None = None
    scheduler_overrides: dict = field(default_factory=dict)
    files: tuple[str, ...] = ()
    fp16_variant_on_gpu: bool = True
    vae: str | None = None
    """An optional hub id (or folder) of a VAE that replaces the base's, e.g. ``madebyollin/sdxl-vae-fp16-fix``:
    an fp16-safe SDXL VAE (``force_upcast: false``) decodes in fp16 instead of being upcast to float32."""

    def weight_variants(self, on_gpu: bool) -> tuple[str | None, ...]:
        """The diffusers variants loading tries, in order (see :func:`fp16_first`)."""
        return fp16_first(on_gpu and self.fp16_variant_on_gpu)

    def repo_files(self, variant: str | None) -> tuple[str, ...]:
        """Every file of the base repo that loading reads for ``variant`` (what ``--download`` fetches and the app
        looks for in the cache)."""
        suffix = f".{variant}" if variant else ""
        return SDXL_CONFIG_FILES + tuple(name.format(suffix) for name in SDXL_WEIGHT_FILES)

    def missing_weights_message(self, source: str) -> str:
        """One sentence: which preset, which files, how to get them."""
        files = ", ".join(self.files)
        download = hub_download_command(self.base, "--include", "'*.json'", "'*.txt'", "'*.fp16.safetensors'")
        message = (
            f"The '{self.name}' preset needs the weights of {self.base} ({files}) but they are not in {source}; "
            f"on a machine with internet run `{download}`"
        )
        if self.lora:
            message += f" and `{hub_download_command(*self.lora)}`"
        return message + ", or pass --weights with a local copy of the folder."


ILLUSTRATION_PRESETS: dict[str, IllustrationPreset] = {
    preset.name: preset
    for preset in (
        IllustrationPreset(
            name="sdxl",
            description="Stable Diffusion XL base 1.0 at 1024 px, 30 Euler steps: the paper's backbone.",
            base=SDXL_BASE,
            num_inference_steps=30,
            guidance_scale=7.5,
            size=1024,
            files=SDXL_FILES,
        ),
        # SDXL-Lightning's 4-step LoRA rather than LCM-LoRA or SDXL-Turbo: at 1024 px and 4 steps it keeps SDXL
        # base quality best (Turbo is trained at 512 px; LCM-LoRA blurs at 4 steps), and as a LoRA on the *same*
        # base UNet it reuses the `sdxl` download and leaves the self-attention layers where neighbour attention
        # sits untouched in structure. Its distillation bakes guidance in, so it runs without CFG (half the batch).
        IllustrationPreset(
            name="sdxl-lightning",
            description="SDXL base + ByteDance SDXL-Lightning 4-step LoRA: interactive speed, no CFG.",
            base=SDXL_BASE,
            num_inference_steps=4,
            guidance_scale=0.0,
            size=1024,
            lora=("ByteDance/SDXL-Lightning", "sdxl_lightning_4step_lora.safetensors"),
            scheduler_overrides={"timestep_spacing": "trailing"},
            files=SDXL_FILES,
        ),
        IllustrationPreset(
            name="tiny",
            description="The SDXL architecture at ~4.7 M parameters, random weights, built in code: for tests.",
            base=None,
            num_inference_steps=4,
            guidance_scale=5.0,
            size=128,
        ),
    )
}


def _look_up(presets: Mapping[str, PresetT], name: str) -> PresetT:
    """``presets[name]``, or one sentence naming the known ones (the message of every preset family)."""
    try:
        return presets[name]
    except KeyError:
        raise InvalidInputError(f"Unknown preset {name!r}; choose one of: {', '.join(sorted(presets))}.") from None


def get_illustration_preset(name: str) -> IllustrationPreset:
    """The preset called ``name``, or a clear error listing the known ones."""
    return _look_up(ILLUSTRATION_PRESETS, name)


# ---------------------------------------------------------------------------------------------------------------
# ShowMe: photo + instruction -> edited photo (image mode) or short video (video mode), on DynamiCrafter.

SHOWME_LORA_SOURCE = "https://drive.google.com/drive/folders/1SKr5ykRcSbf1TJCQnyM6C6i9qGLjgIx9"


SHOWME_ADAPTERS = ("edit", "animate")  # ShowMe's two named LoRA adapters (showme.adapters builds them)


@dataclass(frozen=True)
class ShowMePreset:
    """Where a :class:`~showme_i2g.showme.pipeline.ShowMePipeline` gets its weights, and its sampling defaults.

    ``checkpoint`` is (hub id, file) of a DynamiCrafter release, or ``None`` for the tiny model built in code;
    ``lora_files`` names the ShowMe authors' LoRA files (published on Google Drive, not the hub, so they are read
    from a local folder: ``--lora-dir``). Defaults follow the papers: DDIM 50, CFG 7.5, eta 1.0, fs from the config.
    """

    name: str
    description: str
    config: str
    checkpoint: tuple[str, str] | None
    lora_files: tuple[str, ...] = ()
    num_inference_steps: int = 50
    guidance_scale: float = 7.5
    eta: float = 1.0

    def reads_release_loras(self, trained: Collection[str] = ()) -> bool:
        """Whether loading reads the authors' LoRA files: a preset that names them does, unless every ShowMe adapter
        (``edit`` and ``animate``) is given as a trained file of our own; then they are never read, nor needed."""
        return bool(self.lora_files) and not set(SHOWME_ADAPTERS) <= set(trained)

    def missing_weights_message(self, what: str) -> str:
        if what == "lora":
            files = " and ".join(self.lora_files)
            return (
                f"The '{self.name}' preset needs the ShowMe LoRA files {files}; download the folder for your data "
                f"set (epic100, ssv2 or ego4d) from {SHOWME_LORA_SOURCE} and pass it with --lora-dir."
            )
        repo, filename = self.checkpoint
        return (
            f"The '{self.name}' preset needs {filename} from {repo} but it is not in the Hugging Face cache and "
            f"the hub could not be reached; on a machine with internet run "
            f"`{hub_download_command(repo, filename)}`, or pass --weights with the path of a local copy."
        )


SHOWME_PRESETS: dict[str, ShowMePreset] = {
    preset.name: preset
    for preset in (
        ShowMePreset(
            name="showme",
            description="DynamiCrafter 256 + the ShowMe authors' edit (image) and animate (video) LoRAs.",
            config="dynamicrafter-256",
            checkpoint=("Doubiiu/DynamiCrafter", "model.ckpt"),
            lora_files=("lora_image.pth", "lora_video.pth"),
        ),
        ShowMePreset(
            name="dynamicrafter-256",
            description="DynamiCrafter 256x256, 16 frames, no ShowMe adapters (plain image-to-video).",
            config="dynamicrafter-256",
            checkpoint=("Doubiiu/DynamiCrafter", "model.ckpt"),
        ),
        ShowMePreset(
            name="dynamicrafter-512",
            description="DynamiCrafter 320x512, 16 frames, no ShowMe adapters.",
            config="dynamicrafter-512",
            checkpoint=("Doubiiu/DynamiCrafter_512", "model.ckpt"),
        ),
        ShowMePreset(
            name="dynamicrafter-1024",
            description="DynamiCrafter 576x1024, 16 frames, no ShowMe adapters.",
            config="dynamicrafter-1024",
            checkpoint=("Doubiiu/DynamiCrafter_1024", "model.ckpt"),
        ),
        ShowMePreset(
            name="tiny",
            description="The DynamiCrafter architecture at ~6 M parameters with ShowMe adapters, random weights.",
            config="tiny",
            checkpoint=None,
            num_inference_steps=4,
        ),
    )
}


def get_showme_preset(name: str) -> ShowMePreset:
    """The ShowMe preset called ``name``, or a clear error listing the known ones."""
    return _look_up(SHOWME_PRESETS, name)


# ---------------------------------------------------------------------------------------------------------------
# Baselines of the papers' tables, each through the matching diffusers pipeline (``python -m eval.generate``).

SD15_BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # the maintained mirror of runwayml/stable-diffusion-v1-5
SD_TURBO = "stabilityai/sd-turbo"
INSTRUCT_PIX2PIX = "timbrooks/instruct-pix2pix"
_SD_FILES = ("model_index.json", "scheduler/", "text_encoder/", "tokenizer/", "unet/", "vae/")


@dataclass(frozen=True)
class BaselinePreset:
    """A baseline model of I2G's Table 1 or ShowMe's Table 1: a diffusers pipeline class, its weights, its defaults.

    ``pipeline`` names the diffusers class (``StableDiffusionPipeline``, ``StableDiffusionXLPipeline``,
    ``StableDiffusionInstructPix2PixPipeline``); ``base`` is a hub id, or ``None`` for the tiny twin built in code
    (:mod:`showme_i2g.baselines`) with the same classes and the same code path. ``architecture`` tells the tiny
    builder which network to mirror. ``image_guidance_scale`` is InstructPix2Pix's second guidance.
    """

    name: str
    description: str
    pipeline: str
    architecture: str
    base: str | None
    num_inference_steps: int
    guidance_scale: float
    size: int
    image_guidance_scale: float | None = None
    files: tuple[str, ...] = ()

    def weight_variants(self, on_gpu: bool) -> tuple[str | None, ...]:
        """The diffusers variants loading tries, in order (see :func:`fp16_first`)."""
        return fp16_first(on_gpu)

    def missing_weights_message(self, source: str) -> str:
        """One sentence: which preset, which files, how to get them."""
        command = hub_download_command(self.base, "--include", "'*.json'", "'*.txt'", "'*.safetensors'")
        return (
            f"The '{self.name}' baseline needs the weights of {self.base} ({', '.join(self.files)}) but they are not "
            f"in {source}; on a machine with internet run `{command}`, or pass --weights with a local copy of the "
            "folder."
        )


BASELINE_PRESETS: dict[str, BaselinePreset] = {
    preset.name: preset
    for preset in (
        BaselinePreset(
            name="sdxl-base",
            description="Plain SDXL base 1.0, one image per step with the step text as the prompt (I2G Table 1).",
            pipeline="StableDiffusionXLPipeline",
            architecture="sdxl",
            base=SDXL_BASE,
            num_inference_steps=30,
            guidance_scale=7.5,
            size=1024,
            files=SDXL_FILES,
        ),
        BaselinePreset(
            name="sd15",
            description="Stable Diffusion 1.5 at 512 px, 50 PNDM steps, CFG 7.5 (I2G Table 1).",
            pipeline="StableDiffusionPipeline",
            architecture="sd15",
            base=SD15_BASE,
            num_inference_steps=50,
            guidance_scale=7.5,
            size=512,
            files=_SD_FILES,
        ),
        BaselinePreset(
            name="sd21-turbo",
            description="SD-Turbo (distilled SD 2.1) at 512 px, one step, no CFG, as its model card runs it.",
            pipeline="StableDiffusionPipeline",
            architecture="sd21",
            base=SD_TURBO,
            num_inference_steps=1,
            guidance_scale=0.0,
            size=512,
            files=_SD_FILES,
        ),
        BaselinePreset(
            name="instructpix2pix",
            description="InstructPix2Pix at 512 px, 100 Euler-ancestral steps, text CFG 7.5, image CFG 1.5.",
            pipeline="StableDiffusionInstructPix2PixPipeline",
            architecture="instructpix2pix",
            base=INSTRUCT_PIX2PIX,
            num_inference_steps=100,
            guidance_scale=7.5,
            size=512,
            image_guidance_scale=1.5,
            files=_SD_FILES,
        ),
    )
}
# Every baseline's tiny twin: same pipeline class and architecture kind, random weights built in code, few steps.
BASELINE_PRESETS.update(
    {
        f"{preset.name}-tiny": BaselinePreset(
            name=f"{preset.name}-tiny",
            description=f"The {preset.name} architecture at a few hundred thousand parameters, random weights: tests.",
            pipeline=preset.pipeline,
            architecture=preset.architecture,
            base=None,
            num_inference_steps=min(preset.num_inference_steps, 3),
            guidance_scale=preset.guidance_scale,
            size=64,
            image_guidance_scale=preset.image_guidance_scale,
        )
        for preset in list(BASELINE_PRESETS.values())
    }
)


def get_baseline_preset(name: str) -> BaselinePreset:
    """The baseline preset called ``name``, or a clear error listing the known ones."""
    try:
        return BASELINE_PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(BASELINE_PRESETS))
        raise InvalidInputError(f"Unknown baseline preset {name!r}; choose one of: {known}.") from None
