"""The image and text encoders the embedding metrics plug in: CLIP (CLIPScore, CLIP-T, CLIP-I, faithfulness) and DINOv2.

Each encoder turns a batch of PIL images (or strings) into L2-normalised ``(N, D)`` CPU float tensors, batch by batch
on its device, so a metric only takes cosines. The real defaults name the weights the papers use and load them through
``from_pretrained``: ``openai/clip-vit-large-patch14`` (CLIP ViT-L/14, SDXL's own goal encoder and the model behind
CLIPScore/CLIP-I/CLIP-T in ShowMe) and ``facebook/dinov2-base`` (DINO-I and cross-image consistency; its CLS token
after the final layer norm). ``tiny()`` builds the same classes from tiny configs in code, with the shipped CLIP BPE
tokenizer, so every metric runs offline with random weights (numbers that test the plumbing, not a model).

:class:`CLIPScore` is Hessel et al.'s reference-free score ``w * max(cos(image, text), 0)`` with ``w = 2.5``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

from ..devices import best_device
from ..errors import InvalidInputError, missing_weights
from .distribution import CLIP_SCORE_WEIGHT, clip_score
from .image import EmbeddingSimilarity

__all__ = ["DEFAULT_CLIP_MODEL", "DEFAULT_DINO_MODEL", "CLIPEncoder", "CLIPScore", "DINOEncoder", "default_device"]

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
DEFAULT_DINO_MODEL = "facebook/dinov2-base"
_TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


def default_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, else CUDA when present, else the CPU."""
    return best_device(device)  # never MPS: the reference networks are checked on CUDA and the CPU


def _rgb(images: Sequence[Any]) -> list[Image.Image]:
    if len(images) == 0:
        raise InvalidInputError("There are no images to encode.")
    return [image.convert("RGB") if isinstance(image, Image.Image) else Image.fromarray(image) for image in images]


class _Encoder:
    """Shared loading and batching: ``batch_size`` items at a time on ``device``, results normalised on the CPU."""

    kind = "encoder"  # how messages and reports name the model family ("CLIP", "DINOv2")

    def __init__(self, model: Any, processor: Any, device: str | torch.device | None = None, batch_size: int = 32):
        self.device = default_device(device)
        self.model = model.eval().to(self.device)
        self.processor = processor
        self.batch_size = int(batch_size)
        self.progress = False  # tqdm bars over batches (long evaluation runs)
        self.name = getattr(model, "name_or_path", "") or self.kind.lower()

    @classmethod
    def _from_hub(cls, model_id: str, device: str | None, load_processor: Callable[[str], Any],
                  load_model: Callable[..., Any], **kwargs: Any) -> Any:
        """``cls`` over the processor and model a hub id or folder holds, or the one missing-weights sentence."""
        try:
            processor = load_processor(model_id)
            model = load_model(model_id, **kwargs)
        except OSError as error:
            raise missing_weights(f"The {cls.kind} model {model_id}", model_id) from error
        encoder = cls(model, processor, device)
        encoder.name = model_id
        return encoder

    def _batched(self, items: Sequence[Any], encode) -> torch.Tensor:
        starts = range(0, len(items), self.batch_size)
        if self.progress and len(starts) > 1:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"{self.name} embeddings", unit="batch", leave=False)
        out = [encode(list(items[i : i + self.batch_size])) for i in starts]
        return torch.nn.functional.normalize(torch.cat(out).float(), dim=-1).cpu()

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


