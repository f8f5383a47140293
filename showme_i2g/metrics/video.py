"""ShowMe's video metrics (ShowMe §4, Table 2): FVD, FID over frames, VQAScore and video-text similarity.

Every metric takes its network as a plugged-in callable, so the arithmetic is tested with tiny networks and the real
defaults load the real weights:

- **FVD** (Unterthiner et al. 2018): :class:`~.fid.FID`'s Fréchet distance over clip features of the Kinetics-400
  I3D (:class:`~.i3d.I3DFeatures`). Clips are cut to their first ``num_frames`` frames (16, as in the standard
  protocol and DynamiCrafter's output), so every clip covers the same time span.
- **FID over frames**: the image FID over every frame of every clip, generated frames against target frames.
- **VQAScore** (Lin et al. 2024): the probability that a vision-language model answers "Yes" to "Does this figure
  show {instruction}?" as the first token of its answer. For a video it is the mean over ``frames`` frames sampled
  uniformly from first to last (the released VQAScore is image-only; ShowMe does not say how it scores videos, so
  averaging frames is our choice and is recorded with the results).
- **Video-text similarity** (ShowMe uses ViCLIP on SSv2 and EgoVLP on Epic100): the cosine between a video embedding
  and the instruction's text embedding, through :class:`~.image.EmbeddingSimilarity` with a video embedder. ViCLIP
  (``OpenGVLab/ViCLIP``, InternVid) and EgoVLP (``showlab/EgoVLP``'s ``egovlp.pth``) ship their own model code, not
  transformers classes, so they plug in as callables; :class:`FrameAverageCLIP` is the one available here: CLIP
  image embeddings averaged over sampled frames. It is an approximation of ViCLIP (no temporal modelling), named so
  in every report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import InvalidInputError, missing_weights
from .encoders import CLIPEncoder  # ViCLIP's image tower is a ViT-L/14 too
from .fid import FID, FeatureExtractor
from .image import EmbeddingSimilarity

__all__ = [
    "DEFAULT_VQA_MODEL",
    "VQA_QUESTION",
    "FVD",
    "FrameAverageCLIP",
    "FrameFID",
    "TransformersVQA",
    "VQAScore",
    "sample_frame_indices",
    "video_text_similarity",
    "yes_probability",
]

Clip = Any  # (T, H, W, 3) uint8 array or a list of such frames / PIL images
DEFAULT_FVD_FRAMES = 16
DEFAULT_VQA_MODEL = "llava-hf/llava-1.5-7b-hf"
VQA_QUESTION = 'Does this figure show "{instruction}"? Please answer yes or no.'
"""VQAScore's released template; ShowMe quotes its core, "Does this figure show {action instruction}?"."""


