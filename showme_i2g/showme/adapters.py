"""ShowMe's two LoRA adapters on DynamiCrafter, as named peft adapters: ``edit`` (stage 1) and ``animate`` (stage 2).

The ShowMe paper fine-tunes one DynamiCrafter model in two stages. Stage 1 teaches it to *edit* an image (the UNet
runs as a per-frame image model), stage 2 to *animate* the action (the UNet runs as a video model on top of the
stage-1 weights). The authors' release hand-writes its LoRA layers (``lora_A`` (in, r), ``lora_B`` (r, out), output
``scaling * dropout(x) @ A @ B`` added to the projection's output, scaling 1.0, dropout 0.1); here both stages are
``peft`` LoRA adapters injected into the same ``nn.Linear`` modules:

===========  ==============================================================================================
``edit``     rank 128 (stage 1, ``stage1_*`` in the release): spatial self-attention q/k/v, spatial
             cross-attention q/k/v/k_ip/v_ip, *every* FeedForward (``ff.net.0.proj``, the GEGLU projection, and
             ``ff.net.2``; spatial and temporal blocks, ``init_attn`` included) and the Resampler's attention
             (``image_proj_model.layers.N.0.to_q`` and the fused ``to_kv``).
``animate``  rank 64 (stage 2, ``stage2_*``): spatial self- and cross-attention (with the image branch), temporal
             attention q/k/v (``attn1`` *and* ``attn2`` of every temporal block: both are self-attention there,
             ``init_attn`` included) and every FeedForward. Not the Resampler.
===========  ==============================================================================================

``lora_alpha`` equals the rank, so peft's scaling is 1.0 as in the release; dropout is 0.1. The targets are regular
expressions over module names (``target_modules`` given as one string is matched with ``re.fullmatch``); spatial
transformers are child ``1`` and temporal transformers child ``2`` of their UNet block (``init_attn.0`` is temporal).
:func:`release_lora_keys` turns the injected layers back into the release's key names, and the tests check them
against the release's exact key sets.

**The fused ``to_kv``.** The Resampler computes keys and values with one Linear whose output is ``[k ; v]``; the
release gives k and v separate rank-r LoRAs (on the same input). Here ``to_kv`` gets one LoRA of rank 2r (and alpha
2r, so scaling stays 1.0): ``lora_A.weight = [A_k^T ; A_v^T]`` (2r, in) and ``lora_B.weight =
blockdiag(B_k^T, B_v^T)`` (2*inner, 2r) reproduce the release's two LoRAs exactly. Two differences remain, both only
in training: peft draws one dropout mask for the shared input where the release draws one per LoRA, and a rank-2r
LoRA trained here is not kept block-diagonal (its off-diagonal blocks of ``lora_B`` start at zero but can learn), so
it is a superset of the release's parameterisation and only a block-diagonal one exports back to release keys.

**Modes** (:func:`set_mode`, :func:`mode`): ``"image"`` = only ``edit`` active and every temporal module bypassed
(the UNet is a per-frame image model); ``"video"`` = ``edit`` + ``animate`` active, temporal modules on; ``"base"`` =
every adapter disabled, temporal modules on (plain DynamiCrafter). Switching modes never changes ``requires_grad``.
:func:`fused` folds a mode's adapters into the base weights for a ``with`` block (sampling without adapter
branches) and restores the weights bit for bit afterwards.

**Training stages** (:func:`set_training_stage`): stage 1 trains exactly the ``edit`` LoRA weights, stage 2 exactly
the ``animate`` ones; everything else is frozen. Deliberate difference from the release: its stage-2 run also keeps
the Resampler's stage-1 LoRA trainable (its ``image_proj_model`` is built with ``current_lora_stage`` left at 1);
here all of ``edit`` is frozen in stage 2, so stage 2 cannot disturb the image model.

Files: :func:`save_adapter` writes peft's own layout, a folder with ``adapter_config.json`` and
``adapter_model.safetensors`` (keys as ``get_peft_model_state_dict`` writes them), which peft's
``load_peft_weights`` reads; :func:`load_adapter` reads it back (and, for a while, the earlier single
``.safetensors`` file with the name and rank in its metadata); :func:`adapter_file_info` gives the name and rank of
either; :func:`load_release_lora` reads the authors' ``lora_image.pth`` / ``lora_video.pth``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn

from ..errors import InvalidInputError, WeightsNotFoundError
from ..presets import SHOWME_ADAPTERS
from .dynamicrafter.attention import TemporalTransformer
from .dynamicrafter.model import DynamiCrafter

ADAPTERS = SHOWME_ADAPTERS  # named in presets, which must stay light (it tells which files a preset reads)
EDIT, ANIMATE = ADAPTERS
MODES = ("image", "video", "base")
STAGES = {1: EDIT, 2: ANIMATE}
"""Training stage -> the adapter it trains (and the release's ``stage1_`` / ``stage2_`` key tag)."""

LORA_DROPOUT = 0.1
FILE_FORMAT = "showme-lora"
"""The ``format`` metadata of the earlier single-file layout, still read by :func:`load_adapter`."""

# ----------------------------------------------------------------------------------------------- target modules
_UNET = r"model\.diffusion_model\."
_BLOCK = r"(?:input_blocks\.\d+|middle_block|output_blocks\.\d+)"
_SPATIAL_BLOCKS = _UNET + _BLOCK + r"\.1\.transformer_blocks\.\d+\."
_TEMPORAL_BLOCKS = _UNET + r"(?:" + _BLOCK + r"\.2|init_attn\.0)\.transformer_blocks\.\d+\."
_SPATIAL_ATTENTION = _SPATIAL_BLOCKS + r"(?:attn1\.to_[qkv]|attn2\.to_(?:[qkv]|k_ip|v_ip))"
_TEMPORAL_ATTENTION = _TEMPORAL_BLOCKS + r"attn[12]\.to_[qkv]"
_FEED_FORWARD = _UNET + r"(?:.+\.)?transformer_blocks\.\d+\.ff\.net\.(?:0\.proj|2)"
_RESAMPLER_ATTENTION = r"image_proj_model\.layers\.\d+\.0\.to_(?:q|kv)"
_RESAMPLER_KV = r"image_proj_model\.layers\.\d+\.0\.to_kv"

EDIT_TARGETS = f"{_SPATIAL_ATTENTION}|{_FEED_FORWARD}|{_RESAMPLER_ATTENTION}"
ANIMATE_TARGETS = f"{_SPATIAL_ATTENTION}|{_TEMPORAL_ATTENTION}|{_FEED_FORWARD}"


def edit_lora_config(rank: int = 128) -> LoraConfig:
    """Stage 1 (``edit``): spatial attention, every FeedForward, the Resampler's attention (fused ``to_kv`` at 2r)."""
    _check_rank(rank)
    return LoraConfig(
        r=rank,
        lora_alpha=rank,
        lora_dropout=LORA_DROPOUT,
        target_modules=EDIT_TARGETS,
        rank_pattern={_RESAMPLER_KV: 2 * rank},
        alpha_pattern={_RESAMPLER_KV: 2 * rank},
        bias="none",
    )


def animate_lora_config(rank: int = 64) -> LoraConfig:
    """Stage 2 (``animate``): spatial and temporal attention, every FeedForward."""
    _check_rank(rank)
    return LoraConfig(
        r=rank, lora_alpha=rank, lora_dropout=LORA_DROPOUT, target_modules=ANIMATE_TARGETS, bias="none"
    )


def _check_rank(rank: int) -> None:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"LoRA rank must be a positive integer, got {rank!r}")


