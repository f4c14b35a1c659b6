"""Exact resumption and multi-process runs of the fine-tuning tasks (rri, mrl, structure with
adapters, joint: one shared adapter and several heads) through the one training loop.

A run that stops after a checkpoint (killed, or ended at an earlier ``max_steps``) and is started
again is the run that was never stopped: the same bundle files byte for byte, the same
optimiser state, data position and random states at the last checkpoint, and the same log
lines (times aside). On one CPU thread every step repeats exactly, so the comparisons are
exact. Dropout is on (heads and adapter) so that the random states the checkpoint keeps matter.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import killed_at_checkpoint, resm_cli, resm_main
from tests.tasks.test_rri_mrl import (
    hairpin_files,
    mrl_config,
    rri_config,
    rri_pairs,
    utr_rows,
    write_pairs,
    write_utrs,
)


@pytest.fixture(autouse=True)
def one_thread():
    """The runs of this module on one torch thread: with two, torch's CPU kernels may sum in
    another order from run to run (two uninterrupted rri runs on two threads already differ in
    their last bits), and the comparisons here are exact."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    resm_main("init-checkpoint", "--arch", "tiny", "--scheme", "kdny", "--seed", "1", "--out", d / "tiny.pt")
    return d / "tiny.pt"


# ----------------------------------------------------------------------------- configs
def structure_section(tmp_path: Path) -> dict:
    train, val = hairpin_files(tmp_path)
    return {
        "head": {"kind": "conv", "proj_dim": 8, "channels": 8, "blocks": 1, "dilations": [1], "dropout": 0.1},
        "data": {"train": train, "val": val, "max_length": 32, "tokens_per_batch": 256},
    }


TRAIN = {"max_steps": 7, "grad_accum": 2, "log_every": 2, "val_every": 3, "ckpt_every": 3, "keep_last": 5}


def task_config(kind: str, tmp_path: Path, ckpt: Path, out: str) -> dict:
    """A small config of task ``kind``: rri, mrl (adapters), mrl_frozen, structure (adapters)
    or joint (structure, rri and mrl on one shared adapter); dropout on in heads and adapter."""
    adapter = {"r": 2, "alpha": 4, "dropout": 0.1}
    r = rri_config(tmp_path, ckpt, steps=7)
    r["head"].update(dropout=0.1, channels=8, proj_dim=8, blocks=1)
    r["data"].update(batch_size=8, max_val=24)
    m = mrl_config(tmp_path, ckpt, mode="adapters", steps=7)
    m["head"].update(dropout=0.1, hidden=16)
    m["data"].update(batch_size=8, max_val=24)
    model = {"init": str(ckpt), "mode": "adapters", "adapter": adapter, "scheme": "kdny"}
    optim = {"lr": 2e-3, "warmup_steps": 2, "schedule": "cosine"}
    if kind == "rri":
        cfg = {"task": "rri", "model": model, "head": r["head"], "data": r["data"]}
    elif kind in ("mrl", "mrl_frozen"):
        model = {k: v for k, v in model.items() if kind == "mrl" or k != "adapter"}
        model["mode"] = "adapters" if kind == "mrl" else "frozen"
        cfg = {"task": "mrl", "model": model, "head": m["head"], "data": m["data"]}
    elif kind == "structure":
        cfg = {"task": "structure", "model": model, **structure_section(tmp_path)}
    else:
        cfg = {
            "task": "joint",
            "model": model,
            "tasks": {
                "structure": {**structure_section(tmp_path), "weight": 0.5},
                "rri": {"head": r["head"], "data": r["data"]},
                "mrl": {"head": m["head"], "data": m["data"], "weight": 2.0},
            },
        }
    train = {"out_dir": str(tmp_path / out), "seed": 0, "progress": False, "device": "cpu", **TRAIN}
    return {**cfg, "optim": optim, "train": train}


