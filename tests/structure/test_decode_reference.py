"""Decoding checked against references written here and against ViennaRNA, on seeded random
probability matrices:

* MEA (:func:`mea_pairs`): its structure's gamma-MEA score equals the best over every nested
  structure, enumerated one by one (n <= 12), and ViennaRNA's own MEA structure on ViennaRNA's
  pair probabilities scores no higher;
* :func:`mea_auto`: the best pseudo-expected F1 over its gammas;
* the pseudoknot step (:func:`add_pseudoknots`) and ``--noLP`` (:func:`remove_lone_pairs`):
  what their docstrings promise, on random candidates with tied probabilities.
"""

from __future__ import annotations

import numpy as np
import pytest

from resm.structure.decode import (
    Decoding,
    add_pseudoknots,
    decode_sparse,
    mea_auto,
    mea_pairs,
    remove_lone_pairs,
)
from resm.structure.io import check_pairs, pair_list, parse_dotbracket, to_dotbracket
from resm.structure.metrics import pseudo_expected_f1


def random_probs(rng, n: int, min_loop: int, density: float) -> np.ndarray:
    """A symmetric matrix of pair probabilities (j - i > min_loop), each row summing to < 1."""
    P = np.zeros((n, n))
    for i in range(n):
        for j in range(i + min_loop + 1, n):
            if rng.random() < density:
                P[i, j] = P[j, i] = rng.random() ** 2
    rows = P.sum(axis=1)
    scale = max(1.0, rows.max() / rng.uniform(0.5, 0.99)) if rows.max() > 0 else 1.0
    return P / scale


def all_nested(pairs: list[tuple[int, int]], n: int):
    """Every nested structure made of ``pairs`` (as a list of pairs), one by one."""
    by_left: dict[int, list[int]] = {}
    for i, j in pairs:
        by_left.setdefault(i, []).append(j)

    def rec(a: int, b: int):  # structures within [a, b]
        if a > b:
            yield []
            return
        yield from rec(a + 1, b)  # a unpaired
        for k in by_left.get(a, []):
            if k <= b:
                for inner in rec(a + 1, k - 1):
                    for outer in rec(k + 1, b):
                        yield [(a, k), *inner, *outer]

    yield from rec(0, n - 1)


def mea_score(struct, P: np.ndarray, gamma: float) -> float:
    """sum over pairs of 2 gamma p_ij + sum over unpaired bases of 1 - sum_j p_ij."""
    q = 1.0 - P.sum(axis=1)
    paired = {x for pair in struct for x in pair}
    return sum(2 * gamma * P[i, j] for i, j in struct) + sum(q[a] for a in range(len(P)) if a not in paired)


def sparse(P: np.ndarray):
    i, j = np.nonzero(np.triu(P, 1))
    return i, j, P[i, j]


MEA_CASES = [(seed, int(n)) for seed, n in enumerate(np.random.default_rng(0).integers(1, 13, 120))]


@pytest.mark.parametrize("gamma", [0.25, 1.0, 2.0, 8.0])
def test_mea_is_the_best_of_every_nested_structure(gamma):
    n_structs = 0
    for seed, n in MEA_CASES:
        rng = np.random.default_rng(seed)
        min_loop = int(rng.choice([0, 3]))
        P = random_probs(rng, n, min_loop, density=float(rng.uniform(0.3, 1.0)))
        i, j, p = sparse(P)
        got = mea_pairs("N" * n, i, j, p, gamma, cutoff=0.0)
        check_pairs(got)
        got_pairs = pair_list(got)
        assert set(got_pairs) <= set(zip(i.tolist(), j.tolist()))
        assert set(to_dotbracket(got)) <= set("().")
        best = max(mea_score(s, P, gamma) for s in all_nested(list(zip(i.tolist(), j.tolist())), n))
        n_structs += 1
        assert mea_score(got_pairs, P, gamma) == pytest.approx(best, abs=1e-12), (seed, n)
        # the default cutoff drops candidates of p <= 1e-3: within gamma * cutoff * n of the best
        near = pair_list(mea_pairs("N" * n, i, j, p, gamma))
        assert mea_score(near, P, gamma) >= best - gamma * 1e-3 * n - 1e-12
    assert n_structs == len(MEA_CASES)


def test_mea_scores_as_high_as_viennarnas_on_its_own_probabilities():
    RNA = pytest.importorskip("RNA")
    rng = np.random.default_rng(1)
    for _ in range(25):
        seq = "".join(rng.choice(list("ACGU"), int(rng.integers(20, 70))))
        fc = RNA.fold_compound(seq)
        _, mfe = fc.mfe()
        fc.exp_params_rescale(mfe)
        fc.pf()
        upper = np.array(fc.bpp())[1:, 1:]
        P = upper + upper.T
        for gamma in (0.5, 1.0, 4.0):
            theirs = pair_list(parse_dotbracket(fc.MEA(gamma)[0]))
            ours = pair_list(mea_pairs(seq, *sparse(P), gamma, cutoff=0.0))
            assert mea_score(ours, P, gamma) == pytest.approx(mea_score(theirs, P, gamma), abs=1e-9)