def _clip_array(clip: Clip) -> np.ndarray:
    """One clip as (T, H, W, 3) uint8."""
    if isinstance(clip, np.ndarray) and clip.ndim == 4:
        array = clip
    else:
        frames = [np.asarray(f.convert("RGB")) if isinstance(f, Image.Image) else np.asarray(f) for f in clip]
        if not frames:
            raise InvalidInputError("A video has no frames.")
        if len({f.shape for f in frames}) != 1:
            raise InvalidInputError("All frames of a video must be the same size.")
        array = np.stack(frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise InvalidInputError(f"A video must be 8-bit RGB frames (frames, height, width, 3), got {array.shape}.")
    return array


def sample_frame_indices(length: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly from the first to the last frame (all frames when fewer)."""
    if length < 1:
        raise InvalidInputError("A video has no frames.")
    if count >= length:
        return list(range(length))
    if count == 1:
        return [0]
    return [round(i * (length - 1) / (count - 1)) for i in range(count)]


# ---------------------------------------------------------------------------------------------------------------------
# Fréchet distances
# ---------------------------------------------------------------------------------------------------------------------


class FVD(FID):
    """Fréchet Video Distance: :class:`FID` over I3D features of ``num_frames``-frame clips.

    ``feature_extractor`` maps a ``(B, T, 3, H, W)`` float batch in ``[0, 1]`` to ``(B, D)`` features; None loads the
    default :class:`~.i3d.I3DFeatures` (the StyleGAN-V TorchScript export of the TF-Hub I3D). :meth:`update` takes a
    list of clips (uint8 ``(T, H, W, 3)``); each is cut to its first ``num_frames`` frames and clips of one call are
    resized to the first clip's size, which I3D's own preprocessing (short side to 224, centre crop) makes harmless.
    """

    def __init__(self, feature_extractor: FeatureExtractor | None = None, num_frames: int = DEFAULT_FVD_FRAMES) -> None:
        if feature_extractor is None:
            from .i3d import I3DFeatures

            feature_extractor = I3DFeatures()
        super().__init__(feature_extractor)
        self.num_frames = int(num_frames)

    def clip_batch(self, clips: Sequence[Clip]) -> torch.Tensor:
        """Clips -> ``(B, num_frames, 3, H, W)`` float in ``[0, 1]``."""
        batch = []
        for clip in clips:
            array = _clip_array(clip)
            if len(array) < self.num_frames:
                raise InvalidInputError(f"FVD needs clips of at least {self.num_frames} frames; one has {len(array)}.")
            frames = torch.from_numpy(np.ascontiguousarray(array[: self.num_frames])).permute(0, 3, 1, 2).float() / 255
            if batch and frames.shape[-2:] != batch[0].shape[-2:]:
                frames = torch.nn.functional.interpolate(frames, size=batch[0].shape[-2:], mode="bilinear")
            batch.append(frames)
        if not batch:
            raise InvalidInputError("There are no videos to compute FVD on.")
        return torch.stack(batch)

    def update(self, clips: Sequence[Clip], real: bool) -> None:  # type: ignore[override]
        """Add real (``real=True``, the targets) or generated clips."""
        super().update(self.clip_batch(clips), real)


class FrameFID(FID):
    """FID over frames: every frame of every clip is one image of the image FID.

    ``feature_extractor`` is the image FID's (Inception-v3 pool3 for real FID) and receives lists of PIL images.
    """

    def __init__(self, feature_extractor: FeatureExtractor, batch_size: int = 64) -> None:
        super().__init__(feature_extractor)
        self.batch_size = int(batch_size)

    def update(self, clips: Sequence[Clip], real: bool) -> None:  # type: ignore[override]
        frames = [Image.fromarray(frame) for clip in clips for frame in _clip_array(clip)]
        for start in range(0, len(frames), self.batch_size):
            super().update(frames[start : start + self.batch_size], real)


# ---------------------------------------------------------------------------------------------------------------------
# VQAScore
# ---------------------------------------------------------------------------------------------------------------------

YesScorer = Callable[[Sequence[Image.Image], Sequence[str]], Sequence[float]]
"""(images, questions) -> P("Yes") for each pair."""


def yes_probability(first_token_logits: torch.Tensor, yes_token_ids: Sequence[int]) -> torch.Tensor:
    """P(the answer starts with "Yes"): the first answer token's full-vocabulary softmax, summed over the yes tokens.

    ``first_token_logits`` is ``(N, vocab)``. ``yes_token_ids`` holds the distinct first tokens of the spellings of
    "Yes" the tokenizer can produce there (e.g. ``Yes`` and ``▁Yes`` for SentencePiece), so a model is not
    penalised for its tokenizer's word-boundary convention. As in VQAScore, there is no renormalisation against
    "No": other answers keep their probability mass.
    """
    ids = sorted(set(int(i) for i in yes_token_ids))
    if not ids:
        raise ValueError("yes_token_ids is empty")
    return torch.softmax(first_token_logits.float(), dim=-1)[:, ids].sum(dim=-1)


class TransformersVQA:
    """A transformers vision-language model as a :data:`YesScorer`: P("Yes") of its first generated token.

    Any ``AutoModelForImageTextToText`` checkpoint whose processor has a chat template works, decoder-only
    (``llava-hf/llava-1.5-7b-hf``, the default) or encoder-decoder (``Salesforce/instructblip-flan-t5-xl``).
    The first answer token's raw logits come from ``generate(max_new_tokens=1, output_logits=True)``, which handles
    both kinds. (VQAScore's paper model, CLIP-FlanT5, is not a transformers class.)
    """

    def __init__(self, model: Any, processor: Any, device: str | torch.device | None = None) -> None:
        self.model, self.processor = model.eval(), processor
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model.to(self.device)
        tokenizer = getattr(processor, "tokenizer", processor)
        ids = {tokenizer.encode(word, add_special_tokens=False)[0] for word in ("Yes", " Yes")}
        self.yes_token_ids = sorted(ids)

    @classmethod
    def from_pretrained(cls, model_id: str = DEFAULT_VQA_MODEL, device: str | None = None, **kwargs) -> TransformersVQA:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            processor = AutoProcessor.from_pretrained(model_id)
            model = AutoModelForImageTextToText.from_pretrained(model_id, **kwargs)
        except OSError as error:
            raise missing_weights(f"The VQAScore model {model_id}", model_id, instead="pass another model") from error
        return cls(model, processor, device)

    def prompt(self, question: str) -> str:
        conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return self.processor.apply_chat_template(conversation, add_generation_prompt=True)

    @torch.no_grad()
    def __call__(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[float]:
        prompts = [self.prompt(q) for q in questions]
        inputs = self.processor(images=list(images), text=prompts, return_tensors="pt", padding=True).to(self.device)
        out = self.model.generate(
            **inputs, max_new_tokens=1, do_sample=False, output_logits=True, return_dict_in_generate=True
        )
        return yes_probability(out.logits[0], self.yes_token_ids).cpu().tolist()


class EmbeddingVQA:
    """A stand-in :data:`YesScorer` for offline runs: P(yes) = sigmoid(``sharpness`` · cos(image, question)) from a
    CLIP encoder. Not a VQA model: it lets the VQAScore code path run without a vision-language model's weights."""

    def __init__(self, clip: Any, sharpness: float = 10.0) -> None:
        self.clip, self.sharpness = clip, float(sharpness)

    @classmethod
    def tiny(cls, clip: Any | None = None) -> EmbeddingVQA:
        """On the given (or a fresh :meth:`FrameAverageCLIP.tiny`) tiny CLIP."""
        return cls(clip if clip is not None else FrameAverageCLIP.tiny())

    @torch.no_grad()
    def __call__(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[float]:
        cos = (self.clip.image_embedder(images) * self.clip.text_embedder(questions)).sum(-1)
        return torch.sigmoid(self.sharpness * cos).tolist()


class VQAScore:
    """VQAScore of images or videos against their instructions, from any :data:`YesScorer`.

    ``frames`` frames per video are sampled uniformly (first to last) and their scores averaged.
    """

    def __init__(
        self, scorer: YesScorer, question: str = VQA_QUESTION, frames: int = 4, batch_size: int = 8
    ) -> None:
        if "{instruction}" not in question:
            raise ValueError("the question template must contain {instruction}")
        self.scorer, self.question, self.frames, self.batch_size = scorer, question, int(frames), int(batch_size)

    def questions(self, instructions: Sequence[str]) -> list[str]:
        return [self.question.format(instruction=text.strip().rstrip(".?!")) for text in instructions]

    def images(self, images: Sequence[Image.Image], instructions: Sequence[str]) -> np.ndarray:
        """P("Yes") for each image with its instruction, ``(N,)``."""
        if len(images) != len(instructions):
            raise InvalidInputError(f"{len(images)} images cannot be paired with {len(instructions)} instructions.")
        questions = self.questions(instructions)
        scores: list[float] = []
        for start in range(0, len(images), self.batch_size):
            stop = start + self.batch_size
            batch = [float(p) for p in self.scorer(list(images[start:stop]), questions[start:stop])]
            if len(batch) != len(images[start:stop]):
                raise ValueError(f"the VQA scorer returned {len(batch)} scores for {len(images[start:stop])} images")
            scores += batch
        return np.asarray(scores, dtype=np.float64)

    def videos(self, clips: Sequence[Clip], instructions: Sequence[str]) -> np.ndarray:
        """Mean P("Yes") over ``frames`` sampled frames of each clip, ``(N,)``."""
        if len(clips) != len(instructions):
            raise InvalidInputError(f"{len(clips)} videos cannot be paired with {len(instructions)} instructions.")
        images, owners = [], []
        for index, clip in enumerate(clips):
            array = _clip_array(clip)
            for t in sample_frame_indices(len(array), self.frames):
                images.append(Image.fromarray(array[t]))
                owners.append(index)
        per_frame = self.images(images, [instructions[i] for i in owners])
        owners_array = np.asarray(owners)
        return np.array([per_frame[owners_array == i].mean() for i in range(len(clips))])


# ---------------------------------------------------------------------------------------------------------------------
# Video-text similarity (ViCLIP / EgoVLP protocol)
# ---------------------------------------------------------------------------------------------------------------------


def video_text_similarity(video_embedder: Callable, text_embedder: Callable) -> EmbeddingSimilarity:
    """Cosine of each video's embedding with its text's (call as ``metric(clips, texts)``).

    Plug ViCLIP's or EgoVLP's towers here on a GPU; :class:`FrameAverageCLIP` provides both towers offline-capable.
    """
    return EmbeddingSimilarity(video_embedder, text_embedder)


class FrameAverageCLIP(CLIPEncoder):
    """CLIP (:class:`~showme_i2g.metrics.encoders.CLIPEncoder`) as a video-text model: the mean of ``frames``
    frame embeddings.

    This is the *frame-average approximation* of ViCLIP: same contrastive image-text space, no temporal model. Each
    frame embedding is L2-normalised before averaging (each frame counts equally) and the mean is renormalised.
    The inherited ``image_embedder`` / ``text_embedder`` also serve CLIP-I and CLIP-T.
    """

    def __init__(self, model: Any, processor: Any, device: str | torch.device | None = None, batch_size: int = 32,
                 frames: int = 8) -> None:
        super().__init__(model, processor, device, batch_size)
        self.frames = int(frames)

    @torch.no_grad()
    def video_embedder(self, clips: Sequence[Clip]) -> torch.Tensor:
        out = []
        for clip in clips:
            array = _clip_array(clip)
            frames = [Image.fromarray(array[t]) for t in sample_frame_indices(len(array), self.frames)]
            out.append(torch.nn.functional.normalize(self.image_embedder(frames).mean(dim=0), dim=-1))
        return torch.stack(out)
