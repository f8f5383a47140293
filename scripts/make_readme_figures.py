"""Draw the README's neighbour-attention figure from the real attention code (not by hand).

For n steps of one recipe, it runs :func:`showme_i2g.i2g.attention.neighbour_attention` with identical queries
and keys (so every logit is equal) and plots the attention mass each step image gives to each step's tokens:
the band that the neighbour weight shapes. One panel per weight.

    python scripts/make_readme_figures.py docs/neighbour_attention.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from showme_i2g.i2g.attention import neighbour_attention  # noqa: E402


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


if __name__ == "__main__":
    draw(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/neighbour_attention.png"))
