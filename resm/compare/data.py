"""What the data of ``resm compare``'s tasks is held in, read and checked once before any
backend runs (each task's descriptor names its loader), so every backend sees the same records:
a structure set (:class:`Split`, :func:`load_split`) and the examples of a sequence-level task
(:class:`TaskData`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ConfigError
from ..structure.io import Structure
from ..utils.paths import no_such

__all__ = ["Split", "load_split", "TaskData", "count_of", "table_file"]


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
    from ..fasta import check_record_ids
    from ..nucleotides import MappingError, rna_codes
    from ..structure.io import read_archiveii_csv, read_structures

    p = table_file(path, what)
    archiveii = p.name.lower().endswith(".csv")
    if not archiveii:
        refuse_unread(p, what)
    recs = list(read_archiveii_csv(p) if archiveii else read_structures(p))
    try:  # the per-sequence results are keyed by id
        check_record_ids(r.name for r in recs)
    except ValueError as e:
        raise ConfigError(f"{what}: {p}: {e}") from None
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


READS = "structure files (dbn, bpseq, ct, pairs; .gz ok) or ArchiveII's CSV (.csv)"


def refuse_unread(p: Path, what: str) -> None:
    """A ConfigError naming ``what`` (the config key) and the formats compare reads, for a file
    whose name names none of them. A pair table (``.tsv``: id, sequence, pairs), which ``resm fold
    --reference``, ``resm evaluate`` and ``resm finetune`` read, is said as such: its base multiplets
    have no place in the probe's and the head's one-partner targets (it was told to take a
    structure extension, under which it could not be read)."""
    from ..structure.io import infer_format
    from ..structure.pairsets import pair_table_named

    try:
        infer_format(p)
    except ValueError:
        if pair_table_named(p):
            raise ConfigError(
                f"{what}: {p}: resm compare reads {READS}, not pair tables (.tsv: id, sequence, pairs), which "
                "resm fold --reference, resm evaluate and resm finetune read"
            ) from None
        raise ConfigError(f"{what}: {p}: its extension names no format resm compare reads: {READS}") from None


@dataclass
class TaskData:
    """The examples of a sequence-level task, drawn once: the same for every backend.

    ``train`` / ``val`` / ``test`` hold the task's records (e.g. :class:`resm.data.rri.Pair`,
    :class:`resm.data.mrl.UTR`); ``about`` describes each set for the tables; ``mean``
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


def count_of(kept: int, total: int) -> str:
    """``kept`` as the tables say it: "N" or "N (seeded subset) of M"."""
    return f"{kept}" if kept == total else f"{kept} (seeded subset) of {total}"


def table_file(path: str, key: str) -> Path:
    """``path`` as a Path; a missing file, a folder or something else that is no regular file
    (a device) is a one-line error naming the config ``key``."""
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        raise ConfigError(f"{key}: {p} is a folder, not a file")
    if p.exists():
        raise ConfigError(f"{key}: {p} is not a regular file")
    raise ConfigError(f"{key}: {p}: {no_such(p, 'file')}")
