"""Differentiable image-text alignment rewards for I2G's reward fine-tuning (section 4.4).

I2G ascends J(theta) = E[r(sample(theta, g, s, x_T), g, s)] where r scores how well a generated step image
matches its text. For DRaFT/AlignProp-style training the reward must be differentiable with respect to the
*pixels*, so everything between the decoded image and the score is torch: the resize to the reward model's input
size (bicubic, antialiased), the centre crop and the mean/std normalisation. No PIL or numpy appears in the graph.

The default is CLIP (``openai/clip-vit-large-patch14`` through transformers' ``CLIPModel``); any CLIP-family hub id
or local folder works (e.g. LAION's ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``). Other rewards plug in through
:data:`ALIGNMENT_REWARDS`: a name -> factory mapping whose products are modules with
``forward(images, texts) -> (B,) scores`` taking images in [-1, 1], shape (B, 3, H, W).
The reward network is frozen: it only passes gradients through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from ..errors import missing_weights
from ..text.tokenizers import check_tokenizer, load_clip_tokenizer

__all__ = [
    "ALIGNMENT_REWARDS",
    "DEFAULT_ALIGNMENT_MODEL",
    "CLIPAlignmentReward",
    "build_alignment_reward",
    "differentiable_clip_preprocess",
]

DEFAULT_ALIGNMENT_MODEL = "openai/clip-vit-large-patch14"
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def differentiable_clip_preprocess(
    images: torch.Tensor, size: int, mean: Sequence[float] = OPENAI_CLIP_MEAN, std: Sequence[float] = OPENAI_CLIP_STD
) -> torch.Tensor:
    """CLIPImageProcessor's steps in torch: [-1, 1] -> [0, 1], shorter side to ``size`` (bicubic), centre crop,
    normalise.

    Matches the processor up to interpolation details (PIL's bicubic vs torch's antialiased bicubic); unlike
    the processor it keeps the autograd graph.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}.")
    x = (images.float() + 1) / 2
    height, width = x.shape[-2:]
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    if (new_h, new_w) != (height, width):
        x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    x = x[..., top : top + size, left : left + size]
    mean_t = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean_t) / std_t


class CLIPAlignmentReward(torch.nn.Module):
    """r(image, text) = cosine similarity of CLIP's image and text embeddings (differentiable in the image).

    ``scale`` multiplies the cosine (CLIPScore uses 2.5 and clips at 0; we do not clip, so the gradient never
    vanishes). Text embeddings are computed without gradients and cached per text, since only images change.
    """

    def __init__(
        self,
        model: CLIPModel,
        tokenizer: CLIPTokenizer,
        *,
        mean: Sequence[float] = OPENAI_CLIP_MEAN,
        std: Sequence[float] = OPENAI_CLIP_STD,
        scale: float = 1.0,
        name: str = "clip",
    ) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.mean, self.std, self.scale, self.name = tuple(mean), tuple(std), scale, name
        self.image_size = model.config.vision_config.image_size
        self._text_cache: dict[str, torch.Tensor] = {}

    @classmethod
    def from_pretrained(cls, model_id: str = DEFAULT_ALIGNMENT_MODEL, *, dtype: torch.dtype | None = None,
                        **kwargs) -> CLIPAlignmentReward:
        """Load a CLIP model, its tokenizer and its normalisation constants from the hub or a local folder."""
        try:
            model = CLIPModel.from_pretrained(model_id, dtype=dtype)
            tokenizer = CLIPTokenizer.from_pretrained(model_id)
            check_tokenizer(tokenizer, model_id)
        except (OSError, ValueError) as exc:
            raise missing_weights(f"The alignment reward's CLIP model {model_id}", model_id) from exc
        mean, std = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
        try:
            from transformers import CLIPImageProcessor

            processor = CLIPImageProcessor.from_pretrained(model_id)
            mean, std = processor.image_mean, processor.image_std
        except (OSError, ValueError, ImportError):
            pass  # the OpenAI constants, which every public CLIP release uses
        return cls(model, tokenizer, mean=mean, std=std, name=model_id, **kwargs)

    @classmethod
    def tiny(cls, seed: int = 0, image_size: int = 32) -> CLIPAlignmentReward:
        """A tiny random CLIP with the real architecture and the shipped BPE tokenizer (tests, CI, benchmarks)."""
        torch.manual_seed(seed)
        config = CLIPConfig(
            text_config={"vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                         "num_attention_heads": 4, "max_position_embeddings": 77, "bos_token_id": 49406,
                         "eos_token_id": 49407, "pad_token_id": 49407},
            vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                           "num_attention_heads": 4, "image_size": image_size, "patch_size": 8},
            projection_dim=16,
        )
        return cls(CLIPModel(config), load_clip_tokenizer(), name="tiny")

    def _text_embeddings(self, texts: Sequence[str], device: torch.device) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if missing:
            tokens = self.tokenizer(missing, padding="max_length", max_length=self.tokenizer.model_max_length,
                                    truncation=True, return_tensors="pt")
            with torch.no_grad():
                features = self.model.get_text_features(input_ids=tokens.input_ids.to(device))
                features = getattr(features, "pooler_output", features)
            for text, feature in zip(missing, F.normalize(features.float(), dim=-1)):
                self._text_cache[text] = feature
        return torch.stack([self._text_cache[t].to(device) for t in texts])

    def forward(self, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """Scores (B,) for images in [-1, 1] of shape (B, 3, H, W) and one text per image."""
        if len(texts) != images.shape[0]:
            raise ValueError(f"Got {images.shape[0]} images but {len(texts)} texts.")
        pixels = differentiable_clip_preprocess(images, self.image_size, self.mean, self.std)
        dtype = next(self.model.parameters()).dtype
        features = self.model.get_image_features(pixel_values=pixels.to(dtype))
        features = getattr(features, "pooler_output", features)
        image_embeds = F.normalize(features.float(), dim=-1)
        return self.scale * (image_embeds * self._text_embeddings(texts, images.device)).sum(dim=-1)


ALIGNMENT_REWARDS: dict[str, Callable[..., torch.nn.Module]] = {
    "clip": CLIPAlignmentReward.from_pretrained,
    "tiny": lambda **kw: CLIPAlignmentReward.tiny(**kw),
}


def build_alignment_reward(name: str = DEFAULT_ALIGNMENT_MODEL, **kwargs) -> torch.nn.Module:
    """A registered reward by name (``"tiny"``, ``"clip"``), or a CLIP hub id / local folder."""
    if name in ALIGNMENT_REWARDS:
        return ALIGNMENT_REWARDS[name](**kwargs)
    return CLIPAlignmentReward.from_pretrained(name, **kwargs)
