"""Structure files checked against independent references, on seeded random structures:
ViennaRNA's own parsers and writers (``RNA.ptable``, ``RNA.db_from_ptable``, ``RNA.db_pk_remove``,
its ct reader ``RNA.file_connect_read_record`` and FASTA reader ``RNA.file_fasta_read``) and the
format definitions written out here (ct: ``i base i-1 i+1 partner i``; bpseq: ``i base partner``,
0 = unpaired; all 1-based). Also what each format holds: a base in two pairs survives only the
pair list; dbn, ct and bpseq give each base one partner and refuse such a record."""

from __future__ import annotations

import io

import numpy as np
import pytest

from resm.fasta import parse_fasta
from resm.structure.decode import nested_subset
from resm.structure.inputs import read_sequences
from resm.structure.io import (
    Structure,
    StructureError,
    format_structures,
    iter_bpseq,
    iter_ct,
    iter_dbn,
    pair_list,
    pairs_from_list,
    parse_dotbracket,
    read_structures,
    to_dotbracket,
)
from resm.structure.pair_lists import iter_pairs
from resm.structure.pairsets import PairRecord, PairSet, format_pair_list, parse_pair_list

RNA = pytest.importorskip("RNA")


def random_structure(rng, L: int, min_loop: int = 3, tries: int | None = None) -> np.ndarray:
    """A random partner array: random pairs (j - i > min_loop) kept while both bases are free,
    so pseudoknots of any depth appear."""
    p = np.full(L, -1, dtype=np.int64)
    for _ in range(tries if tries is not None else L):
        i, j = sorted(rng.integers(0, L, 2).tolist())
        if j - i > min_loop and p[i] < 0 and p[j] < 0:
            p[i], p[j] = j, i
    return p


def random_nested(rng, L: int, min_loop: int = 3) -> np.ndarray:
    return nested_subset(random_structure(rng, L, min_loop))


def many_levels(k: int) -> np.ndarray:
    """k mutually crossing pairs (k dot-bracket levels)."""
    return pairs_from_list([(a, a + k) for a in range(k)], 2 * k)


def seq_of(rng, L: int) -> str:
    return "".join(rng.choice(list("ACGU"), L))


def vienna_ptable(p: np.ndarray) -> list[int]:
    return [len(p)] + [int(x) + 1 for x in p]


def levels_of(db: str) -> int:
    return len({c for c in db if c not in ".-,:_~"}) // 2


CASES = [(seed, int(L)) for seed, L in enumerate(np.random.default_rng(7).integers(5, 120, 300))]


# ------------------------------------------------------------------ dot-bracket
@pytest.mark.parametrize("k", [1, 2, 4, 5, 12, 30])
def test_dbn_round_trip_with_many_levels(k):
    p = many_levels(k)
    db = to_dotbracket(p)
    assert levels_of(db) == k
    assert np.array_equal(parse_dotbracket(db), p)
    assert [x - 1 for x in RNA.ptable(db, RNA.BRACKETS_ANY)[1:]] == p.tolist()


def test_dbn_write_read_and_viennarna_agree_on_random_structures():
    """For each random structure (nested or pseudoknotted, up to many levels): resm's string reads
    back to the pairs, ViennaRNA reads resm's string to the same pairs, resm reads ViennaRNA's
    string of the pairs to the same pairs, both use the same number of bracket levels, and a
    nested structure is written exactly as ViennaRNA writes it."""
    n_pk = 0
    for seed, L in CASES:
        rng = np.random.default_rng(seed)
        p = random_structure(rng, L) if seed % 3 else random_nested(rng, L)
        db = to_dotbracket(p)
        assert len(db) == L and np.array_equal(parse_dotbracket(db), p), db
        assert [x - 1 for x in RNA.ptable(db, RNA.BRACKETS_ANY)[1:]] == p.tolist(), db
        vdb = RNA.db_from_ptable(vienna_ptable(p))
        assert np.array_equal(parse_dotbracket(vdb), p), (db, vdb)
        assert levels_of(db) == levels_of(vdb), (db, vdb)
        if levels_of(db) <= 1:
            assert db == vdb
        n_pk += levels_of(db) > 1
        # the file round trip keeps name, sequence and pairs
        rec = Structure(f"r{seed}", seq_of(rng, L), p)
        assert list(iter_dbn(format_structures([rec], "dbn").splitlines())) == [rec]
    assert n_pk > 100  # the cases hold plenty of pseudoknots


