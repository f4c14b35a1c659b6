"""Tests for resm.structure.io."""

from __future__ import annotations

import gzip
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resm.structure.datasets import iter_ct_tarball
from resm.structure.io import (
    Structure,
    StructureError,
    check_pairs,
    format_structures,
    iter_ct,
    matrix_to_pairs,
    pair_list,
    pairs_from_list,
    pairs_to_matrix,
    parse_dotbracket,
    read_archiveii_csv,
    read_structure,
    read_structures,
    to_dotbracket,
    write_structures,
)
from tests.conftest import data_dir


def data_file(rel: str) -> Path:
    p = data_dir() / rel
    if not p.exists():
        pytest.skip(f"data file {p} not available")
    return p


@st.composite
def pairings(draw, max_len: int = 60) -> np.ndarray:
    """Random valid pairing, pseudoknots allowed (random matching of a subset)."""
    L = draw(st.integers(0, max_len))
    perm = draw(st.permutations(range(L)))
    k = draw(st.integers(0, L // 2))
    p = np.full(L, -1, dtype=np.int64)
    for a in range(k):
        i, j = perm[2 * a], perm[2 * a + 1]
        p[i], p[j] = j, i
    return p


def record(p: np.ndarray, name: str = "rec") -> Structure:
    rng = np.random.default_rng(len(p))
    return Structure(name, "".join(rng.choice(list("ACGU"), len(p))), p)


# ------------------------------------------------------------ dot-bracket


def test_parse_simple_and_pseudoknot():
    assert parse_dotbracket("((..))").tolist() == [5, 4, -1, -1, 1, 0]
    assert parse_dotbracket("(([..)]).").tolist() == [7, 5, 6, -1, -1, 1, 2, 0, -1]
    assert parse_dotbracket("A{<.a}>").tolist() == [4, 5, 6, -1, 0, 1, 2]
    assert parse_dotbracket("-,:_~.").tolist() == [-1] * 6
    assert parse_dotbracket("").tolist() == []


@pytest.mark.parametrize(
    "db, pos", [("(()", "position 1"), ("())", "position 3"), ("(.]", "position 3"), ("a", "position 1")]
)
def test_parse_unbalanced(db, pos):
    with pytest.raises(StructureError, match=pos):
        parse_dotbracket(db)
    assert issubclass(StructureError, ValueError)


def test_parse_unknown_char():
    with pytest.raises(StructureError, match="position 3"):
        parse_dotbracket("((x))")


def test_to_dotbracket_levels():
    # H-type pseudoknot: second stem crosses the first -> []
    p = parse_dotbracket("((..[[..))..]]")
    assert to_dotbracket(p) == "((..[[..))..]]"
    # three mutually crossing pairs -> (, [, {
    p = pairs_from_list([(0, 3), (1, 4), (2, 5)], 6)
    assert to_dotbracket(p) == "([{)]}"
    # greedy: a pair crossing only level-1 pairs goes back to level 0
    p = pairs_from_list([(0, 2), (1, 4), (3, 5)], 6)
    assert to_dotbracket(p) == "([)(])"


def test_to_dotbracket_letters():
    # 6 mutually crossing pairs need levels (, [, {, <, A, B
    n = 6
    p = pairs_from_list([(k, k + n) for k in range(n)], 2 * n)
    db = to_dotbracket(p)
    assert db == "([{<AB)]}>ab"
    assert np.array_equal(parse_dotbracket(db), p)


@settings(max_examples=150, deadline=None)
@given(pairings())
def test_dotbracket_roundtrip(p):
    db = to_dotbracket(p)
    assert len(db) == len(p)
    assert np.array_equal(parse_dotbracket(db), p)


@settings(max_examples=30, deadline=None)
@given(pairings(max_len=400))
def test_dotbracket_roundtrip_long(p):
    assert np.array_equal(parse_dotbracket(to_dotbracket(p)), p)


@settings(max_examples=60, deadline=None)
@given(pairings(max_len=120))
def test_dotbracket_is_what_viennarna_parses(p):
    """The writer's brackets, ``()`` ``[]`` ``{}`` ``<>`` then ``Aa`` ``Bb`` ..., read back by
    ViennaRNA's own parser (all bracket types) into the same pairs."""
    RNA = pytest.importorskip("RNA")
    if len(p) == 0:  # ViennaRNA returns nothing for an empty string
        return
    db = to_dotbracket(p)
    pt = list(RNA.ptable(db, RNA.BRACKETS_ANY))  # 1-based, pt[0] = length, 0 = unpaired
    assert pt[0] == len(p)
    assert [x - 1 for x in pt[1:]] == p.tolist()


def test_dotbracket_bracket_order():
    """Levels in the order the tools read them: (, [, {, <, then A/a, B/b, ..."""
    n = 7
    db = to_dotbracket(pairs_from_list([(k, k + n) for k in range(n)], 2 * n))
    assert db == "([{<ABC)]}>abc"


# ------------------------------------------------------------ pair helpers
# ------------------------------------------------------------ pair helpers


def test_check_pairs_errors():
    with pytest.raises(StructureError, match="asymmetric"):
        check_pairs([2, -1, 1])
    with pytest.raises(StructureError, match="itself"):
        check_pairs([0, -1])
    with pytest.raises(StructureError, match="out of range"):
        check_pairs([3, -1, -1])
    with pytest.raises(StructureError, match=r"^x: sequence length 3 != structure length 2$"):
        Structure("x", "ACG", [1, 0])


@settings(max_examples=50, deadline=None)
@given(pairings())
def test_matrix_and_list_roundtrip(p):
    m = pairs_to_matrix(p)
    assert m.dtype == bool and np.array_equal(m, m.T)
    assert int(m.sum()) == int((p >= 0).sum())
    assert np.array_equal(matrix_to_pairs(m), p)
    assert np.array_equal(matrix_to_pairs(np.triu(m)), p)
    pl = pair_list(p)
    assert all(i < j for i, j in pl) and pl == sorted(pl)
    assert np.array_equal(pairs_from_list(pl, len(p)), p)


def test_matrix_to_pairs_rejects_multiple_partners():
    m = np.zeros((4, 4), bool)
    m[0, 2] = m[0, 3] = True
    with pytest.raises(StructureError, match="base 0"):
        matrix_to_pairs(m)


def test_pairs_from_list_errors():
    with pytest.raises(StructureError, match="more than one"):
        pairs_from_list([(0, 3), (3, 5)], 6)
    with pytest.raises(StructureError, match="out of range"):
        pairs_from_list([(1, 7)], 6, one_based=True)


# ------------------------------------------------------------ file round trips


@settings(max_examples=40, deadline=None)
@given(pairings(), st.sampled_from(["dbn", "bpseq", "ct", "pairs"]))
def test_file_roundtrip(tmp_path_factory, p, fmt):
    path = tmp_path_factory.mktemp("rt") / f"x.{fmt}"
    rec = record(p, name="my rna")
    if len(p) == 0 and fmt != "pairs":
        with pytest.raises(ValueError, match="empty"):
            write_structures([rec], path)
        return
    write_structures([rec], path)
    back = read_structure(path)
    assert np.array_equal(back.pairs, p)
    assert back.seq == rec.seq and back.name == "my rna"


def test_format_text():
    rec = Structure("x", "GAAC", parse_dotbracket("(..)"))
    assert format_structures([rec], "bpseq") == "#Name: x\n1 G 4\n2 A 0\n3 A 0\n4 C 1\n"
    assert (
        format_structures([rec], "ct")
        == "4\tx\n1\tG\t0\t2\t4\t1\n2\tA\t1\t3\t0\t2\n3\tA\t2\t4\t0\t3\n4\tC\t3\t0\t1\t4\n"
    )
    assert format_structures([rec], "dbn") == ">x\nGAAC\n(..)\n"
    assert format_structures([rec], "pairs") == "#Name: x\n#Length: 4\n#Sequence: GAAC\n1 4\n"


def test_multi_record_ct_and_dbn(tmp_path):
    recs = [record(parse_dotbracket(db), f"r{k}") for k, db in enumerate(["((..))", "..[[..((..]]..))", "."])]
    for fmt in ("ct", "dbn"):
        path = tmp_path / f"all.{fmt}"
        write_structures(recs, path)
        assert list(read_structures(path)) == recs


def test_gzip_and_explicit_format(tmp_path):
    rec = record(parse_dotbracket("((.[.))]"), "g")
    write_structures(rec, tmp_path / "a.ct.gz")
    with gzip.open(tmp_path / "a.ct.gz", "rt") as fh:
        assert fh.readline().startswith("8\tg")
    assert read_structure(tmp_path / "a.ct.gz") == rec
    write_structures(rec, tmp_path / "a.txt", fmt="bpseq")
    assert read_structure(tmp_path / "a.txt", fmt="bpseq") == rec
    with pytest.raises(ValueError, match=r"a.txt: its extension names no structure format \(dbn, bpseq, ct, pairs\)"):
        read_structure(tmp_path / "a.txt")


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "keep.dbn"
    rec = record(parse_dotbracket("(..)"), "old")
    write_structures([rec], path)
    before = path.read_text()
    # failing before replace leaves the old file and no temp files
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises((OSError, ValueError), match="keep.dbn: cannot be put in place .boom"):
        write_structures([record(parse_dotbracket("...."), "new")], path)
    assert path.read_text() == before
    assert [f.name for f in tmp_path.iterdir()] == ["keep.dbn"]


def test_bpseq_multi_record_rejected(tmp_path):
    recs = [record(parse_dotbracket("()"), "a"), record(parse_dotbracket(".."), "b")]
    with pytest.raises(ValueError, match="exactly one"):
        write_structures(recs, tmp_path / "x.bpseq")


def test_read_formats_from_text(tmp_path):
    (tmp_path / "s.bpseq").write_text("# comment\n#Name: foo\n1 G 4\n2 A 0\n\n3 A 0\n4 C 1\n")
    r = read_structure(tmp_path / "s.bpseq")
    assert (r.name, r.seq, r.pairs.tolist()) == ("foo", "GAAC", [3, -1, -1, 0])
    (tmp_path / "s.ct").write_text(
        "4  ENERGY = -1.2  bar baz\n1 G 0 2 4 11\n2 A 1 3 0 12\n3 A 2 4 0 13\n4 C 3 0 1 14\n"
    )
    r = read_structure(tmp_path / "s.ct")
    assert (r.name, r.seq, r.pairs.tolist()) == ("bar baz", "GAAC", [3, -1, -1, 0])
    (tmp_path / "s.pairs").write_text("# pairs\n1 6\n2 5\n")
    r = read_structure(tmp_path / "s.pairs")
    assert (r.name, r.seq, r.pairs.tolist()) == ("s", "", [5, 4, -1, -1, 1, 0])
    (tmp_path / "t.pairs").write_text("#Length: 8\n1 6\n")
    assert len(read_structure(tmp_path / "t.pairs")) == 8
    (tmp_path / "s.dbn").write_text(">a b\nGGAAACC\n((...)) (-1.30)\n\n>c\nAC\n..\n")
    a, c = read_structures(tmp_path / "s.dbn")
    assert (a.name, a.seq, a.pairs.tolist()) == ("a b", "GGAAACC", [6, 5, -1, -1, -1, 1, 0])
    assert c.pairs.tolist() == [-1, -1]


def test_ct_titles_that_look_like_an_energy_round_trip(tmp_path):
    """The ct reader drops other tools' energy before the title (``ENERGY = -3.4``, ``dG = -3.4``)
    only when a number follows, so a name such as 'dG = high affinity' reads back whole (it
    came back as 'affinity'); a name the reader would cut is refused by the writer, nothing
    written, as resm writes no energy header."""
    p = parse_dotbracket("((((....))))")
    names = ["dG = high affinity", "ENERGY = x y", "dG", "ENERGY", "energy=", "dG=-3.4hp", "ENERGY = - 3"]
    recs = [Structure(n, "GGGGAAAACCCC", p) for n in names]
    write_structures(recs, tmp_path / "t.ct")
    assert [r.name for r in read_structures(tmp_path / "t.ct")] == names
    rows = format_structures([recs[0]], "ct").splitlines()[1:]
    for title, name in [
        ("ENERGY = -3.4  hp", "hp"),
        ("dG = -21.6 [initially -22.3] tRNA", "[initially -22.3] tRNA"),
        ("dG=+1.5e-1\thp", "hp"),
        ("energy = .5 a b", "a b"),
        ("ENERGY = -3.4", "x"),  # no title: the file's name, as before
    ]:
        assert next(iter_ct([f"12  {title}", *rows], name="x")).name == name, title
    for bad in ("ENERGY = -3.4 hp", "dG=5", " dG = 1 x"):
        with pytest.raises(ValueError) as e:
            write_structures(Structure(bad, "GGGGAAAACCCC", p), tmp_path / "bad.ct")
        assert str(e.value) == f"{bad!r}: ct would read it back as an energy then a name (dbn, bpseq, pairs keep it)"
        assert not (tmp_path / "bad.ct").exists()
        write_structures(Structure(bad, "GGGGAAAACCCC", p), tmp_path / "ok.dbn")
        assert read_structure(tmp_path / "ok.dbn").name == bad.strip()


def test_fold_refuses_an_id_ct_would_read_as_an_energy_before_any_work(tmp_path):
    from tests.conftest import resm_main

    fa = tmp_path / "in.fa"
    fa.write_text(">ok\nGGGGAAAACCCC\n>dG=5\nGGGGAAAACCCC\n")
    out = tmp_path / "o.ct"
    p = resm_main("fold", fa, "-o", out, "--threads", "1", check=False)
    assert p.returncode != 0 and not out.exists()
    assert p.stderr.strip().splitlines() == [
        "resm fold: error: record 'dG=5': ct would read its name back as an energy: give --format dbn, bpseq or pairs"
    ]


# ------------------------------------------------------------ malformed files

MALFORMED = [
    ("x.bpseq", "1 G 3\n2 A 0\n3 C 2\n", "x.bpseq line 1: partner 3 of base 1 says 2"),
    ("x.bpseq", "1 G 0\n2 A 9\n3 C 0\n", "x.bpseq line 2: partner 9 of base 2 out of range"),
    ("x.bpseq", "1 G 0\n2 A 2\n3 C 0\n", "x.bpseq line 2: base 2 paired with itself"),
    ("x.bpseq", "# c\n1 G 0\n2 A 0 7\n", "x.bpseq line 3: expected 3 columns"),
    ("x.bpseq", "1 G 0\n2 A x\n", "x.bpseq line 2: partner 'x' is not an integer"),
    ("x.bpseq", "1 G 0\n3 A 0\n", "x.bpseq line 2: index 3, expected 2"),
    ("x.bpseq", "1 G 0\n2 A-G 0\n", "x.bpseq line 2: base 'A-G' is neither one letter nor a residue name"),
    ("x.ct", "3 t\n1 G 0 2 3 1\n2 A 1 3 0 2\n3 C 2 0 2 3\n", "x.ct line 2: partner 3 of base 1 says 2"),
    ("x.ct", "3 t\n1 G 0 2 0 1\n2 A 1 3 0\n3 C 2 0 0 3\n", "x.ct line 3: expected 6 columns"),
    ("x.ct", "3 t\n1 G 0 2 0 1\n2 A 1 3 0 2\n", "x.ct line 3: ct block starting line 1 has 2 of 3 rows"),
    ("x.ct", "\n\nthree t\n", "x.ct line 3: ct header length 'three'"),
    ("x.ct", "2 t\n1 G 0 2 0 1\n2 A 1 3 0 2\n2 u\n1 G 0 2 0 1\n2 A 1 a 0 2\n", "x.ct line 6: column 4 'a'"),
    ("x.ct", "2 t\n1 G 0 2 5 1\n2 A 1 3 0 2\n", "x.ct line 2: partner 5 of base 1 out of range"),
    ("x.dbn", ">a\nGGAC\n((.)\n", "x.dbn line 3: unmatched '(' at position 1"),
    ("x.dbn", ">a\nGGAC\n(..)\n>b\nGG\n(.).\n", "x.dbn line 6: structure length 4 != sequence length 2"),
    ("x.dbn", ">a\nGG\n..\nGG\n", "x.dbn line 4: expected '>name' header"),
    ("x.dbn", ">a\nGG\n", "x.dbn line 2: record 'a' ends without a structure"),
    ("x.pairs", "1 5\n2 4\n3 5\n", "x.pairs line 3: base 5 already paired on line 1"),
    ("x.pairs", "2 4\n4 2\n", "x.pairs line 2: pair '4 2' written twice (first on line 1 as '2 4')"),
    ("x.pairs", "#Length: 4\n1 5\n", "x.pairs line 2: pair '1 5' lies outside the sequence (1..4)"),
    ("x.pairs", "1 5 7\n", "x.pairs line 1: expected 2 columns"),
    ("x.pairs", "1 5.0\n", "x.pairs line 1: pair '1 5.0' is not 'i j' with positive integers"),
]


@pytest.mark.parametrize("fname, text, msg", MALFORMED)
def test_malformed_files(tmp_path, fname, text, msg):
    (tmp_path / fname).write_text(text)
    with pytest.raises(StructureError) as ei:
        list(read_structures(tmp_path / fname))
    assert msg in str(ei.value)


def test_malformed_archiveii_csv(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text('id,sequence,len,structure,base_pairs\nok,GGAC,4,(..),"[[1, 4]]"\nbad,GGAC,4,(..),"[[1, 9]]"\n')
    with pytest.raises(StructureError, match="a.csv line 3: base_pairs"):
        list(read_archiveii_csv(p))
    p.write_text('id,sequence,len,structure,base_pairs\nbad,GGAC,5,(..),"[[1, 4]]"\n')
    with pytest.raises(StructureError, match="a.csv line 2: len 5"):
        list(read_archiveii_csv(p))


def test_ct_tarball_synthetic(tmp_path):
    recs = [record(parse_dotbracket(db), f"r{k}") for k, db in enumerate(["((..))", "(.[.).]"])]
    for r in recs:
        write_structures(r, tmp_path / f"{r.name}.ct")
    (tmp_path / "README.txt").write_text("not a ct\n")
    tar_path = tmp_path / "cts.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for name in ("README.txt", "r0.ct", "r1.ct"):
            tar.add(tmp_path / name, arcname=f"ct_raw/{name}")
    assert list(iter_ct_tarball(tar_path)) == recs
    assert len(list(iter_ct_tarball(tar_path, limit=1))) == 1


# ------------------------------------------------------------ real data


def _check_record(r: Structure) -> None:
    p = r.pairs
    L = len(p)
    assert L > 0 and len(r.seq) == L
    paired = np.flatnonzero(p >= 0)
    assert np.all(p[p[paired]] == paired)
    assert np.all(p[paired] != paired) and np.all(p < L)


@pytest.mark.data
def test_ts0_dbn():
    path = data_file("ss/bprna/TS0.dbn")
    recs = list(read_structures(path))
    assert len(recs) == 1305
    raw = path.read_text().split("\n")
    for r, db in zip(recs, raw[2::3]):
        _check_record(r)
        assert np.array_equal(parse_dotbracket(to_dotbracket(r.pairs)), r.pairs)
        assert np.array_equal(parse_dotbracket(db), r.pairs)
    assert min(map(len, recs)) >= 22 and max(map(len, recs)) <= 499
    assert sum(1 for r in recs if "[" in r.dotbracket) > 0


@pytest.mark.data
def test_archiveii_ct_tarball_sample():
    path = data_file("ss/archiveII/archiveII_ct.tar.gz")
    recs = list(iter_ct_tarball(path, limit=150))
    assert len(recs) == 150
    assert len({r.name for r in recs}) == 150
    for r in recs:
        _check_record(r)
        assert np.array_equal(parse_dotbracket(to_dotbracket(r.pairs)), r.pairs)


@pytest.mark.data
def test_archiveii_csv_matches_dotbracket_and_ct():
    path = data_file("ss/archiveII/ArchiveII.csv")
    recs = list(read_archiveii_csv(path))
    assert len(recs) == 3864
    for r in recs[:300]:
        _check_record(r)
    by_name = {r.name: r for r in recs}
    ct = list(iter_ct_tarball(data_file("ss/archiveII/archiveII_ct.tar.gz"), limit=60))
    shared = [c for c in ct if c.name in by_name]
    assert shared
    for c in shared:
        assert np.array_equal(by_name[c.name].pairs, c.pairs)
        assert by_name[c.name].seq.upper() == c.seq.upper()


# ------------------------------------------------------------ pair probabilities
def test_sparse_and_dense_probs():
    from resm.structure.pair_probs import dense_probs, sparse_probs

    M = np.zeros((5, 5), np.float32)
    M[0, 4], M[4, 0] = 0.8, 0.6  # symmetrised 0.7
    M[1, 3] = 0.4  # symmetrised 0.2
    i, j, p = sparse_probs(M, min_p=0.1)
    assert i.tolist() == [0, 1] and j.tolist() == [4, 3] and np.allclose(p, [0.7, 0.2])
    assert len(sparse_probs(M, min_p=0.5)[0]) == 1
    # sparse in either order (and as a mapping) gives the same, duplicates keep the larger p
    i2, j2, p2 = sparse_probs(([4, 1, 0], [0, 3, 4], [0.7, 0.2, 0.1]))
    assert i2.tolist() == [0, 1] and j2.tolist() == [4, 3] and np.allclose(p2, [0.7, 0.2])
    i3, _, _ = sparse_probs({"i": np.array([1]), "j": np.array([3]), "p": np.array([0.2])})
    assert i3.tolist() == [1]
    D = dense_probs((i2, j2, p2), 5)
    assert D.shape == (5, 5) and np.allclose(D, D.T) and np.isclose(D[4, 0], 0.7)
    with pytest.raises(ValueError, match="out of range"):
        dense_probs(([0], [9], [0.5]), 5)
    with pytest.raises(ValueError, match="differ in length"):
        sparse_probs(([0, 1], [4], [0.5]))


def test_a_structure_prints_in_one_short_line():
    long = Structure("r", "ACGU" * 1000, np.full(4000, -1))
    long.pairs[0], long.pairs[3999] = 3999, 0
    text = repr(long)
    assert text == "Structure(name='r', length=4000, pairs=1, seq='ACGUACGUACGUACGUACGUACGUACGUACGUACGUA...')"
    short = Structure("s", "GGGAAACCC", parse_dotbracket("(((...)))"), {"eF1": 0.5})
    short.alternatives.append(Structure("rnafold", "GGGAAACCC", parse_dotbracket(".........")))
    assert repr(short) == (
        "Structure(name='s', length=9, pairs=3, seq='GGGAAACCC', scores={'eF1': 0.5}, alternatives=['rnafold'])"
    )
