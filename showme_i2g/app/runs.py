"""How the app keeps one shared model slot free for everybody: runs that can be ended, and a folder per run.

A run holds the single model slot from its first denoising step to its last file. Three things end it early, each
by setting the run's stop flag, which the run reads between steps (every denoising step, every decoded image, every
written clip, every stitched frame), so the slot is free again within about one step:

* its user presses Stop, or closes the page (``demo.unload``): :meth:`RunRegistry.stop` ends every run of a session;
* its client cancels the request (gradio cancels the task awaiting the run): :meth:`RunControl.stop`;
* its time budget is spent: :meth:`RunControl.check` raises :class:`RunOutOfTime`.

Each run's budget depends on the hardware (:class:`~showme_i2g.app.hardware.HardwareLimits`). A run writes its files
into a fresh folder of :class:`RunFolders`, which deletes runs older than a few hours.

Plain Python: nothing here imports gradio or torch.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class RunStopped(Exception):
    """A run ended before it finished: its user pressed Stop, closed the page or cancelled the request."""


class RunOutOfTime(RunStopped):
    """A run spent its time budget; the message says so in one sentence."""

    def __init__(self, budget_s: float) -> None:
        super().__init__(
            f"The run used up its {budget_s:g}-second budget on this machine and was ended; "
            "try fewer steps, fewer frames or a smaller size."
        )
        self.budget_s = budget_s


class RunControl:
    """One run's stop flag and deadline. :meth:`check` is what the run calls between steps."""

    def __init__(self, session: str = "", budget_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if budget_s is not None and not budget_s > 0:
            raise ValueError(f"budget_s must be positive or None, got {budget_s!r}.")
        self.session = session
        self.budget_s = budget_s
        self._clock = clock
        self._deadline = None if budget_s is None else clock() + budget_s
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the run to end at its next check (Stop, a closed page, a cancelled request)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def out_of_time(self) -> bool:
        return self._deadline is not None and self._clock() >= self._deadline

    def check(self) -> None:
        """Raise :class:`RunStopped` once the run was asked to stop, :class:`RunOutOfTime` once its budget is spent."""
        if self._stop.is_set():
            raise RunStopped
        if self.out_of_time:
            raise RunOutOfTime(self.budget_s)


class RunRegistry:
    """The runs going now, by browser session: Stop and a closed page end all of a session's runs, and only those.

    A run is registered only while it runs, so a Stop pressed after a run ended cannot stop the user's next run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, set[RunControl]] = {}
        self._by_id: dict[str, RunControl] = {}
        self._cancelled_early: set[str] = set()  # run ids cancelled before their run started

    @contextmanager
    def start(self, session: str | None, budget_s: float | None = None,
              run_id: str | None = None) -> Iterator[RunControl]:
        """A :class:`RunControl` for the length of the block, reachable by :meth:`stop` through ``session`` and by
        :meth:`stop_run` through ``run_id`` (the id its request's handler chose, to end it when the client cancels)."""
        control = RunControl(session or "", budget_s)
        with self._lock:
            self._runs.setdefault(control.session, set()).add(control)
            if run_id is not None:
                self._by_id[run_id] = control
                if run_id in self._cancelled_early:
                    self._cancelled_early.discard(run_id)
                    control.stop()
        try:
            yield control
        finally:
            with self._lock:
                runs = self._runs.get(control.session, set())
                runs.discard(control)
                if not runs:
                    self._runs.pop(control.session, None)
                if run_id is not None:
                    self._by_id.pop(run_id, None)

    def stop_run(self, run_id: str) -> None:
        """Stop one run (its client cancelled); a run not started yet is stopped as soon as it starts."""
        with self._lock:
            control = self._by_id.get(run_id)
            if control is None:  # not started yet, or already over (then the id is never asked for again)
                if len(self._cancelled_early) >= 256:
                    self._cancelled_early.pop()
                self._cancelled_early.add(run_id)
        if control is not None:
            control.stop()

    def stop(self, session: str | None) -> int:
        """Stop every run of ``session`` that is going now; returns how many there were."""
        with self._lock:
            runs = list(self._runs.get(session or "", ()))
        for run in runs:
            run.stop()
        return len(runs)

    def running(self, session: str | None = None) -> int:
        """How many runs are going (of ``session``, or of everybody)."""
        with self._lock:
            if session is None:
                return sum(len(runs) for runs in self._runs.values())
            return len(self._runs.get(session, ()))


# ---------------------------------------------------------------------------------------------------------------------
# A folder per run
# ---------------------------------------------------------------------------------------------------------------------


class RunFolders:
    """A fresh folder per run under ``root`` (default: ``showme-i2g-app`` in the temp dir); old runs are pruned."""

    def __init__(self, root: str | os.PathLike | None = None, max_age_s: float = 6 * 3600) -> None:
        self.root = Path(root) if root is not None else Path(tempfile.gettempdir()) / "showme-i2g-app"
        self.max_age_s = max_age_s

    def new(self, kind: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        self.prune()
        folder = self.root / f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        return folder

    def prune(self) -> None:
        """Delete run folders older than ``max_age_s`` (the examples folder is left alone)."""
        cutoff = time.time() - self.max_age_s
        for entry in self.root.glob("*-*-*"):
            try:
                if entry.is_dir() and entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
            except OSError:
                continue
