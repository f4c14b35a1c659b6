"""PDB pair tables (resm.structure.pairsets): base multiplets kept, canonical / all-pairs views,
one-line errors naming file and line, scoring of pair sets (precision, recall, pair density)
and the training side (crops, candidate targets, dense targets); pair lists: one reader and one
writer behind both views (a base in several pairs, one partner per base)."""

import numpy as np
import pytest

from resm.structure.io import Structure, StructureError, format_structures, parse_dotbracket, read_structures
from resm.structure.metrics import evaluate
from resm.structure.pairsets import PairRecord, PairSet, format_pair_list, parse_pair_list, read_pair_table

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
        ("r3\tACGUACGU\t2:5 5:2", 4, "pair 5:2 written twice (first as 2:5)"),
        ("r3\tACGUACGU\t1-8", 4, "is not 'i:j'"),
        ("r3\tACGUACGU\t1:x", 4, "is not 'i:j'"),
        ("r3\tACGUACGU", 4, "3 tab-separated columns"),
        ("r3\tACGU ACGU\t1:8", 4, "not a letter"),
        ("r3\tACG\u00e9ACGU\t1:8", 4, "sequence of 'r3': symbol 'é' (U+00E9) at position 4 is not a letter"),
        ("r3\tACG-ACGU\t1:8", 4, "sequence of 'r3': gap '-' at position 4 is not a letter"),
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


# ------------------------------------------------------------ pair lists: one reader, two views
PAIR_LIST_ERRORS = [
    ("#Length: 5\n1 \u00b2\n", "line 2: pair '1 \u00b2' is not 'i j' with positive integers"),
    ("#Length: 5\n1 5_0\n", "line 2: pair '1 5_0' is not 'i j' with positive integers"),
    ("1 5\n-1 4\n", "line 2: pair '-1 4' is not 'i j' with positive integers"),
    ("+1 5\n", "line 1: pair '+1 5' is not 'i j' with positive integers"),
    ("1 5\n2 4 3\n", "line 2: expected 2 columns 'i j', got 3"),
    ("#Length: -3\n", "line 1: length '-3' is not a whole number"),
    ("#Length: 5 6\n1 4\n", "line 1: length '5 6' is not a whole number"),
    ("#Length: 5\n1 5\n2 4\n1 5\n", "line 4: pair '1 5' written twice (first on line 2)"),
    ("#Length: 5\n1 6\n", "line 2: pair '1 6' lies outside the sequence (1..5)"),
    ("#Length: 5\n0 3\n", "line 2: pair '0 3' lies outside the sequence (1..5)"),
    ("#Length: 5\n3 3\n", "line 2: pair '3 3' pairs base 3 with itself"),
    ("2 4\n4 2\n", "line 2: pair '4 2' written twice (first on line 1 as '2 4')"),
    ("#Length: 4\n#Sequence: GGAAC\n1 4\n", "line 2: sequence length 5 != length 4"),
    ("#Sequence: GG AC\n1 4\n", "line 1: sequence 'GG AC' holds whitespace"),
    ("#Name: a\x1b\n1 4\n", "line 1: name 'a\\x1b' holds the control character U+001B"),
    ("#Scores: eF1=x\n1 4\n", "line 1: #Scores: expected 'name=number' items, got 'eF1=x'"),
    (
        "#Length: 4\n#Alternative: (...) [RNAfold]\n1 4\n",
        "line 2: #Alternative: structure length 5 != record length 4",
    ),
]


@pytest.mark.parametrize("text, msg", PAIR_LIST_ERRORS)
def test_both_views_of_a_pair_list_give_the_same_one_line_error(tmp_path, text, msg):
    """A malformed pair list is the same one-line error naming the file and line whether it is
    read with every pair (parse_pair_list) or one partner per base (read_structures): one reader.
    Before, the two readers differed ('index 5 out of range' against 'lies outside the
    sequence'), and the one-partner reader took '+1', a negative length, and ignored a '#Length:'
    or '#Sequence:' it could not read."""
    path = tmp_path / "x.pairs"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(StructureError) as many:
        parse_pair_list(text, str(path))
    with pytest.raises(StructureError) as one:
        list(read_structures(path))
    assert str(many.value) == str(one.value) == f"{path} {msg}"


