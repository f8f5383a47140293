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
from showme_i2g.training import run_cli


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> None:
        config = RewardConfig.from_cli(argv, prog="python -m train.i2g_reward")
        result, lora = train_reward(config)
        print(f"Trained {result.step} steps; LoRA saved to {lora}")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
