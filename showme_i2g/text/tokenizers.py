"""The real CLIP BPE tokenizer, shipped in the package so that tiny presets and clause splitting work offline.

``assets/clip_tokenizer`` holds ``vocab.json`` and ``merges.txt`` generated from OpenCLIP's public
``bpe_simple_vocab_16e6.txt.gz`` by ``scripts/build_clip_tokenizer.py``; token ids equal the released CLIP ones.
SDXL uses this BPE twice: ``tokenizer`` (CLIP ViT-L) pads with ``<|endoftext|>``, ``tokenizer_2`` (OpenCLIP
ViT-bigG) pads with ``!``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from transformers import CLIPTokenizer

CLIP_TOKENIZER_DIR = Path(__file__).resolve().parent.parent / "assets" / "clip_tokenizer"
CLIP_VOCAB_SIZE = 49408
CLIP_CONTEXT_LENGTH = 77


def load_clip_tokenizer(pad_token: str = "<|endoftext|>") -> CLIPTokenizer:
    """A fresh CLIP tokenizer from the shipped files; ``pad_token="!"`` gives the OpenCLIP (``tokenizer_2``) kind."""
    tokenizer = CLIPTokenizer.from_pretrained(str(CLIP_TOKENIZER_DIR), pad_token=pad_token)
    check_tokenizer(tokenizer, where=str(CLIP_TOKENIZER_DIR))
    return tokenizer


@lru_cache(maxsize=1)
def default_clip_tokenizer() -> CLIPTokenizer:
    """A shared tokenizer for counting tokens (clause splitting); do not mutate it."""
    return load_clip_tokenizer()


def check_tokenizer(tokenizer, where: str) -> None:
    """Refuse an empty tokenizer: offline, ``from_pretrained(<hub id>)`` can silently return one."""
    if len(tokenizer) < 1000:
        raise OSError(
            f"The tokenizer loaded from {where} has only {len(tokenizer)} tokens; its vocabulary files are missing."
        )


def count_clip_tokens(text: str, tokenizer: CLIPTokenizer | None = None) -> int:
    """Number of BPE tokens of ``text``, without the start and end tokens."""
    tokenizer = tokenizer or default_clip_tokenizer()
    return len(tokenizer(text, add_special_tokens=False, truncation=False).input_ids)
