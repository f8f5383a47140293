"""Loading a preset's weights: fp16 files first on a GPU, one sentence when nothing loads or a tokenizer is empty."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from showme_i2g.errors import WeightsNotFoundError
from showme_i2g.presets import get_baseline_preset, get_illustration_preset
from showme_i2g.weights import load_preset_weights


class _Tokenizer:
    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


def _loader(tried: list, *, fails: set, tokens: int = 49408):
    def load(source, *, variant, use_safetensors, **kwargs):
        tried.append((source, variant, kwargs))
        if variant in fails:
            raise OSError(f"no {variant} files")
        return SimpleNamespace(tokenizer=_Tokenizer(tokens), tokenizer_2=None)

    return load


@pytest.mark.parametrize("preset", [get_illustration_preset("sdxl"), get_baseline_preset("sd15")])
def test_the_fp16_files_come_first_on_a_gpu_and_the_full_ones_after(preset) -> None:
    tried: list = []
    load_preset_weights(_loader(tried, fails={"fp16"}), preset, None, on_gpu=True, dtype="half")
    assert [variant for _, variant, _ in tried] == ["fp16", None] and tried[0][0] == preset.base
    assert tried[0][2] == {"dtype": "half"}
    tried.clear()
    load_preset_weights(_loader(tried, fails=set()), preset, "/local/copy", on_gpu=False)
    assert [(source, variant) for source, variant, _ in tried] == [("/local/copy", None)]


def test_nothing_that_loads_is_the_presets_one_sentence() -> None:
    preset = get_illustration_preset("sdxl")
    with pytest.raises(WeightsNotFoundError) as caught:
        load_preset_weights(_loader([], fails={"fp16", None}), preset, "/srv/models/sdxl", on_gpu=True)
    assert str(caught.value) == preset.missing_weights_message("the folder /srv/models/sdxl")
    assert isinstance(caught.value.__cause__, OSError)


def test_an_empty_tokenizer_is_missing_weights_not_a_traceback() -> None:
    preset = get_baseline_preset("sd15")
    with pytest.raises(WeightsNotFoundError, match="'sd15' baseline needs the weights"):
        load_preset_weights(_loader([], fails=set(), tokens=3), preset, None, on_gpu=False)