# ----------------------------------------------------------------------------------------------- injection
def _lora_layers(model: nn.Module, adapter: str | None = None) -> Iterator[tuple[str, LoraLayer]]:
    """(name, layer) of every peft LoRA layer in ``model``; with ``adapter``, only those that hold it."""
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and (adapter is None or adapter in module.lora_A):
            yield name, module


def has_adapters(model: nn.Module) -> bool:
    """Does ``model`` hold a ShowMe adapter (``edit`` or ``animate``) already?"""
    return any(any(a in layer.lora_A for a in ADAPTERS) for _, layer in _lora_layers(model))


def add_showme_adapters(model: DynamiCrafter, edit_rank: int = 128, animate_rank: int = 64) -> None:
    """Inject the ``edit`` and ``animate`` LoRA adapters (zero ``lora_B``: the model's output is unchanged).

    The base model's ``requires_grad`` flags are left as they were and the new adapter weights are frozen until
    :func:`set_training_stage` says otherwise; the new modules follow the model's train/eval state (LoRA dropout
    only acts in training mode). The model ends in ``"video"`` mode (both adapters active, temporal
    modules on). On a model on the meta device the adapter weights are created on the meta device too.

    :raises ValueError: when the model holds ShowMe adapters already.
    """
    if has_adapters(model):
        raise ValueError("this model already holds the ShowMe adapters; add them only once")
    configs = {EDIT: edit_lora_config(edit_rank), ANIMATE: animate_lora_config(animate_rank)}
    requires_grad = [(p, p.requires_grad) for p in model.parameters()]
    on_meta = any(p.is_meta for p in model.parameters())
    with warnings.catch_warnings():
        # The second injection finds the first one's ``peft_config`` on the model: expected, adapters are named.
        warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute", category=UserWarning)
        for name, config in configs.items():
            inject_adapter_in_model(config, model, adapter_name=name, low_cpu_mem_usage=on_meta)
    model.peft_config = dict(configs)  # both configs, whatever peft recorded (adapter_rank reads them)
    for parameter, flag in requires_grad:
        parameter.requires_grad_(flag)
    for _, layer in _lora_layers(model):
        layer.train(layer.get_base_layer().training)  # new dropouts start in training mode even in an eval model
        for adapter in ADAPTERS:
            for parameter in _adapter_parameters(layer, adapter):
                parameter.requires_grad_(False)
    set_mode(model, "video")


