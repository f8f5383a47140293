"""``IllustrationPipeline``: a goal and its steps in, one coherent illustration per step out (I2G on SDXL).

It is diffusers' ``StableDiffusionXLPipeline`` (same components, same ``from_pretrained``, LoRA loading and
offloading) with its own ``__call__``: the goal and each step's clauses are encoded as I2G assigns them
(:mod:`.encoding`), and the n step images are denoised as one batch with pairwise neighbour attention
(:mod:`.attention`). With one step of one clause and no negative prompt it reproduces ``StableDiffusionXLPipeline``
called with ``prompt=goal, prompt_2=step`` exactly.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike

import numpy as np
import PIL.Image
import torch
from diffusers import StableDiffusionXLPipeline
from diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl import retrieve_timesteps
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from .. import __version__, versions
from ..cuda_graphs import StepGraphs
from ..devices import best_device
from ..dtypes import resolve_dtype
from ..errors import InvalidInputError, WeightsNotFoundError
from ..presets import IllustrationPreset, get_illustration_preset
from ..text.clauses import ClauseSplitter
from ..text.step_lines import DEFAULT_PLANNED_STEPS, MAX_PLANNED_STEPS
from ..weights import freeze, load_preset_weights, weights_location
from . import inputs
from .anchors import REFERENCE, Window, check_anchor_options, plan_chain
from .attention import neighbour_attention_enabled
from .denoise import guided_step
from .encoding import encode_instruction, sdxl_time_ids
from .vae import DEFAULT_DECODE_CHUNK, decode_latents, encode_images

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
StepEndCallback = Callable[["IllustrationPipeline", int, torch.Tensor, dict], dict | None]


@dataclass
class IllustrationOutput(BaseOutput):
    """What :meth:`IllustrationPipeline.__call__` returns.

    ``images`` holds one image per step (PIL images, or an (n, H, W, 3) float array for ``output_type="np"``,
    or latents); ``clauses[i]`` are the clauses step i was encoded as; ``metadata`` records everything needed to
    reproduce the run (preset, seed, settings, versions).
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    goal: str
    steps: list[str]
    clauses: list[list[str]]
    metadata: dict = field(default_factory=dict)


MAX_LORA_SCALE = 4.0


def _frees_model_hooks(call: Callable) -> Callable:
    """Run diffusers' ``maybe_free_model_hooks`` when ``call`` ends, however it ends: a callback that raises to stop
    a run (the app's Stop between decoded pictures) must not leave an offloaded model on the GPU."""

    @functools.wraps(call)
    def wrapper(self, *args, **kwargs):
        try:
            return call(self, *args, **kwargs)
        finally:
            self.maybe_free_model_hooks()

    return wrapper


