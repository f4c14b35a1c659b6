"""Leftovers of the fourteenth hostile-input audit (:mod:`tests.robustness.test_hostile_audit14`):
structure inputs as other tools write them.

* A dbn structure line whose energy follows a tab (``((..))<TAB>(-3.20)``) was refused as
  "structure length 21 != 16", the note read as dot-bracket; the dot-bracket now ends at the
  first whitespace, a space (as RNAfold writes it) or a tab, and a line with no note after it
  says so.
* A pair written ``j:i`` (i < j) in a pair table or ``j i`` in a pair list was refused ("needs
  i < j"), while 3D-derived tables from other tools write pairs either way round; it is read as
  ``i:j``, and a pair written once each way is refused as written twice, naming file and line.
* A ct or bpseq base given as a residue name (``PSU``, ``5MC``, ``H2U``, as 3D-annotation tools
  write modified bases) was refused ("base 'PSU' is not a single letter"); it is read as ``N``
  at its position, as the sequence readers read a single letter such as ``P``.
* ``resm compare`` refused a ``.tsv`` pair table as a structure set with "its extension names no
  structure format ...; give it one of the extensions .dbn, ..." (renamed, it could not be read),
  naming no config key. Its probe and head train on one partner per base, which a pair table's
  base multiplets do not fit, so it stays refused, saying which formats compare reads and that
  pair tables are read by ``resm fold --reference``, ``resm evaluate`` and ``resm finetune``.
"""

from __future__ import annotations

import pytest

from resm.structure.io import StructureError, iter_dbn, read_structure, read_structures
from tests.conftest import resm_main
from tests.robustness.cases import Case, check_one_line, write

HAIRPIN = "GGGCGCAAAAGCGCCC"
DB = "((((((....))))))"
FA = ">h1\n" + HAIRPIN + "\n"
STEM = [(1, 16), (2, 15), (3, 14), (4, 13), (5, 12), (6, 11)]


# ---------------------------------------------------------------- a dbn note after a tab
@pytest.mark.parametrize("sep", [" ", "  ", "\t", " \t"])
def test_a_dbn_energy_after_a_space_or_a_tab_is_read(tmp_path, sep):
    """RNAfold's ' (-3.20)' was read; after a tab it was "structure length 23 != sequence length 16"."""
    (tmp_path / "r.dbn").write_text(f">h1\n{HAIRPIN}\n{DB}{sep}(-3.20)\n")
    rec = read_structure(tmp_path / "r.dbn")
    assert (rec.dotbracket, rec.scores) == (DB, {"energy": -3.2})


def test_a_dbn_scores_note_and_labelled_line_after_a_tab_are_read():
    text = f">h1\n{HAIRPIN}\n{DB}\t[eF1=0.930]\n{DB}\t[RNAfold MFE=-3.20]\n"
    (rec,) = iter_dbn(text.splitlines())
    assert rec.scores == {"eF1": 0.93}
    assert [(a.name, a.dotbracket, a.scores) for a in rec.alternatives] == [("RNAfold", DB, {"MFE": -3.2})]


@pytest.mark.parametrize("sep", [" ", "\t"])
def test_a_dbn_line_with_no_note_after_its_whitespace_says_so(sep):
    with pytest.raises(StructureError) as e:
        list(iter_dbn([">h1", HAIRPIN, f"{DB}{sep}-3.20"]))
    assert str(e.value) == (
        "<dbn> line 3: dot-bracket line contains whitespace, then '-3.20', which is no note ('(-1.20)', '[k=v ...]')"
    )


# ---------------------------------------------------------------- pairs written j, i
def test_a_pair_table_and_a_pair_list_read_pairs_written_either_way(tmp_path):
    """Both were refused, "pair '16:1' needs i < j"; read as the same pairs, to the reference too."""
    from resm.structure.pipeline import read_reference

    both = [(j, i) if k % 2 else (i, j) for k, (i, j) in enumerate(STEM)]
    (tmp_path / "r.tsv").write_text(
        "id\tsequence\tpairs\nh1\t" + HAIRPIN + "\t" + " ".join(f"{a}:{b}" for a, b in both)
    )
    (tmp_path / "r.pairs").write_text("#Name: h1\n#Length: 16\n" + "".join(f"{a} {b}\n" for a, b in both))
    want = read_structure(tmp_path / "r.pairs").pairs
    assert [(i + 1, int(want[i]) + 1) for i in range(6)] == STEM
    for ref in ("r.tsv", "r.pairs"):
        got = read_reference(tmp_path / ref, [("h1", 16)], {"h1": HAIRPIN})
        assert got["h1"].tolist() == want.tolist()


TWICE = [
    ("r.pairs", "#Length: 16\n1 16\n2 15\n16 1\n", "line 4: pair '16 1' written twice (first on line 2 as '1 16')"),
    (
        "r.tsv",
        f"id\tsequence\tpairs\nh1\t{HAIRPIN}\t1:16 2:15 16:1\n",
        "line 2: pair 16:1 written twice (first as 1:16)",
    ),
]


@pytest.mark.parametrize("name, text, msg", TWICE)
def test_a_pair_written_once_each_way_is_written_twice(tmp_path, name, text, msg):
    from resm.structure.pairsets import read_pair_table

    (tmp_path / name).write_text(text)
    with pytest.raises(StructureError) as e:
        read_pair_table(tmp_path / name) if name.endswith(".tsv") else list(read_structures(tmp_path / name))
    assert str(e.value).removeprefix(f"{tmp_path}/") == f"{name} {msg}"


