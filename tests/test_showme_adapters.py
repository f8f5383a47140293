"""The ShowMe LoRA adapters (``edit`` = stage 1, ``animate`` = stage 2) on DynamiCrafter: layout, modes, training
stages, files. Offline and on the CPU: the tiny model, plus the 256 model on the meta device for the layout.

The tiny model's parameters are all redrawn from N(0, 0.1^2) because DynamiCrafter zero-initialises the output of
every transformer and of the UNet, which would hide any LoRA's effect.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from showme_i2g.showme import adapters
from showme_i2g.showme.adapters import ANIMATE, EDIT
from showme_i2g.showme.dynamicrafter.config import DYNAMICRAFTER_256, TINY
from showme_i2g.showme.dynamicrafter.model import DynamiCrafter

DATA = Path(__file__).parent / "data"
TEXT, IMAGE_TOKENS, DIM, FRAMES = 77, 256, 32, 4
KV = "image_proj_model.layers.0.0.to_kv"
ATTENTION = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k_ip"
TEMPORAL_ATTENTION = "model.diffusion_model.input_blocks.1.2.transformer_blocks.0.attn2.to_q"


def release_json(stage: int) -> dict:
    return json.loads((DATA / f"showme_lora_stage{stage}.json").read_text())


def tiny_model(edit_rank: int | None = 4, animate_rank: int = 2) -> DynamiCrafter:
    """The tiny DynamiCrafter (eval mode, random N(0, 0.1^2) weights), with adapters unless ``edit_rank`` is None."""
    torch.manual_seed(0)
    model = DynamiCrafter(TINY).eval()
    with torch.no_grad():
        for parameter in [*model.model.parameters(), *model.image_proj_model.parameters()]:
            parameter.normal_(0.0, 0.1)
    if edit_rank is not None:
        adapters.add_showme_adapters(model, edit_rank=edit_rank, animate_rank=animate_rank)
    return model


def lora_layers(model: nn.Module, adapter: str) -> dict[str, nn.Module]:
    return {name: layer for name, layer in adapters._lora_layers(model, adapter)}


def fill(model: nn.Module, adapter: str, seed: int = 2, value: float | None = None) -> None:
    """Give every weight of ``adapter`` a random N(0, 0.1^2) value (or the constant ``value``)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model, adapter).values():
            for weight in (layer.lora_A[adapter].weight, layer.lora_B[adapter].weight):
                if value is None:
                    weight.copy_(torch.randn(weight.shape, generator=generator) * 0.1)
                else:
                    weight.fill_(value)


def inputs(seed: int = 1) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    noisy = torch.randn(1, 4, FRAMES, 8, 8, generator=generator)
    concat = torch.randn(1, 4, FRAMES, 8, 8, generator=generator)
    context = torch.cat(
        [torch.randn(1, TEXT, DIM, generator=generator), torch.randn(1, IMAGE_TOKENS, DIM, generator=generator)], 1
    )
    return noisy, torch.tensor([500]), concat, context, torch.tensor([3])


def predict(model: DynamiCrafter, mode: str | None = None) -> torch.Tensor:
    with torch.no_grad():
        if mode is None:
            return model.predict(*inputs())
        with adapters.mode(model, mode):
            return model.predict(*inputs())


def differs(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a - b).abs().max().item() > 1e-4


