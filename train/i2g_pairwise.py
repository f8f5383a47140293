"""I2G pairwise LoRA fine-tuning on adjacent step pairs (v_i, v_j), neighbour attention on.

    python -m train.i2g_pairwise --data recipes.json --images images/ --out runs/pairwise --max-steps 5000
    accelerate launch -m train.i2g_pairwise --config pairwise.yaml          # several GPUs
    python -m train.i2g_pairwise --config runs/pairwise/config.yaml --resume latest
    python -m train.i2g_pairwise --data-format htstep --data taxonomy.csv ... --videos-root videos/ \
        --images frames/ --frame last --extract-only                      # key frames only, once

For the video datasets (HT-Step, CaptainCook4D) ``--videos-root`` gives each step the key frame of its segment
(``--frame last``, the state after the step, or ``middle``), written once to ``--images/<recipe id>/<k>.png``
(default ``<out>/step_frames``) and reused by later runs.

The logic is in :mod:`showme_i2g.i2g.training`; ``--help`` lists every setting. The LoRA is written to
``<out>/lora/pytorch_lora_weights.safetensors``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from showme_i2g.i2g.training import PairwiseConfig, extract_pairwise_frames, frame_cache, train_pairwise
from showme_i2g.training import run_cli


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> None:
        config = PairwiseConfig.from_cli(argv, prog="python -m train.i2g_pairwise")
        if config.extract_only:
            done = extract_pairwise_frames(config)
            print(f"Key frames in {frame_cache(config)}: {done.written} extracted, {done.reused} already cached, "
                  f"{len(done.problems)} steps skipped")
            return
        result, lora = train_pairwise(config)
        print(f"Trained {result.step} steps; LoRA saved to {lora}")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
