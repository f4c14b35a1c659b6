import functools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resm.nucleotides import lenient_codes
from resm.structure.decode import candidate_pairs, choose_threshold, decode
from resm.structure.io import check_pairs, pairs_to_matrix, parse_dotbracket
from resm.structure.metrics import f1_score

HAIRPIN = "GGGGAAAACCCC"
HAIRPIN_DB = "((((....))))"


def _valid(p: np.ndarray, seq: str | None = None, canonical: bool = True) -> None:
    p = check_pairs(p)  # symmetric, one partner per base, no self pairs
    i = np.flatnonzero(p > np.arange(len(p)))
    assert np.all(p[i] - i > 3)
    if seq is not None and canonical:
        for a, b in zip(i, p[i]):
            assert seq[a].upper().replace("T", "U") + seq[b].upper().replace("T", "U") in {
                "AU",
                "UA",
                "GC",
                "CG",
                "GU",
                "UG",
            }


def test_perfect_hairpin():
    true = parse_dotbracket(HAIRPIN_DB)
    P = pairs_to_matrix(true).astype(np.float32)
    np.testing.assert_array_equal(decode(P, HAIRPIN), true)
    np.testing.assert_array_equal(decode(P, HAIRPIN, method="matching"), true)
    np.testing.assert_array_equal(decode(torch.from_numpy(P), HAIRPIN), true)


def test_asymmetric_input_is_symmetrised():
    L = 12
    P = np.zeros((L, L), np.float32)
    P[0, 11] = 0.8  # symmetrised 0.4
    P[11, 0] = 0.0
    assert (decode(P, HAIRPIN, threshold=0.5) == -1).all()
    p = decode(P, HAIRPIN, threshold=0.3)
    assert p[0] == 11 and p[11] == 0
    P[11, 0] = 0.8
    assert decode(P, HAIRPIN, threshold=0.5)[0] == 11


def test_min_loop_enforced():
    seq = "GAAACAAAAAAA"
    P = np.zeros((12, 12), np.float32)
    P[0, 4] = P[4, 0] = 0.99  # G-C with j - i = 4: allowed
    assert decode(P, seq, threshold=0.5)[0] == 4
    seq2 = "GAACAAAAAAAA"
    P2 = np.zeros((12, 12), np.float32)
    P2[0, 3] = P2[3, 0] = 0.99  # j - i = 3: forbidden
    assert (decode(P2, seq2, threshold=0.5) == -1).all()
    _valid(decode(np.ones((12, 12)), "GC" * 6, noncanonical=True), canonical=False)


def test_canonical_filter_and_flag():
    seq = "AAAAAAAAAAAA"  # no canonical pair possible
    P = np.full((12, 12), 0.9, np.float32)
    assert (decode(P, seq) == -1).all()
    p = decode(P, seq, noncanonical=True)
    assert (p >= 0).sum() > 0
    _valid(p, canonical=False)
    # N never pairs in canonical mode; T counts as U, lower case is fine
    P = np.zeros((10, 10), np.float32)
    P[0, 9] = P[9, 0] = P[1, 8] = P[8, 1] = 0.9
    p = decode(P, "aNxxxxxxCt")
    assert p[0] == 9 and p[1] == -1 and p[8] == -1
    assert decode(P, "aNxxxxxxCt", noncanonical=True)[1] == 8
    np.testing.assert_array_equal(lenient_codes("ACGUTNacgut-"), [0, 1, 2, 3, 3, 4, 0, 1, 2, 3, 3, 4])


def test_gu_wobble_allowed():
    P = np.zeros((8, 8), np.float32)
    P[0, 7] = P[7, 0] = 0.9
    assert decode(P, "GAAAAAAU")[0] == 7
    assert decode(P, "UAAAAAAG")[0] == 7