class CLIPEncoder(_Encoder):
    """A transformers ``CLIPModel`` and its processor as image and text embedders (projected, normalised)."""

    kind = "CLIP"

    @classmethod
    def from_pretrained(cls, model_id: str = DEFAULT_CLIP_MODEL, device: str | None = None, **kwargs) -> CLIPEncoder:
        from transformers import CLIPModel, CLIPProcessor

        from ..text.tokenizers import check_tokenizer

        def load_processor(source: str) -> Any:
            processor = CLIPProcessor.from_pretrained(source)
            check_tokenizer(processor.tokenizer, f"CLIP model {source}")  # offline hub ids can load empty
            return processor

        return cls._from_hub(model_id, device, load_processor, CLIPModel.from_pretrained, **kwargs)

    @classmethod
    def tiny(cls, seed: int = 0, device: str | None = "cpu") -> CLIPEncoder:
        """A random 2-layer CLIP (32-px images, 16-d projections) with the real CLIP BPE tokenizer."""
        from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

        from ..text.tokenizers import load_clip_tokenizer

        torch.manual_seed(seed)
        config = CLIPConfig(text_config=_TINY, vision_config=dict(_TINY, image_size=32, patch_size=8),
                            projection_dim=16)
        processor = CLIPProcessor(
            image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
            tokenizer=load_clip_tokenizer(),
        )
        encoder = cls(CLIPModel(config), processor, device)
        encoder.name = "tiny-clip"
        return encoder

    @staticmethod
    def _tensor(output: Any) -> torch.Tensor:
        return output if isinstance(output, torch.Tensor) else output.pooler_output  # transformers 5 returns outputs

    @torch.no_grad()
    def image_embedder(self, images: Sequence[Any]) -> torch.Tensor:
        def encode(batch):
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]
            return self._tensor(self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype)))

        return self._batched(_rgb(images), encode)

    @torch.no_grad()
    def text_embedder(self, texts: Sequence[str]) -> torch.Tensor:
        if len(texts) == 0:
            raise InvalidInputError("There are no texts to encode.")

        def encode(batch):
            tokens = self.processor(text=batch, return_tensors="pt", padding=True, truncation=True, max_length=77)
            return self._tensor(self.model.get_text_features(**tokens.to(self.device)))

        return self._batched([str(t) for t in texts], encode)


class DINOEncoder(_Encoder):
    """DINOv2 (transformers ``Dinov2Model``) as an image embedder: the CLS token after the final layer norm."""

    kind = "DINOv2"

    @classmethod
    def from_pretrained(cls, model_id: str = DEFAULT_DINO_MODEL, device: str | None = None, **kwargs) -> DINOEncoder:
        from transformers import AutoImageProcessor, Dinov2Model

        return cls._from_hub(model_id, device, AutoImageProcessor.from_pretrained, Dinov2Model.from_pretrained,
                             **kwargs)

    @classmethod
    def tiny(cls, seed: int = 0, device: str | None = "cpu") -> DINOEncoder:
        """A random 2-layer DINOv2 on 32-px images, preprocessed like the real one (ImageNet mean/std)."""
        from transformers import CLIPImageProcessor, Dinov2Config, Dinov2Model

        torch.manual_seed(seed)
        config = Dinov2Config(**_TINY, image_size=32, patch_size=8)
        processor = CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
            image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225], do_convert_rgb=True,
        )
        encoder = cls(Dinov2Model(config), processor, device)
        encoder.name = "tiny-dinov2"
        return encoder

    @torch.no_grad()
    def image_embedder(self, images: Sequence[Any]) -> torch.Tensor:
        def encode(batch):
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]
            return self.model(pixel_values=pixels.to(self.device, self.dtype)).last_hidden_state[:, 0]

        return self._batched(_rgb(images), encode)

    __call__ = image_embedder


class CLIPScore:
    """CLIPScore (Hessel et al. 2021): ``w * max(cos(image, text), 0)`` for each image-text pair; ``w = 2.5``.

    ``encoder`` is anything with ``image_embedder`` and ``text_embedder`` (a :class:`CLIPEncoder`).
    """

    def __init__(self, encoder: Any, w: float = CLIP_SCORE_WEIGHT) -> None:
        self.similarity = EmbeddingSimilarity(encoder.image_embedder, encoder.text_embedder)
        self.w = float(w)

    def __call__(self, images: Sequence[Any], texts: Sequence[str]) -> torch.Tensor:
        """One score per pair, shape ``(N,)``."""
        return clip_score(self.similarity(images, texts), self.w)

    def mean(self, images: Sequence[Any], texts: Sequence[str]) -> float:
        return float(self(images, texts).double().mean())