def test_the_views_agree_on_pairs_and_the_one_partner_view_names_a_multiplets_line(tmp_path):
    """Random pair lists: without a multiplet both views hold the same pairs, and the text written
    from a PairRecord is the text written from the Structure (one writer); with one, the
    one-partner view names the first line whose base already sits in a pair, the other keeps all."""
    rng = np.random.default_rng(4)
    n_multi = 0
    for k in range(200):
        L = int(rng.integers(2, 60))
        ij = {tuple(sorted(rng.choice(L, 2, replace=False).tolist())) for _ in range(int(rng.integers(0, L)))}
        order = list(ij)
        rng.shuffle(order)
        seq = "".join(rng.choice(list("ACGU"), L)) if k % 3 else ""
        text = "".join([f"#Name: r{k}\n", f"#Length: {L}\n" if k % 2 or not seq else ""]) + (
            f"#Sequence: {seq}\n" if seq else ""
        )
        text += "".join(f"{i + 1} {j + 1}\n" for i, j in order)
        path = tmp_path / f"r{k}.pairs"
        path.write_text(text)
        rec = parse_pair_list(text, str(path))
        assert (rec.name, rec.seq, len(rec.pairs)) == (f"r{k}", seq, L)
        assert set(map(tuple, rec.pairs.ij.tolist())) == set(ij)
        header = text.count("\n") - len(order)
        seen, bad = {}, None
        for n, (i, j) in enumerate(order, header + 1):
            if bad is None and (i in seen or j in seen):
                b = i if i in seen else j
                bad = f"{path} line {n}: base {b + 1} already paired on line {seen[b]}"
            seen.setdefault(i, n)
            seen.setdefault(j, n)
        if bad is not None:
            n_multi += 1
            with pytest.raises(StructureError) as e:
                list(read_structures(path))
            assert str(e.value) == bad
            continue
        (s,) = read_structures(path)
        partners = np.full(L, -1)
        for i, j in ij:
            partners[i], partners[j] = j, i
        assert s == Structure(f"r{k}", seq, partners)
        assert format_pair_list(rec) == format_structures([s], "pairs")
    assert 50 < n_multi < 190


def test_a_pair_list_without_a_length_is_as_long_as_its_largest_index(tmp_path):
    """No '#Length:' and no '#Sequence:': both views take the largest index (the multiplet view
    refused every pair as 'outside the sequence (1..0)')."""
    text = "#Name: m\n1 6\n1 4\n"
    assert parse_pair_list(text).pairs == PairSet(np.array([[0, 3], [0, 5]]), 6)
    (tmp_path / "o.pairs").write_text("1 6\n2 4\n")
    assert read_structures(tmp_path / "o.pairs").__next__().pairs.tolist() == [5, 3, -1, 1, -1, 0]


def test_a_pair_list_text_splits_into_lines_as_a_file_does(tmp_path):
    """parse_pair_list reads a text with the line breaks a file read has (\\n, \\r\\n, \\r), so
    a name with a Unicode line separator (which str.splitlines would break) reads back whole."""
    rec = PairRecord("a\u2028b", "GGAAAC", PairSet(np.array([[0, 5], [0, 4]]), 6))
    text = format_pair_list(rec)
    for t in (text, text.replace("\n", "\r\n"), text.replace("\n", "\r")):
        back = parse_pair_list(t, "x.pairs")
        assert (back.name, back.seq, back.pairs) == (rec.name, rec.seq, rec.pairs)
    (tmp_path / "x.pairs").write_text(
        format_pair_list(PairRecord("a\u2028b", "GGAAAC", PairSet(np.array([[0, 5]]), 6)))
    )
    assert next(read_structures(tmp_path / "x.pairs")).name == "a\u2028b"


def test_the_pair_list_writer_refuses_what_it_could_not_read_back():
    with pytest.raises(ValueError, match=r"^'a\\nb': name contains a newline$"):
        format_pair_list(PairRecord("a\nb", "GG", PairSet(np.zeros((0, 2)), 2)))
    with pytest.raises(ValueError, match=r"^a: sequence contains whitespace$"):
        format_pair_list(PairRecord("a", "G G", PairSet(np.zeros((0, 2)), 3)))


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
