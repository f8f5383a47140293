"""Image captioning for I2G's evaluation protocol (I2G §5.2, appendix A.2): one of 21 prompts, drawn with a seed.

I2G captions each generated image with a multimodal LLM, asking it with one of the 21 prompts of its appendix A.2
chosen at random, then compares the caption with the step text. The draw is seeded here (:func:`draw_prompts`), so a
report can be reproduced caption for caption. A captioner is any callable ``(images, prompts) -> captions``;
:class:`VLMCaptioner` wraps a transformers vision-language model:

- BLIP-2 (default ``Salesforce/blip2-opt-2.7b``, ``Blip2ForConditionalGeneration``), prompted the way BLIP-2 was
  trained for VQA: ``"Question: {prompt} Answer:"``;
- LLaVA (``llava-hf/llava-1.5-7b-hf`` or any ``AutoModelForImageTextToText`` with a chat template), the prompt as a
  user turn with the image in place of the paper's ``<image>`` marker.

Decoding is greedy (``max_new_tokens`` 40), so a seed fixes the whole caption set. ``VLMCaptioner.tiny()`` is a random
BLIP-2 with a tiny OPT decoder and the shipped CLIP BPE tokenizer: same classes and code path, nonsense captions.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from ..errors import InvalidInputError, missing_weights
from ..metrics.encoders import default_device

__all__ = ["CAPTION_PROMPTS", "DEFAULT_CAPTIONER", "LLAVA_CAPTIONER", "VLMCaptioner", "draw_prompts"]

DEFAULT_CAPTIONER = "Salesforce/blip2-opt-2.7b"
LLAVA_CAPTIONER = "llava-hf/llava-1.5-7b-hf"
IMAGE_MARKER = "<image>"

CAPTION_PROMPTS: tuple[str, ...] = (
    "Describe this image <image> in a detailed manner",
    "What happened in the picture <image>? Answer in short sentences.",
    "Briefly say the content of this scene <image>",
    "Show the content in the photo <image> in short text.",
    "Please describe the content of the image <image> in a few words.",
    "What is the content of the image <image>? Please answer in short sentences.",
    "Can you give me a brief description of this image <image>?",
    "What do you see in this picture <image>?",
    "In a few words, describe the content of the image <image>.",
    "Provide a concise explanation of this photograph <image>.",
    "What is happening in this scene <image>?",
    "Summarize the content of the photo <image>.",
    "What are the main elements present in the image <image>?",
    "Quickly explain the content of this visual <image>.",
    "In a nutshell, what can you say about this picture <image>?",
    "What's the main subject in the image <image>?",
    "Describe the main features of the image <image>.",
    "What is depicted in this photograph <image>?",
    "Give me a short description of the picture <image>.",
    "Briefly describe the objects and actions in the image <image>.",
    "What is the context of this image <image>?",
)
"""I2G appendix A.2, verbatim (data): "Randomly choose one from the above when generating captions"."""


def draw_prompts(count: int, seed: int) -> list[str]:
    """``count`` prompts drawn uniformly with replacement from :data:`CAPTION_PROMPTS` by ``random.Random(seed)``."""
    rng = random.Random(seed)
    return [rng.choice(CAPTION_PROMPTS) for _ in range(count)]


def _without_marker(prompt: str) -> str:
    """The prompt with the paper's ``<image>`` placeholder removed (the processor places the image tokens)."""
    return " ".join(prompt.replace(IMAGE_MARKER, " ").split()).replace(" ?", "?").replace(" .", ".")


