"""Secondary-structure metrics.

Inputs are partner arrays (``pairs[i]`` = partner or -1, see
:mod:`resm.structure.io`), square contact matrices (nonzero = paired; the
matrix is symmetrised and only i < j is used, so a matrix may give a base
several partners) or pair sets (:class:`resm.structure.pairsets.PairSet`, which
may too). A structure is the set of pairs (i, j) with i < j.

Conventions
-----------
* Strict: a predicted pair is correct iff it is a true pair.
  TP = |P ∩ T|, precision = TP / |P|, recall = TP / |T|,
  F1 = 2 TP / (|P| + |T|).
* Shift-tolerant (±1): Mathews et al.'s rule (J Mol Biol 288:911, 1999; ``compstruct
  -m``, RNAstructure's ``scorer``), applied to each side separately: a predicted
  pair (i, j) is correct iff one of (i, j), (i-1, j), (i+1, j), (i, j-1),
  (i, j+1) is a true pair; a true pair is recovered iff one of the same five
  neighbours of it is a predicted pair. precision = #correct predicted / |P|,
  recall = #recovered true / |T|, F1 = 2 P R / (P + R) (harmonic mean). Only
  one index moves at a time; diagonal shifts such as (i+1, j-1) do not count.
  Each predicted pair counts at most once in precision and each true pair at
  most once in recall, so neither exceeds 1; there is no one-to-one matching,
  so one true pair (i, j) makes both stacked predicted pairs (i-1, j) and
  (i, j-1) correct, and one predicted pair may recover two true pairs. The
  E2Efold / RNA-FM scripts used for many deep-learning tables count the
  recovered true pairs (as here, so recall agrees) but take precision =
  #recovered true / |P| and F1 = 2 #recovered true / (|P| + |T|), a precision
  that passes 1 when one predicted pair recovers two true pairs; resm keeps
  the per-side rule, whose precision is a fraction of the predicted pairs
  (``tests/structure/test_metric_reference.py`` checks both).
* Empty cases (both strict and shifted): |P| = |T| = 0 gives precision =
  recall = F1 = 1; exactly one of P, T empty gives precision = recall =
  F1 = 0. (The field is split: the E2Efold / RNA-FM scripts, with their
  ``eps``, give 1 to two empty structures, RiNALMo's and MXfold2's evaluations
  give 0; resm counts predicting no pair where there is none as right.) Every
  score resm reports goes through these functions, so the rule is one for all
  methods: ``resm evaluate structure`` (the model and every classical folder),
  ``resm compare`` (every backend and folder row), ``resm fold --reference``,
  the training loop's validation F1 and the threshold and decoding chosen on
  it. A mean differs from a table that gives such a record 0 by at most the
  share of records without a reference pair (TS0: 1 of 1,305; ArchiveII: 5 of
  3,864; bpRNA-new: none). The decoders' ranking score
  :func:`pseudo_expected_f1` is no score against a reference and gives an empty
  structure 0; :func:`expected_f1`, the score printed beside a structure,
  follows the rule above.
* MCC is computed strictly over the L(L-1)/2 cells i < j of the pair matrix;
  when its denominator is 0 it is 1 if the prediction equals the truth (e.g.
  both empty) and 0 otherwise (sklearn gives 0 in both cases).
* Aggregation over sequences: ``*_mean`` averages the per-sequence values;
  ``*_pooled`` (micro) sums counts over sequences first (for shifted scores
  the correct-predicted and recovered-true counts are summed separately) and
  applies the formulas above, empty cases included, to the sums.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .pairsets import PairSet

__all__ = [
    "PairCounts",
    "n_pairs",
    "pair_counts",
    "prf_from_counts",
    "precision_recall_f1",
    "f1_score",
    "mcc",
    "evaluate",
    "expected_f1",
    "pseudo_expected_f1",
]

_SHIFTS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))


class PairCounts(NamedTuple):
    """Counts for one sequence (or summed over many)."""

    n_pred: int  # |P|
    n_true: int  # |T|
    hit_pred: int  # predicted pairs counted correct
    hit_true: int  # true pairs counted recovered


def _ij(x) -> tuple[int, np.ndarray, np.ndarray]:
    """Length and the i < j index arrays of a partner array, square matrix or pair set."""
    if isinstance(x, PairSet):
        return x.length, x.ij[:, 0], x.ij[:, 1]
    a = np.asarray(x)
    if a.ndim == 1:
        L = len(a)
        a = a.astype(np.int64, copy=False)
        i = np.flatnonzero(a > np.arange(L))
        return L, i, a[i]
    if a.ndim == 2 and a.shape[0] == a.shape[1]:
        m = a.astype(bool)
        i, j = np.nonzero(np.triu(m | m.T, 1))
        return a.shape[0], i, j
    raise ValueError(f"expected a partner array or square matrix, got shape {a.shape}")


def _keys(i: np.ndarray, j: np.ndarray, L: int) -> np.ndarray:
    # indices may be -1..L after shifting; stride L+2 keeps keys distinct
    return (i + 1) * (L + 2) + (j + 1)


def _hits(src_i: np.ndarray, src_j: np.ndarray, ref: np.ndarray, L: int, shift: bool) -> int:
    """Number of src pairs with an exact (or ±1-shifted) match among ref keys."""
    if src_i.size == 0 or ref.size == 0:
        return 0
    shifts = _SHIFTS if shift else _SHIFTS[:1]
    hit = np.zeros(src_i.size, dtype=bool)
    for di, dj in shifts:
        hit |= np.isin(_keys(src_i + di, src_j + dj, L), ref)
    return int(hit.sum())


def n_pairs(x) -> int:
    """The number of pairs of a partner array, square matrix or pair set, as the metrics count
    them (``n_true`` of :func:`pair_counts`)."""
    return int(_ij(x)[1].size)


def _pair_sets(pred, true) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    Lp, pi, pj = _ij(pred)
    Lt, ti, tj = _ij(true)
    if Lp != Lt:
        raise ValueError(f"length mismatch: prediction {Lp}, truth {Lt}")
    return Lt, pi, pj, ti, tj


def pair_counts(pred, true, shift: bool = False) -> PairCounts:
    """Counts of predicted / true pairs and their (shift-tolerant) matches."""
    L, pi, pj, ti, tj = _pair_sets(pred, true)
    hit_pred = _hits(pi, pj, _keys(ti, tj, L), L, shift)
    hit_true = _hits(ti, tj, _keys(pi, pj, L), L, shift) if shift else hit_pred
    return PairCounts(pi.size, ti.size, hit_pred, hit_true)


def prf_from_counts(n_pred, n_true, hit_pred, hit_true) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 (arrays, elementwise) with the module's empty-case rules."""
    n_pred, n_true, hit_pred, hit_true = (np.asarray(v, dtype=np.float64) for v in (n_pred, n_true, hit_pred, hit_true))
    both_empty = (n_pred == 0) & (n_true == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_pred > 0, hit_pred / n_pred, both_empty * 1.0)
        recall = np.where(n_true > 0, hit_true / n_true, both_empty * 1.0)
        s = precision + recall
        f1 = np.where(s > 0, 2 * precision * recall / s, 0.0)
    f1 = np.where(both_empty, 1.0, f1)
    return precision, recall, f1


