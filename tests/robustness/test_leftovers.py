"""What the command line alone decides is a usage error (exit code 2, one line, nothing read
or written), what a file decides is exit code 1: cases that were said with the other code, or
too late (after the input was read), and the warnings and conventions that went unsaid."""

from __future__ import annotations

import pytest

from resm.structure.model import shipped_model_path
from tests.robustness.cases import Case, check_one_line, write

KNOWN = "(codon3, kdny, kerd, nt, protein)"

CASES = [
    # resm export: --out's name and --any-name decide it, whatever the checkpoint holds
    Case("export/out-not-an-esm2-name", ["export", "{run}", "--out", "{t}/rna.pt"], 2, ["{t}/rna.pt", "--any-name"]),
    Case(
        "export/out-not-an-esm2-name-before-the-checkpoint-is-read",
        ["export", "{t}/none", "--out", "{t}/rna.pt"],
        2,
        ["{t}/rna.pt", "--any-name"],
    ),
    # an unknown scheme name: every command that takes one says it alike, the known ones listed
    *(
        Case(f"{argv[0]}/scheme-unknown", [*argv, flag, "nope"], 2, [f"argument {flag}: ", "'nope'", KNOWN])
        for argv, flag in (
            (["init-checkpoint", "--arch", "tiny", "--out", "{t}/x.pt"], "--scheme"),
            (["embed", "{tiny}", "{fa}", "{t}/e.npz"], "--scheme"),
            (["probe", "{tiny}", "{dbn}", "--out", "{t}/p.pt"], "--scheme"),
            (["fold", "{fa}", "--model", "{tiny}", "--probe", "{probe}", "-o", "{t}/o.dbn"], "--scheme"),
            (["interact", "{pairs}", "--zero-shot", "--backbone", "{tiny}", "-o", "{t}/s.tsv"], "--scheme"),
            (["schemes"], "--show"),
        )
    ),
    # resm fold -o with --split-dir: refused before the model or the input is read
    Case(
        "fold/out-and-split-dir-before-the-input-is-read",
        ["fold", "{t}/bad.fa", "-o", "{t}/o.dbn", "--split-dir", "{t}/d", "--threads", "1"],
        2,
        ["-o writes one file and --split-dir one file per record"],
        write("bad.fa", "no FASTA here\n"),
    ),
    Case(
        "fold/out-and-split-dir-before-the-model-is-read",
        ["fold", "{fa}", "--model", "{text}", "-o", "{t}/o.dbn", "--split-dir", "{t}/d", "--threads", "1"],
        2,
        ["-o writes one file and --split-dir one file per record"],
    ),
]


# what the model file decides is exit code 1, the line naming the option and the file: a pair-head
# model (the shipped one) adds --non-canonical pairs dbn cannot hold and has no --threshold, where a
# 2-D head or a probe takes both (test_a_probe_takes_what_a_pair_head_model_refuses)
SHIPPED = str(shipped_model_path())
FOLD = ["fold", "{fa}", "-o", "{t}/o.dbn", "--threads", "1"]
FILE_CASES = [
    Case("fold/non-canonical-into-dbn", [*FOLD, "--non-canonical"], 1, ["--format dbn", "--non-canonical", SHIPPED]),
    Case("fold/threshold-of-a-pair-head-model", [*FOLD, "--threshold", "0.5"], 1, ["--threshold", SHIPPED]),
]


