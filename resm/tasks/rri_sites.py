"""Interaction sites along partners of any length up to :data:`MAX_PARTNER` nt: a trained
``rri`` head scanned in windows.

The interaction head (:class:`resm.heads.rri.InteractionHead`) is trained on short partners
(``max_length``, 64 nt in the shipped configs: a miRNA against a 40-nt target site). A longer
partner is cut into windows of ``window`` nucleotides (default: the head's ``max_length``)
every ``stride`` (default ``window // 2``), the last one ending at the sequence's end, so
every nucleotide is in at least one window and nothing is truncated; a partner no longer than
the window is one window, itself. Each window runs through the encoder as a sequence of its
own (BOS, the window's tokens cut from the mapped partner, EOS), as a partner did in
training, once per partner; the head then scores every
(window of a) x (window of b) pair in batches, so memory grows with the batch, not with
``len(a) x len(b)`` (except with ``with_maps``, which keeps the stitched map).

For each pair the scan gives

* ``score``: the largest window-pair probability (for two partners that fit in one window
  each, exactly the head's probability of the pair: :func:`resm.tasks.rri.predict_rri`);
* ``sites``: the best window pairs, strongest first, with a window pair skipped when both of
  its windows overlap those of a stronger site already kept (overlapping windows see the
  same duplex), at most ``max_sites``;
* each site's predicted duplex: ViennaRNA's ``RNA.duplexfold`` of the site's two windows
  (structure, spans, free energy). The head's own intermolecular pair map is learnt from the
  interaction label alone and in practice puts probability > 0.5 on one or two pairs, so it is
  no duplex; its strongest chain (:func:`duplex_from_map`: the antiparallel chain of pairs, i
  increasing on a while j decreases on b, of largest summed logit among pairs of probability
  > 0.5) is kept as ``head_pairs`` to show where the head looks;
* with ``with_maps``: the (La, Lb) pair-probability map stitched from the windows (the
  largest value where windows overlap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..alphabet import pad_batch
from ..config import ConfigError, flag
from ..heads.rri import MAX_PARTNER
from ..nucleotides import rna_codes
from .base import TaskModel, on_device

__all__ = ["MAX_PARTNER", "ScanOptions", "Site", "PairScan", "window_starts", "duplex_from_map", "scan_pairs"]

# The shortest window: a miRNA's seed match, the shortest duplex an interaction is called on, is
# 6-8 nt; a window under it (--window 1: one nucleotide against one) holds no duplex to score.
# A head trained on shorter partners than this is scanned in windows of its own length.
MIN_WINDOW = 8


@dataclass
class ScanOptions:
    """How partners are scanned.

    Attributes:
        window: window length in nt (0: the head's ``max_length``); at least :data:`MIN_WINDOW`
            (or ``max_length`` when smaller), at most ``max_length``.
        stride: step between window starts (0: ``window // 2``); at most ``window`` (a longer step
            would leave nucleotides between windows unscanned).
        max_sites: sites kept per pair (strongest first).
        batch_size: window pairs per head batch (and windows per encoder batch).
        with_maps: also return each pair's stitched (La, Lb) pair-probability map.
        progress: show a progress bar over the pairs.
    """

    window: int = 0
    stride: int = 0
    max_sites: int = 10
    batch_size: int = 64
    with_maps: bool = False
    progress: bool = False

    def resolved(self, max_length: int, name=flag) -> tuple[int, int]:
        """``(window, stride)`` for a head trained up to ``max_length`` nt; a bad one is a
        ConfigError naming the option as ``name`` does (:func:`resm.config.flag`: ``--window``;
        the Python API: ``scan.window``)."""
        w = self.window or int(max_length)
        least = min(MIN_WINDOW, int(max_length))
        if w < least or w > max_length:
            raise ConfigError(
                f"window must lie in [{least}, {max_length}] ({name('window')}; {least} nt: the shortest duplex "
                f"scored, {max_length}: the head's max_length), got {w}"
            )
        s = self.stride or max(1, w // 2)
        if s < 1 or s > w:
            raise ConfigError(f"stride must lie in [1, window={w}] ({name('stride')}), got {s}")
        if self.max_sites < 1 or self.batch_size < 1:
            raise ConfigError("max_sites and batch_size must be >= 1")
        return w, s


@dataclass
class Site:
    """One scored window pair (coordinates 1-based, inclusive, in the full partners)."""

    a_start: int
    a_end: int
    b_start: int
    b_end: int
    prob: float
    logit: float
    duplex: str = ""  # RNA.duplexfold of the two windows: dot-bracket "a&b" over the spans below
    duplex_a: tuple[int, int] = (0, 0)  # span of the duplex on a (1-based; (0, 0) if none)
    duplex_b: tuple[int, int] = (0, 0)
    duplex_energy: float = 0.0  # kcal/mol
    head_pairs: list[tuple[int, int]] = field(default_factory=list)  # from the head's map, 1-based (i on a, j on b)


@dataclass
class PairScan:
    """One pair's scan: ``score`` (best window pair's probability) and its ``logit``, the
    ``sites`` kept, the number of windows on each partner and their 0-based ``starts``, every
    window pair's logit (``logits``, (Na, Nb)) and, with ``with_maps``, the stitched map."""

    score: float
    logit: float
    sites: list[Site]
    n_windows: tuple[int, int]
    map: np.ndarray | None = None
    logits: np.ndarray | None = None
    starts: tuple[list[int], list[int]] = ([0], [0])

    def __repr__(self) -> str:
        """One line: the score, the sites kept and the windows (not the arrays)."""
        maps = ", map" if self.map is not None else ""
        return f"PairScan(score={self.score:.4g}, sites={len(self.sites)}, n_windows={self.n_windows}{maps})"