# ------------------------------------------------------------------------------------------------ layout
def test_release_layout_of_the_256_model() -> None:
    with torch.device("meta"):
        model = DynamiCrafter(DYNAMICRAFTER_256)
    adapters.add_showme_adapters(model)  # the release ranks: 128 / 64
    stage1, stage2 = release_json(1), release_json(2)
    expected1 = {key: tuple(shape) for key, shape in stage1["lora_keys"].items()}
    expected2 = {key: tuple(shape) for key, shape in stage2["lora_keys"].items() if ".stage2_lora_" in key}
    assert len(expected1) == 412 and len(expected2) == 592
    assert adapters.release_lora_keys(model, 1) == expected1
    assert adapters.release_lora_keys(model, 2) == expected2
    # The stage-2 model holds the stage-1 LoRAs unchanged.
    assert {k: tuple(v) for k, v in stage2["lora_keys"].items() if ".stage1_lora_" in k} == expected1
    # Documented difference: the release's stage 2 also trains the Resampler's stage-1 LoRA; ours trains animate only.
    resampler_stage1 = {k for k in expected1 if k.startswith("image_proj_model.")}
    assert set(stage2["trainable"]) == set(expected2) | resampler_stage1
    assert set(stage1["trainable"]) == set(expected1)
    # The fused to_kv: one LoRA of rank 2r; every other layer rank r.
    ranks = {name: int(layer.r[EDIT]) for name, layer in adapters._lora_layers(model, EDIT)}
    assert {r for n, r in ranks.items() if n.endswith(".to_kv")} == {256}
    assert {r for n, r in ranks.items() if not n.endswith(".to_kv")} == {128}
    assert {int(layer.r[ANIMATE]) for _, layer in adapters._lora_layers(model, ANIMATE)} == {64}
    assert all(layer.scaling[a] == 1.0 for a in (EDIT, ANIMATE) for _, layer in adapters._lora_layers(model, a))


def test_configs_and_injection_rules() -> None:
    edit, animate = adapters.edit_lora_config(), adapters.animate_lora_config()
    assert (edit.r, edit.lora_alpha, edit.lora_dropout) == (128, 128, 0.1)
    assert (animate.r, animate.lora_alpha, animate.lora_dropout) == (64, 64, 0.1)
    assert list(edit.rank_pattern.values()) == [256] and list(edit.alpha_pattern.values()) == [256]
    model = tiny_model(edit_rank=None)
    assert not adapters.has_adapters(model)
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    adapters.add_showme_adapters(model, 4, 2)
    assert adapters.has_adapters(model)
    for name, parameter in model.named_parameters():  # base flags kept (peft renames to *.base_layer.*)
        if ".lora_" not in name:
            assert parameter.requires_grad == flags[name.replace(".base_layer", "")], name
        else:
            assert not parameter.requires_grad, name
    with pytest.raises(ValueError, match="already"):
        adapters.add_showme_adapters(model, 4, 2)
    with pytest.raises(ValueError, match="positive integer"):
        adapters.edit_lora_config(0)


# ------------------------------------------------------------------------------------------------ modes
def test_base_mode_is_the_model_without_adapters() -> None:
    reference = predict(tiny_model(edit_rank=None))
    model = tiny_model()
    assert torch.equal(predict(model), reference)  # fresh adapters (lora_B = 0) change nothing
    fill(model, EDIT)
    fill(model, ANIMATE, seed=3)
    assert torch.equal(predict(model, "base"), reference)
    assert differs(predict(model, "video"), reference)


def test_edit_changes_the_image_output() -> None:
    model = tiny_model()
    before = predict(model, "image")
    fill(model, EDIT)
    after = predict(model, "image")
    assert differs(after, before)
    # Image mode bypasses every temporal module: with the same input frames, each output frame is independent.
    assert not differs(predict(model, "image")[:, :, 1], after[:, :, 1])


def test_animate_changes_video_only_and_never_runs_in_image_mode() -> None:
    model = tiny_model()
    fill(model, EDIT)
    image, video = predict(model, "image"), predict(model, "video")
    fill(model, ANIMATE, seed=3)
    assert differs(predict(model, "video"), video)
    assert torch.equal(predict(model, "image"), image)
    fill(model, ANIMATE, value=float("nan"))  # would poison any output that used it
    assert torch.equal(predict(model, "image"), image)
    assert torch.isnan(predict(model, "video")).any()


def test_switching_modes_reproduces_outputs_and_keeps_requires_grad() -> None:
    model = tiny_model()
    fill(model, EDIT)
    fill(model, ANIMATE, seed=3)
    trainable = adapters.set_training_stage(model, 2)  # peft's set_adapter("edit") alone would flip these
    adapters.set_mode(model, "image")
    first = predict(model)
    adapters.set_mode(model, "video")
    video = predict(model)
    adapters.set_mode(model, "base")
    adapters.set_mode(model, "image")
    assert torch.equal(predict(model), first)
    assert differs(video, first)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == trainable

    unet = model.model.diffusion_model
    with adapters.mode(model, "video"):
        assert not any(m.bypass for m in unet.temporal_modules())
        assert torch.equal(predict(model), video)
    assert all(m.bypass for m in unet.temporal_modules())  # back to image mode
    assert torch.equal(predict(model), first)
    with pytest.raises(ValueError, match="'image', 'video', 'base'"):
        adapters.set_mode(model, "edit")
    assert [n for n, p in model.named_parameters() if p.requires_grad] == trainable


