"""Every test runs offline: hub access is switched off and any socket not to the loopback address fails."""

from __future__ import annotations

import os
import socket

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_real_connect = socket.socket.connect


def _guarded_connect(sock: socket.socket, address, *args, **kwargs):
    host = address[0] if isinstance(address, tuple) else address
    if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in _LOOPBACK:
        raise RuntimeError(f"Tests must not use the network (tried to connect to {address!r}).")
    return _real_connect(sock, address, *args, **kwargs)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture(scope="session")
def tiny_components() -> dict:
    """The tiny SDXL components, built once per test session (tests must not mutate their weights)."""
    from showme_i2g.i2g.tiny import build_tiny_sdxl_components

    return build_tiny_sdxl_components()


@pytest.fixture(scope="module")
def tiny_illustrator():
    """The tiny-preset I2G pipeline on the CPU, progress bars off, one per test module (tests may change its
    scheduler or attention; a module that must not see another's changes gets its own)."""
    from showme_i2g.i2g.pipeline import IllustrationPipeline

    pipe = IllustrationPipeline.from_preset("tiny", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def tiny_showme():
    """The tiny-preset ShowMe pipeline on the CPU, progress bars off, one per test module."""
    from showme_i2g.showme.pipeline import ShowMePipeline

    pipe = ShowMePipeline.from_preset("tiny", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    return pipe