def test_mea_auto_takes_the_best_pseudo_expected_f1():
    gammas = (0.5, 1.0, 2.0, 4.0, 8.0)
    for seed, n in MEA_CASES[:60]:
        P = random_probs(np.random.default_rng(seed), max(n, 5), 0, 0.8)
        i, j, p = sparse(P)
        seq = "N" * len(P)
        got = mea_auto(seq, i, j, p, gammas)
        scores = [pseudo_expected_f1(mea_pairs(seq, i, j, p, g), i, j, p) for g in gammas]
        assert pseudo_expected_f1(got, i, j, p) == pytest.approx(max(scores))


def test_pseudoknot_step_keeps_its_promises():
    """Added pairs join bases the nested structure leaves unpaired, lie above the threshold, are
    the most probable of their row and column, give each base one partner, and sit in stems of at
    least ``min_stem`` added pairs, also when equal probabilities make two candidates share a base
    (then one lone pair was added); ``min_stem`` = 3 was treated as 2."""
    rng = np.random.default_rng(2)
    n_added = 0
    for _ in range(1500):
        n = int(rng.integers(6, 18))
        cands = {}
        for _ in range(int(rng.integers(1, 25))):
            a, b = sorted(rng.integers(0, n, 2).tolist())
            if b > a:
                cands[(a, b)] = float(rng.choice([0.55, 0.7, 0.85, 0.9]))
        if not cands:
            continue
        i = np.array([c[0] for c in cands])
        j = np.array([c[1] for c in cands])
        p = np.array(list(cands.values()))
        nested = np.full(n, -1, dtype=np.int64)
        if rng.random() < 0.5:  # some bases already paired
            a, b = sorted(rng.choice(n, 2, replace=False).tolist())
            nested[a], nested[b] = b, a
        for min_stem in (1, 2, 3):
            out = add_pseudoknots(nested, i, j, p, 0.6, min_stem)
            check_pairs(out)
            added = set(pair_list(out)) - set(pair_list(nested))
            assert all(out[x] == nested[x] for x in range(n) if nested[x] >= 0)
            for a, b in added:
                assert nested[a] < 0 and nested[b] < 0 and cands[(a, b)] > 0.6
                rivals = [
                    q for (x, y), q in cands.items() if {x, y} & {a, b} and q > 0.6 and nested[x] < 0 and nested[y] < 0
                ]
                assert cands[(a, b)] >= max(rivals)
                run = 1
                for step in (-1, 1):
                    x, y = a + step, b - step
                    while (x, y) in added:
                        run, x, y = run + 1, x + step, y - step
                assert run >= min_stem, (cands, added, min_stem)
            n_added += len(added)
    assert n_added > 500


def test_decode_sparse_is_mea_then_the_pseudoknot_step():
    rng = np.random.default_rng(3)
    for seed, n in MEA_CASES[:40]:
        P = random_probs(np.random.default_rng(seed), max(n, 8), 3, 0.8)
        i, j, p = sparse(P)
        p = p.astype(np.float32)
        seq = "N" * len(P)
        d = Decoding(gamma=float(rng.choice([1.0, 4.0])), pseudoknot_threshold=0.1)
        nested = mea_pairs(seq, i, j, p, d.gamma)
        assert np.array_equal(decode_sparse(seq, i, j, p, d, nested=True), nested)
        assert np.array_equal(decode_sparse(seq, i, j, p, d), add_pseudoknots(nested, i, j, p, 0.1))


def lone_pairs_removed(pairs: np.ndarray) -> set[tuple[int, int]]:
    """``--noLP`` written plainly: drop each pair (i, j) unless (i-1, j+1) or (i+1, j-1) is a pair."""
    ps = set(pair_list(pairs))
    return {(i, j) for i, j in ps if (i - 1, j + 1) in ps or (i + 1 < j - 1 and (i + 1, j - 1) in ps)}


def test_no_lone_pairs_matches_the_reference():
    """A pair of two neighbouring bases, ``()``, stacked on itself and survived ``--noLP``."""
    assert to_dotbracket(remove_lone_pairs(parse_dotbracket(".()."))) == "...."
    assert to_dotbracket(remove_lone_pairs(parse_dotbracket("(())"))) == "(())"
    rng = np.random.default_rng(4)
    for _ in range(400):
        n = int(rng.integers(2, 40))
        p = np.full(n, -1, dtype=np.int64)
        for _ in range(n):
            a, b = sorted(rng.integers(0, n, 2).tolist())
            if b > a and p[a] < 0 and p[b] < 0:
                p[a], p[b] = b, a
                if a + 1 < b - 1 and p[a + 1] < 0 and p[b - 1] < 0 and rng.random() < 0.5:
                    p[a + 1], p[b - 1] = b - 1, a + 1  # a stacked pair now and then
        assert set(pair_list(remove_lone_pairs(p))) == lone_pairs_removed(p), to_dotbracket(p)
