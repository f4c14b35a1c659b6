"""The length-aware density correction (``Decoding.length_shift`` / ``length_ref``): off (the
default, and every file written before it), the decoding is today's bit for bit; on, a sequence
longer than L0 is decoded from probabilities whose log-odds are raised by b * log2(L / L0), which
adds pairs, while shorter ones are untouched; the fields round-trip; bad values are one-line
errors naming the key."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from resm.structure.decode import (
    Decoding,
    blend,
    decode_sparse,
    shift_by_length,
)
from tests.structure.decoding_cases import SHIPPED, canonical_candidates, todays_decoding


def candidates(seq: str, seed: int = 0):
    """Random canonical candidates, drawn sparser than the Turner tests' (Beta(0.2, 4))."""
    return canonical_candidates(seq, seed, beta=(0.2, 4.0))


def random_seq(n: int, seed: int) -> str:
    return "".join(np.random.default_rng(seed).choice(list("ACGU"), n))


def test_off_is_todays_decoding_bit_for_bit():
    for k, n in enumerate((40, 149, 260)):
        seq = random_seq(n, k)
        i, j, mp, pp = candidates(seq, k)
        for d in (Decoding.from_dict(SHIPPED), Decoding(gamma=1.5, prior_weight=0.3)):
            assert d.length_shift == 0
            assert np.array_equal(decode_sparse(seq, i, j, mp, d, pp), todays_decoding(seq, i, j, mp, pp, d))


def test_on_leaves_sequences_up_to_l0_alone():
    seq = random_seq(150, 3)
    i, j, mp, pp = candidates(seq, 3)
    d = Decoding.from_dict(SHIPPED)
    on = replace(d, length_shift=1.5, length_ref=150)
    assert np.array_equal(decode_sparse(seq, i, j, mp, on, pp), todays_decoding(seq, i, j, mp, pp, d))


def test_on_decodes_the_shifted_probabilities_and_adds_pairs():
    seq = random_seq(300, 4)
    i, j, mp, pp = candidates(seq, 4)
    p = blend(mp, pp, 0.1)
    q = shift_by_length(p, 300, 150.0, 1.0)  # one doubling above L0: log-odds + 1
    logit = np.log(q.astype(np.float64) / (1 - q)) - np.log(p.astype(np.float64) / (1 - p))
    assert np.allclose(logit, 1.0, atol=1e-3) and np.all(q > p)
    assert np.allclose(
        np.log(shift_by_length(p, 600, 150.0, 0.5) / (1 - shift_by_length(p, 600, 150.0, 0.5)))
        - np.log(p.astype(np.float64) / (1 - p)),
        1.0,  # two doublings at b = 0.5
        atol=1e-3,
    )
    base = Decoding.from_dict(SHIPPED)
    on = replace(base, length_shift=1.0, length_ref=150)
    got = decode_sparse(seq, i, j, mp, on, pp)
    # the same as decoding the shifted probabilities as the model's own (no prior, no shift)
    want = decode_sparse(seq, i, j, q, replace(base, prior_weight=0.0))
    assert np.array_equal(got, want)
    n_pairs = [
        int((decode_sparse(seq, i, j, mp, replace(base, length_shift=b), pp) >= 0).sum()) // 2 for b in (0, 1, 2)
    ]
    assert n_pairs[0] < n_pairs[1] < n_pairs[2], n_pairs


def test_round_trip_old_files_and_describe():
    d = Decoding(gamma=1.5, prior_weight=0.2, pseudoknot_threshold=0.4, auto_gamma=True, length_shift=0.25)
    assert Decoding.from_dict(json.loads(json.dumps(d.to_dict()))) == d
    assert (d.to_dict()["length_shift"], d.to_dict()["length_ref"]) == (0.25, 150.0)
    assert Decoding.from_dict(replace(d, length_ref=200).to_dict()).length_ref == 200
    old = Decoding.from_dict(SHIPPED)  # a file written before the length shift
    assert (old.length_shift, old.length_ref) == (0.0, 150.0)
    assert "log-odds" not in old.describe()
    assert d.describe().endswith(", log-odds +0.25 per doubling of length above 150 nt")


@pytest.mark.parametrize(
    "key, value, rule",
    [
        ("length_shift", float("nan"), "a finite number"),
        ("length_shift", float("inf"), "a finite number"),
        ("length_shift", True, "a finite number"),
        ("length_shift", "0.25", "a finite number"),
        ("length_ref", 0, "a finite number > 0 (nt)"),
        ("length_ref", -150.0, "a finite number > 0 (nt)"),
        ("length_ref", float("nan"), "a finite number > 0 (nt)"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_key(key, value, rule):
    with pytest.raises(ValueError) as e:
        Decoding.from_dict({**SHIPPED, key: value})
    msg = str(e.value)
    assert msg.startswith(f"decoding key {key}: must be {rule}, got ") and "\n" not in msg


def test_a_bad_override_is_one_line_naming_the_option():
    from resm.structure.io import FoldError
    from resm.structure.predictor_loading import check_decoding_overrides

    ok = {"length_shift": 0.25, "length_ref": 150}
    assert check_decoding_overrides(ok) == ok
    with pytest.raises(FoldError) as e:
        check_decoding_overrides({"length_ref": -1})
    assert str(e.value) == "--length-ref -1: must be a finite number > 0 (nt)"


def test_a_model_file_storing_the_shift_decodes_with_it_and_a_bad_one_is_one_line():
    from resm.structure.io import FoldError
    from resm.structure.predictor import PairPredictor

    seq = random_seq(300, 5)
    i, j, mp, pp = candidates(seq, 5)
    stored = {**SHIPPED, "length_shift": 0.5, "length_ref": 120}
    pred = PairPredictor.from_meta(None, {"decoding": stored}, None, source="structure model m.pt")
    assert pred.decoding == Decoding.from_dict(stored)
    want = decode_sparse(seq, i, j, mp, Decoding.from_dict(stored), pp)
    assert np.array_equal(pred.decode(seq, i, j, mp, pp), want)
    assert not np.array_equal(want, decode_sparse(seq, i, j, mp, Decoding.from_dict(SHIPPED), pp))
    with pytest.raises(FoldError) as e:
        PairPredictor.from_meta(None, {"decoding": {**SHIPPED, "length_ref": 0}}, None, source="structure model m.pt")
    assert str(e.value) == "structure model m.pt: decoding key length_ref: must be a finite number > 0 (nt), got 0"
