"""Pair-probability (or score) matrix -> secondary structure (partner array).

A model gives an (L, L) matrix ``P`` of pair probabilities or scores. Decoding:

1. symmetrise, ``S = (P + P^T) / 2``;
2. candidates are the pairs (i, j), i < j, with ``j - i > min_loop`` (default 3: a hairpin
   loop holds at least three unpaired bases) and ``S[i, j] > threshold``; by default only
   canonical pairs (AU, UA, GC, CG, GU, UG) are kept, and unknown bases (``N`` or any letter
   other than ACGUT) never pair; ``noncanonical=True`` keeps every pair;
3. each base gets at most one partner:

   * ``method="greedy"``: candidates sorted by decreasing score (ties: smaller i, then
     smaller j first) are accepted when both bases are still free;
   * ``method="matching"``: a maximum-weight matching of the candidate graph (weights = the
     scores) through networkx; exact but O(V^3), so meant for short sequences or sparse maps.

No nesting constraint is applied, so pseudoknots can be predicted.

Candidate extraction is vectorised; only candidates above the threshold are ever listed, so
an L = 4000 map with a few thousand candidates decodes in well under a second.

The threshold is a hyper-parameter: pick it on validation data with :func:`choose_threshold`,
never on the test set.

**Maximum expected accuracy** (:func:`mea_pairs`), for calibrated probabilities over sparse
candidates (the pair head, :mod:`resm.heads.pairs`): the nested structure S maximising
``sum_{(i,j) in S} 2 gamma p_ij + sum_{i unpaired} (1 - sum_j p_ij)``, by a dynamic programme
over the candidates above ``cutoff`` (numpy, O(L * candidates)); larger ``gamma`` trades
precision for sensitivity. (ViennaRNA's ``MEA_from_plist`` solves the same problem but its
backtracking failed on some model outputs here, leaving unbalanced structures.) Pseudoknots are
a separate, explicitly scored step (:func:`add_pseudoknots`): among the bases the nested
structure leaves unpaired, pairs scoring above a threshold that are the best of their row and
column and stack on another such pair are added, crossing pairs allowed. Gamma may also be chosen per sequence
(:func:`mea_auto`): the MEA structures at several gammas are scored by their pseudo-expected
F1 under the same probabilities (Hamada, Sato and Asai's pseudo-expected accuracy, as in
CentroidFold's automatic gamma) and the best is kept, so a degenerate ensemble (a repeat whose
pairs are spread over many partners, a short designed hairpin) still gets the structure its
probabilities support. :class:`Decoding` holds these choices with the weight
given to the prior (the probabilities decoded are ``(1 - w) * model + w * prior``), and
:func:`choose_decoding` picks them on validation structures.

**Turner-corrected decoding** (:func:`turner_ensemble`, ``Decoding.turner_scale``; ``resm fold
--turner-scale``): ViennaRNA folds the sequence with each candidate's probability p added to the
Turner energies as a soft-constraint pseudo-energy ``-s * log(p / (1 - p))`` kcal/mol (pairs the
model believes are favoured, the others penalised), every pair that is not a candidate gets
``+penalty``, and the MEA step runs on the constrained partition function's pair probabilities
instead of the model's. The model decides which helices exist; the Turner model completes them,
which is what structures annotated from 3D coordinates hold
(``experiments/results/structure_turner_option_cpu.md``). Off by default: it costs about one more
``RNAfold -p`` run per sequence (O(L^3); 1.3-1.8x plain decoding's whole-process time to 500 nt,
5.9x at 2,000 nt: ``experiments/results/fold_speed_turner_cpu.md``) and pairs more densely than
bpRNA's annotation.

Post-processing of any decoded structure (``resm fold --nested`` / ``--noLP``):
:func:`nested_subset` keeps a maximum set of mutually non-crossing pairs (no pseudoknots) and
:func:`remove_lone_pairs` drops every pair without a stacked neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..nucleotides import PAIR_TYPE, lenient_codes
from .kcal import KCAL_RULE, finite, kcal_ok
from .metrics import evaluate, pseudo_expected_f1

__all__ = [
    "METHODS",
    "candidate_pairs",
    "decode",
    "choose_threshold",
    "mea_pairs",
    "AUTO_GAMMAS",
    "mea_auto",
    "add_pseudoknots",
    "Decoding",
    "DecodingError",
    "blend",
    "shift_by_length",
    "decode_sparse",
    "turner_energies",
    "turner_constraints",
    "turner_ensemble",
    "choose_decoding",
    "remove_lone_pairs",
    "nested_subset",
    "stored_threshold",
]

METHODS = ("greedy", "matching")


def stored_threshold(value, where: str) -> float:
    """A decoding threshold read from a model's file (a probe's record, a structure model's
    meta, a bundle head's extra): a number in [0, 1], else a FoldError naming ``where``. A NaN
    or a threshold above 1 would decode no pair at all and look like a result."""
    from .io import FoldError

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:  # NaN fails too
        raise FoldError(f"{where}: threshold must be a number in [0, 1], got {value!r}")
    return float(value)


_ALLOWED = PAIR_TYPE >= 0


def _as_matrix(P) -> np.ndarray:
    if hasattr(P, "detach"):  # a torch tensor
        P = P.detach().float().cpu().numpy()
    P = np.asarray(P)
    if P.ndim != 2 or P.shape[0] != P.shape[1]:
        raise ValueError(f"pair matrix must be square, got shape {P.shape}")
    if not np.issubdtype(P.dtype, np.floating):
        P = P.astype(np.float32)
    return P


def candidate_pairs(
    P,
    seq: str | None,
    threshold: float = 0.5,
    noncanonical: bool = False,
    min_loop: int = 3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate pairs ``(i, j, score)`` with i < j, ``j - i > min_loop`` and symmetrised
    score ``> threshold`` (NaN never passes), canonical unless ``noncanonical``.

    Sorted by decreasing score, ties by increasing i then j. ``seq`` may be None only with
    ``noncanonical=True``.
    """
    P = _as_matrix(P)
    L = P.shape[0]
    if seq is not None and len(seq) != L:
        raise ValueError(f"sequence length {len(seq)} != matrix size {L}")
    if seq is None and not noncanonical:
        raise ValueError("a sequence is needed to keep canonical pairs (or pass noncanonical=True)")
    S = P + P.T  # 2 x the symmetrised score; one L x L temporary
    i, j = np.nonzero(2 * threshold < S)
    keep = j - i > min_loop
    i, j = i[keep], j[keep]
    if not noncanonical:
        codes = lenient_codes(seq)
        ok = _ALLOWED[codes[i], codes[j]]
        i, j = i[ok], j[ok]
    score = S[i, j] * 0.5
    order = np.lexsort((j, i, -score))
    return i[order].astype(np.int64), j[order].astype(np.int64), score[order]


