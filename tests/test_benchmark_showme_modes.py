"""benchmarks/showme_modes.py --flops: the FLOP count of one UNet call responds to what the call computes."""

from __future__ import annotations

import pytest

from script_loading import load_script


@pytest.fixture(scope="module")
def modes():
    return load_script("benchmarks/showme_modes.py", "showme_modes")


def test_flops_count_the_adapters_and_the_frames(modes):
    edit, edit_adapted = modes.unet_flops("tiny", 1, False), modes.unet_flops("tiny", 1, True)
    video, video_adapted = modes.unet_flops("tiny", 8, False), modes.unet_flops("tiny", 8, True)
    assert 0 < edit < edit_adapted  # the edit adapter's LoRA branches are counted
    assert video < video_adapted and video_adapted / video > edit_adapted / edit  # video mode adds the animate one
    assert video > 8 * edit  # eight frames cost more than eight images: the temporal layers run in video mode


def test_fusing_ratios_time_both_modes(modes, capsys):
    from showme_i2g.showme import adapters
    from showme_i2g.showme.dynamicrafter.config import TINY
    from showme_i2g.showme.pipeline import build_random_model

    model = build_random_model(TINY)
    adapters.add_showme_adapters(model, edit_rank=4, animate_rank=4)
    modes.fusing_ratios(model, "cpu", frames=2, repeats=1)
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split("  ")[0] for row in rows] == ["edit (1 frame)", "video (2 fr.)"]
    assert all(float(row.split()[-1]) > 0 for row in rows)
    assert not adapters.is_fused(model)
