"""Structure scores against straightforward reference implementations written here, on seeded
random structures (partner arrays, pseudoknots, and pair sets where a base sits in several pairs):

* strict precision / recall / F1 from Python sets, and against scikit-learn on the i < j cells;
* the ±1 shift as Mathews et al. (1999) define it (``compstruct -m``), each side counted on its
  own; recall also against the E2Efold / RNA-FM convolution script's, which counts the same true
  pairs (its precision, which can exceed 1, is not resm's);
* empty structures: 1 when both are empty, 0 when one is; the means, pooled sums and the
  predicted / reference pair ratio of :func:`evaluate` and of the evaluate table.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.signal import convolve2d
from sklearn.metrics import f1_score as sk_f1
from sklearn.metrics import precision_score, recall_score

from resm.structure.benchmark import format_table
from resm.structure.io import pair_list, pairs_to_matrix, parse_dotbracket
from resm.structure.metrics import evaluate, pair_counts, precision_recall_f1
from resm.structure.pairsets import PairSet

NEIGHBOURS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))


def random_structure(rng, L: int, n: int | None = None) -> np.ndarray:
    p = np.full(L, -1, dtype=np.int64)
    for _ in range(n if n is not None else L):
        i, j = sorted(rng.integers(0, L, 2).tolist())
        if j > i and p[i] < 0 and p[j] < 0:
            p[i], p[j] = j, i
    return p


def perturbed(rng, true: np.ndarray) -> np.ndarray:
    """A prediction near ``true``: some pairs kept, some slipped by one, some dropped, new ones."""
    L = len(true)
    p = np.full(L, -1, dtype=np.int64)
    for i, j in pair_list(true):
        r = rng.random()
        if r < 0.4:
            a, b = i, j
        elif r < 0.8:
            di, dj = NEIGHBOURS[int(rng.integers(1, 5))]
            a, b = i + di, j + dj
        else:
            continue
        if 0 <= a < b < L and p[a] < 0 and p[b] < 0:
            p[a], p[b] = b, a
    extra = random_structure(rng, L, int(rng.integers(0, 4)))
    for i, j in pair_list(extra):
        if p[i] < 0 and p[j] < 0:
            p[i], p[j] = j, i
    return p


def pairs_of(x) -> set[tuple[int, int]]:
    return {tuple(v) for v in x.ij.tolist()} if isinstance(x, PairSet) else set(pair_list(x))


def reference_scores(pred, true, shift: bool) -> tuple[float, float, float]:
    """Mathews et al.'s rule, written plainly: a predicted pair is correct when it or one of its
    four one-index neighbours is true; a true pair is found when it or one of its neighbours is
    predicted. Two empty structures score 1, one empty structure 0."""
    P, T = pairs_of(pred), pairs_of(true)
    if not P and not T:
        return 1.0, 1.0, 1.0
    if not P or not T:
        return 0.0, 0.0, 0.0
    moves = NEIGHBOURS if shift else NEIGHBOURS[:1]
    correct = sum(any((i + a, j + b) in T for a, b in moves) for i, j in P)
    found = sum(any((i + a, j + b) in P for a, b in moves) for i, j in T)
    prec, rec = correct / len(P), found / len(T)
    return prec, rec, (2 * prec * rec / (prec + rec) if prec + rec else 0.0)


def e2efold_shifted(pred: np.ndarray, true: np.ndarray) -> tuple[float, float, float]:
    """The convolution script of E2Efold / RNA-FM on full symmetric contact maps: a true cell is
    found when the cross-shaped neighbourhood of the predicted map covers it; tp counts found
    true pairs, fp = |P| - tp."""
    pm, tm = pairs_to_matrix(pred).astype(float), pairs_to_matrix(true).astype(float)
    kernel = np.array([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    covered = convolve2d(pm, kernel, "same")
    fn = int(((tm - covered) == 1).sum())
    tp = tm.sum() - fn
    fp = pm.sum() - tp
    return tp / (tp + fp), tp / (tp + fn), 2 * tp / (2 * tp + fp + fn)


def cases(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    for k in range(n):
        L = int(rng.integers(2, 70))
        true = random_structure(rng, L) if k % 10 else np.full(L, -1, dtype=np.int64)
        pred = perturbed(rng, true) if k % 7 else random_structure(rng, L)
        yield true, pred


def test_strict_and_shifted_match_the_reference():
    for true, pred in cases():
        for shift in (False, True):
            assert precision_recall_f1(pred, true, shift) == pytest.approx(reference_scores(pred, true, shift))
        c = pair_counts(pred, true, shift=True)
        assert c.hit_pred <= c.n_pred and c.hit_true <= c.n_true  # nothing is counted twice


def test_strict_matches_scikit_learn_on_the_pair_cells():
    """On the L(L-1)/2 cells i < j: precision and recall wherever they are defined, and F1
    always (``zero_division=1``: two empty structures agree perfectly)."""
    for true, pred in cases(200, seed=1):
        iu = np.triu_indices(len(true), 1)
        yt, yp = pairs_to_matrix(true)[iu], pairs_to_matrix(pred)[iu]
        p, r, f = precision_recall_f1(pred, true)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert f == pytest.approx(sk_f1(yt, yp, zero_division=1.0))
        if yp.any():
            assert p == pytest.approx(precision_score(yt, yp))
        if yt.any():
            assert r == pytest.approx(recall_score(yt, yp))


def test_shifted_recall_is_the_e2efold_scripts():
    """Recall ±1 counts the same true pairs as the E2Efold / RNA-FM script; its precision divides
    those found true pairs by |P| (so it can pass 1), resm's the correct predicted pairs."""
    for true, pred in cases(200, seed=2):
        if not pair_list(true) or not pair_list(pred):
            continue
        _, rec, _ = precision_recall_f1(pred, true, shift=True)
        assert rec == pytest.approx(e2efold_shifted(pred, true)[1])
    # one predicted pair next to two true pairs: both found, the prediction once correct
    true, pred = parse_dotbracket("((....))"), parse_dotbracket(".(.....)")
    assert precision_recall_f1(pred, true, shift=True) == (1.0, 1.0, 1.0)
    assert e2efold_shifted(pred, true)[0] == 2.0
    # and the other way: two stacked predicted pairs each next to one true pair, both correct
    true, pred = parse_dotbracket(".(....)"), parse_dotbracket("((...))")
    assert precision_recall_f1(pred, true, shift=True) == (1.0, 1.0, 1.0)


