"""showme_i2g: show people how to do things.

Recipe -> one coherent illustration per step (I2G on SDXL with pairwise neighbour attention), and, in later
modules, photo + instruction -> edited photo or short video (ShowMe on DynamiCrafter).
"""

from .errors import InvalidInputError, PlannerUnavailableError, ShowMeError, WeightsNotFoundError

__version__ = "0.1.0"

__all__ = [
    "InvalidInputError",
    "PlannerUnavailableError",
    "ShowMeError",
    "WeightsNotFoundError",
    "__version__",
]