def test_nested_subset_keeps_as_many_pairs_as_viennarna_pk_remove():
    """``--nested`` (a maximum nested subset) keeps as many pairs as ViennaRNA's
    ``db_pk_remove``, which removes the fewest pairs that make a structure pseudoknot free."""
    for seed, L in CASES:
        p = random_structure(np.random.default_rng(seed), L)
        kept = nested_subset(p)
        assert set(pair_list(kept)) <= set(pair_list(p))
        assert set(to_dotbracket(kept)) <= set("().")
        vr = RNA.db_pk_remove(to_dotbracket(p), RNA.BRACKETS_ANY)
        assert len(pair_list(kept)) == len(pair_list(parse_dotbracket(vr))), (to_dotbracket(p), vr)


# ------------------------------------------------------------------ ct and bpseq
def ct_reference(text: str) -> list[tuple[str, str, list[int]]]:
    """The format definition: header ``N title``, then N rows ``i base i-1 i+1 partner i``
    (1-based, partner 0 = unpaired, i+1 = 0 on the last row)."""
    lines = text.splitlines()
    out, k = [], 0
    while k < len(lines):
        n, _, title = lines[k].partition("\t")
        n = int(n)
        rows = [ln.split("\t") for ln in lines[k + 1 : k + 1 + n]]
        for r, row in enumerate(rows, 1):
            assert len(row) == 6
            assert (int(row[0]), int(row[2]), int(row[3]), int(row[5])) == (r, r - 1, r + 1 if r < n else 0, r)
        partners = [int(row[4]) for row in rows]
        assert all(partners[q - 1] == r for r, q in enumerate(partners, 1) if q)
        out.append((title, "".join(row[1] for row in rows), partners))
        k += 1 + n
    return out


def test_ct_matches_the_format_definition_and_viennarna_reader(tmp_path):
    recs = []
    for seed, L in CASES[:80]:
        rng = np.random.default_rng(seed)
        recs.append(Structure(f"rec {seed}", seq_of(rng, L), random_structure(rng, L)))
    text = format_structures(recs, "ct")
    parsed = ct_reference(text)
    assert [(t, s) for t, s, _ in parsed] == [(r.name, r.seq) for r in recs]
    assert [q for _, _, q in parsed] == [(r.pairs + 1).tolist() for r in recs]
    assert list(iter_ct(text.splitlines())) == recs
    path = tmp_path / "all.ct"
    path.write_text(text)
    rest = ""  # the reader hands back the line it read past (the next record's header)
    with open(path) as fh:
        for r in recs:
            status, name, seq, db, rest = RNA.file_connect_read_record(fh, rest)
            assert status and (name, seq) == (r.name, r.seq)
            assert np.array_equal(parse_dotbracket(db), r.pairs), r.name


def test_ct_reader_takes_other_tools_headers():
    """RNAstructure's ``N  ENERGY = x  title`` header (ViennaRNA's reader drops the energy too)."""
    rec = Structure("hp", "GGGGAAAACCCC", parse_dotbracket("((((....))))"))
    rows = format_structures([rec], "ct").splitlines()[1:]
    for header in ("12  ENERGY = -3.4  hp", "12 dG = -3.4 hp", "12\thp"):
        assert list(iter_ct([header, *rows])) == [rec]


