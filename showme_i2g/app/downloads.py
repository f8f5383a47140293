"""Weights, explicitly: ``python app.py --download`` fetches them before the page serves; a request never downloads.

:func:`download_weights` fetches exactly the files each named preset reads; :func:`download_command` is the command
the page and the errors quote, and :func:`missing_preset_message` the sentence a run gets for a preset whose weights
are not here.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, WeightsNotFoundError
from ..presets import ILLUSTRATION_PRESETS, SHOWME_PRESETS


def download_command(illustration: str | None = None, showme: str | None = None) -> str:
    """The exact command that fetches these presets' weights before the page serves (``--lora-dir`` for ``showme``)."""
    parts = ["python app.py --download"]
    if illustration is not None:
        parts.append(f"--preset {illustration}")
    if showme is not None:
        parts.append(f"--showme-preset {showme}")
        if SHOWME_PRESETS[showme].lora_files:
            parts.append("--lora-dir DIR")
    return " ".join(parts)


def preset_download_command(family: str, name: str) -> str:
    """The restart command that fetches one preset's weights; ``family`` is "illustration" or "showme"."""
    flags = {"illustration": (name, None), "showme": (None, name)}[family]
    return download_command(*flags)


def missing_preset_message(family: str, name: str) -> str:
    """One sentence for a run asking for a preset whose weights are not here: the app never downloads in a request."""
    return (f"The '{name}' preset's weights are not on this machine; the app does not download them while serving, "
            f"so restart it with `{preset_download_command(family, name)}` to fetch them first.")


def _hub_failure(what: str, error: BaseException) -> str:
    """One sentence for a failed download: offline, no network, a gated repo, or the hub's own words."""
    name = type(error).__name__
    if name in ("OfflineModeIsEnabled",) or "offline" in str(error).lower():
        reason = "HF_HUB_OFFLINE is set, so the Hugging Face Hub may not be contacted"
    elif name in ("GatedRepoError",) or "401" in str(error):
        reason = "the repository needs a Hugging Face login with access to it (run `hf auth login`)"
    elif isinstance(error, (ConnectionError, TimeoutError)) or "connect" in str(error).lower() or name in (
            "LocalEntryNotFoundError", "ConnectError", "ConnectTimeout"):
        reason = "the Hugging Face Hub could not be reached"
    else:
        reason = (str(error).strip().splitlines() or [name])[0].rstrip(".")
    return f"Could not download {what}: {reason}."


def download_weights(
    illustration: str | None = None,
    showme: str | None = None,
    *,
    on_gpu: bool = False,
    lora_dir: str | os.PathLike | None = None,
    trained_adapters: Collection[str] = (),
    cache_dir: str | os.PathLike | None = None,
) -> list[str]:
    """Fetch into the Hugging Face cache exactly the files each named preset reads; returns what was fetched, in words.

    This is ``python app.py --download``: it runs before the page serves, with the hub's own progress bars, so that
    no request ever starts a multi-gigabyte download. Refused in one sentence (:class:`WeightsNotFoundError`) with
    ``HF_HUB_OFFLINE=1``, without a network, or for the ``showme`` preset's LoRA files (published on Google Drive,
    not the hub) when ``--lora-dir`` does not hold them. Afterwards :func:`.presets.illustration_weights_present` /
    :func:`.presets.showme_weights_present` find every file.
    """
    from huggingface_hub import constants, hf_hub_download, snapshot_download

    named = [(ILLUSTRATION_PRESETS[illustration], None)] if illustration else []
    named += [(None, SHOWME_PRESETS[showme])] if showme else []
    if not any((i and i.base) or (s and s.checkpoint) for i, s in named):
        raise InvalidInputError("There is nothing to download: name a real preset with --preset or --showme-preset "
                                "(the tiny ones are built in code).")
    lora_files = SHOWME_PRESETS[showme].lora_files if showme else ()
    if showme and SHOWME_PRESETS[showme].reads_release_loras(trained_adapters) and not (
            lora_dir is not None and all((Path(lora_dir) / name).is_file() for name in lora_files)):
        raise WeightsNotFoundError(SHOWME_PRESETS[showme].missing_weights_message("lora"))
    if constants.HF_HUB_OFFLINE:
        raise WeightsNotFoundError("--download needs the Hugging Face Hub, but HF_HUB_OFFLINE is set; unset it, or "
                                   "copy the weights into this machine's Hugging Face cache.")

    fetched: list[str] = []

    def fetch(what: str, call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception as error:  # the hub's errors are OSError, httpx and HfHubHTTPError kinds alike
            raise WeightsNotFoundError(_hub_failure(what, error)) from error
        fetched.append(what)

    for preset, _ in named:
        if preset is None or preset.base is None:
            continue
        patterns = list(preset.repo_files(preset.weight_variants(on_gpu)[0]))
        fetch(f"{preset.base} for the '{preset.name}' preset",
              functools.partial(snapshot_download, preset.base, allow_patterns=patterns, cache_dir=cache_dir))
        if preset.vae:
            fetch(f"{preset.vae} (the VAE of the '{preset.name}' preset)",
                  functools.partial(snapshot_download, preset.vae, allow_patterns=["*.json", "*.safetensors"],
                                    cache_dir=cache_dir))
        if preset.lora:
            fetch(f"{preset.lora[0]} {preset.lora[1]} for the '{preset.name}' preset",
                  functools.partial(hf_hub_download, *preset.lora, cache_dir=cache_dir))
    for _, preset in named:
        if preset is None or preset.checkpoint is None:
            continue
        fetch(f"{' '.join(preset.checkpoint)} for the '{preset.name}' preset",
              functools.partial(hf_hub_download, *preset.checkpoint, cache_dir=cache_dir))
    return fetched
