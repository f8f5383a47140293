"""Which presets the app runs: the weights on this machine (the Hugging Face cache only, never the network).

:func:`pick_presets` picks the best preset of each family whose weights are here; :func:`preset_choices` labels the
dropdowns and :func:`banner_markdown` says in words which models run, honestly so for the untrained tiny ones.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError
from ..presets import ILLUSTRATION_PRESETS, SHOWME_PRESETS, IllustrationPreset, ShowMePreset
from .downloads import download_command, preset_download_command

#: Best first. Lightning gives SDXL quality at interactive speed; plain SDXL is the paper's 30-step backbone.
ILLUSTRATION_ORDER = ("sdxl-lightning", "sdxl", "tiny")
#: Best first: ShowMe (DynamiCrafter 256 + the authors' LoRAs); then plain DynamiCrafter, smallest (the resolution
#: ShowMe was trained at, least memory) first; the untrained tiny model last.
SHOWME_ORDER = ("showme", "dynamicrafter-256", "dynamicrafter-512", "dynamicrafter-1024", "tiny")

#: How the app labels a tiny preset, everywhere it names one.
TINY_LABEL = "untrained, random weights — plumbing only"


def _cached(repo_id: str, filename: str, cache_dir: str | os.PathLike | None) -> bool:
    """Whether ``filename`` of ``repo_id`` is in the Hugging Face cache: a look-up on disk, never a request."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
    return isinstance(found, str) and os.path.isfile(found)


def illustration_weights_present(
    preset: IllustrationPreset, *, on_gpu: bool = False, cache_dir: str | os.PathLike | None = None
) -> bool:
    """Whether every file ``IllustrationPipeline.from_preset(preset.name)`` reads is cached (always for ``tiny``)."""
    if preset.base is None:
        return True
    choices = [preset.repo_files(variant) for variant in preset.weight_variants(on_gpu)]
    if not all(any(_cached(preset.base, files[i], cache_dir) for files in choices) for i in range(len(choices[0]))):
        return False  # each file is needed in one of the variants loading tries
    return preset.lora is None or _cached(*preset.lora, cache_dir)


def showme_weights_present(
    preset: ShowMePreset,
    *,
    lora_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    trained_adapters: Collection[str] = (),
) -> bool:
    """Whether the preset's DynamiCrafter checkpoint is cached and, for ``showme``, its LoRA files are in ``lora_dir``.

    ``trained_adapters`` names the adapters given as files of our own: with both, the authors' LoRA files are not
    needed (:meth:`~showme_i2g.presets.ShowMePreset.reads_release_loras`).
    """
    if preset.checkpoint is None:
        return True
    if not _cached(*preset.checkpoint, cache_dir):
        return False
    if preset.reads_release_loras(trained_adapters):
        return lora_dir is not None and all((Path(lora_dir) / name).is_file() for name in preset.lora_files)
    return True


@dataclass(frozen=True)
class PresetChoice:
    """The presets the app starts with, and which presets of each family have their weights here."""

    illustration: str
    showme: str
    illustration_available: tuple[str, ...]
    showme_available: tuple[str, ...]


def pick_presets(
    illustration: str | None = None,
    showme: str | None = None,
    *,
    lora_dir: str | os.PathLike | None = None,
    on_gpu: bool = False,
    cache_dir: str | os.PathLike | None = None,
    trained_adapters: Collection[str] = (),
) -> PresetChoice:
    """The named presets, or for a family not named, its best preset whose weights are present (else ``tiny``).

    A named preset is used even when its weights are missing: its first run then says how to get them.
    """
    if illustration is not None and illustration not in ILLUSTRATION_PRESETS:
        raise InvalidInputError(f"Unknown preset {illustration!r}; choose one of: {', '.join(ILLUSTRATION_ORDER)}.")
    if showme is not None and showme not in SHOWME_PRESETS:
        raise InvalidInputError(f"Unknown ShowMe preset {showme!r}; choose one of: {', '.join(SHOWME_ORDER)}.")
    illustration_available = tuple(
        name for name in ILLUSTRATION_ORDER
        if illustration_weights_present(ILLUSTRATION_PRESETS[name], on_gpu=on_gpu, cache_dir=cache_dir)
    )
    showme_available = tuple(
        name for name in SHOWME_ORDER
        if showme_weights_present(SHOWME_PRESETS[name], lora_dir=lora_dir, cache_dir=cache_dir,
                                  trained_adapters=trained_adapters)
    )
    return PresetChoice(
        illustration=illustration or illustration_available[0],
        showme=showme or showme_available[0],
        illustration_available=illustration_available,
        showme_available=showme_available,
    )



def preset_choices(order: Sequence[str], available: Sequence[str]) -> list[tuple[str, str]]:
    """(label, name) pairs for a dropdown: the allow-list of presets, each saying what a user must know about it."""
    def label(name: str) -> str:
        if name == "tiny":
            return f"tiny ({TINY_LABEL})"
        return name if name in available else f"{name} (weights not on this machine)"

    return [(label(name), name) for name in order]


def banner_markdown(choice: PresetChoice) -> str:
    """The banner at the top of the app: which models run, in words, and honestly so for the tiny ones."""

    def line(family: str, name: str, description: str, available: Sequence[str]) -> str:
        if name == "tiny":
            return f"**{family}:** `tiny` (⚠️ {TINY_LABEL})"
        command = preset_download_command("illustration" if family == "Illustrations" else "showme", name)
        missing = "" if name in available else f" ⚠️ Its weights are not on this machine: restart with `{command}`."
        return f"**{family}:** `{name}`: {description}{missing}"

    lines = [
        line("Illustrations", choice.illustration, ILLUSTRATION_PRESETS[choice.illustration].description,
             choice.illustration_available),
        line("Photo edits and videos", choice.showme, SHOWME_PRESETS[choice.showme].description,
             choice.showme_available),
    ]
    if choice.illustration == "tiny" or choice.showme == "tiny":
        lines.append(
            "The tiny models are untrained: every part runs end to end, but their pictures and videos are noise. "
            "Real presets run once their weights are on this machine: start the app with "
            f"`{download_command('sdxl-lightning', 'dynamicrafter-256')}` to fetch them first."
        )
    return "  \n".join(lines)
