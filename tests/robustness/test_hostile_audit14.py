"""The fourteenth hostile-input audit: structures and sequences as 3D-derived and other
non-bpRNA sources give them, in ``resm fold``, ``resm evaluate``, ``resm compare`` and the
structure readers.

* ``resm fold --reference`` refused a pair list whose bases sit in several pairs (the base
  triples of every 3D-derived structure) with "base 1 already paired on line 3", which reads as
  a malformed file; such a reference is now scored over every one of its pairs (the model and
  RNAfold alike), and ``--plot``, which draws one partner per base, refuses it in one line.
* SPOT-RNA's TSV pair tables (id, sequence, pairs: the format of ``ss/pdb/TR1.tsv`` and of
  the 3D-derived sets like it) were no input of ``resm fold`` ("a bare sequence holds
  whitespace") and no ``--reference``; they are both (``.tsv``, or told by the header line),
  a base triple kept as in a pair list; ``--non-canonical``'s pairs, refused with
  ``--reference`` ("reads one partner per base"), are scored against it, every pair.
* A structure needing more than dot-bracket's 30 bracket kinds was refused by the writers as
  "more than 30 pseudoknot levels needed", naming no record; it now names the record, the
  structure and the formats that hold it.
* bpRNA's own dbn files (``#Name:``, ``#Length:``, ``#PageNumber:`` comments, then the
  sequence and the dot-bracket) were refused ("expected '>name' header"); they are read as
  ``>name`` records, a ``#Length:`` that is not the sequence's refused naming its line. A
  sequence wrapped over two lines was said as "unmatched 'A' at position 2" (its letters read
  as pseudoknot brackets); it is now said as nucleotide letters where the dot-bracket is due,
  and a record of one line (its sequence or its structure missing) as such, where the next
  header was read as its dot-bracket ("structure length 2 != sequence length 16").
* The Comparative RNA Web site's bpseq files, whose header lines (``Filename:``,
  ``Organism:``, ...) have no ``#``, were refused on line 1; those lines are passed over.
* A bpseq or ct row repeating the base before it (how some tools list a base triple) was
  "index 1, expected 2"; it is said as a base listed twice, which needs a pair list.
* A ct header that gives fewer bases than its block has rows was said as a fault of a later
  line ("index 18, expected 1", "ct block starting line 19 has 0 of 18 rows": the next row read
  as a header) or of a partner ("out of range 1..14"); both now name the header's count.
"""

from __future__ import annotations

import numpy as np
import pytest

from resm.structure.io import StructureError, iter_ct
from resm.structure.metrics import f1_score
from resm.structure.pairsets import PairSet
from resm.structure.report import score_record
from tests.conftest import resm_main
from tests.robustness.cases import Case, check_one_line, write

HAIRPIN = "GGGCGCAAAAGCGCCC"
STEM = [(1, 16), (2, 15), (3, 14), (4, 13), (5, 12), (6, 11)]


def pair_set(pairs, length: int) -> PairSet:
    return PairSet(np.asarray([(i - 1, j - 1) for i, j in pairs], dtype=np.int64), length)


def partners(pairs, length: int) -> np.ndarray:
    p = np.full(length, -1, dtype=np.int64)
    for i, j in pairs:
        p[i - 1], p[j - 1] = j - 1, i - 1
    return p


# ---------------------------------------------------------------- references with base triples
def test_a_reference_with_base_triples_scores_every_pair_by_hand():
    """Reference: the stem, base 1 in a second pair (1, 8) and a pair of span 3 (2, 5), 8 pairs;
    prediction: 5 of the stem, (6, 10) one off the true (6, 11), and (7, 9), 7 pairs."""
    ref = pair_set([*STEM, (1, 8), (2, 5)], 16)
    pred = partners([*STEM[:5], (6, 10), (7, 9)], 16)
    row = score_record("h", HAIRPIN, pred, ref, rnafold_pairs=pred)
    assert (row["length"], row["n_ref"], row["n_pred"]) == (16, 8, 7)
    assert row["f1"] == pytest.approx(2 * 5 / (7 + 8))  # strict: the 5 stem pairs
    # shifted: 6 of 7 predicted pairs are right ((6, 10) by (6, 11)); 6 of 8 true pairs are found
    # ((1, 8) and (2, 5) have no predicted pair one index away)
    p, r = 6 / 7, 6 / 8
    assert row["f1_shift"] == pytest.approx(2 * p * r / (p + r)) == pytest.approx(0.8)
    tp, fp, fn = 5, 2, 3
    tn = 16 * 15 // 2 - tp - fp - fn
    mcc = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert row["mcc"] == pytest.approx(mcc)
    assert (row["rnafold_f1"], row["rnafold_f1_shift"], row["rnafold_mcc"]) == (row["f1"], row["f1_shift"], row["mcc"])