class VLMCaptioner:
    """A transformers vision-language model as a captioner: ``captioner(images, prompts) -> list[str]``.

    ``style`` is ``"blip2"`` (``Question: ... Answer:``) or ``"chat"`` (the processor's chat template).
    """

    def __init__(self, model: Any, processor: Any, style: str = "blip2", device: str | torch.device | None = None,
                 batch_size: int = 8, max_new_tokens: int = 40) -> None:
        if style not in ("blip2", "chat"):
            raise ValueError(f"style must be 'blip2' or 'chat', got {style!r}")
        self.device = default_device(device)
        self.model = model.eval().to(self.device)
        self.processor, self.style = processor, style
        self.batch_size, self.max_new_tokens = int(batch_size), int(max_new_tokens)
        self.name = getattr(model, "name_or_path", "") or type(model).__name__

    @classmethod
    def from_pretrained(cls, model_id: str = DEFAULT_CAPTIONER, device: str | None = None, **kwargs) -> VLMCaptioner:
        """BLIP-2 checkpoints load as ``Blip2ForConditionalGeneration``; anything else (LLaVA...) as a chat model."""
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor, Blip2ForConditionalGeneration

        device = default_device(device)
        if device.type == "cuda":
            kwargs.setdefault("dtype", torch.float16)
        try:
            blip2 = AutoConfig.from_pretrained(model_id).model_type == "blip-2"
            processor = AutoProcessor.from_pretrained(model_id)
            loader = Blip2ForConditionalGeneration if blip2 else AutoModelForImageTextToText
            model = loader.from_pretrained(model_id, **kwargs)
        except OSError as error:
            raise missing_weights(f"The captioning model {model_id}", model_id) from error
        captioner = cls(model, processor, "blip2" if blip2 else "chat", device)
        captioner.name = model_id
        return captioner

    @classmethod
    def tiny(cls, seed: int = 0, device: str | None = "cpu") -> VLMCaptioner:
        """A random BLIP-2 (2-layer ViT, Q-Former and OPT, 4 query tokens) with the shipped CLIP BPE tokenizer."""
        from transformers import (
            Blip2Config,
            Blip2ForConditionalGeneration,
            Blip2Processor,
            BlipImageProcessor,
            OPTConfig,
        )

        from ..text.tokenizers import load_clip_tokenizer

        tokenizer = load_clip_tokenizer()
        processor = Blip2Processor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                                   tokenizer=tokenizer, num_query_tokens=4)
        tokenizer = processor.tokenizer  # now holding the image token
        layers = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
        text = OPTConfig(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=2,
                         vocab_size=len(tokenizer), word_embed_proj_dim=32, max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
        config = Blip2Config(vision_config=dict(layers, image_size=32, patch_size=8),
                             qformer_config=dict(layers, encoder_hidden_size=32), text_config=text.to_dict(),
                             num_query_tokens=4, image_token_index=tokenizer.convert_tokens_to_ids("<image>"))
        torch.manual_seed(seed)
        captioner = cls(Blip2ForConditionalGeneration(config), processor, "blip2", device, max_new_tokens=8)
        captioner.name = "tiny-blip2"
        return captioner

    def prompt(self, prompt: str) -> str:
        question = _without_marker(prompt)
        if self.style == "blip2":
            return f"Question: {question} Answer:"
        conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return self.processor.apply_chat_template(conversation, add_generation_prompt=True)

    @torch.no_grad()
    def __call__(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[str]:
        if len(images) != len(prompts):
            raise InvalidInputError(f"{len(images)} images cannot be paired with {len(prompts)} prompts.")
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        tokenizer.padding_side = "left"  # decoder-only generation continues from the right end
        dtype = next(self.model.parameters()).dtype
        captions: list[str] = []
        for start in range(0, len(images), self.batch_size):
            batch = [image.convert("RGB") for image in images[start : start + self.batch_size]]
            texts = [self.prompt(p) for p in prompts[start : start + self.batch_size]]
            inputs = self.processor(images=batch, text=texts, return_tensors="pt", padding=True).to(self.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
            if out.shape[1] > inputs["input_ids"].shape[1]:  # decoder-only models return the prompt too
                out = out[:, inputs["input_ids"].shape[1] :]
            captions += [c.strip() for c in self.processor.batch_decode(out, skip_special_tokens=True)]
        return captions