def window_starts(n: int, window: int, stride: int) -> list[int]:
    """0-based starts of the windows over ``n`` nt: every ``stride``, the last ending at ``n``."""
    if n <= window:
        return [0]
    starts = list(range(0, n - window, stride))
    return starts + [n - window]


def duplex_from_map(logits: np.ndarray) -> list[tuple[int, int]]:
    """The antiparallel chain of (i, j) pairs (i increasing, j decreasing; 0-based) of largest
    summed logit among the pairs with logit > 0 (probability > 0.5); [] when none is."""
    w = np.where(logits > 0, logits, 0.0).astype(np.float64)
    La, Lb = w.shape
    if not (w > 0).any():
        return []
    # F[i, j]: best chain using a[:i+1] and b[j:]; a pair (i, j) extends a chain on a[:i], b[j+1:]
    F = np.zeros((La + 1, Lb + 1))
    for i in range(La):
        prev = F[i]  # row for a[:i]
        take = prev[1:] + w[i]  # pair (i, j): F[i-1][j+1] + w
        best = np.maximum(prev[:Lb], take)
        F[i + 1, :Lb] = np.maximum.accumulate(best[::-1])[::-1]  # also allow skipping b[j]
    pairs = []
    i, j = La, 0
    while i > 0 and j < Lb:
        v = F[i, j]
        if v <= 0:
            break
        if np.isclose(v, F[i - 1, j]):
            i -= 1
        elif np.isclose(v, F[i, j + 1]):
            j += 1
        else:  # the pair (i-1, j) was taken
            pairs.append((i - 1, j))
            i, j = i - 1, j + 1
    return pairs[::-1]