def run_output(cfg: dict) -> str:
    """What a run of ``cfg`` writes as its model (a bundle folder, or a structure model file)."""
    from resm.tasks import TASKS

    return str(Path(cfg["train"]["out_dir"]) / TASKS[cfg["task"]].cls.output)


# ----------------------------------------------------------------------------- comparisons
def log_lines(run: Path) -> list[dict]:
    out = []
    for line in (run / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out.append({k: v for k, v in rec.items() if k not in ("tokens_per_s", "elapsed_s")})
    return out


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_equal(a, b, where: str) -> None:
    """Nested dicts / lists of tensors and values, equal exactly."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal(x, y, f"{where}[{i}]")
    elif torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert a == b or (a != a and b != b), (where, a, b)  # NaN == NaN


def assert_same_output(a: Path, b: Path) -> None:
    """A bundle folder: the same bytes, file by file; a structure model: the same contents
    (torch.save's bytes name the file they were written to)."""
    if a.is_file():
        assert_equal(torch.load(a, weights_only=True), torch.load(b, weights_only=True), a.name)
        return
    fa, fb = files(a), files(b)
    assert sorted(fa) == sorted(fb)
    assert fa == fb, [k for k in fa if fa[k] != fb[k]]


def assert_same_checkpoint(a: Path, b: Path) -> None:
    """The engine (weights, optimiser, schedule) and the trainer state (step, tokens seen, data
    position, random states, the open log window) of two plain-torch checkpoints."""
    ea = torch.load(a / "engine.pt", weights_only=True)
    eb = torch.load(b / "engine.pt", weights_only=True)
    assert ea["model"].keys() == eb["model"].keys()
    assert all(torch.equal(ea["model"][k], eb["model"][k]) for k in ea["model"])
    assert ea["optimizer"]["state"].keys() == eb["optimizer"]["state"].keys()
    for k, sa in ea["optimizer"]["state"].items():
        assert all(torch.equal(sa[n], eb["optimizer"]["state"][k][n]) for n in sa), k
    assert ea["scheduler"] == eb["scheduler"]
    for ta, tb in zip(sorted(a.glob("trainer_rank*.json")), sorted(b.glob("trainer_rank*.json")), strict=True):
        sa, sb = json.loads(ta.read_text()), json.loads(tb.read_text())
        for key in ("step", "tokens_seen", "data", "mask_rng", "window"):
            assert sa[key] == sb[key], (ta.name, key)
        # torch's and numpy's random states; Python's is left out: no step of resm draws from
        # it, and importing scikit-learn (at a run's first validation) draws from it
        assert {k: v for k, v in sa["rng"].items() if k != "python"} == {
            k: v for k, v in sb["rng"].items() if k != "python"
        }


# ----------------------------------------------------------------------------- one process
@pytest.mark.parametrize("kind", ["rri", "mrl_frozen", "structure", "joint"])
def test_a_killed_fine_tune_resumes_as_the_run_never_stopped(tmp_path, tiny_ckpt, kind):
    """7 steps of 2 accumulated batches, a checkpoint every 3 (inside a 2-step log window),
    validation every 3; the same run again, its files past step 3's checkpoint removed as a
    kill between steps 3 and 6 leaves them, and started again."""
    from resm.tasks import run

    ref_cfg = task_config(kind, tmp_path, tiny_ckpt, "ref")
    run(ref_cfg)
    cfg = task_config(kind, tmp_path, tiny_ckpt, "cut")
    run(cfg)
    cut = tmp_path / "cut"
    shutil.rmtree(cut / "checkpoints" / "step_00000006")
    shutil.rmtree(cut / "checkpoints" / "step_00000007")
    output = Path(run_output(cfg))
    shutil.rmtree(output) if output.is_dir() else output.unlink()
    res = run(cfg)  # resumes at step 3
    assert res["step"] == 7 and res["model_file"] == str(output)
    ref = tmp_path / "ref"
    assert_same_output(Path(run_output(ref_cfg)), output)
    assert_same_checkpoint(ref / "checkpoints/step_00000007", cut / "checkpoints/step_00000007")
    assert log_lines(ref) == log_lines(cut)


@pytest.mark.parametrize("kind", ["mrl", "joint"])
def test_a_fine_tune_stopped_at_an_earlier_step_count_continues_exactly(tmp_path, tiny_ckpt, kind):
    """A run ended at max_steps 3 (its last validation and bundle written) and continued to 7
    with ``train.resume_changed``: the bundle and the train log are the uninterrupted run's
    (the schedule is the one of 7 steps from the start: constant after its warm-up)."""
    from resm.tasks import run

    ref_cfg = task_config(kind, tmp_path, tiny_ckpt, "ref")
    ref_cfg["optim"]["schedule"] = "constant"
    run(ref_cfg)
    cfg = task_config(kind, tmp_path, tiny_ckpt, "stop")
    cfg["optim"]["schedule"] = "constant"
    cfg["train"]["max_steps"] = 3
    run(cfg)
    cfg["train"].update(max_steps=7, resume_changed=True)
    run(cfg)
    ref, stop = tmp_path / "ref", tmp_path / "stop"
    assert_same_output(Path(run_output(ref_cfg)), Path(run_output(cfg)))
    assert_same_checkpoint(ref / "checkpoints/step_00000006", stop / "checkpoints/step_00000006")
    train = [r for r in log_lines(ref) if r["split"] == "train"]
    assert train == [r for r in log_lines(stop) if r["split"] == "train"]


def test_the_same_tensors_make_the_same_bundle_file(tmp_path):
    """safetensors writes its metadata map in an order that changes from one write to the next;
    a bundle file (and so the checksum its manifest records) is the same bytes for the same
    tensors and metadata, and reads back as written."""
    from safetensors import safe_open

    from resm.backbone.adapters import _write_tensors

    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3)}
    meta = {"format": "pt", "head": "rri", "task": "rri", "adapter": "shared"}
    sums = {_write_tensors(tmp_path / f"h{i}.safetensors", state, meta) for i in range(8)}
    assert len(sums) == 1
    assert len({(tmp_path / f"h{i}.safetensors").read_bytes() for i in range(8)}) == 1
    with safe_open(tmp_path / "h0.safetensors", "pt") as f:
        assert f.metadata() == meta and all(torch.equal(f.get_tensor(k), v) for k, v in state.items())


