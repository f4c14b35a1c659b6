"""Hostile inputs to ``resm fold`` and ``resm evaluate structure`` with the shipped model (no
``--model``), found by an audit of the structure commands: each is one exact line on stderr,
exit code 1 and nothing written (or, for ids with a description, the run that now works)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resm.cli import main as cli_main
from resm.structure.model import shipped_model_path
from resm.utils.paths import PACKAGE_DIR
from tests.robustness.conftest import listing, said

SEQ = "GGGAAACCCAUGC"


def run(capfd, *argv) -> tuple[int, list[str], str]:
    capfd.readouterr()
    code = cli_main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return code, said(err), out  # the progress bars' lines left out


def refused(capfd, roots, *argv) -> str:
    """Run a bad command: exit code 1, one line, no traceback, nothing written under ``roots``;
    its line."""
    before = listing(*roots)
    code, lines, _ = run(capfd, *argv)
    assert code == 1 and len(lines) == 1, lines
    assert listing(*roots) == before, "something was written or left behind"
    return lines[0]


def test_an_output_never_replaces_the_shipped_model(tmp_path, capfd):
    """`resm fold x.fa -o resm/models/structure_default.pt` used to overwrite the model it had
    just read (the default, not named by --model, was no declared input)."""
    fa = tmp_path / "a.fa"
    fa.write_text(f">a\n{SEQ}\n")
    model = shipped_model_path()
    line = refused(capfd, [tmp_path, model.parent], "fold", fa, "-o", model)
    assert line == (
        f"resm fold: error: --out {model}: is a file of the resm package ({PACKAGE_DIR}); "
        "an output may not replace an input (give another path)"
    )
    module = PACKAGE_DIR / "cli.py"  # nor any module of the package
    line = refused(capfd, [tmp_path, PACKAGE_DIR], "fold", fa, "-o", module)
    assert line.startswith(f"resm fold: error: --out {module}: is a file of the resm package")


def test_evaluate_never_replaces_its_data_set(tmp_path, capfd):
    """`resm evaluate structure --dataset vl1 --data-dir D --out D/ss/pdb/VL1.tsv` used to write
    the table over the data set it had read."""
    table = tmp_path / "ss" / "pdb" / "VL1.tsv"
    table.parent.mkdir(parents=True)
    table.write_text(f"id\tsequence\tpairs\na\t{SEQ}\t1:9 2:8 3:7\n")
    argv = ["evaluate", "structure", "--model", "default", "--dataset", "vl1", "--data-dir", tmp_path]
    line = refused(capfd, [tmp_path], *argv, "--folders", "rnafold", "--out", table)
    assert line == (
        f"resm evaluate: error: --out {table}: is data set vl1; an output may not replace an input (give another path)"
    )


def test_evaluate_names_file_and_line_of_a_letter_outside_a_z(tmp_path, capfd):
    """A non-ASCII letter in a pair table's sequence passed the reader's check and was refused
    later without the file or the line."""
    table = tmp_path / "ss" / "pdb" / "VL1.tsv"
    table.parent.mkdir(parents=True)
    table.write_text("id\tsequence\tpairs\na\tGGG\u00e9AACCCAUGC\t1:9\n", encoding="utf-8")
    argv = ["evaluate", "structure", "--model", "default", "--dataset", "vl1", "--data-dir", tmp_path]
    line = refused(capfd, [tmp_path], *argv, "--folders", "rnafold", "--out", tmp_path / "t.md")
    assert line == (
        "resm evaluate: error: VL1.tsv line 2: sequence of 'a': symbol 'é' (U+00E9) at position 4 is not a letter"
    )


@pytest.mark.parametrize(
    "header, shown",
    [("a\x00b", "'a\\x00b' holds the control character U+0000"), ("x\x1b[31m", "'x\\x1b[31m' holds the control")],
)
def test_fold_refuses_an_id_with_a_control_character(tmp_path, capfd, header, shown):
    """A NUL or an escape sequence in an id was written into the outputs (and a plot's title)."""
    fa = tmp_path / "a.fa"
    fa.write_text(f">ok\n{SEQ}\n>{header}\n{SEQ}\n")
    line = refused(capfd, [tmp_path], "fold", fa, "-o", tmp_path / "s.dbn", "--plot", tmp_path / "plots")
    assert line.startswith(f"resm fold: error: {fa} line 3: id {shown}")


def test_a_structure_file_folds_against_itself_with_descriptions(tmp_path, capfd):
    """Ids of a dbn input were its whole header ('a desc'), and a tab did not end a FASTA id,
    while a reference's id ends at its first whitespace: the file did not match itself."""
    dbn = tmp_path / "r.dbn"
    dbn.write_text(f">a desc\n{SEQ}\n(((...)))....\n>b\tother words\n{SEQ}\n.............\n")
    report, out = tmp_path / "r.tsv", tmp_path / "s.dbn"
    code, lines, _ = run(capfd, "fold", dbn, "--reference", dbn, "--report", report, "-o", out)
    assert code == 0, lines
    rows = (tmp_path / "r.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in rows[1:]] == ["a", "b"]
    fa = tmp_path / "t.fa"
    fa.write_text(f">a\tdesc\n{SEQ}\n")
    code, lines, out = run(capfd, "fold", fa)
    assert code == 0 and out.splitlines()[0] == ">a", (lines, out)
    assert Path(tmp_path / "s.dbn").read_text().splitlines()[0] == ">a"


def _tgz(members: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


LONG_CT = ("1200 long\n" + "".join(f"{i} A {i - 1} {i + 1} 0 {i}\n" for i in range(1, 1201))).encode()


@pytest.mark.parametrize(
    "dataset, rel, data, said",
    [
        # an empty set used to end in "error: f1_mean" (a KeyError of the summary)
        ("ts0", "ss/bprna/TS0.dbn", b"", "no records"),
        ("archiveii-long", "ss/archiveII/archiveII_ct.tar.gz", _tgz({}), "no records of at least 1,000 nt"),
        # a bad letter used to name the record alone, not the file
        ("ts0", "ss/bprna/TS0.dbn", f">a\nGGG1AACCCAUGC\n{'.' * 13}\n".encode(), "record 'a': digit '1' at position 4"),
        # not an archive, or one cut off: "ReadError: truncated header (unexpected; ...)" without the file
        ("archiveii-long", "ss/archiveII/archiveII_ct.tar.gz", b"junk", "not a readable tar archive (truncated"),
        ("archiveii-long", "ss/archiveII/archiveII_ct.tar.gz", _tgz({"x.ct": LONG_CT})[:300], "not a readable tar"),
    ],
)
def test_evaluate_names_the_data_set_file_it_cannot_use(tmp_path, capfd, dataset, rel, data, said):
    path = tmp_path / rel
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    argv = ["evaluate", "structure", "--model", "default", "--dataset", dataset, "--data-dir", tmp_path]
    line = refused(capfd, [tmp_path], *argv, "--folders", "rnafold", "--out", tmp_path / "t.md")
    assert line.startswith(f"resm evaluate: error: {path}: {said}"), line


def _fails_on(bad_seq: str, error: BaseException):
    def fold(seq: str, *rest):
        if seq == bad_seq:
            raise error
        return (np.full(len(seq), -1), 0.0) if rest == ("energy",) else np.full(len(seq), -1)

    return fold


@pytest.mark.parametrize(
    "argv, folder, label",
    [
        (["--compare", "eternafold"], "eternafold", "EternaFold"),
        (["--compare", "rnafold-mea", "--format", "bpseq", "--split-dir", "{t}/sd"], "rnafold-mea", "RNAfold-MEA"),
        (["--mfe"], None, "RNAfold"),
        (["--reference", "{t}/r.dbn", "--report", "{t}/r.tsv"], None, "RNAfold"),
    ],
)
def test_a_record_a_classical_folder_cannot_take_is_named(tmp_path, capfd, monkeypatch, argv, folder, label):
    """A folding library that fails on one record (a binding's MemoryError on a record too long
    for it) was 'MemoryError (unexpected; rerun with --debug ...)', naming no record."""
    import dataclasses

    from resm.structure import folders

    bad = "GGGGAAAACCCCAUGCAUGC"
    error = MemoryError("std::bad_alloc")
    if folder is None:
        monkeypatch.setattr(folders, "rnafold", lambda seq, *a: _fails_on(bad, error)(seq, "energy"))
    else:
        monkeypatch.setitem(
            folders.FOLDERS, folder, dataclasses.replace(folders.FOLDERS[folder], fold=_fails_on(bad, error))
        )
    fa = tmp_path / "a.fa"
    fa.write_text(f">ok\n{SEQ}\n>long one\n{bad}\n")
    (tmp_path / "r.dbn").write_text(f">ok\n{SEQ}\n{'.' * len(SEQ)}\n>long\n{bad}\n{'.' * len(bad)}\n")
    argv = [a.replace("{t}", str(tmp_path)) for a in argv]
    out = [] if "--split-dir" in argv else ["-o", tmp_path / "s.dbn"]
    line = refused(capfd, [tmp_path], "fold", fa, *out, *argv)
    assert line == f"resm fold: error: record 'long' (20 nt): {label} cannot fold it (MemoryError: std::bad_alloc)"


def test_evaluate_names_the_record_a_classical_folder_cannot_take(tmp_path, capfd, monkeypatch):
    import dataclasses

    from resm.structure import folders

    bad = "GGGGAAAACCCCAUGCAUGC"
    folder = dataclasses.replace(folders.FOLDERS["rnafold"], fold=_fails_on(bad, RuntimeError("segmentation")))
    monkeypatch.setitem(folders.FOLDERS, "rnafold", folder)
    path = tmp_path / "ss" / "bprna" / "TS0.dbn"
    path.parent.mkdir(parents=True)
    path.write_text(f">ok\n{SEQ}\n{'.' * len(SEQ)}\n>r2\n{bad}\n{'.' * len(bad)}\n")
    argv = ["evaluate", "structure", "--model", "default", "--dataset", "ts0", "--data-dir", tmp_path]
    line = refused(capfd, [tmp_path], *argv, "--folders", "rnafold", "--out", tmp_path / "t.md")
    assert line == "resm evaluate: error: record 'r2' (20 nt): RNAfold cannot fold it (RuntimeError: segmentation)"


@pytest.mark.parametrize(
    "threads, dies, said",
    [
        ("1", False, "(RuntimeError: beam overflow)"),
        ("2", False, "(RuntimeError: beam overflow)"),
        ("2", True, "(RuntimeError: its worker process stopped, exit code 139)"),  # a crash in the binding
    ],
)
def test_a_record_the_pair_prior_cannot_take_is_named(tmp_path, capfd, monkeypatch, threads, dies, said):
    """The model's thermodynamic prior (LinearPartition, in worker processes) failing on one
    record was 'RuntimeError: ...' or 'a pair-prior worker process stopped (exit code 139)',
    naming no record."""
    import os

    from resm.structure import priors

    bad = "GGGGAAAACCCCAUGCAUGC"
    real = priors._linear_partition

    def lp(seq, *a):
        if seq == bad:
            os._exit(139) if dies else None
            raise RuntimeError("beam overflow")
        return real(seq, *a)

    monkeypatch.setattr(priors, "_linear_partition", lp)
    fa = tmp_path / "a.fa"
    fa.write_text(f">ok\n{SEQ}\n>bad one\n{bad}\n")
    line = refused(capfd, [tmp_path], "fold", fa, "-o", tmp_path / "s.dbn", "--threads", threads)
    assert line == f"resm fold: error: record 'bad' (20 nt): the pair prior (eternafold) cannot fold it {said}"


@pytest.mark.parametrize(
    "data, said",
    [
        (b"\x1f\x8bjunk", ": cannot read (Compressed file ended"),
        # not gzip: read as the text it holds, as every input (tests/robustness/test_hostile_audit13.py)
        (b"junk", " line 1: expected '>name' header, got 'junk' (named .gz, but not gzip-compressed: read as text)"),
    ],
)
def test_a_damaged_gzip_reference_names_the_file(tmp_path, capfd, data, said):
    """A --reference x.dbn.gz cut off was 'EOFError: Compressed file ended ... (unexpected; ...)',
    naming no file."""
    fa, ref = tmp_path / "a.fa", tmp_path / "r.dbn.gz"
    fa.write_text(f">a\n{SEQ}\n")
    ref.write_bytes(data)
    line = refused(capfd, [tmp_path], "fold", fa, "--reference", ref, "-o", tmp_path / "s.dbn")
    assert line.startswith(f"resm fold: error: {ref}{said}"), line


def test_a_reference_without_a_structure_extension_names_the_option(tmp_path, capfd):
    """It said 'cannot infer structure format of r; pass fmt= (...)', a function's argument."""
    fa, ref = tmp_path / "a.fa", tmp_path / "r"
    fa.write_text(f">a\n{SEQ}\n")
    ref.write_text(f">a\n{SEQ}\n{'.' * len(SEQ)}\n")
    line = refused(capfd, [tmp_path], "fold", fa, "--reference", ref, "-o", tmp_path / "s.dbn")
    assert line == (
        f"resm fold: error: {ref}: its extension names no structure format (dbn, bpseq, ct, pairs); "
        "give the format with --reference-format"
    )
    code, lines, out = run(capfd, "fold", fa, "--reference", ref, "--reference-format", "dbn")
    assert code == 0 and out.splitlines()[1].startswith("a\t13\t0\t"), (lines, out)