@torch.no_grad()
def _embed_windows(
    model: TaskModel, scheme, seq: str, starts: Sequence[int], window: int, name: str, batch_size: int, device
):
    """Encoder output (N, w, E), mask (N, w) and nucleotide codes (N, w) of each window.

    The partner is mapped whole and each window's tokens are cut from it: a context scheme
    (``codon3``) gives a window's edge nucleotide the letter of its triplet in the partner, as
    the scheme defines it, not the fallback letter of a sequence end (which a window edge is
    not; :func:`resm.backbone.encoder.window_hidden` cuts its windows the same way)."""
    w = min(window, len(seq))
    ids = scheme.encode(seq, name)
    codes = torch.from_numpy(rna_codes(seq, name).astype(np.int64))
    hs, ms, ns = [], [], []
    for k in range(0, len(starts), batch_size):
        chunk = starts[k : k + batch_size]
        b = {
            "tokens": pad_batch([ids[s : s + w] for s in chunk]).to(device),
            "nuc": torch.stack([codes[s : s + w] for s in chunk]).to(device),
            "mask": torch.ones(len(chunk), w, dtype=torch.bool, device=device),
        }
        h, m = model.encoder(b)
        hs.append(h[:, :w].float())
        ms.append(m[:, :w])
        ns.append(b["nuc"][:, :w])
    return torch.cat(hs), torch.cat(ms), torch.cat(ns)


def _keep(sites: list[Site], cand: Site) -> bool:
    for s in sites:
        if cand.a_start <= s.a_end and s.a_start <= cand.a_end and cand.b_start <= s.b_end and s.b_start <= cand.b_end:
            return False
    return True


@torch.no_grad()
def scan_pair(
    model: TaskModel,
    head: str,
    scheme,
    a: str,
    b: str,
    max_length: int,
    opts: ScanOptions,
    device="cpu",
    name: str = "pair",
) -> PairScan:
    """Scan one pair (sequences already validated; see the module notes)."""
    if max(len(a), len(b)) > MAX_PARTNER:
        raise ConfigError(f"{name}: a partner has {max(len(a), len(b))} nt, longer than the {MAX_PARTNER} nt supported")
    window, stride = opts.resolved(max_length)
    sa, sb = window_starts(len(a), window, stride), window_starts(len(b), window, stride)
    wa, wb = min(window, len(a)), min(window, len(b))
    ha, ma, na = _embed_windows(model, scheme, a, sa, window, name.split("|")[0], opts.batch_size, device)
    hb, mb, nb = _embed_windows(model, scheme, b, sb, window, name.split("|")[-1], opts.batch_size, device)
    mod = model.heads[head]
    grid = [(i, j) for i in range(len(sa)) for j in range(len(sb))]
    logits = np.empty(len(grid), np.float32)
    full = np.zeros((len(a), len(b)), np.float32) if opts.with_maps else None
    maps_kept = {}
    # keep the pair maps of the current best candidates only (bounded memory)
    keep_n = 4 * opts.max_sites
    for k in range(0, len(grid), opts.batch_size):
        chunk = grid[k : k + opts.batch_size]
        ia = torch.tensor([i for i, _ in chunk], device=ha.device)
        ib = torch.tensor([j for _, j in chunk], device=hb.device)
        out = mod(ha[ia], ma[ia], hb[ib], mb[ib], na[ia], nb[ib])
        lg = out["logit"].float().cpu().numpy()
        logits[k : k + len(chunk)] = lg
        pl = out["pair_logits"].float().cpu().numpy()
        if full is not None:
            pm = 1.0 / (1.0 + np.exp(-pl))
            for t, (i, j) in enumerate(chunk):
                region = full[sa[i] : sa[i] + wa, sb[j] : sb[j] + wb]
                np.maximum(region, pm[t], out=region)
        for t in range(len(chunk)):
            maps_kept[k + t] = pl[t].copy()
        if len(maps_kept) > 2 * keep_n:
            top = sorted(maps_kept, key=lambda g: -logits[g])[:keep_n]
            maps_kept = {g: maps_kept[g] for g in top}
    order = np.argsort(-logits, kind="stable")
    sites: list[Site] = []
    for g in order:
        if len(sites) >= opts.max_sites:
            break
        i, j = grid[g]
        lg = float(logits[g])
        cand = Site(sa[i] + 1, sa[i] + wa, sb[j] + 1, sb[j] + wb, float(1.0 / (1.0 + np.exp(-lg))), lg)
        if not _keep(sites, cand):
            continue
        pl = maps_kept.get(int(g))
        if pl is None:  # evicted from the kept maps (sites skipped as overlapping): recompute
            out = mod(ha[i : i + 1], ma[i : i + 1], hb[j : j + 1], mb[j : j + 1], na[i : i + 1], nb[j : j + 1])
            pl = out["pair_logits"][0].float().cpu().numpy()
        cand = _site_from_map(a, b, lg, pl, sa[i], sb[j], wa, wb)
        sites.append(cand)
    best = float(logits[order[0]])
    return PairScan(
        float(1.0 / (1.0 + np.exp(-best))),
        best,
        sites,
        (len(sa), len(sb)),
        full,
        logits.reshape(len(sa), len(sb)),
        (sa, sb),
    )


