"""The classical folders: ViennaRNA (RNAfold), the reference for secondary structure, and
the pair-probability priors a structure head can read.

Every function first normalises its sequence: upper case, ``T`` -> ``U``, and any letter
other than A C G U (IUPAC codes, modified bases, gaps) -> ``N``, which ViennaRNA never pairs.

Cost (ViennaRNA 2.7.2, default model: Turner 2004, 37 C, dangles=2; measured on one busy
CPU core, larger lengths extrapolated with the cubic law, so treat them as estimates):

* MFE (:func:`rnafold`): O(L^3) time, O(L^2) memory; about 1 s at L = 1000, so of order a
  minute or two at L = 4000.
* Partition function + pair probabilities (:func:`rnafold_bpp`): also O(L^3) / O(L^2) but
  about four times slower than MFE (about 5 s at L = 1000, several minutes at L = 4000),
  with several L x L double tables (of order 1-2 GB at L = 4000). The Boltzmann factors are rescaled from the MFE first so long
  sequences do not overflow. Long sequences read their probabilities through ViennaRNA's
  sparse pair list instead of ``fc.bpp()``, which would build (L+1)^2 Python floats.
* Local pair probabilities (:func:`rnafold_bpp_local`, RNAplfold's model): every pair
  averaged over the ``window``-nt windows that contain it, pairs at most ``span`` apart;
  O(L * window * span) time, a few seconds at L = 4000 (window 240, span 160). With
  ``window = span = L`` it is the global partition function. :func:`pair_prior` picks global
  or local by length, as a structure head's config asks.
* ``max_bp_span`` (both functions) limits pairs to ``j - i <= max_bp_span``, which bounds
  the cost to O(L * span^2) for long RNAs at the price of missing long-range pairs.
"""

from __future__ import annotations

from typing import Callable, Iterable, List, Optional, Tuple, TypeVar

import numpy as np
import RNA
from tqdm.auto import tqdm

__all__ = [
    "normalise_rna",
    "rnafold",
    "rnafold_bpp",
    "rnafold_bpp_local",
    "pair_prior",
    "head_pair_prior",
    "cached_prior",
    "fold_many",
    "rnafold_duplex_energy",
]

T = TypeVar("T")

_LUT = np.full(256, ord("N"), dtype=np.uint8)
for _c in "ACGU":
    _LUT[ord(_c)] = _LUT[ord(_c.lower())] = ord(_c)
_LUT[ord("T")] = _LUT[ord("t")] = ord("U")

# Above this length rnafold_bpp reads the sparse pair list instead of fc.bpp().
DENSE_BPP_MAX = 1500


def normalise_rna(seq: str) -> str:
    """Upper-case ACGU string; T -> U, every other letter -> N."""
    raw = np.frombuffer(seq.encode("ascii", errors="replace"), dtype=np.uint8)
    return _LUT[raw].tobytes().decode("ascii")


def _fold_compound(seq: str, max_bp_span: Optional[int]) -> "RNA.fold_compound":
    md = RNA.md()
    if max_bp_span is not None:
        md.max_bp_span = int(max_bp_span)
    return RNA.fold_compound(seq, md)


def _partners(db: str) -> np.ndarray:
    """Partner array from ViennaRNA's (nested, round-bracket) dot-bracket string."""
    p = np.full(len(db), -1, dtype=np.int64)
    stack: List[int] = []
    for k, c in enumerate(db):
        if c == "(":
            stack.append(k)
        elif c == ")":
            i = stack.pop()
            p[i], p[k] = k, i
    return p


def rnafold(seq: str, max_bp_span: Optional[int] = None) -> Tuple[np.ndarray, float]:
    """Minimum free energy structure: ``(pairs, mfe)`` with the partner array and kcal/mol."""
    s = normalise_rna(seq)
    if not s:
        return np.zeros(0, dtype=np.int64), 0.0
    fc = _fold_compound(s, max_bp_span)
    db, mfe = fc.mfe()
    return _partners(db), float(mfe)


