"""Pair priors: base-pair probabilities of classical folding models, read by the structure heads.

A prior gives, for each pair of bases, the probability that they pair in the Boltzmann ensemble
of a folding model. Every kind is returned as :class:`SparsePairs` (the pairs ``i < j`` whose
probability is at least ``cutoff``):

================  ===========================================================  ===============
kind              model and algorithm                                          cost
================  ===========================================================  ===============
``eternafold``    LinearPartition (beam search) with the EternaFold parameters  O(L b^2)
``vienna-lp``     LinearPartition with ViennaRNA's Turner 2004 parameters       O(L b^2)
``vienna``        ViennaRNA's exact partition function (``RNAfold -p``)         O(L^3)
``vienna-local``  ViennaRNA's local partition function (``RNAplfold``)          O(L W span)
================  ===========================================================  ===============

No kind caps the span of a pair except ``vienna-local`` (at most ``span`` nucleotides apart).
LinearPartition comes from the package ``linearpartition-unofficial``: its binding is MIT, the
LinearPartition code compiled into it is free for non-commercial use (see the README).
Sequences are normalised first (:func:`resm.nucleotides.normalise_lenient`: upper case, T -> U,
any other letter -> N, which never pairs).

The dense functions (:func:`rnafold_bpp`, :func:`rnafold_bpp_local`, :func:`dense_prior`,
:func:`head_pair_prior`, :func:`cached_dense_prior`) give the (L, L) matrices that the 2-D
convolutional head (:mod:`resm.heads.pair_map`) reads; the sparse ones (:func:`pair_prior`,
:func:`cached_prior`) feed the sparse pair head (:mod:`resm.heads.pairs`).

Cost of the ViennaRNA functions (2.7, default model: Turner 2004, 37 C, dangles=2): the
partition function is O(L^3) time and O(L^2) memory, about four times slower than the MFE
(about 5 s at L = 1000, minutes at L = 4000), rescaled from the MFE first so long sequences do
not overflow; long sequences read their probabilities through ViennaRNA's sparse pair list.
The local probabilities average every pair over the ``window``-nt windows that contain it,
pairs at most ``span`` apart: O(L * window * span), seconds at L = 4000.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import RNA

from ..nucleotides import normalise_lenient
from ..utils.paths import file_problem, numpy_problem
from .folders import fold_compound, on_record, optional_package, record_error, record_failure

__all__ = [
    "PRIOR_KINDS",
    "PriorConfig",
    "SparsePairs",
    "pair_prior",
    "cached_prior",
    "rnafold_bpp",
    "rnafold_bpp_local",
    "dense_prior",
    "head_pair_prior",
    "cached_dense_prior",
    "compute_priors",
]

PRIOR_KINDS = ("eternafold", "vienna-lp", "vienna", "vienna-local")

# Above this length rnafold_bpp reads the sparse pair list instead of fc.bpp().
DENSE_BPP_MAX = 1500


def rnafold_bpp(
    seq: str,
    max_bp_span: int | None = None,
    dense_max: int = DENSE_BPP_MAX,
    cutoff: float = 1e-6,
) -> np.ndarray:
    """Base-pair probability matrix (L, L), float32, symmetric, zero diagonal.

    Row sums are the probabilities that each base is paired (<= 1). For ``L > dense_max``
    probabilities below ``cutoff`` are dropped (sparse read-out); shorter sequences use the
    full ``fc.bpp()`` matrix (1-based, upper triangle) and keep every value.
    """
    s = normalise_lenient(seq)
    L = len(s)
    out = np.zeros((L, L), dtype=np.float32)
    if L == 0:
        return out
    fc = fold_compound(s, max_bp_span)
    _, mfe = fc.mfe()
    fc.exp_params_rescale(mfe)
    fc.pf()
    if dense_max >= L:
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
    s = normalise_lenient(seq)
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


def _local(n: int, local_above: int | None) -> bool:
    """Whether a sequence of ``n`` nt gets the local prior under ``local_above``."""
    return local_above is not None and n > local_above


def dense_prior(seq: str, local_above: int | None = None, window: int = 240, span: int = 160) -> np.ndarray:
    """The base-pair-probability channel of a structure head: :func:`rnafold_bpp` (global) up
    to ``local_above`` nt, :func:`rnafold_bpp_local` above it (never local when None)."""
    if _local(len(seq), local_above):
        return rnafold_bpp_local(seq, window, span)
    return rnafold_bpp(seq)


def head_pair_prior(seq: str, cfg) -> np.ndarray:
    """:func:`dense_prior` with the settings of a :class:`resm.heads.pair_map.StructureHeadConfig`."""
    return dense_prior(seq, cfg.bpp_local_above, cfg.bpp_window, cfg.bpp_span)


def check_cache_folder(folder, name: str) -> None:
    """Refuse, in one line naming ``name`` (the option or the config key), a prior cache folder
    that cannot hold entries: not a path, a file, under a file, a link that loops, or not
    writable. Checked before any work, so a bad folder is never blamed on the record whose
    prior was to be stored first. Nothing is left behind (:func:`resm.utils.io.check_output`)."""
    from ..utils.io import check_output
    from ..utils.paths import OutputError

    try:
        path = Path(folder)
    except TypeError:  # the API's bpp_cache=3
        raise OutputError(f"{name}: expected a folder's path, got {folder!r}") from None
    if path.exists() and not path.is_dir():
        raise OutputError(f"{folder}: {name} must be a folder, not a file")
    try:
        check_output(path, "dir", replaces=False)
    except OutputError as e:
        raise OutputError(f"{name} {e}") from None


def _cache_miss(path: Path, why: str, stored: bool = True) -> None:
    """One warning for a cache entry that cannot be used: it is computed again and replaced
    (``stored`` False: left in place, not a file resm may replace)."""
    from tqdm.auto import tqdm

    then = "computed again" if stored else "computed again, not stored"
    tqdm.write(f"resm: warning: {path}: prior cache entry not used ({why}); {then}", file=sys.stderr)


def _checked_probs(p: np.ndarray) -> None:
    if not np.all(np.isfinite(p)):
        raise ValueError("a probability is not finite")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(f"a probability lies outside [0, 1] ({float(p.min()):g} to {float(p.max()):g})")


def _cached(path: Path, read, compute, write):
    """The one rule of the prior caches: ``read(path)`` when the entry is there and passes its
    checks; otherwise ``compute()``, stored atomically with ``write(file, value)``. An entry
    that fails (unreadable, damaged, of another sequence) is never used: one warning names it,
    and it is replaced. One that is not a regular file (a folder, a named pipe, a device, a link
    that loops) is neither opened, which for a pipe would block for ever, nor replaced, which
    would write into the pipe: the prior is computed, with one warning, and not stored."""
    if os.path.lexists(path):
        problem = file_problem(path, missing=True)
        if problem is not None:
            _cache_miss(path, problem, stored=False)
            return compute()
        try:
            return read(path)
        except Exception as e:  # noqa: BLE001 -- whatever is wrong with it, a cache entry is only a cache
            _cache_miss(path, _why(path, e))
    out = compute()
    _store(path, lambda fh: write(fh, out))
    return out


def _seq_digest(s: str) -> np.ndarray:
    return np.array(hashlib.sha256(s.encode()).hexdigest())


def _check_digest(d, s: str) -> None:
    if "seq_sha256" in d.files and str(d["seq_sha256"]) != str(_seq_digest(s)):
        raise ValueError("stored for another sequence")


def _read_dense(path: Path, s: str) -> np.ndarray:
    with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as d:
        if "seq_sha256" not in d.files:
            raise ValueError("no sequence digest")
        _check_digest(d, s)
        m = d["bpp"]
    if m.shape != (len(s), len(s)):
        raise ValueError(f"a {'x'.join(map(str, m.shape))} matrix for a {len(s)}-nt sequence")
    _checked_probs(m)
    return m


def cached_dense_prior(folder, seq: str, cfg) -> np.ndarray:
    """:func:`head_pair_prior` as fp16, stored in ``folder`` (one ``.npz`` per sequence and
    prior setting, named by their SHA-1, holding the matrix ``bpp`` and the sequence's SHA-256)
    and read back when already there (:func:`_cached`). Writes are atomic, so concurrent runs
    sharing the folder at worst compute a matrix twice. An entry that cannot be read, is of
    another sequence, or is not an (L, L) matrix of probabilities, is computed again with one
    warning. (Entries of earlier versions, ``.npy`` files without a digest, are not read.)"""
    s = normalise_lenient(seq)
    setting = f"local:{cfg.bpp_window}:{cfg.bpp_span}" if _local(len(seq), cfg.bpp_local_above) else "global"
    path = Path(folder) / f"{hashlib.sha1(f'{s}|{setting}|dense'.encode()).hexdigest()}.npz"
    return _cached(
        path,
        lambda p: _read_dense(p, s),
        lambda: head_pair_prior(seq, cfg).astype(np.float16),
        lambda fh, out: np.savez(fh, bpp=out, seq_sha256=_seq_digest(s)),
    )


def _store(path: Path, write) -> None:
    """Write a cache file atomically and at once: a cache entry is not an output of the command
    that computes it, so it does not wait for (or vanish with) the command's transaction, and a
    worker process, which inherits the parent's transaction but never commits it, still puts
    its entries in place."""
    from ..utils.io import atomic_path, suspended

    with suspended(), atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)


# ----------------------------------------------------------------------------- sparse priors
@dataclass(frozen=True)
class PriorConfig:
    """Which pair prior a structure head reads.

    Attributes:
        kind: one of :data:`PRIOR_KINDS`.
        beam: LinearPartition's beam size (``eternafold``, ``vienna-lp``); 0 is exhaustive.
        cutoff: pairs below this probability are left out.
        window / span: ``vienna-local``'s window size and largest pair span.
    """

    kind: str = "eternafold"
    beam: int = 100
    cutoff: float = 1e-4
    window: int = 240
    span: int = 160

    def __post_init__(self) -> None:
        if self.kind not in PRIOR_KINDS:
            raise ValueError(f"kind must be one of {list(PRIOR_KINDS)}, not {self.kind!r}")
        if self.beam < 0:
            raise ValueError(f"beam must be >= 0, got {self.beam}")
        if not 0.0 <= self.cutoff < 1.0:
            raise ValueError(f"cutoff must be in [0, 1), got {self.cutoff}")
        if not 1 <= self.span <= self.window:
            raise ValueError(f"need 1 <= span <= window, got {self.span}, {self.window}")

    def key(self) -> str:
        """A short string naming the setting (cache file names)."""
        if self.kind == "vienna-local":
            return f"{self.kind}:{self.window}:{self.span}:{self.cutoff:g}"
        if self.kind == "vienna":
            return f"{self.kind}:{self.cutoff:g}"
        return f"{self.kind}:{self.beam}:{self.cutoff:g}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SparsePairs:
    """Pair probabilities of one sequence: pairs ``(i[k], j[k])`` with ``i < j`` and
    probability ``p[k]``, 0-based; pairs not listed have probability 0 (or below a cutoff)."""

    length: int
    i: np.ndarray
    j: np.ndarray
    p: np.ndarray

    def __post_init__(self) -> None:
        self.i = np.asarray(self.i, dtype=np.int64)
        self.j = np.asarray(self.j, dtype=np.int64)
        self.p = np.asarray(self.p, dtype=np.float32)
        if not (self.i.shape == self.j.shape == self.p.shape) or self.i.ndim != 1:
            raise ValueError("i, j and p must be 1-D arrays of one length")
        if len(self.i) and (self.i.min() < 0 or self.j.max() >= self.length or np.any(self.i >= self.j)):
            raise ValueError(f"pairs must satisfy 0 <= i < j < {self.length}")

    def __len__(self) -> int:
        return len(self.i)

    @classmethod
    def empty(cls, length: int) -> SparsePairs:
        z = np.zeros(0, dtype=np.int64)
        return cls(length, z, z, np.zeros(0, dtype=np.float32))

    @classmethod
    def from_dense(cls, P: np.ndarray, cutoff: float = 0.0) -> SparsePairs:
        """The upper triangle of a square matrix, entries above ``cutoff``."""
        P = np.asarray(P)
        i, j = np.nonzero(np.triu(P, 1) > cutoff)
        return cls(P.shape[0], i, j, P[i, j])

    def dense(self) -> np.ndarray:
        """The symmetric (L, L) float32 matrix (O(L^2) memory)."""
        out = np.zeros((self.length, self.length), dtype=np.float32)
        out[self.i, self.j] = self.p
        out[self.j, self.i] = self.p
        return out

    def unpaired(self) -> np.ndarray:
        """Probability that each base is unpaired, ``1 - sum_j p_ij`` (clipped at 0)."""
        paired = np.zeros(self.length, dtype=np.float64)
        np.add.at(paired, self.i, self.p)
        np.add.at(paired, self.j, self.p)
        return np.clip(1.0 - paired, 0.0, 1.0).astype(np.float32)

    def window(self, start: int, stop: int) -> SparsePairs:
        """The pairs inside ``[start, stop)``, re-indexed from ``start``."""
        keep = (self.i >= start) & (self.j < stop)
        return SparsePairs(stop - start, self.i[keep] - start, self.j[keep] - start, self.p[keep])

    def to_arrays(self) -> dict:
        return {
            "length": np.asarray(self.length),
            "i": self.i.astype(np.int32),
            "j": self.j.astype(np.int32),
            "p": self.p.astype(np.float16),
        }

    @classmethod
    def from_arrays(cls, d) -> SparsePairs:
        return cls(int(d["length"]), d["i"], d["j"], np.asarray(d["p"], dtype=np.float32))


def _linear_partition(seq: str, mode: str, beam: int, cutoff: float) -> SparsePairs:
    if not seq:  # the binding crashes on an empty sequence
        return SparsePairs.empty(0)
    out = optional_package("linearpartition", "linearpartition-unofficial").partition(
        seq, mode=mode, beamsize=int(beam)
    )
    bp = out["bpp"]
    keep = (bp["prob"] >= cutoff) & (bp["i"] != bp["j"])
    i, j, p = bp["i"][keep], bp["j"][keep], bp["prob"][keep]
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    return SparsePairs(len(seq), lo, hi, p)


def pair_prior(seq: str, cfg: PriorConfig | None = None) -> SparsePairs:
    """The prior of ``seq`` under ``cfg`` (default: EternaFold through LinearPartition). Its
    probabilities are rounded to fp16, the precision of the prior caches, so that a prior is the
    same number whether it was just computed or read back (training, evaluation and ``resm fold``
    with or without a cache see identical inputs)."""
    cfg = cfg or PriorConfig()
    s = normalise_lenient(seq)
    if cfg.kind == "eternafold":
        sp = _linear_partition(s, "eterna", cfg.beam, cfg.cutoff)
    elif cfg.kind == "vienna-lp":
        sp = _linear_partition(s, "vienna", cfg.beam, cfg.cutoff)
    elif cfg.kind == "vienna":
        sp = SparsePairs.from_dense(rnafold_bpp(s, cutoff=cfg.cutoff), cfg.cutoff)
    else:
        sp = SparsePairs.from_dense(rnafold_bpp_local(s, cfg.window, cfg.span, cfg.cutoff), cfg.cutoff)
    return SparsePairs(sp.length, sp.i, sp.j, np.asarray(sp.p, dtype=np.float16).astype(np.float32))


def _why(path: Path, e: BaseException) -> str:
    text = " ".join(str(e).split())
    if (problem := numpy_problem(path, e)) is not None:
        return problem
    return f"{type(e).__name__}: {text}" if not isinstance(e, ValueError) or not text else text


def _read_entry(path: Path, s: str) -> SparsePairs:
    """A stored prior of the normalised sequence ``s``, checked: the sequence's hash (entries
    written before it was stored have none), the length, the pairs' positions, and finite
    probabilities in [0, 1]; ValueError (or the reader's error) otherwise."""
    # the file is opened here, so a damaged archive that np.load gives up on is still closed
    with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as d:
        _check_digest(d, s)
        if int(d["length"]) != len(s):
            raise ValueError(f"stored for a length of {int(d['length'])}, the sequence has {len(s)} nt")
        sp = SparsePairs.from_arrays(d)
    _checked_probs(sp.p)
    return sp


def cached_prior(folder, seq: str, cfg: PriorConfig) -> SparsePairs:
    """:func:`pair_prior`, stored in ``folder`` (one ``.npz`` per sequence and setting, named by
    the SHA-1 of both, written atomically, holding the sequence's SHA-256 too) and read back
    when already there. An entry that cannot be read, or that fails a check (another sequence,
    another length, pairs out of range, a probability that is not finite or not in [0, 1]), is
    never used: it is computed again and replaced, with one warning naming it (:func:`_cached`)."""
    s = normalise_lenient(seq)
    name = hashlib.sha1(f"{s}|{cfg.key()}".encode()).hexdigest()
    return _cached(
        Path(folder) / f"{name}.npz",
        lambda p: _read_entry(p, s),
        lambda: pair_prior(seq, cfg),
        lambda fh, out: np.savez(fh, **out.to_arrays(), seq_sha256=_seq_digest(s)),
    )


def _prior_job(args) -> list:
    seq, cfgs, cache = args
    return [cached_prior(cache, seq, c) if cache else pair_prior(seq, c) for c in cfgs]


def _worker(conn, inherited, jobs) -> None:
    """A prior worker: receives job indices on its own pipe and sends back ``(k, result,
    error)``; None ends it, and so does the parent's end of the pipe closing (the parent died).
    SIGTERM kills it at once (the parent's handler is the parent's: it cleans up the outputs and
    stops the workers); Ctrl-C is left to the parent."""
    import signal

    for c in inherited:  # the parent's ends of this and earlier workers' pipes, copied by fork
        c.close()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            k = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if k is None:
            return
        try:
            msg = (k, _prior_job(jobs[k]), None)
        except Exception as e:  # noqa: BLE001 -- handed to the parent, which raises it
            msg = (k, None, e)
        try:
            conn.send(msg)
        except (EOFError, OSError):  # the parent is gone
            return
        except Exception:  # noqa: BLE001 -- an exception that cannot be pickled (nothing was sent)
            e = msg[2]
            conn.send((k, None, RuntimeError(f"{type(e).__name__}: {e}")))


def compute_priors(
    seqs, cfgs, cache=None, workers: int = 1, progress: bool = True, desc: str = "pair priors", names=None
) -> list:
    """``[[pair_prior(s, c) for c in cfgs] for s in seqs]``, in ``workers`` processes (the
    folding libraries hold one core each), read from / stored in the folder ``cache`` when
    given, with a progress bar. A sequence the folding library fails on (or dies on, a worker
    gone) is a one-line :class:`resm.structure.folders.FolderFailed` naming its record
    (``names``, else its number).

    Each worker has its own pipe and takes the next sequence (longest first, so the workers end
    together) when it hands back a result; there is no shared queue, lock or helper thread, so
    an error or a signal in the parent, wherever it lands, ends the run at once: the workers
    are killed and reaped before the exception goes on."""
    from tqdm.auto import tqdm

    seqs, cfgs = list(seqs), list(cfgs)
    names = list(names) if names is not None else [f"sequence {k + 1}" for k in range(len(seqs))]
    folder = "the pair prior (" + ", ".join(c.kind for c in cfgs) + ")"
    jobs = [(s, cfgs, cache) for s in seqs]
    bar = tqdm(total=len(jobs), desc=desc, unit="seq", disable=not progress, leave=False)
    workers = min(int(workers), len(jobs))
    if workers <= 1:
        try:
            out = []
            for k, j in enumerate(jobs):
                with on_record(folder, names[k], seqs[k]):
                    out.append(_prior_job(j))
                bar.update()
            return out
        finally:
            bar.close()
    import multiprocessing as mp
    from multiprocessing.connection import wait

    from ..utils.io import held_signals

    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else methods[0])
    todo = iter(sorted(range(len(jobs)), key=lambda k: -len(seqs[k])))
    out: list = [None] * len(jobs)
    procs, busy, current = [], {}, {}  # current: the job each worker's pipe was handed
    try:
        for _ in range(workers):
            with held_signals():  # a signal between the fork and the bookkeeping would orphan it
                mine, theirs = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(theirs, [mine, *busy], jobs), daemon=True)
                proc.start()
                procs.append(proc)
                busy[mine] = proc
                theirs.close()
            current[mine] = next(todo)
            mine.send(current[mine])
        while busy:
            for conn in wait(list(busy)):
                try:
                    k, result, error = conn.recv()
                except EOFError:
                    proc, k = busy[conn], current[conn]
                    proc.join(1.0)
                    stopped = RuntimeError(f"its worker process stopped, exit code {proc.exitcode}")
                    raise record_failure(folder, names[k], seqs[k], stopped) from None
                if error is not None:
                    raise record_error(folder, names[k], seqs[k], error)
                out[k] = result
                bar.update()
                nxt = current[conn] = next(todo, None)
                conn.send(nxt)
                if nxt is None:
                    del busy[conn]
                    conn.close()
        return out
    finally:
        bar.close()
        for proc in procs:
            if proc.is_alive() and busy:  # stopped early: kill, do not wait for the current job
                proc.kill()
        for proc in procs:
            proc.join()
        for conn in busy:
            conn.close()
