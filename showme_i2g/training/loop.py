"""The one training loop every entry point runs: accelerate, accumulation, logging, checkpoints, exact resume.

An entry point builds its model (frozen base + trainable adapter), a loss function over one batch and a data
source, and calls :func:`train`. The loop owns everything else:

* devices, mixed precision and multi-GPU through ``accelerate`` (launch with ``accelerate launch``);
* gradient accumulation (``accelerator.accumulate``), gradient clipping, AdamW and a diffusers LR schedule;
* a progress bar, a JSONL log (``log.jsonl``) and TensorBoard scalars when tensorboard is installed;
* ``accelerator.save_state`` checkpoints every ``checkpoint_every`` steps and at the end, and ``resume``.

**Exact resume.** A killed run resumed from its last checkpoint ends with the same parameters as a run that was
never stopped. Everything a step depends on is either restored or a pure function of the step number: the
trainable parameters, optimizer and LR scheduler come from the checkpoint; the data position is restored from the
data source's ``state_dict`` (:class:`ResumableBatches`) or, for a plain iterator, by skipping the batches
already used; the global RNGs are restored by accelerate; and the per-batch ``generator`` handed to the loss
function (noise, timesteps, conditioning dropout) is seeded from ``(seed, step, micro-batch, process)``, so it
needs no state at all and every process draws different noise.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from .checkpoints import (
    checkpoint_dir,
    prune_checkpoints,
    read_trainer_state,
    register_trainable_state_hooks,
    resolve_resume,
    write_trainer_state,
)
from .config import CONFIG_FILENAME, DataError, RunConfig

logger = logging.getLogger(__name__)

__all__ = [
    "LOG_FILENAME",
    "ResumableBatches",
    "StepContext",
    "TrainResult",
    "create_accelerator",
    "read_log",
    "step_generator",
    "train",
    "weight_dtype",
]

LOG_FILENAME = "log.jsonl"


@dataclass
class StepContext:
    """What the loss function gets next to its batch."""

    accelerator: Accelerator
    model: torch.nn.Module  # as prepared by accelerate (may be a DDP wrapper; call it, don't read its attributes)
    config: RunConfig
    step: int  # 0-based index of the optimizer update this batch contributes to
    micro_step: int  # 0-based index of the micro-batch within the accumulation window
    generator: torch.Generator  # CPU generator, a pure function of (seed, step, micro_step, process)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device


LossFn = Callable[[Any, StepContext], "torch.Tensor | dict[str, torch.Tensor]"]


@dataclass
class TrainResult:
    """What :func:`train` returns: the unwrapped model and where the run left its files."""

    model: torch.nn.Module
    step: int
    output_dir: Path
    losses: list[float] = field(default_factory=list)  # mean loss of each update made in this process's run
    checkpoint: Path | None = None


def step_generator(seed: int, step: int, micro_step: int = 0, process: int = 0) -> torch.Generator:
    """A CPU generator whose stream depends only on its arguments (so resumed runs draw the same numbers)."""
    state = np.random.SeedSequence([seed, step, micro_step, process]).generate_state(2, dtype=np.uint32)
    return torch.Generator("cpu").manual_seed(int(state[0]) << 32 | int(state[1]))


class ResumableBatches:
    """An endless, reshuffled-every-epoch stream of batches from a map-style dataset, with a resumable position.

    Each epoch is a permutation drawn from ``seed + epoch``; a global batch is ``batch_size x num_shards``
    consecutive indices of it and shard ``shard`` (the accelerate process index) takes its own slice. The last
    incomplete global batch of an epoch is dropped. ``state_dict`` is the (epoch, batch) position, so
    ``accelerator.register_for_checkpointing`` makes it part of every checkpoint.
    """

    def __init__(
        self,
        dataset: Sequence,
        batch_size: int,
        *,
        seed: int = 0,
        collate: Callable[[list], Any] | None = None,
        num_shards: int = 1,
        shard: int = 0,
        shuffle: bool = True,
    ) -> None:
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.collate = collate or (lambda items: items)
        self.num_shards, self.shard, self.shuffle = num_shards, shard, shuffle
        self.batches_per_epoch = len(dataset) // (batch_size * num_shards)
        if self.batches_per_epoch == 0:
            raise DataError(
                f"The data set has {len(dataset)} items, fewer than one batch of {batch_size * num_shards}."
            )
        self.epoch, self.position = 0, 0
        self._order: list[int] | None = None

    def _epoch_order(self) -> list[int]:
        if self._order is None:
            if self.shuffle:
                generator = torch.Generator("cpu").manual_seed(self.seed + self.epoch)
                self._order = torch.randperm(len(self.dataset), generator=generator).tolist()
            else:
                self._order = list(range(len(self.dataset)))
        return self._order

    def __iter__(self) -> Iterator:
        return self

    def __next__(self) -> Any:
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position, self._order = self.epoch + 1, 0, None
        order = self._epoch_order()
        start = (self.position * self.num_shards + self.shard) * self.batch_size
        self.position += 1
        return self.collate([self.dataset[i] for i in order[start : start + self.batch_size]])

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), None


def create_accelerator(config: RunConfig, *, log_with_tensorboard: bool = True) -> Accelerator:
    """The run's accelerator (mixed precision, accumulation, TensorBoard under ``output_dir/logs``); seeds all RNGs.

    Call it before building the model so that adapter initialisation is seeded too.
    """
    from accelerate.utils import is_tensorboard_available

    tracker = "tensorboard" if log_with_tensorboard and is_tensorboard_available() else None
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation,
        log_with=tracker,
        project_config=ProjectConfiguration(
            project_dir=str(config.output_dir), logging_dir=str(Path(config.output_dir) / "logs")
        ),
    )
    set_seed(config.seed)
    return accelerator


def weight_dtype(accelerator: Accelerator) -> torch.dtype:
    """The dtype frozen weights can be stored in under the run's mixed precision (trainable ones stay float32)."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)


