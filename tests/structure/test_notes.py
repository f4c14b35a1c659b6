"""A score per structure (the expected F1 under the model's pair probabilities, RNAfold's MFE
on request) and another folder's structure on a labelled line (``resm fold --compare``): the
score's arithmetic, the notes' round trips through every format that holds them, RNAfold's own
``-p`` output read as a reference, and the fold pipeline's output."""

import numpy as np
import pytest
import RNA

from resm.structure.annotations import format_note, parse_note
from resm.structure.io import (
    FoldError,
    Structure,
    StructureError,
    format_structures,
    iter_bpseq,
    iter_dbn,
    parse_dotbracket,
)
from resm.structure.metrics import expected_f1, f1_score
from resm.structure.pair_lists import iter_pairs

TRNA = "GCGGAUUUAGCUCAGUUGGGAGAGCGCCAGACUGAAGAUCUGGAGGUCCUGUGUUCGAUCCACAGAAUUCGCACCA"


def test_expected_f1_of_a_certain_truth_is_its_f1():
    """Probabilities 0/1 say which structure is true: the expected F1 is that structure's F1."""
    truth = parse_dotbracket("((((....))))..((((....))))")
    P = np.zeros((len(truth), len(truth)))
    for i, j in enumerate(truth):
        if j >= 0:
            P[i, j] = 1.0
    for db in ("((((....))))..((((....))))", "((((....))))..............", ".(((....)))..(((((...)))))", "." * 26):
        pred = parse_dotbracket(db)
        assert expected_f1(pred, P) == pytest.approx(f1_score(pred, truth))
    assert expected_f1(parse_dotbracket("." * 26), np.zeros_like(P)) == 1.0  # nothing predicted, nothing true


def test_expected_f1_matches_sampled_truths():
    """Independent pairs drawn with their probabilities: the mean F1 of the prediction over
    many drawn truths is the expected F1 (the ratio of expectations; 0.02 at 40 pairs), and the
    empty structure's is the probability that no pair is true."""
    rng = np.random.default_rng(0)
    L = 120
    cand = [(i, L - 1 - i) for i in range(40)]  # disjoint, nested pairs
    p = rng.uniform(0.3, 0.95, len(cand))
    P = np.zeros((L, L))
    for (i, j), q in zip(cand, p):
        P[i, j] = P[j, i] = q  # a dense map is symmetric
    pred = np.full(L, -1)
    for i, j in cand[::2] + [(50, 60)]:  # half the candidates and one pair of probability 0
        pred[i], pred[j] = j, i
    draws = rng.random((4000, len(cand))) < p
    f1s = []
    for d in draws:
        t = np.full(L, -1)
        for (i, j), on in zip(cand, d):
            if on:
                t[i], t[j] = j, i
        f1s.append(f1_score(pred, t))
    assert expected_f1(pred, P) == pytest.approx(np.mean(f1s), abs=0.02)
    few = np.zeros((L, L))
    few[0, 10], few[20, 30] = 0.2, 0.5
    few += few.T
    assert expected_f1(np.full(L, -1), few) == pytest.approx(0.8 * 0.5)


