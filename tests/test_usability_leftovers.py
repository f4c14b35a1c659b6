"""Usability leftovers of the audits: what a user meets when an argument, a stream or a resumed
run is not quite what the happy path expects."""

from __future__ import annotations

import pytest

from tests.conftest import resm_main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The smallest ESM-2 resm writes (init-checkpoint --arch tiny), fair-esm format."""
    path = tmp_path_factory.mktemp("tiny") / "esm2_tiny.pt"
    resm_main("init-checkpoint", "--arch", "tiny", "-o", path)
    return path


def test_a_layer_that_is_no_integer_is_named_as_the_other_arguments_are(tiny):
    """`embed_sequences(..., layers=["x"])` said 'layers must be integers', without the
    'layers: ' prefix every other argument error of the API starts with."""
    import resm

    with pytest.raises(TypeError) as e:
        resm.embed_sequences(tiny, {"a": "ACGU"}, layers=["x"], device="cpu")
    assert str(e.value) == "layers: each layer must be an integer, got 'x'"


@pytest.mark.parametrize("outputs", [[], ["-o", "-"], ["--reference", "REF"], ["-o", "OUT", "--bpp", "-"]])
def test_fold_to_a_closed_standard_output_is_refused_before_any_work(tmp_path, monkeypatch, capsys, outputs):
    """`resm fold x.fa >&-` loaded the model and folded every record, and failed only when it
    wrote ('standard output: closed'); the same error now comes before the model is read."""
    import sys

    import resm.structure.pipeline as pipeline
    from resm.cli import main

    def loaded(*a, **k):
        raise AssertionError("the model was read with no standard output to write to")

    monkeypatch.setattr(pipeline, "load_predictor", loaded)
    monkeypatch.setattr(pipeline.ProbeFile, "read", loaded)
    ref, out = tmp_path / "ref.dbn", tmp_path / "out.dbn"
    ref.write_text(">x\nGGGAAACCC\n(((...)))\n")
    names = {"REF": str(ref), "OUT": str(out)}
    fasta = tmp_path / "x.fa"
    fasta.write_text(">x\nGGGAAACCC\n")
    monkeypatch.setattr(sys, "stdout", None)
    code = main(["fold", str(fasta), "--threads", "1", *[names.get(a, a) for a in outputs]])
    assert code == 1 and capsys.readouterr().err == "resm fold: error: standard output: closed\n"
    assert not out.exists()


def test_fold_to_a_file_runs_with_standard_output_closed(tmp_path, monkeypatch):
    """With -o, standard output holds nothing the user asked for: a closed one is no error."""
    import sys

    from resm.cli import main

    fasta, out = tmp_path / "x.fa", tmp_path / "out.dbn"
    fasta.write_text(">x\nGGGAAACCC\n")
    monkeypatch.setattr(sys, "stdout", None)
    assert main(["fold", str(fasta), "--threads", "1", "-o", str(out)]) == 0
    assert out.read_text().startswith(">x\nGGGAAACCC\n")


def pretrain_config(tmp_path) -> dict:
    """4 steps of a tiny model, a checkpoint every 2."""
    fa = tmp_path / "corpus.fa"
    fa.write_text("".join(f">RF{i % 3:05d}|s{i}\n{'ACGUAGGCUA'[i % 5 :] * 3}\n" for i in range(24)))
    return {
        "model": {"arch": "tiny", "init_seed": 2},
        "data": {"train": [str(fa)], "max_length": 40, "min_length": 5, "tokens_per_batch": 120, "val_fraction": 0.0},
        "optim": {"lr": 3e-3, "warmup_steps": 1},
        "train": {"out_dir": str(tmp_path / "run"), "max_steps": 4, "log_every": 1, "val_every": 0,
                  "ckpt_every": 2, "keep_last": 5, "progress": False, "device": "cpu"},
    }  # fmt: skip


def test_a_resumed_run_logs_its_elapsed_time_on_from_the_checkpoint(tmp_path):
    """`elapsed_s` in log.jsonl started again from 0 after a resume, so a plot of a resumed run's
    wall time fell back at the resume; the checkpoint now keeps it and the log goes on from it."""
    import json
    import shutil

    from resm.backbone.load import CheckpointError
    from resm.tasks.mlm import MLMTask
    from resm.train import run_task

    cfg = pretrain_config(tmp_path)
    sections = set(MLMTask.sections)
    run_task(MLMTask, cfg, sections)
    run = tmp_path / "run"
    state = run / "checkpoints/step_00000002/trainer_rank0.json"
    kept = json.loads(state.read_text())
    logged = [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines()]
    assert 0 <= kept["elapsed_s"] <= logged[2]["elapsed_s"]  # kept at step 2, before step 3's line
    shutil.rmtree(run / "checkpoints/step_00000004")
    (run / "model.pt").unlink()
    state.write_text(json.dumps({**kept, "elapsed_s": 1000.0}))  # as after 1000 s of training
    run_task(MLMTask, cfg, sections)  # resumes at step 2
    lines = [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == [1, 2, 3, 4]
    assert lines[1]["elapsed_s"] < 1000 <= lines[2]["elapsed_s"] <= lines[3]["elapsed_s"], lines
    # a kept time that is none is refused in one line naming the file
    shutil.rmtree(run / "checkpoints/step_00000004")
    state.write_text(json.dumps({**kept, "elapsed_s": -1}))
    with pytest.raises(CheckpointError, match=r"trainer_rank0.json: not a usable trainer state: 'elapsed_s' is -1"):
        run_task(MLMTask, cfg, sections)


def test_export_says_the_step_it_exported_and_the_files_it_wrote(tmp_path):
    """`resm export RUN` exported the run's newest checkpoint without saying which step it was
    (resm pretrain's and finetune's last lines name theirs); its last line now names the step,
    the checkpoint and every file written."""
    from resm.tasks.mlm import MLMTask
    from resm.train import run_task

    run_task(MLMTask, pretrain_config(tmp_path), set(MLMTask.sections))
    run, out, hf = tmp_path / "run", tmp_path / "esm2_m.pt", tmp_path / "m_hf"
    p = resm_main("export", run, "--out", out, "--hf", hf)
    reg = tmp_path / "esm2_m-contact-regression.pt"
    step = run / "checkpoints" / "step_00000004"
    assert p.stdout == f"exported step 4 ({step}); wrote {out}, {reg} and {hf}\n"
    p = resm_main("export", step.with_name("step_00000002"), "--out", tmp_path / "m.pt", "--any-name")
    assert p.stdout == f"exported step 2 ({step.with_name('step_00000002')}); wrote {tmp_path / 'm.pt'}\n"


def test_structure_training_on_own_data_is_told_every_override_it_needs(tmp_path):
    """`resm finetune --config structure data.train=[my.dbn] data.val=my_val.dbn` met its
    overrides one error at a time: 'no training sequence is in' the families file, then, with
    data.families=null, 'data.families ... and data.family_holdout go together'. The first error
    now names both overrides, and each half of the pair names the other."""
    from resm.config import ConfigError
    from resm.data.labelled_structures import StructureDataConfig
    from tests.tasks.test_structure_task import hairpins

    train, val = hairpins(tmp_path / "my.dbn", 6, 0), hairpins(tmp_path / "my_val.dbn", 3, 1)
    families = tmp_path / "families.fa"  # as the shipped config's Rfam seeds: none of my sequences
    families.write_text(">RF00001|a\nGGGGGGGGGGGGGGGGGGGGCCCCCCCCCCCCCCCCCCCC\n")
    backbone = tmp_path / "esm2_tiny.pt"
    resm_main("init-checkpoint", "--arch", "tiny", "-o", backbone)
    args = ["finetune", "--config", "structure", f"model.init={backbone}", f"data.train=[{train}]",
            f"data.val={val}", f"data.families={families}", "data.bpp_cache=null",
            f"train.out_dir={tmp_path / 'run'}"]  # fmt: skip
    p = resm_main(*args, check=False)
    assert p.returncode == 1 and not (tmp_path / "run").exists(), p.stderr
    assert p.stderr.strip().endswith(
        f"data.families: no training sequence is in {families}; to train on structures of your own, "
        "give data.families=null data.family_holdout=0 together"
    ), p.stderr
    with pytest.raises(ConfigError, match=r"^data.family_holdout 0.15 holds out families of data.families, which "
                       r"is not given: give data.family_holdout=0 too"):  # fmt: skip
        StructureDataConfig(train=train, families=None, family_holdout=0.15)
    with pytest.raises(ConfigError, match=r"data.family_holdout is 0: give data.families=null, or data.family_holdout"):
        StructureDataConfig(train=train, families=str(families), family_holdout=0.0)
    StructureDataConfig(train=train, families=None, family_holdout=0.0)  # the two together: no error
