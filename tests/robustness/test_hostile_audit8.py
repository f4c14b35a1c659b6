"""The eighth hostile-input audit: each case was a hand-edited or damaged file resm reads taken
silently or said misleadingly: a ``checkpoints/step_*`` entry that is no complete checkpoint (a
file, an empty folder) taken as the newest one. Command-line cases keep the rule of
:func:`tests.robustness.cases.check_one_line` (one line naming the thing, the exit code, nothing
written)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.robustness.cases import PRETRAIN_COPY, RUN, Case, check_one_line, mkdir, then, write


# ---------------------------------------------------------------- an incomplete newest checkpoint
# A file or an empty folder named step_00000005 was taken as the newest checkpoint: a resume said
# 'no state for rank 0 (was it written with another world size?)'. Checkpoints appear whole
# (written as step_N.tmp, then renamed), so it is refused as damaged, naming it.
def _later_checkpoint_without(name: str):
    def setup(p: dict) -> None:
        ckpts = Path(p["t"]) / "run" / "checkpoints"
        shutil.copytree(ckpts / "step_00000002", ckpts / "step_00000005", ignore=lambda d, names: [name])

    return setup


STRAY = "{t}/run/checkpoints/step_00000005: not a complete checkpoint"
BEFORE = "remove it to use the one before, step_00000002"
PRETRAIN = ["pretrain", "--config", "{t}/cfg.yaml", "train.max_steps=4"]
EXPORT = ["export", "{t}/run", "--out", "{t}/esm2_x.pt"]
CASES = [
    Case(
        "pretrain/checkpoint-a-file",
        PRETRAIN,
        1,
        [f"{STRAY} (a file, not a checkpoint folder); {BEFORE}"],
        then(PRETRAIN_COPY, write("run/checkpoints/step_00000005", "x\n")),
    ),
    Case(
        "pretrain/checkpoint-empty",
        PRETRAIN,
        1,
        [f"{STRAY} (no trainer_rank0.json); {BEFORE}"],
        then(PRETRAIN_COPY, mkdir("run/checkpoints/step_00000005")),
    ),
    Case(
        "pretrain/checkpoint-no-config",
        PRETRAIN,
        1,
        [f"{STRAY} (no config.json); {BEFORE}"],
        then(PRETRAIN_COPY, _later_checkpoint_without("config.json")),
    ),
    Case(
        "export/checkpoint-empty",
        EXPORT,
        1,
        [f"{STRAY} (no trainer_rank0.json); {BEFORE}"],
        then(RUN, mkdir("run/checkpoints/step_00000005")),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)
