"""showme_i2g: show people how to do things.

Recipe -> one coherent illustration per step (I2G on SDXL with pairwise neighbour attention), and photo +
instruction -> edited photo or short video (ShowMe on DynamiCrafter).
"""

from importlib.metadata import PackageNotFoundError, version

from .errors import InvalidInputError, PlannerUnavailableError, ShowMeError, WeightsNotFoundError

__version__ = "0.1.0"
_LIBRARIES = ("torch", "diffusers", "transformers", "peft", "accelerate")


def versions() -> dict[str, str | None]:
    """This package's version and those of the libraries that decide its outputs, for every run's metadata."""
    found: dict[str, str | None] = {"showme_i2g": __version__}
    for name in _LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found

__all__ = [
    "InvalidInputError",
    "PlannerUnavailableError",
    "ShowMeError",
    "WeightsNotFoundError",
    "__version__",
    "versions",
]
