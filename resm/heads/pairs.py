"""The sparse pair head: secondary structure scored over candidate base pairs.

A thermodynamic prior (:mod:`resm.structure.priors`) already rules out almost every cell of the
L x L pair map: with EternaFold's probabilities above 1e-4, about 12 canonical candidates per
nucleotide hold 97% of the canonical pairs of bpRNA's validation set. This head therefore scores
only those candidates, so its cost grows with L, not L^2 (a 4,000-nt RNA has ~50,000
candidates), and every pair the prior allows can be predicted whatever its span.

Inputs of one sequence (:func:`candidates`):

* per residue: the nucleotide (A C G U, or unknown), each prior's probability that the base is
  paired and its largest pair probability, and optionally the backbone's embeddings;
* per candidate (i, j): for each prior the pair's probability (linear and log-scaled), the
  probabilities in the (2w+1) x (2w+1) patch around (i, j) (stacked and bulged neighbours),
  the two bases' paired and largest probabilities and the pair's share of them; whether the
  stacked neighbours (i -+ d, j +- d), d = 1..3, can pair; the span and the length;
  the pair type (AU, UA, GC, CG, GU, UG); optionally the backbone's attention maps at (i, j).

Model (:class:`PairHead`): a residue encoder (embeddings of the inputs above, then residual
blocks of dilated 1-D convolutions) gives h_i; each candidate starts from
``z = A h_i + B h_j + C f_ij + E[type]`` and goes through ``rounds`` rounds of two updates:

* *stacking*: z_ij += MLP([z_ij, z_(i-1, j+1), z_(i+1, j-1)]), messages along the helix;
* *competition*: each base gathers the gated messages of every candidate it belongs to,
  m_i = sum_j sigmoid(g z_ij) V z_ij, and z_ij += MLP([z_ij, m_i - own, m_j - own]), so a
  candidate sees its rivals for the same bases.

The output is a logit per candidate; the loss is binary cross-entropy over the candidates (the
probabilities stay calibrated for maximum-expected-accuracy decoding,
:func:`resm.structure.decode.mea_pairs`). Everything is per candidate or per residue, so a
padded batch of several sequences gives the same logits as each sequence alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..backbone.attention import BatchCells, run_attention
from ..backbone.encoder import window_hidden
from ..config import StoredConfig, check_dropout, check_kernel, check_sizes
from ..nucleotides import PAIR_TYPE, UNKNOWN_BASE, lenient_codes
from ..utils.memory import require_trainable

__all__ = [
    "PairHeadConfig",
    "Candidates",
    "candidates",
    "collate_candidates",
    "PairHead",
    "PairHeadEnsemble",
    "mean_probability_logits",
    "n_pair_features",
    "prior_probability",
    "split_by_sequence",
]


@dataclass
class PairHeadConfig(StoredConfig):
    """Hyper-parameters of :class:`PairHead` and of its candidate features.

    Attributes:
        priors: number of pair priors the features are built from (filled in from the data).
        embed_dim: width of the backbone embeddings (filled in; read when ``use_embeddings``).
        use_embeddings: add the backbone's residue embeddings to the residue encoder's input.
        use_nucleotides: give the residue encoder the nucleotide identities (sequence context).
        use_attention: add the backbone's attention maps at each candidate (sym + APC).
        attn_channels: layers x heads of the backbone (filled in).
        width: width of the residue encoder.
        pair_width: width of a candidate's state.
        blocks, kernel, dilations: the residue encoder's residual 1-D convolutions (dilations
            cycled over the blocks).
        rounds: rounds of stacking and competition updates.
        dropout: dropout on the updates (training only).
        min_prob: a canonical pair is a candidate when some prior gives it at least this.
        patch: half-width w of the prior patch read around each candidate.
        min_loop: pairs with ``j - i <= min_loop`` are never candidates.
        embed_window: residue embeddings of a sequence longer than this many nucleotides come
            from overlapping windows of that length (:func:`resm.backbone.encoder.window_hidden`);
            set it near the longest sequences the backbone was trained on. 0: the whole
            sequence in one pass. Attention maps (``use_attention``) always see the whole
            sequence.
    """

    priors: int = 1
    embed_dim: int = 0
    use_embeddings: bool = True
    use_nucleotides: bool = True
    use_attention: bool = False
    attn_channels: int = 0
    width: int = 64
    pair_width: int = 64
    blocks: int = 4
    kernel: int = 7
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    rounds: int = 2
    dropout: float = 0.0
    min_prob: float = 1e-4
    patch: int = 3
    min_loop: int = 3
    embed_window: int = 0

    def __post_init__(self) -> None:
        self.dilations = tuple(int(d) for d in self.dilations)
        if self.priors < 1:
            raise ValueError(f"the pair head needs at least one prior, got {self.priors}")
        check_kernel(self.kernel)
        if self.blocks < 0 or (self.blocks and not self.dilations) or any(d < 1 for d in self.dilations):
            raise ValueError("blocks must be >= 0 and dilations positive")
        check_sizes(self, ("width", "pair_width"))
        if self.rounds < 0 or self.patch < 0 or self.min_loop < 0 or self.embed_window < 0:
            raise ValueError("rounds, patch, min_loop and embed_window must be >= 0")
        if not 0.0 < self.min_prob < 1.0:
            raise ValueError(f"min_prob must be in (0, 1), got {self.min_prob}")
        check_dropout(self.dropout)
        if self.use_attention and self.attn_channels < 1:
            raise ValueError("use_attention needs attn_channels = layers * heads > 0")

    def require_trainable(self) -> None:
        """Before a head is built to train (not when a trained one is read): the training of a
        head of this config must fit the machine (:func:`resm.utils.memory.require_trainable`);
        each tensor of a head 10**9 wide fit, all of them did not."""
        key = max(("width", "pair_width"), key=lambda k: getattr(self, k))
        require_trainable(self.n_parameters(), key, getattr(self, key), "the pair head")

    def n_parameters(self) -> int:
        """Parameters of :class:`PairHead` with this config, counted from its sizes without
        building it (:meth:`PairHead.num_parameters` of the built head)."""
        d, z, r = self.width, self.pair_width, self.rounds
        n = 5 * d if self.use_nucleotides else 0  # nuc_embed
        n += (2 * self.priors + 1) * d  # residue_in
        if self.use_embeddings:
            n += 2 * self.embed_dim + self.embed_dim * d  # embed_norm, embed_in
        n += self.blocks * 2 * (2 * d + d * d * self.kernel + d)  # _Block1d: two norms and convolutions
        n += 2 * d  # residue_norm
        n += (d + 1) * z + d * z + n_pair_features(self) * z + 6 * z  # from_i, from_j, from_feats, type_embed
        n += self.attn_channels * z if self.use_attention else 0  # from_attn
        n += (z + 1) * z  # start
        mlp = 2 * 3 * z + (3 * z + 1) * z + (z + 1) * z  # _mlp(3z, z)
        n += r * (2 * mlp + (z + 1) + (z + 1) * z)  # stack, compete, gate, message
        n += 2 * z + (z + 1) * z + (z + 1)  # out
        return n

    def to_dict(self) -> dict[str, object]:
        d = super().to_dict()
        d["dilations"] = list(self.dilations)
        return d


def n_pair_features(cfg: PairHeadConfig) -> int:
    """Width of a candidate's feature vector."""
    side = 2 * cfg.patch + 1
    return cfg.priors * (2 + side * side - 1 + 6) + 6 + 3