def precision_recall_f1(pred, true, shift: bool = False) -> tuple[float, float, float]:
    """Per-sequence precision, recall and F1: strict, or with ``shift`` the ±1 rule of Mathews
    et al. counted per side (a predicted pair is correct when it or a pair one index away on
    one side is true, a true pair is found likewise; see the module notes). Two empty
    structures score 1, one empty structure 0."""
    p, r, f = prf_from_counts(*pair_counts(pred, true, shift))
    return float(p), float(r), float(f)


def f1_score(pred, true, shift: bool = False) -> float:
    """Per-sequence F1, strict or with the ±1 ``shift``: 1 when neither ``pred`` nor ``true``
    holds a pair, 0 when one of them only is empty (the module's empty-case rule)."""
    return precision_recall_f1(pred, true, shift)[2]


def _mcc_from(tp, fp, fn, tn) -> np.ndarray:
    tp, fp, fn, tn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn, tn))
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        m = (tp * tn - fp * fn) / den
    return np.where(den > 0, m, np.where((fp == 0) & (fn == 0), 1.0, 0.0))


def _confusion(c: PairCounts, L: int) -> tuple[int, int, int, int]:
    tp = c.hit_pred
    fp = c.n_pred - tp
    fn = c.n_true - tp
    tn = L * (L - 1) // 2 - tp - fp - fn
    return tp, fp, fn, tn


def mcc(pred, true) -> float:
    """Matthews correlation over the i < j cells of the pair matrix."""
    L = _ij(true)[0]
    return float(_mcc_from(*_confusion(pair_counts(pred, true), L)))


