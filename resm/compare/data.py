"""The data of ``resm compare``, read and checked once before any backend runs, so every
backend sees the same records: the structure sets (:func:`load_structure_splits`) and the
examples of the sequence-level tasks (:func:`load_rri`, :func:`load_mrl`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ConfigError
from ..structure.io import Structure
from .config import DataSection, MRLSection, RRISection

__all__ = ["Split", "load_split", "load_structure_splits", "TaskData", "load_rri", "load_mrl"]


@dataclass
class Split:
    """The records of one set after filtering and subsetting, with what was left out."""

    path: str
    records: list[Structure]
    n_read: int
    n_long: int
    n_bad: int
    archiveii: bool

    def family(self, rec: Structure) -> str | None:
        """ArchiveII family (name prefix before ``_``), or None."""
        if not self.archiveii or "_" not in rec.name:
            return None
        return rec.name.split("_", 1)[0]


def load_split(path: str, cap: int | None, max_length: int, seed: int, what: str = "data") -> Split:
    """Records of ``path`` with a usable sequence (A C G U/T and IUPAC codes) and length <=
    ``max_length``; then a seeded random subset of ``cap`` (file order kept)."""
    from ..nucleotides import MappingError, rna_codes
    from ..structure.io import read_archiveii_csv, read_structures

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what}: {p} not found")
    archiveii = p.name.lower().endswith(".csv")
    recs = list(read_archiveii_csv(p) if archiveii else read_structures(p))
    keep, n_long, n_bad = [], 0, 0
    for r in recs:
        if not r.seq:
            n_bad += 1
            continue
        try:
            rna_codes(r.seq, r.name)
        except MappingError:
            n_bad += 1
            continue
        if len(r) > max_length:
            n_long += 1
            continue
        keep.append(r)
    if not keep:
        raise ConfigError(
            f"{what}: no usable structures in {p} ({n_long} longer than max_length {max_length}, "
            f"{n_bad} without a valid sequence)"
        )
    if cap is not None and cap < len(keep):
        idx = sorted(np.random.default_rng(seed).choice(len(keep), cap, replace=False).tolist())
        keep = [keep[i] for i in idx]
    return Split(str(p), keep, len(recs), n_long, n_bad, archiveii)


def load_structure_splits(d: DataSection) -> dict[str, Split]:
    """The train / val / test structure sets of ``data``."""
    return {
        "train": load_split(d.train, d.max_train, d.max_length, d.seed, "data.train"),
        "val": load_split(d.val, d.max_val, d.max_length, d.seed, "data.val"),
        "test": load_split(d.test, d.max_test, d.max_length, d.seed, "data.test"),
    }


@dataclass
class TaskData:
    """The examples of a sequence-level task, drawn once: the same for every backend.

    ``train`` / ``val`` / ``test`` hold :class:`resm.data.rri.Pair` or
    :class:`resm.data.mrl.UTR` records; ``about`` describes each set for the tables; ``mean``
    and ``std`` standardise the MRL target (training set; 0 / 1 for RRI).
    """

    train: list[Any]
    val: list[Any]
    test: list[Any]
    about: dict[str, str]
    mean: float = 0.0
    std: float = 1.0

    def sequences(self, part: str) -> list[str]:
        """The sequences of one set (both partners of every pair), in order."""
        items = getattr(self, part)
        if items and hasattr(items[0], "b"):
            return [s for p in items for s in (p.a, p.b)]
        return [u.seq for u in items]


def _of(kept: int, total: int) -> str:
    return f"{kept}" if kept == total else f"{kept} (seeded subset) of {total}"


def _table_file(path: str, key: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{key}: {p} not found")
    return p


def load_rri(sec: RRISection) -> TaskData:
    """Train / val / test pairs of the ``rri`` section (see :class:`RRISection`)."""
    from ..data.rri import read_pairs, split_pairs
    from ..tasks.base import subset

    n = sec.head_config(1).max_length
    pairs = read_pairs(_table_file(sec.train, "rri.train"), max_length=n)
    if sec.val:
        tr, va = pairs, read_pairs(_table_file(sec.val, "rri.val"), max_length=n)
        src_tr, src_va = f"`{sec.train}`", f"`{sec.val}`"
    else:
        tr, va = split_pairs(pairs, sec.val_fraction, sec.seed)
        src_tr = (
            f"the training part of `{sec.train}` (`split_pairs`, val_fraction {sec.val_fraction:g}, seed {sec.seed})"
        )
        src_va = "its validation part"
    te = read_pairs(_table_file(sec.test, "rri.test"), max_length=n)
    sub = [subset(x, cap, sec.seed) for x, cap in ((tr, sec.max_train), (va, sec.max_val), (te, sec.max_test))]
    if len({p.label for p in sub[0]}) < 2:
        raise ConfigError("rri.train: the training pairs need both labels, 0 and 1")
    if len({p.label for p in sub[2]}) < 2:
        raise ConfigError("rri.test: AUROC and AUPRC need both labels, 0 and 1, among the test pairs")
    seen = {(p.a, p.b) for p in sub[0]}
    overlap = sum((p.a, p.b) in seen for p in sub[2])
    about = {
        "train": f"{_of(len(sub[0]), len(tr))} pairs: {src_tr}",
        "val": f"{_of(len(sub[1]), len(va))} pairs: {src_va}",
        "test": f"{_of(len(sub[2]), len(te))} pairs from `{sec.test}` "
        f"({overlap} of them also among the training pairs)",
    }
    return TaskData(*sub, about=about)


def load_mrl(sec: MRLSection) -> TaskData:
    """Train / val / test UTRs of the ``mrl`` section (see :class:`MRLSection`)."""
    from ..data.mrl import read_mrl, split_utrs
    from ..tasks.base import subset

    utrs = read_mrl(_table_file(sec.train, "mrl.train"), target_column=sec.target)
    tr, va, te = split_utrs(utrs, tuple(sec.fractions), sec.seed)
    split = f"`split_utrs` of `{sec.train}` (fractions {'/'.join(f'{f:g}' for f in sec.fractions)}, seed {sec.seed})"
    src_te = "its test part"
    if sec.test:
        te = read_mrl(_table_file(sec.test, "mrl.test"))
        src_te = f"`{sec.test}`"
    limit = sec.head_config(1).max_length
    for u in (*tr, *va, *te):
        if len(u.seq) > limit:
            raise ConfigError(
                f"mrl: UTR {u.name!r} (line {u.line}) has {len(u.seq)} nt, longer than mrl.head.max_length {limit}"
            )
    sub = [subset(x, cap, sec.seed) for x, cap in ((tr, sec.max_train), (va, sec.max_val), (te, sec.max_test))]
    if len(sub[0]) < 2:
        raise ConfigError(f"mrl.train: {len(sub[0])} training UTRs; the head needs at least 2")
    if len(sub[2]) < 2:
        raise ConfigError("mrl: fewer than 2 test UTRs (mrl.fractions gives the test share none; or give mrl.test)")
    y = np.array([u.mrl for u in sub[0]])
    about = {
        "train": f"{_of(len(sub[0]), len(tr))} UTRs: the training part of {split}",
        "val": f"{_of(len(sub[1]), len(va))} UTRs: its validation part",
        "test": f"{_of(len(sub[2]), len(te))} UTRs: {src_te}",
    }
    return TaskData(*sub, about=about, mean=float(y.mean()), std=float(y.std() or 1.0))