# ------------------------------------------------------------------------------------------------ fusing
def lora_branch_calls(model: nn.Module) -> list[str]:
    """Record the names of LoRA ``A`` projections as they run (each adapter branch starts with one)."""
    calls: list[str] = []
    for name, layer in adapters._lora_layers(model):
        for adapter, module in layer.lora_A.items():
            module.register_forward_hook(lambda *_, tag=f"{name}/{adapter}": calls.append(tag))
    return calls


@pytest.mark.parametrize("mode", ["image", "video"])
def test_fused_adapters_run_no_branch_and_give_the_same_outputs(mode: str) -> None:
    model = tiny_model()
    fill(model, EDIT)
    fill(model, ANIMATE, seed=3)
    calls = lora_branch_calls(model)
    with adapters.mode(model, mode):
        unfused = predict(model)
        assert calls and not adapters.is_fused(model)
        calls.clear()
        with adapters.fused(model):
            assert adapters.is_fused(model)
            folded = predict(model)
        assert calls == []  # the adapters ran inside the weights, not as branches
        assert torch.allclose(folded, unfused, atol=1e-5, rtol=1e-4)
        assert differs(unfused, predict(model, "base"))  # ... and they do change the output: the check has teeth
    assert not adapters.is_fused(model)


def test_fusing_restores_every_weight_bit_for_bit_and_the_mode() -> None:
    model = tiny_model()
    fill(model, EDIT)
    fill(model, ANIMATE, seed=3)
    trainable = adapters.set_training_stage(model, 1)
    adapters.set_mode(model, "image")
    before = {name: p.detach().clone() for name, p in model.state_dict().items()}
    image = predict(model)
    for mode in ("video", "image", "video"):  # switching modes while fusing never drifts the weights
        with adapters.mode(model, mode), adapters.fused(model):
            predict(model)
    with pytest.raises(RuntimeError, match="stopped"), adapters.mode(model, "video"), adapters.fused(model):
        raise RuntimeError("stopped mid-call")
    after = model.state_dict()
    assert all(torch.equal(after[name], value) for name, value in before.items())
    assert torch.equal(predict(model), image)  # still image mode, unfused, same output
    assert [n for n, p in model.named_parameters() if p.requires_grad] == trainable
    assert adapters.active_adapter_names(model) == (EDIT,)


def test_fusing_keeps_each_weight_in_its_storage() -> None:
    """A CUDA graph replays fixed addresses: the folded weights must be written where the weights already live."""
    model = tiny_model()
    fill(model, EDIT)
    fill(model, ANIMATE, seed=3)
    weights = {name: layer.get_base_layer().weight for name, layer in adapters._lora_layers(model)}
    before = {name: (w.data_ptr(), w.detach().clone()) for name, w in weights.items()}
    with adapters.mode(model, "video"), adapters.fused(model):
        assert all(w.data_ptr() == before[name][0] for name, w in weights.items())
        assert all(not torch.equal(w, before[name][1]) for name, w in weights.items())  # every layer was folded
    assert all(w.data_ptr() == before[n][0] and torch.equal(w, before[n][1]) for n, w in weights.items())


def test_modes_cannot_switch_while_fused() -> None:
    model = tiny_model()
    with adapters.mode(model, "video"), adapters.fused(model):
        with pytest.raises(RuntimeError, match="Switch modes outside adapters.fused"):
            adapters.set_mode(model, "image")
    adapters.set_mode(model, "image")  # fine again once the weights are unfolded