def _greedy(i: np.ndarray, j: np.ndarray, L: int) -> np.ndarray:
    """Accept sorted candidates whose bases are both free; returns the accepted mask."""
    free = bytearray(b"\x01") * L
    accepted = np.zeros(len(i), dtype=bool)
    n_acc, max_pairs = 0, L // 2
    for k, (a, b) in enumerate(zip(i.tolist(), j.tolist())):
        if free[a] and free[b]:
            free[a] = free[b] = 0
            accepted[k] = True
            n_acc += 1
            if n_acc == max_pairs:
                break
    return accepted


def _matching(i: np.ndarray, j: np.ndarray, w: np.ndarray) -> np.ndarray:
    try:
        import networkx as nx
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("method='matching' needs networkx (pip install networkx); use method='greedy'") from None
    g = nx.Graph()
    g.add_weighted_edges_from(zip(i.tolist(), j.tolist(), w.astype(np.float64).tolist()))
    matched = nx.max_weight_matching(g, maxcardinality=False)
    keys = {(min(a, b), max(a, b)) for a, b in matched}
    return np.fromiter(((a, b) in keys for a, b in zip(i.tolist(), j.tolist())), dtype=bool, count=len(i))


def _to_partners(i: np.ndarray, j: np.ndarray, L: int) -> np.ndarray:
    p = np.full(L, -1, dtype=np.int64)
    p[i] = j
    p[j] = i
    return p


