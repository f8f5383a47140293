"""One I2G denoising step with classifier-free guidance: the same step for the pipeline's loop and DRaFT-K's.

The batch holds the two CFG halves as two groups, ``[unconditional x n, conditional x n]``
(:func:`showme_i2g.i2g.encoding.guidance_batch`), so that neighbour attention, which groups n consecutive
images, never lets a conditional image see an unconditional one. The prediction is split the same way and
combined as ``uncond + scale * (cond - uncond)``. Inference (:class:`~showme_i2g.i2g.pipeline.IllustrationPipeline`)
and reward training (:func:`showme_i2g.i2g.training.draft_sample`) both step through :func:`guided_step`, so the
equivalence tests of the pipeline cover the training loop's step too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``predict(model_input, t)``: the UNet's prediction for the scaled (CFG-doubled) latents at timestep ``t``."""


def guided_step(
    predict: Predict, scheduler, latents: torch.Tensor, t: torch.Tensor, guidance_scale: float, **step_kwargs
) -> torch.Tensor:
    """Latents at ``t`` -> latents at the scheduler's next timestep; guidance applies when ``guidance_scale > 1``."""
    guidance = guidance_scale > 1.0
    model_input = torch.cat([latents] * 2) if guidance else latents
    model_input = scheduler.scale_model_input(model_input, t)
    prediction = predict(model_input, t)
    if guidance:
        uncond, cond = prediction.chunk(2)
        prediction = uncond + guidance_scale * (cond - uncond)
    return scheduler.step(prediction.to(latents.dtype), t, latents, **step_kwargs, return_dict=False)[0]