@pytest.mark.parametrize("case", FILE_CASES, ids=[c.id for c in FILE_CASES])
def test_what_the_model_file_refuses_names_the_option_and_the_file(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


def test_a_probe_takes_what_a_pair_head_model_refuses(ws, tmp_path):
    """The same options with a probe for the model: folded (so the command line alone does not
    decide them, and their exit code is 1, not 2)."""
    from resm.cli import main

    probe = ["--model", str(ws["tiny"]), "--probe", str(ws["probe"]), "--threads", "1"]
    assert main(["fold", str(ws["fa"]), *probe, "--non-canonical", "-o", str(tmp_path / "n.dbn")]) == 0
    assert main(["fold", str(ws["fa"]), *probe, "--threshold", "0.5", "-o", str(tmp_path / "t.dbn")]) == 0
    assert (tmp_path / "n.dbn").read_text().count(">") == (tmp_path / "t.dbn").read_text().count(">") == 2


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_command_line_alone_is_a_usage_error(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


@pytest.mark.parametrize("val", ["same", "copy"])
def test_probe_warns_when_its_val_is_the_training_data(val, ws, tmp_path, capfd):
    """``resm probe TRAIN --val TRAIN`` (or a copy of it) chose the threshold on the training
    structures and reported their F1 as a validation figure in silence; finetune warns of its
    data.val alike (:func:`resm.records.validation_is_training`): the run goes on, one line says so."""
    import shutil
    from dataclasses import replace

    from resm.cli import main
    from resm.structure.io import write_structures
    from tests.robustness.conftest import hairpins

    path = ws["dbn"] if val == "same" else shutil.copy(ws["dbn"], tmp_path / "val.dbn")
    argv = ["probe", str(ws["tiny"]), str(ws["dbn"]), "--max-train", "6", "--max-val", "4", "--threads", "1"]
    capfd.readouterr()
    assert main([*argv, "--val", str(path), "-o", str(tmp_path / "p.pt")]) == 0
    warned = [ln for ln in capfd.readouterr().err.splitlines() if "warning" in ln]
    assert warned == [
        f"resm: warning: --val ({path}): all 4 validation record(s) are training records, so the validation "
        "metrics and the threshold chosen on them measure training fit"
    ]
    other = tmp_path / "other.dbn"  # records the probe was not fitted on: no warning
    write_structures([replace(r, name=f"v{r.name}") for r in hairpins(4, 1)], other)
    assert main([*argv, "--val", str(other), "-o", str(tmp_path / "q.pt")]) == 0
    assert "warning" not in capfd.readouterr().err


def test_no_pair_on_either_side_scores_one_for_resm_and_every_classical_folder():
    """The empty-case convention (:mod:`resm.structure.metrics`): a record whose reference and
    prediction hold no pair scores precision, recall, F1 (strict and +-1) and MCC 1, pooled
    too, for resm's prediction and for each classical folder ``resm compare`` scores (its
    RNAfold row and every folder of :data:`resm.structure.folders.FOLDERS`), through the one
    scorer both ``resm compare`` and ``resm evaluate structure`` use. RiNALMo's and MXfold2's
    evaluations give such a record 0, so resm's means are not theirs where a set holds one
    (TS0: 1 of 1,305 records; README, Results). A pair predicted where none is scores 0."""
    import numpy as np

    import resm

    pytest.importorskip("RNA")  # ViennaRNA: RNAfold's row, and the rest of the folders' packages
    from resm.compare.backends import BackendSpec, FolderBackend, ViennaBackend
    from resm.compare.structure import _score
    from resm.structure.folders import FOLDERS
    from resm.structure.io import Structure

    seq = "A" * 30  # no base can pair
    ref = Structure("polyA", seq, np.full(len(seq), -1))
    backends = [ViennaBackend(BackendSpec(name="rnafold", kind="viennarna"))]
    backends += [FolderBackend(BackendSpec(name=n, kind="folder", folder=n)) for n in FOLDERS if FOLDERS[n].available()]
    preds = {b.name: b.load().fold(seq) for b in backends}
    preds["resm"] = resm.load_predictor(threads=1).fold_one(seq, "polyA").pairs
    for name, pred in preds.items():
        assert (np.asarray(pred) == -1).all(), name  # nothing predicted: the case pinned
        m, per = _score([pred], [ref])
        assert per == [(1.0, 1.0)], name
        ones = [
            f"{s}{t}_{a}" for s in ("precision", "recall", "f1") for t in ("", "_shift") for a in ("mean", "pooled")
        ]
        assert {k: m[k] for k in [*ones, "mcc_mean", "mcc_pooled"]} == dict.fromkeys(
            [*ones, "mcc_mean", "mcc_pooled"], 1.0
        )
    one_pair = np.full(len(seq), -1)
    one_pair[[0, 29]] = [29, 0]
    m, per = _score([one_pair], [ref])
    assert per == [(0.0, 0.0)] and m["f1_mean"] == m["precision_mean"] == m["recall_mean"] == 0.0
