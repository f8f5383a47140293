"""Checkpoint folders: where they live, which one ``--resume latest`` means, and what goes into them.

A checkpoint is an ``accelerator.save_state`` folder (optimizer, LR scheduler, RNG states of every process,
registered objects such as the data position) plus ``trainer_state.json`` with the optimizer-step count. Only the
*trainable* parameters are written (``trainable_<i>.safetensors``): a LoRA run on SDXL would otherwise copy the
frozen 2.6 B-parameter UNet into every checkpoint. Loading checks that exactly the same parameter names come back.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .config import RunConfig, TrainingConfigError

__all__ = [
    "CHECKPOINTS_DIR",
    "checkpoint_dir",
    "latest_checkpoint",
    "prune_checkpoints",
    "read_trainer_state",
    "register_trainable_state_hooks",
    "resolve_resume",
    "save_adapter_safetensors",
    "write_trainer_state",
]

CHECKPOINTS_DIR = "checkpoints"
TRAINER_STATE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / CHECKPOINTS_DIR / f"step-{step:08d}"


def _checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    root = Path(output_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and (path / TRAINER_STATE).is_file():  # a folder without it was cut off while being written
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = _checkpoints(output_dir)
    return found[-1][1] if found else None


def resolve_resume(config: RunConfig) -> Path | None:
    """The checkpoint folder ``config.resume`` names; ``"latest"`` with none yet means a fresh start."""
    if not config.resume:
        return None
    if config.resume == "latest":
        return latest_checkpoint(config.output_dir)
    path = Path(config.resume)
    if not (path / TRAINER_STATE).is_file():
        raise TrainingConfigError(f"resume names {path}, which is not a complete checkpoint folder of this trainer.")
    return path


def write_trainer_state(path: Path, step: int, extra: dict | None = None) -> None:
    (path / TRAINER_STATE).write_text(json.dumps({"step": step, **(extra or {})}, indent=1), encoding="utf-8")


def read_trainer_state(path: Path) -> dict:
    return json.loads((path / TRAINER_STATE).read_text(encoding="utf-8"))


def prune_checkpoints(output_dir: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints (``keep == 0`` keeps all)."""
    if keep <= 0:
        return
    for _, path in _checkpoints(output_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def _trainable(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def register_trainable_state_hooks(accelerator) -> None:
    """Make ``save_state``/``load_state`` write and read only the trainable parameters of each prepared model."""

    def save_hook(models, weights, output_dir):
        if accelerator.is_main_process:
            for i, model in enumerate(models):
                trainable = _trainable(accelerator.unwrap_model(model))
                state = {k: v.detach().contiguous().cpu() for k, v in trainable.items()}
                save_file(state, str(Path(output_dir) / f"trainable_{i}.safetensors"))
        weights.clear()  # nothing else of the models is written

    def load_hook(models, input_dir):
        for i, model in enumerate(list(models)):
            params = _trainable(accelerator.unwrap_model(model))
            state = load_file(str(Path(input_dir) / f"trainable_{i}.safetensors"))
            if set(state) != set(params):
                missing, extra = sorted(set(params) - set(state)), sorted(set(state) - set(params))
                raise TrainingConfigError(
                    f"The checkpoint {input_dir} was written for other trainable parameters "
                    f"(missing {missing[:2]}, unexpected {extra[:2]}); resume with the same settings."
                )
            with torch.no_grad():
                for name, value in state.items():
                    params[name].copy_(value)
        models.clear()

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def save_adapter_safetensors(
    model: torch.nn.Module, path: str | Path, adapter_name: str, metadata: dict[str, str] | None = None
) -> Path:
    """Write one peft adapter of ``model`` (its ``lora_*`` tensors, adapter name stripped) to a safetensors file.

    The keys are peft's (``get_peft_model_state_dict``), so ``set_peft_model_state_dict`` or the pipelines'
    loaders read them back; ``metadata`` (strings only) records rank, base model and so on.
    """
    from peft import get_peft_model_state_dict

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = get_peft_model_state_dict(model, adapter_name=adapter_name)
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(path), metadata=metadata)
    return path
