"""``ShowMePipeline``: a photo and an instruction in; the photo after the action, or a short video of it, out.

One DynamiCrafter model does both jobs, as in the ShowMe paper. ``edit`` runs it as an *image* model: every
temporal module is bypassed, only the ``edit`` LoRA is active, and a single frame is generated: the final state.
``animate`` runs it as a *video* model: temporal modules on, ``edit`` + ``animate`` LoRAs active, the clip of the
action conditioned on the photo as its first frame. The sampling follows the release's ``image_guided_synthesis``:
OpenCLIP text tokens + Resampler image tokens for cross-attention, the photo's latent concatenated to the noisy
latents, DDIM with classifier-free guidance (the unconditional branch: empty text and a black image).
"""

from __future__ import annotations

import logging
import random
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl import rescale_noise_cfg
from diffusers.utils import BaseOutput
from diffusers.utils.accelerate_utils import apply_forward_hook
from tqdm.auto import tqdm

from .. import __version__, versions
from ..cuda_graphs import StepGraphs, ran_out_of_memory
from ..devices import best_device
from ..dtypes import resolve_dtype
from ..errors import InvalidInputError, WeightsNotFoundError
from ..media import FitInfo, fit_photo, load_photo, restore_photo
from ..presets import ShowMePreset, get_showme_preset
from ..validation import (  # the limits live in validation (checked before torch loads); re-exported here
    DEFAULT_FRAMES,
    MAX_FRAMES,
    MAX_INSTRUCTION_CHARS,  # noqa: F401
    check_number,
    check_showme_settings,
)
from . import adapters
from .conditioning import CONDITIONING_MODES, cross_attention_context, first_frame_concat, unconditional_context
from .dynamicrafter.config import CONFIGS
from .dynamicrafter.model import DynamiCrafter

logger = logging.getLogger(__name__)

RELEASE_RANKS = {adapters.EDIT: 128, adapters.ANIMATE: 64}
"""The ranks of the authors' LoRAs (and of every real preset's adapters unless a trained file says otherwise)."""
TINY_RANKS = {adapters.EDIT: 4, adapters.ANIMATE: 4}
DEFAULT_ANIMATE_BATCH = 8
"""Clips sampled together by ``animate_many``: 8 clips of 16 frames at 256 px need about 7 GiB of activations."""
ProgressCallback = Callable[[int, int], None]


OUTPUT_TYPES = ("pil", "np", "pt", "latent")
"""``pil``: RGB images; ``np``: float32 arrays (..., H, W, 3) in [0, 1]; ``pt``: float32 tensors (..., 3, H, W) in
[0, 1], both holding exactly the pixels of ``pil``; ``latent``: the float32 latents (1, 4, frames, h, w), not
decoded."""
StepEndCallback = Callable[["ShowMePipeline", int, int, dict], dict]


@dataclass
class EditOutput(BaseOutput):
    """The photo after the action, at the input photo's aspect ratio (in ``output_type``), and how it was made.

    A diffusers output: ``result.image``, ``result["image"]`` and ``result.to_tuple()`` all work.
    """

    image: PIL.Image.Image | np.ndarray | torch.Tensor
    metadata: dict = field(default_factory=dict)


@dataclass
class VideoOutput(BaseOutput):
    """The frames of the action (the first one is the photo), at the photo's aspect ratio (in ``output_type``: a list
    of images, an array (T, H, W, 3), a tensor (T, 3, H, W) or the latents), and how they were made."""

    frames: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    metadata: dict = field(default_factory=dict)