def _site_from_map(
    a: str, b: str, logit: float, pl: np.ndarray, a0: int = 0, b0: int = 0, wa: int | None = None, wb: int | None = None
) -> Site:
    """The site of the window pair a[a0:a0+wa] x b[b0:b0+wb] (coordinates into the full a, b)."""
    import RNA

    wa, wb = wa or len(a), wb or len(b)
    site = Site(a0 + 1, a0 + wa, b0 + 1, b0 + wb, float(1.0 / (1.0 + np.exp(-logit))), float(logit))
    site.head_pairs = [(a0 + x + 1, b0 + y + 1) for x, y in duplex_from_map(pl[:wa, :wb])]
    d = RNA.duplexfold(a[a0 : a0 + wa], b[b0 : b0 + wb])
    left, _, right = d.structure.partition("&")
    if "(" in left:
        site.duplex, site.duplex_energy = d.structure, float(d.energy)
        site.duplex_a = (a0 + d.i - len(left) + 1, a0 + d.i)  # d.i: last nt of the duplex on a
        site.duplex_b = (b0 + d.j, b0 + d.j + len(right) - 1)  # d.j: first nt on b
    return site


@torch.no_grad()
def _short_pairs(model: TaskModel, head: str, scheme, pairs, opts: ScanOptions, device) -> list[PairScan]:
    """Pairs whose partners both fit in one window: scored in batches, as in training."""
    from .rri import collate_pairs

    out: list[PairScan] = []
    for k in range(0, len(pairs), opts.batch_size):
        chunk = list(pairs[k : k + opts.batch_size])
        b = on_device(collate_pairs(chunk, scheme), device)
        r = model(b, [head])[head]
        lg = r["logit"].float().cpu().numpy()
        pl = r["pair_logits"].float().cpu().numpy()
        for t, p in enumerate(chunk):
            m = pl[t, : len(p.a), : len(p.b)]
            site = _site_from_map(p.a, p.b, float(lg[t]), m)
            full = (1.0 / (1.0 + np.exp(-m))).astype(np.float32) if opts.with_maps else None
            out.append(PairScan(site.prob, site.logit, [site], (1, 1), full, np.array([[site.logit]], np.float32)))
    return out


def scan_pairs(
    model: TaskModel, head: str, scheme, pairs, max_length: int, opts: ScanOptions, device="cpu"
) -> list[PairScan]:
    """:func:`scan_pair` over ``pairs`` (:class:`resm.data.rri.Pair`), the model in eval mode;
    pairs whose partners both fit in one window are scored in batches (the same result)."""
    window, _ = opts.resolved(max_length)
    was = model.training
    model.eval()
    short = [k for k, p in enumerate(pairs) if len(p.a) <= window and len(p.b) <= window]
    results: list[PairScan | None] = [None] * len(pairs)
    bar = None
    if opts.progress:
        from tqdm import tqdm

        bar = tqdm(total=len(pairs), desc="interact", unit="pair")
    try:
        for k, r in zip(short, _short_pairs(model, head, scheme, [pairs[k] for k in short], opts, device)):
            results[k] = r
        if bar is not None:
            bar.update(len(short))
        for k, p in enumerate(pairs):
            if results[k] is None:
                results[k] = scan_pair(
                    model, head, scheme, p.a, p.b, max_length, opts, device, f"{p.name} (line {p.line})"
                )
                if bar is not None:
                    bar.update(1)
    finally:
        model.train(was)
        if bar is not None:
            bar.close()
    return results