# ----------------------------------------------------------------------------- features
@dataclass
class Candidates:
    """The candidates of one sequence and their features (numpy; see the module notes).

    ``i``, ``j``: candidate pairs (i < j), sorted by ``i * (L + 2) + j``; ``feats`` (n, F);
    ``ptype`` (n,) 0..5; ``outer`` / ``inner``: index of the candidate (i - 1, j + 1) /
    (i + 1, j - 1), or -1; ``nuc`` (L,) codes 0..4; ``residue`` (L, 2 * priors); ``target``
    (n,) 0/1 when the true pairs were given."""

    length: int
    i: np.ndarray
    j: np.ndarray
    feats: np.ndarray
    ptype: np.ndarray
    outer: np.ndarray
    inner: np.ndarray
    nuc: np.ndarray
    residue: np.ndarray
    target: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.i)


def _lookup(keys: np.ndarray, values: np.ndarray, L: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """values at pairs (a, b) from sorted keys ``i * (L + 2) + j`` (0 where absent or outside)."""
    if not len(keys):
        return np.zeros(len(a), dtype=np.float32)
    k = a * (L + 2) + b
    pos = np.minimum(np.searchsorted(keys, k), len(keys) - 1)
    ok = (a >= 0) & (b < L) & (a < b) & (keys[pos] == k)
    return np.where(ok, values[pos], 0.0).astype(np.float32)


DENSE_LOOKUP_MAX = 4096  # nt: up to here a prior's patch values are read from a dense table


def _patch_lookup(
    prepared: tuple, L: int, ci: np.ndarray, cj: np.ndarray, shifts: list[tuple[int, int]]
) -> list[np.ndarray]:
    """One prior's values at ``(ci + a, cj + b)`` for each shift ``(a, b)``: :func:`_lookup`'s,
    value for value. Up to :data:`DENSE_LOOKUP_MAX` nt they are read from an (L + 2w)^2 float32
    table (w the largest shift; 67 MB at 4,096 nt, freed on return), one gather per shift instead
    of a binary search; a pair listed twice keeps its first value, as the search finds it."""
    i, j, p, pk = prepared
    w = max((max(abs(a), abs(b)) for a, b in shifts), default=0)
    if L > DENSE_LOOKUP_MAX or not len(pk) or not len(ci) or i.min() < 0 or j.max() >= L:
        return [_lookup(pk, p, L, ci + a, cj + b) for a, b in shifts]
    M = L + 2 * w
    first = np.ones(len(pk), dtype=bool)
    first[1:] = pk[1:] != pk[:-1]  # pk is sorted
    table = np.zeros(M * M, dtype=np.float32)
    table[(i[first] + w) * M + j[first] + w] = p[first]
    base, span = (ci + w) * M + cj + w, cj - ci
    out = []
    for a, b in shifts:
        v = table[base + (a * M + b)]
        if a - b >= 0:  # (ci + a, cj + b) is no pair i < j where the span is too short
            v[span <= a - b] = 0.0
        out.append(v)
    return out


def candidates(seq: str, priors: Sequence, cfg: PairHeadConfig, pairs: np.ndarray | None = None) -> Candidates:
    """Candidates and features of ``seq`` from its priors (:class:`resm.structure.priors.SparsePairs`,
    in the order the head was trained with); ``pairs`` (partner array, or a
    :class:`resm.structure.pairsets.PairSet`, where a base may sit in several pairs) adds the
    targets."""
    if len(priors) != cfg.priors:
        raise ValueError(f"this head reads {cfg.priors} prior(s), got {len(priors)}")
    L = len(seq)
    nuc = lenient_codes(seq).astype(np.int64)
    prepared, keys = [], []
    for sp in priors:
        if sp.length != L:
            raise ValueError(f"a prior of length {sp.length} for a sequence of {L} nt")
        order = np.argsort(sp.i * (L + 2) + sp.j, kind="stable")
        i, j, p = sp.i[order], sp.j[order], sp.p[order].astype(np.float32)
        prepared.append((i, j, p, i * (L + 2) + j))
        ok = (j - i > cfg.min_loop) & (p >= cfg.min_prob) & (PAIR_TYPE[nuc[i], nuc[j]] >= 0)
        keys.append((i * (L + 2) + j)[ok])
    key = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    ci, cj = key // (L + 2), key % (L + 2)
    cols, residue = [], []
    w = cfg.patch
    shifts = [(0, 0)] + [(a, b) for a in range(-w, w + 1) for b in range(-w, w + 1) if a or b]  # the pair first
    for prep in prepared:
        i, j, p, _ = prep
        rows = np.zeros(L, np.float32)
        np.add.at(rows, i, p)
        np.add.at(rows, j, p)
        rmax = np.zeros(L, np.float32)
        np.maximum.at(rmax, i, p)
        np.maximum.at(rmax, j, p)
        cp, *patch = _patch_lookup(prep, L, ci, cj, shifts)
        cols += [cp, np.log10(np.maximum(cp, 1e-4)) / 4 + 1]
        cols += patch
        cols += [
            rows[ci],
            rows[cj],
            rmax[ci],
            rmax[cj],
            cp / np.maximum(rmax[ci], 1e-6),
            cp / np.maximum(rmax[cj], 1e-6),
        ]
        residue += [rows, rmax]

    def can_pair(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ok = (a >= 0) & (b < L) & (b - a > cfg.min_loop)
        return (ok & (PAIR_TYPE[nuc[np.clip(a, 0, max(L - 1, 0))], nuc[np.clip(b, 0, max(L - 1, 0))]] >= 0)).astype(
            np.float32
        )

    for d in (1, 2, 3):
        cols += [can_pair(ci - d, cj + d), can_pair(ci + d, cj - d)]
    span = (cj - ci).astype(np.float32)
    cols += [
        np.log(np.maximum(span, 1.0)) / 8,
        np.minimum(span, 30.0) / 30,
        np.full(len(ci), np.log(max(L, 1)) / 8, np.float32),
    ]
    feats = np.stack(cols, 1).astype(np.float32) if len(ci) else np.zeros((0, n_pair_features(cfg)), np.float32)

    def index_of(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if not len(key):
            return np.full(len(a), -1, dtype=np.int64)
        k = a * (L + 2) + b
        pos = np.minimum(np.searchsorted(key, k), len(key) - 1)
        return np.where((a >= 0) & (b < L) & (key[pos] == k), pos, -1).astype(np.int64)

    target = None
    if pairs is not None and hasattr(pairs, "ij"):  # a pair set
        target = np.isin(key, pairs.ij[:, 0] * (L + 2) + pairs.ij[:, 1]).astype(np.float32)
    elif pairs is not None:
        pairs = np.asarray(pairs)
        target = (pairs[ci] == cj).astype(np.float32) if len(ci) else np.zeros(0, np.float32)
    res = np.stack(residue, 1).astype(np.float32) if L else np.zeros((0, 2 * cfg.priors), np.float32)
    return Candidates(
        L,
        ci.astype(np.int64),
        cj.astype(np.int64),
        feats,
        PAIR_TYPE[nuc[ci], nuc[cj]] if len(ci) else np.zeros(0, np.int64),
        index_of(ci - 1, cj + 1),
        index_of(ci + 1, cj - 1),
        nuc,
        res,
        target,
    )


def collate_candidates(batch: Sequence[Candidates]) -> dict[str, torch.Tensor]:
    """Tensors of a batch: residues padded to (B, Lmax) (``nuc``, ``residue``, ``mask``);
    candidates concatenated (``i``/``j`` as flat indices into the (B * Lmax) residues, ``seq``
    the batch index, ``feats``, ``ptype``, ``outer``/``inner`` into the concatenation, -1 when
    absent; ``target`` when every item has one)."""
    B, Lm = len(batch), max([c.length for c in batch] + [1])
    R = batch[0].residue.shape[1] if batch else 2
    nuc = torch.full((B, Lm), UNKNOWN_BASE, dtype=torch.long)
    residue = torch.zeros(B, Lm, R)
    mask = torch.zeros(B, Lm, dtype=torch.bool)
    ii, jj, seqs, feats, ptype, outer, inner, target = [], [], [], [], [], [], [], []
    off = 0
    for b, c in enumerate(batch):
        n = c.length
        nuc[b, :n] = torch.from_numpy(c.nuc)
        residue[b, :n] = torch.from_numpy(c.residue)
        mask[b, :n] = True
        ii.append(c.i + b * Lm)
        jj.append(c.j + b * Lm)
        seqs.append(np.full(len(c), b, dtype=np.int64))
        feats.append(c.feats)
        ptype.append(c.ptype)
        outer.append(np.where(c.outer >= 0, c.outer + off, -1))
        inner.append(np.where(c.inner >= 0, c.inner + off, -1))
        target.append(c.target)
        off += len(c)

    def cat(xs, dtype):
        return torch.from_numpy(np.concatenate(xs).astype(dtype)) if xs else torch.zeros(0, dtype=getattr(torch, dtype))

    out = {
        "nuc": nuc,
        "residue": residue,
        "mask": mask,
        "i": cat(ii, "int64"),
        "j": cat(jj, "int64"),
        "seq": cat(seqs, "int64"),
        "feats": torch.from_numpy(np.concatenate(feats).astype(np.float32)) if batch else torch.zeros(0, 0),
        "ptype": cat(ptype, "int64"),
        "outer": cat(outer, "int64"),
        "inner": cat(inner, "int64"),
        "counts": torch.tensor([len(c) for c in batch], dtype=torch.long),
    }
    if batch and all(t is not None for t in target):
        out["target"] = cat(target, "float32")
    return out


# ----------------------------------------------------------------------------- model
class _Block1d(nn.Module):
    """Pre-activation residual block of two 1-D convolutions (the first dilated), masked."""

    def __init__(self, width: int, kernel: int, dilation: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.conv1 = nn.Conv1d(width, width, kernel, padding=dilation * (kernel // 2), dilation=dilation)
        self.norm2 = nn.LayerNorm(width)
        self.conv2 = nn.Conv1d(width, width, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        y = self.conv1((F.gelu(self.norm1(x)) * m).transpose(1, 2)).transpose(1, 2)
        y = self.conv2((F.gelu(self.norm2(y)) * m).transpose(1, 2)).transpose(1, 2)
        return x + y * m


def _mlp(n_in: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(n_in), nn.Linear(n_in, width), nn.GELU(), nn.Linear(width, width))


class PairHead(nn.Module):
    """Logits of candidate pairs (see the module notes)."""

    kind = "pairs"  # head.kind of a structure config, head_kind of a structure model file

    def __init__(self, cfg: PairHeadConfig):
        super().__init__()
        self.cfg = cfg
        d, z = cfg.width, cfg.pair_width
        self.nuc_embed = nn.Embedding(5, d) if cfg.use_nucleotides else None
        self.residue_in = nn.Linear(2 * cfg.priors, d)
        if cfg.use_embeddings:
            self.embed_norm = nn.LayerNorm(cfg.embed_dim)
            self.embed_in = nn.Linear(cfg.embed_dim, d, bias=False)
        self.blocks = nn.ModuleList(
            _Block1d(d, cfg.kernel, cfg.dilations[b % len(cfg.dilations)]) for b in range(cfg.blocks)
        )
        self.residue_norm = nn.LayerNorm(d)
        self.from_i = nn.Linear(d, z)
        self.from_j = nn.Linear(d, z, bias=False)
        self.from_feats = nn.Linear(n_pair_features(cfg), z, bias=False)
        self.type_embed = nn.Embedding(6, z)
        self.from_attn = nn.Linear(cfg.attn_channels, z, bias=False) if cfg.use_attention else None
        self.start = nn.Sequential(nn.GELU(), nn.Linear(z, z))
        self.stack = nn.ModuleList(_mlp(3 * z, z) for _ in range(cfg.rounds))
        self.gate = nn.ModuleList(nn.Linear(z, 1) for _ in range(cfg.rounds))
        self.message = nn.ModuleList(nn.Linear(z, z) for _ in range(cfg.rounds))
        self.compete = nn.ModuleList(_mlp(3 * z, z) for _ in range(cfg.rounds))
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Sequential(nn.LayerNorm(z), nn.Linear(z, z), nn.GELU(), nn.Linear(z, 1))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def run(self, backbone, tokens: torch.Tensor, batch: dict[str, torch.Tensor], frozen: bool) -> torch.Tensor:
        """Logits of the candidates of ``batch`` (:func:`collate_candidates` of the same
        sequences, in the same order, as the rows of ``tokens``) on ``backbone``. ``frozen``:
        no gradient reaches the backbone."""
        return self(batch, *self.backbone_inputs(backbone, tokens, batch, frozen))

    def backbone_inputs(
        self, backbone, tokens: torch.Tensor, batch: dict[str, torch.Tensor], frozen: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(h, attn)``: what this head reads from ``backbone`` for ``batch`` (residue
        embeddings (B, Lmax, E) and attention maps at the candidates, each None when unused)."""
        cfg = self.cfg
        h = attn = None
        if cfg.use_embeddings or cfg.use_attention:
            Lm = batch["mask"].shape[1]
            if cfg.use_attention:
                # maps are an input without gradient (as for the 2-D head); the residue states
                # come from the same pass when the backbone is frozen
                b = batch["seq"]
                cells = BatchCells(b, batch["i"] - b * Lm, batch["j"] - b * Lm)
                with torch.no_grad():
                    reps = run_attention(backbone, tokens, cells, repr_layers=[backbone.num_layers])
                attn = cells.result()
                if frozen:
                    h = reps["representations"][backbone.num_layers]
            if cfg.use_embeddings and (h is None or 0 < cfg.embed_window < Lm):
                with torch.no_grad() if frozen else contextlib.nullcontext():
                    h = window_hidden(backbone, tokens, cfg.embed_window)
            if h is not None:
                h = h[:, 1 : 1 + Lm]
        return h, attn

    def residues(self, batch: dict[str, torch.Tensor], h: torch.Tensor | None = None) -> torch.Tensor:
        """Residue states (B, Lmax, width), zero at padding."""
        cfg = self.cfg
        m = batch["mask"][..., None].to(self.residue_in.weight.dtype)
        x = self.residue_in(batch["residue"])
        if self.nuc_embed is not None:
            x = x + self.nuc_embed(batch["nuc"])
        if cfg.use_embeddings:
            if h is None:
                raise ValueError("this head reads backbone embeddings: pass h (B, L, embed_dim)")
            x = x + self.embed_in(self.embed_norm(h.to(x.dtype)))
        x = x * m
        for blk in self.blocks:
            x = blk(x, m)
        return self.residue_norm(x) * m

    def forward(
        self, batch: dict[str, torch.Tensor], h: torch.Tensor | None = None, attn: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (n_candidates,) of the batch (:func:`collate_candidates`); ``h`` (B, Lmax, E)
        the backbone's residue embeddings when ``use_embeddings``; ``attn`` (n_candidates,
        attn_channels) when ``use_attention``."""
        res = self.residues(batch, h)
        flat = res.reshape(-1, res.shape[-1])
        i, j = batch["i"], batch["j"]
        z = (
            self.from_i(flat)[i]
            + self.from_j(flat)[j]
            + self.from_feats(batch["feats"])
            + self.type_embed(batch["ptype"])
        )
        if self.from_attn is not None:
            if attn is None:
                raise ValueError("this head reads attention maps: pass attn (n_candidates, layers * heads)")
            z = z + self.from_attn(attn.to(z.dtype))
        z = z + self.start(z)
        pad = z.new_zeros(1, z.shape[1])
        for r in range(self.cfg.rounds):
            zz = torch.cat([z, pad])  # index -1 reads the zero row
            z = z + self.drop(self.stack[r](torch.cat([z, zz[batch["outer"]], zz[batch["inner"]]], 1)))
            # under autocast the linear layers give half-precision messages; they are summed
            # in z's own dtype (index_add_ takes one dtype, and a long sum keeps its precision)
            msg = (self.message[r](z) * torch.sigmoid(self.gate[r](z))).to(z.dtype)
            acc = z.new_zeros(flat.shape[0], z.shape[1])
            acc.index_add_(0, i, msg)
            acc.index_add_(0, j, msg)
            z = z + self.drop(self.compete[r](torch.cat([z, acc[i] - msg, acc[j] - msg], 1)))
        return self.out(z)[:, 0].float()


def mean_probability_logits(logits: torch.Tensor) -> torch.Tensor:
    """The logits of the mean probability of several heads, candidate by candidate:
    ``logits`` (n_heads, n_candidates) -> ``l`` (n_candidates,) with ``sigmoid(l)`` the mean of
    ``sigmoid(logits)`` over the heads (to float32 rounding). Computed in float64 through
    log-sigmoids, so saturated logits stay finite: log p - log(1 - p), each the log-mean-exp
    of the heads' log-sigmoids."""
    x = logits.double()
    log_n = float(np.log(x.shape[0]))
    log_p = torch.logsumexp(F.logsigmoid(x), 0) - log_n
    log_q = torch.logsumexp(F.logsigmoid(-x), 0) - log_n
    return (log_p - log_q).to(logits.dtype)


class PairHeadEnsemble(nn.Module):
    """Several pair heads of one configuration over one backbone, read as one head: the
    backbone's inputs are computed once, each member scores the candidates, and the logits
    returned are those of the members' mean probability (:func:`mean_probability_logits`), so
    that everything downstream (``sigmoid``, decoding) sees the averaged pair probabilities.
    One member: its logits unchanged, bit for bit. For inference; a structure model file holds
    one when it has ``head_ensemble`` (:mod:`resm.structure.model`)."""

    kind = PairHead.kind

    def __init__(self, members: Sequence[PairHead]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one head")
        if not all(isinstance(m, PairHead) for m in members):
            raise ValueError("an ensemble holds pair heads only")
        cfgs = {repr(m.cfg) for m in members}
        if len(cfgs) != 1:
            raise ValueError("the heads of an ensemble must share one configuration")
        self.members = nn.ModuleList(members)
        self.cfg = members[0].cfg

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def run(self, backbone, tokens: torch.Tensor, batch: dict[str, torch.Tensor], frozen: bool) -> torch.Tensor:
        """:meth:`PairHead.run` of the ensemble (the backbone runs once)."""
        return self(batch, *self.members[0].backbone_inputs(backbone, tokens, batch, frozen))

    def forward(
        self, batch: dict[str, torch.Tensor], h: torch.Tensor | None = None, attn: torch.Tensor | None = None
    ) -> torch.Tensor:
        if len(self.members) == 1:
            return self.members[0](batch, h, attn)
        return mean_probability_logits(torch.stack([m(batch, h, attn) for m in self.members]))


def prior_probability(c: Candidates, cfg: PairHeadConfig) -> np.ndarray:
    """Each candidate's prior probability, averaged over the priors (the features' first
    column of each prior's block)."""
    if not len(c):
        return np.zeros(0, dtype=np.float32)
    block = n_pair_features(cfg) - 9
    step = block // cfg.priors
    return c.feats[:, [k * step for k in range(cfg.priors)]].mean(1).astype(np.float32)


def split_by_sequence(values: torch.Tensor, counts: torch.Tensor) -> list[torch.Tensor]:
    """Per-sequence pieces of a concatenated candidate tensor."""
    return list(torch.split(values, counts.tolist()))


def pair_apply(
    head: PairHead, h: torch.Tensor | None, mask: torch.Tensor, batch: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Candidate logits from residue embeddings ``h`` and the batch's candidates
    (:func:`collate_candidates`, with ``attn`` when the head reads attention maps)."""
    return head(batch, h, batch.get("attn"))


def build_pair_head(config: dict, embed_dim: int):
    """``(PairHead, pair_apply)`` from a head config (the registry's builder)."""
    return PairHead(PairHeadConfig.from_saved(config, embed_dim)), pair_apply


HEADS = {"pairs": build_pair_head}  # this module's entries of resm.heads.HEADS
