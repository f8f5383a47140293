"""Run configurations: one dataclass per entry point, loaded from YAML and CLI flags, checked before any work.

Why one mechanism for all four entry points: a researcher reproduces a run from the ``config.yaml`` saved next to
it, and every flag, YAML key and dataclass field is the same name (``max_steps`` <-> ``--max-steps``). Precedence
is dataclass default < ``--config FILE.yaml`` < explicit flags. Every problem with a config is reported as one
sentence (:class:`TrainingConfigError`) before a model is built, so a bad run costs seconds, not a GPU hour.

An entry point subclasses :class:`RunConfig`, adds its own fields (with a ``help`` in the field metadata where the
name is not enough) and extends :meth:`RunConfig.validate`; :meth:`RunConfig.from_cli` turns every field into a
flag automatically.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..errors import InvalidInputError, run_cli  # noqa: F401 - run_cli: entry points import it from here

__all__ = [
    "CONFIG_FILENAME",
    "MIXED_PRECISION",
    "DataError",
    "RunConfig",
    "TrainingConfigError",
    "run_cli",
    "run_training",
]

CONFIG_FILENAME = "config.yaml"
MIXED_PRECISION = ("no", "fp16", "bf16")
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")

C = TypeVar("C", bound="RunConfig")


class TrainingConfigError(InvalidInputError):
    """A run configuration cannot be used (unknown key, value out of range, unreadable YAML...)."""


class DataError(InvalidInputError):
    """The training data is missing, unreadable or empty."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# Short aliases the issue asks for, next to the long forms generated from field names.
_ALIASES = {"output_dir": ("--out",)}


