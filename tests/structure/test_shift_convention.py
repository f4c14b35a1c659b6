"""The ±1-shift F1 that resm reports is the one the README sets it beside (RiNALMo's 0.747 on
TS0): written here as that evaluation computes it, on full symmetric pair matrices, with the
prediction's cells widened by one in each of the four directions for recall (a true cell is
recovered when the widened prediction covers it) and the reference's widened for precision (a
predicted cell is correct when the widened reference covers it), both over the upper triangle
(scikit-learn's precision and recall with zero_division 0), F1 their harmonic mean. It equals
resm's per-side rule on random structures with pseudoknots wherever a structure has pairs
(where one is empty both give 0); two empty structures score 1 in resm and 0 there, the one
convention that differs, stated in :mod:`resm.structure.metrics`."""

from __future__ import annotations

import numpy as np
import pytest

from resm.structure.io import pairs_to_matrix
from resm.structure.metrics import evaluate, precision_recall_f1
from tests.structure.test_metric_reference import cases


def widened(m: np.ndarray) -> np.ndarray:
    """Each cell and its four neighbours (no wrapping at the edges)."""
    p = np.pad(m.astype(int), 1)
    out = p + np.roll(p, 1, 0) + np.roll(p, -1, 0) + np.roll(p, 1, 1) + np.roll(p, -1, 1)
    return np.clip(out[1:-1, 1:-1], 0, 1)


def relaxed_scores(pred: np.ndarray, true: np.ndarray) -> tuple[float, float, float]:
    P, T = pairs_to_matrix(pred).astype(int), pairs_to_matrix(true).astype(int)
    up = np.triu_indices(len(pred), 1)
    t, p, wt, wp = T[up], P[up], widened(T)[up], widened(P)[up]
    recall = (t & wp).sum() / t.sum() if t.sum() else 0.0  # recall_score(t, wp, zero_division=0)
    precision = (p & wt).sum() / p.sum() if p.sum() else 0.0  # precision_score(wt, p, zero_division=0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 1e-5 else 0.0
    return precision, recall, f1


def test_the_shifted_scores_are_the_relaxed_matrix_evaluation():
    n_both = 0
    preds, trues, f1s = [], [], []
    for true, pred in cases(300, seed=5):
        p_any, t_any = (pred >= 0).any(), (true >= 0).any()
        if not (p_any or t_any):
            assert precision_recall_f1(pred, true, shift=True) == (1.0, 1.0, 1.0)
            assert relaxed_scores(pred, true) == (0.0, 0.0, 0.0)
            continue
        want = relaxed_scores(pred, true)
        assert precision_recall_f1(pred, true, shift=True) == pytest.approx(want, abs=1e-12)
        n_both += p_any and t_any
        preds.append(pred)
        trues.append(true)
        f1s.append(want[2])
    assert n_both > 200
    assert evaluate(preds, trues)["f1_shift_mean"] == pytest.approx(np.mean(f1s), abs=1e-12)