def decode(
    P,
    seq: str | None,
    threshold: float = 0.5,
    method: str = "greedy",
    noncanonical: bool = False,
    min_loop: int = 3,
) -> np.ndarray:
    """Partner array (``pairs[i]`` = partner or -1) decoded from the (L, L) matrix ``P``.

    ``P`` may hold probabilities or any real scores (a numpy array or torch tensor); only
    pairs scoring above ``threshold`` can be chosen. With ``method="matching"`` pairs of
    non-positive weight never help a matching, so use a positive threshold with scores.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    P = _as_matrix(P)
    L = P.shape[0]
    i, j, s = candidate_pairs(P, seq, threshold, noncanonical, min_loop)
    if len(i) == 0:
        return np.full(L, -1, dtype=np.int64)
    keep = _greedy(i, j, L) if method == "greedy" else _matching(i, j, s)
    return _to_partners(i[keep], j[keep], L)


def choose_threshold(
    prob_maps: Sequence,
    seqs: Sequence[str | None],
    true_pairs: Sequence,
    grid: Sequence[float] = np.linspace(0.05, 0.95, 19),
    metric: str = "f1_mean",
    method: str = "greedy",
    noncanonical: bool = False,
    min_loop: int = 3,
    return_scores: bool = False,
):
    """The grid threshold that maximises ``metric`` (a key of :func:`resm.structure.metrics.evaluate`)
    over validation maps; the first (lowest) one on ties.

    Use validation data only. For ``method="greedy"`` each map is decoded once at the lowest
    threshold: greedy at a higher threshold t accepts exactly the pairs of that run scoring
    above t (it sees a prefix of the same sorted candidates), so the whole grid costs one
    decode. With ``return_scores=True`` returns ``(best, {threshold: score})``.
    """
    if not (len(prob_maps) == len(seqs) == len(true_pairs)):
        raise ValueError("prob_maps, seqs and true_pairs must have the same length")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    grid = np.asarray(sorted(float(t) for t in grid), dtype=np.float64)
    if grid.size == 0:
        raise ValueError("empty threshold grid")
    preds: list[list[np.ndarray]] = [[] for _ in grid]
    for P, seq in zip(prob_maps, seqs):
        P = _as_matrix(P)
        L = P.shape[0]
        if method == "greedy":
            i, j, s = candidate_pairs(P, seq, grid[0], noncanonical, min_loop)
            keep = _greedy(i, j, L) if len(i) else np.zeros(0, dtype=bool)
            i, j, s = i[keep], j[keep], s[keep]
            for k, t in enumerate(grid):
                above = s > t
                preds[k].append(_to_partners(i[above], j[above], L))
        else:
            for k, t in enumerate(grid):
                preds[k].append(decode(P, seq, t, method, noncanonical, min_loop))
    scores = {}
    for k, t in enumerate(grid):
        res = evaluate(preds[k], list(true_pairs))
        if metric not in res:
            raise KeyError(f"unknown metric {metric!r}; expected one of {sorted(res)}")
        scores[float(t)] = res[metric]
    best = max(scores, key=lambda t: (scores[t], -t))
    return (best, scores) if return_scores else best


# ----------------------------------------------------------------------------- sparse decoding
def mea_pairs(
    seq: str, i: np.ndarray, j: np.ndarray, p: np.ndarray, gamma: float = 1.0, cutoff: float = 1e-3
) -> np.ndarray:
    """Nested maximum-expected-accuracy structure (partner array) over the candidate pairs
    ``(i[k], j[k], p[k])`` (0-based, i < j).

    Maximises ``sum_{(i,j) in S} 2 gamma p_ij + sum_{i unpaired} q_i`` with
    ``q_i = 1 - sum_j p_ij`` (clipped to [0, 1]), i.e. the nested matching of largest total
    weight ``w_ij = 2 gamma p_ij - q_i - q_j``. Candidates with ``w <= 0`` never help and are
    dropped; so, for speed, are those with ``p <= cutoff``, which could each add at most
    ``2 gamma cutoff`` (the result is within ``gamma * cutoff * L`` of the exact optimum, which
    ``cutoff=0`` gives). Dynamic programme over intervals, one row per left end: row a holds
    F(a, b) for every b, built from row a + 1 and one vectorised update per candidate (a, k),
    so the time is O(L * n_useful_candidates) numpy work and the memory one (L + 1)^2 table
    (128 MB at 4,000 nt in float64). Backtracking takes, at each interval, the best of its
    options recomputed from the table (ties: leave the left base unpaired, then the nearest
    partner)."""
    L = len(seq)
    out = np.full(L, -1, dtype=np.int64)
    i, j, p = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64), np.asarray(p, dtype=np.float64)
    if L == 0 or not len(i):
        return out
    paired = np.zeros(L)
    np.add.at(paired, i, p)
    np.add.at(paired, j, p)
    q = np.clip(1.0 - paired, 0.0, 1.0)
    w = 2.0 * gamma * p - q[i] - q[j]
    keep = (p > cutoff) & (w > 0) & (j > i)
    i, j, w = i[keep], j[keep], w[keep]
    if not len(i):
        return out
    order = np.lexsort((j, i))
    i, j, w = i[order], j[order], w[order]
    starts = np.searchsorted(i, np.arange(L + 1))
    # F[a, b + 1] = best weight of the interval [a, b] (0 when b < a); row L is the empty tail
    F = np.zeros((L + 1, L + 1), dtype=np.float64)
    # Python scalars in the loops (the same float64 sums, without numpy's per-scalar cost)
    jl, wl, sl = j.tolist(), w.tolist(), starts.tolist()
    for a in range(L - 1, -1, -1):
        row, prev = F[a], F[a + 1]
        row[:] = prev
        for t in range(sl[a], sl[a + 1]):
            k = jl[t]
            # pair (a, k) inside [a, b] for every b >= k: w + F(a + 1, k - 1) + F(k + 1, b)
            tail = row[k + 1 :]
            np.maximum(tail, wl[t] + prev[k] + F[k + 1, k + 1 :] if k + 1 <= L else wl[t] + prev[k], out=tail)
        row[: a + 1] = 0.0
    stack = [(0, L - 1)]
    while stack:
        a, b = stack.pop()
        if b <= a:
            continue
        best, choice = F[a + 1, b + 1], None
        for t in range(sl[a], sl[a + 1]):
            k = jl[t]
            if k > b:
                break
            v = wl[t] + F[a + 1, k] + (F[k + 1, b + 1] if k + 1 <= L else 0.0)
            if v > best + 1e-12:
                best, choice = v, k
        if choice is None:
            stack.append((a + 1, b))
        else:
            out[a], out[choice] = choice, a
            stack.append((a + 1, choice - 1))
            stack.append((choice + 1, b))
    return out


AUTO_GAMMAS = (1.0, 2.0, 4.0, 8.0)


def mea_auto(
    seq: str, i: np.ndarray, j: np.ndarray, p: np.ndarray, gammas: Sequence[float] = AUTO_GAMMAS
) -> np.ndarray:
    """The :func:`mea_pairs` structure of largest pseudo-expected F1
    (:func:`resm.structure.metrics.pseudo_expected_f1`) over ``gammas`` (ties: the earlier gamma)."""
    best, best_f = None, -1.0
    for g in gammas:
        pairs = mea_pairs(seq, i, j, p, g)
        f = pseudo_expected_f1(pairs, i, j, p)
        if f > best_f + 1e-12:
            best, best_f = pairs, f
    return best if best is not None else np.full(len(seq), -1, dtype=np.int64)


def add_pseudoknots(
    pairs: np.ndarray, i: np.ndarray, j: np.ndarray, p: np.ndarray, threshold: float, min_stem: int = 2
) -> np.ndarray:
    """``pairs`` plus crossing pairs between bases it leaves unpaired: candidates above
    ``threshold``, each the most probable of its row and column among those, taken by
    decreasing probability (ties: input order) while both bases are still free, and kept only in
    stems of at least ``min_stem`` of the pairs taken, stacked one on the next ((a, b),
    (a + 1, b - 1), ...). Equal probabilities can make two such candidates share a base; only one
    is taken, and a pair whose stack partner lost that way is not added alone."""
    out = np.array(pairs, dtype=np.int64, copy=True)
    i, j, p = np.asarray(i), np.asarray(j), np.asarray(p)
    ok = (p > threshold) & (out[i] < 0) & (out[j] < 0)
    i, j, p = i[ok], j[ok], p[ok]
    if not len(i):
        return out
    best = np.zeros(len(out))
    np.maximum.at(best, i, p)
    np.maximum.at(best, j, p)
    top = (p >= best[i]) & (p >= best[j])
    i, j, p = i[top], j[top], p[top]
    free = out < 0
    taken = []
    for k in np.argsort(-p, kind="stable"):
        a, b = int(i[k]), int(j[k])
        if free[a] and free[b]:
            free[a] = free[b] = False
            taken.append((a, b))
    keys = set(taken)

    def stem(a: int, b: int) -> int:  # the pairs taken stacked with (a, b), itself included
        n = 1
        for step in (-1, 1):
            x, y = a + step, b - step
            while (x, y) in keys:
                n, x, y = n + 1, x + step, y - step
        return n

    for a, b in taken:
        if stem(a, b) >= min_stem:
            out[a], out[b] = b, a
    return out


class DecodingError(ValueError):
    """A bad value of one :class:`Decoding` setting: its ``key``, the ``rule`` it breaks and
    the ``value``; the message is ``decoding key KEY: RULE, got VALUE``."""

    def __init__(self, key: str, rule: str, value: object):
        super().__init__(f"decoding key {key}: {rule}, got {value!r}")
        self.key, self.rule, self.value = key, rule, value

    def __reduce__(self):
        return type(self), (self.key, self.rule, self.value)


@dataclass
class Decoding:
    """How calibrated candidate probabilities become a structure.

    Attributes:
        gamma: the MEA weight of a pair against unpaired bases (:func:`mea_pairs`).
        auto_gamma: choose gamma per sequence among :data:`AUTO_GAMMAS` by pseudo-expected F1
            (:func:`mea_auto`); ``gamma`` is then unused.
        prior_weight: weight w of the prior in the decoded probabilities
            ``(1 - w) * model + w * prior`` (0: the model alone).
        pseudoknot_threshold: probability above which :func:`add_pseudoknots` adds crossing
            pairs; None: nested structures only.
        turner_scale: None (the default): MEA on the decoded probabilities. A number s >= 0
            (kcal/mol): the Turner-corrected decoding, MEA on the pair probabilities of
            ViennaRNA's ensemble with the decoded probabilities as soft constraints
            (:func:`turner_ensemble`); the pseudoknot step still reads the decoded ones.
        turner_penalty: kcal/mol added to every pair that is not a candidate (Turner mode only).
        length_shift: b, the length-aware density correction (0, the default: off). For a
            sequence longer than ``length_ref`` nt the decoded probabilities' log-odds are raised
            by ``b * log2(L / length_ref)`` (:func:`shift_by_length`) before every step that reads
            them (MEA, the per-sequence gamma choice, the pseudoknot step, the Turner mode's
            constraints): the pair head's probabilities sum to fewer pairs than the reference
            holds as sequences grow. The probabilities ``resm fold`` reports stay unshifted.
        length_ref: L0 (nt), the length above which ``length_shift`` acts.
    """

    gamma: float = 2.0
    prior_weight: float = 0.0
    pseudoknot_threshold: float | None = None
    auto_gamma: bool = False
    turner_scale: float | None = None
    turner_penalty: float = 5.0
    length_shift: float = 0.0
    length_ref: float = 150.0

    def __post_init__(self) -> None:
        # a NaN prior weight decoded no pair at all, and a weight past 1 blends the model's
        # probabilities in with a negative sign: both looked like results
        if not finite(self.gamma) or self.gamma <= 0:
            raise DecodingError("gamma", "must be a finite number > 0", self.gamma)
        if not finite(self.prior_weight) or not 0 <= self.prior_weight <= 1:
            raise DecodingError("prior_weight", "must be a number in [0, 1]", self.prior_weight)
        pk = self.pseudoknot_threshold
        if pk is not None and (not finite(pk) or not 0 <= pk <= 1):
            raise DecodingError("pseudoknot_threshold", "must be null or a number in [0, 1]", pk)
        if not isinstance(self.auto_gamma, bool):
            raise DecodingError("auto_gamma", "must be true or false", self.auto_gamma)
        for key in ("turner_scale", "turner_penalty"):
            v = getattr(self, key)
            if v is None and key == "turner_scale":
                continue
            if not kcal_ok(v):
                raise DecodingError(key, KCAL_RULE, v)
        if not finite(self.length_shift):
            raise DecodingError("length_shift", "must be a finite number", self.length_shift)
        if not finite(self.length_ref) or self.length_ref <= 0:
            raise DecodingError("length_ref", "must be a finite number > 0 (nt)", self.length_ref)

    def describe(self) -> str:
        """One phrase, e.g. ``MEA gamma 2, prior weight 0.2, pseudoknots above 0.5``."""
        g = (
            f"gamma per sequence ({'/'.join(f'{x:g}' for x in AUTO_GAMMAS)}, pseudo-expected F1)"
            if self.auto_gamma
            else f"gamma {self.gamma:g}"
        )
        pk = "off" if self.pseudoknot_threshold is None else f"above {self.pseudoknot_threshold:g}"
        turner = (
            ""
            if self.turner_scale is None
            else f", Turner-corrected (scale {self.turner_scale:g}, penalty {self.turner_penalty:g} kcal/mol)"
        )
        length = (
            ""
            if self.length_shift == 0
            else f", log-odds {self.length_shift:+g} per doubling of length above {self.length_ref:g} nt"
        )
        return f"MEA {g}, prior weight {self.prior_weight:g}, pseudoknots {pk}{turner}{length}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Decoding:
        """The decoding a file stores (keys it lacks keep their defaults: a file written before
        the Turner mode decodes as it always did)."""
        keys = (
            "gamma",
            "prior_weight",
            "pseudoknot_threshold",
            "auto_gamma",
            "turner_scale",
            "turner_penalty",
            "length_shift",
            "length_ref",
        )
        return cls(**{k: d[k] for k in keys if k in d})


def shift_by_length(p: np.ndarray, length: int, ref: float, shift: float) -> np.ndarray:
    """``p`` with its log-odds raised by ``shift * log2(length / ref)`` when ``length > ref``
    (``p`` itself otherwise, and when ``shift`` is 0): :attr:`Decoding.length_shift`."""
    if shift == 0 or length <= ref:
        return p
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    z = np.log(q) - np.log1p(-q) + shift * np.log2(length / ref)
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def blend(model_p: np.ndarray, prior_p: np.ndarray | None, w: float) -> np.ndarray:
    """The probabilities decoded: ``(1 - w) * model + w * prior`` (the model alone when w is 0)."""
    if prior_p is None or w == 0.0:
        return np.asarray(model_p, dtype=np.float32)
    return ((1.0 - w) * np.asarray(model_p) + w * np.asarray(prior_p)).astype(np.float32)


def decode_sparse(
    seq: str,
    i: np.ndarray,
    j: np.ndarray,
    model_p: np.ndarray,
    decoding: Decoding,
    prior_p: np.ndarray | None = None,
    nested: bool = False,
) -> np.ndarray:
    """The structure of one sequence from its candidates' probabilities (``prior_p``: the
    prior's probability of each candidate, needed when ``decoding.prior_weight`` > 0);
    ``nested=True`` skips the pseudoknot step."""
    p = blend(model_p, prior_p, decoding.prior_weight)
    p = shift_by_length(p, len(seq), decoding.length_ref, decoding.length_shift)
    ei, ej, ep = i, j, p
    if decoding.turner_scale is not None:
        sc = turner_constraints(len(seq), i, j, p, decoding.turner_scale, decoding.turner_penalty)
        _, (ei, ej, ep) = turner_ensemble(seq, sc)
    pairs = mea_auto(seq, ei, ej, ep) if decoding.auto_gamma else mea_pairs(seq, ei, ej, ep, decoding.gamma)
    if decoding.pseudoknot_threshold is not None and not nested:
        pairs = add_pseudoknots(pairs, i, j, p, decoding.pseudoknot_threshold)
    return pairs


# ----------------------------------------------------------------------------- Turner-corrected decoding
def turner_energies(p: np.ndarray, scale: float, form: str = "logit") -> np.ndarray:
    """Soft-constraint pseudo-energies (kcal/mol) of candidates of probability ``p`` (clipped to
    [1e-4, 1 - 1e-4]): ``logit``, ``-scale * log(p / (1 - p))`` (p > 0.5 favoured, the others
    penalised; ``scale`` = kT, 0.616 at 37 C, multiplies each structure's Boltzmann weight by
    the product of its pairs' odds); ``log``, ``-scale * log(p / 0.1)`` (only pairs below 0.1
    penalised)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-4, 1 - 1e-4)
    if form == "logit":
        return -scale * np.log(p / (1 - p))
    if form == "log":
        return -scale * np.log(p / 0.1)
    raise ValueError(f"unknown form {form!r}; expected logit or log")


