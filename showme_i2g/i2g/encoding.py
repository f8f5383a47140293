"""Goal, steps and clauses -> SDXL conditioning (I2G, section 4.3).

SDXL has two text encoders and concatenates their token features. I2G gives them different texts:
the goal ("Make pancakes", short and high-level) goes to ``text_encoder`` (CLIP ViT-L); the step goes to
``text_encoder_2`` (OpenCLIP ViT-bigG), one clause at a time, so a step longer than one 77-token window loses
nothing. Each clause's 77-token sequence is kept and the clause sequences are concatenated along the token axis
(cross-attention takes any number of tokens). Both halves must have the same length before the feature-axis
concatenation, so the goal's sequence is repeated once per clause: token j of block k is
[goal token j ; clause k token j].

Steps with fewer clauses than the longest step are padded with zeros and masked out of cross-attention
(``encoder_attention_mask``), which is exactly equivalent to not padding. The pooled embedding that SDXL adds to
the time embedding is the mean of the clauses' pooled bigG embeddings (for a one-clause step, exactly SDXL's).
With ``force_zeros_for_empty_prompt`` and no negative prompt the unconditional branch is all zeros, as in SDXL;
a negative prompt is encoded like a one-clause step and its block repeated to the common length (attention over
repeated identical keys equals attention over one copy).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers.utils.torch_utils import get_module_execution_device

logger = logging.getLogger(__name__)


@dataclass
class InstructionEmbeddings:
    """Conditioning for n step images, ready for the UNet (conditional half; ``negative_*`` for CFG)."""

    prompt_embeds: torch.Tensor  # (n, 77 * K, d1 + d2); K = most clauses of any step
    pooled_prompt_embeds: torch.Tensor  # (n, projection_dim of text_encoder_2)
    attention_mask: torch.Tensor | None  # (n, 77 * K) True = real token; None when no step needed padding
    negative_prompt_embeds: torch.Tensor | None = None  # same shape as prompt_embeds
    negative_pooled_prompt_embeds: torch.Tensor | None = None

    def select(self, rows: Sequence[int]) -> InstructionEmbeddings:
        """The embeddings of some images only, in the given order (a window of a long recipe, an anchor)."""
        index = torch.as_tensor(list(rows), device=self.prompt_embeds.device)

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.index_select(0, index.to(t.device))

        return InstructionEmbeddings(
            prompt_embeds=pick(self.prompt_embeds),
            pooled_prompt_embeds=pick(self.pooled_prompt_embeds),
            attention_mask=pick(self.attention_mask),
            negative_prompt_embeds=pick(self.negative_prompt_embeds),
            negative_pooled_prompt_embeds=pick(self.negative_pooled_prompt_embeds),
        )

    def unet_inputs(self, guidance: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(encoder_hidden_states, pooled text embeds, encoder_attention_mask), CFG halves stacked [uncond, cond]."""
        if not guidance:
            return self.prompt_embeds, self.pooled_prompt_embeds, self.attention_mask
        if self.negative_prompt_embeds is None or self.negative_pooled_prompt_embeds is None:
            raise ValueError("Classifier-free guidance needs negative embeddings; encode with guidance=True.")
        return guidance_batch(self.prompt_embeds, self.pooled_prompt_embeds, self.attention_mask,
                              self.negative_prompt_embeds, self.negative_pooled_prompt_embeds)


def guidance_batch(
    states: torch.Tensor, pooled: torch.Tensor, mask: torch.Tensor | None, negative_states: torch.Tensor,
    negative_pooled: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """I2G's classifier-free-guidance batch: ``[unconditional x n, conditional x n]``, each half one group.

    Neighbour attention groups n consecutive images, so with this layout the halves never see each other. The
    unconditional half has no padding (SDXL's zeros, or one negative block repeated), so its mask is all True.
    """
    mask = None if mask is None else torch.cat([torch.ones_like(mask), mask])
    return torch.cat([negative_states, states]), torch.cat([negative_pooled, pooled]), mask


def sdxl_time_ids(height: int, width: int, count: int) -> torch.Tensor:
    """SDXL's micro-conditioning for a generated image of ``height x width`` (original size = target size, no
    crop): ``[h, w, 0, 0, h, w]`` per image, as float32 rows."""
    return torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32).repeat(count, 1)


