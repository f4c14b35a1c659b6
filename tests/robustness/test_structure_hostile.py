"""Hostile inputs to ``resm fold`` and ``resm evaluate structure`` with the shipped model (no
``--model``), found by an audit of the structure commands: each is one exact line on stderr,
exit code 1 and nothing written (or, for ids with a description, the run that now works)."""

from __future__ import annotations

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