def turner_constraints(
    length: int, i: np.ndarray, j: np.ndarray, p: np.ndarray, scale: float, penalty: float, form: str = "logit"
) -> np.ndarray:
    """The ``(L + 1, L + 1)`` matrix of pseudo-energies ViennaRNA's ``sc_add_bp`` takes (1-based):
    :func:`turner_energies` at the candidates ``(i, j)`` (0-based), ``penalty`` elsewhere."""
    sc = np.full((length + 1, length + 1), float(penalty))
    if len(i):
        sc[np.asarray(i) + 1, np.asarray(j) + 1] = turner_energies(p, scale, form)
    return sc


def turner_ensemble(seq: str, sc: np.ndarray | None) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """ViennaRNA's fold of ``seq`` under the soft constraints ``sc`` (:func:`turner_constraints`;
    None: plain Turner 2004): ``(mfe_pairs, (i, j, p))``, the constrained minimum free energy
    structure (partner array) and the canonical pairs (0-based, i < j, at least 3 unpaired
    bases between) of the constrained partition function above 1e-3. O(L^3) time, O(L^2)
    memory: one ``RNAfold -p``."""
    from ..nucleotides import normalise_lenient
    from .folders import fold_compound
    from .io import parse_dotbracket

    s = normalise_lenient(seq)
    if not s:
        e = np.zeros(0, dtype=np.int64)
        return e, (e, e, np.zeros(0))
    fc = fold_compound(s, None)
    if sc is not None:
        fc.sc_add_bp(sc.tolist())
    db, mfe = fc.mfe()
    fc.exp_params_rescale(mfe)
    fc.pf()
    b = np.asarray(fc.bpp(), dtype=np.float64)[1:, 1:]
    i, j = np.nonzero(np.triu(b, 4) > 1e-3)
    codes = lenient_codes(s)
    ok = PAIR_TYPE[codes[i], codes[j]] >= 0
    return parse_dotbracket(db), (i[ok], j[ok], b[i[ok], j[ok]])