def encode_texts(tokenizer, text_encoder, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Penultimate-layer token features (k, 77, d) and, for encoders with a projection, pooled embeddings (k, p).

    SDXL reads the penultimate hidden layer of both encoders, and the pooled (projected) output of the second.
    """
    max_length = tokenizer.model_max_length
    inputs = tokenizer(list(texts), padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    for text, ids in zip(texts, tokenizer(list(texts), add_special_tokens=True).input_ids):
        if len(ids) > max_length:
            logger.warning("Only the first %d tokens of %r are used.", max_length - 2, text)
    device = get_module_execution_device(text_encoder)  # right under CPU offloading too
    output = text_encoder(inputs.input_ids.to(device), output_hidden_states=True)
    pooled = output[0] if output[0].ndim == 2 else None
    return output.hidden_states[-2], pooled


def encode_instruction(
    goal: str,
    step_clauses: Sequence[Sequence[str]],
    *,
    tokenizer,
    tokenizer_2,
    text_encoder,
    text_encoder_2,
    guidance: bool,
    negative_prompt: str | None = None,
    force_zeros_for_empty_prompt: bool = True,
    dtype: torch.dtype | None = None,
) -> InstructionEmbeddings:
    """Encode one goal and n steps (each already split into clauses) as described in the module docstring."""
    if not step_clauses or any(len(clauses) == 0 for clauses in step_clauses):
        raise ValueError("Every step needs at least one clause.")
    goal_tokens, _ = encode_texts(tokenizer, text_encoder, [goal])  # (1, 77, d1)
    block = goal_tokens.shape[1]
    most = max(len(clauses) for clauses in step_clauses)

    sequences, pooled, masks = [], [], []
    for clauses in step_clauses:
        clause_tokens, clause_pooled = encode_texts(tokenizer_2, text_encoder_2, clauses)  # (k, 77, d2), (k, p)
        if clause_pooled is None:
            raise ValueError("text_encoder_2 must return pooled (projected) embeddings, as SDXL's does.")
        k = len(clauses)
        step_tokens = clause_tokens.reshape(1, k * block, -1)
        sequence = torch.cat([goal_tokens.repeat(1, k, 1), step_tokens.to(goal_tokens.dtype)], dim=-1)
        padding = (most - k) * block
        sequences.append(torch.nn.functional.pad(sequence, (0, 0, 0, padding)))
        masks.append(torch.arange(most * block) < k * block)
        pooled.append(clause_pooled.mean(dim=0))

    prompt_embeds = torch.cat(sequences)
    pooled_embeds = torch.stack(pooled)
    padded = most > 1 and not all(m.all() for m in masks)
    attention_mask = torch.stack(masks).to(prompt_embeds.device) if padded else None

    negative, negative_pooled = None, None
    if guidance:
        if negative_prompt is None and force_zeros_for_empty_prompt:
            negative, negative_pooled = torch.zeros_like(prompt_embeds), torch.zeros_like(pooled_embeds)
        else:
            neg_goal, _ = encode_texts(tokenizer, text_encoder, [negative_prompt or ""])
            neg_step, neg_pooled = encode_texts(tokenizer_2, text_encoder_2, [negative_prompt or ""])
            neg_block = torch.cat([neg_goal, neg_step.to(neg_goal.dtype)], dim=-1)  # (1, 77, d1 + d2)
            negative = neg_block.repeat(len(step_clauses), most, 1)
            negative_pooled = neg_pooled.repeat(len(step_clauses), 1)

    def cast(t: torch.Tensor | None) -> torch.Tensor | None:
        return t if t is None or dtype is None else t.to(dtype)

    return InstructionEmbeddings(
        prompt_embeds=cast(prompt_embeds),
        pooled_prompt_embeds=cast(pooled_embeds),
        attention_mask=attention_mask,
        negative_prompt_embeds=cast(negative),
        negative_pooled_prompt_embeds=cast(negative_pooled),
    )
