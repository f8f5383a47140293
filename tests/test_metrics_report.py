"""The shared evaluation report: strict JSON, a markdown table with settings, KDE histograms and picture grids."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from showme_i2g.evaluation.report import Report, image_grid


def test_report_writes_json_markdown_histogram_and_grid(tmp_path):
    report = Report("I2G evaluation", settings={"bins": 10, "captioner": "tiny"})
    report.add_metric("FID", 12.5, lower_is_better=True)
    report.add_metric("CLIPScore", 0.75, lower_is_better=False)
    report.add_metric("broken", float("nan"))
    report.add_note("tiny random networks")
    rng = np.random.default_rng(0)
    report.add_histogram("alignment", {"model": rng.random(40), "human": [1.0, 1.0, 1.0]}, range=(0, 2.5))
    report.add_grid("samples", [[Image.new("RGB", (64, 32), "red")] * 3, [Image.new("RGB", (16, 16), "blue")]],
                    labels=["pancakes", "omelette"], cell=32)
    written = report.write(tmp_path / "out")

    assert set(written) == {"results.json", "results.md", "hist_alignment.png", "grid_samples.png"}
    record = json.loads((tmp_path / "out" / "results.json").read_text())
    assert record["metrics"] == {"FID": 12.5, "CLIPScore": 0.75, "broken": None}  # NaN -> null, strict JSON
    assert record["lower_is_better"] == {"FID": True, "CLIPScore": False}
    assert record["settings"]["bins"] == 10 and record["notes"] == ["tiny random networks"]
    assert record["plots"] == ["hist_alignment.png", "grid_samples.png"]
    markdown = (tmp_path / "out" / "results.md").read_text()
    assert "| FID ↓ | 12.5000 |" in markdown and "| CLIPScore ↑ | 0.7500 |" in markdown
    assert "| broken | n/a |" in markdown and "- **captioner**: tiny" in markdown
    with Image.open(tmp_path / "out" / "hist_alignment.png") as hist:
        assert hist.size == (640, 400)
    with Image.open(tmp_path / "out" / "grid_samples.png") as grid:
        # 3 columns of 32 px cells with 4 px margins; 2 rows each with a 14 px label
        assert grid.size == (4 + 3 * 36, 4 + 2 * (14 + 32 + 4))
        assert grid.getpixel((4 + 16, 4 + 14 + 16)) == (255, 0, 0)  # first cell of the first row is the red image


def test_image_grid_refuses_mismatched_labels():
    with pytest.raises(ValueError, match="labels"):
        image_grid([[Image.new("RGB", (8, 8))]], labels=["a", "b"])
