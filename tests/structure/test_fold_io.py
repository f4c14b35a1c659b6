"""``resm fold`` the way RNAfold users work: input from a pipe, bare sequences or structure
files; one output file per format (multi-record ct), --split-dir, --bpp, --noLP, --nested and the
--reference report with plots. Library calls where they suffice, real subprocesses for the
pipe and the one-line errors."""

import io

import numpy as np
import pytest

from resm.backbone.load import init_model, save_fair_esm
from resm.fasta import FastaError
from resm.mapping import get_scheme
from resm.structure.decode import decode
from resm.structure.inputs import read_sequences, sniff_format
from resm.structure.io import FoldError, StructureError, iter_dbn, pair_list, parse_dotbracket, read_structures
from resm.structure.pipeline import FoldOptions, fold_fasta
from resm.structure.predictor import MapPredictor
from resm.structure.probe import ProbeOptions, fit_probe_file
from resm.structure.report import COLUMNS
from tests.conftest import resm_cli

FASTA = (
    ">s1 first\nGGGGAAACCCCAUAGCGCGAAAGCGCU\n>s/2\nacggcauucgugccgtaaagggcuaaagccca\n"
    ">s3\nGCGCUUCGGCGCAAAGGAUCCGAAAGGAUCC\n"
)
REF = """>s1
GGGGAAACCCCAUAGCGCGAAAGCGCU
((((...))))...((((...))))..
>s/2
ACGGCAUUCGUGCCGUAAAGGGCUAAAGCCCA
.(((((....))))).....((((...)))).
>s3
GCGCUUCGGCGCAAAGGAUCCGAAAGGAUCC
((((....))))...((((.......)))).
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random backbone with a probe fitted in-process; folding at threshold 0 gives many
    pairs (lone ones and pseudoknots included)."""
    d = tmp_path_factory.mktemp("foldio")
    save_fair_esm(init_model("tiny", seed=0), d / "tiny.pt")
    (d / "ref.dbn").write_text(REF)
    (d / "in.fa").write_text(FASTA)
    fit_probe_file(d / "tiny.pt", d / "ref.dbn", d / "probe.pt", ProbeOptions(max_train=3))
    return d


def fold(d, inp, **kw):
    kw.setdefault("threshold", 0.0)
    return fold_fasta(inp, FoldOptions(model=d / "tiny.pt", zero_shot=d / "probe.pt", progress=False, **kw))


# --------------------------------------------------------------------------- inputs
def test_read_sequences_of_every_input_kind(tmp_path):
    (tmp_path / "a.fa").write_text(FASTA)
    assert [r[0] for r in read_sequences(tmp_path / "a.fa")] == ["s1", "s/2", "s3"]
    assert read_sequences("-", stdin=io.StringIO(FASTA)) == read_sequences(tmp_path / "a.fa")
    (tmp_path / "plain.txt").write_text("GGGGAAACCCC\n\nacguacgu\n")
    assert read_sequences(tmp_path / "plain.txt") == [("seq_1", "GGGGAAACCCC"), ("seq_2", "acguacgu")]
    rnafold_out = ">x\nGGGGAAACCCC\n((((...)))) ( -1.20)\n"  # RNAfold's own output reads as input
    assert sniff_format(rnafold_out.splitlines()) == "dbn"
    assert read_sequences("-", stdin=io.StringIO(rnafold_out)) == [("x", "GGGGAAACCCC")]
    (tmp_path / "r.dbn").write_text(REF)
    assert [r[0] for r in read_sequences(tmp_path / "r.dbn")] == ["s1", "s/2", "s3"]
    ct = (
        "5 one\n1 G 0 2 5 1\n2 A 1 3 0 2\n3 A 2 4 0 3\n4 A 3 5 0 4\n5 C 4 0 1 5\n"
        "4 two\n1 G 0 2 0 1\n2 G 1 3 0 2\n3 C 2 4 0 3\n4 C 3 0 0 4\n"
    )
    (tmp_path / "m.ct").write_text(ct)
    assert read_sequences(tmp_path / "m.ct") == [("one", "GAAAC"), ("two", "GGCC")]
    assert read_sequences("-", stdin=io.StringIO(ct)) == [("one", "GAAAC"), ("two", "GGCC")]
    (tmp_path / "b.bpseq").write_text("1 G 4\n2 A 0\n3 A 0\n4 C 1\n")
    assert read_sequences(tmp_path / "b.bpseq") == [("b", "GAAC")]


