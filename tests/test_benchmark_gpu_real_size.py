"""benchmarks/gpu_real_size.py: its batch search finds the largest batch that fits, and its training section runs
every entry point (the tiny twins on the CPU) without a failed row."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from script_loading import ROOT, load_script

SCRIPT = ROOT / "benchmarks" / "gpu_real_size.py"


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/gpu_real_size.py", "gpu_real_size")


def memory_model(peak_of):
    """A trial function for a step whose peak memory is ``peak_of(batch)`` GiB, capped at 80 GiB."""
    tried = []

    def trial(batch: int) -> tuple[bool, float, float]:
        tried.append(batch)
        peak = peak_of(batch)
        return (peak <= 80.0, peak if peak <= 80.0 else float("nan"), 0.0)

    return trial, tried


def test_batch_search_finds_the_largest_batch_when_memory_is_affine(bench):
    trial, tried = memory_model(lambda b: 10.0 + 1.5 * b)  # 46 fits (79 GiB), 47 does not (80.5 GiB)
    fit, failed, predicted, short_of_time = bench.search_largest_batch(trial, 11.5, 80.0, budget_s=60.0)
    assert (fit, predicted, short_of_time) == (46, 46, False)
    assert failed is not None and 46 < failed <= 46 + max(1, 46 // 20)
    assert tried[0] == 2 and 46 in tried


def test_batch_search_brackets_an_answer_the_affine_prediction_overshoots(bench):
    peak = lambda b: 10.0 + b + 0.02 * b * b  # noqa: E731 - memory grows faster than the first two batches say
    trial, tried = memory_model(peak)
    fit, failed, predicted, _ = bench.search_largest_batch(trial, peak(1), 80.0, budget_s=60.0)
    largest = max(b for b in range(1, 200) if peak(b) <= 80.0)
    assert predicted > largest  # the prediction ran out of memory, so the search had to come down
    assert peak(fit) <= 80.0 and failed is not None and peak(failed) > 80.0
    assert fit <= largest < failed and failed - fit <= max(1, fit // 20)


def test_batch_search_stops_at_its_time_budget(bench):
    def slow(batch: int) -> tuple[bool, float, float]:
        return True, 10.0 + batch, 100.0  # every step fits but takes 100 s

    fit, failed, predicted, short_of_time = bench.search_largest_batch(slow, 11.0, 80.0, budget_s=60.0)
    assert (fit, failed, predicted, short_of_time) == (2, None, 70, True)  # batch 70 would take 3,500 s


def test_a_short_budget_still_verifies_the_largest_batch_it_affords(bench):
    tried = []

    def one_second_per_two(batch: int) -> tuple[bool, float, float]:
        tried.append(batch)
        return True, 10.0 + batch, 1.0  # batch 2 takes 1 s, so 20.4 s afford batch 40 (time grows with the batch)

    fit, failed, predicted, short_of_time = bench.search_largest_batch(one_second_per_two, 11.0, 80.0, budget_s=20.4)
    assert (fit, failed, predicted, short_of_time) == (40, None, 70, True)
    assert tried == [2, 40]


def test_a_prediction_of_two_is_checked_above(bench):
    trial, tried = memory_model(lambda b: 30.0 + 20.0 * b)  # 2 fits (70 GiB), 3 does not (90 GiB)
    assert bench.search_largest_batch(trial, 50.0, 80.0, budget_s=60.0) == (2, 3, 2, False)
    assert tried == [2, 3]


def test_batch_search_when_two_do_not_fit(bench):
    trial, _ = memory_model(lambda b: 50.0 * b)
    assert bench.search_largest_batch(trial, 50.0, 80.0, budget_s=60.0) == (1, 2, 1, False)


@pytest.mark.parametrize("num_steps", [2, 3, 5])
@pytest.mark.parametrize("weight, value_dim", [(0.3, 8), (2.0, 8), (0.3, 24)])
def test_the_feature_biased_candidate_equals_the_masked_kernel(bench, num_steps, weight, value_dim):
    """The candidate the attention section times for weights other than 1 computes what neighbour attention
    computes (forward and gradients), so the two timings compare the same thing."""
    import torch

    from showme_i2g.i2g.attention import masked_neighbour_attention

    gen = torch.Generator().manual_seed(num_steps)
    q, k, v = (torch.randn(2 * num_steps, 2, 5, dim, generator=gen, dtype=torch.float64, requires_grad=True)
               for dim in (8, 8, value_dim))
    out = bench.feature_biased_neighbour_attention(q, k, v, num_steps, weight)
    reference = masked_neighbour_attention(q, k, v, num_steps, weight)
    torch.testing.assert_close(out, reference, rtol=1e-12, atol=1e-12)
    grad = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    for mine, expected in zip(torch.autograd.grad(out, (q, k, v), grad),
                              torch.autograd.grad(reference, (q, k, v), grad)):
        torch.testing.assert_close(mine, expected, rtol=1e-10, atol=1e-12)


def test_help_names_every_section():
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    for option in ("--tiny", "--only", "--batch-limit", "--batch-search-seconds", "--json"):
        assert option in result.stdout
    assert all(section in result.stdout for section in ("showme", "profile", "attention", "recipe", "training",
                                                        "space"))


def test_every_section_runs_on_the_tiny_twins(tmp_path):
    """The whole script on the CPU (the Space section needs a GPU): no failed row, every training entry point."""
    out = tmp_path / "rows.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--device", "cpu", "--repeats", "1",
                             "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert not [r for r in rows if r["what"].endswith("failed")], result.stdout[-3000:]
    assert {r["section"] for r in rows} == {"ShowMe", "profile", "I2G attention", "I2G recipe", "training", "run"}
    steps = sorted(r["what"].split(":")[0] for r in rows if r["what"].endswith("one optimizer step"))
    assert [n.split(" (")[0] for n in steps] == ["I2G pairwise", "I2G reward", "ShowMe stage 1", "ShowMe stage 1",
                                                 "ShowMe stage 2"]
    assert any("structure reward on every sample" in n for n in steps)
    assert all(r["value"] > 0 for r in rows if r["what"].endswith("one optimizer step"))
    achieved = next(r for r in rows if r["what"].endswith("achieved"))
    assert achieved["value"] > 0  # FLOPs were counted and the call was timed
    assert "Operators of one such UNet call" in result.stdout
