"""RNAfold's spellings in `resm fold`: accepted with resm's meaning, or answered in one line
naming resm's equivalent; the structure format follows -o's extension; figures in the format
and resolution asked for."""

import pytest

from resm.cli import main as cli_main
from resm.structure.io import read_structures

SEQ = "GGGGAAACCCCAUAGCGCGAAAGCGCUUUCGAGG"


@pytest.fixture
def fa(tmp_path):
    pytest.importorskip("linearpartition")
    p = tmp_path / "in.fa"
    p.write_text(f">r1 a description\n{SEQ}\n")
    return p


def test_rnafold_spellings_fold_as_resms_own(fa, tmp_path, capsys):
    assert cli_main(["fold", str(fa), "-o", str(tmp_path / "a.dbn")]) == 0
    assert cli_main(["fold", "-i", str(fa), "-j", "1", "--MEA", "--noPS", "-o", str(tmp_path / "b.dbn")]) == 0
    assert (tmp_path / "a.dbn").read_text() == (tmp_path / "b.dbn").read_text()
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".ps", ".png")]  # --noPS: nothing drawn


def test_j_alone_is_every_core_as_in_rnafold():
    """RNAfold's -j takes its count optionally ('RNAfold -j --noPS < x.fa': every core); resm's
    -j took a number only, so '-j --noPS' was 'expected one argument'."""
    from resm.cli import build_parser
    from resm.structure.rnafold_vocabulary import resolve

    for argv, threads in ((["-j", "--noPS"], 0), (["-j3"], 3), (["-j", "2"], 2), ([], 0)):
        a = build_parser().parse_args(["fold", *argv])
        resolve(a)
        assert a.threads == threads, argv
    a = build_parser().parse_args(["fold", "-j", "--threads", "4"])  # every core, and 4: they disagree
    with pytest.raises(ValueError, match="-j 0 and --threads 4 disagree"):
        resolve(a)


def test_p_is_answered_with_resms_equivalent(fa, tmp_path, capsys):
    assert cli_main(["fold", str(fa), "-p", "-o", str(tmp_path / "x.dbn")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--bpp FILE" in err[0] and "--plot DIR" in err[0]
    assert not (tmp_path / "x.dbn").exists()
    assert cli_main(["fold", str(fa), "-i", str(fa)]) == 2
    assert "give the input once" in capsys.readouterr().err


@pytest.mark.parametrize("suffix,first", [(".ct", "34"), (".bpseq", "#Name: r1"), (".dbn", ">r1")])
def test_the_format_follows_the_extension_of_o(fa, tmp_path, suffix, first):
    out = tmp_path / f"s{suffix}"
    assert cli_main(["fold", str(fa), "-o", str(out)]) == 0
    text = out.read_text()
    assert text.split("\n")[0].strip().startswith(first), text[:80]
    assert [r.name for r in read_structures(out)] == ["r1"]
    assert cli_main(["fold", str(fa), "-o", str(tmp_path / "forced.ct"), "--format", "dbn"]) == 0  # --format wins
    assert (tmp_path / "forced.ct").read_text().startswith(">r1")


@pytest.mark.parametrize("name,fmt", [("s.ct.gz", "ct"), ("s.bpseq.gz", "bpseq"), ("s.dot", "dbn"), ("s.gz", "dbn")])
def test_a_compressed_or_dot_output_is_what_its_name_says(fa, tmp_path, name, fmt):
    """-o s.ct.gz wrote dot-bracket text, uncompressed, under that name (exit 0): the format now
    looks through .gz, which compresses the file (bpp and report too), and .dot is dbn."""
    import gzip

    from resm.structure.io import format_structures

    out = tmp_path / name
    argv = ["fold", str(fa), "-o", str(out), "--no-score"]
    if name.endswith(".gz"):
        argv += ["--bpp", str(tmp_path / "p.bpp.gz")]
    assert cli_main(argv) == 0
    (rec,) = read_structures(out, fmt)
    assert rec.name == "r1" and rec.seq == SEQ
    raw = out.read_bytes()
    text = gzip.decompress(raw).decode() if name.endswith(".gz") else raw.decode()
    assert text == format_structures([rec], fmt)
    if name.endswith(".gz"):
        assert gzip.decompress((tmp_path / "p.bpp.gz").read_bytes()).decode().startswith("# resm base-pair")
        assert raw[4:8] == b"\0\0\0\0"  # no time stamp: the same run gives the same bytes


def test_plot_format_and_dpi(fa, tmp_path):
    pytest.importorskip("matplotlib")
    assert (
        cli_main(
            ["fold", str(fa), "--plot", str(tmp_path / "p"), "--plot-format", "svg", "-o", str(tmp_path / "o.dbn")]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["r1.svg", "r1_ss.svg"]
    assert b"<svg" in (tmp_path / "p" / "r1_ss.svg").read_bytes()[:400]


def test_reference_ids_are_cut_as_the_inputs_and_its_format_can_be_named(fa, tmp_path, capsys):
    """'>r1 a description' is r1 in the input and in the reference; a reference in dot-bracket
    saved under another extension is read with --reference-format dbn."""
    ref = tmp_path / "rnafold_output.txt"
    ref.write_text(f">r1 another description\n{SEQ}\n((((...))))" + "." * 23 + "\n")
    argv = ["fold", str(fa), "--reference", str(ref), "--report", str(tmp_path / "r.tsv")]
    assert cli_main(argv) == 1  # .txt: no format to read it by
    err = capsys.readouterr().err
    assert err.startswith("resm fold: error: ") and len(err.strip().splitlines()) == 1, err
    assert "rnafold_output.txt: its extension names no structure format" in err
    assert cli_main([*argv, "--reference-format", "dbn"]) == 0
    rows = (tmp_path / "r.tsv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].split("\t")[0] == "r1"


def test_the_figure_defaults_have_one_home(fa, tmp_path, monkeypatch):
    """--plot-format's default (and --dpi's) is said once, in resm.structure.rnafold_vocabulary:
    the help, the files written and the summary line all follow it (the summary spelled 'png'
    on its own, so a changed default was drawn in one format and announced in another)."""
    pytest.importorskip("matplotlib")
    from resm.cli import build_parser
    from resm.structure import rnafold_vocabulary
    from resm.structure.pipeline import FoldOptions
    from tests.conftest import resm_main

    monkeypatch.setattr(rnafold_vocabulary, "DEFAULT_PLOT_FORMAT", "svg")
    monkeypatch.setattr(rnafold_vocabulary, "DEFAULT_DPI", 42)
    assert FoldOptions(plot=tmp_path).plot_style() == ("svg", 42)
    text = " ".join(build_parser().commands["fold"].format_help().split())
    assert "--plot figures (default: svg)" in text and "(default: 42)" in text
    r = resm_main("fold", fa, "--plot", tmp_path / "p", "-o", tmp_path / "o.dbn")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["r1.svg", "r1_ss.svg"]
    assert "2 svg figures in" in r.stdout + r.stderr
