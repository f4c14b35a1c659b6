"""Tests for resm.structure.metrics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import matthews_corrcoef

from resm.structure.io import pairs_from_list, pairs_to_matrix, parse_dotbracket
from resm.structure.metrics import evaluate, f1_score, mcc, pair_counts, precision_recall_f1

db = parse_dotbracket


def approx(*v):
    return pytest.approx(v if len(v) > 1 else v[0])


@st.composite
def pairings(draw, min_len: int = 0, max_len: int = 40) -> np.ndarray:
    L = draw(st.integers(min_len, max_len))
    perm = draw(st.permutations(range(L)))
    k = draw(st.integers(0, L // 2))
    return pairs_from_list([(perm[2 * a], perm[2 * a + 1]) for a in range(k)], L)


# ------------------------------------------------------------ hand examples


def test_strict_hand_example():
    true = db("((...))")  # (0,6) (1,5)
    pred = db("(.....)")  # (0,6)
    assert precision_recall_f1(pred, true) == approx(1.0, 0.5, 2 / 3)
    # one right, one wrong, one missed: P = 1/2, R = 1/2
    true = db("((..))..")
    pred = db("(....)()")  # (0,5) is true, (6,7) is not; (1,4) missed
    assert pair_counts(pred, true) == (2, 2, 1, 1)
    assert precision_recall_f1(pred, true) == approx(0.5, 0.5, 0.5)


def test_shift_hand_example():
    true = db("((....))")  # (0,7) (1,6)
    pred = db(".(.....)")  # (1,7): (i-1, j) = (0,7) and (i, j-1) = (1,6) are true
    assert precision_recall_f1(pred, true) == approx(0.0, 0.0, 0.0)
    assert pair_counts(pred, true, shift=True) == (1, 2, 1, 2)
    assert precision_recall_f1(pred, true, shift=True) == approx(1.0, 1.0, 1.0)
    # j shifted by one: (0,6) vs true (0,7)
    assert f1_score(db("(.....)."), db("(......)"), shift=True) == 1.0
    # two steps away does not count
    assert f1_score(db("(....).."), db("(......)"), shift=True) == 0.0
    # diagonal shift (i+1, j-1) does not count
    assert f1_score(db(".(....)."), db("(......)"), shift=True) == 0.0


def test_shift_mixed_example():
    true = db("(((....)))....")  # (0,9) (1,8) (2,7)
    pred = db("((....))..(..)")  # (0,7) (1,6) (10,13)
    # strict: nothing matches
    assert pair_counts(pred, true) == (3, 3, 0, 0)
    # shifted: (0,7)? neighbours (1,7),(0,8),(0,6) -> none true; (1,6)? (2,6),(1,7),(0,6),(1,5) none
    assert pair_counts(pred, true, shift=True) == (3, 3, 0, 0)
    pred = pairs_from_list([(0, 8), (2, 6), (10, 13)], 14)
    # (0,8): (1,8) and (0,9) true -> correct; (2,6): (2,7) true -> correct; (10,13) wrong
    # true (0,9) <- (0,8); (1,8) <- (0,8); (2,7) <- (2,6): all recovered
    assert pair_counts(pred, true, shift=True) == (3, 3, 2, 3)
    p, r, f = precision_recall_f1(pred, true, shift=True)
    assert (p, r) == approx(2 / 3, 1.0)
    assert f == pytest.approx(2 * (2 / 3) / (2 / 3 + 1))


@pytest.mark.parametrize("shift", [False, True])
def test_empty_cases(shift):
    empty = db("......")
    some = db("((..))")
    assert precision_recall_f1(empty, empty, shift) == (1.0, 1.0, 1.0)
    assert precision_recall_f1(empty, some, shift) == (0.0, 0.0, 0.0)
    assert precision_recall_f1(some, empty, shift) == (0.0, 0.0, 0.0)
    assert precision_recall_f1(db(""), db(""), shift) == (1.0, 1.0, 1.0)


def test_mcc_edge_cases():
    assert mcc(db("...."), db("....")) == 1.0
    assert mcc(db("(..)"), db("....")) == 0.0
    assert mcc(db("(..)"), db("(..)")) == 1.0
    assert mcc(db("()"), db("()")) == 1.0  # a single cell, both positive


def test_length_mismatch():
    with pytest.raises(ValueError, match="length"):
        f1_score(db("(..)"), db("(...)"))


def test_matrix_input():
    true = db("((....))")
    pred = db(".(.....)")
    m = pairs_to_matrix(pred)
    assert precision_recall_f1(np.triu(m).astype(float), true, shift=True) == precision_recall_f1(pred, true, True)
    # a thresholded matrix may give a base two partners; both pairs are counted
    m2 = np.zeros((8, 8), bool)
    m2[0, 7] = m2[0, 6] = True
    assert pair_counts(m2, true) == (2, 2, 1, 1)


# ------------------------------------------------------------ MCC vs sklearn


@settings(max_examples=60, deadline=None)
@given(pairings(min_len=2), st.data())
def test_mcc_matches_sklearn(true, data):
    L = len(true)
    pred = data.draw(pairings(min_len=L, max_len=L))
    iu = np.triu_indices(L, 1)
    y_true = pairs_to_matrix(true)[iu]
    y_pred = pairs_to_matrix(pred)[iu]
    ours = mcc(pred, true)
    if len(set(y_true)) < 2 or len(set(y_pred)) < 2:
        # degenerate denominator: ours is 1 only for an exact match
        assert ours == (1.0 if np.array_equal(y_true, y_pred) else 0.0)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = matthews_corrcoef(y_true, y_pred)
    assert ours == pytest.approx(ref, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(pairings(), st.data())
def test_strict_scores_match_sets(true, data):
    L = len(true)
    pred = data.draw(pairings(min_len=L, max_len=L))

    def s(p):
        i = np.flatnonzero(p > np.arange(L))
        return set(zip(i.tolist(), p[i].tolist()))

    P, T = s(pred), s(true)
    tp = len(P & T)
    p, r, f = precision_recall_f1(pred, true)
    if not P and not T:
        assert (p, r, f) == (1, 1, 1)
    elif not P or not T:
        assert f == 0
    else:
        assert (p, r, f) == approx(tp / len(P), tp / len(T), 2 * tp / (len(P) + len(T)))
    # shift tolerance never lowers the counts
    c, cs = pair_counts(pred, true), pair_counts(pred, true, shift=True)
    assert cs.hit_pred >= c.hit_pred and cs.hit_true >= c.hit_true


# ------------------------------------------------------------ aggregation


def test_evaluate_mean_and_pooled():
    t1, p1 = db("((....))"), db(".(.....)")  # strict 0/1, 0/2; shift 1/1, 2/2
    t2, p2 = db("((((....))))"), db("((((....))))")  # 4/4, 4/4 both
    t3, p3 = db("......"), db("......")  # both empty -> 1
    res = evaluate([p1, p2, p3], [t1, t2, t3])
    assert res["n"] == 3
    assert res["precision_mean"] == pytest.approx((0 + 1 + 1) / 3)
    assert res["recall_mean"] == pytest.approx((0 + 1 + 1) / 3)
    assert res["f1_mean"] == pytest.approx((0 + 1 + 1) / 3)
    assert res["precision_pooled"] == pytest.approx(4 / 5)
    assert res["recall_pooled"] == pytest.approx(4 / 6)
    assert res["f1_pooled"] == pytest.approx(2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6))
    assert res["f1_shift_mean"] == pytest.approx(1.0)
    assert res["precision_shift_pooled"] == pytest.approx(5 / 5)
    assert res["recall_shift_pooled"] == pytest.approx(6 / 6)
    assert res["mcc_mean"] == pytest.approx((mcc(p1, t1) + 1 + 1) / 3)
    expected_keys = {
        f"{m}{s}_{a}" for m in ("precision", "recall", "f1") for s in ("", "_shift") for a in ("mean", "pooled")
    } | {"n", "mcc_mean", "mcc_pooled", "n_pred", "n_true", "pair_ratio"}
    assert set(res) == expected_keys
    assert (res["n_pred"], res["n_true"], res["pair_ratio"]) == (5, 6, 5 / 6)


def test_evaluate_pooled_mcc():
    t, p = db("((....))"), db("(......)")
    L = 8
    # tp=1 fp=0 fn=1 tn=28-2
    tp, fp, fn, tn = 1, 0, 1, L * (L - 1) // 2 - 2
    ref = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    res = evaluate([p, p], [t, t])
    assert res["mcc_mean"] == pytest.approx(ref)
    assert res["mcc_pooled"] == pytest.approx(ref)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(pairings(), st.data()), min_size=1, max_size=5))
def test_evaluate_consistent_with_single(items):
    trues, preds = [], []
    for true, data in items:
        trues.append(true)
        preds.append(data.draw(pairings(min_len=len(true), max_len=len(true))))
    res = evaluate(preds, trues)
    for shift, tag in ((False, ""), (True, "_shift")):
        per = np.array([precision_recall_f1(p, t, shift) for p, t in zip(preds, trues)])
        assert res[f"precision{tag}_mean"] == pytest.approx(per[:, 0].mean())
        assert res[f"recall{tag}_mean"] == pytest.approx(per[:, 1].mean())
        assert res[f"f1{tag}_mean"] == pytest.approx(per[:, 2].mean())
    assert res["mcc_mean"] == pytest.approx(np.mean([mcc(p, t) for p, t in zip(preds, trues)]))


def test_evaluate_length_mismatch():
    with pytest.raises(ValueError, match=r"^1 predictions for 0 truths$"):
        evaluate([db("()")], [])
    assert evaluate([], []) == {"n": 0}
