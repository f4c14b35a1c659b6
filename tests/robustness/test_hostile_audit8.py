"""The eighth hostile-input audit: each case was a hand-edited or damaged file resm reads taken
silently or said misleadingly: a ``checkpoints/step_*`` entry that is no complete checkpoint (a
file, an empty folder) taken as the newest one; a probe's ``heads`` of 4.5 read as 4. Command-line cases keep the rule
of :func:`tests.robustness.cases.check_one_line` (one line naming the thing, the exit code,
nothing written)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

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


# ---------------------------------------------------------------- a probe's counts
# A probe whose heads (or num_layers) was 4.5 was read as 4 and folded with.
def _probe_with(key: str, value):
    def setup(p: dict) -> None:
        t = Path(p["t"])
        data = torch.load(p["probe"], weights_only=True)
        data[key] = value(data[key].item()) if callable(value) else value
        torch.save(data, t / "p.pt")
        record = json.loads(Path(p["probe"] + ".json").read_text())
        record["probe_sha256"] = hashlib.sha256((t / "p.pt").read_bytes()).hexdigest()
        (t / "p.pt.json").write_text(json.dumps(record))

    return setup


PROBE_FOLD = ["fold", "{fa}", "--model", "{tiny}", "--zero-shot", "{t}/p.pt", "-o", "{t}/o.dbn", "--threads", "1"]
CASES += [
    Case(
        f"fold/probe-{key}-{name}",
        PROBE_FOLD,
        1,
        [f"{{t}}/p.pt: {key} must be an integer >= 1, got {shown.format(n=n)}"],
        _probe_with(key, value),
    )
    for key, n in (("heads", 4), ("num_layers", 2))  # the tiny backbone's
    for name, value, shown in (
        ("half", lambda n: torch.tensor(n + 0.5), "{n}.5"),
        ("float-int", lambda n: float(n), "{n}.0"),
        ("bool", True, "True"),
        ("zero", 0, "0"),
    )
]


@pytest.mark.parametrize(
    "make", [int, torch.tensor, lambda n: torch.tensor(n, dtype=torch.int32)], ids=["int", "int64", "int32"]
)
def test_a_probe_with_integer_counts_of_any_kind_loads(make, ws, tmp_path):
    """save_probe writes 0-d int64 tensors; a plain integer or another integer dtype is the same count."""
    from resm.backbone.load import load_backbone
    from resm.structure.probe import load_probe

    data = torch.load(ws["probe"], weights_only=True)
    data.update(num_layers=make(2), heads=make(4))
    torch.save(data, tmp_path / "p.pt")
    model = load_backbone(ws["tiny"]).model
    load_probe(model, tmp_path / "p.pt")
    torch.testing.assert_close(model.contact_head.regression.weight.detach(), data["weight"])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)
