"""One entry for "a recipes file in one of these formats", so the generation and evaluation CLIs read alike.

``read_recipe_file(path, "captaincook4d")`` picks the reader of :mod:`.readers` and fills in the companion files
a dataset ships next to its main file, so a user can point a CLI at the dataset's annotations directly:

- ``json``: the project's own layout (:func:`~.readers.read_recipes_json`), step images relative to ``image_root``;
- ``captaincook4d``: ``step_annotations.csv``; ``activity_step_description.csv`` (the goals) and
  ``error_annotations.json`` (the per-step errors, whose steps are dropped) are used when they lie beside it;
- ``htstep``: ``taxonomy.csv`` (one recipe per activity variation);
- ``wikihow``: VGSI JSON lines, images under ``image_root``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInputError
from .readers import read_captaincook4d, read_htstep, read_recipes_json, read_wikihow
from .records import ReadResult

__all__ = ["CAPTAINCOOK4D_COMPANIONS", "RECIPE_FORMATS", "read_recipe_file"]

RECIPE_FORMATS = ("json", "captaincook4d", "htstep", "wikihow")
CAPTAINCOOK4D_COMPANIONS = {"step_descriptions": "activity_step_description.csv",
                            "error_annotations": "error_annotations.json"}


def read_recipe_file(
    path: str | Path, data_format: str = "json", *, image_root: str | Path | None = None
) -> ReadResult:
    """The recipes of ``path`` read as ``data_format`` (one of :data:`RECIPE_FORMATS`), problems in ``.problems``."""
    path = Path(path)
    if data_format == "json":
        return read_recipes_json(path, image_root=image_root)
    if data_format == "captaincook4d":
        companions = {key: path.parent / name for key, name in CAPTAINCOOK4D_COMPANIONS.items()
                      if (path.parent / name).is_file()}
        return read_captaincook4d(path, **companions)
    if data_format == "htstep":
        return read_htstep(path)
    if data_format == "wikihow":
        return read_wikihow(path, image_root=image_root)
    raise InvalidInputError(f"The recipes format {data_format!r} is not one of {', '.join(RECIPE_FORMATS)}.")