def choose_decoding(
    groups: Sequence[Sequence[tuple]],
    gammas: Sequence[float] = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0),
    prior_weights: Sequence[float] = (0.0,),
    pseudoknot_thresholds: Sequence[float] = (0.3, 0.5, 0.7),
    metric: str = "f1_mean",
    return_scores: bool = False,
    auto_gamma: bool = True,
    density_tolerance: float = 0.0,
):
    """The :class:`Decoding` that maximises ``metric`` on validation data: ``groups`` holds one
    or more validation sets (the score is the mean of their scores), each a list of
    ``(seq, i, j, model_p, prior_p, true_pairs)``. Gamma and prior weight go over their grids
    with nested structures; then, at the best of those, the pseudoknot step is tried at each
    threshold and kept only if it scores higher. ``auto_gamma``: the per-sequence gamma
    (:func:`mea_auto`) is tried after the fixed ones at each prior weight (score key gamma
    ``"auto"``). Ties keep the earlier grid value.

    ``density_tolerance``: the pair density decides between settings whose score is within
    this of the best: of those, the one whose predicted/reference pair ratios are nearest 1
    (mean over the groups of ``|log(pair_ratio)|``) is taken, at each of the two stages
    (0: the score alone, as before)."""
    groups = [list(g) for g in groups if len(g)]
    if not groups:
        raise ValueError("no validation structures to choose the decoding on")

    def score(pred_of) -> tuple[float, float]:
        rs = [evaluate([pred_of(it) for it in g], [it[5] for it in g]) for g in groups]
        off = [abs(np.log(r["pair_ratio"])) if r["pair_ratio"] > 0 else np.inf for r in rs]
        return float(np.mean([r[metric] for r in rs])), float(np.mean(off))

    def pick(tried: list) -> tuple:
        top = max(sc for _, sc, _ in tried)
        near = [t for t in tried if t[1] >= top - density_tolerance]
        return min(near, key=lambda t: t[2]) if density_tolerance > 0 else near[0]

    scores: dict[tuple, float] = {}
    tried = []
    for w in prior_weights:
        options = [Decoding(float(g), float(w), None) for g in gammas]
        if auto_gamma:
            options.append(Decoding(prior_weight=float(w), auto_gamma=True))
        for d in options:
            sc, off = score(lambda it, d=d: decode_sparse(it[0], it[1], it[2], it[3], d, it[4]))
            scores[("auto" if d.auto_gamma else d.gamma, d.prior_weight, None)] = sc
            tried.append((d, sc, off))
    base, base_score, base_off = pick(tried)
    nested = {id(it): decode_sparse(it[0], it[1], it[2], it[3], base, it[4]) for g in groups for it in g}
    tried = [(base, base_score, base_off)]
    for t in pseudoknot_thresholds:
        d = Decoding(base.gamma, base.prior_weight, float(t), base.auto_gamma)
        sc, off = score(
            lambda it, d=d: add_pseudoknots(
                nested[id(it)], it[1], it[2], blend(it[3], it[4], d.prior_weight), d.pseudoknot_threshold
            )
        )
        scores[("auto" if d.auto_gamma else d.gamma, base.prior_weight, float(t))] = sc
        tried.append((d, sc, off))
    best = pick(tried)[0]
    return (best, scores) if return_scores else best