def test_greedy_prefers_higher_probability():
    seq = "GAAAACAAAAC"  # base 0 (G) can pair with 5 (C) or 10 (C)
    P = np.zeros((11, 11), np.float32)
    P[0, 5] = P[5, 0] = 0.7
    P[0, 10] = P[10, 0] = 0.9
    p = decode(P, seq, threshold=0.5)
    assert p[0] == 10 and p[5] == -1
    P[0, 5] = P[5, 0] = 0.95
    p = decode(P, seq, threshold=0.5)
    assert p[0] == 5 and p[10] == -1


def test_matching_beats_greedy_on_total_weight():
    # greedy takes the 0.9 pair (1, 6) and blocks two 0.8 pairs (0, 6) and (1, 7)
    seq = "GGAAAACC"
    P = np.zeros((8, 8), np.float32)
    for (a, b), v in {(1, 6): 0.9, (0, 6): 0.8, (1, 7): 0.8}.items():
        P[a, b] = P[b, a] = v
    g = decode(P, seq, threshold=0.5)
    m = decode(P, seq, threshold=0.5, method="matching")
    assert g[1] == 6 and g[0] == -1
    assert m[0] == 6 and m[1] == 7
    _valid(m, seq)
    with pytest.raises(ValueError, match=r"^unknown method 'nope'; expected one of \('greedy', 'matching'\)$"):
        decode(P, seq, method="nope")


def test_errors():
    with pytest.raises(ValueError, match=r"^pair matrix must be square, got shape \(3, 4\)$"):
        decode(np.zeros((3, 4)), "AAA")
    with pytest.raises(ValueError, match=r"^sequence length 3 != matrix size 4$"):
        decode(np.zeros((4, 4)), "AAA")
    with pytest.raises(
        ValueError, match=r"^a sequence is needed to keep canonical pairs \(or pass noncanonical=True\)$"
    ):
        decode(np.zeros((4, 4)), None)
    assert (decode(np.zeros((4, 4)), None, noncanonical=True) == -1).all()


@st.composite
def nested_structures(draw, max_len: int = 60):
    """Random nested structures of canonical pairs with hairpin loops >= 3."""
    L = draw(st.integers(5, max_len))
    pairs = [-1] * L

    def fill(lo: int, hi: int) -> None:  # fill [lo, hi)
        k = lo
        while k < hi:
            if draw(st.booleans()) and hi - k >= 5:
                j = draw(st.integers(k + 4, hi - 1))
                pairs[k], pairs[j] = j, k
                fill(k + 1, j)
                k = j + 1
            else:
                k += 1

    fill(0, L)
    seq = [draw(st.sampled_from("ACGU")) for _ in range(L)]
    for i, j in enumerate(pairs):
        if j > i:
            seq[i], seq[j] = draw(
                st.sampled_from([("A", "U"), ("U", "A"), ("G", "C"), ("C", "G"), ("G", "U"), ("U", "G")])
            )
    return "".join(seq), np.asarray(pairs, dtype=np.int64)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nested_structures(), st.integers(0, 2**31 - 1))
def test_perfect_map_recovers_structure(case, seed):
    seq, true = case
    L = len(seq)
    rng = np.random.default_rng(seed)
    P = 0.4 * rng.random((L, L)).astype(np.float32)  # noise below the threshold
    P[pairs_to_matrix(true)] = rng.uniform(0.6, 1.0, int((true >= 0).sum())).astype(np.float32)
    for method in ("greedy", "matching"):
        p = decode(P, seq, threshold=0.5, method=method)
        np.testing.assert_array_equal(p, true)


@settings(max_examples=40, deadline=None)
@given(st.integers(8, 40), st.integers(0, 2**31 - 1), st.floats(0.0, 0.9))
def test_random_maps_give_valid_structures(L, seed, thr):
    rng = np.random.default_rng(seed)
    seq = "".join(rng.choice(list("ACGUN"), L))
    P = rng.random((L, L)).astype(np.float32)
    for method in ("greedy", "matching"):
        _valid(decode(P, seq, threshold=thr, method=method), seq)
    _valid(decode(P, seq, threshold=thr, noncanonical=True), canonical=False)


