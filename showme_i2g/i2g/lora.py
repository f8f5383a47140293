"""Load a trained I2G LoRA (``train/i2g_pairwise.py``, ``train/i2g_reward.py``) into an ``IllustrationPipeline``.

Training writes the adapter in diffusers' SDXL LoRA format (``<out>/lora/pytorch_lora_weights.safetensors``), so
inference reads it with diffusers' own ``load_lora_weights``. This lives in the inference package so that loading a
trained adapter never imports the training code.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from ..errors import InvalidInputError, WeightsNotFoundError

ADAPTER_NAME = "i2g"
LORA_FILENAME = "pytorch_lora_weights.safetensors"

__all__ = ["ADAPTER_NAME", "LORA_FILENAME", "load_i2g_lora", "lora_file"]


def lora_file(path: str | PathLike) -> Path:
    """The safetensors file of a LoRA given as the file itself or as the folder training wrote it to."""
    path = Path(path)
    return path / LORA_FILENAME if path.is_dir() else path


def load_i2g_lora(pipe, path: str | PathLike, adapter_name: str = ADAPTER_NAME, scale: float = 1.0):
    """Load a trained I2G LoRA (file or run folder) into an ``IllustrationPipeline`` and activate it at ``scale``.

    :raises WeightsNotFoundError: when there is no such file.
    :raises InvalidInputError: when the file is not an SDXL LoRA that fits this pipeline's UNet.
    """
    file = lora_file(path)
    if not file.is_file():
        raise WeightsNotFoundError(f"There is no I2G LoRA at {path}.")
    try:
        pipe.load_lora_weights(str(file.parent), weight_name=file.name, adapter_name=adapter_name)
    except Exception as exc:  # noqa: BLE001 - safetensors, peft and diffusers each raise their own kinds
        raise InvalidInputError(
            f"{file} is not an SDXL LoRA that fits the '{_preset_name(pipe)}' preset's UNet ({_first_line(exc)})."
        ) from exc
    pipe.set_adapters([adapter_name], adapter_weights=[float(scale)])
    return pipe


def _preset_name(pipe) -> str:
    preset = getattr(pipe, "preset", None)
    return preset.name if preset is not None else "given"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200].rstrip(".")