@pytest.mark.parametrize(
    "text,msg",
    [
        ("", "<stdin>: no records"),
        (">a\nACGU\n>a\nGG\n", "<stdin> line 3: duplicate id 'a'"),
        ("ACGU\n>x\nACGU\n", "<stdin> line 1: sequence data before the first '>' header"),
        ("ACGU GG\n", "<stdin> line 1: a bare sequence holds whitespace"),
        (">a\nGGGAAACCC\n(((...))\n", "<stdin> line 3: structure length 8 != sequence length 9"),
        (">ok\nACGU\n>a\x00b\nACGU\n", "<stdin> line 3: id 'a\\x00b' holds the control character U+0000"),
        (">a\x1b[31m x\nACGU\n", "<stdin> line 1: id 'a\\x1b[31m' holds the control character U+001B"),
        (">a\ufffdb\nACGU\n", "<stdin> line 1: id 'a\ufffdb' holds bytes that are not UTF-8 text"),
        (">a\x07\nACGU\n((..))\n", "<stdin> line 1: name 'a\\x07' holds the control character U+0007"),
        ("4 t\x07\n1 G 0 2 4 1\n2 A 1 3 0 2\n3 A 2 4 0 3\n4 C 3 0 1 4\n", "<stdin> line 1: name 't\\x07' holds"),
        ("#Name: b\x07\n1 G 4\n2 A 0\n3 A 0\n4 C 1\n", "<stdin> line 1: name 'b\\x07' holds the control"),
    ],
)
def test_bad_inputs_name_the_line(text, msg):
    with pytest.raises((FastaError, ValueError)) as e:
        read_sequences("-", stdin=io.StringIO(text))
    assert str(e.value).startswith(msg) and "\n" not in str(e.value), str(e.value)


def test_damaged_gzip_on_standard_input_is_one_line():
    import gzip

    for data in (b"\x1f\x8bjunk", gzip.compress(b">a\nGGGAAACCC\n" * 100)[:30]):
        with pytest.raises(FastaError, match=r"^<stdin>: cannot read the gzip data \(Compressed file ended"):
            read_sequences("-", stdin=io.TextIOWrapper(io.BytesIO(data)))


def test_pair_lists_refuse_a_name_with_a_control_character(tmp_path):
    from resm.structure.io import StructureError
    from resm.structure.pairsets import parse_pair_list

    (tmp_path / "r.pairs").write_text("#Name: a\x1b\n#Length: 4\n1 4\n")
    with pytest.raises(StructureError, match=r"r.pairs line 1: name 'a\\x1b' holds the control character U\+001B$"):
        list(read_structures(tmp_path / "r.pairs"))
    with pytest.raises(StructureError, match=r"^p line 1: name 'a\\x1b' holds the control character U\+001B$"):
        parse_pair_list("#Name: a\x1b\n#Length: 4\n1 4\n2 4\n", source="p")


def test_ids_end_at_the_first_whitespace_in_every_input_format(tmp_path):
    """A tab parts the id from a description as a space does, in FASTA and structure files
    alike, so a file folded and given as its own --reference matches record for record."""
    assert read_sequences("-", stdin=io.StringIO(">a\tdesc\nACGU\n>b c\nGG\n")) == [("a", "ACGU"), ("b", "GG")]
    (tmp_path / "r.dbn").write_text(">a desc\nGGGAAACCC\n(((...)))\n>b\tx y\nGGGAAACCC\n.........\n")
    assert [r[0] for r in read_sequences(tmp_path / "r.dbn")] == ["a", "b"]
    (tmp_path / "d.dbn").write_text(">a x\nGGGAAACCC\n(((...)))\n>a\ty\nGGGAAACCC\n.........\n")
    with pytest.raises(ValueError, match=r"d.dbn: duplicate id 'a' \(records 1 and 2\)$"):
        read_sequences(tmp_path / "d.dbn")


