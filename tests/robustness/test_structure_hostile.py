"""Hostile inputs to ``resm fold`` and ``resm evaluate structure`` with the shipped model (no
``--model``), found by an audit of the structure commands: each is one exact line on stderr,
exit code 1 and nothing written (or, for ids with a description, the run that now works)."""

from __future__ import annotations

from pathlib import Path

import pytest

from resm.cli import main as cli_main
from resm.structure.model import shipped_model_path
from resm.utils.io import PACKAGE_DIR
from tests.robustness.conftest import listing

SEQ = "GGGAAACCCAUGC"


def run(capfd, *argv) -> tuple[int, list[str], str]:
    capfd.readouterr()
    code = cli_main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return code, [ln for ln in err.splitlines() if ln.strip()], out


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
        "resm evaluate: error: VL1.tsv line 2: sequence of 'a' holds a character that is not a letter (A-Z, a-z)"
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
