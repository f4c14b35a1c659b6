"""The classical folders: RNAfold, LinearPartition and LinearFold, run on the same records as
resm's own model (``resm evaluate``, ``resm compare``, ``resm fold --reference``).

:data:`FOLDERS` names each one with what it computes, the package it comes from and that
package's licence:

====================  ============================================================  ===========================
name                  structure                                                     package (licence)
====================  ============================================================  ===========================
``rnafold``           minimum free energy, Turner 2004 (``RNAfold``)                viennarna (ViennaRNA licence)
``rnafold-mea``       maximum expected accuracy (gamma 1) from the partition        viennarna
                      function (``RNAfold -p --MEA``)
``eternafold``        maximum expected accuracy from LinearPartition with the       linearpartition-unofficial
                      EternaFold parameters (beam 100)                              (binding MIT; LinearPartition
                                                                                    non-commercial)
``linearpartition-v`` the same with ViennaRNA's parameters                          linearpartition-unofficial
``linearfold-v``      LinearFold's minimum free energy, ViennaRNA parameters        linearfold-unofficial
                      (beam 100)                                                    (binding MIT; LinearFold
                                                                                    non-commercial)
====================  ============================================================  ===========================

A folder whose package is missing raises :class:`FolderUnavailable`, a one-line error naming
the package to install. Every function first normalises its sequence
(:func:`resm.nucleotides.normalise_lenient`): upper case, ``T`` -> ``U`` and any letter other
than A C G U (IUPAC codes, modified bases, gaps) -> ``N``, which no folder pairs. Cost:
ViennaRNA is O(L^3) (about 1 s at 1,000 nt and 25 s at 4,000 nt for the MFE on one core of the
development machine; the partition function two to four times more);
LinearPartition and LinearFold are O(L) with their beam (``experiments/bench_fold_speed.py``
measures them side by side). Pair probabilities, the inputs of the structure heads, live in
:mod:`resm.structure.priors`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import RNA
from tqdm.auto import tqdm

from ..nucleotides import normalise_lenient

__all__ = [
    "FOLDERS",
    "Folder",
    "FolderUnavailable",
    "FolderFailed",
    "on_record",
    "record_error",
    "record_failure",
    "fold_with",
    "rnafold",
    "rnafold_mea",
    "linearpartition_mea",
    "linearfold_mfe",
    "fold_many",
    "rnafold_duplex_energy",
]


class FolderUnavailable(ImportError):
    """An optional folding package is not installed (a one-line user error naming it)."""

    def __init__(self, message: str):
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


class FolderFailed(ValueError):
    """A classical folder failed on one record (a one-line user error naming the record)."""


def record_failure(folder: str, name: str, seq: str, e: BaseException) -> FolderFailed:
    """The one-line :class:`FolderFailed` of ``folder`` failing with ``e`` on the record ``name``."""
    why = f"{type(e).__name__}: {' '.join(str(e).split())}".rstrip(": ")
    return FolderFailed(f"record {name!r} ({len(seq)} nt): {folder} cannot fold it ({why})")


def record_error(folder: str, name: str, seq: str, e: BaseException) -> BaseException:
    """The error to raise when ``folder`` failed with ``e`` on the record ``name``: a missing
    package (:class:`FolderUnavailable`) and an error of a file (OSError, a prior cache's) as
    they are, anything else (a binding's MemoryError or RuntimeError on a record it cannot take)
    as :func:`record_failure`."""
    return e if isinstance(e, (FolderUnavailable, OSError)) else record_failure(folder, name, seq, e)


@contextlib.contextmanager
def on_record(folder: str, name: str, seq: str) -> Iterator[None]:
    """Inside the block, an error a folding library raises on the record ``name`` is the one
    :func:`record_error` gives: one line naming the folder and the record."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 -- whatever the library raised, the record is named
        err = record_error(folder, name, seq, e)
        if err is e:
            raise
        raise err from None


T = TypeVar("T")


def fold_compound(seq: str, max_bp_span: int | None) -> RNA.fold_compound:
    """ViennaRNA's fold compound of a normalised sequence (default model details, with
    ``max_bp_span`` when given)."""
    md = RNA.md()
    if max_bp_span is not None:
        md.max_bp_span = int(max_bp_span)
    return RNA.fold_compound(seq, md)


def _partners(db: str) -> np.ndarray:
    """Partner array from ViennaRNA's (nested, round-bracket) dot-bracket string."""
    p = np.full(len(db), -1, dtype=np.int64)
    stack: list[int] = []
    for k, c in enumerate(db):
        if c == "(":
            stack.append(k)
        elif c == ")":
            i = stack.pop()
            p[i], p[k] = k, i
    return p


def rnafold(seq: str, max_bp_span: int | None = None) -> tuple[np.ndarray, float]:
    """Minimum free energy structure: ``(pairs, mfe)`` with the partner array and kcal/mol."""
    s = normalise_lenient(seq)
    if not s:
        return np.zeros(0, dtype=np.int64), 0.0
    fc = fold_compound(s, max_bp_span)
    db, mfe = fc.mfe()
    return _partners(db), float(mfe)


def rnafold_mea(seq: str, gamma: float = 1.0) -> np.ndarray:
    """Maximum expected accuracy structure from ViennaRNA's partition function (``RNAfold -p
    --MEA gamma``): the partner array."""
    s = normalise_lenient(seq)
    if not s:
        return np.zeros(0, dtype=np.int64)
    fc = RNA.fold_compound(s)
    _, mfe = fc.mfe()
    fc.exp_params_rescale(mfe)
    fc.pf()
    db, _ = fc.MEA(float(gamma))
    return _partners(db)


def optional_package(module: str, package: str):
    """The module ``module`` of the optional ``package``; :class:`FolderUnavailable` naming the
    package when it is not installed."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise FolderUnavailable(
            f"this needs the package {package}, which is not installed: pip install {package}"
        ) from None


def linearpartition_mea(seq: str, mode: str = "eterna", beam: int = 100) -> np.ndarray:
    """LinearPartition's maximum expected accuracy structure with the EternaFold (``eterna``) or
    ViennaRNA (``vienna``) parameters: the partner array."""
    lp = optional_package("linearpartition", "linearpartition-unofficial")
    s = normalise_lenient(seq)
    if not s:  # the binding crashes on an empty sequence
        return np.zeros(0, dtype=np.int64)
    return _partners(lp.partition(s, mode=mode, beamsize=int(beam))["structure"])


def linearfold_mfe(seq: str) -> np.ndarray:
    """LinearFold's minimum free energy structure (ViennaRNA parameters, beam 100)."""
    lf = optional_package("linearfold", "linearfold-unofficial")
    s = normalise_lenient(seq)
    if not s:  # the binding crashes on an empty sequence
        return np.zeros(0, dtype=np.int64)
    return _partners(lf.fold(s)[0])


@dataclass(frozen=True)
class Folder:
    """A classical folder: its name, the function ``seq -> partner array``, the package that
    provides it, the licence, and one line on what it computes."""

    name: str
    fold: Callable[[str], np.ndarray]
    package: str
    licence: str
    about: str
    label: str = ""  # how resm fold --compare labels its structure (one word)

    def check(self) -> None:
        """Raise :class:`FolderUnavailable` (one line naming the package) when it cannot run."""
        self.fold("GGGAAACCC")

    def available(self) -> bool:
        try:
            self.check()
        except FolderUnavailable:
            return False
        return True


FOLDERS: dict[str, Folder] = {
    f.name: f
    for f in (
        Folder(
            "rnafold",
            lambda s: rnafold(s)[0],
            "viennarna",
            "ViennaRNA licence (free, with credit)",
            "RNAfold minimum free energy (Turner 2004)",
            "RNAfold",
        ),
        Folder(
            "rnafold-mea",
            rnafold_mea,
            "viennarna",
            "ViennaRNA licence (free, with credit)",
            "RNAfold maximum expected accuracy (partition function, gamma 1)",
            "RNAfold-MEA",
        ),
        Folder(
            "eternafold",
            lambda s: linearpartition_mea(s, "eterna"),
            "linearpartition-unofficial",
            "binding MIT; LinearPartition free for non-commercial use; EternaFold parameters BSD",
            "LinearPartition maximum expected accuracy, EternaFold parameters (beam 100)",
            "EternaFold",
        ),
        Folder(
            "linearpartition-v",
            lambda s: linearpartition_mea(s, "vienna"),
            "linearpartition-unofficial",
            "binding MIT; LinearPartition free for non-commercial use",
            "LinearPartition maximum expected accuracy, ViennaRNA parameters (beam 100)",
            "LinearPartition-V",
        ),
        Folder(
            "linearfold-v",
            linearfold_mfe,
            "linearfold-unofficial",
            "binding MIT; LinearFold free for non-commercial use",
            "LinearFold minimum free energy, ViennaRNA parameters (beam 100)",
            "LinearFold-V",
        ),
    )
}


def fold_with(name: str, seq: str) -> np.ndarray:
    """The structure of ``seq`` (partner array) by the classical folder ``name``."""
    if name not in FOLDERS:
        raise ValueError(f"unknown folder {name!r}; known: {', '.join(FOLDERS)}")
    return FOLDERS[name].fold(seq)


def fold_many(
    seqs: Iterable[str],
    fn: Callable[[str], T] = rnafold,
    progress: bool = True,
    desc: str = "RNAfold",
) -> list[T]:
    """``[fn(s) for s in seqs]`` with a tqdm progress bar (serial; ViennaRNA is single-threaded)."""
    seqs = list(seqs)
    return [fn(s) for s in tqdm(seqs, desc=desc, disable=not progress)]


def rnafold_duplex_energy(a: str, b: str) -> float:
    """Free energy (kcal/mol) of the best intermolecular duplex of ``a`` and ``b``
    (``RNA.duplexfold``: no intramolecular pairs); 0.0 when either is empty."""
    sa, sb = normalise_lenient(a), normalise_lenient(b)
    if not sa or not sb:
        return 0.0
    return float(RNA.duplexfold(sa, sb).energy)