def _require_adapter(model: nn.Module, name: str) -> list[tuple[str, LoraLayer]]:
    if name not in ADAPTERS:
        raise ValueError(f"unknown adapter {name!r}; the ShowMe adapters are {EDIT!r} and {ANIMATE!r}")
    layers = list(_lora_layers(model, name))
    if not layers:
        raise ValueError(f"this model has no {name!r} adapter; call add_showme_adapters(model) first")
    return layers


def _adapter_parameters(layer: LoraLayer, adapter: str) -> list[nn.Parameter]:
    if adapter not in layer.lora_A:
        return []
    return [*layer.lora_A[adapter].parameters(), *layer.lora_B[adapter].parameters()]


def adapter_rank(model: nn.Module, name: str) -> int:
    """The rank ``r`` of an adapter (the fused Resampler ``to_kv`` has 2r: r for k and r for v)."""
    layers = _require_adapter(model, name)
    config = getattr(model, "peft_config", {}).get(name)
    if isinstance(config, LoraConfig):
        return int(config.r)
    return min(int(layer.r[name]) for _, layer in layers)


# ----------------------------------------------------------------------------------------------- modes
def _unet(model: nn.Module) -> nn.Module:
    return model.model.diffusion_model


@dataclass
class _State:
    """Which adapters every LoRA layer runs, and which temporal modules are bypassed."""

    layers: list[tuple[LoraLayer, list[str], bool]]
    bypass: list[tuple[nn.Module, bool]]


def _snapshot(model: nn.Module) -> _State:
    layers = [(layer, list(layer.active_adapters), bool(layer.disable_adapters)) for _, layer in _lora_layers(model)]
    bypass = [(module, bool(module.bypass)) for module in _unet(model).temporal_modules()]
    return _State(layers, bypass)


@contextmanager
def _keep_requires_grad(model: nn.Module) -> Iterator[None]:
    """peft's ``set_adapter`` / ``enable_adapters`` flip ``requires_grad`` of adapter weights: undo that."""
    flags = [(p, p.requires_grad) for _, layer in _lora_layers(model) for p in layer.parameters()]
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def _restore(model: nn.Module, state: _State) -> None:
    with _keep_requires_grad(model):
        for layer, active, disabled in state.layers:
            layer.enable_adapters(True)
            layer.set_adapter(active)
            if disabled:
                layer.enable_adapters(False)
    for module, bypass in state.bypass:
        module.bypass = bypass