def pseudo_expected_f1(pairs: np.ndarray, i: np.ndarray, j: np.ndarray, p: np.ndarray) -> float:
    """Pseudo-expected F1 of a structure (partner array ``pairs``) under candidate
    probabilities ``(i, j, p)``: with ``TP = sum of p over its pairs`` (expected true positives)
    and ``R = sum of every p`` (expected number of reference pairs), ``2 TP / (|S| + R)``; 0
    when both are empty. The decoders rank structures by it (:func:`resm.structure.decode.mea_auto`)."""
    pairs, i, j, p = np.asarray(pairs), np.asarray(i), np.asarray(j), np.asarray(p, dtype=np.float64)
    hit = pairs[i] == j if len(i) else np.zeros(0, dtype=bool)
    n = int(np.count_nonzero(pairs > np.arange(len(pairs))))
    denom = n + float(p.sum())
    return 2.0 * float(p[hit].sum()) / denom if denom > 0 else 0.0


def expected_f1(pairs, probs) -> float:
    """The F1 that a structure is expected to score if the true pairs follow the pair
    probabilities ``probs`` (dense (L, L) or sparse ``(i, j, p)``; each pair (i, j) true with
    probability p): ``2 E[TP] / (|P| + E[|T|])`` with ``E[TP]`` the summed probability of the
    structure's pairs and ``E[|T|]`` that of every pair (the pseudo-expected F-score of the MEA
    literature; close to the exact expectation when |T| varies little). An empty structure
    scores 1 exactly when no pair is true (the module's rule), so its expected F1 is the
    probability of that, the product of ``1 - p``. This is the score ``resm fold`` prints beside
    each structure (``[eF1=...]``)."""
    from .pair_probs import sparse_probs

    pairs = np.asarray(pairs)
    i, j, p = sparse_probs(probs)
    if len(j) and j.max() >= len(pairs):
        raise ValueError(f"pair ({int(i[j.argmax()]) + 1}, {int(j.max()) + 1}) out of range for length {len(pairs)}")
    p = np.clip(p.astype(np.float64), 0.0, 1.0)
    n_pred = int((pairs >= 0).sum() // 2)
    if n_pred == 0:
        return float(np.exp(np.log1p(-np.minimum(p, 1.0 - 1e-12)).sum()))
    return pseudo_expected_f1(pairs, i, j, p)


def evaluate(pred_list: Sequence, true_list: Sequence) -> dict[str, float]:
    """All metrics over paired lists of predictions and truths.

    Keys: ``n``; ``{precision,recall,f1}_{mean,pooled}``;
    ``{precision,recall,f1}_shift_{mean,pooled}``; ``mcc_mean``, ``mcc_pooled``; the pair
    density: ``n_pred`` and ``n_true`` (pairs summed over the sequences) and ``pair_ratio``
    = n_pred / n_true (nan when there is no true pair).
    A sequence with no pair on either side scores 1 in every precision, recall, F1 and MCC,
    one side empty 0 (the module's empty-case rule; RiNALMo's evaluation gives 0 to both).
    With no sequences only ``n`` (= 0) is returned.
    """
    if len(pred_list) != len(true_list):
        raise ValueError(f"{len(pred_list)} predictions for {len(true_list)} truths")
    strict = np.zeros((len(true_list), 4), dtype=np.int64)
    shifted = np.zeros_like(strict)
    conf = np.zeros((len(true_list), 4), dtype=np.int64)
    for k, (pred, true) in enumerate(zip(pred_list, true_list)):
        L, pi, pj, ti, tj = _pair_sets(pred, true)
        tkeys, pkeys = _keys(ti, tj, L), _keys(pi, pj, L)
        tp = _hits(pi, pj, tkeys, L, False)
        c = PairCounts(pi.size, ti.size, tp, tp)
        strict[k] = c
        shifted[k] = (pi.size, ti.size, _hits(pi, pj, tkeys, L, True), _hits(ti, tj, pkeys, L, True))
        conf[k] = _confusion(c, L)
    out: dict[str, float] = {"n": len(true_list)}
    if not len(true_list):
        return out
    for tag, counts in (("", strict), ("_shift", shifted)):
        per_seq = prf_from_counts(*counts.T)
        pooled = prf_from_counts(*counts.sum(axis=0))
        for name, v, pv in zip(("precision", "recall", "f1"), per_seq, pooled):
            out[f"{name}{tag}_mean"] = float(v.mean())
            out[f"{name}{tag}_pooled"] = float(pv)
    n_pred, n_true = int(strict[:, 0].sum()), int(strict[:, 1].sum())
    out.update(n_pred=n_pred, n_true=n_true, pair_ratio=n_pred / n_true if n_true else float("nan"))
    m = _mcc_from(*conf.T)
    out["mcc_mean"] = float(m.mean())
    out["mcc_pooled"] = float(_mcc_from(*conf.sum(axis=0)))
    return out
