"""Models shared between users: each loaded once, lazily, and run by one call at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any


class ModelCache:
    """Models by key, each built by its loader on first use only, however many threads ask at once.

    :meth:`use` yields the model while holding that model's run lock: diffusion pipelines keep per-call state
    (scheduler timesteps, adapter modes), so one model must never run two calls at once. A loader that raises
    leaves nothing cached, so the next request tries again.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._models: dict[Hashable, Any] = {}
        self._load_locks: dict[Hashable, threading.Lock] = {}
        self._run_locks: dict[Hashable, threading.Lock] = {}

    def _locks(self, key: Hashable) -> tuple[threading.Lock, threading.Lock]:
        with self._guard:
            return self._load_locks.setdefault(key, threading.Lock()), self._run_locks.setdefault(key, threading.Lock())

    def get(self, key: Hashable, loader: Callable[[], Any]) -> Any:
        """The model for ``key``, loaded with ``loader()`` by the first thread that asks; the others wait for it."""
        load_lock, _ = self._locks(key)
        with load_lock:
            with self._guard:
                if key in self._models:
                    return self._models[key]
            model = loader()
            with self._guard:
                self._models[key] = model
            return model

    @contextmanager
    def use(self, key: Hashable, loader: Callable[[], Any]) -> Iterator[Any]:
        """The model for ``key``, held for this caller alone for the length of the block."""
        model = self.get(key, loader)
        _, run_lock = self._locks(key)
        with run_lock:
            yield model

    def evict(self, keep: Callable[[Hashable], bool]) -> list[Hashable]:
        """Drop every model whose key ``keep`` rejects, each once its running call (if any) has finished.

        On one GPU, switching presets must free the previous model rather than hold both; returns the keys dropped.
        """
        with self._guard:
            doomed = [key for key in self._models if not keep(key)]
        for key in doomed:
            _, run_lock = self._locks(key)
            with run_lock, self._guard:
                self._models.pop(key, None)
        return doomed

    def busy(self, key: Hashable) -> bool:
        """Whether a call is running on ``key``'s model now."""
        return self._locks(key)[1].locked()

    def loaded(self) -> list[Hashable]:
        with self._guard:
            return list(self._models)