# ------------------------------------------------------------------------------------------------ training
def test_training_stages_train_exactly_one_adapter() -> None:
    model = tiny_model()
    for stage, adapter in ((1, EDIT), (2, ANIMATE)):
        names = adapters.set_training_stage(model, stage)
        assert names == [n for n, p in model.named_parameters() if p.requires_grad]
        assert names and all(f".lora_A.{adapter}." in n or f".lora_B.{adapter}." in n for n in names)
        expected = {
            f"{module}.lora_{factor}.{adapter}.weight" for module in lora_layers(model, adapter) for factor in "AB"
        }
        assert set(names) == expected
        # Release keys count the fused to_kv's k and v LoRAs separately: 4 release tensors -> 2 peft tensors.
        fused = sum(1 for name in lora_layers(model, adapter) if name.endswith(".to_kv"))
        assert len(names) == len(adapters.release_lora_keys(model, stage)) - 2 * fused
        assert fused == (2 if adapter == EDIT else 0)
    with pytest.raises(ValueError, match="stage"):
        adapters.set_training_stage(model, 3)


# ------------------------------------------------------------------------------------------------ files
def test_save_and_load_round_trip(tmp_path: Path) -> None:
    source = tiny_model()
    fill(source, EDIT)
    fill(source, ANIMATE, seed=3)
    adapters.save_adapter(source, EDIT, tmp_path / "edit")
    adapters.save_adapter(source, ANIMATE, tmp_path / "animate")

    target = tiny_model()
    adapters.load_adapter(target, EDIT, tmp_path / "edit")
    adapters.load_adapter(target, ANIMATE, tmp_path / "animate")
    assert torch.equal(predict(target, "image"), predict(source, "image"))
    assert torch.equal(predict(target, "video"), predict(source, "video"))
    assert adapters.adapter_file_info(tmp_path / "edit") == (EDIT, 4)

    with pytest.raises(ValueError, match="holds the 'edit' adapter, not 'animate'"):
        adapters.load_adapter(target, ANIMATE, tmp_path / "edit")
    with pytest.raises(ValueError, match="rank-4 'edit' adapter but this model's has rank 8"):
        adapters.load_adapter(tiny_model(edit_rank=8), EDIT, tmp_path / "edit")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ValueError, match="not a readable"):
        adapters.load_adapter(target, EDIT, tmp_path / "junk.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is not a ShowMe adapter folder: it needs adapter_config.json"):
        adapters.load_adapter(target, EDIT, tmp_path / "empty")


