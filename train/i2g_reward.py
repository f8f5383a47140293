"""I2G reward fine-tuning through sampling (DRaFT-K / AlignProp) with a differentiable CLIP alignment reward.

    python -m train.i2g_reward --prompts recipes.json --init-lora runs/pairwise/lora --out runs/reward
    python -m train.i2g_reward --goals goals.txt --truncation-k 1 --reward-model openai/clip-vit-large-patch14

``--prompts`` is a JSON list of ``{"goal": ..., "steps": [...]}``; ``--goals`` is one goal per line and the
planner LLM writes the steps. The logic is in :mod:`showme_i2g.i2g.training`; ``--help`` lists every setting.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from showme_i2g.i2g.training import RewardConfig, train_reward
from showme_i2g.training import run_training


def main(argv: Sequence[str] | None = None) -> int:
    return run_training(argv, RewardConfig, train_reward, prog="python -m train.i2g_reward", saved="LoRA")


if __name__ == "__main__":
    sys.exit(main())