def test_fold_from_a_pipe_equals_fold_of_the_file(tiny):
    """The real command: `cat x.fa | resm fold -`, `resm fold < x.fa` and `resm fold x.fa`."""
    d = tiny
    args = ["--model", d / "tiny.pt", "--probe", d / "probe.pt", "--threshold", "0.1"]
    from_file = resm_cli("fold", d / "in.fa", *args).stdout
    assert [r.name for r in iter_dbn(from_file.splitlines())] == ["s1", "s/2", "s3"]
    assert resm_cli("fold", "-", *args, input=FASTA).stdout == from_file
    assert resm_cli("fold", *args, input=FASTA).stdout == from_file
    p = resm_cli("fold", "-", *args, input=">a\nGGGAAACCC\n>b\nGG9C\n", check=False)
    assert p.returncode == 1 and p.stdout == ""
    assert (
        p.stderr.strip().splitlines()[-1]
        == "resm fold: error: <stdin>: record 'b': digit '9' at position 3 is not a nucleotide"
    )


def test_structure_files_are_inputs(tiny, tmp_path):
    d = tiny
    fold(d, d / "ref.dbn", out=tmp_path / "from_dbn.dbn")
    fold(d, d / "in.fa", out=tmp_path / "from_fa.dbn")
    assert (tmp_path / "from_dbn.dbn").read_text() == (tmp_path / "from_fa.dbn").read_text()


# --------------------------------------------------------------------------- outputs
def test_one_ct_file_holds_every_record(tiny, tmp_path):
    d = tiny
    r = fold(d, d / "in.fa", fmt="ct", out=tmp_path / "all.ct")
    assert r["mode"] == "file" and sorted(p.name for p in tmp_path.iterdir()) == ["all.ct"]
    recs = list(read_structures(tmp_path / "all.ct"))
    assert [x.name for x in recs] == ["s1", "s/2", "s3"] and [len(x) for x in recs] == [27, 32, 31]
    fold(d, d / "in.fa", fmt="bpseq", split_dir=tmp_path / "per")
    assert sorted(p.name for p in (tmp_path / "per").iterdir()) == ["s1.bpseq", "s3.bpseq", "s_2.bpseq"]
    with pytest.raises(FoldError, match="bpseq holds one record per file and the input has 3: give --split-dir"):
        fold(d, d / "in.fa", fmt="bpseq", out=tmp_path / "x.bpseq")
    fold(d, d / "in.fa", fmt="pairs", split_dir=tmp_path / "per")  # the pair list: the same structures
    for rec in recs:
        got = next(read_structures(tmp_path / "per" / f"{rec.name.replace('/', '_')}.pairs"))
        assert got.name == rec.name and got.seq == rec.seq and np.array_equal(got.pairs, rec.pairs)
    with pytest.raises(FoldError, match="pairs holds one record per file and the input has 3"):
        fold(d, d / "in.fa", fmt="pairs", out=tmp_path / "x.pairs")
    with pytest.raises(FoldError, match="is a folder; -o names one file"):
        fold(d, d / "in.fa", fmt="ct", out=tmp_path / "per")
    with pytest.raises(FoldError, match="both name"):
        fold(d, d / "in.fa", out=tmp_path / "same", bpp=tmp_path / "same")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.ct", "per"]


def test_bpp_file_is_sparse_one_based_and_matches_the_map(tiny, tmp_path):
    from resm.backbone.load import load_backbone
    from resm.structure.probe import load_probe, predict_pair_probs

    d = tiny
    fold(d, d / "in.fa", out=tmp_path / "s.dbn", bpp=tmp_path / "p.bpp", bpp_min=0.05)
    text = (tmp_path / "p.bpp").read_text().splitlines()
    assert text[0].startswith("# resm base-pair probabilities") and "0.05" in text[2]
    blocks, name = {}, None
    for line in text:
        if line.startswith("#"):
            continue
        if line.startswith(">"):
            name = line[1:]
            blocks[name] = {}
        else:
            i, j, p = line.split()
            blocks[name][(int(i), int(j))] = float(p)
    assert list(blocks) == ["s1", "s/2", "s3"]
    model = load_backbone(d / "tiny.pt").model
    load_probe(model, d / "probe.pt")
    seq = "GGGGAAACCCCAUAGCGCGAAAGCGCU"
    P = predict_pair_probs(model, get_scheme("kdny"), seq)
    S = (P + P.T) / 2
    want = {(i + 1, j + 1): S[i, j] for i in range(27) for j in range(i + 1, 27) if S[i, j] > 0.05}
    assert set(blocks["s1"]) == set(want) and all(i < j for i, j in want)
    assert all(abs(blocks["s1"][k] - v) < 1e-3 * max(1, v) for k, v in want.items())