def read_log(output_dir: str | Path) -> list[dict]:
    path = Path(output_dir) / LOG_FILENAME
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _truncate_log(output_dir: Path, step: int) -> None:
    """On resume, forget log lines of steps after the checkpoint (the killed run made them; they will be redone)."""
    kept = [entry for entry in read_log(output_dir) if entry.get("step", 0) <= step]
    (output_dir / LOG_FILENAME).write_text("".join(json.dumps(e) + "\n" for e in kept), encoding="utf-8")


def _hparams(config: RunConfig) -> dict:
    return {k: v for k, v in config.to_dict().items() if isinstance(v, (int, float, str, bool))}


def train(
    config: RunConfig,
    accelerator: Accelerator,
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Iterable,
    *,
    params: Iterable[torch.nn.Parameter] | None = None,
    run_name: str = "train",
    on_step_end: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Optimise ``params`` (default: ``model``'s parameters with ``requires_grad``) for ``config.max_steps`` updates.

    ``loss_fn(batch, context)`` returns the loss, or a dict with ``"loss"`` and other scalars to log.
    ``data`` yields batches forever; give it ``state_dict``/``load_state_dict`` (as :class:`ResumableBatches`
    has) for an O(1) resume, otherwise the used batches are skipped on resume. ``on_step_end(step, record)`` is
    called after every update (tests use it to interrupt a run).

    The steps, in order: :func:`_trainable` parameters, :func:`_optimizer_and_scheduler`, ``accelerator.prepare``,
    :func:`_resume` (checkpoint and data position), :func:`_start_outputs` (config, log, trackers), then per update
    :func:`_update` (accumulated micro-batches), :func:`_log_update` on the logging cadence and
    :func:`_save_checkpoint` on the checkpoint cadence (:func:`_is_checkpoint_step`), and :func:`_finish`.
    """
    config.validate()
    output_dir = Path(config.output_dir)
    resume_from = resolve_resume(config)
    params = _trainable(model, params)
    optimizer, scheduler = _optimizer_and_scheduler(config, accelerator, params)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    register_trainable_state_hooks(accelerator)
    batches, start = _resume(config, accelerator, data, resume_from)
    _start_outputs(config, accelerator, start, run_name)

    result = TrainResult(model=model, step=start, output_dir=output_dir)
    bar = tqdm(total=config.max_steps, initial=start, desc=run_name, disable=not accelerator.is_local_main_process)
    last_saved = start if resume_from is not None else None
    window_started = time.perf_counter()
    model.train()
    for step in range(start, config.max_steps):
        record = _update(config, accelerator, model, loss_fn, batches, params, optimizer, scheduler, step)
        done = step + 1
        result.losses.append(record["loss"])
        result.step = done
        bar.update()
        bar.set_postfix(loss=f"{record['loss']:.4g}")
        if done % config.log_every == 0 or done == config.max_steps:
            _log_update(accelerator, output_dir, done, record, time.perf_counter() - window_started)
            window_started = time.perf_counter()
        if _is_checkpoint_step(config, done):
            result.checkpoint = _save_checkpoint(accelerator, config, done)
            last_saved = done
        if on_step_end is not None:
            on_step_end(done, record)
    bar.close()
    return _finish(accelerator, model, result, last_saved)


def _trainable(model: torch.nn.Module, params: Iterable[torch.nn.Parameter] | None) -> list[torch.nn.Parameter]:
    """The parameters to optimise: those given (default: the model's) that require grad; at least one."""
    trainable = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    if not trainable:
        raise ValueError("train() was given no trainable parameters.")
    return trainable


def _optimizer_and_scheduler(config: RunConfig, accelerator: Accelerator, params: list[torch.nn.Parameter]):
    """AdamW and the diffusers LR schedule (warm-up and length counted in every process's scheduler steps)."""
    from diffusers.optimization import get_scheduler

    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = get_scheduler(
        config.lr_scheduler,
        optimizer,
        num_warmup_steps=config.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=config.max_steps * accelerator.num_processes,
    )
    return optimizer, scheduler


def _resume(config: RunConfig, accelerator: Accelerator, data: Iterable, resume_from: Path | None
            ) -> tuple[Iterator, int]:
    """The batch iterator and the first step: after ``accelerator.load_state`` of a checkpoint, the data resumes
    from its own ``state_dict`` (registered for checkpointing) or by skipping the batches already used."""
    resumable_data = hasattr(data, "state_dict") and hasattr(data, "load_state_dict")
    if resumable_data:
        accelerator.register_for_checkpointing(data)
    batches = iter(data)
    start = 0
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        start = int(read_trainer_state(resume_from)["step"])
        if not resumable_data:
            for _ in itertools.islice(batches, start * config.gradient_accumulation):
                pass
        logger.info("Resumed from %s at step %d.", resume_from, start)
    return batches, start


def _start_outputs(config: RunConfig, accelerator: Accelerator, start: int, run_name: str) -> None:
    """The output folder with the run's config; the log cut back to the resumed step (or started afresh); trackers."""
    output_dir = Path(config.output_dir)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        config.save_yaml(output_dir / CONFIG_FILENAME)
        if start:
            _truncate_log(output_dir, start)
        elif (output_dir / LOG_FILENAME).exists():
            (output_dir / LOG_FILENAME).unlink()
    if accelerator.log_with:
        accelerator.init_trackers(run_name, config=_hparams(config))


def _update(config: RunConfig, accelerator: Accelerator, model: torch.nn.Module, loss_fn: LossFn, batches: Iterator,
            params: list[torch.nn.Parameter], optimizer, scheduler, step: int) -> dict[str, float]:
    """One optimizer update over ``gradient_accumulation`` micro-batches: the record of its mean scalars and LR."""
    totals: dict[str, float] = {}
    for micro in range(config.gradient_accumulation):
        try:
            batch = next(batches)
        except StopIteration:
            raise DataError(f"The training data ran out at step {step}; give a data source that repeats.") from None
        context = StepContext(
            accelerator, model, config, step, micro,
            step_generator(config.seed, step, micro, accelerator.process_index),
        )
        scalars = _micro_step(config, accelerator, model, loss_fn, batch, context, params, optimizer, scheduler)
        for key, value in scalars.items():
            value = torch.as_tensor(value, device=accelerator.device).detach().float().mean()
            totals[key] = totals.get(key, 0.0) + float(accelerator.reduce(value, reduction="mean"))
    record = {k: v / config.gradient_accumulation for k, v in totals.items()}
    record["lr"] = scheduler.get_last_lr()[0]
    return record


def _micro_step(config: RunConfig, accelerator: Accelerator, model: torch.nn.Module, loss_fn: LossFn, batch: Any,
                context: StepContext, params: list[torch.nn.Parameter], optimizer, scheduler) -> dict:
    """Loss, backward and (when accelerate syncs gradients) clipping and the optimizer step of one micro-batch."""
    with accelerator.accumulate(model):
        with accelerator.autocast():
            out = loss_fn(batch, context)
        scalars = out if isinstance(out, dict) else {"loss": out}
        loss = scalars["loss"]
        if not torch.isfinite(loss.detach()).all():
            raise FloatingPointError(f"The loss became {float(loss)} at step {context.step}.")
        accelerator.backward(loss)
        if accelerator.sync_gradients and config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return scalars


def _log_update(accelerator: Accelerator, output_dir: Path, done: int, record: dict[str, float],
                seconds: float) -> None:
    """One line of ``log.jsonl`` (main process; with the seconds since the last line) and the trackers' scalars."""
    if accelerator.is_main_process:
        with (output_dir / LOG_FILENAME).open("a", encoding="utf-8") as log:
            log.write(json.dumps({"step": done, **record, "seconds": round(seconds, 4)}) + "\n")
    if accelerator.log_with:
        accelerator.log(record, step=done)


def _is_checkpoint_step(config: RunConfig, done: int) -> bool:
    """Every ``checkpoint_every`` updates (0: never) and after the last one."""
    return bool(config.checkpoint_every and done % config.checkpoint_every == 0) or done == config.max_steps


def _finish(accelerator: Accelerator, model: torch.nn.Module, result: TrainResult, last_saved: int | None
            ) -> TrainResult:
    """Name the last checkpoint, end the trackers, unwrap the model (eval mode) and refuse a non-finite loss."""
    if last_saved is not None and result.checkpoint is None:
        result.checkpoint = checkpoint_dir(result.output_dir, last_saved)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    result.model = accelerator.unwrap_model(model)
    result.model.eval()
    if not all(math.isfinite(v) for v in result.losses):
        raise FloatingPointError("The loss was not finite.")
    return result


def _save_checkpoint(accelerator: Accelerator, config: RunConfig, step: int) -> Path:
    path = checkpoint_dir(config.output_dir, step)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        write_trainer_state(path, step, {"max_steps": config.max_steps})  # written last: marks the folder complete
        prune_checkpoints(config.output_dir, config.keep_checkpoints)
    accelerator.wait_for_everyone()
    return path

