"""Leftovers of the fourteenth hostile-input audit (:mod:`tests.robustness.test_hostile_audit14`):
structure inputs as other tools write them.

* A dbn structure line whose energy follows a tab (``((..))<TAB>(-3.20)``) was refused as
  "structure length 21 != 16", the note read as dot-bracket; the dot-bracket now ends at the
  first whitespace, a space (as RNAfold writes it) or a tab, and a line with no note after it
  says so.
"""

from __future__ import annotations

import pytest

from resm.structure.io import StructureError, iter_dbn, read_structure
from tests.robustness.cases import Case, check_one_line, write

HAIRPIN = "GGGCGCAAAAGCGCCC"
DB = "((((((....))))))"
FA = ">h1\n" + HAIRPIN + "\n"


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


CASES = [
    Case(
        "fold/reference-dbn-tab-then-no-note",  # was "structure length 22 != sequence length 16"
        ["fold", "{t}/h.fa", "--reference", "{t}/r.dbn", "--threads", "1"],
        1,
        ["{t}/r.dbn line 3: dot-bracket line contains whitespace, then 'dG=-3.2', which is no note"],
        lambda p: (write("h.fa", FA)(p), write("r.dbn", f">h1\n{HAIRPIN}\n{DB}\tdG=-3.2\n")(p)),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)