def test_fold_reference_scores_a_pair_list_with_a_base_triple(tmp_path):
    """The shipped model and RNAfold scored over every pair of a 3D-style pair list: base 1 sits
    in two pairs (it was refused, 'base 1 already paired on line 3')."""
    fa = tmp_path / "h.fa"
    fa.write_text(f">h1\n{HAIRPIN}\n")
    ref = tmp_path / "ref.pairs"
    ref.write_text("#Name: h1\n#Length: 16\n" + "".join(f"{i} {j}\n" for i, j in [*STEM, (1, 8)]))
    p = resm_main("fold", fa, "--reference", ref, "-o", tmp_path / "o.dbn", "--threads", "1")
    header, row = p.stdout.splitlines()[:2]
    got = dict(zip(header.split("\t"), row.split("\t")))
    assert (got["id"], got["length"], got["n_ref"]) == ("h1", "16", "7")
    from resm.structure.folders import rnafold
    from resm.structure.io import read_structure

    truth = pair_set([*STEM, (1, 8)], 16)
    pred = read_structure(tmp_path / "o.dbn").pairs
    assert float(got["f1"]) == pytest.approx(f1_score(pred, truth), abs=5e-5)
    assert float(got["rnafold_f1"]) == pytest.approx(f1_score(rnafold(HAIRPIN)[0], truth), abs=5e-5)
    assert float(got["f1"]) < 1  # (1, 8) cannot be predicted beside (1, 16)


def test_a_pair_list_reference_without_a_triple_is_still_a_partner_array(tmp_path):
    from resm.structure.pipeline import read_reference

    ref = tmp_path / "r.pairs"
    ref.write_text("#Name: a\n#Length: 9\n1 9\n2 8\n")
    got = read_reference(ref, [("a", 9)], {"a": "GGGAAACCC"})
    assert got["a"].tolist() == [8, 7, -1, -1, -1, -1, -1, 1, 0]
    ref.write_text("#Name: a\n1 9\n2 8\n2 9\n")  # no #Length: the largest index, 9
    got = read_reference(ref, [("a", 9)], {"a": "GGGAAACCC"})
    assert isinstance(got["a"], PairSet) and got["a"].ij.tolist() == [[0, 8], [1, 7], [1, 8]]


# ---------------------------------------------------------------- pair tables (the 3D-derived sets' TSV)
TABLE = (
    "id\tsequence\tpairs\n"
    f"t1 desc\t{HAIRPIN.lower().replace('u', 't')}\t" + " ".join(f"{i}:{j}" for i, j in [*STEM, (1, 8)]) + "\n"
    "t2\tGGGAAAPCCC\t1:10 2:9 3:8\n"
)


def test_a_pair_table_is_fold_input_and_reference(tmp_path):
    """SPOT-RNA's TSV pair tables (``ss/pdb/TR1.tsv``: id, sequence, pairs) were refused by resm
    fold as input ("a bare sequence holds whitespace") and as --reference (no format). Read as
    input (by extension or by its header), as reference keeping every pair of a base triple."""
    import io

    from resm.structure.inputs import read_sequences
    from resm.structure.pipeline import read_reference

    path = tmp_path / "set.tsv"
    path.write_text(TABLE)
    want = [("t1", HAIRPIN.lower().replace("u", "t")), ("t2", "GGGAAAPCCC")]
    assert read_sequences(path) == want
    assert read_sequences("-", stdin=io.StringIO(TABLE)) == want
    (tmp_path / "set.txt").write_text(TABLE)
    assert read_sequences(tmp_path / "set.txt") == want
    got = read_reference(path, [("t2", 10), ("t1", 16)], {"t1": HAIRPIN, "t2": "GGGAAAUCCC"})
    assert isinstance(got["t1"], PairSet) and got["t1"].ij.tolist() == [[0, 7], *[[i - 1, j - 1] for i, j in STEM]]
    assert got["t2"].tolist() == [9, 8, 7, -1, -1, -1, -1, 2, 1, 0]  # no triple: a partner array
    with pytest.raises(
        Exception, match=r"record 't1': the reference's sequence differs from the input's at position 2"
    ):
        read_reference(path, [("t1", 16)], {"t1": "G" + "A" * 15})


