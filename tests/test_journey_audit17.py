"""Continuing a run as the README tells it: re-running a training command resumes from its
newest checkpoint, and re-running a finished run changes nothing it wrote."""

from __future__ import annotations

import json

import torch

from resm.train import Trainer
from tests.test_train_in_memory import _Regression, _settings


def test_rerunning_a_finished_run_logs_no_second_validation(tmp_path):
    """The validation logged at the step a finished run stopped at is the run's: a re-run
    reports it and neither validates again nor logs it twice (each re-run added a copy)."""
    torch.set_num_threads(1)
    optim, train = _settings(str(tmp_path / "run"))
    train.val_every = 25  # the run ends off a validation step: its last validation comes after the loop
    first = Trainer(_Regression(), optim, train).fit()
    log = (tmp_path / "run" / "log.jsonl").read_text()
    assert [json.loads(x)["step"] for x in log.splitlines() if '"validation"' in x] == [25, 50, 60]

    class Counted(_Regression):
        calls = 0

        def validate(self, model, device):
            Counted.calls += 1
            return super().validate(model, device)

    again = Trainer(Counted(), optim, train).fit()
    assert (tmp_path / "run" / "log.jsonl").read_text() == log
    assert Counted.calls == 0 and again["validation"] == first["validation"] and again["step"] == 60