def test_a_peft_adapter_folder_is_the_same_file_in_every_process(tmp_path):
    """PEFT writes a LoRA config's target_modules from a set, in an order that changes with
    the process (string hashing): the PEFT copy of a bundle's adapter lists them sorted."""
    from resm.backbone.adapters import AdapterConfig, add_adapter
    from resm.backbone.peft_format import CONFIG, save_peft_adapter
    from tests.conftest import random_backbone

    bb = random_backbone()
    add_adapter(bb, "shared", AdapterConfig(r=2))
    save_peft_adapter(tmp_path / "peft", bb, "shared", AdapterConfig(r=2))
    targets = json.loads((tmp_path / "peft" / CONFIG).read_text())["target_modules"]
    assert len(targets) == 12 and targets == sorted(targets)


# ----------------------------------------------------------------------------- two processes
def cut_copy(run: Path, to: Path, step: int) -> None:
    """``run`` as a kill after its checkpoint of ``step`` leaves it, copied to ``to``."""
    shutil.copytree(run, to)
    for ck in (to / "checkpoints").iterdir():
        if int(ck.name.split("_")[1]) > step:
            shutil.rmtree(ck)
    shutil.rmtree(to / "model")


def safetensors_of(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    return {p.name: load_file(p) for p in sorted(folder.glob("*.safetensors"))}


def two_process_run(tmp_path: Path, cfg: dict, *overrides: str) -> None:
    path = tmp_path / f"{Path(cfg['train']['out_dir']).name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    resm_cli("finetune", "--config", path, *overrides, procs=2)


@pytest.mark.slow
def test_a_zero3_fine_tune_over_two_processes_is_the_one_process_run_and_resumes(tmp_path, tiny_ckpt):
    """MRL through a LoRA adapter, each step all 16 training UTRs in 2 accumulated batches: one
    process (plain torch) with batches of 8; two processes under DeepSpeed ZeRO-3 (gloo) with
    batches of 4, each process its half (the mean of the four quarters' mean losses is the mean
    loss). The bundles hold the same weights to 1e-6 (sums in another order), the logs the same
    losses, learning rates, tokens and validation (and its count of 24 UTRs, not 48).
    DeepSpeed updated the weights every second step only (it counts micro-batches in its own
    step call). The two-process run stopped after its step-2 checkpoint and started again
    writes the same bundle byte for byte and the same log."""
    pytest.importorskip("deepspeed")
    from resm.backbone.adapters import read_manifest
    from resm.tasks import run

    def config(out: str, procs: int) -> dict:
        cfg = task_config("mrl", tmp_path, tiny_ckpt, out)
        cfg["model"]["adapter"]["dropout"] = 0.0
        cfg["head"]["dropout"] = 0.0
        cfg["data"].update(max_train=16, batch_size=8 // procs)
        cfg["train"].update(max_steps=4, grad_accum=2, log_every=1, val_every=2, ckpt_every=2)
        if procs > 1:
            cfg["train"].update(engine="deepspeed", deepspeed_config="zero3")
        return cfg

    run(config("one", 1))
    two_process_run(tmp_path, config("z3", 2))
    one, z3 = tmp_path / "one", tmp_path / "z3"
    a, b = safetensors_of(one / "model"), safetensors_of(z3 / "model")
    assert sorted(a) == sorted(b) == ["adapter-shared.safetensors", "head-mrl.safetensors"]
    for name in a:
        assert a[name].keys() == b[name].keys()
        for k in a[name]:
            torch.testing.assert_close(b[name][k], a[name][k], atol=1e-6, rtol=0, msg=f"{name} {k}")
    ma, mb = read_manifest(one / "model"), read_manifest(z3 / "model")
    assert ma["backbone"] == mb["backbone"] and ma["adapters"]["shared"]["config"] == mb["adapters"]["shared"]["config"]
    va, vb = ma["heads"]["mrl"]["extra"]["val_metrics"], mb["heads"]["mrl"]["extra"]["val_metrics"]
    assert va["n_val"] == vb["n_val"] == 24 and va.keys() == vb.keys()
    assert vb == pytest.approx(va, rel=1e-5, abs=1e-6)
    la, lb = log_lines(one), log_lines(z3)
    assert [(r["split"], r["step"]) for r in la] == [(r["split"], r["step"]) for r in lb]
    for ra, rb in zip(la, lb):
        ra, rb = ({k: v for k, v in r.items() if k != "split"} for r in (ra, rb))
        assert ra.keys() == rb.keys() and rb == pytest.approx(ra, rel=1e-5, abs=1e-6), (ra, rb)
    assert [r["n_val"] for r in lb if r["split"] == "validation"] == [24, 24]

    cut_copy(z3, tmp_path / "z3_cut", 2)
    two_process_run(tmp_path, config("z3_cut", 2))  # resumes at step 2
    assert_same_output(z3 / "model", tmp_path / "z3_cut" / "model")
    assert log_lines(z3) == log_lines(tmp_path / "z3_cut")


@pytest.mark.slow
def test_a_joint_deepspeed_run_over_two_processes_serves_predict_and_interact_and_resumes(tmp_path, tiny_ckpt):
    """The joint task (structure, rri and mrl heads on one shared adapter) under DeepSpeed
    ZeRO-3 over two processes: each step trains one head on both processes; its bundle serves
    ``resm interact``, ``resm predict --task mrl`` and ``resm fold``. Stopped after its step-3
    checkpoint and started again, it writes the same bundle byte for byte and the same log."""
    pytest.importorskip("deepspeed")
    cfg = task_config("joint", tmp_path, tiny_ckpt, "joint")
    cfg["train"].update(max_steps=6, engine="deepspeed", deepspeed_config="zero3")
    two_process_run(tmp_path, cfg)
    run = tmp_path / "joint"
    log = log_lines(run)
    assert [r["step"] for r in log if r["split"] == "train"] == [2, 4, 6]
    assert {"loss_rri", "loss_mrl", "loss_structure"} <= set(log[0])
    val = [r for r in log if r["split"] == "validation"]
    assert [r["step"] for r in val] == [3, 6] and all(r["rri_n_val"] == 24 and r["mrl_n_val"] == 24 for r in val)

    bundle = run / "model"
    pairs = write_pairs(tmp_path / "pairs.tsv", rri_pairs(6, 4))
    p = resm_main("interact", pairs, "--model", bundle, "-o", tmp_path / "scores.tsv")
    scores = [float(r.split("\t")[3]) for r in (tmp_path / "scores.tsv").read_text().splitlines()[1:]]
    assert len(scores) == 6 and all(0 <= s <= 1 for s in scores) and "auroc" in p.stdout
    utrs = write_utrs(tmp_path / "utrs_test.csv", utr_rows(5, 7))
    resm_main("predict", "--task", "mrl", utrs, "--model", bundle, "-o", tmp_path / "mrl.tsv")
    mrl = [float(r.split("\t")[1]) for r in (tmp_path / "mrl.tsv").read_text().splitlines()[1:]]
    assert len(mrl) == 5 and np.isfinite(mrl).all()
    fa = tmp_path / "fold.fa"
    fa.write_text(">h\nGGGGAAAACCCCUUUUGGGG\n")
    resm_main("fold", fa, "--model", bundle, "-o", tmp_path / "fold.dbn")
    assert (tmp_path / "fold.dbn").read_text().splitlines()[1] == "GGGGAAAACCCCUUUUGGGG"

    cut_copy(run, tmp_path / "joint_cut", 3)
    two_process_run(tmp_path, {**cfg, "train": {**cfg["train"], "out_dir": str(tmp_path / "joint_cut")}})
    assert_same_output(bundle, tmp_path / "joint_cut" / "model")
    assert log_lines(run) == log_lines(tmp_path / "joint_cut")


@pytest.mark.slow
def test_a_joint_fine_tune_killed_by_sigkill_resumes_exactly(tmp_path, tiny_ckpt):
    """``resm finetune`` of a joint run killed (SIGKILL) once its step-10 checkpoint exists,
    wherever it then was (mid-step, mid-write), and the same command run again: the bundle,
    the last checkpoint and the log are those of the run that was not killed."""

    def config(out: str) -> Path:
        cfg = task_config("joint", tmp_path, tiny_ckpt, out)
        cfg["train"].update(max_steps=30, ckpt_every=5, val_every=10)
        path = tmp_path / f"{out}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))  # the task order kept
        return path

    # every run a fresh process of the same environment (one thread), as the killed one is: in
    # the test process, kernels set up by earlier tests may sum in another order
    resm_cli("finetune", "--config", config("ref"))
    path = config("kill")
    out = tmp_path / "kill"
    killed_at_checkpoint(["finetune", "--config", path], out, 10)
    assert not (out / "model").exists(), "the run was not interrupted"
    resm_cli("finetune", "--config", path)  # the same command: resumes from the newest checkpoint
    ref = tmp_path / "ref"
    assert_same_output(ref / "model", out / "model")
    assert_same_checkpoint(ref / "checkpoints/step_00000030", out / "checkpoints/step_00000030")
    assert log_lines(ref) == log_lines(out)