def bpseq_reference(text: str) -> tuple[str, list[int]]:
    """The format definition: rows ``i base partner``, 1-based, 0 = unpaired; ``#`` comments."""
    rows = [ln.split() for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    return "".join(r[1] for r in rows), [int(r[2]) for r in rows]


def test_bpseq_matches_the_format_definition():
    for seed, L in CASES[:120]:
        rng = np.random.default_rng(seed)
        rec = Structure(f"r{seed}", seq_of(rng, L), random_structure(rng, L))
        text = format_structures([rec], "bpseq")
        seq, partners = bpseq_reference(text)
        assert seq == rec.seq
        assert partners == [q + 1 for q in rec.pairs.tolist()]
        assert all(partners[q - 1] == i for i, q in enumerate(partners, 1) if q)
        assert list(iter_bpseq(text.splitlines())) == [rec]


@pytest.mark.parametrize(
    "fmt, text, msg",
    [
        ("bpseq", "1 G 0\n2 A 1_0\n", "line 2: partner '1_0' is not an integer"),
        ("bpseq", "1 G 0\n\u0662 A 0\n", "line 2: index '\u0662' is not an integer"),
        ("ct", "2 x\n1 G 0 2 0 1\n2 C 1 0 0 \u0662\n", "line 3: column 6 '\u0662' is not an integer"),
        ("pairs", "#Length: 5\n1 5_0\n", "line 2: pair '1 5_0' is not 'i j' with positive integers"),
    ],
)
def test_integer_columns_are_ascii_digits(tmp_path, fmt, text, msg):
    """``int`` alone reads ``1_0`` as 10 and other scripts' digits as numbers: a column that is
    not written in 0-9 is a one-line error naming the file and line."""
    path = tmp_path / f"x.{fmt}"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(StructureError) as e:
        list(read_structures(path))
    assert str(e.value) == f"{path} {msg}"


@pytest.mark.parametrize("pairs", ["[[1.5, 9], [2, 8]]", '[["1", "9"]]', "[[1, null]]"])
def test_archiveii_pairs_must_be_integers(tmp_path, pairs):
    """ArchiveII's ``base_pairs`` JSON: 1.5 was truncated to base 1, "1" read as 1, and null was a
    bare TypeError; each is a one-line error naming the file and line."""
    from resm.structure.io import read_archiveii_csv

    path = tmp_path / "a.csv"
    cell = pairs.replace('"', '""')  # a CSV cell in quotes
    path.write_text(f'id,sequence,len,structure,base_pairs\nx,GGGAAACCC,9,(((...))),"{cell}"\n')
    with pytest.raises(StructureError, match=r"^a\.csv line 2: base_pairs: pair indices must be integers, got "):
        list(read_archiveii_csv(path))


# ------------------------------------------------------------------ pair lists and multiplets
def random_pair_set(rng, L: int, max_per_base: int = 3) -> PairSet:
    """Random pairs where a base may sit in up to ``max_per_base`` pairs (multiplets)."""
    count = np.zeros(L, dtype=int)
    ij = set()
    for _ in range(L):
        i, j = sorted(rng.integers(0, L, 2).tolist())
        if j > i and count[i] < max_per_base and count[j] < max_per_base and (i, j) not in ij:
            ij.add((i, j))
            count[i] += 1
            count[j] += 1
    return PairSet(np.array(sorted(ij), dtype=np.int64).reshape(-1, 2), L)


def test_pair_list_keeps_every_pair_of_a_multiplet():
    n_multi = 0
    for seed, L in CASES[:150]:
        rng = np.random.default_rng(seed)
        ps = random_pair_set(rng, L)
        rec = PairRecord(f"r{seed}", seq_of(rng, L), ps)
        back = parse_pair_list(format_pair_list(rec), "x.pairs")
        assert (back.name, back.seq) == (rec.name, rec.seq) and back.pairs == ps
        n_multi += ps.multiplet_bases() > 0
    assert n_multi > 100


def test_one_partner_formats_refuse_a_multiplet(tmp_path):
    """dbn, ct and bpseq hold one partner per base: a base in two pairs cannot become a
    :class:`Structure`, and resm's one-partner reader of pair lists names the line."""
    rec = PairRecord("tri", "GGGAAACCCAAAG", PairSet(np.array([[0, 8], [0, 12], [1, 7]]), 13))
    text = format_pair_list(rec)
    with pytest.raises(StructureError, match="base 0 appears in more than one pair"):
        pairs_from_list(rec.pairs.ij, 13)
    path = tmp_path / "tri.pairs"
    path.write_text(text)
    with pytest.raises(StructureError) as e:
        list(read_structures(path))
    assert str(e.value) == f"{path} line 5: base 1 already paired on line 4"
    # without the multiplet the two readers agree, and every format holds it
    one = PairRecord("duo", rec.seq, PairSet(np.array([[0, 8], [1, 7]]), 13))
    s = next(iter_pairs(format_pair_list(one).splitlines()))
    assert pair_list(s.pairs) == [tuple(x) for x in one.pairs.ij.tolist()] and s.seq == one.seq
    for fmt in ("dbn", "ct", "bpseq", "pairs"):
        back = next(
            {"dbn": iter_dbn, "ct": iter_ct, "bpseq": iter_bpseq, "pairs": iter_pairs}[fmt](
                format_structures([s], fmt).splitlines()
            )
        )
        assert back == s, fmt


@pytest.mark.parametrize(
    "text, msg",
    [
        ("#Length: 5\n1 \u00b2\n", "x.pairs line 2: pair '1 \u00b2' is not 'i j' with positive integers"),
        ("#Length: 5\n\u0661 5\n", "x.pairs line 2: pair '\u0661 5' is not 'i j' with positive integers"),
        ("#Length: \u00b2\n", "x.pairs line 1: length '\u00b2' is not a whole number"),
        ("#Length: 5\n1 5\n2 4\n1 5\n", "x.pairs line 4: pair '1 5' written twice (first on line 2)"),
        ("#Length: 5\n1 6\n", "x.pairs line 2: pair '1 6' lies outside the sequence (1..5)"),
        ("#Length: 5\n3 3\n", "x.pairs line 2: pair '3 3' pairs base 3 with itself"),
    ],
)
def test_pair_list_bad_lines_name_the_line(text, msg):
    """Digits other than 0-9 were a bare ``invalid literal for int()`` (no file, no line); a
    pair written twice named no line."""
    with pytest.raises(StructureError) as e:
        parse_pair_list(text, "x.pairs")
    assert str(e.value) == msg


# ------------------------------------------------------------------ FASTA and RNAfold-style text
def test_fasta_reader_agrees_with_viennarna(tmp_path):
    rng = np.random.default_rng(3)
    recs = [(f"s{k}", seq_of(rng, int(rng.integers(1, 200)))) for k in range(60)]
    lines = []
    for k, (name, seq) in enumerate(recs):
        lines.append(f">{name} description {k}")
        width = int(rng.integers(10, 80))
        for a in range(0, len(seq), width):
            lines.append(seq[a : a + width])
            if rng.random() < 0.1:
                lines.append("")
    path = tmp_path / "x.fa"
    path.write_text("\n".join(lines) + "\n")
    ours = [(r.id, r.seq) for r in parse_fasta(lines)]
    assert ours == recs
    theirs = []
    with open(path) as fh:
        while True:
            status, header, seq, _ = RNA.file_fasta_read(fh)
            if not seq:
                break
            theirs.append((header.lstrip(">").split()[0], seq))
    assert theirs == recs
    assert read_sequences(path) == recs


def test_resm_fold_output_is_read_back_as_dot_bracket(tmp_path):
    """``resm fold``'s own output (notes after the structure, pseudoknot letters) is recognised as
    dot-bracket records from a pipe or a file without a structure extension; it was taken for
    FASTA and the structure line joined to the sequence ('symbol '(' ... is not a nucleotide')."""
    rng = np.random.default_rng(11)
    recs = [Structure(f"r{k}", seq_of(rng, 40), random_structure(rng, 40), {"eF1": 0.5}) for k in range(5)]
    recs.append(Structure("deep", "G" * 60, many_levels(30), {"eF1": 0.25, "MFE": -1.5}))
    recs[0].alternatives.append(Structure("RNAfold", recs[0].seq, random_nested(rng, 40), {"MFE": -3.2}))
    text = format_structures(recs, "dbn")
    want = [(r.name, r.seq) for r in recs]
    assert read_sequences("-", stdin=io.StringIO(text)) == want
    (tmp_path / "out.txt").write_text(text)
    assert read_sequences(tmp_path / "out.txt") == want


@pytest.mark.parametrize("fmt", ["dbn", "ct", "bpseq"])
def test_every_written_format_is_recognised_from_a_pipe(fmt):
    """What resm writes, read back from standard input (no extension to go by) as the records'
    ids and sequences; a ct title ending in a number ('11  tRNA 5') made its header look like a
    bpseq row ('index 11, expected 1')."""
    rng = np.random.default_rng(13)
    n = 1 if fmt == "bpseq" else 6
    recs = [Structure(f"tRNA{k} {k + 1}", seq_of(rng, 30), random_structure(rng, 30), {"eF1": 0.5}) for k in range(n)]
    text = format_structures(recs, fmt)  # ct leaves the scores out
    assert read_sequences("-", stdin=io.StringIO(text)) == [(f"tRNA{k}", r.seq) for k, r in enumerate(recs)]


def rnafold_p_text(name: str, seq: str) -> tuple[str, str, float]:
    """What ``RNAfold -p --MEA`` prints for one record, built from ViennaRNA's own calls."""
    fc = RNA.fold_compound(seq)
    db, mfe = fc.mfe()
    fc.exp_params_rescale(mfe)
    pf_db, g = fc.pf()
    cent, dist = fc.centroid()
    mea, mea_acc = fc.MEA(1.0)
    lines = [
        f">{name}",
        seq,
        f"{db} ({mfe:6.2f})",
        f"{pf_db} [{g:6.2f}]",
        f"{cent} {{{fc.eval_structure(cent):6.2f} d={dist:.2f}}}",
        f"{mea} {{{fc.eval_structure(mea):6.2f} MEA={mea_acc:.2f}}}",
        " frequency of mfe structure in ensemble 0.1; ensemble diversity 2.00  ",
    ]
    return "\n".join(lines) + "\n", db, mfe


def test_rnafold_output_energy_is_the_printed_structures():
    """An RNAfold record read by resm: the structure is the MFE line's and its ``energy`` is that
    structure's free energy by ViennaRNA's ``eval_structure`` (to the printed 0.01)."""
    rng = np.random.default_rng(5)
    text, want = "", []
    for k in range(25):
        seq = seq_of(rng, int(rng.integers(15, 90)))
        t, db, mfe = rnafold_p_text(f"r{k}", seq)
        text += t
        want.append((seq, db))
    recs = list(iter_dbn(text.splitlines()))
    assert [(r.seq, to_dotbracket(r.pairs)) for r in recs] == want
    for r in recs:
        assert r.scores["energy"] == pytest.approx(RNA.fold_compound(r.seq).eval_structure(r.dotbracket), abs=0.005)
    assert read_sequences("-", stdin=io.StringIO(text)) == [(r.name, r.seq) for r in recs]


def test_reported_energies_agree_with_eval_structure():
    """Where resm reports an energy (``--mfe``: the sequence's minimum free energy; ``--compare
    rnafold``: RNAfold's structure with its ``MFE``), it is ViennaRNA's ``eval_structure`` of
    RNAfold's structure, written and read back to the printed 0.01; sequences with T, lower
    case and N included (resm folds them as U, upper case and N)."""
    from resm.structure.pipeline import annotate

    rng = np.random.default_rng(9)
    letters = list("ACGUACGUACGUacgutTN")
    for k in range(40):
        seq = "".join(rng.choice(letters, int(rng.integers(10, 90))))
        rec = Structure(f"r{k}", seq, random_nested(rng, len(seq)))
        noted, _ = annotate(rec, None, score=False, mfe=True, compare="rnafold")
        back = next(iter_dbn(format_structures([noted], "dbn").splitlines()))
        (alt,) = back.alternatives
        assert alt.name == "RNAfold"
        vienna = "".join(c if c in "ACGU" else "N" for c in seq.upper().replace("T", "U"))
        energy = RNA.fold_compound(vienna).eval_structure(alt.dotbracket)
        assert alt.scores["MFE"] == pytest.approx(energy, abs=0.005)
        assert back.scores["MFE"] == alt.scores["MFE"]
        assert energy == pytest.approx(RNA.fold_compound(vienna).mfe()[1], abs=1e-9)
