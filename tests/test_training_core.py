"""The shared training infrastructure: configs, the loop, checkpoints, exact kill-and-resume, gradient checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml

from showme_i2g.errors import ShowMeError
from showme_i2g.training import (
    CONFIG_FILENAME,
    DataError,
    ResumableBatches,
    RunConfig,
    TrainingConfigError,
    assert_gradients_exactly,
    create_accelerator,
    latest_checkpoint,
    read_log,
    run_cli,
    step_generator,
    train,
)


class Adapted(torch.nn.Module):
    """A frozen base layer plus a trainable low-rank adapter and dropout (which draws from the global RNG)."""

    def __init__(self, adapter_seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(0)  # the "pretrained" base is the same in every run
        self.base = torch.nn.Linear(4, 4)
        torch.manual_seed(adapter_seed)
        self.down = torch.nn.Linear(4, 2, bias=False)
        self.up = torch.nn.Linear(2, 4, bias=False)
        self.dropout = torch.nn.Dropout(0.3)
        self.base.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.up(self.dropout(self.down(x)))


def make_dataset(n: int = 10) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(123)
    return [(torch.randn(4, generator=g), torch.randn(4, generator=g)) for _ in range(n)]


def collate(items):
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


def loss_fn(batch, ctx):
    x, y = batch
    noise = torch.randn(x.shape, generator=ctx.generator).to(ctx.device)  # per-step generator
    prediction = ctx.model(x.to(ctx.device) + 0.1 * noise)
    return {"loss": torch.nn.functional.mse_loss(prediction, y.to(ctx.device)), "noise": noise.abs().mean()}


class Interrupted(Exception):
    pass


def run(tmp: Path, max_steps: int, *, resume: str | None = None, kill_after: int | None = None,
        resumable: bool = True, init_seed: int = 0, **overrides) -> torch.nn.Module:
    config = RunConfig(output_dir=str(tmp), max_steps=max_steps, batch_size=2, lr=0.05, seed=7,
                       gradient_accumulation=2, checkpoint_every=2, log_every=1, lr_scheduler="cosine",
                       lr_warmup_steps=1, resume=resume, **overrides)
    accelerator = create_accelerator(config)
    model = Adapted(init_seed)
    data = ResumableBatches(make_dataset(), 2, seed=config.seed, collate=collate)
    if not resumable:
        data = iter(data)  # a plain iterator: resume has to skip the used batches

    def stop(step, record):
        if kill_after is not None and step == kill_after:
            raise Interrupted

    return train(config, accelerator, model, loss_fn, data, on_step_end=stop).model


@pytest.mark.parametrize("resumable", [True, False])
def test_kill_and_resume_gives_the_same_parameters_as_an_uninterrupted_run(tmp_path, resumable):
    reference = run(tmp_path / "straight", 6, resumable=resumable)
    with pytest.raises(Interrupted):
        run(tmp_path / "killed", 6, kill_after=3, resumable=resumable)  # last checkpoint: step 2
    assert latest_checkpoint(tmp_path / "killed").name == "step-00000002"
    # A fresh process: a model initialised differently, the data at its start; everything must come from the checkpoint.
    resumed = run(tmp_path / "killed", 6, resume="latest", resumable=resumable, init_seed=99)
    for (name, a), (_, b) in zip(reference.named_parameters(), resumed.named_parameters()):
        assert torch.equal(a, b), name
    # The log of the resumed run is that of the uninterrupted run (the killed run's step 3 is redone once).
    straight, killed = read_log(tmp_path / "straight"), read_log(tmp_path / "killed")
    assert [e["step"] for e in killed] == [1, 2, 3, 4, 5, 6]
    assert [e["loss"] for e in killed] == pytest.approx([e["loss"] for e in straight], rel=0, abs=0)


def test_resume_is_not_a_restart(tmp_path):
    """Guard for the test above: without the checkpoint the same run ends elsewhere."""
    reference = run(tmp_path / "a", 4)
    other = run(tmp_path / "b", 4, init_seed=99)
    assert not torch.equal(reference.up.weight, other.up.weight)


def test_training_updates_only_trainable_parameters_and_checkpoints_hold_only_them(tmp_path):
    before = Adapted().state_dict()
    model = run(tmp_path, 2)
    assert torch.equal(model.base.weight, before["base.weight"])
    assert not torch.equal(model.up.weight, before["up.weight"])
    checkpoint = latest_checkpoint(tmp_path)
    from safetensors.torch import load_file

    assert set(load_file(str(checkpoint / "trainable_0.safetensors"))) == {"down.weight", "up.weight"}
    assert not list(checkpoint.glob("model*.safetensors"))  # the frozen base is not copied
    saved = yaml.safe_load((tmp_path / CONFIG_FILENAME).read_text())
    assert saved["max_steps"] == 2 and saved["lr"] == 0.05
    assert list((tmp_path / "logs").rglob("events.out.tfevents*")), "TensorBoard scalars were not written"
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in read_log(tmp_path))


def test_keep_checkpoints_prunes_old_ones(tmp_path):
    run(tmp_path, 6, keep_checkpoints=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step-00000004", "step-00000006"]


def test_step_generator_depends_only_on_its_arguments():
    a = torch.randn(5, generator=step_generator(1, 2, 0, 0))
    assert torch.equal(a, torch.randn(5, generator=step_generator(1, 2, 0, 0)))
    for other in [(1, 3, 0, 0), (1, 2, 1, 0), (1, 2, 0, 1), (2, 2, 0, 0)]:
        assert not torch.equal(a, torch.randn(5, generator=step_generator(*other)))


def test_resumable_batches_cover_each_epoch_and_shards_are_disjoint():
    data = list(range(12))
    stream = ResumableBatches(data, 3, seed=1)
    epoch = [x for _ in range(4) for x in next(stream)]
    assert sorted(epoch) == data
    state = stream.state_dict()
    following = next(stream)
    fresh = ResumableBatches(data, 3, seed=1)
    fresh.load_state_dict(state)
    assert next(fresh) == following
    shards = [ResumableBatches(data, 2, seed=1, num_shards=3, shard=s) for s in range(3)]
    firsts = [next(s) for s in shards]
    assert len({x for b in firsts for x in b}) == 6
    with pytest.raises(DataError, match="fewer than one batch"):
        ResumableBatches([1, 2], 3)


def test_gradient_check_catches_extra_and_missing_gradients():
    model = Adapted()
    model.dropout.p = 0.0
    model.base.requires_grad_(True)
    model(torch.randn(2, 4)).sum().backward()
    with pytest.raises(AssertionError, match="unexpected gradient"):
        assert_gradients_exactly(model, lambda n: n.startswith(("up", "down")))
    assert_gradients_exactly(model, lambda n: True)
    with pytest.raises(AssertionError, match="expected ones got none"):
        assert_gradients_exactly(Adapted(), ["up.weight"])


# ---------------------------------------------------------------------- configs
@dataclass
class ExampleConfig(RunConfig):
    data: str | None = field(default=None, metadata={"help": "data file"})
    guidance: float = 5.0
    flip: bool = False
    names: list[str] = field(default_factory=lambda: ["a"])


def test_config_yaml_round_trip_and_flag_precedence(tmp_path):
    path = ExampleConfig(max_steps=7, data="x.json", names=["p", "q"]).save_yaml(tmp_path / "c.yaml")
    assert ExampleConfig.from_yaml(path) == ExampleConfig(max_steps=7, data="x.json", names=["p", "q"])
    config = ExampleConfig.from_cli(["--config", str(path), "--max-steps", "9", "--lr", "3e-4", "--rank", "8",
                                     "--batch-size", "2", "--out", str(tmp_path / "o"), "--resume", "latest",
                                     "--flip", "--names", "x,y"])
    assert (config.max_steps, config.lr, config.rank, config.batch_size) == (9, 3e-4, 8, 2)
    assert config.output_dir == str(tmp_path / "o") and config.resume == "latest" and config.flip
    assert config.data == "x.json" and config.names == ["x", "y"]  # kept from the YAML / parsed from the flag


@pytest.mark.parametrize(
    "content, message",
    [
        ("max_steps: 10\nlearning_rate: 1\n", "unknown setting 'learning_rate'"),
        ("max_steps: ten\n", "not a valid int"),
        ("max_steps: 0\n", "max_steps must be a whole number of at least 1"),
        ("lr: 2.0\n", "lr must be a number between 0 and 1"),
        ("mixed_precision: fp8\n", "mixed_precision must be one of"),
        ("- a\n- b\n", "must be a mapping"),
        ("max_steps: [1\n", "not valid YAML"),
    ],
)
def test_bad_configs_give_one_sentence(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(TrainingConfigError, match=message) as info:
        ExampleConfig.from_cli(["--config", str(path)])
    assert "\n" not in str(info.value) and str(info.value).endswith(".")


def test_run_cli_prints_one_sentence_and_exits_2(tmp_path, capsys):
    assert run_cli(lambda: ExampleConfig.from_cli(["--config", str(tmp_path / "missing.yaml")])) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: The config file {tmp_path / 'missing.yaml'} does not exist."
    assert run_cli(lambda: ExampleConfig.from_cli(["--resume", str(tmp_path)])) == 0  # validated lazily
    with pytest.raises(TrainingConfigError, match="not a complete checkpoint"):
        from showme_i2g.training import resolve_resume

        resolve_resume(ExampleConfig(resume=str(tmp_path)))
    with pytest.raises(ZeroDivisionError):  # bugs keep their traceback
        run_cli(lambda: 1 / 0)
    assert issubclass(TrainingConfigError, ShowMeError) and issubclass(DataError, ShowMeError)