def test_candidates_sorted_and_filtered():
    rng = np.random.default_rng(1)
    L = 50
    seq = "".join(rng.choice(list("ACGU"), L))
    P = rng.random((L, L))
    i, j, s = candidate_pairs(P, seq, 0.3)
    assert np.all(j - i > 3) and np.all(s > 0.3) and np.all(np.diff(s) <= 0)
    S = (P + P.T) / 2
    np.testing.assert_allclose(s, S[i, j])


def test_choose_threshold_maximises_f1():
    # One hairpin whose true pairs score 0.72 plus a false G-C candidate at 0.42: thresholds
    # below 0.42 add the false pair, thresholds at or above 0.72 lose every pair.
    seq = "GGGGAAAACCCCGAAAC"
    true = parse_dotbracket("((((....)))).....")
    L = len(seq)
    P = np.zeros((L, L), np.float32)
    P[pairs_to_matrix(true)] = 0.72
    P[12, 16] = P[16, 12] = 0.42
    grid = np.linspace(0.05, 0.95, 19)
    best, scores = choose_threshold([P], [seq], [true], grid=grid, return_scores=True)
    assert set(scores) == {float(t) for t in grid}

    def at(t: float) -> float:
        return scores[min(scores, key=lambda k: abs(k - t))]

    assert best == pytest.approx(0.45)  # the lowest of the tied best thresholds
    assert at(0.45) == at(0.7) == pytest.approx(1.0)
    assert at(0.4) < 1.0 and at(0.75) == 0.0
    # the greedy shortcut agrees with decoding at each threshold
    for t, v in scores.items():
        assert v == pytest.approx(f1_score(decode(P, seq, threshold=t), true))
    assert choose_threshold([P], [seq], [true], grid=grid, method="matching") == pytest.approx(0.45)


def test_choose_threshold_matches_per_threshold_decode_on_random_maps():
    rng = np.random.default_rng(3)
    maps, seqs, trues = [], [], []
    for L in (30, 45):
        seq = "".join(rng.choice(list("ACGU"), L))
        P = rng.random((L, L)).astype(np.float32) ** 3
        maps.append(P)
        seqs.append(seq)
        trues.append(decode(rng.random((L, L)), seq, 0.8))
    grid = np.linspace(0.1, 0.9, 9)
    _, scores = choose_threshold(maps, seqs, trues, grid=grid, metric="f1_shift_mean", return_scores=True)
    from resm.structure.metrics import evaluate

    for t, v in scores.items():
        preds = [decode(P, s, threshold=t) for P, s in zip(maps, seqs)]
        assert v == pytest.approx(evaluate(preds, trues)["f1_shift_mean"])
    with pytest.raises(KeyError, match=r"unknown metric 'nope'; expected one of \['f1_mean', "):
        choose_threshold(maps, seqs, trues, grid=grid, metric="nope")


def test_long_sparse_map():
    rng = np.random.default_rng(0)
    L = 4000
    seq = "".join(rng.choice(list("ACGU"), L))
    P = np.zeros((L, L), np.float32)
    k = 20000
    P[rng.integers(0, L, k), rng.integers(0, L, k)] = rng.random(k).astype(np.float32)
    p = decode(P, seq, threshold=0.3)
    _valid(p, seq)
    assert (p >= 0).sum() > 100


# ----------------------------------------------------------------------------- sparse MEA
def _mea_brute(L, cands, gamma):
    """Best nested set of candidates by exhaustive search, with the MEA objective."""

    paired = np.zeros(L)
    for a, b, p in cands:
        paired[a] += p
        paired[b] += p
    q = np.clip(1 - paired, 0, 1)
    by_left = {}
    for a, b, p in cands:
        by_left.setdefault(a, []).append((b, p))

    @functools.cache
    def best(a, b):  # interval [a, b]: weight gained over all-unpaired
        if b <= a:
            return 0.0
        v = best(a + 1, b)
        for k, p in by_left.get(a, []):
            if k <= b:
                v = max(v, 2 * gamma * p - q[a] - q[k] + best(a + 1, k - 1) + best(k + 1, b))
        return v

    return best(0, L - 1) + q.sum()


