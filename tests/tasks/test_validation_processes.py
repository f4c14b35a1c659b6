"""Validation over several processes gives the one-process figures: a structure run under
torchrun (two CPU processes, gloo) with an odd number of validation records, shared 3 + 2,
logs the val_f1, val_f1_shift and val_loss that one process scoring every record of the same
weights gives (the same up to the order of the sums: relative 1e-12), and its model file holds
the decoding one process chooses. The mean of the two shares' means was logged before."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from tests.conftest import resm_cli
from tests.tasks.test_structure_task import hairpins

CPU = torch.device("cpu")
HEADS = {
    "conv": {"kind": "conv", "proj_dim": 8, "channels": 8, "blocks": 1, "dilations": [1], "dropout": 0.0},
    "pairs": {"kind": "pairs", "width": 8, "pair_width": 8, "blocks": 1, "dilations": [1], "rounds": 1},
}


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    from resm.cli import main

    d = tmp_path_factory.mktemp("bb")
    assert main(["init-checkpoint", "--arch", "tiny", "--out", str(d / "tiny.pt"), "--seed", "1"]) == 0
    return str(d / "tiny.pt")


def _validation(path) -> str:
    """Four hairpins, which the briefly trained heads miss (F1 0), and a record too short for
    any pair, which they score 1 on: the records' F1 differ, so the shares' means differ."""
    hairpins(path, 4, 1)
    with open(path, "a") as fh:
        fh.write(">short\nGAAA\n....\n")
    return str(path)


def _config(tmp_path, backbone: str, kind: str) -> dict:
    data = {"max_length": 60, "tokens_per_batch": 62, "seed": 0}  # one record (30-50 nt) a batch
    if kind == "pairs":
        data.update(priors=[{"kind": "vienna"}], workers=1)
    else:
        data.update(use_bpp=False)
    return {
        "task": "structure",
        "model": {"init": backbone, "mode": "frozen"},
        "head": HEADS[kind],
        "data": {"train": hairpins(tmp_path / "tr.dbn", 8, 0), "val": _validation(tmp_path / "va.dbn"), **data},
        "loss": {"pos_weight": 30.0},
        "optim": {"lr": 3e-3, "warmup_steps": 1},
        "train": {
            "out_dir": str(tmp_path / "run"),
            "max_steps": 3,
            "log_every": 1,
            "val_every": 3,
            "ckpt_every": 3,
            "progress": False,
            "device": "cpu",
        },
    }


@pytest.mark.parametrize("kind", ["conv", "pairs"])
def test_two_processes_validate_as_one(tmp_path, backbone, kind):
    from resm.structure.model import MODEL_FILE, load_structure_model
    from resm.tasks.structure_task import StructureTask

    cfg = _config(tmp_path, backbone, kind)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    resm_cli("finetune", "--config", path, procs=2)
    run = tmp_path / "run"
    logged = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    two = [x for x in logged if x["split"] == "validation"][-1]

    # one process, every record, the weights of the run's last validation (its checkpoint's)
    task = StructureTask(cfg, train_priors=False)
    state = torch.load(run / "checkpoints/step_00000003/engine.pt", weights_only=True)["model"]
    task.model.load_state_dict(state)
    net = task.net(task.model.eval())
    with torch.no_grad():
        one = task.kind.validate(net, CPU)
        shares = [task.kind.validate(net, CPU, rank, 2) for rank in (0, 1)]  # no group: each share alone
    assert two["n_val"] == one["n_val"] == 5 and [s["n_val"] for s in shares] == [3, 2]
    for key in ("val_f1", "val_f1_shift", "val_loss"):
        assert two[key] == pytest.approx(one[key], rel=1e-12, abs=1e-15), key
    # the records score differently, so the mean of the shares' means (logged before) is not it
    assert (shares[0]["val_f1"] + shares[1]["val_f1"]) / 2 != pytest.approx(one["val_f1"], rel=1e-6)

    # the decoding chosen at the end (on the model its file holds) is the one-process choice
    model, meta = load_structure_model(run / MODEL_FILE)
    settings = task.kind.settings()
    with torch.no_grad():
        task.kind.choose(task.net(model.eval()), CPU, settings)
    key = "threshold" if kind == "conv" else "decoding"
    assert meta[key] == settings[key]
    assert json.dumps(meta["val_metrics"], sort_keys=True) == json.dumps(settings["val_metrics"], sort_keys=True)


@pytest.mark.slow
def test_zero3_processes_with_shares_of_unequal_size_validate_in_step(tmp_path, backbone):
    """Under DeepSpeed ZeRO-3 each forward pass gathers the weights with every process (a
    persistence threshold of 0 partitions even this tiny model's), and the five validation
    records are shared 3 + 2: the process with two runs a spare pass in the third round
    (resm.train.Lockstep). Without it the run waited for ever at its first validation."""
    import subprocess

    pytest.importorskip("deepspeed")
    cfg = _config(tmp_path, backbone, "conv")
    ds = tmp_path / "zero3.json"
    ds.write_text(json.dumps({"zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0}}))
    cfg["train"].update(engine="deepspeed", deepspeed_config=str(ds))
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    try:
        resm_cli("finetune", "--config", path, procs=2, timeout=420)
    except subprocess.TimeoutExpired:
        pytest.fail("the two processes did not finish: a validation out of step waits for ever")
    logged = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [x["n_val"] for x in logged if x["split"] == "validation"] == [5]


def test_a_split_without_candidates_needs_no_spare_pass(tmp_path, backbone, monkeypatch):
    """Shared validation (world 2) where no record has a candidate pair: no process runs a
    forward pass, so none needs a spare one (looking for one first raised 'no validation record
    has a candidate pair'). Lockstep is made to think it has a partner that has no work either."""
    import resm.train
    from resm.tasks.structure_task import StructureTask

    monkeypatch.setattr(resm.train.Lockstep, "__init__", lambda self, world: setattr(self, "multi", True))
    cfg = _config(tmp_path, backbone, "pairs")
    short = tmp_path / "short.dbn"
    short.write_text(">a\nGAAA\n....\n>b\nCUUG\n....\n>c\nAAAA\n....\n")
    cfg["data"]["val"] = str(short)
    task = StructureTask(cfg, train_priors=False)
    net = task.net(task.model.eval())
    items, total, n = task.kind.predictions(net, CPU, "val", rank=1, world=2)
    assert [x[0] for x in items] == ["CUUG"] and n == 0 and total == 0.0
