import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resm.alphabet import ALPHABET
from resm.mapping import MappingError, get_scheme, list_schemes
from resm.nucleotides import normalise

RNA = st.text(alphabet="ACGUacgutTN", min_size=1, max_size=300)


def test_released_mapping_is_kdny():
    s = get_scheme()
    assert s.name == "kdny"
    assert s.to_protein("ACGU") == "KNYD"
    assert get_scheme("kerd").to_protein("ACGU") == "KDRE"


def test_schemes_listed_and_hashed():
    names = list_schemes()
    assert {"kdny", "kerd", "codon3", "protein"} <= set(names)
    hashes = {get_scheme(n).table_hash for n in names}
    assert len(hashes) == len(names)  # every table has its own hash


def test_normalisation_rules():
    s = get_scheme("kdny")
    assert s.to_protein("acgt") == "KNYD"  # case folded, T -> U
    assert s.to_protein("ANRYI") == "KXXXX"  # ambiguity and modified bases -> unknown
    assert normalise("acgtN") == "ACGUN"


@pytest.mark.parametrize(
    "seq,pos,what",
    [("ACG-U", 4, "gap"), ("AC.GU", 3, "gap"), ("AC3G", 3, "digit"), ("ACG*", 4, "symbol")],
)
def test_bad_symbols_name_record_and_position(seq, pos, what):
    with pytest.raises(MappingError) as e:
        get_scheme().encode(seq, "rec7")
    msg = str(e.value)
    assert "rec7" in msg and f"position {pos}" in msg and what in msg


@pytest.mark.parametrize(
    "seq,expected",
    [
        ("GGGＡAA", "symbol 'Ａ' (U+FF21) at position 4"),
        ("GGéA", "symbol 'é' (U+00E9) at position 3"),
        (b"GG\xc3\xa9A", "byte 0xc3 at position 3"),
        ("GG\x00A", "symbol '\\x00' at position 3"),
    ],
)
def test_non_ascii_symbols_are_named_as_written(seq, expected):
    for scheme in ("kdny", "protein"):
        with pytest.raises(MappingError) as e:
            get_scheme(scheme).encode(seq, "r")
        assert str(e.value).startswith(f"record 'r': {expected} is not a")


def test_empty_sequence_is_an_error():
    with pytest.raises(MappingError, match="rec1.*empty"):
        get_scheme().encode("", "rec1")


def test_codon3_reads_centred_triplets():
    c = get_scheme("codon3")
    # AUG GCC: triplets (.AU) AUG UGG GGC GCC (CC.) -> ends fall back to kdny
    assert c.to_protein("AUGGCC") == "K" + "MWGA" + "N"
    assert c.to_protein("UAA")[1] == "Z"  # stop codon
    assert c.to_protein("ANA") == "KXK"  # unknown centre -> X; unknown neighbours -> fallback
    assert len(c.encode("ACGUACGU" * 10)) == 80


@settings(max_examples=200, deadline=None)
@given(RNA, st.sampled_from(["kdny", "kerd", "codon3"]))
def test_one_token_per_nucleotide(seq, name):
    ids = get_scheme(name).encode(seq)
    assert len(ids) == len(seq)
    assert ids.dtype == np.int64
    assert ((ids >= 0) & (ids < len(ALPHABET.all_toks))).all()


@settings(max_examples=200, deadline=None)
@given(RNA, st.sampled_from(["kdny", "kerd"]))
def test_letter_schemes_round_trip(seq, name):
    s = get_scheme(name)
    assert s.decode(s.encode(seq)) == normalise(seq)


def test_protein_identity_scheme():
    p = get_scheme("protein")
    assert p.to_protein("mkvLA") == "MKVLA"
    with pytest.raises(MappingError, match="position 3"):
        p.encode("MK1", "prot")


def test_scheme_check_against_checkpoint_metadata():
    kdny, kerd = get_scheme("kdny"), get_scheme("kerd")
    kdny.check(kdny.metadata())
    kdny.check({})  # a plain protein checkpoint takes any scheme
    kdny.check(get_scheme("protein").metadata())  # so does one of ours trained on proteins
    get_scheme("codon3").check(get_scheme("protein").metadata())
    with pytest.raises(MappingError, match=r"^checkpoint was trained with mapping scheme 'kdny', not 'protein'$"):
        get_scheme("protein").check(kdny.metadata())  # an RNA model is not a protein model
    with pytest.raises(MappingError, match="kdny"):
        kerd.check(kdny.metadata())
    with pytest.raises(MappingError, match="differs"):
        kdny.check({"scheme": "kdny", "scheme_hash": "0" * 64})


def test_unknown_scheme_name():
    with pytest.raises(MappingError, match="unknown mapping scheme"):
        get_scheme("nope")


def test_vectorised_mapping_matches_per_letter_table_on_a_million_nt():
    # throughput is measured in experiments/bench_forward.py, not here
    seq = np.random.default_rng(0).choice(np.frombuffer(b"ACGU", np.uint8), 1_000_000).tobytes()
    s = get_scheme("kdny")
    ids = s.encode(seq)
    table = {ord(n): ALPHABET.tok_to_idx[p] for n, p in zip("ACGU", "KNYD")}
    expected = np.vectorize(table.get)(np.frombuffer(seq[:5000], np.uint8))
    assert len(ids) == 1_000_000 and (ids[:5000] == expected).all()
