"""Hostile training inputs: a corpus of all-N records, a validation pass with nothing to mask, a
UTR table whose labels overflow the training maths. Each is a one-line error naming the file
(and line), or a run that says what it dropped and logs no made-up number."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from resm.cli import main as cli_main
from tests.robustness.conftest import said


def _config(src: Path, tmp_path: Path, data: dict, **train) -> Path:
    cfg = yaml.safe_load(src.read_text())
    cfg["data"].update(data)
    cfg["train"].update(out_dir=str(tmp_path / "run"), ckpt_every=0, **train)
    cfg["optim"]["warmup_steps"] = 0
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_an_all_n_corpus_is_refused_naming_what_it_dropped(ws, tmp_path, capfd):
    corpus = tmp_path / "n.fa"
    corpus.write_text("".join(f">RF{i % 4:05d}|s{i}\n{'N' * (20 + i)}\n" for i in range(12)))
    cfg = _config(ws["pretrain_cfg"], tmp_path, {"train": [str(corpus)]}, max_steps=1)
    capfd.readouterr()
    assert cli_main(["pretrain", "--config", str(cfg)]) == 1
    lines = said(capfd.readouterr().err)
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"resm pretrain: error: data.train ({corpus}): rank 0/1: epoch 0 has no training records"
    )
    assert "no letter 12" in lines[0]
    assert not (tmp_path / "run").exists()


def test_all_n_records_leave_a_mixed_corpus_and_the_validation_loss_is_never_zero(ws, tmp_path, capfd):
    good = (Path(ws["pretrain_cfg"]).parent / "corpus.fa").read_text()
    corpus = tmp_path / "mixed.fa"
    corpus.write_text(good + "".join(f">RF{i % 12:05d}|n{i}\n{'N' * 30}{'A' * i}\n" for i in range(3)))
    from resm.data.pretrain import PretrainStream
    from resm.tasks.mlm import MLMTask

    cfg = yaml.safe_load(
        _config(ws["pretrain_cfg"], tmp_path, {"train": [str(corpus)], "val_fraction": 0.0}).read_text()
    )
    task = MLMTask(cfg)
    stream = PretrainStream(task.data_cfg)
    ids = [rid for batch in stream.iter_epoch(0, with_ids=True) for rid, _ in batch]
    assert "RF00000|n0" not in ids and "RF00001|n1" in ids  # 30 N and one A: still a letter to mask
    assert stream.stats["skipped"]["no_letter"] == 1
    # a validation pass that masks nothing has no loss (NaN), not a perfect one (0.0)
    task._val = []
    task.baseline = float("nan")
    v = task.validate(task.model, "cpu")
    assert v["n_masked"] == 0 and v["val_loss"] != v["val_loss"]
    # and the run with an empty split logs no 0.0 loss
    cfg = _config(ws["pretrain_cfg"], tmp_path, {"val_fraction": 0.0}, max_steps=1, val_every=1)
    assert cli_main(["pretrain", "--config", str(cfg)]) == 0
    rows = [json.loads(ln) for ln in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["split"] == "validation"]
    assert val and all(r["val_loss"] != r["val_loss"] for r in val)


def test_a_utr_label_too_large_for_training_is_refused_naming_its_line(ws, tmp_path, capfd):
    src = yaml.safe_load(Path(ws["mrl_cfg"]).read_text())["data"]["train"]
    rows = Path(src).read_text().splitlines()
    cells = rows[4].split(",")
    rows[4] = ",".join(cells[:-1] + ["1e300"])
    table = tmp_path / "big.csv"
    table.write_text("\n".join(rows) + "\n")
    cfg = _config(ws["mrl_cfg"], tmp_path, {"train": str(table)}, max_steps=1)
    capfd.readouterr()
    assert cli_main(["finetune", "--config", str(cfg)]) == 1
    lines = said(capfd.readouterr().err)
    assert lines == [f"resm finetune: error: {table} line 5: rl '1e300' is out of range (|value| must be <= 1e+30)"]
    assert not (tmp_path / "run").exists()


def test_utr_labels_scaled_near_the_bound_train_as_the_unscaled_ones(ws, tmp_path, capfd):
    src = yaml.safe_load(Path(ws["mrl_cfg"]).read_text())["data"]["train"]
    rows = Path(src).read_text().splitlines()
    scaled = [rows[0]] + [",".join(r.split(",")[:-1] + [repr(float(r.split(",")[-1]) * 1e29)]) for r in rows[1:]]
    results = {}
    for name, lines in (("plain", rows), ("scaled", scaled)):
        d = tmp_path / name
        d.mkdir()
        (d / "t.csv").write_text("\n".join(lines) + "\n")
        cfg = _config(ws["mrl_cfg"], d, {"train": str(d / "t.csv")}, max_steps=2, val_every=2)
        capfd.readouterr()
        assert cli_main(["finetune", "--config", str(cfg)]) == 0
        results[name] = capfd.readouterr().out.strip().splitlines()[-1]
    # the same run: the labels are normalised by their mean and spread, predictions stay finite
    assert results["plain"].replace(str(tmp_path / "plain"), "X") == results["scaled"].replace(
        str(tmp_path / "scaled"), "X"
    )
    assert "nan" not in results["scaled"]


def test_resuming_on_a_changed_corpus_is_refused_and_writes_nothing(ws, tmp_path, capfd):
    import shutil

    corpus = tmp_path / "c.fa"
    shutil.copy(Path(ws["pretrain_cfg"]).parent / "corpus.fa", corpus)
    cfg = _config(ws["pretrain_cfg"], tmp_path, {"train": [str(corpus)]}, max_steps=2, val_every=0)
    assert cli_main(["pretrain", "--config", str(cfg), "train.ckpt_every=1", "train.keep_last=2"]) == 0
    run = tmp_path / "run"
    shutil.rmtree(run / "checkpoints" / "step_00000002")
    (run / "model.pt").unlink()  # as if stopped after step 1
    listing = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    corpus.write_text(corpus.read_text().replace("ACG", "ACC", 1))
    capfd.readouterr()
    assert cli_main(["pretrain", "--config", str(cfg), "train.ckpt_every=1", "train.keep_last=2"]) == 1
    assert said(capfd.readouterr().err) == [
        f"resm pretrain: error: cannot resume: data.train[0] {corpus} changed since the checkpoint was written "
        "(its bytes differ); the batches would differ (use a new train.out_dir)"
    ]
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == listing


def _stopped_after_step_1(cfg: Path, run: Path, output: str) -> dict:
    assert cli_main(["finetune", "--config", str(cfg), "train.ckpt_every=1", "train.keep_last=2"]) == 0
    import shutil

    shutil.rmtree(run / "checkpoints" / "step_00000002")
    (shutil.rmtree if (run / output).is_dir() else Path.unlink)(run / output)
    return {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_resuming_a_finetune_on_changed_records_is_refused(ws, tmp_path, capfd):
    src = yaml.safe_load(Path(ws["mrl_cfg"]).read_text())["data"]["train"]
    table = tmp_path / "t.csv"
    table.write_text(Path(src).read_text())
    cfg = _config(ws["mrl_cfg"], tmp_path, {"train": str(table)}, max_steps=2, val_every=0)
    listing = _stopped_after_step_1(cfg, tmp_path / "run", "model")
    rows = table.read_text().splitlines()
    table.write_text("\n".join([rows[0]] + [r + "1" for r in rows[1:]]) + "\n")  # every label changes
    capfd.readouterr()
    assert cli_main(["finetune", "--config", str(cfg), "train.ckpt_every=1", "train.keep_last=2"]) == 1
    assert said(capfd.readouterr().err) == [
        "resm finetune: error: cannot resume: the training records (data.train) differ from those the checkpoint "
        "was written with; the batches would differ (use a new train.out_dir)"
    ]
    assert {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()} == listing
    # the same records, moved down a line by a blank one: the resume goes on
    table.write_text("\n".join([rows[0], ""] + rows[1:]) + "\n")
    assert cli_main(["finetune", "--config", str(cfg), "train.ckpt_every=1", "train.keep_last=2"]) == 0


def test_resuming_a_structure_finetune_on_changed_structures_is_refused(ws, tmp_path, capfd):
    dbn = tmp_path / "hp.dbn"
    dbn.write_text(Path(ws["dbn"]).read_text())
    cfg = _config(ws["structure_cfg"], tmp_path, {"train": str(dbn)}, max_steps=2, val_every=0)
    listing = _stopped_after_step_1(cfg, tmp_path / "run", "structure_model.pt")
    dbn.write_text(dbn.read_text().replace("((((((", "......", 1).replace("))))))", "......", 1))
    capfd.readouterr()
    assert cli_main(["finetune", "--config", str(cfg), "train.ckpt_every=1", "train.keep_last=2"]) == 1
    assert said(capfd.readouterr().err)[-1].startswith("resm finetune: error: cannot resume: the training records")
    assert {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()} == listing


def test_a_structure_training_set_without_pairs_or_with_unmappable_records_is_said(ws, tmp_path, capfd):
    import numpy as np

    from resm.structure.io import Structure, write_structures

    unpaired = tmp_path / "u.dbn"
    write_structures([Structure(f"u{i}", "ACGUACGUACGUAAAACC", np.full(18, -1)) for i in range(6)], unpaired)
    cfg = _config(ws["structure_cfg"], tmp_path, {"train": str(unpaired)}, max_steps=1, val_every=0)
    capfd.readouterr()
    assert cli_main(["finetune", "--config", str(cfg)]) == 0
    assert said(capfd.readouterr().err) == [
        f"resm: warning: data.train ({unpaired}): none of its 6 training record(s) has a base pair, "
        "so the head learns only 'unpaired'"
    ]
    mixed = tmp_path / "m.dbn"
    mixed.write_text(Path(ws["dbn"]).read_text() + ">bad\nACGU1ACGUAAAACC\n...............\n")
    (tmp_path / "m").mkdir()
    cfg = _config(
        ws["structure_cfg"], tmp_path / "m", {"train": str(mixed), "val": str(unpaired)}, max_steps=1, val_every=0
    )
    assert cli_main(["finetune", "--config", str(cfg)]) == 0
    assert said(capfd.readouterr().err) == [
        f"resm: warning: data.train ({mixed}): 1 record(s) skipped (no sequence, or a symbol scheme 'kdny' "
        "does not map); training on the other 12"
    ]


def test_a_pretraining_epoch_that_dropped_records_says_so(ws, tmp_path, capfd):
    corpus = tmp_path / "dup.fa"
    corpus.write_text("".join(f">RF{i % 12:05d}|s{i}\n{'ACGU' * 10}\n" for i in range(30)) + ">RF00001|short\nAC\n")
    cfg = _config(ws["pretrain_cfg"], tmp_path, {"train": [str(corpus)], "val_fraction": 0.0}, max_steps=2)
    capfd.readouterr()
    assert cli_main(["pretrain", "--config", str(cfg)]) == 0
    lines = said(capfd.readouterr().err)
    assert (
        f"resm: data.train ({corpus}): epoch 0 dropped records: read 31, skipped (bad symbol 0, too short 1, "
        "too long 0, no letter 0, duplicate 29), other split 0, kept 1, this rank 1 records / 40 tokens (0 cropped)"
    ) in lines
    # a clean corpus says nothing of the kind
    (tmp_path / "c").mkdir()
    cfg = _config(ws["pretrain_cfg"], tmp_path / "c", {"val_fraction": 0.0}, max_steps=40)
    assert cli_main(["pretrain", "--config", str(cfg)]) == 0
    assert not [ln for ln in said(capfd.readouterr().err) if "dropped" in ln]


def test_a_structure_validation_set_that_is_the_training_set_is_said(ws, tmp_path, capfd):
    cfg = _config(ws["structure_cfg"], tmp_path, {"val": str(ws["dbn"])}, max_steps=1, val_every=0)
    capfd.readouterr()
    assert cli_main(["finetune", "--config", str(cfg)]) == 0
    assert said(capfd.readouterr().err) == [
        f"resm: warning: data.val ({ws['dbn']}): all 12 validation record(s) are training records, so the "
        "validation metrics and the decoding chosen on them measure training fit"
    ]
    other = tmp_path / "other.dbn"  # half of them held out: nothing said
    from resm.structure.io import read_structures, write_structures

    recs = list(read_structures(ws["dbn"]))
    write_structures(recs[:6], tmp_path / "train.dbn")
    write_structures(recs[6:], other)
    (tmp_path / "b").mkdir()
    cfg = _config(
        ws["structure_cfg"], tmp_path / "b", {"train": str(tmp_path / "train.dbn"), "val": str(other)}, max_steps=1
    )
    assert cli_main(["finetune", "--config", str(cfg)]) == 0
    assert said(capfd.readouterr().err) == []