def test_fold_scores_a_pair_table_reference_over_every_pair(tmp_path):
    from resm.structure.io import read_structures

    (tmp_path / "set.tsv").write_text(TABLE)
    p = resm_main("fold", tmp_path / "set.tsv", "--reference", tmp_path / "set.tsv", "-o", tmp_path / "o.dbn")
    rows = [dict(zip(p.stdout.splitlines()[0].split("\t"), r.split("\t"))) for r in p.stdout.splitlines()[1:]]
    assert [(r["id"], r["length"], r["n_ref"]) for r in rows] == [("t1", "16", "7"), ("t2", "10", "3")]
    pred = {r.name: r.pairs for r in read_structures(tmp_path / "o.dbn")}
    truth = pair_set([*STEM, (1, 8)], 16)
    assert float(rows[0]["f1"]) == pytest.approx(f1_score(pred["t1"], truth), abs=5e-5)


def test_fold_non_canonical_is_scored_against_a_3d_reference(data, tmp_path):
    """--non-canonical with --reference was refused ('--reference reads one partner per base'):
    the added pairs and base triples are now scored, every pair of the prediction (as written
    in its pair list) against every pair of the reference, on VL1's first records."""
    from resm.structure.pairsets import parse_pair_list, read_pair_table

    lines = (data / "ss/pdb/VL1.tsv").read_text().splitlines()[:4]
    (tmp_path / "v.tsv").write_text("\n".join(lines) + "\n")
    refs = {r.name: r.pairs for r in read_pair_table(tmp_path / "v.tsv")}
    p = resm_main(
        "fold", tmp_path / "v.tsv", "--reference", tmp_path / "v.tsv", "--non-canonical", "--format", "pairs",
        "--split-dir", tmp_path / "out", "--report", tmp_path / "r.tsv", "--threads", "1",
    )  # fmt: skip
    rows = (tmp_path / "r.tsv").read_text().splitlines()
    header = rows[0].split("\t")
    assert len(rows) == 4, p.stderr
    for row in rows[1:]:
        got = dict(zip(header, row.split("\t")))
        pred = parse_pair_list((tmp_path / "out" / f"{got['id']}.pairs").read_text()).pairs
        assert int(got["n_pred"]) == pred.n_pairs and int(got["n_ref"]) == refs[got["id"]].n_pairs
        assert float(got["f1"]) == pytest.approx(f1_score(pred, refs[got["id"]]), abs=5e-5)
        assert float(got["f1_shift"]) == pytest.approx(f1_score(pred, refs[got["id"]], shift=True), abs=5e-5)


# ---------------------------------------------------------------- ct headers that give too few bases
def ct_text(seq: str, partner: list[int], header_n: int) -> str:
    n = len(seq)
    rows = [f"{i} {b} {i - 1} {i + 1 if i < n else 0} {j} {i}" for i, (b, j) in enumerate(zip(seq, partner), 1)]
    return f"{header_n} h1\n" + "\n".join(rows) + "\n"


PARTNER = [16, 15, 14, 13, 12, 11, 0, 0, 0, 0, 6, 5, 4, 3, 2, 1, 0, 0]


@pytest.mark.parametrize("header_n", [16, 17])
def test_a_ct_header_giving_too_few_bases_is_named(header_n):
    text = ct_text(HAIRPIN + "AA", PARTNER, header_n)
    with pytest.raises(StructureError) as e:
        list(iter_ct(text.splitlines(), "x.ct"))
    assert str(e.value) == (
        f"x.ct line {header_n + 2}: row {header_n + 1} continues the ct block starting line 1, whose header "
        f"gives {header_n} bases"
    )