@dataclass
class RunConfig:
    """Settings every training run has; entry points subclass it.

    ``batch_size`` is per device and per micro-batch; the effective batch is
    ``batch_size x gradient_accumulation x number of processes``. ``max_steps`` counts optimizer updates.
    ``resume`` is a checkpoint folder, or ``"latest"`` for the newest one under ``output_dir/checkpoints``.
    """

    output_dir: str = field(default="runs/run", metadata={"help": "folder for config, logs, checkpoints, adapters"})
    max_steps: int = field(default=1000, metadata={"help": "number of optimizer updates"})
    batch_size: int = field(default=1, metadata={"help": "items per device per micro-batch"})
    lr: float = field(default=1e-4, metadata={"help": "peak learning rate"})
    rank: int = field(default=4, metadata={"help": "LoRA rank"})
    seed: int = 0
    mixed_precision: str = field(default="no", metadata={"help": "no, fp16 (CUDA only) or bf16"})
    gradient_accumulation: int = 1
    checkpoint_every: int = field(default=500, metadata={"help": "save_state every N steps (0 = only at the end)"})
    keep_checkpoints: int = field(default=3, metadata={"help": "how many recent checkpoints to keep (0 = all)"})
    log_every: int = 10
    resume: str | None = field(default=None, metadata={"help": "checkpoint folder or 'latest'"})
    lr_scheduler: str = field(default="constant", metadata={"help": ", ".join(LR_SCHEDULERS)})
    lr_warmup_steps: int = 0
    weight_decay: float = 1e-2
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (0 = off)"})

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise :class:`TrainingConfigError` with one sentence for the first unusable value."""
        _positive(self, "max_steps", "batch_size", "rank", "gradient_accumulation", "log_every")
        _non_negative(self, "checkpoint_every", "keep_checkpoints", "lr_warmup_steps", "weight_decay", "max_grad_norm")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise TrainingConfigError(f"lr must be a number between 0 and 1, got {self.lr!r}.")
        if not str(self.output_dir).strip():
            raise TrainingConfigError("output_dir must name a folder.")
        _choice(self, "mixed_precision", MIXED_PRECISION)
        _choice(self, "lr_scheduler", LR_SCHEDULERS)
        if self.mixed_precision == "fp16":
            import torch

            if not torch.cuda.is_available():
                raise TrainingConfigError("mixed_precision fp16 needs a CUDA GPU; use bf16 or no on this machine.")

    # ------------------------------------------------------------------ YAML
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any], *, source: str = "the config") -> C:
        """Build from a mapping, refusing unknown keys and values of the wrong type."""
        if not isinstance(values, dict):
            raise TrainingConfigError(f"{source} must be a mapping of setting names to values.")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise TrainingConfigError(
                f"{source} has unknown setting {unknown[0]!r}; known settings are: {', '.join(sorted(names))}."
            )
        hints = typing.get_type_hints(cls)
        return cls(**{key: _coerce(value, hints[key], key, source) for key, value in values.items()})

    @classmethod
    def from_yaml(cls: type[C], path: str | Path) -> C:
        path = Path(path)
        if not path.is_file():
            raise TrainingConfigError(f"The config file {path} does not exist.")
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise TrainingConfigError(f"The config file {path} is not valid YAML ({_first_line(exc)}).") from exc
        return cls.from_dict(values or {}, source=f"the config file {path}")

    def save_yaml(self, path: str | Path) -> Path:
        """Write the config as YAML (the run folder's ``config.yaml``, so the run can be repeated)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")
        return path

    # ------------------------------------------------------------------ CLI
    @classmethod
    def argument_parser(cls, prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
        """``--config FILE.yaml`` plus one flag per field (``max_steps`` -> ``--max-steps``)."""
        parser = argparse.ArgumentParser(prog=prog, description=description or (cls.__doc__ or "").split("\n")[0])
        parser.add_argument("--config", type=Path, help="YAML file of settings; flags override it")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind, _ = _unwrap_optional(hints[f.name])
            names = [_flag(f.name), *_ALIASES.get(f.name, ())]
            help_text = f.metadata.get("help")
            if kind is bool:
                parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                    help=help_text)
            else:
                parser.add_argument(*names, dest=f.name, type=str, default=None, help=help_text,
                                    metavar=f.name.upper())
        return parser

    @classmethod
    def from_cli(cls: type[C], argv: Sequence[str] | None = None, *, prog: str | None = None) -> C:
        """Parse ``argv``: defaults, then the YAML file, then explicit flags; validates the result."""
        args = vars(cls.argument_parser(prog=prog).parse_args(argv))
        config_path = args.pop("config")
        values = cls.from_yaml(config_path).to_dict() if config_path else {}
        hints = typing.get_type_hints(cls)
        for key, value in args.items():
            if value is not None:
                values[key] = _coerce(value, hints[key], key, "the command line", from_text=True)
        config = cls.from_dict(values)
        config.validate()
        return config


# ---------------------------------------------------------------------- helpers
def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _unwrap_optional(kind: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return kind, False


def _coerce(value: Any, kind: Any, name: str, source: str, *, from_text: bool = False) -> Any:
    """Check (and, for CLI text, convert) one value against its field type."""
    base, optional = _unwrap_optional(kind)
    if value is None or (from_text and optional and str(value).lower() in ("none", "null", "")):
        if optional:
            return None
        raise TrainingConfigError(f"{source} gives no value for {name}, which needs one.")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            if from_text and str(value).lower() in ("true", "false", "1", "0", "yes", "no"):
                return str(value).lower() in ("true", "1", "yes")
            raise ValueError
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value) if from_text or isinstance(value, (int, float)) else _reject()
        if base is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value) if from_text or isinstance(value, (int, float)) else _reject()
        if base is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
        if typing.get_origin(base) is list:
            (item,) = typing.get_args(base) or (str,)
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list):
                raise ValueError
            return [_coerce(v.strip() if isinstance(v, str) else v, item, name, source, from_text=True) for v in items]
    except (TypeError, ValueError):
        pass
    else:
        return value
    type_name = getattr(base, "__name__", str(base))
    raise TrainingConfigError(f"{source} sets {name} to {value!r}, which is not a valid {type_name}.")


def _reject() -> Any:
    raise ValueError


def _positive(config: RunConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise TrainingConfigError(f"{name} must be a whole number of at least 1, got {value!r}.")


def _non_negative(config: RunConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise TrainingConfigError(f"{name} must be a number of at least 0, got {value!r}.")


def _choice(config: RunConfig, name: str, allowed: Sequence[str]) -> None:
    value = getattr(config, name)
    if value not in allowed:
        raise TrainingConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}.")


def run_training(
    argv: Sequence[str] | None,
    config_type: type[C],
    train: Callable[[C], tuple[Any, Path]],
    *,
    prog: str,
    saved: str,
) -> int:
    """The body of a ``train/`` entry point: parse ``argv`` into ``config_type`` (defaults < ``--config`` < flags),
    run ``train(config) -> (TrainResult, path)``, say what was saved; a user error is one sentence and exit code 2."""

    def body() -> None:
        config = config_type.from_cli(argv, prog=prog)
        result, path = train(config)
        print(f"Trained {result.step} steps; {saved} saved to {path}")

    return run_cli(body)