def _to_pil(frames: torch.Tensor) -> list[PIL.Image.Image]:
    """(n, 3, H, W) in [-1, 1] -> RGB images."""
    array = ((frames.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [PIL.Image.fromarray(np.ascontiguousarray(a)) for a in array]


def _convert(frames: list[PIL.Image.Image], output_type: str, video: bool):
    """Frames at the photo's framing -> ``output_type`` (the same pixels): a video's list or stack, an edit's one."""
    if output_type == "pil":
        return frames if video else frames[0]
    array = np.stack([np.asarray(frame, dtype=np.float32) / 255.0 for frame in frames])  # (T, H, W, 3)
    if output_type == "pt":
        array = torch.from_numpy(array).permute(0, 3, 1, 2)
    return array if video else array[0]


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
    return model.requires_grad_(False).eval()


class ShowMePipeline:
    """Photo + instruction -> edited photo (:meth:`edit`) or video (:meth:`animate`) with one DynamiCrafter model.

    Build it from a preset (``ShowMePipeline.from_preset("showme", lora_dir=...)``) or around a model.
    ``cpu_offload=True`` calls :meth:`enable_model_cpu_offload`; ``decode_chunk_size`` bounds the autoencoder's
    memory. The calls follow diffusers' pipelines: ``callback_on_step_end``, :attr:`interrupt`,
    :meth:`set_progress_bar_config`, ``output_type`` and ``return_dict``. On a GPU each
    denoising step is replayed from a CUDA graph (captured once per mode and shape; ``cuda_graphs=False`` runs
    every step eagerly). ``fuse_adapters=True`` folds the mode's LoRA adapters into the base weights for the
    duration of each call (:func:`~.adapters.fused`: no adapter branches to run or replay, outputs equal up to the
    rounding of the folded weights, the weights restored bit for bit after the call); it is off until a GPU
    measurement shows its gain (``benchmarks/gpu_real_size.py``), and CPU offload turns it off. The model work of
    every public call (encoding, sampling, decoding) runs under ``torch.inference_mode``: sampling never builds an
    autograd graph, and a pipeline's model is frozen (training makes its own parameters trainable). Returned
    latents are inference tensors.
    """

    _callback_tensor_inputs = ["latents", "context", "concat"]
    """What ``callback_on_step_end`` may read and replace: the float32 latents (B, 4, T, h, w), the cross-attention
    context ([uncond × B, cond × B] under guidance) and the first-frame conditioning latents."""

    def __init__(
        self, model: DynamiCrafter, preset: ShowMePreset | None = None, device: str | torch.device | None = None,
        cpu_offload: bool = False, cuda_graphs: bool = True, fuse_adapters: bool = False,
    ) -> None:
        self.model = model.requires_grad_(False).eval()
        self.preset = preset
        self.device = best_device(device)  # never MPS: the sampler keeps a float64 schedule
        self._offload_hooks: list = []
        self._progress_bar_config: dict = {}
        self._interrupt = False
        self.cuda_graphs = cuda_graphs
        self.fuse_adapters = fuse_adapters
        self._step_graphs = StepGraphs(enabled=cuda_graphs)
        self._last_sampling_replayed = False  # whether the last sampling run replayed a graph (run metadata)
        self.adapter_files: dict[str, str] = {}  # trained adapter files loaded by from_preset, named in run metadata
        if not adapters.has_adapters(model):
            adapters.add_showme_adapters(model)
        if cpu_offload:
            self.enable_model_cpu_offload()
        else:
            self.model.to(self.device)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_preset(
        cls,
        name: str = "tiny",
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        weights: str | PathLike | None = None,
        lora_dir: str | PathLike | None = None,
        cpu_offload: bool = False,
        edit_adapter: str | PathLike | None = None,
        animate_adapter: str | PathLike | None = None,
        cuda_graphs: bool = True,
        fuse_adapters: bool = False,
        torch_dtype: torch.dtype | None = None,
    ) -> ShowMePipeline:
        """Load a preset; ``weights`` is a local DynamiCrafter checkpoint, ``lora_dir`` the ShowMe LoRA folder.

        ``edit_adapter`` / ``animate_adapter`` are adapter files trained here (``train/showme_stage1.py`` writes
        ``edit.safetensors``, stage 2 ``animate.safetensors``). Each is built at the rank its file records and
        replaces that adapter of the preset; the authors' LoRA files are read only for an adapter not given.
        ``dtype`` (default: float16 on a GPU, float32 otherwise) is diffusers' name; ``torch_dtype`` still works,
        with a FutureWarning.
        """
        dtype = resolve_dtype(dtype, torch_dtype)
        preset = get_showme_preset(name)
        trained = cls._trained_adapters(edit_adapter, animate_adapter)  # bad files fail before any model is built
        device = best_device(device)
        config = CONFIGS[preset.config]
        defaults = TINY_RANKS if preset.checkpoint is None else RELEASE_RANKS
        ranks = {adapter: trained[adapter][1] if adapter in trained else defaults[adapter]
                 for adapter in adapters.ADAPTERS}
        release = preset.reads_release_loras(trained)
        if release:
            cls._check_release_ranks(preset, trained)
        if preset.checkpoint is None:
            model = build_random_model(config)
        else:
            dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
            model = DynamiCrafter.from_checkpoint(cls._checkpoint_path(preset, weights), config, dtype=dtype)
        adapters.add_showme_adapters(model, edit_rank=ranks[adapters.EDIT], animate_rank=ranks[adapters.ANIMATE])
        if release:
            cls._load_loras(model, preset, lora_dir)
        for adapter, (path, _) in trained.items():
            adapters.load_adapter(model, adapter, path)
        pipe = cls(model, preset, device=device, cpu_offload=cpu_offload, cuda_graphs=cuda_graphs,
                   fuse_adapters=fuse_adapters)
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

    def set_progress_bar_config(self, **kwargs) -> None:
        """Keyword arguments for the tqdm bar of every DDIM loop (``disable=True`` hides it), as in diffusers."""
        self._progress_bar_config = kwargs

    def progress_bar(self, iterable=None, total: int | None = None) -> tqdm:
        """A tqdm bar over ``iterable`` or of ``total`` steps, configured by :meth:`set_progress_bar_config`."""
        config = {"desc": "DDIM", **self._progress_bar_config}
        if iterable is not None:
            return tqdm(iterable, **config)
        if total is not None:
            return tqdm(total=total, **config)
        raise ValueError("progress_bar needs an iterable or a total.")

    def __setattr__(self, name: str, value) -> None:
        """``pipe.progress_bar = False`` (the old switch) still works, through :meth:`set_progress_bar_config`."""
        if name == "progress_bar" and isinstance(value, bool):
            warnings.warn("Setting `pipe.progress_bar` is deprecated; call "
                          "`pipe.set_progress_bar_config(disable=...)`.", FutureWarning, stacklevel=2)
            self.set_progress_bar_config(disable=not value)
            return
        super().__setattr__(name, value)

    @property
    def interrupt(self) -> bool:
        """True once ``pipe._interrupt`` is set (by ``callback_on_step_end`` or another thread): the loop ends after
        the current step, and what the steps so far made is decoded and returned (``metadata["interrupted"]`` is
        true and ``metadata["steps_done"]`` says how many; ``animate_many`` samples no further chunk). Every public
        call starts with it cleared."""
        return self._interrupt

    # ------------------------------------------------------------------ offloading
    @property
    def cpu_offload(self) -> bool:
        """Whether :meth:`enable_model_cpu_offload` is in effect."""
        return bool(self._offload_hooks)

    def _offloaded_parts(self) -> list[torch.nn.Module]:
        """The model's parts in the order a call uses them: text tower, image tower, Resampler, autoencoder, UNet."""
        model = self.model
        return [model.cond_stage_model, model.embedder, model.image_proj_model, model.first_stage_model, model.model]

    def enable_model_cpu_offload(self, device: str | torch.device | None = None) -> None:
        """Keep the model in CPU memory and move each part to ``device`` (the pipeline's) only while it runs.

        As diffusers' ``enable_model_cpu_offload``: accelerate's ``cpu_offload_with_hook`` chains the parts in the
        order a call uses them (text tower, image tower, Resampler, autoencoder, UNet), so a part moves to the GPU
        when it is called and sends the previous part back, and every part returns to the CPU at the end of a call.
        The autoencoder is used through ``encode`` and ``decode_frames``, not ``forward``, so those two trigger its
        hook too (diffusers' ``apply_forward_hook``). The small schedule buffers stay on ``device``: the model
        sends its inputs to ``model.device``, which they define. At most one large part is on the GPU at a time,
        so memory drops to about the UNet's weights; each call pays the transfers, and steps run without CUDA
        graphs (offloaded weights have no fixed address). Results equal those without offload.
        """
        from accelerate import cpu_offload_with_hook
        from accelerate.utils import set_module_tensor_to_device

        self.remove_all_hooks()
        device = torch.device(device) if device is not None else self.device
        self.device = device
        self.model.to("cpu")
        for name, _ in self.model.named_buffers(recurse=False):
            set_module_tensor_to_device(self.model, name, device)
        hook = None
        for part in self._offloaded_parts():
            _, hook = cpu_offload_with_hook(part, device, prev_module_hook=hook)
            self._offload_hooks.append(hook)
        vae = self.model.first_stage_model
        for method in ("encode", "decode_frames"):
            setattr(vae, method, apply_forward_hook(getattr(type(vae), method)).__get__(vae))

    def remove_all_hooks(self) -> None:
        """Undo :meth:`enable_model_cpu_offload`: the whole model back on the pipeline's device."""
        if not self._offload_hooks:
            return
        for hook in self._offload_hooks:
            hook.remove()
        self._offload_hooks = []
        vae = self.model.first_stage_model
        for method in ("encode", "decode_frames"):
            vae.__dict__.pop(method, None)
        self.model.to(self.device)

    def _offload_all(self) -> None:
        """End of a call under offload: every part back in CPU memory (diffusers' ``maybe_free_model_hooks``)."""
        for hook in self._offload_hooks:
            hook.offload()
        if self._offload_hooks and self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _prepare_photo(self, image, fit: str) -> tuple[torch.Tensor, FitInfo, PIL.Image.Image]:
        photo = load_photo(image)
        fitted, info = fit_photo(photo, (self.config.height, self.config.width), mode=fit)
        array = torch.from_numpy(np.asarray(fitted, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1.0
        return array.unsqueeze(0), info, photo

    def _check(self, instruction, steps, guidance, eta, fs) -> str:
        """The instruction cleaned and the settings in range: ``validation.check_showme_settings``, the same check the
        CLI and the app run before any model loads."""
        return check_showme_settings(instruction, num_inference_steps=steps, guidance_scale=guidance, eta=eta, fs=fs)

    # ------------------------------------------------------------------ the sampling core
    def _conditioning(
        self, pixels: torch.Tensor, instructions: list[str], guided: bool, generators: list[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-attention context ([uncond x B, cond x B] with CFG) and first-frame latents (B, 4, h, w).

        Each item is encoded on its own, with its own generator for the posterior sample, so an item of a batch
        gets exactly the conditioning (and draws exactly the random numbers) of a call for it alone. The towers
        run one after the other over all items, so under offload each moves to the GPU once.
        """
        model, device = self.model, self.device
        photos = [pixels[item : item + 1].to(device) for item in range(pixels.shape[0])]
        contexts = [cross_attention_context(model, [text], photo)
                    for text, photo in zip(instructions, photos, strict=True)]
        context = torch.cat(contexts)
        if guided:  # the unconditional branch: empty text and a zero image, one block per item
            context = torch.cat([unconditional_context(model, photos[0]).expand(len(contexts), -1, -1), context])
        firsts = [model.encode_latents(photo, generator=g) for photo, g in zip(photos, generators, strict=True)]
        return context, torch.cat(firsts)

    def _unet_step(self, latents, timesteps, concat, context, frame_stride) -> torch.Tensor:
        """The UNet call of one denoising step, as a function of tensors only (what a CUDA graph captures)."""
        return self.model.predict(latents, timesteps, concat, context, frame_stride)

    @staticmethod
    def _check_callback(callback: StepEndCallback | None, tensor_inputs: Sequence[str]) -> None:
        if callback is not None and not callable(callback):
            raise ValueError(f"callback_on_step_end must be callable, got {type(callback).__name__}.")
        unknown = [name for name in tensor_inputs if name not in ShowMePipeline._callback_tensor_inputs]
        if unknown:
            raise ValueError(f"callback_on_step_end_tensor_inputs may name {ShowMePipeline._callback_tensor_inputs}, "
                             f"got {unknown}.")

    @torch.inference_mode()
    def sample_latents(
        self,
        pixels: torch.Tensor,
        instruction: str | list[str],
        *,
        num_frames: int,
        conditioning: str,
        num_inference_steps: int,
        guidance_scale: float,
        eta: float,
        fs: int,
        generator: torch.Generator | list[torch.Generator],
        progress_callback: ProgressCallback | None = None,
        callback_on_step_end: StepEndCallback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> tuple[torch.Tensor, int]:
        """DDIM from noise: float32 latents (B, 4, num_frames, h, w) for photos (B, 3, H, W) in [-1, 1], and the
        number of steps run (fewer than ``num_inference_steps`` when :attr:`interrupt` ended the loop).

        ``instruction`` and ``generator`` are one per photo (a single one for B = 1). The B items are sampled as
        one batch, laid out [uncond x B, cond x B] under CFG, and item i draws all its random numbers (posterior
        sample, initial noise, DDIM noise) from generator i in the order a call for it alone would, so a batch
        equals separate calls. The latents stay float32 between steps (as the release's under autocast); only the
        UNet runs in the model's dtype, replayed from a CUDA graph when :attr:`cuda_graphs` is on (as part of the
        graph cache's current run: ``edit``, ``animate`` and ``animate_many`` each start one).
        ``callback_on_step_end(pipe, step, timestep, tensors)`` runs after each step with the tensors named in
        ``callback_on_step_end_tensor_inputs`` and may return replacements for them (diffusers' convention).
        """
        self._check_callback(callback_on_step_end, callback_on_step_end_tensor_inputs)
        model, device = self.model, self.device
        instructions = [instruction] if isinstance(instruction, str) else list(instruction)
        generators = [generator] if isinstance(generator, torch.Generator) else list(generator)
        count = pixels.shape[0]
        if not len(instructions) == len(generators) == count:
            raise ValueError(f"{count} photos need as many instructions and generators, got "
                             f"{len(instructions)} and {len(generators)}.")
        guided = guidance_scale != 1.0
        context, first = self._conditioning(pixels, instructions, guided, generators)
        concat = first_frame_concat(first, num_frames, conditioning)  # ShowMe's "mask": the photo on frame 0 only
        shape = (1, first.shape[1], num_frames, *first.shape[2:])
        latents = torch.cat([torch.randn(shape, generator=g, dtype=torch.float32) for g in generators]).to(device)
        sampler = model.sampler()
        schedule = sampler.schedule(num_inference_steps, eta=eta, spacing=self.config.timestep_spacing)
        batch = 2 * count if guided else count
        concat = concat.repeat(batch // count, 1, 1, 1, 1).to(model.dtype)
        frame_stride = torch.full((batch,), fs, device=device, dtype=torch.long)
        timesteps = torch.empty((batch,), device=device, dtype=torch.long)
        mode_key = (self._mode_key(), StepGraphs.weights_key(model), StepGraphs.adapters_key(model))
        graphs = self._step_graphs
        graphs.enabled = self._graphs_allowed
        replays_before = graphs.replays
        total = len(schedule.timesteps)
        noise_source = generators if count > 1 else generators[0]
        steps_done = 0
        with self.progress_bar(total=total) as bar:
            for i, t in enumerate(schedule.timesteps):
                timesteps.fill_(int(t))
                model_input = latents.to(model.dtype).repeat(batch // count, 1, 1, 1, 1)
                output = graphs.run(mode_key, self._unet_step, model_input, timesteps, concat, context,
                                    frame_stride)
                if guided:
                    uncond, cond = output.float().chunk(2)
                    output = uncond + guidance_scale * (cond - uncond)
                    if self.config.guidance_rescale > 0:
                        output = rescale_noise_cfg(output, cond, guidance_rescale=self.config.guidance_rescale)
                latents, _ = sampler.step(output, latents, i, schedule, generator=noise_source)
                steps_done = i + 1
                if callback_on_step_end is not None:
                    tensors = {"latents": latents, "context": context, "concat": concat}
                    replaced = callback_on_step_end(
                        self, i, int(t), {name: tensors[name] for name in callback_on_step_end_tensor_inputs}
                    ) or {}
                    latents = replaced.pop("latents", latents)
                    context = replaced.pop("context", context)
                    concat = replaced.pop("concat", concat)
                bar.update()
                if progress_callback is not None:
                    progress_callback(i + 1, total)
                if self.interrupt:
                    break
        self._last_sampling_replayed = graphs.replays > replays_before
        return latents, steps_done

    @property
    def _graphs_allowed(self) -> bool:
        """CUDA graphs are on (:attr:`cuda_graphs`) and the weights stay put (offload moves them)."""
        return self.cuda_graphs and not self.cpu_offload

    def _mode_key(self) -> str:
        """What, besides the inputs' shapes, decides the UNet's computation: the temporal bypass and the adapters."""
        unet = self.model.unet
        bypassed = any(module.bypass for module in unet.temporal_modules())
        return (f"bypass={bypassed};adapters={adapters.active_adapter_names(self.model)};"
                f"fused={adapters.is_fused(self.model)}")

    @torch.inference_mode()
    def _decode(self, latents: torch.Tensor, info: FitInfo, chunk_size: int | None,
                callback_on_decode: ProgressCallback | None = None) -> list[PIL.Image.Image]:
        """One item's latents (1, 4, t, h, w) -> frames at the photo's aspect ratio, no autograd graph kept;
        ``callback_on_decode(done, total)`` before each autoencoder call."""
        frames = self.model.decode_latents(latents, chunk_size=chunk_size,  # (1, 3, t, H, W)
                                           callback_on_decode=callback_on_decode)
        longest = max(self.config.height, self.config.width)
        return [restore_photo(f, info, max_side=longest) for f in _to_pil(frames[0].permute(1, 0, 2, 3))]

    def _settings(self, num_inference_steps, guidance_scale, eta, fs) -> tuple[int, float, float, int]:
        preset = self.preset
        steps = (num_inference_steps if num_inference_steps is not None
                 else (preset.num_inference_steps if preset else 50))
        guidance = guidance_scale if guidance_scale is not None else (preset.guidance_scale if preset else 7.5)
        eta = eta if eta is not None else (preset.eta if preset else 1.0)
        fs = fs if fs is not None else self.config.default_fs
        return steps, guidance, eta, fs

    @staticmethod
    def _check_output_type(output_type: str) -> None:
        if output_type not in OUTPUT_TYPES:
            raise InvalidInputError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}.")

    def _run(self, mode: str, images: list, instructions: list[str], num_frames: int, conditioning: str, fit: str,
             seeds: list, generators: list | None, num_inference_steps, guidance_scale, eta, fs, progress_callback,
             decode_chunk_size, output_type: str = "pil", callback_on_step_end: StepEndCallback | None = None,
             callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
             callback_on_decode: ProgressCallback | None = None, new_graph_run: bool = True,
             ) -> list[tuple[object, dict]]:
        """Check everything, sample the items as one batch, decode each item alone: [(frames, metadata)].

        ``frames`` is in ``output_type`` and always a video's form (a list, or a leading frame axis); ``edit`` and
        ``animate`` take the form they return from it. ``callback_on_decode(done, total)`` counts the autoencoder
        calls of all the items (each item needs as many). ``new_graph_run``: this call starts a run of the CUDA
        graph cache (a key whose capture ran out of memory may try again); ``animate_many``'s later chunks continue
        the first one's run.
        """
        started = time.perf_counter()
        self._check_output_type(output_type)
        steps, guidance, eta, fs = self._settings(num_inference_steps, guidance_scale, eta, fs)
        instructions = [self._check(text, steps, guidance, eta, fs) for text in instructions]
        if conditioning not in CONDITIONING_MODES:
            raise InvalidInputError(
                f"conditioning must be one of {', '.join(CONDITIONING_MODES)}, got {conditioning!r}."
            )
        prepared = [self._prepare_photo(image, fit) for image in images]
        if generators is None:
            seeds = [random.randrange(2**31) if seed is None else seed for seed in seeds]
            generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        pixels = torch.cat([p[0] for p in prepared])
        if new_graph_run:
            self._step_graphs.begin_run(self._graphs_allowed)
        try:
            fusing = self.fuse_adapters and not self.cpu_offload  # offloaded weights would be folded on the CPU
            with adapters.mode(self.model, mode), (adapters.fused(self.model) if fusing else nullcontext()):
                latents, steps_done = self.sample_latents(
                    pixels, instructions, num_frames=num_frames, conditioning=conditioning,
                    num_inference_steps=steps, guidance_scale=guidance, eta=eta, fs=fs, generator=generators,
                    progress_callback=progress_callback, callback_on_step_end=callback_on_step_end,
                    callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
                )
            results = []
            for item, (_, info, photo) in enumerate(prepared):
                if output_type == "latent":
                    frames, size = latents[item : item + 1], None
                else:
                    on_decode = None if callback_on_decode is None else (  # item's call -> the run's call
                        lambda done, calls, item=item: callback_on_decode(item * calls + done, len(prepared) * calls))
                    pil = self._decode(latents[item : item + 1], info, decode_chunk_size, on_decode)
                    frames, size = _convert(pil, output_type, video=True), [pil[0].height, pil[0].width]
                results.append((frames, self._metadata(
                    mode, instructions[item], seeds[item], steps, steps_done, guidance, eta, fs, num_frames,
                    conditioning, fit, photo, size, len(prepared), started,
                )))
        finally:
            self._offload_all()
        return results

    def _metadata(self, mode, instruction, seed, steps, steps_done, guidance, eta, fs, num_frames, conditioning, fit,
                  photo, output_size, batch_size, started) -> dict:
        """How one output was made (written next to it as run.json by the CLI and the app)."""
        return {
            "preset": self.preset.name if self.preset else None,
            "mode": mode,
            "instruction": instruction,
            "seed": seed,
            "num_inference_steps": steps,
            "steps_done": steps_done,
            "interrupted": steps_done < steps,  # as the I2G pipeline's metadata says it
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
            "output_size": output_size,
            "device": str(self.device),
            "dtype": str(self.model.dtype).replace("torch.", ""),
            "cuda_graphs": self._last_sampling_replayed,  # some step of this run replayed a graph
            "fused_adapters": self.fuse_adapters and not self.cpu_offload,
            "batch_size": batch_size,
            "seconds": round(time.perf_counter() - started, 3),
            "showme_i2g": __version__,
            "versions": versions(),
        }

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
        callback_on_step_end: StepEndCallback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        callback_on_decode: ProgressCallback | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> EditOutput | tuple:
        """The photo after the action: image mode (temporal modules bypassed, ``edit`` LoRA), one frame.

        ``image`` is a path, bytes or PIL image; ``fit`` is "crop" (centre-crop to the model's aspect) or "pad".
        ``output_type`` is one of :data:`OUTPUT_TYPES` (an array (H, W, 3), a tensor (3, H, W) or the latents
        (1, 4, 1, h, w)); ``return_dict=False`` gives the tuple ``(image, metadata)``. ``progress_callback(done,
        total)`` counts steps; ``callback_on_step_end`` is diffusers' (see :meth:`sample_latents`).
        ``callback_on_decode(done, total)`` is called before each autoencoder call that decodes the result (here
        once: ``(0, 1)``), so a caller can report it, or raise to stop before it is decoded (the exception
        propagates); never for ``output_type="latent"``.
        """
        self._interrupt = False
        [(frames, metadata)] = self._run(
            "image", [image], [instruction], 1, "repeat", fit, [seed], None if generator is None else [generator],
            num_inference_steps, guidance_scale, eta, fs, progress_callback, None, output_type,
            callback_on_step_end, callback_on_step_end_tensor_inputs, callback_on_decode,
        )
        output = EditOutput(image=frames if output_type == "latent" else frames[0], metadata=metadata)
        return output if return_dict else output.to_tuple()

    def animate(
        self,
        image,
        instruction: str,
        *,
        num_frames: int = DEFAULT_FRAMES,
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
        callback_on_step_end: StepEndCallback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        callback_on_decode: ProgressCallback | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> VideoOutput | tuple:
        """The clip of the action: video mode (temporal modules on, ``edit`` + ``animate`` LoRAs).

        ``conditioning="mask"`` (ShowMe) gives the photo's latent to frame 0 only; "repeat" (vanilla DynamiCrafter)
        gives it to every frame. ``output_type``, ``return_dict`` (``(frames, metadata)``) and the callbacks are
        as in :meth:`edit`; ``callback_on_decode(done, total)`` comes before each of the clip's ``total`` autoencoder
        calls (one for the whole clip, or one per ``decode_chunk_size`` frames; the 512 and 1024 presets decode frame
        by frame).
        """
        self._interrupt = False
        check_number(num_frames, "num_frames", 2, MAX_FRAMES, integer=True)
        [(frames, metadata)] = self._run(
            "video", [image], [instruction], num_frames, conditioning, fit, [seed],
            None if generator is None else [generator], num_inference_steps, guidance_scale, eta, fs,
            progress_callback, decode_chunk_size, output_type, callback_on_step_end,
            callback_on_step_end_tensor_inputs, callback_on_decode,
        )
        output = VideoOutput(frames=frames, metadata=metadata)
        return output if return_dict else output.to_tuple()

    def animate_many(
        self,
        images: Sequence,
        instructions: Sequence[str],
        *,
        seeds: Sequence[int | None] | None = None,
        batch_size: int = DEFAULT_ANIMATE_BATCH,
        num_frames: int = DEFAULT_FRAMES,
        conditioning: str = "mask",
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        eta: float | None = None,
        fs: int | None = None,
        fit: str = "crop",
        decode_chunk_size: int | None = None,
        progress_callback: ProgressCallback | None = None,
        callback_on_step_end: StepEndCallback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        callback_on_decode: ProgressCallback | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> list[VideoOutput] | list[tuple]:
        """Animate every (photo, instruction) pair, e.g. each step image of a recipe, in batched sampling loops.

        Items are sampled ``batch_size`` at a time (one UNet call per DDIM step for the whole chunk); a chunk that
        runs out of GPU memory is retried at half the size. Item i uses ``seeds[i]`` (random where None) and gets
        the clip that ``animate(images[i], instructions[i], seed=seeds[i], ...)`` gives: every random number it
        needs comes from its own generator in the same order, so the clips differ only by the rounding of batched
        matrix products (1 level of 255 at most in float32 on the CPU, 6 in fp16 on an H200). Every photo and
        instruction is checked before the first chunk is sampled. ``progress_callback(done, total)`` counts DDIM
        steps over all chunks; ``callback_on_step_end`` sees each chunk's steps (its tensors hold the chunk's
        items).
        ``callback_on_decode(done, total)`` counts the autoencoder calls of all the clips, in order (as in
        :meth:`animate`, each clip needs as many), so raising from it stops before the remaining clips (or frames)
        are decoded. After an :attr:`interrupt` the clips sampled so far are returned (the current chunk's after
        fewer steps).
        """
        self._interrupt = False
        images, instructions = list(images), list(instructions)
        if not images:
            raise InvalidInputError("animate_many needs at least one photo.")
        if len(instructions) != len(images):
            raise InvalidInputError(f"Got {len(images)} photos but {len(instructions)} instructions; give one each.")
        seeds = [None] * len(images) if seeds is None else list(seeds)
        if len(seeds) != len(images):
            raise InvalidInputError(f"Got {len(images)} photos but {len(seeds)} seeds; give one each (or none).")
        check_number(batch_size, "batch_size", 1, 64, integer=True)
        check_number(num_frames, "num_frames", 2, MAX_FRAMES, integer=True)
        self._check_output_type(output_type)
        self._check_callback(callback_on_step_end, callback_on_step_end_tensor_inputs)
        settings = self._settings(num_inference_steps, guidance_scale, eta, fs)
        steps = settings[0]
        instructions = [self._check(text, *settings) for text in instructions]  # bad input fails before sampling
        images = [load_photo(image) for image in images]
        seeds = [random.randrange(2**31) if seed is None else seed for seed in seeds]  # a retry reuses them
        outputs: list[VideoOutput] = []
        done_steps = 0
        while len(outputs) < len(images) and not self.interrupt:
            chunk = range(len(outputs), min(len(outputs) + batch_size, len(images)))
            remaining = -(-(len(images) - len(outputs)) // batch_size)
            total = done_steps + steps * remaining

            def report(done, _total, offset=done_steps, total=total):
                if progress_callback is not None:
                    progress_callback(offset + done, total)

            def decoded(done, total, first=len(outputs), count=len(chunk)):  # the chunk's call -> the whole call's
                if callback_on_decode is not None:
                    calls = total // count  # per clip
                    callback_on_decode(first * calls + done, len(images) * calls)

            try:
                results = self._run(
                    "video", [images[i] for i in chunk], [instructions[i] for i in chunk], num_frames, conditioning,
                    fit, [seeds[i] for i in chunk], None, num_inference_steps, guidance_scale, eta, fs, report,
                    decode_chunk_size, output_type, callback_on_step_end, callback_on_step_end_tensor_inputs, decoded,
                    new_graph_run=not outputs,
                )
            except RuntimeError as exc:  # out of memory, in PyTorch's words or a library's
                if batch_size == 1 or not ran_out_of_memory(exc):
                    raise
                # Each clip depends only on its own photo, text and seed, so a smaller chunk gives the same clips.
                batch_size = max(1, batch_size // 2)
                self._step_graphs.clear()
                logger.warning("Out of GPU memory animating %d clips at once; retrying %d at a time.",
                               len(chunk), batch_size)
                continue
            done_steps += steps
            outputs += [VideoOutput(frames=frames, metadata=metadata) for frames, metadata in results]
        return outputs if return_dict else [output.to_tuple() for output in outputs]
