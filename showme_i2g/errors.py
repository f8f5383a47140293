"""The errors a user of showme_i2g can meet, each carrying one sentence they can act on.

The CLI and the app print ``str(error)`` and nothing else for these; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ShowMeError(Exception):
    """Base class of every user-facing error: its message is one clear sentence, never a traceback."""


class InvalidInputError(ShowMeError, ValueError):
    """The user's text, numbers or files cannot be used as given (empty goal, too many steps, bad characters...)."""


class WeightsNotFoundError(ShowMeError, OSError):
    """A preset's weights are not on this machine and cannot be downloaded."""


class PlannerUnavailableError(ShowMeError, RuntimeError):
    """No language model is available to write the steps; the user can always type them instead."""
