"""Draw the README's attention figures from the real attention code (not by hand).

For n steps of one recipe, it runs :func:`showme_i2g.i2g.attention.neighbour_attention` with identical queries
and keys (so every logit is equal) and plots the attention mass each step image gives to each step's tokens:
the band that the neighbour weight shapes. One panel per weight.

The second figure, ``docs/anchor_attention.png``, comes from a whole run of the tiny preset: an 8-step recipe drawn
with a kitchen photo as the reference and the reference as the global anchor, at three anchor weights. Every
self-attention call of the run is recorded (:func:`showme_i2g.i2g.attention.chain_attention_mass`, the kernel's
own bias) and averaged: each row shows where one image's attention goes, the first column is the photo.

    python scripts/make_readme_figures.py docs/neighbour_attention.png docs/anchor_attention.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from showme_i2g.i2g import attention as attention_module  # noqa: E402
from showme_i2g.i2g.attention import chain_attention_mass, neighbour_attention  # noqa: E402

RECIPE_GOAL = "Make classic chocolate chip cookies"
RECIPE_STEPS = [
    "Preheat the oven to 190 C.", "Cream the butter and both sugars.", "Beat in the eggs and vanilla.",
    "Whisk flour, soda and salt.", "Stir the dry mix into the wet.", "Fold in the chocolate chips.",
    "Scoop balls of dough onto a tray.", "Bake for ten minutes.",
]


def attention_mass(num_steps: int, weight: float, tokens: int = 4) -> torch.Tensor:
    """(n, n): share of step i's attention that lands on step j's tokens, read off the real kernel."""
    q = torch.zeros(num_steps, 1, tokens, 1, dtype=torch.float64)
    # values one-hot by the step that owns them, so the output is the attention mass per step
    v = torch.eye(num_steps, dtype=torch.float64).repeat_interleave(tokens, 0).view(num_steps, 1, tokens, num_steps)
    return neighbour_attention(q, q, v, num_steps, weight)[:, 0].mean(1)


def draw(path: Path, num_steps: int = 6, weights=(0.0, 0.3, 1.0), cell: int = 36) -> None:
    font = ImageFont.load_default(size=14)
    pad, label = 16, 22
    panel = num_steps * cell
    img = Image.new("RGB", (len(weights) * (panel + 2 * pad), panel + 2 * pad + 2 * label), "white")
    d = ImageDraw.Draw(img)
    for p, w in enumerate(weights):
        mass = attention_mass(num_steps, w)
        x0, y0 = p * (panel + 2 * pad) + pad, pad + label
        d.text((x0, pad // 2), f"neighbour weight {w:g}", fill="black", font=font)
        for i in range(num_steps):
            for j in range(num_steps):
                shade = int(255 * (1 - float(mass[i, j])))
                box = (x0 + j * cell, y0 + i * cell, x0 + (j + 1) * cell - 1, y0 + (i + 1) * cell - 1)
                d.rectangle(box, fill=(shade, shade, 255))
        d.text((x0, y0 + panel + 4), "keys: step 1 ... n  (rows: queries)", fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def kitchen_photo(size: int = 128) -> Image.Image:
    """A drawn stand-in for the user's photo (a bench, a bowl, a window): the tiny preset's weights are random."""
    img = Image.new("RGB", (size, size), (205, 190, 160))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, size, size // 3), fill=(170, 200, 225))
    d.rectangle((0, size * 2 // 3, size, size), fill=(120, 90, 60))
    d.ellipse((size // 4, size // 2, size * 3 // 4, size * 5 // 6), fill=(235, 235, 240), outline=(60, 60, 60))
    return img


def anchor_attention_mass(anchor_weight: float) -> torch.Tensor:
    """(m, m) attention mass of a whole tiny-preset run with the reference as the global anchor (conditional half,
    averaged over every self-attention call); row/column 0 is the reference photo."""
    from showme_i2g.i2g.pipeline import IllustrationPipeline

    pipe = IllustrationPipeline.from_preset("tiny", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    recorded: list[torch.Tensor] = []
    chain, plain = attention_module.chain_attention, attention_module.neighbour_attention

    def record(query, key, layout) -> None:
        recorded.append(chain_attention_mass(query, key, layout)[layout.num_images:])  # the conditional half

    def recording_chain(query, key, value, layout):
        if not layout.is_plain:  # a plain layout is recorded by the neighbour_attention it calls
            record(query, key, layout)
        return chain(query, key, value, layout)

    def recording_plain(query, key, value, num_steps, neighbour_weight=1.0):
        record(query, key, attention_module.ChainLayout.plain(num_steps, neighbour_weight))
        return plain(query, key, value, num_steps, neighbour_weight)

    attention_module.chain_attention, attention_module.neighbour_attention = recording_chain, recording_plain
    try:
        pipe(RECIPE_GOAL, RECIPE_STEPS, reference_image=kitchen_photo(), anchor="reference",
             anchor_weight=anchor_weight, num_inference_steps=4, seed=0)
    finally:
        attention_module.chain_attention, attention_module.neighbour_attention = chain, plain
    return torch.stack(recorded).mean(0)


def draw_anchor_figure(path: Path, weights=(0.0, 1.0, 3.0), cell: int = 28) -> None:
    font = ImageFont.load_default(size=13)
    pad, label = 16, 30
    masses = [anchor_attention_mass(w) for w in weights]
    m = masses[0].shape[0]
    panel = m * cell
    img = Image.new("RGB", (len(weights) * (panel + 2 * pad), panel + 2 * pad + 2 * label), "white")
    d = ImageDraw.Draw(img)
    for p, (w, mass) in enumerate(zip(weights, masses)):
        x0, y0 = p * (panel + 2 * pad) + pad, pad + label
        share = float(mass[2:, 0].mean())
        d.text((x0, pad // 2), f"anchor weight {w:g}", fill="black", font=font)
        d.text((x0, pad // 2 + 16), f"steps 2-8 give the photo {share:.0%}", fill="black", font=font)
        for i in range(m):
            for j in range(m):
                shade = int(255 * (1 - min(1.0, 2 * float(mass[i, j]))))
                colour = (255, shade, shade) if j == 0 else (shade, shade, 255)
                box = (x0 + j * cell, y0 + i * cell, x0 + (j + 1) * cell - 1, y0 + (i + 1) * cell - 1)
                d.rectangle(box, fill=colour)
        d.text((x0, y0 + panel + 4), "keys: photo, step 1 ... 8  (rows: queries)", fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


if __name__ == "__main__":
    draw(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/neighbour_attention.png"))
    draw_anchor_figure(Path(sys.argv[2] if len(sys.argv) > 2 else "docs/anchor_attention.png"))
