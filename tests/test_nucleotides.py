"""The nucleotide alphabet's one home: codes, pairs and the strict and lenient normalisers."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resm.nucleotides import (
    CANONICAL_PAIRS,
    LETTERS,
    PAIR_TYPE,
    UNKNOWN_BASE,
    MappingError,
    lenient_codes,
    normalise,
    normalise_lenient,
    rna_codes,
)

ACCEPTED = "ACGUTacgut" + "RYSWKMBDHVNrysw" + "IPXipx"


def test_codes_and_letters():
    np.testing.assert_array_equal(rna_codes("ACGUTacgut"), [0, 1, 2, 3, 3, 0, 1, 2, 3, 3])
    assert rna_codes(b"acgu").tolist() == [0, 1, 2, 3]
    assert LETTERS[UNKNOWN_BASE] == "N"
    assert normalise("acgtNRYIPX") == "ACGUNNNNNN"


def test_pair_table_holds_exactly_the_canonical_pairs():
    pairs = {LETTERS[a] + LETTERS[b] for a, b in zip(*np.nonzero(PAIR_TYPE >= 0))}
    assert pairs == set(CANONICAL_PAIRS) == {"AU", "UA", "GC", "CG", "GU", "UG"}
    for k, p in enumerate(CANONICAL_PAIRS):
        assert PAIR_TYPE[LETTERS.index(p[0]), LETTERS.index(p[1])] == k
    assert (PAIR_TYPE[UNKNOWN_BASE] == -1).all() and (PAIR_TYPE[:, UNKNOWN_BASE] == -1).all()
    with pytest.raises(ValueError, match="read-only"):
        PAIR_TYPE[0, 0] = 1


@pytest.mark.parametrize(
    "seq, message",
    [
        ("", "record 'r': empty sequence"),
        ("AC-GU", "record 'r': gap '-' at position 3 is not a nucleotide"),
        ("ACG.U", "record 'r': gap '.' at position 4 is not a nucleotide"),
        ("AC7", "record 'r': digit '7' at position 3 is not a nucleotide"),
        ("AC GU", "record 'r': whitespace at position 3 is not a nucleotide"),
        ("ACGJ", "record 'r': symbol 'J' at position 4 is not a nucleotide"),
        ("ACé", "record 'r': symbol 'é' (U+00E9) at position 3 is not a nucleotide"),
        (b"AC\xff", "record 'r': byte 0xff at position 3 is not a nucleotide"),
    ],
)
def test_strict_refuses_what_is_no_nucleotide_in_one_line(seq, message):
    for f in (rna_codes, normalise):
        with pytest.raises(MappingError) as e:
            f(seq, "r")
        assert str(e.value) == message


def test_lenient_never_refuses():
    assert normalise_lenient("acgtuNRX-i") == "ACGUUNNNNN"
    assert normalise_lenient("AC7 é.") == "ACNNNN"  # one N per character, non-ASCII included
    assert normalise_lenient("") == "" and lenient_codes("").shape == (0,)
    np.testing.assert_array_equal(lenient_codes("ACGUTNacgut-"), [0, 1, 2, 3, 3, 4, 0, 1, 2, 3, 3, 4])


@given(st.text(alphabet=ACCEPTED, min_size=1, max_size=200))
def test_strict_and_lenient_agree_where_strict_accepts(seq):
    np.testing.assert_array_equal(rna_codes(seq), lenient_codes(seq))
    assert normalise(seq) == normalise_lenient(seq)
    assert len(normalise(seq)) == len(seq) and set(normalise(seq)) <= set(LETTERS)


@given(st.text(min_size=0, max_size=100))
def test_lenient_keeps_the_length_and_the_alphabet(seq):
    out = normalise_lenient(seq)
    assert len(out) == len(seq) and set(out) <= set(LETTERS)
