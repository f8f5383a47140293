"""``ShowMePipeline``: a photo and an instruction in; the photo after the action, or a short video of it, out.

One DynamiCrafter model does both jobs, as in the ShowMe paper. ``edit`` runs it as an *image* model: every
temporal module is bypassed, only the ``edit`` LoRA is active, and a single frame is generated: the final state.
``animate`` runs it as a *video* model: temporal modules on, ``edit`` + ``animate`` LoRAs active, the clip of the
action conditioned on the photo as its first frame. The sampling follows the release's ``image_guided_synthesis``:
OpenCLIP text tokens + Resampler image tokens for cross-attention, the photo's latent concatenated to the noisy
latents, DDIM with classifier-free guidance (the unconditional branch: empty text and a black image).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl import rescale_noise_cfg
from tqdm.auto import tqdm

from .. import __version__
from ..errors import InvalidInputError, WeightsNotFoundError
from ..media import FitInfo, fit_photo, load_photo, restore_photo
from ..presets import ShowMePreset, get_showme_preset
from ..validation import check_number, clean_text
from . import adapters
from .conditioning import CONDITIONING_MODES, first_frame_concat
from .dynamicrafter.config import CONFIGS
from .dynamicrafter.model import DynamiCrafter

MAX_INSTRUCTION_CHARS = 500
MAX_FRAMES = 32
RELEASE_RANKS = {adapters.EDIT: 128, adapters.ANIMATE: 64}
"""The ranks of the authors' LoRAs (and of every real preset's adapters unless a trained file says otherwise)."""
TINY_RANKS = {adapters.EDIT: 4, adapters.ANIMATE: 4}
ProgressCallback = Callable[[int, int], None]


@dataclass
class EditOutput:
    """The photo after the action, at the input photo's aspect ratio, and how it was made."""

    image: PIL.Image.Image
    metadata: dict = field(default_factory=dict)


