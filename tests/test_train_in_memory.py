"""The training loop without a run folder (train.out_dir None): the same steps as a run with
one, nothing written, the weights left in the task's model, the log lines returned."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from resm.config import ConfigError
from resm.data.stream import EpochStream
from resm.train import Trainer, run_task
from resm.train_config import OptimConfig, TrainConfig


class _Rows(EpochStream):
    def __init__(self, n: int, batch: int, seed: int):
        super().__init__(seed, 0, 1)
        self.n, self.batch = n, batch

    def iter_epoch(self, epoch: int):
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        for s in range(0, self.n, self.batch):
            yield torch.from_numpy(order[s : s + self.batch])


class _Regression:
    """A linear model fitted to y = X w + b by mean squared error."""

    name = "regression"
    progress = False

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.X = torch.randn(64, 5, generator=g)
        self.y = self.X @ torch.tensor([1.0, -2.0, 0.5, 3.0, 0.0]) + 0.7
        torch.manual_seed(1)
        self.model = torch.nn.Linear(5, 1)
        self.saved = 0

    def train_stream(self, rank, world_size):
        return _Rows(len(self.X), 16, 0)

    def loss(self, model, rows, generator, device):
        return torch.nn.functional.mse_loss(model(self.X[rows])[:, 0], self.y[rows]), {"tokens": len(rows)}

    def validate(self, model, device):
        with torch.no_grad():
            return {"mse": float(torch.nn.functional.mse_loss(model(self.X)[:, 0], self.y))}

    def fingerprint(self):
        return {"task": self.name}

    def save_final(self, model, out_dir, state):
        self.saved += 1


def _settings(out_dir) -> tuple[OptimConfig, TrainConfig]:
    optim = OptimConfig(lr=0.2, weight_decay=0.0, warmup_steps=2, max_grad_norm=5.0)
    train = TrainConfig(
        out_dir=out_dir, max_steps=60, log_every=10, val_every=30, ckpt_every=20, device="cpu", progress=False
    )
    return optim, train


def test_an_in_memory_run_writes_nothing_and_trains_as_a_run_with_a_folder(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    mem = _Regression()
    before = mem.validate(mem.model, "cpu")["mse"]
    result = Trainer(mem, *_settings(None)).fit()
    assert os.listdir(work) == [] and os.listdir(tmp_path) == ["work"]  # no run folder, no log, no checkpoint
    assert mem.saved == 0  # no final model either: the caller keeps mem.model
    after = mem.validate(mem.model, "cpu")["mse"]
    assert after < 0.05 * before  # it learnt
    log = result["log"]
    assert [r["step"] for r in log if r["split"] == "train"] == [10, 20, 30, 40, 50, 60]
    assert [r["step"] for r in log if r["split"] == "validation"] == [30, 60]
    assert log[-1]["mse"] == pytest.approx(after) and result["validation"]["mse"] == pytest.approx(after)
    assert log[-2]["loss"] < log[0]["loss"]

    disk = _Regression()
    res = Trainer(disk, *_settings(str(tmp_path / "run"))).fit()
    assert disk.saved == 1 and (tmp_path / "run" / "log.jsonl").is_file()
    assert "log" not in res
    for k, v in disk.model.state_dict().items():  # the same steps, the same weights
        assert torch.equal(v, mem.model.state_dict()[k])


def test_an_in_memory_run_needs_engine_torch_and_a_training_command_needs_a_folder(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="in-memory run .* needs engine torch"):
        TrainConfig(out_dir=None, engine="deepspeed", deepspeed_config="zero2")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^train.out_dir: a training command needs a run folder") as e:
        run_task(lambda cfg: _Regression(), {"train": {"out_dir": None, "device": "cpu"}}, set())
    assert "\n" not in str(e.value)
    assert os.listdir(tmp_path) == []


class _WithValLoss(_Regression):
    def validate(self, model, device):
        return {"val_loss": super().validate(model, device)["mse"]}


def test_the_progress_bar_shows_what_the_log_holds(capsys):
    """The console shows each log line's loss, perplexity, tokens/s, learning rate and gradient
    norm (as the README says), and the last validation loss; it showed loss and lr alone."""
    torch.set_num_threads(1)
    optim, train = _settings(None)
    train.progress = True
    result = Trainer(_WithValLoss(), optim, train).fit()
    bar = [d for d in capsys.readouterr().err.replace("\n", "\r").split("\r") if d.startswith("train")][-1]
    last = [r for r in result["log"] if r["split"] == "train"][-1]
    val = [r for r in result["log"] if r["split"] == "validation"][-1]
    for key, value in (
        ("loss", f"{last['loss']:.3f}"),
        ("ppl", f"{last['ppl']:.2f}"),
        ("tok/s", f"{last['tokens_per_s']:.0f}"),
        ("lr", f"{last['lr']:.2e}"),
        ("gnorm", f"{last['grad_norm']:.2f}"),
        ("val_loss", f"{val['val_loss']:.3f}"),
    ):
        assert f"{key}={value}" in bar, (key, bar)
