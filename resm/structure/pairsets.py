"""Structures in which a base may sit in several pairs: the pair lists of 3D-derived sets.

Structures annotated from 3D coordinates (SPOT-RNA's PDB-derived TR1 and VL1, annotated with
DSSR) hold non-canonical pairs and base multiplets: a base in two or more pairs (base triples).
A partner array (:class:`resm.structure.record.Structure`) holds one partner per base, so these
records are :class:`PairRecord`, whose :class:`PairSet` is a list of pairs.

* :class:`PairSet`: 0-based pairs ``(i, j)``, i < j, sorted, each once, and the length;
  :meth:`PairSet.window` crops it like a training crop;
* :class:`PairRecord`: name, sequence (as deposited) and pair set, with the views
  :meth:`PairRecord.canonical` (AU, GC and GU pairs only) and :meth:`PairRecord.non_canonical`;
* :func:`format_pair_list` / :func:`parse_pair_list`: one record as a pair list, the format
  ``resm fold --format pairs`` writes (``#Name:``, ``#Length:``, ``#Sequence:`` comments, then
  one ``i j`` line per pair, 1-based, i < j), where a base may appear on several lines; they
  are the format's one reader and writer (:func:`resm.structure.pair_lists.parse_pair_lines`,
  :func:`resm.structure.pair_lists.pair_list_text`), which the one-partner view shares;
* :func:`read_pair_table`: a TSV with the header ``id  sequence  pairs`` (``pairs``:
  space-separated 1-based ``i:j``, i < j or, as other 3D-derived tables write them, ``j:i``;
  empty when the record has none), the format of
  ``ss/pdb/TR1.tsv`` and ``VL1.tsv``. A malformed line, a pair outside the sequence, a
  self-pair, a pair written twice or a repeated id is a one-line :class:`StructureError`
  naming the file and the line.

Canonical means the two letters, upper-cased with T read as U, are AU, UA, GC, CG, GU or UG; a
modified base (a letter such as ``P``) makes its pairs non-canonical. :mod:`resm.structure.metrics`
scores a pair set as it scores a partner array, so precision and recall count every pair of a
multiplet.
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fasta import id_problem, open_text
from ..nucleotides import PAIR_TYPE, as_bytes, describe_symbol, lenient_codes
from .pair_lists import pair_list_text, pair_of, parse_pair_lines
from .partners import StructureError

__all__ = [
    "PairRecord",
    "PairSet",
    "format_pair_list",
    "parse_pair_list",
    "read_pair_table",
    "parse_pair_table",
    "is_pair_table_header",
    "pair_table_named",
]

HEADER = ("id", "sequence", "pairs")


@dataclass(frozen=True, eq=False)
class PairSet:
    """Pairs of one structure, a base possibly in several: ``ij`` (n, 2) int64, 0-based,
    i < j, sorted by (i, j), no pair twice; ``length`` the sequence length."""

    ij: np.ndarray
    length: int

    def __post_init__(self) -> None:
        ij = np.asarray(self.ij, dtype=np.int64).reshape(-1, 2)
        if len(ij) and (ij.min() < 0 or ij.max() >= self.length):
            raise StructureError(f"pair index out of range for length {self.length}")
        if np.any(ij[:, 0] >= ij[:, 1]):
            raise StructureError("pairs need i < j")
        ij = np.unique(ij, axis=0) if len(ij) else ij
        object.__setattr__(self, "ij", ij)

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return f"PairSet(length={self.length}, pairs={self.n_pairs})"

    @property
    def n_pairs(self) -> int:
        return len(self.ij)

    def multiplet_bases(self) -> int:
        """Bases that sit in more than one pair."""
        return int((np.bincount(self.ij.ravel(), minlength=self.length) > 1).sum())

    def select(self, keep: np.ndarray) -> PairSet:
        return PairSet(self.ij[np.asarray(keep, dtype=bool)], self.length)

    def window(self, start: int, stop: int) -> PairSet:
        """The pairs with both ends in [start, stop), renumbered from ``start``."""
        inside = (self.ij[:, 0] >= start) & (self.ij[:, 1] < stop)
        return PairSet(self.ij[inside] - start, stop - start)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PairSet):
            return NotImplemented
        return self.length == other.length and np.array_equal(self.ij, other.ij)


@dataclass
class PairRecord:
    """One record of a pair table: name, sequence as deposited, and its pairs."""

    name: str
    seq: str
    pairs: PairSet

    def __len__(self) -> int:
        return len(self.seq)

    def __repr__(self) -> str:
        """One short line however long the RNA (as :class:`resm.structure.record.Structure`'s)."""
        seq = self.seq if len(self.seq) <= 40 else f"{self.seq[:37]}..."
        return f"PairRecord(name={self.name!r}, length={len(self)}, pairs={self.pairs.n_pairs}, seq={seq!r})"

    def is_canonical(self) -> np.ndarray:
        """Per pair: whether it is AU, GC or GU (any case, T read as U; other letters never)."""
        codes = lenient_codes(self.seq)
        return PAIR_TYPE[codes[self.pairs.ij[:, 0]], codes[self.pairs.ij[:, 1]]] >= 0

    def canonical(self) -> PairRecord:
        return PairRecord(self.name, self.seq, self.pairs.select(self.is_canonical()))

    def non_canonical(self) -> PairRecord:
        return PairRecord(self.name, self.seq, self.pairs.select(~self.is_canonical()))


def format_pair_list(rec: PairRecord) -> str:
    """The pair-list text of one record (:func:`resm.structure.pair_lists.pair_list_text`, the format's one
    writer); ValueError for a name with a newline or a sequence with whitespace."""
    return pair_list_text(rec.name, rec.seq, len(rec.pairs), rec.pairs.ij.tolist())


def parse_pair_list(text: str, source: str = "<pairs>") -> PairRecord:
    """The record of a pair-list text, every pair of a multiplet kept: the format's one reader
    (:func:`resm.structure.pair_lists.parse_pair_lines`, lines split as in a file read), so a malformed
    line, a pair outside the length, a self-pair or a pair written twice is the one-line
    :class:`StructureError` naming ``source`` and the line that ``resm`` gives for a file."""
    got = parse_pair_lines(io.StringIO(text, newline=None), source)
    return PairRecord(got.name, got.seq, PairSet(np.asarray(got.ij, dtype=np.int64).reshape(-1, 2), got.length))


def pair_table_named(path: str | os.PathLike) -> bool:
    """Whether a file's name (``.tsv``, ``.tsv.gz``) makes it a pair table."""
    name = Path(path).name.lower()
    return name.removesuffix(".gz").endswith(".tsv")


def is_pair_table_header(line: str) -> bool:
    """Whether ``line`` is a pair table's header (``id``, ``sequence``, ``pairs``, tab-separated)."""
    return tuple(c.strip().lower() for c in line.rstrip("\r\n").split("\t")) == HEADER


def read_pair_table(path: str | os.PathLike) -> list[PairRecord]:
    """The records of a pair table (see the module notes); errors name the file and line."""
    path = Path(path)
    try:
        with open_text(path) as fh:  # as every input: a device refused, UTF-16 after its mark, gzip
            return parse_pair_table(fh, path.name)
    except (OSError, EOFError, zlib.error) as e:  # a folder, a device, a damaged gzip
        raise StructureError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None


def parse_pair_table(lines: Iterable[str], src: str) -> list[PairRecord]:
    """The records of a pair table's ``lines`` (a file's or standard input's), named ``src`` in errors."""
    out: list[PairRecord] = []
    seen: dict = {}
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if n == 1:
            if not is_pair_table_header(line):
                raise StructureError(f"{src} line 1: expected the header 'id<TAB>sequence<TAB>pairs'")
            continue
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 3:
            raise StructureError(
                f"{src} line {n}: expected 3 tab-separated columns (id, sequence, pairs), got {len(cols)}"
            )
        name, seq, pairs = cols[0].strip(), cols[1].strip(), cols[2].split()
        if not name or not seq:
            raise StructureError(f"{src} line {n}: empty id or sequence")
        bad = next((k for k, c in enumerate(seq) if not (c.isascii() and c.isalpha())), None)
        if bad is not None:  # named with its position, as the sequences of every other input
            what = describe_symbol(seq, as_bytes(seq), bad)
            raise StructureError(f"{src} line {n}: sequence of {name!r}: {what} at position {bad + 1} is not a letter")
        if (why := id_problem(name)) is not None:
            raise StructureError(f"{src} line {n}: id {name!r} {why}")
        if name in seen:
            raise StructureError(f"{src} line {n}: id {name!r} already on line {seen[name]}")
        seen[name] = n
        ij = [pair_of(t, ":", f"{src} line {n}", len(seq)) for t in pairs]
        if len(set(ij)) != len(ij):  # once each way ('1:5 5:1') is twice too
            k = next(k for k, p in enumerate(ij) if p in ij[:k])
            was = pairs[ij.index(ij[k])]
            first = "" if was == pairs[k] else f" (first as {was})"
            raise StructureError(f"{src} line {n}: pair {pairs[k]} written twice{first}")
        out.append(PairRecord(name, seq, PairSet(np.asarray(ij, dtype=np.int64).reshape(-1, 2), len(seq))))
    if not out:
        raise StructureError(f"{src} line 1: no records")
    return out