# ---------------------------------------------------------------- residue names in ct and bpseq
MODIFIED = {3: "PSU", 8: "5MC", 14: "H2U"}  # 1-based positions
PARTNER = [16, 15, 14, 13, 12, 11, 0, 0, 0, 0, 6, 5, 4, 3, 2, 1]


def bases() -> list[str]:
    return [MODIFIED.get(i, b) for i, b in enumerate(HAIRPIN, 1)]


def bpseq_text() -> str:
    return "".join(f"{i} {b} {j}\n" for i, (b, j) in enumerate(zip(bases(), PARTNER), 1))


def ct_text() -> str:
    rows = [
        f"{i}\t{b}\t{i - 1}\t{i + 1 if i < 16 else 0}\t{j}\t{i}" for i, (b, j) in enumerate(zip(bases(), PARTNER), 1)
    ]
    return "16 modified\n" + "\n".join(rows) + "\n"


WITH_N = "".join("N" if i in MODIFIED else b for i, b in enumerate(HAIRPIN, 1))


@pytest.mark.parametrize("fmt", ["bpseq", "ct"])
def test_a_residue_name_in_ct_and_bpseq_is_read_as_n(tmp_path, fmt):
    """'base 'PSU' is not a single letter' (line 3): read as N, keeping the indices and pairs,
    as fold input, as a reference and by the structure readers."""
    from resm.nucleotides import normalise
    from resm.structure.inputs import read_sequences
    from resm.structure.pipeline import read_reference

    path = tmp_path / f"m.{fmt}"
    path.write_text(bpseq_text() if fmt == "bpseq" else ct_text())
    rec = read_structure(path)
    assert (rec.seq, rec.dotbracket) == (WITH_N, DB)
    assert read_sequences(path) == [(rec.name, WITH_N)]
    got = read_reference(path, [(rec.name, 16)], {rec.name: HAIRPIN})
    assert got[rec.name].tolist() == rec.pairs.tolist()
    # the same rule as a single modified letter's: the unknown base at that position
    assert normalise(WITH_N) == normalise("".join("P" if i in MODIFIED else b for i, b in enumerate(HAIRPIN, 1)))


def test_fold_reads_a_ct_with_residue_names(tmp_path):
    (tmp_path / "m.ct").write_text(ct_text())
    resm_main("fold", tmp_path / "m.ct", "-o", tmp_path / "o.dbn", "--threads", "1")
    rec = read_structure(tmp_path / "o.dbn")
    assert (rec.name, rec.seq) == ("modified", WITH_N)
    assert all(rec.pairs[i - 1] == -1 for i in MODIFIED)  # N pairs with nothing


# ---------------------------------------------------------------- resm compare and a pair table
READS = "structure files (dbn, bpseq, ct, pairs; .gz ok) or ArchiveII's CSV (.csv)"
COMPARE_YAML = "data: {{train: {train}, val: {t}/a.dbn, test: {t}/a.dbn}}\nbackends: [{{name: v, kind: viennarna}}]\n"


CASES = [
    Case(
        "fold/reference-dbn-tab-then-no-note",  # was "structure length 22 != sequence length 16"
        ["fold", "{t}/h.fa", "--reference", "{t}/r.dbn", "--threads", "1"],
        1,
        ["{t}/r.dbn line 3: dot-bracket line contains whitespace, then 'dG=-3.2', which is no note"],
        lambda p: (write("h.fa", FA)(p), write("r.dbn", f">h1\n{HAIRPIN}\n{DB}\tdG=-3.2\n")(p)),
    ),
    Case(
        "fold/reference-pair-table-pair-both-ways",
        ["fold", "{t}/h.fa", "--reference", "{t}/r.tsv", "--threads", "1"],
        1,
        ["r.tsv line 2: pair 16:1 written twice (first as 1:16)"],
        lambda p: (write("h.fa", FA)(p), write("r.tsv", f"id\tsequence\tpairs\nh1\t{HAIRPIN}\t1:16 16:1\n")(p)),
    ),
    Case(
        "fold/bpseq-base-no-residue-name",
        ["fold", "{t}/m.bpseq", "-o", "{t}/o.dbn", "--threads", "1"],
        1,
        ["{t}/m.bpseq line 3: base 'G*' is neither one letter nor a residue name (2 to 5 letters and digits"],
        write("m.bpseq", bpseq_text().replace("PSU", "G*")),
    ),
    Case(
        "compare/structure-set-pair-table",
        ["compare", "--config", "{t}/c.yaml"],
        1,
        [
            f"data.train: {{t}}/s.tsv: resm compare reads {READS}, not pair tables (.tsv: id, sequence, pairs), "
            "which resm fold --reference, resm evaluate and resm finetune read"
        ],
        lambda p: (
            write("a.dbn", f">h1\n{HAIRPIN}\n{DB}\n")(p),
            write("s.tsv", f"id\tsequence\tpairs\nh1\t{HAIRPIN}\t1:16 2:15\n")(p),
            write("c.yaml", COMPARE_YAML.format(train=f"{p['t']}/s.tsv", t=p["t"]))(p),
        ),
    ),
    Case(
        "compare/structure-set-no-format",
        ["compare", "--config", "{t}/c.yaml"],
        1,
        [f"data.train: {{t}}/a.txt: its extension names no format resm compare reads: {READS}"],
        lambda p: (
            write("a.dbn", f">h1\n{HAIRPIN}\n{DB}\n")(p),
            write("a.txt", f">h1\n{HAIRPIN}\n{DB}\n")(p),
            write("c.yaml", COMPARE_YAML.format(train=f"{p['t']}/a.txt", t=p["t"]))(p),
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)
