"""Shared training infrastructure for the four entry points in ``train/`` (I2G pairwise and reward, ShowMe 1 and 2).

The entry points are thin; what they share lives here, and each one follows the same five lines::

    config = MyConfig.from_cli(argv)          # RunConfig subclass: defaults < --config FILE.yaml < flags; validated
    check_my_data(config)                     # raise DataError / TrainingConfigError *before* any model is built
    accelerator = create_accelerator(config)  # devices, mixed precision, accumulation, TensorBoard; seeds RNGs
    model, loss_fn, data = build(...)         # frozen base + trainable adapter, loss over one batch, batches
    result = train(config, accelerator, model, loss_fn, data)   # then save the adapter as safetensors

and ``main(argv) -> int`` is :func:`run_training` (or ``run_cli(lambda: ...)``): a
:class:`~showme_i2g.errors.ShowMeError` prints its one sentence and exits 2.

``config`` (:mod:`.config`)
    :class:`RunConfig` - ``output_dir`` (``--out``), ``max_steps``, ``batch_size`` (per device, per micro-batch),
    ``lr``, ``rank``, ``seed``, ``mixed_precision`` (no/fp16/bf16), ``gradient_accumulation``,
    ``checkpoint_every``, ``keep_checkpoints``, ``log_every``, ``resume`` (folder or ``latest``),
    ``lr_scheduler``, ``lr_warmup_steps``, ``weight_decay``, ``max_grad_norm``. Subclass it, add fields (each
    becomes a flag: ``foo_bar`` -> ``--foo-bar``; ``help`` in field metadata) and extend ``validate()``.
    ``from_yaml`` / ``save_yaml`` / ``from_dict`` refuse unknown keys and wrong types with one sentence.
    :class:`TrainingConfigError`, :class:`DataError` (both ``InvalidInputError``, hence ``ShowMeError``);
    :func:`run_cli`.
``loop`` (:mod:`.loop`)
    :func:`create_accelerator`, :func:`weight_dtype` (dtype for frozen weights under mixed precision),
    :func:`train` (AdamW + diffusers LR schedule, ``accelerator.accumulate``, clipping, tqdm, ``log.jsonl`` +
    TensorBoard, ``save_state`` every ``checkpoint_every`` steps and at the end, exact ``resume``; the loss
    function gets ``(batch, StepContext)`` and returns a loss or a dict with ``"loss"`` and other scalars; the
    context's ``generator`` is a CPU generator that depends only on (seed, step, micro-batch, process), so draw
    all noise from it), :class:`ResumableBatches` (endless shuffled batches of a map-style dataset with a
    checkpointed position, sharded per process), :class:`StepContext`, :class:`TrainResult`, :func:`read_log`.
``checkpoints`` (:mod:`.checkpoints`)
    Checkpoints are ``output_dir/checkpoints/step-XXXXXXXX`` (``save_state`` + ``trainer_state.json``) and hold
    only the trainable parameters. :func:`latest_checkpoint`, :func:`resolve_resume`,
    :func:`save_adapter_safetensors` (one peft adapter -> safetensors with metadata).
``gradients`` (:mod:`.gradients`)
    :func:`assert_gradients_exactly` (the parameters with a non-zero gradient are exactly the expected ones),
    :func:`trainable_parameter_names`, :func:`parameters_with_gradient`, :func:`gradient_norms`.
``i2g`` (:mod:`.i2g`)
    I2G's pairwise LoRA fine-tuning and DRaFT-K reward fine-tuning (configs, data, losses, LoRA save/load).
"""

from .checkpoints import latest_checkpoint, resolve_resume, save_adapter_safetensors
from .config import CONFIG_FILENAME, DataError, RunConfig, TrainingConfigError, run_cli, run_training
from .gradients import (
    assert_gradients_exactly,
    gradient_norms,
    parameters_with_gradient,
    trainable_parameter_names,
)
from .loop import (
    LOG_FILENAME,
    ResumableBatches,
    StepContext,
    TrainResult,
    create_accelerator,
    read_log,
    step_generator,
    train,
    weight_dtype,
)

__all__ = [
    "CONFIG_FILENAME",
    "LOG_FILENAME",
    "DataError",
    "ResumableBatches",
    "RunConfig",
    "StepContext",
    "TrainResult",
    "TrainingConfigError",
    "assert_gradients_exactly",
    "create_accelerator",
    "gradient_norms",
    "latest_checkpoint",
    "parameters_with_gradient",
    "read_log",
    "resolve_resume",
    "run_cli",
    "run_training",
    "save_adapter_safetensors",
    "step_generator",
    "train",
    "trainable_parameter_names",
    "weight_dtype",
]
