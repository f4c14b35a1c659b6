"""Non-canonical pairs and base multiplets, added to a decoded structure by a small learnt scorer.

The structure model predicts canonical pairs only (AU, GC, GU; :mod:`resm.heads.pairs`), one
partner per base. Structures annotated from 3D coordinates hold more: about 22% of their pairs
are non-canonical (sheared GA, AA, GG ...) and some bases sit in two or three pairs (base
triples). This module adds such pairs *after* the canonical structure is decoded, which it
leaves as it is:

* candidates (:func:`candidate_pairs`): every pair (i, j), ``min_span <= j - i <= max_span``,
  not in the decoded structure, whose letters are not a canonical pair, or one of whose bases is already
  paired (a second partner: a multiplet); with ``tertiary_canonical`` (off unless the stored
  config says so) also the canonical pairs (AU, GC, GU) between two bases the decoded structure
  leaves unpaired, such as the lone tertiary contacts of 3D-derived structures (their
  feature vectors then carry one more column, set on exactly these candidates);
* features (:func:`pair_features`): the two letters and their neighbours, the span, the decoded
  structure around the pair (are i and j paired, is the pair stacked on a decoded pair, how far
  is j from i's partner, do i and j face the same loop, how large it is, whether it is a
  hairpin, an internal or a multi-branch loop, and how far i and j are from its closing pair) and the structure
  model's own probabilities (of the pair, of its stacked neighbours, each base's summed and
  largest pair probability);
* :class:`NonCanonicalScorer`: a few small MLPs (their mean logit) giving each candidate a probability, trained by
  binary cross-entropy on PDB-derived pair lists, each by the one training loop
  (:func:`resm.tasks.noncanonical_scorer.train_scorer`; the recipe is
  ``experiments/noncanonical/train.py``);
* :func:`add_pairs`: the candidates scoring above the stored threshold are added, best first,
  while each base has fewer than ``max_partners`` pairs. The result is a
  :class:`resm.structure.pairsets.PairSet` (a base may sit in several pairs), so it is written
  only as a pair list.

:class:`NonCanonical` is the scorer with its threshold, stored in a structure model's file under
the key :data:`KEY` (plain tensors and JSON-like values, read with ``weights_only=True``);
:meth:`NonCanonical.from_payload` refuses an inconsistent entry in one line naming the file.
A model file without the entry folds exactly as before; ``resm fold --non-canonical`` with it is
a one-line error.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
import torch.nn as nn

from ..config import format_version_problem
from ..nucleotides import PAIR_TYPE, lenient_codes
from .pairsets import PairSet

__all__ = [
    "KEY",
    "FORMAT",
    "NonCanonicalError",
    "NonCanonicalConfig",
    "NonCanonicalScorer",
    "NonCanonical",
    "candidate_pairs",
    "pair_features",
    "n_features",
    "score_candidates",
    "add_pairs",
    "labelled_arrays",
    "choose_threshold",
    "attach",
]

KEY = "non_canonical"  # the entry of a structure model's file
FORMAT = "resm-non-canonical"
VERSION = 1
_OUTSIDE = 5  # context code of a position outside the sequence (0..4: A C G U, unknown)


class NonCanonicalError(ValueError):
    """A non-canonical scorer that cannot be used (one line, naming the file)."""


@dataclass
class NonCanonicalConfig:
    """Hyper-parameters of the scorer and its candidates.

    Attributes:
        hidden: width of the MLP's hidden layers.
        members: MLPs trained apart whose mean logit is the score (less variance between
            trainings).
        layers: number of hidden layers.
        context: neighbours read on each side of i and of j.
        min_span: candidates need ``j - i >= min_span`` (1: adjacent bases may pair, as in
            3D-derived annotations).
        max_span: and ``j - i <= max_span``, so the cost grows with L, not L^2 (200 holds 99% of
            the non-canonical pairs and second partners of TR1 and VL1 that are candidates).
        max_partners: a base gets no more than this many pairs in all.
        block: candidates scored at a time (bounds memory on long sequences).
        tertiary_canonical: also take canonical pairs between two bases both unpaired in the
            decoded structure as candidates (and add a feature flagging them). Off by default,
            and off for files stored without the setting, which fold as they did.
    """

    hidden: int = 64
    members: int = 3
    layers: int = 2
    context: int = 2
    min_span: int = 1
    max_span: int = 200
    max_partners: int = 3
    block: int = 1 << 18
    tertiary_canonical: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.tertiary_canonical, bool):
            raise ValueError(f"tertiary_canonical must be true or false, got {self.tertiary_canonical!r}")
        for k in ("hidden", "members", "layers", "min_span", "max_span", "max_partners", "block"):
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{k} must be a positive integer, got {v!r}")
        if not isinstance(self.context, int) or isinstance(self.context, bool) or self.context < 0:
            raise ValueError(f"context must be an integer >= 0, got {self.context!r}")
        if self.max_span < self.min_span:
            raise ValueError(f"max_span {self.max_span} is below min_span {self.min_span}")

    def to_dict(self) -> dict[str, int | bool]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NonCanonicalConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}")
        return cls(**d)


# ----------------------------------------------------------------------------- candidates
def _nested_partners(partners: np.ndarray) -> np.ndarray:
    from .decode import nested_subset

    return nested_subset(partners) if len(partners) else partners


class _Context:
    """Per-sequence arrays the features read: codes, decoded partners, loops, probabilities."""

    def __init__(self, seq: str, partners: np.ndarray, probs, cfg: NonCanonicalConfig):
        L = len(seq)
        self.L, self.cfg = L, cfg
        self.nuc = lenient_codes(seq).astype(np.int64)
        self.partner = np.asarray(partners, dtype=np.int64)
        if len(self.partner) != L:
            raise ValueError(f"a structure of length {len(self.partner)} for a sequence of {L} nt")
        c = cfg.context
        self.padded = np.concatenate([np.full(c, _OUTSIDE), self.nuc, np.full(c, _OUTSIDE)]).astype(np.int64)
        # loops of the nested part of the decoded structure: outer = innermost enclosing pair
        # (its opening index; -1 outside every pair), inner = the loop a paired base closes
        nested = _nested_partners(self.partner)
        outer = np.full(L, -1, np.int64)
        inner = np.full(L, -1, np.int64)
        stack: list[int] = []
        for k in range(L):
            p = nested[k]
            if p > k:
                outer[k] = stack[-1] if stack else -1
                inner[k] = k
                stack.append(k)
            elif 0 <= p < k:
                stack.pop()
                outer[k] = stack[-1] if stack else -1
                inner[k] = p
            else:
                outer[k] = inner[k] = stack[-1] if stack else -1
        self.outer, self.inner = outer, inner
        self.loop_unpaired = np.bincount(outer[nested < 0] + 1, minlength=L + 1).astype(np.float32)
        opening = np.flatnonzero(nested > np.arange(L))
        self.loop_branches = np.bincount(outer[opening] + 1, minlength=L + 1)  # pairs right inside
        self.nested = nested
        # the structure model's probabilities, sparse (i, j, p), i < j
        if probs is None:
            pi = pj = np.zeros(0, np.int64)
            pp = np.zeros(0, np.float32)
        else:
            pi, pj, pp = (np.asarray(x) for x in probs)
        order = np.argsort(pi * (L + 2) + pj, kind="stable")
        self.pkeys = (pi * (L + 2) + pj)[order].astype(np.int64)
        self.pvals = pp[order].astype(np.float32)
        self.rowsum = np.zeros(L, np.float32)
        np.add.at(self.rowsum, pi, pp)
        np.add.at(self.rowsum, pj, pp)
        self.rowmax = np.zeros(L, np.float32)
        np.maximum.at(self.rowmax, pi, pp)
        np.maximum.at(self.rowmax, pj, pp)

    def prob(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if not len(self.pkeys):
            return np.zeros(len(a), np.float32)
        k = a * (self.L + 2) + b
        pos = np.minimum(np.searchsorted(self.pkeys, k), len(self.pkeys) - 1)
        ok = (a >= 0) & (b < self.L) & (a < b) & (self.pkeys[pos] == k)
        return np.where(ok, self.pvals[pos], 0.0).astype(np.float32)

    def decoded(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ok = (a >= 0) & (b < self.L) & (a < b)
        return (ok & (self.partner[np.clip(a, 0, self.L - 1)] == b)).astype(np.float32)


def _candidate_blocks(ctx: _Context) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Candidates ``(i, j)`` (see the module notes), by blocks of rows of about ``cfg.block``."""
    L, cfg = ctx.L, ctx.cfg
    paired = ctx.partner >= 0
    per_row = max(cfg.max_span - cfg.min_span + 1, 1)
    rows = max(cfg.block // per_row, 1)
    for start in range(0, L, rows):
        r = np.arange(start, min(start + rows, L), dtype=np.int64)
        ii = np.repeat(r, per_row)
        jj = ii + np.tile(np.arange(cfg.min_span, cfg.max_span + 1, dtype=np.int64), len(r))
        inside = jj < L
        ii, jj = ii[inside], jj[inside]
        if not len(ii):
            continue
        canonical = PAIR_TYPE[ctx.nuc[ii], ctx.nuc[jj]] >= 0
        if cfg.tertiary_canonical:  # canonical between two unpaired bases: every such pair is kept
            keep = ctx.partner[ii] != jj
        else:
            keep = (ctx.partner[ii] != jj) & (~canonical | paired[ii] | paired[jj])
        yield ii[keep], jj[keep]


def candidate_pairs(seq: str, partners: np.ndarray, cfg: NonCanonicalConfig) -> tuple[np.ndarray, np.ndarray]:
    """All candidates ``(i, j)`` of ``seq`` around the decoded structure ``partners``, sorted by i then j."""
    ctx = _Context(seq, partners, None, cfg)
    got = list(_candidate_blocks(ctx))
    if not got:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate([a for a, _ in got]), np.concatenate([b for _, b in got])


def _onehot(codes: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((len(codes), n), np.float32)
    out[np.arange(len(codes)), codes] = 1.0
    return out


def _features(ctx: _Context, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    c, L = ctx.cfg.context, ctx.L
    cols = [_onehot(ctx.nuc[i] * 5 + ctx.nuc[j], 25)]
    for d in [x for x in range(-c, c + 1) if x]:
        cols += [_onehot(ctx.padded[i + c + d], 6), _onehot(ctx.padded[j + c + d], 6)]
    span = (j - i).astype(np.float32)
    paired_i, paired_j = ctx.partner[i] >= 0, ctx.partner[j] >= 0
    far_i = np.where(paired_i, np.minimum(np.abs(ctx.partner[i] - j), 8) / 8, 1.0)
    far_j = np.where(paired_j, np.minimum(np.abs(ctx.partner[j] - i), 8) / 8, 1.0)
    oi, ni, oj, nj = ctx.outer[i], ctx.inner[i], ctx.outer[j], ctx.inner[j]
    shared = np.where((oi == oj) | (oi == nj), oi, np.where((ni == oj) | (ni == nj), ni, -2))
    same = shared > -2
    loop = np.maximum(shared, -1) + 1
    size = np.where(same, np.log1p(ctx.loop_unpaired[loop]) / 4, 0.0)
    branches = np.where(same, ctx.loop_branches[loop], -1)
    # distances of i and j from the pair closing their shared loop (hairpin GNRA: 1 and 1)
    closed = same & (shared >= 0)
    a = np.maximum(shared, 0)
    d_i = np.where(closed, np.minimum(i - a, 8) / 8, 1.0)
    d_j = np.where(closed, np.minimum(np.abs(ctx.nested[a] - j), 8) / 8, 1.0)
    scalars = [
        np.log(span) / 8,
        span == 1,
        span == 2,
        span <= 4,
        np.minimum(span, 30) / 30,
        paired_i,
        paired_j,
        ctx.decoded(i - 1, j + 1),
        ctx.decoded(i + 1, j - 1),
        ctx.decoded(i - 2, j + 2),
        ctx.decoded(i + 2, j - 2),
        far_i,
        far_j,
        same,
        same & (shared == -1),
        size,
        branches == 0,
        branches == 1,
        branches >= 2,
        d_i,
        d_j,
        ctx.prob(i, j),
        ctx.prob(i - 1, j + 1),
        ctx.prob(i + 1, j - 1),
        ctx.rowsum[i],
        ctx.rowsum[j],
        ctx.rowmax[i],
        ctx.rowmax[j],
        np.full(len(i), math.log(max(L, 1)) / 8),
    ]
    if ctx.cfg.tertiary_canonical:  # the candidates only this option adds
        scalars.append((PAIR_TYPE[ctx.nuc[i], ctx.nuc[j]] >= 0) & ~paired_i & ~paired_j)
    cols.append(np.stack([np.asarray(s, dtype=np.float32) for s in scalars], 1))
    return np.concatenate(cols, 1)


def n_features(cfg: NonCanonicalConfig) -> int:
    """Width of a candidate's feature vector."""
    return 25 + 4 * cfg.context * 6 + 29 + int(cfg.tertiary_canonical)


def pair_features(
    seq: str, partners: np.ndarray, probs, cfg: NonCanonicalConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, features)`` of every candidate of ``seq`` (one array; for training sets)."""
    ctx = _Context(seq, partners, probs, cfg)
    got = [(a, b, _features(ctx, a, b)) for a, b in _candidate_blocks(ctx)]
    if not got:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, n_features(cfg)), np.float32)
    return tuple(np.concatenate(x) for x in zip(*got))


# ----------------------------------------------------------------------------- the model
def _mlp(cfg: NonCanonicalConfig) -> nn.Sequential:
    dims = [n_features(cfg)] + [cfg.hidden] * cfg.layers
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.GELU()]
    layers.append(nn.Linear(dims[-1], 1))
    return nn.Sequential(*layers)


class NonCanonicalScorer(nn.Module):
    """Logit of each candidate from its features: the mean logit of ``cfg.members`` MLPs of
    ``cfg.layers`` hidden layers, each trained on its own, a seed each
    (:func:`resm.tasks.noncanonical_scorer.train_scorer`)."""

    def __init__(self, cfg: NonCanonicalConfig):
        super().__init__()
        self.cfg = cfg
        self.members = nn.ModuleList(_mlp(cfg) for _ in range(cfg.members))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(feats)[:, 0] for m in self.members]).mean(0)


@torch.no_grad()
def score_candidates(
    scorer: NonCanonicalScorer, seq: str, partners: np.ndarray, probs
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, probability)`` of every candidate, scored block by block on the scorer's
    device and in its dtype (a scorer moved to the GPU or cast to bf16 scores as it is)."""
    scorer.eval()
    ctx = _Context(seq, partners, probs, scorer.cfg)
    w = next(scorer.parameters())
    out = []
    for a, b in _candidate_blocks(ctx):
        feats = torch.from_numpy(_features(ctx, a, b)).to(device=w.device, dtype=w.dtype)
        s = torch.sigmoid(scorer(feats).float()).cpu().numpy()
        out.append((a, b, s.astype(np.float32)))
    if not out:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return tuple(np.concatenate(x) for x in zip(*out))


def add_pairs(
    partners: np.ndarray, i: np.ndarray, j: np.ndarray, s: np.ndarray, threshold: float, max_partners: int
) -> PairSet:
    """The decoded pairs plus the candidates scoring above ``threshold``, best first (ties:
    smaller i, then smaller j), each added while both its bases have fewer than
    ``max_partners`` pairs."""
    partners = np.asarray(partners, dtype=np.int64)
    L = len(partners)
    a = np.flatnonzero(partners > np.arange(L))
    base = np.stack([a, partners[a]], 1)
    deg = np.bincount(base.ravel(), minlength=L)
    keep = np.flatnonzero(np.asarray(s) > threshold)
    order = keep[np.lexsort((j[keep], i[keep], -np.asarray(s)[keep]))]
    added = []
    for k in order:
        x, y = int(i[k]), int(j[k])
        if deg[x] < max_partners and deg[y] < max_partners:
            deg[x] += 1
            deg[y] += 1
            added.append((x, y))
    ij = np.concatenate([base, np.asarray(added, np.int64).reshape(-1, 2)])
    return PairSet(ij, L)


@dataclass
class NonCanonical:
    """A trained scorer and the threshold its pairs must pass (see the module notes)."""

    scorer: NonCanonicalScorer
    threshold: float
    about: dict = field(default_factory=dict)  # recipe and validation figures, kept in the file

    @property
    def cfg(self) -> NonCanonicalConfig:
        return self.scorer.cfg

    def add(self, seq: str, partners: np.ndarray, probs) -> PairSet:
        """``partners`` (the decoded canonical structure) with the non-canonical pairs and
        extra partners that pass the threshold; ``probs`` the structure model's ``(i, j, p)``."""
        i, j, s = score_candidates(self.scorer, seq, partners, probs)
        return add_pairs(partners, i, j, s, self.threshold, self.cfg.max_partners)

    def to_payload(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "config": self.cfg.to_dict(),
            "n_features": n_features(self.cfg),
            "state": {k: v.detach().float().cpu().clone() for k, v in self.scorer.state_dict().items()},
            "threshold": float(self.threshold),
            "about": dict(self.about),
        }

    @classmethod
    def from_payload(cls, data, where: str) -> NonCanonical:
        """The scorer of a structure model file's :data:`KEY` entry; anything inconsistent is
        a one-line :class:`NonCanonicalError` naming ``where``."""

        def bad(why: str) -> NonCanonicalError:
            return NonCanonicalError(f"{where}: its non-canonical scorer is unusable: {why}")

        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise bad(f"the entry {KEY!r} is not a {FORMAT} scorer")
        problem = format_version_problem(data.get("version"), VERSION)
        if problem:
            raise bad(problem)
        missing = [k for k in ("config", "n_features", "state", "threshold") if k not in data]
        if missing:
            raise bad(f"no {', '.join(missing)}")
        if not isinstance(data["config"], dict):
            raise bad("its config is not a mapping")
        try:
            cfg = NonCanonicalConfig.from_dict(data["config"])
        except (TypeError, ValueError) as e:
            raise bad(f"config: {e}") from None
        if data["n_features"] != n_features(cfg):
            raise bad(f"it was trained on {data['n_features']!r} features, its config gives {n_features(cfg)}")
        t = data["threshold"]
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0.0 <= float(t) < 1.0:
            raise bad(f"threshold {t!r} is not a probability in [0, 1)")
        state = data["state"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise bad("its weights are not a mapping of tensors")
        scorer = NonCanonicalScorer(cfg)
        want = scorer.state_dict()
        if set(state) != set(want):
            diff = sorted(set(state) ^ set(want))
            raise bad(f"weights {diff[:3]} do not match its config")
        for k, v in want.items():
            if tuple(state[k].shape) != tuple(v.shape):
                raise bad(f"weight {k!r} has shape {tuple(state[k].shape)}, its config needs {tuple(v.shape)}")
            if not torch.isfinite(state[k]).all():
                raise bad(f"weight {k!r} is not finite")
        scorer.load_state_dict({k: v.float() for k, v in state.items()})
        about = data.get("about") if isinstance(data.get("about"), dict) else {}
        return cls(scorer.eval(), float(t), about)


# ----------------------------------------------------------------------------- training
def labelled_arrays(items: Sequence[tuple], cfg: NonCanonicalConfig) -> tuple[np.ndarray, np.ndarray]:
    """Features and 0/1 labels of every candidate of ``items``, each ``(seq, partners, probs,
    reference)``: the decoded structure, the model's ``(i, j, p)`` and the reference
    :class:`PairSet`."""
    xs, ys = [], []
    for seq, partners, probs, ref in items:
        i, j, f = pair_features(seq, partners, probs, cfg)
        L = len(seq)
        ys.append(np.isin(i * (L + 2) + j, ref.ij[:, 0] * (L + 2) + ref.ij[:, 1]).astype(np.float32))
        xs.append(f)
    if not xs:
        return np.zeros((0, n_features(cfg)), np.float32), np.zeros(0, np.float32)
    return np.concatenate(xs), np.concatenate(ys)


def choose_threshold(
    items: Sequence[tuple],
    scored: Sequence[tuple],
    max_partners: int,
    grid: Sequence[float] = tuple(np.round(np.arange(0.2, 0.96, 0.05), 2)),
) -> tuple[float, dict[float, float]]:
    """The threshold in ``grid`` that maximises the mean per-sequence F1 over all pairs of
    ``items`` (``(seq, partners, probs, reference)``), each scored as ``scored[k]`` =
    ``(i, j, s)``; ties keep the higher threshold. Returns it with every threshold's score."""
    from .metrics import evaluate

    scores = {}
    for t in grid:
        preds = [add_pairs(it[1], *sc, float(t), max_partners) for it, sc in zip(items, scored)]
        scores[float(t)] = evaluate(preds, [it[3] for it in items])["f1_mean"]
    best = max(sorted(scores, reverse=True), key=lambda t: scores[t])
    return best, scores


def attach(model_path, nc: NonCanonical, out) -> None:
    """Write the structure model at ``model_path`` with ``nc`` stored in it to ``out``
    (atomically; every other entry as it was)."""
    from ..backbone.load import CheckpointError, safe_load
    from .model import FORMAT as MODEL_FORMAT
    from .model import save_structure_model

    data = safe_load(model_path)
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT or data.get("head_kind") != "pairs":
        raise CheckpointError(f"{model_path}: not a pair-head structure model")
    data[KEY] = nc.to_payload()
    save_structure_model(data, out)