@dataclass
class VideoOutput:
    """The frames of the action (the first one is the photo), at the photo's aspect ratio, and how they were made."""

    frames: list[PIL.Image.Image]
    metadata: dict = field(default_factory=dict)


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _to_pil(frames: torch.Tensor) -> list[PIL.Image.Image]:
    """(n, 3, H, W) in [-1, 1] -> RGB images."""
    array = ((frames.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [PIL.Image.fromarray(np.ascontiguousarray(a)) for a in array]


def build_random_model(config, seed: int = 0) -> DynamiCrafter:
    """A DynamiCrafter with random weights everywhere (the tiny preset; benchmarks of real sizes).

    The release zero-initialises the UNet's output layers (residual ``proj_out``, the final conv, the fs
    embedding's last layer) so that a fresh model starts as the identity. Untrained, that makes every prediction
    zero and hides the effect of conditioning and adapters, so the tiny preset redraws those weights.
    """
    torch.manual_seed(seed)
    model = DynamiCrafter(config)
    with torch.no_grad():
        for param in model.unet.parameters():
            if param.ndim > 1 and not param.any():
                param.normal_(std=0.1)
    return model.eval()


class ShowMePipeline:
    """Photo + instruction -> edited photo (:meth:`edit`) or video (:meth:`animate`) with one DynamiCrafter model.

    Build it from a preset (``ShowMePipeline.from_preset("showme", lora_dir=...)``) or around a model.
    ``cpu_offload=True`` keeps each part on the CPU until it is needed (the text and image towers, the UNet and the
    autoencoder take turns on the GPU); ``decode_chunk_size`` bounds the autoencoder's memory.
    """

    def __init__(
        self, model: DynamiCrafter, preset: ShowMePreset | None = None, device: str | torch.device | None = None,
        cpu_offload: bool = False,
    ) -> None:
        self.model = model.eval()
        self.preset = preset
        self.device = torch.device(device) if device is not None else _default_device()
        self.cpu_offload = cpu_offload
        if not adapters.has_adapters(model):
            adapters.add_showme_adapters(model)
        self.model.to("cpu" if cpu_offload else self.device)
        if cpu_offload:  # the schedule buffers say where the model runs (``model.device``)
            for name, buffer in self.model.named_buffers(recurse=False):
                self.model._buffers[name] = buffer.to(self.device)
        self.progress_bar = True
        self.adapter_files: dict[str, str] = {}  # trained adapter files loaded by from_preset, named in run metadata

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_preset(
        cls,
        name: str = "tiny",
        *,
        device: str | torch.device | None = None,
        torch_dtype: torch.dtype | None = None,
        weights: str | PathLike | None = None,
        lora_dir: str | PathLike | None = None,
        cpu_offload: bool = False,
        edit_adapter: str | PathLike | None = None,
        animate_adapter: str | PathLike | None = None,
    ) -> ShowMePipeline:
        """Load a preset; ``weights`` is a local DynamiCrafter checkpoint, ``lora_dir`` the ShowMe LoRA folder.

        ``edit_adapter`` / ``animate_adapter`` are adapter files trained here (``train/showme_stage1.py`` writes
        ``edit.safetensors``, stage 2 ``animate.safetensors``). Each is built at the rank its file records and
        replaces that adapter of the preset; the authors' LoRA files are read only for an adapter not given.
        """
        preset = get_showme_preset(name)
        trained = cls._trained_adapters(edit_adapter, animate_adapter)  # bad files fail before any model is built
        device = torch.device(device) if device is not None else _default_device()
        config = CONFIGS[preset.config]
        defaults = TINY_RANKS if preset.checkpoint is None else RELEASE_RANKS
        ranks = {adapter: trained[adapter][1] if adapter in trained else defaults[adapter]
                 for adapter in adapters.ADAPTERS}
        release = bool(preset.lora_files) and set(trained) != set(adapters.ADAPTERS)
        if release:
            cls._check_release_ranks(preset, trained)
        if preset.checkpoint is None:
            model = build_random_model(config)
        else:
            dtype = torch_dtype or (torch.float16 if device.type == "cuda" else torch.float32)
            model = DynamiCrafter.from_checkpoint(cls._checkpoint_path(preset, weights), config, dtype=dtype)
        adapters.add_showme_adapters(model, edit_rank=ranks[adapters.EDIT], animate_rank=ranks[adapters.ANIMATE])
        if release:
            cls._load_loras(model, preset, lora_dir)
        for adapter, (path, _) in trained.items():
            adapters.load_adapter(model, adapter, path)
        pipe = cls(model, preset, device=device, cpu_offload=cpu_offload)
        pipe.adapter_files = {adapter: str(path) for adapter, (path, _) in trained.items()}
        return pipe

    @staticmethod
    def _trained_adapters(edit_adapter, animate_adapter) -> dict[str, tuple[Path, int]]:
        """{adapter: (file, rank)} of the trained adapter files given, each checked to hold the adapter it is for."""
        trained = {}
        for adapter, path in ((adapters.EDIT, edit_adapter), (adapters.ANIMATE, animate_adapter)):
            if path is None:
                continue
            saved, rank = adapters.adapter_file_info(path)
            if saved != adapter:
                raise InvalidInputError(f"{path} holds the {saved!r} adapter, not the {adapter!r} one.")
            trained[adapter] = (Path(path), rank)
        return trained

    @staticmethod
    def _check_release_ranks(preset: ShowMePreset, trained: dict[str, tuple[Path, int]]) -> None:
        """The authors' lora_video.pth fills both adapters, so one trained adapter must match the release's rank."""
        for adapter, (path, rank) in trained.items():
            if rank != RELEASE_RANKS[adapter]:
                raise InvalidInputError(
                    f"{path} holds a rank-{rank} {adapter!r} adapter, but the '{preset.name}' preset's LoRA files "
                    f"fill it at rank {RELEASE_RANKS[adapter]}: give both trained adapters or use a dynamicrafter "
                    "preset."
                )

    @staticmethod
    def _checkpoint_path(preset: ShowMePreset, weights) -> Path:
        if weights is not None:
            path = Path(weights)
            if not path.is_file():
                raise WeightsNotFoundError(preset.missing_weights_message("checkpoint"))
            return path
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(*preset.checkpoint))
        except (OSError, ValueError) as exc:
            raise WeightsNotFoundError(preset.missing_weights_message("checkpoint")) from exc

    @staticmethod
    def _load_loras(model: DynamiCrafter, preset: ShowMePreset, lora_dir) -> None:
        folder = Path(lora_dir) if lora_dir is not None else None
        if folder is None or not all((folder / f).is_file() for f in preset.lora_files):
            raise WeightsNotFoundError(preset.missing_weights_message("lora"))
        for filename in preset.lora_files:  # lora_video.pth holds stage 1 and stage 2
            adapters.load_release_lora(model, folder / filename)

    # ------------------------------------------------------------------ helpers
    @property
    def config(self):
        return self.model.config

    @contextlib.contextmanager
    def _on_device(self, *modules: torch.nn.Module) -> Iterator[None]:
        """With CPU offload, bring ``modules`` to the GPU for a block and send them back afterwards."""
        if not self.cpu_offload:
            yield
            return
        for module in modules:
            module.to(self.device)
        try:
            yield
        finally:
            for module in modules:
                module.to("cpu")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def _prepare_photo(self, image, fit: str) -> tuple[torch.Tensor, FitInfo, PIL.Image.Image]:
        photo = load_photo(image)
        fitted, info = fit_photo(photo, (self.config.height, self.config.width), mode=fit)
        array = torch.from_numpy(np.asarray(fitted, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1.0
        return array.unsqueeze(0), info, photo

    def _check(self, instruction, steps, guidance, eta, fs) -> str:
        instruction = clean_text(instruction, "instruction", MAX_INSTRUCTION_CHARS)
        check_number(steps, "num_inference_steps", 1, 1000, integer=True)
        check_number(guidance, "guidance_scale", 0, 30)
        check_number(eta, "eta", 0, 1)
        check_number(fs, "fs (frame stride)", 1, 100, integer=True)
        return instruction

    # ------------------------------------------------------------------ the sampling core
    @torch.no_grad()
    def sample_latents(
        self,
        pixels: torch.Tensor,
        instruction: str,
        *,
        num_frames: int,
        conditioning: str,
        num_inference_steps: int,
        guidance_scale: float,
        eta: float,
        fs: int,
        generator: torch.Generator,
        progress_callback: ProgressCallback | None = None,
    ) -> torch.Tensor:
        """DDIM from noise to latents (1, 4, num_frames, h, w) for one photo (1, 3, H, W) in [-1, 1]."""
        model, device = self.model, self.device
        guided = guidance_scale != 1.0
        with self._on_device(model.cond_stage_model, model.embedder, model.image_proj_model, model.first_stage_model):
            pixels = pixels.to(device)
            context = torch.cat([model.encode_text([instruction]), model.encode_image_context(pixels)], dim=1)
            if guided:
                empty = torch.cat([model.encode_text([""]), model.encode_image_context(torch.zeros_like(pixels))], 1)
                context = torch.cat([empty, context])
            first = model.encode_latents(pixels, generator=generator)  # (1, 4, h, w)
        concat = first_frame_concat(first, num_frames, conditioning)  # ShowMe's "mask": the photo on frame 0 only
        shape = (1, first.shape[1], num_frames, *first.shape[2:])
        latents = torch.randn(shape, generator=generator, dtype=torch.float32).to(device, model.dtype)
        sampler = model.sampler()
        schedule = sampler.schedule(num_inference_steps, eta=eta, spacing=self.config.timestep_spacing)
        batch = 2 if guided else 1
        concat = concat.repeat(batch, 1, 1, 1, 1)
        frame_stride = torch.full((batch,), fs, device=device, dtype=torch.long)
        total = len(schedule.timesteps)
        with self._on_device(model.model), tqdm(total=total, disable=not self.progress_bar, desc="DDIM") as bar:
            for i, t in enumerate(schedule.timesteps):
                timesteps = torch.full((batch,), int(t), device=device, dtype=torch.long)
                output = model.predict(latents.repeat(batch, 1, 1, 1, 1), timesteps, concat, context, frame_stride)
                if guided:
                    uncond, cond = output.chunk(2)
                    output = uncond + guidance_scale * (cond - uncond)
                    if self.config.guidance_rescale > 0:
                        output = rescale_noise_cfg(output, cond, guidance_rescale=self.config.guidance_rescale)
                latents, _ = sampler.step(output, latents, i, schedule, generator=generator)
                bar.update()
                if progress_callback is not None:
                    progress_callback(i + 1, total)
        return latents

    def _decode(self, latents: torch.Tensor, info: FitInfo, chunk_size: int | None) -> list[PIL.Image.Image]:
        with self._on_device(self.model.first_stage_model):
            frames = self.model.decode_latents(latents, chunk_size=chunk_size)  # (1, 3, t, H, W)
        longest = max(self.config.height, self.config.width)
        return [restore_photo(f, info, max_side=longest) for f in _to_pil(frames[0].permute(1, 0, 2, 3))]

    def _run(self, mode: str, image, instruction: str, num_frames: int, conditioning: str, fit: str, seed,
             generator, num_inference_steps, guidance_scale, eta, fs, progress_callback, decode_chunk_size):
        started = time.perf_counter()
        preset = self.preset
        steps = num_inference_steps if num_inference_steps is not None else (preset.num_inference_steps if preset else 50)
        guidance = guidance_scale if guidance_scale is not None else (preset.guidance_scale if preset else 7.5)
        eta = eta if eta is not None else (preset.eta if preset else 1.0)
        fs = fs if fs is not None else self.config.default_fs
        instruction = self._check(instruction, steps, guidance, eta, fs)
        if conditioning not in CONDITIONING_MODES:
            raise InvalidInputError(f"conditioning must be one of {', '.join(CONDITIONING_MODES)}, got {conditioning!r}.")
        pixels, info, photo = self._prepare_photo(image, fit)
        if generator is None:
            seed = random.randrange(2**31) if seed is None else seed
            generator = torch.Generator("cpu").manual_seed(seed)
        with adapters.mode(self.model, mode):
            latents = self.sample_latents(
                pixels, instruction, num_frames=num_frames, conditioning=conditioning,
                num_inference_steps=steps, guidance_scale=guidance, eta=eta, fs=fs, generator=generator,
                progress_callback=progress_callback,
            )
        frames = self._decode(latents, info, decode_chunk_size)
        metadata = {
            "preset": preset.name if preset else None,
            "mode": mode,
            "instruction": instruction,
            "seed": seed,
            "num_inference_steps": steps,
            "guidance_scale": guidance,
            "eta": eta,
            "fs": fs,
            "num_frames": num_frames,
            "conditioning": conditioning,
            "edit_adapter": self.adapter_files.get(adapters.EDIT),
            "animate_adapter": self.adapter_files.get(adapters.ANIMATE),
            "fit": fit,
            "model_size": [self.config.height, self.config.width],
            "photo_size": [photo.height, photo.width],
            "output_size": [frames[0].height, frames[0].width],
            "device": str(self.device),
            "dtype": str(self.model.dtype).replace("torch.", ""),
            "seconds": round(time.perf_counter() - started, 3),
            "showme_i2g": __version__,
        }
        return frames, metadata

    # ------------------------------------------------------------------ public API
    def edit(
        self,
        image,
        instruction: str,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        eta: float | None = None,
        fs: int | None = None,
        fit: str = "crop",
        progress_callback: ProgressCallback | None = None,
    ) -> EditOutput:
        """The photo after the action: image mode (temporal modules bypassed, ``edit`` LoRA), one frame.

        ``image`` is a path, bytes or PIL image; ``fit`` is "crop" (centre-crop to the model's aspect) or "pad".
        """
        frames, metadata = self._run("image", image, instruction, 1, "repeat", fit, seed, generator,
                                     num_inference_steps, guidance_scale, eta, fs, progress_callback, None)
        return EditOutput(image=frames[0], metadata=metadata)

    def animate(
        self,
        image,
        instruction: str,
        *,
        num_frames: int = 16,
        conditioning: str = "mask",
        seed: int | None = None,
        generator: torch.Generator | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        eta: float | None = None,
        fs: int | None = None,
        fit: str = "crop",
        decode_chunk_size: int | None = None,
        progress_callback: ProgressCallback | None = None,
    ) -> VideoOutput:
        """The clip of the action: video mode (temporal modules on, ``edit`` + ``animate`` LoRAs).

        ``conditioning="mask"`` (ShowMe) gives the photo's latent to frame 0 only; "repeat" (vanilla DynamiCrafter)
        gives it to every frame.
        """
        check_number(num_frames, "num_frames", 2, MAX_FRAMES, integer=True)
        frames, metadata = self._run("video", image, instruction, num_frames, conditioning, fit, seed, generator,
                                     num_inference_steps, guidance_scale, eta, fs, progress_callback,
                                     decode_chunk_size)
        return VideoOutput(frames=frames, metadata=metadata)