# ----------------------------------------------------------------------------- post-processing
def _pair_arrays(pairs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(partners, i, j)``: a copy of the partner array and its pairs, i < j, by increasing i."""
    p = np.array(pairs, dtype=np.int64)
    if p.ndim != 1:
        raise ValueError(f"pairs must be a 1-D partner array, got shape {p.shape}")
    i = np.flatnonzero(p > np.arange(len(p)))
    return p, i, p[i]


def remove_lone_pairs(pairs) -> np.ndarray:
    """The partner array without lone pairs (RNAfold's ``--noLP``): a pair (i, j) is kept only
    when (i - 1, j + 1) or (i + 1, j - 1) is a pair too. One pass suffices: a dropped pair had
    no stacked neighbour, so no kept pair loses one."""
    p, i, j = _pair_arrays(pairs)
    L = len(p)
    outer = np.zeros(len(i), dtype=bool)
    ok = (i > 0) & (j + 1 < L)
    outer[ok] = p[i[ok] - 1] == j[ok] + 1
    inner = (j - i > 2) & (p[np.minimum(i + 1, L - 1)] == j - 1)  # (i, i + 1) does not stack on itself
    lone = ~(outer | inner)
    p[i[lone]] = -1
    p[j[lone]] = -1
    return p


def _crossing(i: np.ndarray, j: np.ndarray, block: int = 2048) -> np.ndarray:
    """Mask of the pairs (i sorted) that cross at least one other pair."""
    out = np.zeros(len(i), dtype=bool)
    for s in range(0, len(i), block):
        a, b = i[s : s + block, None], j[s : s + block, None]
        cross = (a < i) & (i < b) & (b < j)  # pair s+k opens first, the other closes after it
        out[s : s + block] |= cross.any(axis=1)
        out |= cross.any(axis=0)
    return out


def nested_subset(pairs) -> np.ndarray:
    """A maximum nested subset of the pairs: the most pairs of which no two cross (the
    pseudoknot-free part RNAfold's ``--nested``-style tools keep); returned as a partner array.

    Pairs crossing no other pair are always kept; among the crossing ones the exact maximum is
    found by a dynamic programme over their endpoints (``M[a][b]`` = most nested pairs with both
    ends within endpoints a..b; O(n^2) time and memory in the n crossing endpoints, one numpy
    row at a time). Ties keep the pair with the 5'-most opening base.
    """
    p, i, j = _pair_arrays(pairs)
    crossed = _crossing(i, j)
    if not crossed.any():
        return p
    ci, cj = i[crossed], j[crossed]
    pos = np.sort(np.concatenate([ci, cj]))  # endpoints of the crossing pairs, in order
    n = len(pos)
    rank = {int(x): k for k, x in enumerate(pos)}
    mate = np.array([rank[int(p[x])] for x in pos], dtype=np.int64)  # endpoint -> its partner's
    dtype = np.int16 if n < 32767 else np.int32
    M = np.zeros((n + 2, n + 1), dtype=dtype)  # M[a, b + 1]; rows a > b are zero
    for a in range(n - 1, -1, -1):
        row = M[a + 1].copy()
        c = mate[a]
        if c > a:  # a opens a pair closing at c: take it for every b >= c
            take = 1 + M[a + 1, c] + M[c + 1, c + 1 :]
            np.maximum(row[c + 1 :], take, out=row[c + 1 :])
        M[a] = row
    keep = np.zeros(n, dtype=bool)
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        while a <= b:
            c = mate[a]
            if a < c <= b and M[a, b + 1] == 1 + M[a + 1, c] + M[c + 1, b + 1]:
                keep[a] = True
                stack.append((c + 1, b))
                a, b = a + 1, c - 1
            else:
                a += 1
    drop = pos[(mate > np.arange(n)) & ~keep]
    p[p[drop]] = -1
    p[drop] = -1
    return p