def _mea_score(pairs, L, cands, gamma):
    paired = np.zeros(L)
    for a, b, p in cands:
        paired[a] += p
        paired[b] += p
    q = np.clip(1 - paired, 0, 1)
    prob = {(a, b): p for a, b, p in cands}
    s = sum(2 * gamma * prob[(a, int(pairs[a]))] for a in range(L) if pairs[a] > a)
    return s + sum(q[a] for a in range(L) if pairs[a] < 0)


def test_sparse_mea_is_the_exact_optimum():
    from resm.structure.decode import mea_pairs

    rng = np.random.default_rng(0)
    for case in range(150):
        L = int(rng.integers(1, 16))
        n = int(rng.integers(0, 25))
        cands = {}
        for _ in range(n):
            a, b = sorted(rng.integers(0, L, 2).tolist())
            if b > a:
                cands[(a, b)] = float(rng.random() * 0.6)
        cands = [(a, b, p) for (a, b), p in cands.items()]
        gamma = float(rng.choice([0.5, 1.0, 2.0, 4.0]))
        i = np.array([c[0] for c in cands], dtype=np.int64)
        j = np.array([c[1] for c in cands], dtype=np.int64)
        p = np.array([c[2] for c in cands])
        got = mea_pairs("A" * L, i, j, p, gamma, cutoff=0.0)
        # a valid nested structure made of candidates
        for a in range(L):
            if got[a] >= 0:
                assert got[got[a]] == a and (min(a, got[a]), max(a, got[a])) in {(x, y) for x, y, _ in cands}
        ks = [(a, int(got[a])) for a in range(L) if got[a] > a]
        assert not any(a < c < b < d for a, b in ks for c, d in ks), (case, ks)
        assert _mea_score(got, L, cands, gamma) == pytest.approx(_mea_brute(L, cands, gamma), abs=1e-9), case


def test_pseudoknots_are_a_separate_step():
    from resm.structure.decode import Decoding, add_pseudoknots, decode_sparse, mea_pairs

    # a hairpin (0-3 with 16-19) and a crossing stem (8-10 with 22-24), both confident
    i = np.array([0, 1, 2, 3, 8, 9, 10], dtype=np.int64)
    j = np.array([19, 18, 17, 16, 24, 23, 22], dtype=np.int64)
    p = np.array([0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8])
    seq = "A" * 26
    nested = mea_pairs(seq, i, j, p, 2.0)
    assert {(a, int(nested[a])) for a in range(26) if nested[a] > a} == {(0, 19), (1, 18), (2, 17), (3, 16)}
    pk = add_pseudoknots(nested, i, j, p, 0.5)
    assert {(a, int(pk[a])) for a in range(26) if pk[a] > a} == set(zip(i.tolist(), j.tolist()))
    assert np.array_equal(add_pseudoknots(nested, i, j, p, 0.85), nested)  # below the threshold
    d = Decoding(gamma=2.0, pseudoknot_threshold=0.5)
    assert np.array_equal(decode_sparse(seq, i, j, p, d), pk)
    assert np.array_equal(decode_sparse(seq, i, j, p, d, nested=True), nested)
    # a lone crossing pair is not a stem: not added
    assert np.array_equal(add_pseudoknots(nested, i[:5], j[:5], p[:5], 0.5), nested)
    # the prior weight blends the prior's probabilities in
    prior = np.zeros(7)
    w = Decoding(gamma=2.0, prior_weight=1.0)
    assert (decode_sparse(seq, i, j, p, w, prior) < 0).all()


