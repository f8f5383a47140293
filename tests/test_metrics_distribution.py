"""I2G Table 1's distribution comparison: KL and chi-square against scipy on the same histograms; CLIPScore scale."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from showme_i2g.errors import InvalidInputError
from showme_i2g.metrics.distribution import (
    chi_square,
    clip_score,
    compare_distributions,
    histogram,
    kl_divergence,
)


def _smoothed(scores, bins=10, smoothing=1e-6):
    counts, _ = np.histogram(np.clip(scores, 0, 2.5), bins=bins, range=(0, 2.5))
    p = counts / counts.sum() + smoothing
    return p / p.sum()


def test_kl_and_chi_square_equal_scipy_on_the_same_histograms():
    rng = np.random.default_rng(0)
    human = np.clip(rng.normal(1.8, 0.4, size=300), 0, 2.5)
    model = np.clip(rng.normal(1.2, 0.6, size=200), 0, 2.5)
    p, q = _smoothed(human), _smoothed(model)
    assert kl_divergence(human, model) == pytest.approx(scipy.stats.entropy(p, q), rel=1e-10)
    assert chi_square(human, model) == pytest.approx(scipy.stats.chisquare(q, p).statistic, rel=1e-10)
    table = compare_distributions(human, model)
    assert table.kl_x100 == pytest.approx(100 * scipy.stats.entropy(p, q), rel=1e-10)
    assert table.chi2_x100 == pytest.approx(100 * scipy.stats.chisquare(q, p).statistic, rel=1e-10)
    assert (table.bins, table.range, table.n_reference, table.n_model) == (10, (0.0, 2.5), 300, 200)


def test_identical_distributions_score_zero_and_distance_grows_with_shift():
    rng = np.random.default_rng(1)
    human = rng.uniform(1.0, 2.0, size=500)
    assert kl_divergence(human, human) == pytest.approx(0.0, abs=1e-12)
    assert chi_square(human, human) == pytest.approx(0.0, abs=1e-12)
    near, far = human - 0.2, human - 0.8
    assert kl_divergence(human, near) < kl_divergence(human, far)
    assert chi_square(human, near) < chi_square(human, far)


def test_histogram_clips_out_of_range_scores_into_the_end_bins():
    h = histogram([-1.0, 0.1, 2.4, 9.0], bins=5)
    np.testing.assert_allclose(h, [0.5, 0, 0, 0, 0.5])


def test_clip_score_is_w_times_the_clipped_cosine():
    assert clip_score(0.3) == pytest.approx(0.75)
    assert clip_score(-0.2) == 0.0
    t = torch.tensor([0.4, -0.1], requires_grad=True)
    out = clip_score(t)
    out.sum().backward()
    assert torch.allclose(out, torch.tensor([1.0, 0.0])) and torch.allclose(t.grad, torch.tensor([2.5, 0.0]))


def test_bad_scores_are_one_sentence():
    with pytest.raises(InvalidInputError, match="empty"):
        kl_divergence([], [1.0])
    with pytest.raises(InvalidInputError, match="NaN"):
        chi_square([1.0], [float("nan")])
