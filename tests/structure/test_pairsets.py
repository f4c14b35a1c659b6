"""PDB pair tables (resm.structure.pairsets): base multiplets kept, canonical / all-pairs views,
one-line errors naming file and line, scoring of pair sets (precision, recall, pair density)
and the training side (crops, candidate targets, dense targets)."""

import numpy as np
import pytest

from resm.structure.io import StructureError, parse_dotbracket
from resm.structure.metrics import evaluate
from resm.structure.pairsets import PairRecord, PairSet, read_pair_table

HEAD = "id\tsequence\tpairs\n"
# base 2 (1-based) sits in two pairs (2:9 and 2:6); 1:10 is GC, 2:9 GC, 3:8 AU, 2:6 GA, 4:7 PU
GOOD = HEAD + "r1\tgGAPAAUUCc\t1:10 2:9 3:8 2:6 4:7\nr2\tACGUACGU\t\n"


def table(tmp_path, text, name="VL1.tsv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_read_keeps_multiplets_and_views(tmp_path):
    r1, r2 = read_pair_table(table(tmp_path, GOOD))
    assert r1.name == "r1" and r1.seq == "gGAPAAUUCc" and len(r1) == 10
    assert r1.pairs.ij.tolist() == [[0, 9], [1, 5], [1, 8], [2, 7], [3, 6]]  # sorted, 0-based
    assert r1.pairs.multiplet_bases() == 1
    # lower case and T count as their bases; P (a modified base) and G-A are non-canonical
    assert r1.canonical().pairs.ij.tolist() == [[0, 9], [1, 8], [2, 7]]
    assert r1.non_canonical().pairs.ij.tolist() == [[1, 5], [3, 6]]
    assert r2.pairs.n_pairs == 0 and r2.canonical().pairs.n_pairs == 0
    assert PairRecord("t", "GTAC", PairSet(np.array([[0, 3], [1, 2]]), 4)).canonical().pairs.n_pairs == 2  # GC, TA


@pytest.mark.parametrize(
    "line, lineno, what",
    [
        ("r3\tACGUACGU\t1:9", 4, "outside the sequence"),
        ("r3\tACGUACGU\t0:5", 4, "outside the sequence"),
        ("r3\tACGUACGU\t4:4", 4, "with itself"),
        ("r3\tACGUACGU\t5:2", 4, "needs i < j"),
        ("r3\tACGUACGU\t1-8", 4, "is not 'i:j'"),
        ("r3\tACGUACGU\t1:x", 4, "is not 'i:j'"),
        ("r3\tACGUACGU", 4, "3 tab-separated columns"),
        ("r3\tACGU ACGU\t1:8", 4, "not a letter"),
        ("r3\tACG\u00e9ACGU\t1:8", 4, "sequence of 'r3' holds a character that is not a letter (A-Z, a-z)"),
        ("r\x013\tACGUACGU\t1:8", 4, "id 'r\\x013' holds the control character U+0001"),
        ("r3\tACGUACGU\t1:8 1:8", 4, "written twice"),
        ("r1\tACGUACGU\t1:8", 4, "already on line 2"),
        ("\tACGUACGU\t1:8", 4, "empty id or sequence"),
    ],
)
def test_bad_lines_are_one_line_errors(tmp_path, line, lineno, what):
    p = table(tmp_path, GOOD + line + "\n")
    with pytest.raises(StructureError) as e:
        read_pair_table(p)
    msg = str(e.value)
    assert msg.startswith(f"VL1.tsv line {lineno}: ") and what in msg and "\n" not in msg


def test_bad_header_and_empty(tmp_path):
    with pytest.raises(StructureError, match=r"^x.tsv line 1: expected the header"):
        read_pair_table(table(tmp_path, "name\tseq\tpairs\nr\tACGU\t\n", "x.tsv"))
    with pytest.raises(StructureError, match=r"^y.tsv line 1: no records"):
        read_pair_table(table(tmp_path, HEAD, "y.tsv"))


def test_cli_names_file_and_line(tmp_path):
    """resm evaluate structure on a bad VL1 table: one line on stderr, non-zero exit, no table."""
    from tests.conftest import resm_cli

    data = tmp_path / "data"
    (data / "ss" / "pdb").mkdir(parents=True)
    (data / "ss" / "pdb" / "VL1.tsv").write_text(GOOD + "r3\tACGUACGU\t2:2\n")
    out = tmp_path / "t.md"
    p = resm_cli(
        "evaluate",
        "structure",
        "--model",
        "default",
        "--dataset",
        "vl1",
        "--data-dir",
        data,
        "--folders",
        "rnafold",
        "--out",
        out,
        check=False,
    )
    assert p.returncode != 0 and not out.exists()
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and "VL1.tsv line 4:" in p.stderr


def test_scores_of_a_pair_set_hand_computed():
    """Truth with a multiplet: 4 pairs, base 1 in two; prediction 3 pairs, 2 right."""
    truth = PairSet(np.array([[0, 9], [1, 8], [2, 7], [1, 5]]), 10)
    pred = parse_dotbracket("((.(..).))")  # (0,9) (1,8) (3,6)
    r = evaluate([pred], [truth])
    assert r["precision_mean"] == pytest.approx(2 / 3) and r["recall_mean"] == pytest.approx(2 / 4)
    assert r["f1_mean"] == pytest.approx(2 * 2 / (3 + 4))
    assert (r["n_pred"], r["n_true"], r["pair_ratio"]) == (3, 4, 0.75)
    # the same as the contact matrix that holds the same pairs
    m = np.zeros((10, 10), bool)
    m[truth.ij[:, 0], truth.ij[:, 1]] = True
    assert evaluate([pred], [m]) == r


def test_benchmark_rows_hand_computed():
    """The evaluate table's precision, recall and pred/ref columns on fixed predictions, and
    the pair-density column of the margin table."""
    from resm.structure.benchmark import _result, format_table
    from resm.structure.datasets import reference_views

    rec = PairRecord("r", "GGGAAAUCCC", PairSet(np.array([[0, 9], [1, 8], [2, 7], [3, 6], [1, 5]]), 10))
    views = reference_views("vl1", [rec])  # canonical: GC GC GC AU (A3-U6 ... ) ; all: + G1-A5
    assert list(views) == ["vl1, canonical pairs", "vl1, all pairs"]
    assert views["vl1, canonical pairs"][0].n_pairs == 4
    preds = {"resm": [parse_dotbracket("(((....)))")], "rnafold": [parse_dotbracket("((((..))))")]}
    res = [_result(k, preds, v, {"resm": 1.0, "rnafold": 0.5}) for k, v in views.items()]
    text = format_table(res, "resm evaluate structure --dataset vl1", "m.pt")
    rows = {
        (c[0], c[2]): c
        for c in ([x.strip() for x in ln.strip("|").split("|")] for ln in text.splitlines())
        if len(c) == 11
    }
    # canonical truth {09 18 27 36}: resm 3 of 3 -> P 1, R 0.75, ratio 0.75; rnafold 4 of 4
    assert rows[("vl1, canonical pairs", "**resm**")][5:8] == ["1.000", "0.750", "0.75"]
    assert rows[("vl1, canonical pairs", "rnafold")][5:8] == ["1.000", "1.000", "1.00"]
    # all pairs (5): resm P 1, R 0.6, ratio 0.60; rnafold R 0.8, ratio 0.80
    assert rows[("vl1, all pairs", "**resm**")][5:8] == ["1.000", "0.600", "0.60"]
    assert rows[("vl1, all pairs", "rnafold")][5:8] == ["1.000", "0.800", "0.80"]
    margin = [ln for ln in text.splitlines() if ln.startswith("| vl1, all pairs | rnafold")]
    assert margin and margin[0].rstrip("| ").endswith("0.60 / 0.80")


def test_training_targets_keep_multiplets(tmp_path):
    """A PDB record's crop keeps the pairs inside the window, the pair head's candidates mark
    both pairs of a multiplet base as targets, and the dense target holds both."""
    from resm.data.labelled_structures import Item, collate, crop, load_records
    from resm.heads.pairs import PairHeadConfig, candidates
    from resm.mapping import get_scheme
    from resm.structure.priors import SparsePairs

    rec = PairRecord("m", "GGGGAAAACCCCAAAUCCC", PairSet(np.array([[0, 11], [1, 10], [1, 18], [2, 17]]), 19))
    seq, ps = crop(rec, 1, 19)
    assert seq == rec.seq[1:] and ps.ij.tolist() == [[0, 9], [0, 17], [1, 16]] and len(ps) == 18
    cfg = PairHeadConfig(priors=1, min_prob=1e-3)
    pi, pj = np.triu_indices(19, 4)
    prior = SparsePairs(19, pi, pj, np.full(len(pi), 0.01, np.float32))
    c = candidates(rec.seq, [prior], cfg, rec.pairs)
    on = {(int(a), int(b)) for a, b, t in zip(c.i, c.j, c.target) if t}
    assert on == {(0, 11), (1, 10), (1, 18), (2, 17)}  # all canonical GC, base 1 in two
    tokens = get_scheme("kdny").encode(rec.seq)
    batch = collate([Item(("train", 0), "m", rec.seq, rec.pairs, 0, tokens, np.zeros(19, np.int64))])
    t = batch["target"][0].numpy()
    assert t.sum() == 8 and t[1, 10] == t[10, 1] == t[1, 18] == t[18, 1] == 1
    # load_records: the canonical view by default, all pairs on request
    p = table(tmp_path, GOOD, "TR.tsv")
    recs, ids, skipped = load_records(str(p), get_scheme("kdny"), None, 0)
    assert [r.pairs.n_pairs for r in recs] == [3, 0] and skipped == 0 and len(ids[0]) == 10
    recs, _, _ = load_records(str(p), get_scheme("kdny"), None, 0, pdb_pairs="all")
    assert recs[0].pairs.n_pairs == 5


def test_shared_pdb_sets():
    """SPOT-RNA's TR1 and VL1 as SOURCE.txt describes them: 120 and 30 records, 786 and 204
    bases in more than one pair."""
    from pathlib import Path

    from resm.config import default_data_dir
    from resm.structure.datasets import load_dataset

    data = Path(default_data_dir())
    if not (data / "ss" / "pdb" / "VL1.tsv").exists():
        pytest.skip("ss/pdb not in the data folder (RESM_DATA)")
    for name, n, multi in (("tr1", 120, 786), ("vl1", 30, 204)):
        recs = load_dataset(name, data)
        assert len(recs) == n and sum(r.pairs.multiplet_bases() for r in recs) == multi
