"""Text similarity with the REAL offline MiniLM: a paraphrase ranks above an unrelated sentence."""

from __future__ import annotations

import pytest
import torch

from showme_i2g.errors import InvalidInputError, WeightsNotFoundError
from showme_i2g.metrics.text import LLM2VecEmbedder, SentenceEmbedder, text_cosine


@pytest.fixture(scope="module")
def minilm() -> SentenceEmbedder:
    return SentenceEmbedder(device="cpu")


def test_a_paraphrase_ranks_above_unrelated_sentences(minilm):
    step = "Whisk the eggs and the milk together in a large bowl."
    candidates = [
        "Beat the eggs with the milk in a big mixing bowl.",  # paraphrase
        "Change the engine oil and replace the filter.",
        "Plant the tulip bulbs two inches deep in the soil.",
    ]
    cos = text_cosine(minilm, [step] * 3, candidates)
    assert cos.argmax().item() == 0 and cos[0] > 0.6 and (cos[1:] < 0.3).all()
    assert minilm.name.endswith("(offline copy)")


def test_embeddings_are_unit_vectors_of_minilm_width(minilm):
    out = minilm(["a bowl of soup", "a loaf of bread"])
    assert out.shape == (2, 384) and torch.allclose(out.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_bad_text_input_is_refused(minilm):
    with pytest.raises(InvalidInputError, match="paired"):
        text_cosine(minilm, ["a"], ["a", "b"])
    with pytest.raises(InvalidInputError, match="no texts"):
        minilm([])


def test_llm2vec_without_its_package_is_one_sentence():
    pytest.importorskip("sentence_transformers")
    try:
        import llm2vec  # noqa: F401
    except ImportError:
        with pytest.raises(WeightsNotFoundError, match="llm2vec"):
            LLM2VecEmbedder()
    else:
        pytest.skip("llm2vec is installed; its weights are tested on a GPU")