def _scattered(rng, L: int, density: float) -> tuple[np.ndarray, np.ndarray]:
    """Candidates ``(i, j)`` (int64) of an ``L``-nt sequence: each pair with ``j - i >= 4`` kept
    with probability ``density`` (one draw of ``rng`` per pair, in row order)."""
    i, j = np.triu_indices(L, 4)
    keep = rng.random(len(i)) < density
    return i[keep].astype(np.int64), j[keep].astype(np.int64)


def test_choose_decoding_takes_the_best_setting():
    from resm.structure.decode import choose_decoding, mea_pairs

    rng = np.random.default_rng(1)
    group = []
    for _ in range(6):
        L = 30
        i, j = _scattered(rng, L, 0.1)
        p = rng.random(len(i)) * 0.6
        truth = mea_pairs("A" * L, i, j, p, 1.0)
        group.append(("A" * L, i, j, p, rng.random(len(i)), truth))
    best, scores = choose_decoding([group], gammas=(0.5, 1.0, 6.0), prior_weights=(0.0, 0.5), return_scores=True)
    assert (best.gamma, best.prior_weight) == (1.0, 0.0)  # the setting the truth was made with
    assert (
        scores[(1.0, 0.0, None)] == pytest.approx(1.0)
        and max(scores.values()) == scores[(best.gamma, best.prior_weight, best.pseudoknot_threshold)]
    )
    with pytest.raises(ValueError, match="no validation"):
        choose_decoding([[]])


def test_expected_f1_is_the_pseudo_expected_accuracy():
    from resm.structure.metrics import pseudo_expected_f1 as expected_f1

    i = np.array([0, 1, 0], dtype=np.int64)
    j = np.array([9, 8, 8], dtype=np.int64)
    p = np.array([0.6, 0.5, 0.2])
    s = np.full(10, -1)
    s[0], s[9], s[1], s[8] = 9, 0, 8, 1
    # TP = 0.6 + 0.5, |S| = 2, R = 1.3
    assert expected_f1(s, i, j, p) == pytest.approx(2 * 1.1 / 3.3)
    assert expected_f1(np.full(10, -1), i, j, p) == 0.0
    assert expected_f1(np.full(10, -1), i[:0], j[:0], p[:0]) == 0.0


def _spread_helix(L: int, shifts: int, p_each: float):
    """Candidates of a self-complementary repeat: every (a, b) with a + b = L - 1 + 2 k for
    |k| < shifts, each at probability ``p_each`` (the ensemble spreads each base over many
    partners, as it does for (GC)n)."""
    cand = {}
    for a in range(L):
        for k in range(-shifts + 1, shifts):
            b = L - 1 + 2 * k - a
            if b - a > 3 and b < L:
                cand[(a, b)] = p_each
    i = np.array([c[0] for c in cand], dtype=np.int64)
    j = np.array([c[1] for c in cand], dtype=np.int64)
    return i, j, np.full(len(i), p_each)


