"""ShowMe stage 1: the ``edit`` LoRA (image mode, temporal modules bypassed) with the structure reward.

    python -m train.showme_stage1 --data clips.json --out runs/stage1 --max-steps 70000 --reward-from-step 50000
    accelerate launch -m train.showme_stage1 --config stage1.yaml            # several GPUs
    python -m train.showme_stage1 --config runs/stage1/config.yaml --resume latest

The logic is in :mod:`showme_i2g.showme.training`; ``--help`` lists every setting. The adapter is written to
``<out>/edit/`` (a peft adapter folder) (load it with ``showme_i2g.showme.adapters.load_adapter(model, "edit", path)``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from showme_i2g.showme.training import Stage1Config, train_stage1
from showme_i2g.training import run_training


def main(argv: Sequence[str] | None = None) -> int:
    return run_training(argv, Stage1Config, train_stage1, prog="python -m train.showme_stage1", saved="edit adapter")


if __name__ == "__main__":
    sys.exit(main())