def rnafold_bpp(
    seq: str,
    max_bp_span: Optional[int] = None,
    dense_max: int = DENSE_BPP_MAX,
    cutoff: float = 1e-6,
) -> np.ndarray:
    """Base-pair probability matrix (L, L), float32, symmetric, zero diagonal.

    Row sums are the probabilities that each base is paired (<= 1). For ``L > dense_max``
    probabilities below ``cutoff`` are dropped (sparse read-out); shorter sequences use the
    full ``fc.bpp()`` matrix (1-based, upper triangle) and keep every value.
    """
    s = normalise_rna(seq)
    L = len(s)
    out = np.zeros((L, L), dtype=np.float32)
    if L == 0:
        return out
    fc = _fold_compound(s, max_bp_span)
    _, mfe = fc.mfe()
    fc.exp_params_rescale(mfe)
    fc.pf()
    if L <= dense_max:
        bpp = np.asarray(fc.bpp(), dtype=np.float64)[1:, 1:]  # drop the 1-based padding row/col
        upper = np.triu(bpp, 1).astype(np.float32)
        out = upper + upper.T
    else:
        plist = fc.plist_from_probs(cutoff)
        ij = [(e.i - 1, e.j - 1, e.p) for e in plist if e.type == 0]  # type 0: base pair
        if ij:
            arr = np.asarray(ij, dtype=np.float64)
            i, j = arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64)
            out[i, j] = arr[:, 2]
            out[j, i] = arr[:, 2]
    return out


def rnafold_bpp_local(seq: str, window: int = 240, span: int = 160, cutoff: float = 1e-6) -> np.ndarray:
    """Local base-pair probabilities (L, L), float32, symmetric (ViennaRNA's sliding-window
    partition function, as RNAplfold ``-W window -L span``): pair (i, j) with
    ``j - i <= span``, averaged over the windows of ``window`` nt that contain both bases.
    A sequence shorter than the window is folded as one window (global probabilities, with
    pairs limited to ``span``). Probabilities below ``cutoff`` are left out (zero)."""
    s = normalise_rna(seq)
    L = len(s)
    out = np.zeros((L, L), dtype=np.float32)
    if L < 2:
        return out
    w = min(int(window), L)
    plist = RNA.pfl_fold(s, w, min(int(span), w), float(cutoff))
    if plist:
        arr = np.asarray([(e.i - 1, e.j - 1, e.p) for e in plist], dtype=np.float64)
        i, j = arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64)
        out[i, j] = arr[:, 2]
        out[j, i] = arr[:, 2]
    return out


def _local(n: int, local_above: Optional[int]) -> bool:
    """Whether a sequence of ``n`` nt gets the local prior under ``local_above``."""
    return local_above is not None and n > local_above


def pair_prior(seq: str, local_above: Optional[int] = None, window: int = 240, span: int = 160) -> np.ndarray:
    """The base-pair-probability channel of a structure head: :func:`rnafold_bpp` (global) up
    to ``local_above`` nt, :func:`rnafold_bpp_local` above it (never local when None)."""
    if _local(len(seq), local_above):
        return rnafold_bpp_local(seq, window, span)
    return rnafold_bpp(seq)


def head_pair_prior(seq: str, cfg) -> np.ndarray:
    """:func:`pair_prior` with the settings of a :class:`resm.heads.structure.StructureHeadConfig`."""
    return pair_prior(seq, cfg.bpp_local_above, cfg.bpp_window, cfg.bpp_span)


def cached_prior(folder, seq: str, cfg) -> np.ndarray:
    """:func:`head_pair_prior` as fp16, stored in ``folder`` (one ``.npy`` per sequence and
    prior setting, named by their SHA-1) and read back when already there. Writes are atomic,
    so concurrent runs sharing the folder at worst compute a matrix twice."""
    import contextlib
    import hashlib
    from pathlib import Path

    from ..utils.io import atomic_path

    setting = f"local:{cfg.bpp_window}:{cfg.bpp_span}" if _local(len(seq), cfg.bpp_local_above) else "global"
    path = Path(folder) / f"{hashlib.sha1(f'{normalise_rna(seq)}|{setting}'.encode()).hexdigest()}.npy"
    if path.exists():
        with contextlib.suppress(OSError, ValueError):  # unreadable: computed again below
            return np.load(path, allow_pickle=False)
    out = head_pair_prior(seq, cfg).astype(np.float16)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, out)
    return out


def fold_many(
    seqs: Iterable[str],
    fn: Callable[[str], T] = rnafold,
    progress: bool = True,
    desc: str = "RNAfold",
) -> List[T]:
    """``[fn(s) for s in seqs]`` with a tqdm progress bar (serial; ViennaRNA is single-threaded)."""
    seqs = list(seqs)
    return [fn(s) for s in tqdm(seqs, desc=desc, disable=not progress)]


def rnafold_duplex_energy(a: str, b: str) -> float:
    """Free energy (kcal/mol) of the best intermolecular duplex of ``a`` and ``b``
    (``RNA.duplexfold``: no intramolecular pairs); 0.0 when either is empty."""
    sa, sb = normalise_rna(a), normalise_rna(b)
    if not sa or not sb:
        return 0.0
    return float(RNA.duplexfold(sa, sb).energy)