def test_pair_sets_with_multiplets_score_every_pair():
    rng = np.random.default_rng(4)
    for _ in range(150):
        L = int(rng.integers(4, 50))
        sets = []
        for _ in range(2):
            ij = {tuple(sorted(rng.integers(0, L, 2).tolist())) for _ in range(int(rng.integers(0, L)))}
            ij = sorted((i, j) for i, j in ij if i < j)
            sets.append(PairSet(np.array(ij, dtype=np.int64).reshape(-1, 2), L))
        pred, true = sets
        for shift in (False, True):
            assert precision_recall_f1(pred, true, shift) == pytest.approx(reference_scores(pred, true, shift))


def test_evaluate_means_pooled_ratio_and_empties():
    """Means of the per-sequence scores, pooled scores from summed counts, pair ratio from summed
    pair counts; both-empty records count 1, one-empty records 0, in the means and in the sums."""
    items = list(cases(120, seed=3))
    empty = np.full(9, -1, dtype=np.int64)
    some = parse_dotbracket("((....)).")
    items += [(empty, empty), (empty, some), (some, empty)]
    true = [t for t, _ in items]
    pred = [p for _, p in items]
    got = evaluate(pred, true)
    for shift, tag in ((False, ""), (True, "_shift")):
        per = np.array([reference_scores(p, t, shift) for t, p in items])
        for k, name in enumerate(("precision", "recall", "f1")):
            assert got[f"{name}{tag}_mean"] == pytest.approx(per[:, k].mean())
        moves = NEIGHBOURS if shift else NEIGHBOURS[:1]
        n_p = sum(len(pairs_of(p)) for p in pred)
        n_t = sum(len(pairs_of(t)) for t in true)
        correct = sum(
            sum(any((i + a, j + b) in pairs_of(t) for a, b in moves) for i, j in pairs_of(p)) for t, p in items
        )
        found = sum(sum(any((i + a, j + b) in pairs_of(p) for a, b in moves) for i, j in pairs_of(t)) for t, p in items)
        prec, rec = correct / n_p, found / n_t
        assert got[f"precision{tag}_pooled"] == pytest.approx(prec)
        assert got[f"recall{tag}_pooled"] == pytest.approx(rec)
        assert got[f"f1{tag}_pooled"] == pytest.approx(2 * prec * rec / (prec + rec))
    assert (got["n_pred"], got["n_true"]) == (n_p, n_t)
    assert got["pair_ratio"] == pytest.approx(n_p / n_t)
    # the empty cases on their own
    assert evaluate([empty], [empty])["f1_shift_pooled"] == 1.0
    assert evaluate([some], [empty])["f1_mean"] == 0.0
    only_empty = evaluate([empty, some], [empty, empty])
    assert only_empty["pair_ratio"] != only_empty["pair_ratio"]  # nan: no reference pair
    assert only_empty["f1_mean"] == 0.5


def test_evaluate_table_prints_the_metrics():
    """The evaluate table's row of a method shows its mean F1 (strict, ±1), mean precision and
    recall, the pooled pair ratio, pooled F1 and mean MCC, as :func:`evaluate` gives them."""
    items = list(cases(40, seed=5))
    m = evaluate([p for _, p in items], [t for t, _ in items])
    result = {"dataset": "rand", "n": m["n"], "methods": {"rnafold": m}, "seconds": {"rnafold": 1.0}, "peak_gib": 0.1}
    row = next(ln for ln in format_table([result], "cmd", "model").splitlines() if ln.startswith("| rand |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    want = [m["f1_mean"], m["f1_shift_mean"], m["precision_mean"], m["recall_mean"]]
    assert cells[3:7] == [f"{v:.3f}" for v in want]
    assert cells[7] == f"{m['n_pred'] / m['n_true']:.2f}"
    assert cells[8:10] == [f"{m['f1_pooled']:.3f}", f"{m['mcc_mean']:.3f}"]