class IllustrationPipeline(StableDiffusionXLPipeline):
    """SDXL with I2G's clause-level text encoding and pairwise neighbour attention across the steps of a recipe.

    Build it from a preset (``IllustrationPipeline.from_preset("sdxl")``), from a diffusers SDXL folder or hub id
    (``from_pretrained``), or from components (``IllustrationPipeline(vae=..., unet=..., ...)``).
    """

    preset: IllustrationPreset | None = None
    planner = None  # a StepPlanner used when __call__ gets no steps; loaded on first need
    clause_splitter: ClauseSplitter | None = None
    lora_file: str | None = None  # a trained I2G LoRA loaded by load_trained_lora, recorded in every run's metadata
    lora_scale: float | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_preset(
        cls,
        name: str = "tiny",
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        weights: str | PathLike | None = None,
        lora: str | PathLike | None = None,
        lora_scale: float = 1.0,
        torch_dtype: torch.dtype | None = None,
    ) -> IllustrationPipeline:
        """Load a named preset (see :mod:`showme_i2g.presets`); ``weights`` points at a local copy of its base.

        ``dtype`` (default: float16 on a GPU, float32 otherwise) is diffusers' name; ``torch_dtype`` still works,
        with a FutureWarning.

        ``lora`` is an I2G LoRA trained by ``train/i2g_pairwise.py`` or ``train/i2g_reward.py`` (the safetensors file
        or its run folder); it is loaded after the preset (and any LoRA the preset fuses) and runs at ``lora_scale``.
        """
        preset = get_illustration_preset(name)
        dtype = resolve_dtype(dtype, torch_dtype)
        device = best_device(device, mps=True)
        if preset.base is None:
            from .tiny import build_tiny_sdxl_components

            pipe = cls(**build_tiny_sdxl_components())
        else:
            pipe = cls._load_real_preset(preset, device, dtype, weights)
        pipe.preset = preset
        if lora is not None:
            pipe.load_trained_lora(lora, scale=lora_scale)
        pipe.freeze()
        return pipe.to(device)

    def freeze(self) -> IllustrationPipeline:
        """No weight of an inference pipeline requires grad (training makes its own LoRA parameters trainable)."""
        return freeze(self)

    def load_trained_lora(self, path: str | PathLike, scale: float = 1.0) -> IllustrationPipeline:
        """Load a trained I2G LoRA (file or run folder) at ``scale``; run metadata names its file from then on."""
        from .lora import load_i2g_lora, lora_file

        inputs.check_number(scale, "lora_scale", 0, MAX_LORA_SCALE)
        scale = float(scale)
        load_i2g_lora(self, path, scale=scale)
        self.lora_file, self.lora_scale = str(lora_file(path)), scale
        return self.freeze()  # the loaded LoRA is for inference; training makes its own parameters trainable

    @classmethod
    def _load_real_preset(
        cls, preset: IllustrationPreset, device: torch.device, dtype: torch.dtype | None, weights
    ) -> IllustrationPipeline:
        on_gpu = device.type == "cuda"
        dtype = dtype or (torch.float16 if on_gpu else torch.float32)
        where = weights_location(weights)
        extra = {}
        if preset.vae:
            from diffusers import AutoencoderKL

            try:
                extra["vae"] = AutoencoderKL.from_pretrained(preset.vae, dtype=dtype)
            except (OSError, ValueError) as exc:
                raise WeightsNotFoundError(preset.missing_weights_message(where)) from exc
        pipe = load_preset_weights(cls.from_pretrained, preset, weights, on_gpu=on_gpu, dtype=dtype, **extra)
        if preset.scheduler_overrides:
            pipe.scheduler = pipe.scheduler.__class__.from_config(pipe.scheduler.config, **preset.scheduler_overrides)
        if preset.lora:
            from huggingface_hub import hf_hub_download

            try:
                lora_path = hf_hub_download(*preset.lora)
            except (OSError, ValueError) as exc:
                raise WeightsNotFoundError(preset.missing_weights_message(where)) from exc
            pipe.load_lora_weights(lora_path, adapter_name="distilled")
            pipe.fuse_lora(adapter_names=["distilled"])
            pipe.unload_lora_weights()
        return pipe

    # ------------------------------------------------------------------ defaults
    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this: the VAE's and the UNet's downsampling together."""
        return self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    def _defaults(self) -> tuple[int, float, int]:
        if self.preset is not None:
            return self.preset.num_inference_steps, self.preset.guidance_scale, self.preset.size
        return 30, 5.0, self.unet.config.sample_size * self.vae_scale_factor

    def _splitter(self) -> ClauseSplitter:
        if self.clause_splitter is None:
            self.clause_splitter = ClauseSplitter()
        return self.clause_splitter

    def _plan_steps(self, goal: str, max_steps: int, seed: int) -> list[str]:
        if self.planner is None:
            from ..text.planner import StepPlanner

            self.planner = StepPlanner.default(device=str(self._execution_device))
        return self.planner.plan(goal, max_steps=max_steps, seed=seed)

    # ------------------------------------------------------------------ the denoising step
    cuda_graphs: bool = True
    """On a GPU, replay each denoising step's UNet call from a CUDA graph (see :mod:`showme_i2g.cuda_graphs`)."""
    _step_graphs: StepGraphs | None = None

    def _unet_step(self, model_input, timestep, encoder_states, pooled, time_ids, encoder_mask=None) -> torch.Tensor:
        """The UNet call of one denoising step, as a function of tensors only (what a CUDA graph captures)."""
        return self.unet(
            model_input,
            timestep,
            encoder_hidden_states=encoder_states,
            encoder_attention_mask=encoder_mask,
            added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids},
            return_dict=False,
        )[0]

    def _begin_graphed_run(self) -> StepGraphs:
        """The graph cache at the start of a call, switched off where weights move between calls (model CPU
        offload hooks); the windows of one call share it."""
        if self._step_graphs is None:
            # a windowed run with a global anchor has three layouts (first, middle and last windows)
            self._step_graphs = StepGraphs(max_graphs=3)
        offloaded = bool(getattr(self, "_all_hooks", None)) or hasattr(self.unet, "_hf_hook")
        return self._step_graphs.begin_run(self.cuda_graphs and not offloaded)

    # ------------------------------------------------------------------ the call
    def check_illustration_inputs(
        self, num_inference_steps: int, guidance_scale: float, height: int, width: int, neighbour_weight: float
    ) -> None:
        inputs.check_number(num_inference_steps, "num_inference_steps", 1, inputs.MAX_INFERENCE_STEPS, integer=True)
        inputs.check_number(guidance_scale, "guidance_scale", 0, inputs.MAX_GUIDANCE)
        inputs.check_number(neighbour_weight, "neighbour_weight", 0, inputs.MAX_NEIGHBOUR_WEIGHT)
        inputs.check_size(height, width, self.size_multiple)

    def split_steps(self, steps: Sequence[str]) -> list[list[str]]:
        """Each step's clauses; a step that parses to nothing stays one clause."""
        splitter = self._splitter()
        return [splitter(step) or [step] for step in steps]

    def prepare_step_latents(self, num_steps, height, width, dtype, generator, latents) -> torch.Tensor:
        if latents is not None and latents.shape[0] != num_steps:
            raise InvalidInputError(f"latents must hold one latent per step ({num_steps}), got {latents.shape[0]}.")
        channels = self.unet.config.in_channels
        return self.prepare_latents(num_steps, channels, height, width, dtype, self._execution_device, generator,
                                    latents)

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor, output_type: str, chunk_size: int | None = DEFAULT_DECODE_CHUNK,
               callback_on_decode: ProgressCallback | None = None):
        """Latents -> images, ``chunk_size`` images per VAE call (see :mod:`.vae`: float32 where SDXL's VAE needs
        it, its dtype restored afterwards, memory independent of the number of steps); ``callback_on_decode(done,
        total)`` before each VAE call."""
        if output_type == "latent":
            return latents
        images = decode_latents(self.vae, latents, chunk_size=chunk_size, callback_on_decode=callback_on_decode)
        return self.image_processor.postprocess(images, output_type=output_type)

    # ------------------------------------------------------------------ anchors
    def prepare_anchor_images(
        self, keep: Mapping[int, object] | None, reference_image: object | None, num_steps: int, height: int,
        width: int,
    ) -> tuple[dict[int, PIL.Image.Image], PIL.Image.Image | None]:
        """Kept step images (by 0-based step) and the reference photo fitted to the run's size, or one sentence.

        A kept image must already have the run's size: it comes back pixel-identical, so it cannot be resized.
        The reference is a photo of the user's kitchen, so it is cropped to the run's aspect and resized.
        """
        from ..media import fit_photo, load_photo

        kept = inputs.check_kept_images(keep, num_steps, height, width)
        reference = None
        if reference_image is not None:
            reference, _ = fit_photo(load_photo(reference_image), (height, width), "crop")
        return kept, reference

    @torch.inference_mode()
    def encode_anchor_images(self, images: Sequence[PIL.Image.Image], dtype: torch.dtype) -> torch.Tensor:
        """PIL images -> the scaled latents an anchor is noised from (VAE posterior mode)."""
        pixels = self.image_processor.preprocess(list(images))  # (k, 3, H, W) in [-1, 1]
        return encode_images(self.vae, pixels).to(self._execution_device, dtype)

    def _denoise_window(
        self, window: Window, embeddings, guidance: bool, guidance_scale: float, initial: torch.Tensor,
        anchor_x0: dict[int, torch.Tensor], anchor_noise: torch.Tensor, height: int, width: int,
        num_inference_steps: int, generator, report: Callable[[], None],
        callback_on_step_end: StepEndCallback | None = None, callback_tensor_names: Sequence[str] = ("latents",),
    ) -> torch.Tensor:
        """Sample one window; returns its final latents (one per item; anchors come back as their x0).

        ``initial`` holds every step's starting latent (drawn once per run, so a step drawn again by the next
        window starts from the same noise); ``anchor_noise`` the fixed noise each anchor is noised with. The loop
        ends early once :attr:`interrupt` is set.
        """
        device = self._execution_device
        rows = [item if item != REFERENCE else len(initial) for item in window.items]
        encoder_states, pooled, encoder_mask = (
            t if t is None else t.to(device) for t in embeddings.select(rows).unet_inputs(guidance)
        )
        if encoder_mask is not None and bool(encoder_mask.all()):
            encoder_mask = None  # no image of this window is padded: the plain kernel, as without the others
        time_ids = sdxl_time_ids(height, width, encoder_states.shape[0]).to(device, encoder_states.dtype)
        timesteps, _ = retrieve_timesteps(self.scheduler, num_inference_steps, device)
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, 0.0)
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(0)

        anchored = [j for j, a in enumerate(window.anchored) if a]
        latents = torch.cat([initial[item:item + 1] if item != REFERENCE else initial[:1] for item in window.items])
        if anchored:
            x0 = torch.cat([anchor_x0[window.items[j]] for j in anchored]).to(latents.dtype)
            noise = torch.stack([anchor_noise[rows[j]] for j in anchored]).to(latents.dtype)
        m = len(window.items)
        graphs = self._step_graphs if self._step_graphs is not None else self._begin_graphed_run()
        graph_key = ("i2g", m, window.layout.key(), encoder_mask is not None, StepGraphs.weights_key(self.unet),
                     StepGraphs.adapters_key(self.unet))
        conditioning = (encoder_states, pooled, time_ids) + (() if encoder_mask is None else (encoder_mask,))
        layout = None if window.layout.is_plain else window.layout
        weight = window.layout.links[0] if window.layout.links else 1.0
        def predict(model_input: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            timestep = t.to(device).reshape(1).expand(model_input.shape[0])
            return graphs.run(graph_key, self._unet_step, model_input, timestep, *conditioning)

        with neighbour_attention_enabled(self.unet, num_steps=m, neighbour_weight=weight, layout=layout):
            for i, t in enumerate(timesteps):
                if anchored:  # an anchor is its x0 at this noise level, whatever the last step predicted
                    latents[anchored] = self.scheduler.add_noise(x0, noise, t.reshape(1).expand(len(anchored)))
                latents = guided_step(predict, self.scheduler, latents, t, guidance_scale, **extra_step_kwargs)
                if callback_on_step_end is not None:
                    tensors = {"latents": latents, "prompt_embeds": encoder_states, "add_text_embeds": pooled,
                               "add_time_ids": time_ids}
                    replaced = callback_on_step_end(self, i, t, {k: tensors[k] for k in callback_tensor_names}) or {}
                    latents = replaced.get("latents", latents)
                    encoder_states = replaced.get("prompt_embeds", encoder_states)
                    pooled = replaced.get("add_text_embeds", pooled)
                    time_ids = replaced.get("add_time_ids", time_ids)
                    conditioning = (encoder_states, pooled, time_ids) + (
                        () if encoder_mask is None else (encoder_mask,))
                report()
                if self.interrupt:
                    break
        if anchored:
            latents[anchored] = x0
        return latents

    def _assemble(self, drawn: dict[int, object], kept: dict[int, PIL.Image.Image], kept_latents: dict,
                  num_steps: int, output_type: str):
        """Every step's output in order: drawn ones decoded, kept ones exactly as given (on the drawn ones' device
        and dtype for tensors)."""
        if output_type == "latent":
            like = next(iter(drawn.values()))
            return torch.stack([drawn[i] if i in drawn else kept_latents[i][0].to(like.device, like.dtype)
                                for i in range(num_steps)])
        if output_type == "pil":
            return [drawn[i] if i in drawn else kept[i] for i in range(num_steps)]
        pixels = {i: np.asarray(image, dtype=np.float32) / 255.0 for i, image in kept.items()}
        if output_type == "np":
            return np.stack([drawn[i] if i in drawn else pixels[i] for i in range(num_steps)])
        like = next(iter(drawn.values()))
        return torch.stack([
            drawn[i] if i in drawn else torch.from_numpy(pixels[i]).permute(2, 0, 1).to(like.device, like.dtype)
            for i in range(num_steps)
        ])

    # ------------------------------------------------------------------ the call
    @_frees_model_hooks
    @torch.inference_mode()
    def __call__(
        self,
        goal: str,
        steps: Sequence[str] | None = None,
        *,
        negative_prompt: str | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        height: int | None = None,
        width: int | None = None,
        neighbour_weight: float = 1.0,
        keep: Mapping[int, object] | None = None,
        reference_image: object | None = None,
        reference_weight: float | None = None,
        anchor: str | None = None,
        anchor_weight: float = 1.0,
        max_batch: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        progress_callback: ProgressCallback | None = None,
        callback_on_step_end: StepEndCallback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        callback_on_decode: ProgressCallback | None = None,
        max_planned_steps: int = DEFAULT_PLANNED_STEPS,
        decode_chunk_size: int | None = DEFAULT_DECODE_CHUNK,
        return_dict: bool = True,
    ) -> IllustrationOutput | tuple:
        """Illustrate ``steps`` of ``goal``; with ``steps=None`` the planner writes them first.

        Args:
            goal: what the whole recipe achieves, e.g. "Make classic chocolate chip cookies".
            steps: one text per step, any number; ``None`` asks :attr:`planner` (default: the offline planner).
            negative_prompt: what to steer away from; ``None`` uses SDXL's zero unconditional embedding.
            num_inference_steps, guidance_scale, height, width: default to the preset's settings.
            neighbour_weight: how strongly each step sees its neighbours (0 = independent steps, 1 = plain
                attention over the three images' tokens).
            keep: ``{step number (from 1): image}``; those steps are not drawn but come back exactly as given, and
                their neighbours attend to them (re-drawing one step of a recipe keeps all the others).
            reference_image: a photo of the user's kitchen, placed before step 1 in the chain so that the scene
                carries on from it; cropped to the run's aspect.
            reference_weight: weight of the link between the reference and step 1 (default: ``neighbour_weight``).
            anchor: ``"reference"`` or ``"first"``: every step also attends to that image (the fourth key slice),
                with ``anchor_weight``; ``None``: the neighbour chain alone.
            max_batch: most images denoised in one batch (CFG doubles the UNet batch); a longer chain is drawn in
                overlapping windows (:mod:`.anchors`), so step k always sees steps k-1 and k+1.
            generator, seed: the noise source; with neither, a random seed is drawn and recorded.
            progress_callback: called as ``progress_callback(done, total)`` after every denoising step.
            callback_on_step_end: diffusers' ``callback(pipe, step, timestep, tensors) -> dict`` after every step,
                with the tensors named in ``callback_on_step_end_tensor_inputs`` (of :attr:`_callback_tensor_inputs`,
                for the current window); it may return replacements. Setting ``pipe._interrupt`` (from the callback
                or another thread) ends sampling after the current step; what exists is decoded and
                ``metadata["interrupted"]`` says so.
            callback_on_decode: called as ``callback_on_decode(done, total)`` before each VAE call that decodes the
                drawn pictures (``total`` calls: one per picture with the default ``decode_chunk_size``), so a caller
                can report the decoding's progress, or raise to stop before the remaining pictures are decoded (the
                exception propagates). Never called for ``output_type="latent"``.
            decode_chunk_size: step images per VAE call (1: peak memory independent of the number of steps;
                ``None``: all at once).
            return_dict: ``False`` returns ``IllustrationOutput.to_tuple()`` instead.
        """
        started = time.perf_counter()
        self._interrupt = False
        if callback_on_step_end is not None:
            if not callable(callback_on_step_end):
                raise ValueError(f"callback_on_step_end must be callable, got {type(callback_on_step_end).__name__}.")
            unknown = [k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]
            if unknown:
                raise ValueError(f"callback_on_step_end_tensor_inputs may name {self._callback_tensor_inputs}, "
                                 f"not {unknown}.")
        default_steps, default_guidance, default_size = self._defaults()
        num_inference_steps = default_steps if num_inference_steps is None else num_inference_steps
        guidance_scale = default_guidance if guidance_scale is None else guidance_scale
        height, width = height or default_size, width or default_size
        goal = inputs.clean_goal(goal)
        self.check_illustration_inputs(num_inference_steps, guidance_scale, height, width, neighbour_weight)
        inputs.check_number(anchor_weight, "anchor_weight", 0, inputs.MAX_NEIGHBOUR_WEIGHT)
        if reference_weight is not None:
            inputs.check_number(reference_weight, "reference_weight", 0, inputs.MAX_NEIGHBOUR_WEIGHT)
        if output_type not in ("pil", "np", "pt", "latent"):
            raise InvalidInputError(f"output_type must be 'pil', 'np', 'pt' or 'latent', not {output_type!r}.")
        check_anchor_options(anchor, reference_image is not None, max_batch)
        if negative_prompt is not None:
            negative_prompt = inputs.clean_text(negative_prompt, "negative prompt", inputs.MAX_STEP_CHARS)
        if generator is None:
            seed = random.randrange(2**31) if seed is None else seed
            generator = torch.Generator("cpu").manual_seed(seed)

        planner_name, planner_note = None, None
        if steps is None:
            inputs.check_number(max_planned_steps, "max_planned_steps", 1, MAX_PLANNED_STEPS, integer=True)
            steps = self._plan_steps(goal, max_planned_steps, seed if seed is not None else 0)
            planner_name = getattr(self.planner, "name", type(self.planner).__name__)
            planner_note = getattr(steps, "note", None)  # why a plan came out shorter than asked
        steps = inputs.clean_steps(steps, max_steps=None)
        n = len(steps)
        kept, reference = self.prepare_anchor_images(keep, reference_image, n, height, width)
        plan = plan_chain(
            n, kept=kept, has_reference=reference is not None, anchor=anchor, neighbour_weight=neighbour_weight,
            reference_weight=reference_weight, anchor_weight=anchor_weight, max_batch=max_batch,
        )
        clauses = self.split_steps(steps)

        guidance = guidance_scale > 1.0
        embeddings = encode_instruction(
            goal,
            clauses + ([[goal]] if plan.has_reference else []),  # the reference is shown as the goal's scene
            tokenizer=self.tokenizer,
            tokenizer_2=self.tokenizer_2,
            text_encoder=self.text_encoder,
            text_encoder_2=self.text_encoder_2,
            guidance=guidance,
            negative_prompt=negative_prompt,
            force_zeros_for_empty_prompt=self.config.force_zeros_for_empty_prompt,
            dtype=self.unet.dtype,
        )
        dtype = self.unet.dtype
        # the schedule first: the scheduler's init_noise_sigma (which scales the starting noise) depends on it
        timesteps, _ = retrieve_timesteps(self.scheduler, num_inference_steps, self._execution_device)
        initial = self.prepare_step_latents(n, height, width, dtype, generator, latents)
        anchor_x0: dict[int, torch.Tensor] = {}
        anchor_noise = initial.new_zeros(0)
        if any(any(window.anchored) for window in plan.windows):
            anchor_noise = randn_tensor((n + 1, *initial.shape[1:]), generator=generator,
                                        device=initial.device, dtype=initial.dtype)
            known = [*kept.items()] + ([(REFERENCE, reference)] if plan.has_reference else [])
            if known:
                encoded = self.encode_anchor_images([image for _, image in known], dtype)
                anchor_x0 = {item: encoded[j:j + 1] for j, (item, _) in enumerate(known)}

        self._begin_graphed_run()
        total = len(plan.windows) * len(timesteps)
        done = 0
        drawn_latents: dict[int, torch.Tensor] = {}
        with self.progress_bar(total=total) as bar:
            def report() -> None:
                nonlocal done
                done += 1
                bar.update()
                if progress_callback is not None:
                    progress_callback(done, total)

            for window in plan.windows:
                final = self._denoise_window(
                    window, embeddings, guidance, guidance_scale, initial, anchor_x0, anchor_noise, height, width,
                    num_inference_steps, generator, report, callback_on_step_end, callback_on_step_end_tensor_inputs,
                )
                for j, item in enumerate(window.items):
                    if item in window.decides:
                        drawn_latents[item] = final[j:j + 1]
                        anchor_x0[item] = final[j:j + 1]  # a later window carries it as an anchor
                if self.interrupt:
                    break
        for item in range(n):  # steps an interrupted run never reached: their starting noise
            if item not in drawn_latents and item not in kept:
                drawn_latents[item] = initial[item:item + 1]

        order = sorted(drawn_latents)
        decoded = self.decode(torch.cat([drawn_latents[i] for i in order]), output_type, chunk_size=decode_chunk_size,
                              callback_on_decode=callback_on_decode)
        images = self._assemble(dict(zip(order, decoded)), kept, anchor_x0, n, output_type)
        metadata = {
            "preset": self.preset.name if self.preset else None,
            "seed": seed,
            "num_inference_steps": num_inference_steps,
            "guidance_scale": guidance_scale,
            "height": height,
            "width": width,
            "neighbour_weight": neighbour_weight,
            "negative_prompt": negative_prompt,
            "kept_steps": [k + 1 for k in plan.kept],
            "reference_pixels_sha256":  # of the photo as fitted to the run's size: what the model saw
            None if reference is None else hashlib.sha256(reference.tobytes()).hexdigest(),
            "reference_weight": None if reference is None else
            (neighbour_weight if reference_weight is None else reference_weight),
            "anchor": anchor,
            "anchor_weight": anchor_weight if anchor else None,
            "max_batch": max_batch,
            "windows": plan.describe() if len(plan.windows) > 1 or plan.kept or reference is not None else None,
            "lora": self.lora_file,
            "lora_scale": self.lora_scale,
            "scheduler": type(self.scheduler).__name__,
            "clause_backend": self._splitter().backend,
            "planner": planner_name,
            "planner_note": planner_note,
            "device": str(self._execution_device),
            "dtype": str(self.unet.dtype).replace("torch.", ""),
            "interrupted": self.interrupt,
            "seconds": round(time.perf_counter() - started, 3),
            "showme_i2g": __version__,
            "versions": versions(),
        }
        output = IllustrationOutput(images=images, goal=goal, steps=steps, clauses=clauses, metadata=metadata)
        return output if return_dict else output.to_tuple()
