"""The errors a user of showme_i2g can meet, each carrying one sentence they can act on.

The CLI and the app print ``str(error)`` and nothing else for these; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path


class ShowMeError(Exception):
    """Base class of every user-facing error: its message is one clear sentence, never a traceback."""


class InvalidInputError(ShowMeError, ValueError):
    """The user's text, numbers or files cannot be used as given (empty goal, too many steps, bad characters...)."""


class WeightsNotFoundError(ShowMeError, OSError):
    """A preset's weights are not on this machine and cannot be downloaded."""


class PlannerUnavailableError(ShowMeError, RuntimeError):
    """No language model is available to write the steps; the user can always type them instead."""


def describe_source(source: object) -> str:
    """How a message names a user's file: its quoted name (no folders, no control characters), or a plain phrase
    for uploaded bytes and objects, so a message never leaks a server path."""
    if isinstance(source, (str, os.PathLike)):
        name = Path(os.fspath(source)).name or os.fspath(source)
        name = "".join(ch if ch.isprintable() else "?" for ch in name)
        return f"'{name}'" if name else "the photo"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "the uploaded photo"
    return "the photo"


def hub_download_command(repo_id: str, *files: str) -> str:
    """The command that fetches weights from the Hugging Face hub (``hf``, huggingface_hub's command line)."""
    return " ".join(("hf download", repo_id, *files))


def missing_weights(what: str, repo_id: str, *files: str, instead: str = "pass a local folder") -> WeightsNotFoundError:
    """The one sentence for weights that are not on this machine: ``what`` names them ("The CLIP model x"), the
    download command fetches ``repo_id`` (and ``files``), and ``instead`` says what else the user can give."""
    return WeightsNotFoundError(
        f"{what} is not on this machine; download it with `{hub_download_command(repo_id, *files)}` or {instead}."
    )


def run_cli(body: Callable[[], object]) -> int:
    """Run an entry point's body; its exit code when it returns an int, else 0.

    A :class:`ShowMeError` prints its one sentence and gives exit code 2 (argparse's usage errors also exit with
    2); Ctrl-C gives 130 with one line. Any other exception is a bug and keeps its traceback. The CLI, ``train/``
    and ``eval/`` all end through here.
    """
    try:
        code = body()
    except ShowMeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    return code if isinstance(code, int) and not isinstance(code, bool) else 0
