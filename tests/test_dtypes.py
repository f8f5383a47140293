"""``dtype`` is diffusers' name; the older ``torch_dtype`` still works, once, with a FutureWarning."""

from __future__ import annotations

import pytest
import torch

from showme_i2g.dtypes import resolve_dtype


def test_dtype_passes_and_torch_dtype_warns():
    assert resolve_dtype(torch.float16, None) is torch.float16 and resolve_dtype(None, None) is None
    with pytest.warns(FutureWarning, match="pass `dtype`"):
        assert resolve_dtype(None, torch.bfloat16) is torch.bfloat16
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="give dtype or torch_dtype, not both"):
        resolve_dtype(torch.float16, torch.float32)


def _illustrator(**kwargs):
    from showme_i2g.i2g.pipeline import IllustrationPipeline

    return IllustrationPipeline.from_preset("tiny", device="cpu", **kwargs)


def _showme(**kwargs):
    from showme_i2g.showme.pipeline import ShowMePipeline

    return ShowMePipeline.from_preset("tiny", device="cpu", **kwargs)


def _depth(**kwargs):
    from showme_i2g.errors import WeightsNotFoundError
    from showme_i2g.showme.rewards.depth import DepthEstimator

    with pytest.raises(WeightsNotFoundError):  # offline: the keyword is read before the weights are looked for
        DepthEstimator.from_pretrained("no-such-org/no-such-depth", **kwargs)


def _planner(**kwargs):
    from showme_i2g.errors import PlannerUnavailableError
    from showme_i2g.text.planner import StepPlanner

    with pytest.raises(PlannerUnavailableError):
        StepPlanner.from_pretrained("no-such-org/no-such-planner", local_files_only=True, **kwargs)


@pytest.mark.parametrize("load", [_illustrator, _showme, _depth, _planner])
def test_every_loader_takes_dtype_and_warns_on_torch_dtype(load, recwarn):
    load(dtype=torch.float32)
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning) and "torch_dtype" in str(w.message)]
    with pytest.warns(FutureWarning, match="pass `dtype`"):
        load(torch_dtype=torch.float32)