def set_mode(model: DynamiCrafter, mode: str) -> None:
    """``"image"``: only ``edit``, temporal modules bypassed; ``"video"``: ``edit`` + ``animate``, temporal on;
    ``"base"``: all adapters off, temporal on. ``requires_grad`` is left unchanged.

    :raises ValueError: for any other mode.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(repr(m) for m in MODES)}")
    if is_fused(model):  # the folded weights hold the current mode's adapters: another mode would run them too
        raise RuntimeError("Switch modes outside adapters.fused(...): this model's adapters are folded into it.")
    with _keep_requires_grad(model):
        for _, layer in _lora_layers(model):
            if mode == "base":
                layer.enable_adapters(False)
            else:
                layer.enable_adapters(True)
                layer.set_adapter([EDIT] if mode == "image" else [EDIT, ANIMATE])
    _unet(model).set_temporal_bypass(mode == "image")


def active_adapter_names(model: nn.Module) -> tuple[str, ...]:
    """The adapters that some LoRA layer of ``model`` runs now (sorted): with the temporal bypass, what a mode is."""
    return tuple(sorted({
        name for _, layer in _lora_layers(model) if not layer.disable_adapters for name in layer.active_adapters
    }))


@contextmanager
def mode(model: DynamiCrafter, mode: str) -> Iterator[None]:
    """:func:`set_mode` for a ``with`` block; the previous adapters and temporal bypass come back afterwards."""
    state = _snapshot(model)
    set_mode(model, mode)
    try:
        yield
    finally:
        _restore(model, state)


@contextmanager
def fused(model: nn.Module) -> Iterator[None]:
    """The adapters that run now, folded into their base weights for a ``with`` block, and exactly unfolded after.

    Each LoRA layer running adapters gets ``W += Σ scaling · B · A`` in place (peft's ``merge``), so its forward
    is the base layer's alone: no adapter GEMMs and about four fewer kernels per adapter (in video mode at real
    size, 498 adapter branches on 304 layers and 14 % of a step's FLOPs; an edit step is launch-bound). The
    weights keep their storage, so a CUDA graph captured inside the block replays the folded weights. On exit the
    weights kept aside are copied back bit for bit (peft's ``unmerge`` subtracts, which does not give them back in
    half precision), so fusing never drifts the model however often modes switch; modes cannot switch inside the
    block (:func:`set_mode` refuses). Inside the block the outputs equal the unfused model's up to the rounding of
    the folded weights; ``requires_grad`` is unchanged. It costs one copy of the folded layers' weights (487 M
    parameters in video mode at real size, about 1 GB in fp16) for the block's duration.
    """
    originals: list[tuple[LoraLayer, torch.Tensor]] = []
    try:
        with torch.no_grad(), _keep_requires_grad(model):
            for _, layer in _lora_layers(model):
                names = [name for name in layer.active_adapters if name in layer.lora_A]
                if layer.disable_adapters or not names or layer.merged:
                    continue
                bias, variants = getattr(layer, "lora_bias", {}), getattr(layer, "lora_variant", {})  # newer peft
                if any(bias.get(name) or name in variants for name in names):
                    raise ValueError("adapters.fused folds plain LoRA only (no LoRA bias, no DoRA-like variant).")
                originals.append((layer, layer.get_base_layer().weight.detach().clone()))
                layer.merge(adapter_names=names)  # in place: the weight keeps its storage
        yield
    finally:
        with torch.no_grad():
            for layer, original in originals:
                layer.get_base_layer().weight.copy_(original)
                layer.merged_adapters.clear()


def is_fused(model: nn.Module) -> bool:
    """Whether some LoRA layer of ``model`` runs with its adapters folded into its weights (:func:`fused`)."""
    return any(layer.merged for _, layer in _lora_layers(model))


# ----------------------------------------------------------------------------------------------- training
def set_training_stage(model: DynamiCrafter, stage: int) -> list[str]:
    """Stage 1: only the ``edit`` LoRA weights require grad; stage 2: only the ``animate`` ones. Everything else is
    frozen (in stage 2 that includes the Resampler's ``edit`` LoRA, which the release keeps training).

    Does not change the mode or train/eval. :return: the names of the trainable parameters.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown training stage {stage!r}; ShowMe trains in stage 1 (edit) or 2 (animate)")
    layers = _require_adapter(model, STAGES[stage])
    trainable = {id(p) for _, layer in layers for p in _adapter_parameters(layer, STAGES[stage])}
    names = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(id(parameter) in trainable)
        if id(parameter) in trainable:
            names.append(name)
    return names


# ----------------------------------------------------------------------------------------------- own files
SHOWME_ADAPTER_KEY = "showme_adapter"
"""safetensors metadata key naming the ShowMe adapter a folder holds (the config alone does not name it)."""


def _adapter_state_dict(model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """``{module}.lora_A.weight`` / ``{module}.lora_B.weight`` for every layer holding the adapter: peft's keys
    (``get_peft_model_state_dict``), read straight from the layers so that loading can copy into them."""
    state = {}
    for module_name, layer in _require_adapter(model, name):
        state[f"{module_name}.lora_A.weight"] = layer.lora_A[name].weight
        state[f"{module_name}.lora_B.weight"] = layer.lora_B[name].weight
    return state


def save_adapter(model: DynamiCrafter, name: str, folder: str | PathLike) -> Path:
    """Write one adapter in peft's own layout: ``folder/adapter_config.json`` (its ``LoraConfig``) and
    ``folder/adapter_model.safetensors`` (``get_peft_model_state_dict``'s keys, the adapter name removed).

    ``peft.utils.load_peft_weights(folder)`` reads the weights and ``LoraConfig.from_pretrained(folder)`` the
    config, as for any peft adapter; the safetensors metadata also names the adapter (``showme_adapter``).
    :return: the folder.
    """
    from peft import get_peft_model_state_dict
    from peft.utils.constants import SAFETENSORS_WEIGHTS_NAME
    from safetensors.torch import save_file

    _require_adapter(model, name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.peft_config[name].save_pretrained(str(folder))
    state = get_peft_model_state_dict(model, adapter_name=name)
    tensors = {key: value.detach().to("cpu").contiguous().clone() for key, value in state.items()}
    save_file(tensors, str(folder / SAFETENSORS_WEIGHTS_NAME), metadata={"format": "pt", SHOWME_ADAPTER_KEY: name})
    return folder


def _examples(keys, limit: int = 3) -> str:
    keys = sorted(keys)
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _safetensors_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - OSError, or safetensors' own SafetensorError
        raise InvalidInputError(f"{path} is not a readable safetensors adapter file ({exc}).") from exc


def _folder_info(folder: Path) -> tuple[str, int]:
    """(name, rank) of a peft adapter folder: the rank from its config, the name from the weights' metadata, or
    else from the config's targets (a folder written by peft itself with one of :func:`edit_lora_config`'s)."""
    from peft.utils.constants import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME

    config_path, weights = folder / CONFIG_NAME, folder / SAFETENSORS_WEIGHTS_NAME
    if not config_path.is_file() or not weights.is_file():
        raise InvalidInputError(f"{folder} is not a ShowMe adapter folder: it needs {CONFIG_NAME} and "
                                f"{SAFETENSORS_WEIGHTS_NAME} (written by save_adapter).")
    try:
        config = LoraConfig.from_pretrained(str(folder))
    except Exception as exc:  # noqa: BLE001 - unreadable JSON or another peft type
        raise InvalidInputError(f"{config_path} is not a readable LoRA config ({exc}).") from exc
    targets = {EDIT_TARGETS: EDIT, ANIMATE_TARGETS: ANIMATE}
    name = _safetensors_metadata(weights).get(SHOWME_ADAPTER_KEY) or targets.get(config.target_modules)
    if name not in ADAPTERS or isinstance(config.r, bool) or not isinstance(config.r, int) or config.r < 1:
        raise InvalidInputError(f"{folder} does not hold a ShowMe adapter written by save_adapter.")
    return name, int(config.r)


def _single_file_info(path: Path) -> tuple[str, int]:
    """(name, rank) of the earlier single-file layout (safetensors with ``format``/``adapter``/``rank`` metadata)."""
    metadata = _safetensors_metadata(path)
    name, rank = metadata.get("adapter"), metadata.get("rank", "")
    if metadata.get("format") != FILE_FORMAT or name not in ADAPTERS or not rank.isdigit() or int(rank) < 1:
        raise InvalidInputError(f"{path} is not a ShowMe adapter file written by save_adapter.")
    return name, int(rank)


def adapter_file_info(path: str | PathLike) -> tuple[str, int]:
    """(adapter name, rank) of an adapter written by :func:`save_adapter` (a folder; the earlier single
    ``.safetensors`` file is read too), without loading its tensors, so that a model can be given adapters of that
    rank before :func:`load_adapter`.

    :raises WeightsNotFoundError: when there is no such file or folder. :raises InvalidInputError: when it is not one.
    """
    path = Path(path)
    if path.is_dir():
        return _folder_info(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"There is no ShowMe adapter file at {path}.")
    return _single_file_info(path)


def _read_adapter(path: Path) -> tuple[str, int, dict[str, torch.Tensor]]:
    """(name, rank, tensors) of a saved adapter: a peft folder (read by peft's ``load_peft_weights``) or, for a
    while, the earlier single file (with a FutureWarning)."""
    from peft.utils import load_peft_weights
    from safetensors.torch import load_file

    name, rank = adapter_file_info(path)
    try:
        if path.is_dir():
            return name, rank, load_peft_weights(str(path), device="cpu")
        warnings.warn(f"{path} is a single-file ShowMe adapter, an older layout read for a while; save it again with "
                      "save_adapter (a peft adapter folder).", FutureWarning, stacklevel=3)
        return name, rank, load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - OSError, or safetensors' own SafetensorError
        raise InvalidInputError(f"{path} is not a readable safetensors adapter file ({exc}).") from exc


def load_adapter(model: DynamiCrafter, name: str, path: str | PathLike) -> None:
    """Load an adapter written by :func:`save_adapter` into adapter ``name``, strictly (same adapter, rank, keys
    and shapes), through peft's ``set_peft_model_state_dict``. ``path`` is the peft folder; the earlier
    single-file layout is still read (with a FutureWarning).

    Nothing is changed unless the whole adapter fits. :raises InvalidInputError: (a ValueError) with one sentence.
    """
    from peft import set_peft_model_state_dict

    path = Path(path)
    target = _adapter_state_dict(model, name)
    rank = adapter_rank(model, name)
    saved_name, saved_rank, tensors = _read_adapter(path)
    if saved_name != name:
        raise InvalidInputError(f"{path} holds the {saved_name!r} adapter, not {name!r}.")
    if saved_rank != rank:
        raise InvalidInputError(f"{path} holds a rank-{saved_rank} {name!r} adapter but this model's has rank {rank}.")
    missing, unexpected = set(target) - set(tensors), set(tensors) - set(target)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"lacks {len(missing)} of this model's keys ({_examples(missing)})")
        if unexpected:
            parts.append(f"has {len(unexpected)} keys this model does not ({_examples(unexpected)})")
        raise InvalidInputError(f"{path} does not fit this model's {name!r} adapter: it {' and '.join(parts)}.")
    for key, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(target[key].shape):
            raise InvalidInputError(
                f"{path}: {key!r} has shape {tuple(tensor.shape)} but this model expects {tuple(target[key].shape)}."
            )
    with torch.no_grad(), _keep_requires_grad(model):
        set_peft_model_state_dict(model, tensors, adapter_name=name)


# ----------------------------------------------------------------------------------------------- release files
@dataclass(frozen=True)
class _ReleaseSlot:
    """Where one release tensor goes: ``layer``'s adapter, factor A or B, and for the fused to_kv the half."""

    adapter: str
    module: str
    factor: str  # "A" (in, r) or "B" (r, out)
    half: int | None  # None, or 0 (k) / 1 (v) of the Resampler's fused to_kv
    shape: tuple[int, ...]


_LEAF_SUFFIX = {"to_q": "q", "to_k": "k", "to_v": "v", "to_k_ip": "ip_k", "to_v_ip": "ip_v"}


def _release_layout(model: nn.Module, adapter: str) -> dict[str, _ReleaseSlot]:
    """The release's key for every tensor of ``adapter``, from the layers the adapter is injected into."""
    stage = next(s for s, a in STAGES.items() if a == adapter)
    temporal = [name + "." for name, m in model.named_modules() if isinstance(m, TemporalTransformer)]
    layout: dict[str, _ReleaseSlot] = {}
    for module_name, layer in _require_adapter(model, adapter):
        base = layer.get_base_layer()
        fan_in, fan_out, rank = base.in_features, base.out_features, int(layer.r[adapter])
        parent, leaf = module_name.rsplit(".", 1)
        if module_name.endswith(".ff.net.0.proj"):
            entries = [(module_name[: -len(".net.0.proj")], "ff_in", None)]
        elif module_name.endswith(".ff.net.2"):
            entries = [(module_name[: -len(".net.2")], "ff_out", None)]
        elif module_name.startswith("image_proj_model.") and leaf == "to_q":
            entries = [(parent, "cross_attn_q", None)]
        elif module_name.startswith("image_proj_model.") and leaf == "to_kv":
            entries = [(parent, "cross_attn_k", 0), (parent, "cross_attn_v", 1)]
            fan_out, rank = fan_out // 2, rank // 2
        elif leaf in _LEAF_SUFFIX and parent.rsplit(".", 1)[-1] in ("attn1", "attn2"):
            # The release names an attention by how it is called: attn2 of a spatial block gets the context
            # ("cross_attn"); attn1, and both attentions of a temporal block, are self-attention ("self_attn").
            is_temporal = any(module_name.startswith(prefix) for prefix in temporal)
            kind = "cross_attn" if parent.endswith(".attn2") and not is_temporal else "self_attn"
            entries = [(parent, f"{kind}_{_LEAF_SUFFIX[leaf]}", None)]
        else:
            raise ValueError(f"the {adapter!r} adapter on {module_name!r} has no counterpart in the release's layout")
        for prefix, what, half in entries:
            key = f"{prefix}.stage{stage}_lora_{what}"
            layout[f"{key}.lora_A"] = _ReleaseSlot(adapter, module_name, "A", half, (fan_in, rank))
            layout[f"{key}.lora_B"] = _ReleaseSlot(adapter, module_name, "B", half, (rank, fan_out))
    return layout


def release_lora_keys(model: DynamiCrafter, stage: int) -> dict[str, tuple[int, ...]]:
    """The release-format LoRA keys (``...attn1.stage1_lora_self_attn_q.lora_A``) and shapes of one stage's adapter
    as injected into this model: stage 1 -> ``edit``, stage 2 -> ``animate`` (only the ``stage2_*`` keys)."""
    if stage not in STAGES:
        raise ValueError(f"unknown training stage {stage!r}; ShowMe has stage 1 (edit) and 2 (animate)")
    return {key: slot.shape for key, slot in _release_layout(model, STAGES[stage]).items()}


def _canonical_release_key(key: str) -> str:
    """Release keys are ``model.diffusion_model.*`` and ``image_proj_model.*``; accept them with one ``model.`` too
    many (saved from a wrapper) or too few (saved from the LatentDiffusion's ``model``)."""
    while key.startswith("model.") and not key.startswith("model.diffusion_model."):
        key = key[len("model.") :]
    if key.startswith("diffusion_model."):
        key = "model." + key
    return key


def _read_release_file(path: str | PathLike) -> dict[str, torch.Tensor]:
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unreadable file or a pickle holding more than tensors
        raise InvalidInputError(f"{path} is not a readable LoRA checkpoint of tensors ({exc}).") from exc
    if isinstance(data, dict):
        for wrapper in ("lora_state_dict", "state_dict"):
            if isinstance(data.get(wrapper), dict):
                data = data[wrapper]
                break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise InvalidInputError(f"{path} does not hold a LoRA state dict (a mapping of names to tensors).")
    return data


def load_release_lora(model: DynamiCrafter, path: str | PathLike) -> list[str]:
    """Load the authors' ``lora_image.pth`` / ``lora_video.pth`` into the ``edit`` (``stage1_*``) and ``animate``
    (``stage2_*``) adapters.

    Reads with ``torch.load(weights_only=True)``; the state dict may be nested under ``lora_state_dict`` (or
    ``state_dict``); keys may carry an extra ``model.`` prefix or lack one; ``model_ema`` copies are ignored, as the
    release's loader does. Release factors are transposed into peft's ``lora_A.weight`` (r, in) and
    ``lora_B.weight`` (out, r); the Resampler's k and v LoRAs become one block-structured LoRA on the fused ``to_kv``.
    Every stage present in the file must be complete; nothing is written unless the whole file fits.

    :return: the adapters filled, in order (``["edit"]``, ``["animate"]`` or both).
    :raises InvalidInputError: (a ValueError) with one sentence for a key that does not map, a duplicate, a shape
        mismatch, an incomplete stage or a file without ShowMe LoRA weights.
    """
    raw = _read_release_file(path)
    layout = {**_release_layout(model, EDIT), **_release_layout(model, ANIMATE)}
    state: dict[str, torch.Tensor] = {}
    for key, tensor in raw.items():
        if "model_ema" in key:
            continue
        canonical = _canonical_release_key(key)
        if canonical not in layout:
            raise InvalidInputError(f"{path}: the key {key!r} does not map to any of this model's ShowMe LoRA layers.")
        if canonical in state:
            raise InvalidInputError(f"{path}: the key {canonical!r} appears twice (with and without a prefix).")
        expected = layout[canonical].shape
        if tuple(tensor.shape) != expected:
            raise InvalidInputError(
                f"{path}: {key!r} has shape {tuple(tensor.shape)} but this model's "
                f"{layout[canonical].adapter!r} adapter expects {expected}."
            )
        state[canonical] = tensor
    filled = [a for a in ADAPTERS if any(layout[k].adapter == a for k in state)]
    if not filled:
        raise InvalidInputError(f"{path} holds no ShowMe LoRA weights.")
    for adapter in filled:
        missing = [k for k, slot in layout.items() if slot.adapter == adapter and k not in state]
        if missing:
            raise InvalidInputError(
                f"{path} has only part of the {adapter!r} adapter (stage {'1' if adapter == EDIT else '2'}): "
                f"{len(missing)} of its tensors are missing, e.g. {_examples(missing, 2)}."
            )

    layers = dict(_lora_layers(model))
    with torch.no_grad():
        for adapter in filled:
            for module_name in {slot.module for slot in layout.values() if slot.adapter == adapter}:
                layers[module_name].lora_B[adapter].weight.zero_()  # the fused to_kv's off-diagonal blocks
        for key, tensor in state.items():
            slot = layout[key]
            layer = layers[slot.module]
            factor = (layer.lora_A if slot.factor == "A" else layer.lora_B)[slot.adapter].weight
            value = tensor.t()  # release (in, r) / (r, out) -> peft (r, in) / (out, r)
            if slot.half is None:
                factor.copy_(value)
            elif slot.factor == "A":  # rows [h*r, (h+1)*r) of (2r, in)
                rank = value.shape[0]
                factor[slot.half * rank : (slot.half + 1) * rank].copy_(value)
            else:  # diagonal block h of (2*out, 2r)
                width, rank = value.shape
                factor[slot.half * width : (slot.half + 1) * width, slot.half * rank : (slot.half + 1) * rank].copy_(
                    value
                )
    return filled