def test_auto_gamma_gives_a_degenerate_ensemble_its_helix():
    from resm.structure.decode import AUTO_GAMMAS, Decoding, decode_sparse, mea_auto, mea_pairs
    from resm.structure.metrics import pseudo_expected_f1 as expected_f1

    L = 120
    i, j, p = _spread_helix(L, 5, 0.085)  # each base paired with p ~ 0.77, no partner above 0.09
    seq = "GC" * (L // 2)
    assert (mea_pairs(seq, i, j, p, 2.0) < 0).all()  # a fixed gamma of 2 leaves it unfolded
    got = mea_auto(seq, i, j, p)
    n = int((got > np.arange(L)).sum())
    assert n >= 40  # a long helix
    ks = [(a, int(got[a])) for a in range(L) if got[a] > a]
    assert not any(a < c < b < d for a, b in ks for c, d in ks)
    best = max(expected_f1(mea_pairs(seq, i, j, p, g), i, j, p) for g in AUTO_GAMMAS)
    assert expected_f1(got, i, j, p) == pytest.approx(best)
    d = Decoding(prior_weight=0.0, auto_gamma=True)
    assert np.array_equal(decode_sparse(seq, i, j, p, d), got)
    # no candidates at all: unpaired
    assert (mea_auto(seq, i[:0], j[:0], p[:0]) < 0).all()


def test_decoding_round_trip_and_old_files():
    from resm.structure.decode import Decoding

    d = Decoding(gamma=3.0, prior_weight=0.2, pseudoknot_threshold=0.5, auto_gamma=True)
    assert Decoding.from_dict(d.to_dict()) == d
    old = {"gamma": 2.0, "prior_weight": 0.2, "pseudoknot_threshold": None}  # files written before auto_gamma
    assert Decoding.from_dict(old) == Decoding(2.0, 0.2, None, False)
    assert "per sequence" in d.describe() and Decoding.from_dict(old).describe() == (
        "MEA gamma 2, prior weight 0.2, pseudoknots off"
    )


def test_choose_decoding_takes_the_per_sequence_gamma_when_it_scores_higher():
    from resm.structure.decode import choose_decoding, mea_auto

    rng = np.random.default_rng(3)
    group = []
    for k in range(8):
        L = 40
        if k % 2:  # a spread ensemble: only large gammas fold it
            i, j, p = _spread_helix(L, 4, 0.11)
        else:  # scattered confident and weak candidates: small gammas are the precise ones
            i, j = _scattered(rng, L, 0.08)
            p = np.where(rng.random(len(i)) < 0.3, 0.7, 0.12)
        p = p.astype(np.float32)  # what decode_sparse decodes
        group.append(("A" * L, i, j, p, np.zeros(len(i)), mea_auto("A" * L, i, j, p)))
    best, scores = choose_decoding([group], gammas=(1.0, 2.0, 4.0, 8.0), pseudoknot_thresholds=(), return_scores=True)
    assert scores[("auto", 0.0, None)] == pytest.approx(1.0)
    assert max(v for key, v in scores.items() if key[0] != "auto") < 1.0  # no single gamma fits both kinds
    assert best.auto_gamma
    best, scores = choose_decoding(
        [group], gammas=(1.0, 2.0), pseudoknot_thresholds=(), return_scores=True, auto_gamma=False
    )
    assert not best.auto_gamma and all(key[0] != "auto" for key in scores)


# --------------------------------------------------------------------------- post-processing
from itertools import combinations  # noqa: E402

from resm.structure.decode import nested_subset, remove_lone_pairs  # noqa: E402
from resm.structure.io import pair_list, pairs_from_list, to_dotbracket  # noqa: E402


def _crosses(a, b) -> bool:
    (i, j), (k, m) = sorted([a, b])
    return i < k < j < m


def test_remove_lone_pairs():
    p = parse_dotbracket("((.(....).))..(....)")
    assert to_dotbracket(remove_lone_pairs(p)) == "((........))........"
    stacked = parse_dotbracket("((((....))))")
    np.testing.assert_array_equal(remove_lone_pairs(stacked), stacked)
    # a bulge still counts as lone; a pseudoknotted stem of two keeps both pairs
    assert to_dotbracket(remove_lone_pairs(parse_dotbracket("(.((....)).)"))) == "..((....)).."
    assert to_dotbracket(remove_lone_pairs(parse_dotbracket("((..[[..))..]]"))) == "((..[[..))..]]"
    assert to_dotbracket(remove_lone_pairs(parse_dotbracket("(..[..)..]"))) == ".........."
    assert remove_lone_pairs(np.zeros(0, dtype=np.int64)).tolist() == []
    assert p.tolist() == parse_dotbracket("((.(....).))..(....)").tolist()  # the input is left alone


def test_nested_subset_examples():
    # H-type pseudoknot: the longer stem stays, the crossing one goes
    assert to_dotbracket(nested_subset(parse_dotbracket("(((..[[..)))..]]"))) == "(((......)))...."
    # pairs crossing nothing always stay; ties keep the 5'-most opening pair
    assert to_dotbracket(nested_subset(parse_dotbracket("((..[..))..]..(...)"))) == "((.....)).....(...)"
    assert to_dotbracket(nested_subset(parse_dotbracket("(.[.).]"))) == "(...).."
    nested = parse_dotbracket("((..)).((...))")
    np.testing.assert_array_equal(nested_subset(nested), nested)


@pytest.mark.parametrize("seed", range(40))
def test_nested_subset_is_a_maximum_nested_subset(seed):
    rng = np.random.default_rng(seed)
    L = int(rng.integers(6, 15))
    ends = rng.permutation(L)[: 2 * int(rng.integers(1, L // 2 + 1))]
    p = pairs_from_list(ends.reshape(-1, 2), L)
    got = nested_subset(p)
    kept = pair_list(got)
    assert set(kept) <= set(pair_list(p))
    assert not any(_crosses(a, b) for a, b in combinations(kept, 2))
    pairs = pair_list(p)
    best = max(
        r
        for r in range(len(pairs) + 1)
        for sub in combinations(pairs, r)
        if not any(_crosses(a, b) for a, b in combinations(sub, 2))
    )
    assert len(kept) == best
    assert set(to_dotbracket(got)) <= set("().")


def test_nested_subset_long():
    """4,000 nt with many crossing pairs: exact and fast enough for inference."""
    import time

    rng = np.random.default_rng(0)
    L = 4000
    p = pairs_from_list(rng.permutation(L)[:1600].reshape(-1, 2), L)
    t0 = time.perf_counter()
    got = nested_subset(p)
    assert time.perf_counter() - t0 < 10
    kept = np.asarray(pair_list(got))
    i, j = kept[:, 0], kept[:, 1]
    assert not ((i[:, None] < i) & (i < j[:, None]) & (j[:, None] < j)).any()


def test_choose_decoding_density_tolerance_prefers_ratios_near_one():
    from resm.structure.decode import Decoding, choose_decoding, decode_sparse, mea_pairs
    from resm.structure.metrics import evaluate

    rng = np.random.default_rng(3)
    group = []
    for _ in range(8):
        L = 40
        i, j = _scattered(rng, L, 0.15)
        p = rng.random(len(i)) * 0.8
        truth = mea_pairs("A" * L, i, j, p, 2.0)
        paired = np.flatnonzero(truth > np.arange(L))
        drop = paired[: len(paired) // 2]  # the reference holds half the pairs: sparser than gamma 2
        truth[truth[drop]] = -1
        truth[drop] = -1
        group.append(("A" * L, i, j, p, None, truth))
    gammas = (0.25, 0.5, 1.0, 2.0, 4.0)
    kw = dict(gammas=gammas, pseudoknot_thresholds=(), auto_gamma=False)
    f1, ratio = {}, {}
    for g in gammas:
        r = evaluate([decode_sparse(*it[:4], Decoding(g), None) for it in group], [it[5] for it in group])
        f1[g], ratio[g] = r["f1_mean"], r["pair_ratio"]
    top = max(f1.values())
    assert choose_decoding([group], **kw).gamma == max(gammas, key=lambda g: (f1[g], -gammas.index(g)))
    for tol in (0.01, 0.05, 0.2, 0.99):
        got = choose_decoding([group], density_tolerance=tol, **kw).gamma
        near = [g for g in gammas if f1[g] >= top - tol]
        assert got == min(near, key=lambda g: abs(np.log(ratio[g])))
        assert f1[got] >= top - tol
    # a tolerance that lets density decide changes the choice here
    assert choose_decoding([group], density_tolerance=0.99, **kw).gamma != choose_decoding([group], **kw).gamma
