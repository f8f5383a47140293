"""I2G's caption protocol, StackedDiffusion's faithfulness and consistency, CLIPScore from a tiny CLIP."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from showme_i2g.i2g.captioning import CAPTION_PROMPTS, VLMCaptioner, draw_prompts
from showme_i2g.i2g.protocol import (
    caption_alignment,
    cross_image_consistency,
    goal_faithfulness,
    multiple_choice_accuracy,
    step_faithfulness,
)
from showme_i2g.metrics.encoders import CLIPEncoder, CLIPScore, DINOEncoder

PAPER = Path(__file__).resolve().parents[2] / "shared" / "papers" / "I2G.md"


def test_the_21_prompts_are_the_papers_verbatim():
    assert len(CAPTION_PROMPTS) == 21 and len(set(CAPTION_PROMPTS)) == 21
    if PAPER.exists():  # the paper sits next to the checkout in the team's workspace
        quoted = re.findall(r'\*\*Choice\d+:\*\* "(.*)"', PAPER.read_text(encoding="utf-8"))
        assert tuple(quoted) == CAPTION_PROMPTS


def test_prompts_are_drawn_reproducibly_from_the_seed():
    assert draw_prompts(50, seed=3) == draw_prompts(50, seed=3)
    assert draw_prompts(50, seed=3) != draw_prompts(50, seed=4)
    assert set(draw_prompts(400, seed=0)) == set(CAPTION_PROMPTS)  # every prompt can be drawn


def _one_hot_embedder(vocabulary):
    """Texts -> one-hot vectors over `vocabulary` words: cos = shared-word overlap, exactly computable."""

    def embed(texts):
        rows = torch.zeros(len(texts), len(vocabulary))
        for i, text in enumerate(texts):
            for word in text.lower().split():
                if word in vocabulary:
                    rows[i, vocabulary.index(word)] += 1
        return rows + 1e-9

    return embed


def test_caption_alignment_scores_caption_against_step_on_the_clipscore_scale():
    captions = {(255, 0, 0): "eggs bowl", (0, 0, 255): "car oil"}

    def captioner(images, prompts):
        assert all(p in CAPTION_PROMPTS for p in prompts)
        return [captions[image.getpixel((0, 0))] for image in images]

    images = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    embed = _one_hot_embedder(["eggs", "bowl", "car", "oil", "whisk"])
    result = caption_alignment(images, ["whisk eggs bowl", "whisk eggs bowl"], captioner, embed, seed=1, batch_size=1)
    # cos("eggs bowl", "whisk eggs bowl") = 2 / (sqrt 2 * sqrt 3); the unrelated caption scores 0
    assert result.scores[0] == pytest.approx(2.5 * 2 / np.sqrt(6), rel=1e-6)
    assert result.scores[1] == pytest.approx(0.0, abs=1e-6)
    assert result.captions == ["eggs bowl", "car oil"] and result.prompts == draw_prompts(2, seed=1)


def test_multiple_choice_accuracy_and_faithfulness_on_known_embeddings():
    texts = torch.eye(4)
    images = torch.eye(4) + 0.1  # each image nearest its own text
    assert multiple_choice_accuracy(images, texts, [[0, 1, 2, 3]] * 4, [0, 1, 2, 3]) == 100.0
    assert multiple_choice_accuracy(images[[1, 0, 2, 3]], texts, [[0, 1, 2, 3]] * 4, [0, 1, 2, 3]) == 50.0
    collapsed = torch.ones(4, 4)  # everything identical: ties are wrong
    assert multiple_choice_accuracy(collapsed, collapsed, [[0, 1]] * 4, [0, 1, 0, 1]) == 0.0
    # goals: two recipes of two images each; images of recipe r point at goal r
    goals = torch.eye(3)
    images = torch.stack([goals[0], goals[0], goals[1], goals[1]]) + 0.05
    assert goal_faithfulness(images, [0, 0, 1, 1], goals, choices=4, seed=0) == 100.0
    assert goal_faithfulness(images, [1, 1, 0, 0], goals, choices=2, seed=0) == 0.0
    assert np.isnan(goal_faithfulness(images, [0, 0, 0, 0], goals[:1]))
    # steps: image i matches step i except the last image of recipe 0, which matches its sibling
    steps = torch.eye(5)
    images = steps.clone()
    images[2] = steps[1]
    assert step_faithfulness(images, steps, [0, 0, 0, 1, 1], choices=4) == pytest.approx(100 * 4 / 5)
    assert np.isnan(step_faithfulness(images[:2], steps[:2], [0, 1]))  # no recipe has two steps


def test_cross_image_consistency_is_the_mean_pairwise_cosine():
    same = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    orthogonal = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert cross_image_consistency([same]) == pytest.approx(100.0)
    assert cross_image_consistency([same, orthogonal, torch.ones(1, 2)]) == pytest.approx(50.0)  # 1-image skipped


@pytest.fixture(scope="module")
def tiny_clip() -> CLIPEncoder:
    return CLIPEncoder.tiny(seed=0)


def test_clipscore_from_a_tiny_clip_equals_the_formula(tiny_clip):
    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)) for _ in range(3)]
    pictures += [Image.new("RGB", (40, 48), c) for c in ("white", "black", "orange")]
    words = ["whisk the eggs", "boil the water", "chop an onion", "knead the dough", "fry the bacon", "serve"]
    images, texts = [i for i in pictures for _ in words], words * len(pictures)  # every image with every text
    model, processor = tiny_clip.model, tiny_clip.processor
    with torch.no_grad():
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        tokens = processor(text=texts, return_tensors="pt", padding=True)
        img = model.get_image_features(pixel_values=pixels)
        txt = model.get_text_features(**tokens)
        img = img if isinstance(img, torch.Tensor) else img.pooler_output
        txt = txt if isinstance(txt, torch.Tensor) else txt.pooler_output
    cos = torch.nn.functional.cosine_similarity(img, txt, dim=-1)
    expected = 2.5 * cos.clamp(min=0)
    got = CLIPScore(tiny_clip)(images, texts)
    assert torch.allclose(got.float(), expected, atol=1e-5)
    assert (cos < 0).any() and (cos > 0).any()  # both branches of the clipping are exercised


def test_tiny_encoders_and_captioner_run_on_pil_images():
    images = [Image.new("RGB", (40, 30), c) for c in ("red", "blue", "green")]
    dino = DINOEncoder.tiny()
    out = dino(images)
    assert out.shape == (3, 32) and torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)
    captioner = VLMCaptioner.tiny()
    prompts = draw_prompts(3, seed=0)
    captions = captioner(images, prompts)
    assert len(captions) == 3 and all(isinstance(c, str) and c for c in captions)
    assert captioner(images[:1], prompts[:1]) == captions[:1]  # left padding: batching does not change a caption
    assert captioner.prompt(CAPTION_PROMPTS[7]) == "Question: What do you see in this picture? Answer:"


def test_caption_alignment_uses_given_prompts_and_refuses_a_wrong_count() -> None:
    from PIL import Image

    from showme_i2g.errors import InvalidInputError
    from showme_i2g.i2g.protocol import caption_alignment

    seen: list[str] = []

    def captioner(images, prompts):
        seen.extend(prompts)
        return ["a bowl" for _ in images]

    def embedder(texts):
        import torch

        return torch.tensor([[1.0, 0.0] if "bowl" in t else [0.0, 1.0] for t in texts])

    images = [Image.new("RGB", (8, 8)) for _ in range(2)]
    result = caption_alignment(images, ["a bowl", "a pan"], captioner, embedder, prompts=["p1", "p2"])
    assert seen == ["p1", "p2"] and result.prompts == ["p1", "p2"]
    assert result.scores.tolist() == [2.5, 0.0]
    with pytest.raises(InvalidInputError, match="2 images"):
        caption_alignment(images, ["a bowl", "a pan"], captioner, embedder, prompts=["p1"])
