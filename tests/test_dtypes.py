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