def test_expected_f1_reads_sparse_probabilities_as_dense():
    pred = parse_dotbracket("((((....))))")
    rng = np.random.default_rng(1)
    M = np.triu(rng.random((12, 12)) * 0.2, 1)
    M[0, 11] = M[1, 10] = 0.9
    i, j = np.nonzero(M)
    assert expected_f1(pred, (i, j, M[i, j])) == pytest.approx(expected_f1(pred, M + M.T), rel=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        expected_f1(pred, (np.array([0]), np.array([12]), np.array([0.5])))


def test_notes_format_and_parse():
    assert format_note({"eF1": 0.93456, "MFE": -21.6}) == "[eF1=0.935 MFE=-21.60]"
    assert format_note({"MFE": -3.0}, "RNAfold") == "[RNAfold MFE=-3.00]"
    assert format_note({}) == ""
    assert parse_note("[eF1=0.935 MFE=-21.60]") == ("", {"eF1": 0.935, "MFE": -21.6})
    assert parse_note("[RNAfold MFE=-3.00]") == ("RNAfold", {"MFE": -3.0})
    assert parse_note("( -5.40)") == ("", {"energy": -5.4})  # RNAfold's energy
    for bad in ("[ -5.73]", "{ -5.40 d=1.23}", "[a b]", "[eF1=x]", "(((", ""):
        assert parse_note(bad) is None, bad
    with pytest.raises(ValueError, match="one word"):
        format_note({"x": 1.0}, "two words")


def _noted_record():
    rec = Structure("t1", TRNA, parse_dotbracket(RNA.fold(TRNA)[0]), {"eF1": 0.944, "MFE": -22.4})
    alt = Structure("RNAfold", TRNA, parse_dotbracket("." * 4 + RNA.fold(TRNA[4:])[0]), {"MFE": -20.1})
    rec.alternatives.append(alt)
    return rec


@pytest.mark.parametrize("fmt,reader", [("dbn", iter_dbn), ("bpseq", iter_bpseq), ("pairs", iter_pairs)])
def test_scores_and_alternatives_round_trip(fmt, reader):
    rec = _noted_record()
    text = format_structures([rec], fmt)
    (back,) = list(reader(text.splitlines()))
    assert back == rec and back.scores == rec.scores
    assert [(a.name, a.dotbracket, a.scores) for a in back.alternatives] == [
        (a.name, a.dotbracket, a.scores) for a in rec.alternatives
    ]
    assert format_structures([back], fmt) == text


def test_dbn_notes_sit_where_rnafold_puts_its_energy():
    """The structure line's first field is the dot-bracket alone, as in RNAfold's output."""
    rec = _noted_record()
    lines = format_structures([rec, Structure("t2", "GGGAAACCC", parse_dotbracket("(((...)))"))], "dbn").splitlines()
    assert lines[:4] == [
        ">t1",
        TRNA,
        f"{rec.dotbracket} [eF1=0.944 MFE=-22.40]",
        f"{rec.alternatives[0].dotbracket} [RNAfold MFE=-20.10]",
    ]
    assert lines[4:] == [">t2", "GGGAAACCC", "(((...)))"]  # no notes: the plain three lines
    assert [r.name for r in iter_dbn(lines)] == ["t1", "t2"]


def test_ct_holds_scores_out_and_refuses_alternatives():
    rec = _noted_record()
    plain = Structure(rec.name, rec.seq, rec.pairs)
    with pytest.raises(ValueError, match="ct has no room"):
        format_structures([rec], "ct")
    rec.alternatives.clear()
    assert format_structures([rec], "ct") == format_structures([plain], "ct")


RNAFOLD_P = """>x
GGGGAAAACCCC
((((....)))) ( -5.40)
((((....)))) [ -5.73]
((((....)))) { -5.40 d=1.23}
((((....)))) { -5.40 MEA=10.00}
 frequency of mfe structure in ensemble 0.56; ensemble diversity 1.23
>y
GGGAAACCC
(((...))) (-1.20)
"""


def test_rnafold_p_output_reads_as_structures():
    """RNAfold -p's ensemble, centroid, MEA and frequency lines are skipped; the MFE line is the
    record's structure and its energy a score."""
    recs = list(iter_dbn(RNAFOLD_P.splitlines()))
    assert [(r.name, r.dotbracket, r.scores, r.alternatives) for r in recs] == [
        ("x", "((((....))))", {"energy": -5.4}, []),
        ("y", "(((...)))", {"energy": -1.2}, []),
    ]


def test_a_stray_line_after_a_structure_is_still_an_error():
    text = ">x\nGGGAAACCC\n(((...)))\n(((...))) not a note\n"
    with pytest.raises(StructureError, match=r"<dbn> line 4: expected '>name' header"):
        list(iter_dbn(text.splitlines()))
    with pytest.raises(StructureError, match=r"<dbn> line 3: dot-bracket line contains whitespace, then '\[eF1=oo"):
        list(iter_dbn(">x\nGGGAAACCC\n(((...))) [eF1=oops]\n".splitlines()))
    with pytest.raises(StructureError, match=r"line 2: #Alternative: structure length 5 != record length 3"):
        list(iter_pairs("#Length: 3\n#Alternative: (...) [RNAfold]\n1 3\n".splitlines()))


# ----------------------------------------------------------------------------- the pipeline
@pytest.fixture(scope="module")
def predictor():
    from resm.structure.predictor_loading import PredictorOptions, load_predictor

    return load_predictor(PredictorOptions(device="cpu", threads=1))


def test_fold_prints_the_expected_f1_and_rnafold_beside_it(tmp_path, predictor, monkeypatch):
    """Each record: resm's structure with its expected F1 (from the model's own probabilities)
    and RNAfold's MFE, then RNAfold's structure on a line labelled RNAfold; read back, resm's
    structures are those of a run without notes."""
    from resm.structure import pipeline
    from resm.structure.pipeline import FoldOptions, fold_fasta

    monkeypatch.setattr(pipeline, "load_predictor", lambda *a, **k: predictor)
    seqs = {"trna": TRNA, "hp": "GGGGAAACCCCAUAGCGCGAAAGCGCU"}
    (tmp_path / "x.fa").write_text("".join(f">{k} a description\n{v}\n" for k, v in seqs.items()))
    opts = dict(device="cpu", threads=1, progress=False)
    fold_fasta(tmp_path / "x.fa", FoldOptions(**opts, out=tmp_path / "plain.dbn", score=False))
    fold_fasta(tmp_path / "x.fa", FoldOptions(**opts, out=tmp_path / "noted.dbn", mfe=True, compare="rnafold"))
    plain = list(iter_dbn((tmp_path / "plain.dbn").read_text().splitlines()))
    noted = list(iter_dbn((tmp_path / "noted.dbn").read_text().splitlines()))
    assert all(not r.scores and not r.alternatives for r in plain)
    assert noted == plain
    for rec in noted:
        st, P = predictor.fold_one(seqs[rec.name], rec.name)
        db, mfe = RNA.fold(seqs[rec.name])
        assert rec.scores == {"eF1": round(expected_f1(st.pairs, P), 3), "MFE": round(mfe, 2)}
        ((label, alt, scores),) = [(a.name, a.dotbracket, a.scores) for a in rec.alternatives]
        assert (label, alt, scores) == ("RNAfold", db, {"MFE": round(mfe, 2)})
    assert 0.0 < noted[0].scores["eF1"] <= 1.0


def test_fold_compare_draws_both_and_refuses_ct(tmp_path, predictor, monkeypatch):
    mpl = pytest.importorskip("matplotlib")
    monkeypatch.setitem(mpl.rcParams, "svg.fonttype", "none")  # the SVG keeps its text as text
    from resm.structure import pipeline
    from resm.structure.pipeline import FoldOptions, fold_fasta

    monkeypatch.setattr(pipeline, "load_predictor", lambda *a, **k: predictor)
    (tmp_path / "x.fa").write_text(f">trna\n{TRNA}\n")
    opts = dict(device="cpu", threads=1, progress=False)
    fold_fasta(
        tmp_path / "x.fa",
        FoldOptions(**opts, out=tmp_path / "o.dbn", compare="rnafold", plot=tmp_path / "p", plot_format="svg"),
    )
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["trna.svg", "trna_rnafold_ss.svg", "trna_ss.svg"]
    svg = (tmp_path / "p" / "trna.svg").read_text()
    assert "RNAfold only" in svg and "in both" in svg and "RNAfold 21 pairs" in svg
    for bad, match in (
        (dict(fmt="ct", out=tmp_path / "o.ct"), "ct has no room for a second structure"),
        (dict(compare="mfold"), "--compare mfold: unknown folder; known: rnafold"),
        (dict(compare=None, mfe=True, fmt="ct", out=tmp_path / "o.ct"), "--mfe: ct has no room for an energy"),
    ):
        with pytest.raises(FoldError, match=match):
            fold_fasta(tmp_path / "x.fa", FoldOptions(**{**opts, "compare": "rnafold", **bad}))
    assert not (tmp_path / "o.ct").exists()


# ----------------------------------------------------------------------------- the command line
def test_compare_choices_are_the_folders():
    from resm.commands.fold import COMPARE_FOLDERS
    from resm.structure.folders import FOLDERS

    assert tuple(FOLDERS) == COMPARE_FOLDERS


def test_resm_fold_scores_compares_and_refuses_ct(tmp_path):
    """resm fold: the score by default, --mfe and --compare rnafold (a labelled RNAfold line per
    record, three figures per record), --no-score gives RNAfold's plain three lines; --compare
    into ct is one line naming the way out, and nothing is written."""
    from tests.conftest import resm_cli, resm_main

    (tmp_path / "x.fa").write_text(f">trna yeast tRNA-Phe\n{TRNA}\n>hp\nGGGGAAACCCCAUAGCGCGAAAGCGCU\n")
    default = resm_cli("fold", tmp_path / "x.fa", "--nogpu", "--threads", "1").stdout.splitlines()
    assert default[0] == ">trna" and default[2].endswith("]") and " [eF1=0." in default[2]
    resm_main(
        "fold", tmp_path / "x.fa", "--nogpu", "--threads", "1", "--mfe", "--compare", "rnafold",
        "-o", tmp_path / "o.dbn", "--plot", tmp_path / "p", "--no-score",
    )  # fmt: skip
    lines = (tmp_path / "o.dbn").read_text().splitlines()
    db, mfe = RNA.fold(TRNA)
    assert lines[:4] == [">trna", TRNA, f"{default[2].split()[0]} [MFE={mfe:.2f}]", f"{db} [RNAfold MFE={mfe:.2f}]"]
    assert len(lines) == 8 and lines[7].endswith("]") and "[RNAfold MFE=" in lines[7]
    assert len(list((tmp_path / "p").iterdir())) == 6
    p = resm_main("fold", tmp_path / "x.fa", "--nogpu", "--no-score", "--threads", "1")
    assert p.stdout.splitlines() == [x.split()[0] for x in default]
    p = resm_main("fold", tmp_path / "x.fa", "--nogpu", "--compare", "rnafold", "-o", tmp_path / "o.ct", check=False)
    err = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(err) == 1 and "ct has no room for a second structure" in err[0], p.stderr
    assert not (tmp_path / "o.ct").exists()