def test_saved_adapter_is_in_peft_layout(tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model_state_dict, set_peft_model_state_dict
    from peft.utils import load_peft_weights

    source = tiny_model()
    fill(source, EDIT)
    folder = adapters.save_adapter(source, EDIT, tmp_path / "edit")
    assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    weights = load_peft_weights(str(folder), device="cpu")  # peft's own reader
    expected = get_peft_model_state_dict(source, adapter_name=EDIT)
    assert set(weights) == set(expected) and all(torch.equal(weights[k], expected[k]) for k in expected)
    config = LoraConfig.from_pretrained(str(folder))
    assert config.r == 4 and config.target_modules == adapters.EDIT_TARGETS

    target = tiny_model()  # loaded by peft's conventions alone, it equals the source
    set_peft_model_state_dict(target, weights, adapter_name=EDIT)
    assert torch.equal(predict(target, "image"), predict(source, "image"))


def test_the_earlier_single_file_layout_still_loads(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = tiny_model()
    fill(source, EDIT)
    tensors = {k: v.detach().clone() for k, v in adapters._adapter_state_dict(source, EDIT).items()}
    save_file(tensors, str(tmp_path / "edit.safetensors"),
              metadata={"format": adapters.FILE_FORMAT, "adapter": EDIT, "rank": "4"})
    assert adapters.adapter_file_info(tmp_path / "edit.safetensors") == (EDIT, 4)
    target = tiny_model()
    with pytest.warns(FutureWarning, match="single-file ShowMe adapter"):
        adapters.load_adapter(target, EDIT, tmp_path / "edit.safetensors")
    assert torch.equal(predict(target, "image"), predict(source, "image"))


# ------------------------------------------------------------------------------------------------ release files
def release_state_dict(model: DynamiCrafter, seed: int = 4) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    keys = {**adapters.release_lora_keys(model, 1), **adapters.release_lora_keys(model, 2)}
    return {key: torch.randn(shape, generator=generator) * 0.1 for key, shape in keys.items()}


def test_load_release_lora_reproduces_the_release_layers(tmp_path: Path) -> None:
    model = tiny_model()
    state = release_state_dict(model)
    torch.save({"lora_state_dict": state}, tmp_path / "lora_video.pth")
    assert adapters.load_release_lora(model, tmp_path / "lora_video.pth") == [EDIT, ANIMATE]
    x = torch.randn(3, 5, DIM, generator=torch.Generator().manual_seed(5))

    def release(prefix: str, stage: int, what: str) -> torch.Tensor:
        a, b = state[f"{prefix}.stage{stage}_lora_{what}.lora_A"], state[f"{prefix}.stage{stage}_lora_{what}.lora_B"]
        return x @ a @ b

    layers = dict(adapters._lora_layers(model))
    with torch.no_grad():
        attention, parent = layers[ATTENTION], ATTENTION.rsplit(".", 1)[0]
        base = attention.get_base_layer()(x)
        with adapters.mode(model, "image"):
            torch.testing.assert_close(attention(x), base + release(parent, 1, "cross_attn_ip_k"))
        with adapters.mode(model, "video"):
            expected = base + release(parent, 1, "cross_attn_ip_k") + release(parent, 2, "cross_attn_ip_k")
            torch.testing.assert_close(attention(x), expected)
            temporal, parent = layers[TEMPORAL_ATTENTION], TEMPORAL_ATTENTION.rsplit(".", 1)[0]
            expected = temporal.get_base_layer()(x) + release(parent, 2, "self_attn_q")
            torch.testing.assert_close(temporal(x), expected)

            kv, parent = layers[KV], KV.rsplit(".", 1)[0]
            k, v = kv(x).chunk(2, dim=-1)
            base_k, base_v = kv.get_base_layer()(x).chunk(2, dim=-1)
            torch.testing.assert_close(k, base_k + release(parent, 1, "cross_attn_k"))
            torch.testing.assert_close(v, base_v + release(parent, 1, "cross_attn_v"))


def test_load_release_lora_prefixes_partial_files_and_errors(tmp_path: Path) -> None:
    model = tiny_model()
    state = release_state_dict(model)
    stage2 = {k.removeprefix("model."): v for k, v in state.items() if ".stage2_" in k}  # "diffusion_model.*"
    stage2["model_ema.ignored"] = torch.zeros(1)
    torch.save(stage2, tmp_path / "stage2.pth")
    assert adapters.load_release_lora(model, tmp_path / "stage2.pth") == [ANIMATE]
    prefixed = {f"model.{k}": v for k, v in state.items() if ".stage1_" in k}  # "model.image_proj_model.*" too
    torch.save({"state_dict": prefixed}, tmp_path / "stage1.pth")
    assert adapters.load_release_lora(model, tmp_path / "stage1.pth") == [EDIT]

    snapshot = {k: v.clone() for k, v in model.state_dict().items() if ".lora_" in k}

    def rejected(bad: dict, match: str) -> None:
        torch.save({"lora_state_dict": bad}, tmp_path / "bad.pth")
        with pytest.raises(ValueError, match=match):
            adapters.load_release_lora(model, tmp_path / "bad.pth")
        current = model.state_dict()
        assert all(torch.equal(v, current[k]) for k, v in snapshot.items())  # nothing written

    key = f"{ATTENTION.rsplit('.', 1)[0]}.stage1_lora_cross_attn_ip_k.lora_A"
    corrupted = dict(state)
    corrupted[key.replace("cross_attn_ip_k", "cross_attn_ip_q")] = corrupted.pop(key)
    rejected(corrupted, "does not map")
    rejected({**state, key: torch.zeros(DIM, 3)}, "has shape")
    rejected({k: v for k, v in state.items() if k != key}, "only part of the 'edit' adapter")
    rejected({"unrelated.weight": torch.zeros(2)}, "does not map")
    torch.save({}, tmp_path / "empty.pth")
    with pytest.raises(ValueError, match="no ShowMe LoRA weights"):
        adapters.load_release_lora(model, tmp_path / "empty.pth")