def test_a_ct_partner_past_the_headers_count_names_the_header():
    text = ct_text(HAIRPIN + "AA", PARTNER, 14)
    with pytest.raises(StructureError) as e:
        list(iter_ct(text.splitlines(), "x.ct"))
    header = "(the ct header on line 1 gives 14 bases)"
    assert str(e.value) == f"x.ct line 2: partner 16 of base 1 out of range 1..14 {header}"


def test_ct_records_one_after_the_other_still_read():
    one = ct_text(HAIRPIN, PARTNER[:16], 16)
    recs = list(iter_ct((one + one.replace("h1", "h2")).splitlines(), "x.ct"))
    assert [r.name for r in recs] == ["h1", "h2"] and all(len(r) == 16 for r in recs)


# ---------------------------------------------------------------- bpRNA's dbn files
BPRNA_DBN = f"#Name: bpRNA_PDB_1\n#Length:  16\n#PageNumber: 1\n{HAIRPIN}\n((((((....))))))\n"


def test_bprna_dbn_records_are_read_as_fold_input_and_reference(tmp_path):
    """bpRNA's dbn files open a record with '#Name:', '#Length:', '#PageNumber:' comments: they
    were refused ("expected '>name' header, got '#Name: bpRNA_PDB_1'"), from a file or a pipe."""
    import io

    from resm.structure.inputs import read_sequences
    from resm.structure.io import read_structures
    from resm.structure.pipeline import read_reference

    two = BPRNA_DBN + BPRNA_DBN.replace("bpRNA_PDB_1", "bpRNA_PDB_2")
    path = tmp_path / "b.dbn"
    path.write_text(two)
    want = [("bpRNA_PDB_1", HAIRPIN), ("bpRNA_PDB_2", HAIRPIN)]
    assert read_sequences(path) == want
    assert read_sequences("-", stdin=io.StringIO(two)) == want  # no extension: told by the text
    recs = list(read_structures(path))
    assert [r.name for r in recs] == ["bpRNA_PDB_1", "bpRNA_PDB_2"]
    assert all(r.pairs.tolist() == partners(STEM, 16).tolist() for r in recs)
    got = read_reference(path, [("bpRNA_PDB_2", 16)], {"bpRNA_PDB_2": HAIRPIN.lower()})
    assert got["bpRNA_PDB_2"].tolist() == partners(STEM, 16).tolist()


def test_a_crw_bpseq_header_is_passed_over(tmp_path):
    """The Comparative RNA Web site's bpseq files open with 'Filename:', 'Organism:', 'Accession
    Number:' and 'Citation ...' lines: refused as "line 1: expected 3 columns 'i base j', got 2"."""
    from resm.structure.inputs import read_sequences
    from resm.structure.io import read_structure

    head = (
        "Filename: d.5.e.E.coli.bpseq\nOrganism: Escherichia coli\nAccession Number: V00336\n"
        "Citation and related information available at http://www.rna.ccbb.utexas.edu\n"
    )
    path = tmp_path / "crw.bpseq"
    path.write_text(head + "".join(f"{i} {b} {j}\n" for i, (b, j) in enumerate(zip(HAIRPIN, PARTNER), 1)))
    rec = read_structure(path)
    assert (rec.name, rec.seq, rec.pairs.tolist()) == ("crw", HAIRPIN, partners(STEM, 16).tolist())
    assert read_sequences(path) == [("crw", HAIRPIN)]
    path.write_text("1 G 0\n" + head)  # after the first row they are no header
    with pytest.raises(StructureError, match=r"crw.bpseq line 2: expected 3 columns 'i base j', got 2$"):
        read_structure(path)