def test_nested_and_nolp_reach_decoding():
    """The options act after decoding, whatever the decoder gave (here a random map)."""
    rng = np.random.default_rng(1)
    seq = "".join(rng.choice(list("ACGU"), 80))
    P = 0.5 * rng.random((80, 80)).astype(np.float32)  # noise: lone pairs, some crossing
    planted = parse_dotbracket("((((((....[[[[[..))))))....((((....))))....]]]]]" + "." * 31)
    i = np.flatnonzero(planted >= 0)
    P[i, planted[i]] = 0.95  # stacked stems, an H-type pseudoknot among them
    pred = MapPredictor(None, get_scheme("kdny"), 0.3, "greedy", lambda s: P)
    kw = dict(noncanonical=True)
    base = pred.fold_one(seq, **kw)[0].pairs
    nested = pred.fold_one(seq, nested=True, **kw)[0].pairs
    nolp = pred.fold_one(seq, no_lp=True, **kw)[0].pairs
    both = pred.fold_one(seq, nested=True, no_lp=True, **kw)[0]
    assert set(pred.fold_one(seq, **kw)[0].dotbracket) - set("().") and set(both.dotbracket) <= set("().")
    assert len(pair_list(both.pairs)) >= 10 and len(pair_list(nolp)) < len(pair_list(base))
    for p in (nested, both.pairs):
        ij = np.asarray(pair_list(p))
        assert not ((ij[:, :1] < ij[:, 0]) & (ij[:, 0] < ij[:, 1:]) & (ij[:, 1:] < ij[:, 1])).any()
    for p in (nolp, both.pairs):
        for i, j in pair_list(p):
            assert p[i - 1] == j + 1 or p[i + 1] == j - 1
    np.testing.assert_array_equal(base, decode(P, seq, 0.3, noncanonical=True))
    # sparse probabilities work too, and the result gives them back dense
    i, j = np.triu_indices(80, 1)
    sparse = MapPredictor(None, get_scheme("kdny"), 0.3, "greedy", lambda s: (i, j, ((P + P.T) / 2)[i, j]))
    folded = sparse.fold_one(seq, **kw)
    np.testing.assert_array_equal(folded.pairs, base)
    dense = folded.dense()
    assert dense.shape == (80, 80) and np.allclose(dense, dense.T)


def test_nested_and_nolp_from_the_command_line(tiny, tmp_path):
    d = tiny
    fold(d, d / "in.fa", out=tmp_path / "plain.dbn")
    fold(d, d / "in.fa", out=tmp_path / "clean.dbn", nested=True, no_lp=True)
    plain = list(read_structures(tmp_path / "plain.dbn"))
    clean = list(read_structures(tmp_path / "clean.dbn"))
    assert any(set(r.dotbracket) - set("().") for r in plain)  # threshold 0: pseudoknots to remove
    for r in clean:
        assert set(r.dotbracket) <= set("().")
        for i, j in pair_list(r.pairs):
            assert r.pairs[i - 1] == j + 1 or r.pairs[i + 1] == j - 1


