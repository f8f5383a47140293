"""The I2G LoRA, every rule of it in one place: where it goes, which parameters train, how it is saved and loaded.

It is a named peft adapter (``i2g``) on the UNet's attention projections (``to_q``, ``to_k``, ``to_v``,
``to_out.0``). Training (``train/i2g_pairwise.py``, ``train/i2g_reward.py``) adds it with :func:`add_i2g_lora`
and writes it with :func:`save_i2g_lora` in diffusers' SDXL LoRA format
(``<out>/lora/pytorch_lora_weights.safetensors``), so that inference reads it with diffusers' own
``load_lora_weights`` (:func:`load_i2g_lora`). peft, diffusers' converters and safetensors are imported only
where used, so loading a pipeline never imports the training code.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import torch

from ..errors import InvalidInputError, WeightsNotFoundError

ADAPTER_NAME = "i2g"
LORA_FILENAME = "pytorch_lora_weights.safetensors"
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")

__all__ = [
    "ADAPTER_NAME", "LORA_FILENAME", "LORA_TARGETS", "add_i2g_lora", "load_i2g_lora", "load_into_adapter",
    "lora_file", "lora_parameter_names", "save_i2g_lora",
]


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


def lora_parameter_names(unet: torch.nn.Module, adapter_name: str = ADAPTER_NAME) -> set[str]:
    """The parameters of the named adapter: the only ones that train."""
    return {n for n, _ in unet.named_parameters() if "lora_" in n and f".{adapter_name}." in n}


def add_i2g_lora(
    unet: torch.nn.Module, *, rank: int, lora_alpha: float | None = None, targets: Sequence[str] = LORA_TARGETS,
    adapter_name: str = ADAPTER_NAME, init_from: str | PathLike | None = None,
) -> None:
    """Freeze the UNet and give it a trainable named LoRA (peft), optionally starting from a saved one."""
    from peft import LoraConfig

    unet.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=lora_alpha or rank, init_lora_weights="gaussian",
                        target_modules=list(targets))
    unet.add_adapter(config, adapter_name=adapter_name)
    if init_from is not None:
        load_into_adapter(unet, init_from, adapter_name)
    trainable = lora_parameter_names(unet, adapter_name)
    for name, param in unet.named_parameters():
        param.requires_grad_(name in trainable)


def load_into_adapter(unet: torch.nn.Module, path: str | PathLike, adapter_name: str = ADAPTER_NAME) -> None:
    """Load a saved I2G LoRA (diffusers format) into an adapter already added; ranks and targets must agree.

    :raises InvalidInputError: when the file does not fit the adapter.
    """
    from diffusers.utils import convert_unet_state_dict_to_peft
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    file = lora_file(path)
    if not file.is_file():
        raise WeightsNotFoundError(f"There is no I2G LoRA at {path}.")
    state = {k.removeprefix("unet."): v for k, v in load_file(str(file)).items()}
    try:
        result = set_peft_model_state_dict(unet, convert_unet_state_dict_to_peft(state), adapter_name=adapter_name)
    except RuntimeError as exc:  # shape mismatch
        raise InvalidInputError(f"The LoRA {path} does not fit this adapter (check the rank and targets).") from exc
    if getattr(result, "unexpected_keys", None):
        raise InvalidInputError(f"The LoRA {path} has weights for modules this adapter does not target.")


def save_i2g_lora(unet: torch.nn.Module, directory: str | PathLike, adapter_name: str = ADAPTER_NAME) -> Path:
    """Write the adapter in diffusers' SDXL LoRA format; returns the safetensors file."""
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import get_peft_model_state_dict

    state = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet, adapter_name=adapter_name))
    StableDiffusionXLPipeline.save_lora_weights(str(directory), unet_lora_layers=state, weight_name=LORA_FILENAME)
    return Path(directory) / LORA_FILENAME
