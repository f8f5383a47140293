"""ShowMe stage 2: the ``animate`` LoRA (video mode) on top of stage 1's frozen ``edit``, with the motion reward.

    python -m train.showme_stage2 --data clips.json --edit-adapter runs/stage1/edit \
        --out runs/stage2 --num-frames 16 --max-steps 20000
    python -m train.showme_stage2 --dataset ego4d --data narration.json --videos-root ego4d/v1/full_scale \
        --edit-adapter runs/stage1/edit --out runs/stage2-ego4d
    accelerate launch -m train.showme_stage2 --config stage2.yaml            # several GPUs
    python -m train.showme_stage2 --config runs/stage2/config.yaml --resume latest

``--dataset`` is ``manifest`` (default), ``ssv2``, ``epic100`` or ``ego4d``; clips are read with
:mod:`showme_i2g.data`. The logic is in :mod:`showme_i2g.showme.training`; ``--help`` lists every setting. The
adapter is written to ``<out>/animate/`` (a peft adapter folder) (load it with
``showme_i2g.showme.adapters.load_adapter(model, "animate", path)``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from showme_i2g.showme.training import Stage2Config, train_stage2
from showme_i2g.training import run_training


def main(argv: Sequence[str] | None = None) -> int:
    return run_training(argv, Stage2Config, train_stage2, prog="python -m train.showme_stage2", saved="animate adapter")


if __name__ == "__main__":
    sys.exit(main())