FA = ">h1\n" + HAIRPIN + "\n"
TRIPLE = "#Name: h1\n#Length: 16\n1 16\n2 15\n3 14\n4 13\n5 12\n6 11\n1 8\n"
CASES = [
    Case(
        "fold/reference-triple-with-plot",
        ["fold", "{t}/h.fa", "--reference", "{t}/r.pairs", "--plot", "{t}/plots", "--threads", "1"],
        1,
        [
            "{t}/r.pairs: record 'h1' has a base in several pairs, which --plot cannot draw (one partner per "
            "base); leave out --plot to score it"
        ],
        lambda p: (write("h.fa", FA)(p), write("r.pairs", TRIPLE)(p)),
    ),
    Case(
        "fold/bprna-dbn-length-not-the-sequences",
        ["fold", "{t}/b.dbn", "-o", "{t}/o.dbn", "--threads", "1"],
        1,
        ["{t}/b.dbn line 2: #Length: 17, but the sequence on line 4 has 16 nt"],
        write("b.dbn", BPRNA_DBN.replace("16", "17")),
    ),
    Case(
        "fold/reference-dbn-sequence-wrapped",  # was "unmatched 'A' at position 2", read as pseudoknot letters
        ["fold", "{t}/h.fa", "--reference", "{t}/r.dbn", "--threads", "1"],
        1,
        [
            "{t}/r.dbn line 3: expected the dot-bracket, got nucleotide letters (a dbn record holds its sequence "
            "on one line)"
        ],
        lambda p: (write("h.fa", FA)(p), write("r.dbn", f">h1\n{HAIRPIN[:8]}\n{HAIRPIN[8:]}\n((((((....))))))\n")(p)),
    ),
    Case(
        "fold/reference-dbn-record-without-its-structure",  # was "structure length 2 != sequence length 16"
        ["fold", "{t}/h.fa", "--reference", "{t}/r.dbn", "--threads", "1"],
        1,
        ["{t}/r.dbn line 3: record 'h1' holds one line where a sequence and a dot-bracket are due"],
        lambda p: (write("h.fa", FA)(p), write("r.dbn", f">h1\n{HAIRPIN}\n>h2\n{HAIRPIN}\n((((((....))))))\n")(p)),
    ),
    Case(
        "fold/bpseq-base-listed-twice",  # a 3D tool's base triple: was "index 1, expected 2"
        ["fold", "{t}/t.bpseq", "-o", "{t}/o.dbn", "--threads", "1"],
        1,
        [
            "{t}/t.bpseq line 2: base 1 listed again (first on line 1): a base in two pairs needs a pair list "
            "(.pairs), as bpseq and ct give each base one partner"
        ],
        write("t.bpseq", "1 G 6\n1 G 4\n2 G 5\n3 A 0\n4 A 1\n5 C 2\n6 C 1\n"),
    ),
    Case(
        "fold/ct-input-header-too-short",
        ["fold", "{t}/x.ct", "-o", "{t}/o.dbn", "--threads", "1"],
        1,
        ["{t}/x.ct line 18: row 17 continues the ct block starting line 1, whose header gives 16 bases"],
        write("x.ct", ct_text(HAIRPIN + "AA", PARTNER, 16)),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


# ---------------------------------------------------------------- more pseudoknot levels than dot-bracket has
def test_a_structure_past_dot_brackets_levels_is_refused_naming_the_record(tmp_path):
    """31 mutually crossing pairs need 31 bracket kinds, dot-bracket has 30: the writer said
    'more than 30 pseudoknot levels needed', naming no record and no way out; ct, bpseq and
    pairs write it."""
    from resm.structure.io import Structure, format_structures, read_structure, write_structures
    from resm.structure.partners import pairs_from_list

    k = 31
    rec = Structure("deep", "G" * 2 * k, pairs_from_list([(a, a + k) for a in range(k)], 2 * k))
    with pytest.raises(StructureError) as e:
        write_structures(rec, tmp_path / "o.dbn")
    assert str(e.value) == (
        "record 'deep': its structure needs more than 30 pseudoknot levels, more than dot-bracket has brackets "
        "for ([] {} <> Aa..Zz); ct, bpseq and pairs hold any pseudoknot"
    )
    assert not list(tmp_path.iterdir())
    for fmt in ("ct", "bpseq", "pairs"):
        write_structures(rec, tmp_path / f"o.{fmt}")
        assert read_structure(tmp_path / f"o.{fmt}") == rec
    flat = Structure("flat", rec.seq, np.full(2 * k, -1), alternatives=[Structure("Deep", rec.seq, rec.pairs)])
    with pytest.raises(StructureError, match=r"^record 'flat': its Deep structure needs more than 30 .*in dot-brack"):
        format_structures([flat], "bpseq")