def test_reference_report_with_structures_and_plots(tiny, tmp_path, capsys):
    from resm.structure.folders import rnafold
    from resm.structure.metrics import f1_score, mcc

    pytest.importorskip("matplotlib")
    d = tiny
    r = fold(
        d,
        d / "in.fa",
        reference=d / "ref.dbn",
        out=tmp_path / "pred.dbn",
        plot=tmp_path / "plots",
        report=tmp_path / "report.tsv",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots", "pred.dbn", "report.tsv"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "s1.png",
        "s1_ss.png",
        "s3.png",
        "s3_ss.png",
        "s_2.png",
        "s_2_ss.png",
    ]
    rows = [ln.split("\t") for ln in (tmp_path / "report.tsv").read_text().splitlines()]
    assert tuple(rows[0]) == COLUMNS and [x[0] for x in rows[1:]] == ["s1", "s/2", "s3"]
    preds = {x.name: x for x in read_structures(tmp_path / "pred.dbn")}
    refs = {x.name: x for x in read_structures(d / "ref.dbn")}
    for row in rows[1:]:
        got = dict(zip(COLUMNS, row))
        pred, ref = preds[got["id"]], refs[got["id"]]
        assert int(got["length"]) == len(ref) and int(got["n_pred"]) == len(pair_list(pred.pairs))
        assert float(got["f1"]) == pytest.approx(f1_score(pred.pairs, ref.pairs), abs=1e-4)
        assert float(got["mcc"]) == pytest.approx(mcc(pred.pairs, ref.pairs), abs=1e-4)
        mfe = rnafold(ref.seq)[0]
        assert float(got["rnafold_f1"]) == pytest.approx(f1_score(mfe, ref.pairs), abs=1e-4)
    assert r["metrics"]["n"] == 3 and 0 <= r["metrics"]["rnafold_f1"] <= 1
    assert capsys.readouterr().out == ""  # everything went to files


def test_long_rna_map_is_binned():
    from resm.structure.plot import binned_map

    L = 1500
    rng = np.random.default_rng(0)
    P = np.zeros((L, L), np.float32)
    i, j = np.sort(rng.integers(0, L, (2, 400)), axis=0)
    keep = i < j
    i, j = i[keep], j[keep]
    p = rng.random(len(i)).astype(np.float32)
    P[i, j] = p
    M, b = binned_map(P, L, max_px=600)
    assert b == 3 and M.shape == (500, 500) and np.allclose(M, M.T)
    k = int(np.argmax(p))
    assert M[i[k] // 3, j[k] // 3] == pytest.approx(p[k]) and M.max() == pytest.approx(p.max())
    Ms, bs = binned_map((i, j, p), L, max_px=600)
    assert bs == 3 and np.allclose(Ms, M)
    assert binned_map(P[:100, :100], 100)[1] == 1


def test_a_pair_list_is_read_back_as_input_and_as_a_reference(tmp_path):
    """resm fold writes pair lists (--format pairs) and reads them back: as the input (by the
    .pairs extension, by its text under another name, from standard input; a base in several
    pairs too), and as --reference under any name with --reference-format pairs. The input was
    sniffed as bpseq ('expected 3 columns'), and --reference-format had no 'pairs'."""
    from resm.cli import build_parser
    from resm.structure.pipeline import read_reference

    text = "#Name: h\n#Length: 12\n#Sequence: GGGAAAUCCCAU\n#Scores: eF1=0.9\n1 10\n2 9\n3 8\n"
    for name in ("h.pairs", "h.txt"):
        (tmp_path / name).write_text(text)
        assert read_sequences(tmp_path / name) == [("h", "GGGAAAUCCCAU")]
    assert sniff_format(text.splitlines()) == "pairs"
    assert sniff_format(["#Name: b", "1 G 3", "2 A 0", "3 C 1"]) == "bpseq"  # bpRNA's bpseq still is
    assert read_sequences("-", stdin=io.StringIO(text)) == [("h", "GGGAAAUCCCAU")]
    (tmp_path / "triple.pairs").write_text("#Name: t\n#Sequence: GGGAAAUCCCAU\n1 10\n1 12\n")
    assert read_sequences(tmp_path / "triple.pairs", "pairs") == [("t", "GGGAAAUCCCAU")]
    a = build_parser().parse_args(["fold", "x", "--reference", "h.txt", "--reference-format", "pairs"])
    ref = read_reference(tmp_path / "h.txt", [("h", 12)], {"h": "GGGAAAUCCCAU"}, a.reference_format)
    assert list(ref["h"][:3]) == [9, 8, 7]
    assert build_parser().parse_args(["fold", "x", "--input-format", "pairs"]).input_format == "pairs"
    (tmp_path / "bare.pairs").write_text("#Name: b\n1 10\n")
    with pytest.raises(StructureError, match=r"bare\.pairs: a pair list without a '#Sequence:' line holds no seq"):
        read_sequences(tmp_path / "bare.pairs")
