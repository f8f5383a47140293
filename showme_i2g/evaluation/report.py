"""The report both evaluation entry points write: numbers for machines, a table for people, pictures for judgement.

One call does it all::

    from showme_i2g.evaluation.report import Report

    report = Report("I2G evaluation", settings={"captioner": "Salesforce/blip2-opt-2.7b", "bins": 10})
    report.add_metric("FID", 31.4, lower_is_better=True)
    report.add_metric("KL x100", 2.71, lower_is_better=True)
    report.add_histogram("alignment", {"ours": ours_scores, "human": human_scores}, range=(0, 2.5))
    report.add_grid("samples", rows=[[img1, img2, img3], [img4, img5]], labels=["pancakes", "omelette"])
    report.add_note("tiny random networks: the numbers test the pipeline, not a model")
    paths = report.write(out_dir)    # results.json, results.md, <name>.png for each plot and grid

What lands in ``out_dir``:

- ``results.json``: ``{"title", "metrics": {name: value}, "lower_is_better": {name: bool}, "settings",
  "notes", "details", "plots": [file names]}``; NaN/inf values are written as ``null`` so the file is strict JSON.
- ``results.md``: the title, a two-column markdown table *metric | value* (with an arrow saying which way is
  better), the settings as a bullet list (so a number is never separated from the models and binning that produced
  it), the notes, and links to the pictures.
- ``hist_<name>.png``: one histogram per call of :meth:`Report.add_histogram`, every series drawn as a density
  histogram with its Gaussian KDE curve on top (``scipy.stats.gaussian_kde``, Scott's bandwidth), as in I2G's
  score-distribution figures. A series with fewer than two distinct values has no KDE (it would be singular) and is
  drawn as a histogram alone.
- ``grid_<name>.png``: a picture grid, one row per sample (e.g. the steps of one recipe), an optional label above
  each row; images are scaled (up or down, aspect kept) to fit square cells.

Matplotlib runs on its non-interactive Agg backend, so reports are written on headless machines. Nothing here
computes a metric: the entry points do, and hand over plain numbers and PIL images.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

__all__ = ["Report", "image_grid", "plot_histograms"]


def _finite_or_none(value: Any) -> Any:
    """JSON has no NaN/inf: such numbers become ``null``; containers are converted recursively."""
    if isinstance(value, Mapping):
        return {str(k): _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite_or_none(value.tolist())
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _format(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    magnitude = abs(float(value))
    return f"{value:.4g}" if magnitude >= 1000 or (0 < magnitude < 1e-3) else f"{value:.4f}"


def plot_histograms(
    series: Mapping[str, Sequence[float]],
    path: str | Path,
    *,
    title: str = "",
    xlabel: str = "score",
    bins: int = 20,
    range: tuple[float, float] | None = None,  # noqa: A002 (matplotlib's name)
) -> Path:
    """Density histograms of each named series with a Gaussian KDE curve over each, saved as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import gaussian_kde

    arrays = {name: np.asarray(values, dtype=np.float64).reshape(-1) for name, values in series.items()}
    arrays = {name: a[np.isfinite(a)] for name, a in arrays.items()}
    arrays = {name: a for name, a in arrays.items() if a.size}
    if not arrays:
        raise ValueError("plot_histograms needs at least one series with a finite value")
    if range is None:
        low = min(float(a.min()) for a in arrays.values())
        high = max(float(a.max()) for a in arrays.values())
        range = (low, high if high > low else low + 1.0)
    grid = np.linspace(range[0], range[1], 256)
    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (name, values) in enumerate(arrays.items()):
        colour = colours[index % len(colours)]
        axes.hist(np.clip(values, *range), bins=bins, range=range, density=True, alpha=0.35, color=colour,
                  label=f"{name} (n={values.size})")
        if np.unique(values).size >= 2:
            axes.plot(grid, gaussian_kde(values)(grid), color=colour, linewidth=2)
    axes.set_xlim(*range)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("density")
    if title:
        axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def image_grid(
    rows: Sequence[Sequence[Image.Image]], labels: Sequence[str] | None = None, cell: int = 128, margin: int = 4
) -> Image.Image:
    """One row of square cells per sample, an optional text label above each row; ragged rows are fine."""
    if not rows or not any(rows):
        raise ValueError("image_grid needs at least one image")
    if labels is not None and len(labels) != len(rows):
        raise ValueError(f"{len(labels)} labels for {len(rows)} rows")
    font = ImageFont.load_default()
    label_height = 14 if labels is not None else 0
    columns = max(len(row) for row in rows)
    row_height = label_height + cell + margin
    board = Image.new("RGB", (margin + columns * (cell + margin), margin + len(rows) * row_height), "white")
    draw = ImageDraw.Draw(board)
    for r, row in enumerate(rows):
        y = margin + r * row_height
        if labels is not None:
            text = labels[r]
            max_chars = max(8, (columns * (cell + margin)) // 6)
            draw.text((margin, y), text if len(text) <= max_chars else text[: max_chars - 1] + "…", fill="black",
                      font=font)
        for c, image in enumerate(row):
            picture = ImageOps.contain(image.convert("RGB"), (cell, cell), Image.Resampling.LANCZOS)
            x = margin + c * (cell + margin) + (cell - picture.width) // 2
            board.paste(picture, (x, y + label_height + (cell - picture.height) // 2))
    return board


@dataclass
class _Histogram:
    series: dict[str, np.ndarray]
    title: str
    xlabel: str
    bins: int
    range: tuple[float, float] | None


@dataclass
class Report:
    """Collects metrics, settings, notes, histograms and grids, then writes them in one go (see module docstring)."""

    title: str
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    lower_is_better: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    _histograms: dict[str, _Histogram] = field(default_factory=dict, repr=False)
    _grids: dict[str, Image.Image] = field(default_factory=dict, repr=False)

    def add_metric(self, name: str, value: float, lower_is_better: bool | None = None) -> None:
        """One row of the table; ``lower_is_better`` adds ↓/↑ to the markdown and is kept in the JSON."""
        self.metrics[name] = float(value)
        if lower_is_better is not None:
            self.lower_is_better[name] = bool(lower_is_better)

    def add_note(self, note: str) -> None:
        self.notes.append(note)

    def add_histogram(
        self,
        name: str,
        series: Mapping[str, Sequence[float]],
        *,
        title: str = "",
        xlabel: str = "score",
        bins: int = 20,
        range: tuple[float, float] | None = None,  # noqa: A002
    ) -> None:
        """A score-distribution figure (``hist_<name>.png``): one histogram + KDE per named series."""
        arrays = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in series.items()}
        self._histograms[name] = _Histogram(arrays, title or name, xlabel, bins, range)

    def add_grid(self, name: str, rows: Sequence[Sequence[Image.Image]], labels: Sequence[str] | None = None,
                 cell: int = 128) -> None:
        """A per-sample picture grid (``grid_<name>.png``), one row per sample."""
        self._grids[name] = image_grid(rows, labels, cell=cell)

    def to_dict(self, plots: Sequence[str] = ()) -> dict[str, Any]:
        return _finite_or_none({
            "title": self.title,
            "metrics": self.metrics,
            "lower_is_better": self.lower_is_better,
            "settings": self.settings,
            "notes": self.notes,
            "details": self.details,
            "plots": list(plots),
        })

    def markdown(self, plots: Sequence[str] = ()) -> str:
        lines = [f"# {self.title}", "", "| metric | value |", "|---|---:|"]
        for name, value in self.metrics.items():
            arrow = {True: " ↓", False: " ↑"}.get(self.lower_is_better.get(name), "")  # type: ignore[arg-type]
            lines.append(f"| {name}{arrow} | {_format(value)} |")
        if self.settings:
            lines += ["", "## Settings", ""]
            for key, value in self.settings.items():
                shown = value if isinstance(value, str) else json.dumps(_finite_or_none(value), ensure_ascii=False)
                lines.append(f"- **{key}**: {shown}")
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {note}" for note in self.notes]
        if plots:
            lines += ["", "## Figures", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write everything into ``out_dir`` (created); returns ``{file name: path}`` of what was written."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        for name, hist in self._histograms.items():
            if not any(np.isfinite(v).any() for v in hist.series.values()):
                self.notes.append(f"histogram {name!r} has no finite value and was not drawn")
                continue
            path = plot_histograms(hist.series, out / f"hist_{name}.png", title=hist.title, xlabel=hist.xlabel,
                                   bins=hist.bins, range=hist.range)
            written[path.name] = path
        for name, grid in self._grids.items():
            path = out / f"grid_{name}.png"
            grid.save(path)
            written[path.name] = path
        plots = list(written)
        json_path, md_path = out / "results.json", out / "results.md"
        json_path.write_text(json.dumps(self.to_dict(plots), indent=2, ensure_ascii=False, allow_nan=False) + "\n",
                             encoding="utf-8")
        md_path.write_text(self.markdown(plots), encoding="utf-8")
        return {"results.json": json_path, "results.md": md_path, **written}
