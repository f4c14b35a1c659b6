"""RNA-RNA interaction pairs (miRNA-target and the like): reading and a fixed split.

A pair file is a delimited table with one pair per line; three layouts are recognised:

* **with a header** (CSV or TSV): the first non-blank row names the columns and contains
  ``a_seq`` and ``b_seq``; ``a_name``, ``b_name`` and ``label`` are optional, other columns are
  ignored and the column order is taken from the header. This is ``MirTarRAW.csv``
  (``a_name,a_seq,b_name,b_seq,label``) and what ``resm interact PAIRS.tsv`` accepts::

      a_name	a_seq	b_name	b_seq
      miR-1	UGGAAUGUAAAGAAGUAUGUAU	site-7	ACAUACUUCUUUACAUUCCA

* **without a header, 5 columns**: ``a_name a_seq b_name b_seq label``
  (``DeepMirTar_IndTest.tsv``);
* **without a header, 4 columns**: ``a_name a_seq b_name b_seq`` (no labels).

The delimiter follows the extension (``.csv`` -> comma, ``.tsv``/``.tab`` -> tab, a trailing
``.gz`` ignored); for any other extension a first line holding a tab means tab, else comma.
Gzip input is recognised by its magic bytes. Blank lines are skipped. Sequences are
normalised with :func:`resm.nucleotides.normalise` (upper case, ``T`` -> ``U``, IUPAC ambiguity and
modified-base codes -> ``N``); labels are ``0``/``1`` (``0.0``/``1.0`` accepted).

The file is streamed with the ``csv`` module and reading stops at the first bad line with a
:class:`PairsError` whose message is ``"<file> line <n>: <problem>"`` (``<file>`` is the base
name, ``<n>`` the 1-based physical line).
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np

from ..fasta import checked_cell_name, csv_problem, open_text
from ..mapping import MappingError
from ..nucleotides import normalise

PathLike = Union[str, "os.PathLike[str]"]

COLUMNS = ("a_name", "a_seq", "b_name", "b_seq", "label")
_LABELS = {"0": 0, "1": 1, "0.0": 0, "1.0": 1}


class PairsError(ValueError):
    """A malformed pair file; the message is ``"<file> line <n>: <problem>"``."""


@dataclass(frozen=True)
class Pair:
    a_name: str
    a: str  # normalised sequence (ACGU, N for unknown)
    b_name: str
    b: str
    label: int | None  # 0/1, None when the file has no labels
    line: int  # 1-based line in the file

    @property
    def name(self) -> str:
        return f"{self.a_name}|{self.b_name}"


# ---- delimited-table plumbing, shared with resm.data.mrl -------------------------------------
def open_table(path: PathLike) -> io.TextIOBase:
    """Text handle (``newline=""`` as the csv module wants) on a plain or gzip file."""
    return open_text(path, newline="")


def _delimiter_by_name(path: PathLike) -> str | None:
    """Comma or tab from the extension (``.csv``/``.tsv``/``.tab``, ``.gz`` ignored), else None."""
    name = os.path.basename(os.fspath(path)).lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith(".csv"):
        return ","
    if name.endswith((".tsv", ".tab")):
        return "\t"
    return None


def _sniffed(fh: Iterator[str]) -> tuple[str, Iterator[str]]:
    """The delimiter of the first non-blank line (a tab means tab, else comma), and the lines
    of ``fh`` from its start: the lines read to sniff are given back, so the file is read once
    (a named pipe can be read only once)."""
    seen: list[str] = []
    for line in fh:
        seen.append(line)
        if line.strip():
            break
    return ("\t" if seen and "\t" in seen[-1] else ","), itertools.chain(seen, fh)


def table_rows(path: PathLike, error: type) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, cells)`` for each non-blank row, cells stripped of surrounding blanks.

    ``line`` is the 1-based physical line where the row starts (a quoted field may span lines).
    Unreadable input (bad gzip, csv syntax) raises ``error`` naming the file and line.
    """
    name = os.fspath(path)
    last = 0  # physical lines consumed so far
    try:
        with open_table(path) as fh:
            delim, lines = _delimiter_by_name(path), iter(fh)
            if delim is None:  # the first non-blank line decides
                delim, lines = _sniffed(fh)
            reader = csv.reader(lines, delimiter=delim)
            for row in reader:
                start, last = last + 1, reader.line_num
                cells = [c.strip() for c in row]
                if not any(cells):
                    continue
                yield start, cells
    except csv.Error as e:
        raise error(f"{name} line {last + 1}: {csv_problem(e)}") from e
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise error(f"{name} line {last + 1}: cannot read ({getattr(e, 'strerror', None) or e})") from e


def table_sequence(raw: str, name: str, where: str, error: type) -> str:
    """The sequence of a table cell (``raw``, of record ``name``), normalised to RNA; an empty
    cell or a bad symbol raises ``error`` naming ``where`` (file, line and column)."""
    if not raw:
        raise error(f"{where} is empty")
    try:
        return normalise(raw, name)
    except MappingError as e:
        raise error(f"{where}: {e}") from None


def check_columns_once(header: list[str], used, where: str, error: type, fold_case: bool = False) -> None:
    """A header that names a column the reader uses twice is refused naming it (which of the two
    holds the data is unclear; the first was read without a word)."""
    names = [c.lower() for c in header] if fold_case else header
    for c in used:
        at = [i for i, x in enumerate(names, 1) if x == c]
        if len(at) > 1:
            raise error(f"{where}: the header names column {c!r} twice (columns {at[0]} and {at[1]})")


# ---- pairs ------------------------------------------------------------------------------------
def _header_columns(cells: list[str], where: str) -> dict | None:
    """Column name -> index if ``cells`` is a header row (it holds ``a_seq`` and ``b_seq``)."""
    low = [c.lower() for c in cells]
    if "a_seq" not in low or "b_seq" not in low:
        return None
    check_columns_once(cells, COLUMNS, where, PairsError, fold_case=True)
    return {c: i for i, c in enumerate(low) if c in COLUMNS}


def iter_pairs(path: PathLike, require_label: bool = True, max_length: int | None = None) -> Iterator[Pair]:
    """Stream the pairs of a file one by one (see the module docstring for the formats).

    Raises :class:`PairsError` at the first bad line: a header without ``a_seq`` or ``b_seq``,
    wrong number of columns, a name holding a control or invisible format character or bytes that are not UTF-8
    (:func:`resm.fasta.id_problem`), an empty sequence, a symbol that is not a nucleotide, a
    label other than 0/1, a missing label while ``require_label`` (else an empty label among
    labelled pairs, or a label among unlabelled ones), a sequence longer than ``max_length``
    nt, or a file without pairs.
    """
    name = os.fspath(path)
    cols: dict | None = None
    ncols = 0
    first_line = 0
    count = 0
    labelled: bool | None = None  # whether the pairs read so far have labels
    for line, cells in table_rows(path, PairsError):
        where = f"{name} line {line}"
        if cols is None:  # first non-blank row: header or first record
            first_line = line
            cols = _header_columns(cells, where)
            is_header = cols is not None
            if is_header:
                ncols = len(cells)
            elif any(c.lower() in COLUMNS for c in cells):  # a header that lacks a sequence column
                lacking = " and ".join(c for c in ("a_seq", "b_seq") if c not in [x.lower() for x in cells])
                raise PairsError(f"{where}: the header has no {lacking} column (columns: {', '.join(cells)})")
            elif len(cells) in (4, 5):
                ncols = len(cells)
                cols = {c: i for i, c in enumerate(COLUMNS[:ncols])}
            else:
                raise PairsError(
                    f"{where}: expected 5 columns (a_name a_seq b_name b_seq label) or 4 without "
                    f"the label, or a header naming a_seq and b_seq; found {len(cells)} column(s)"
                )
            if require_label and "label" not in cols:
                raise PairsError(f"{where}: labels are required but the file has no label column")
            if is_header:
                continue
        if len(cells) != ncols:
            raise PairsError(f"{where}: expected {ncols} columns, found {len(cells)}")
        seqs = {}
        names = {}
        for side in ("a", "b"):
            col = f"{side}_seq"
            raw = cells[cols[col]]
            nm = cells[cols[f"{side}_name"]] if f"{side}_name" in cols else ""
            if nm:
                checked_cell_name(nm, f"{where}: {side}_name", PairsError)
            nm = nm or f"{side}_line{line}"
            seq = table_sequence(raw, nm, f"{where}: {col}", PairsError)
            if max_length is not None and len(seq) > max_length:
                raise PairsError(
                    f"{where}: {col} of {nm!r} has {len(seq)} nt, longer than the {max_length} nt supported"
                )
            seqs[side], names[side] = seq, nm
        label: int | None = None
        if "label" in cols:
            raw = cells[cols["label"]]
            if raw:
                if raw not in _LABELS:
                    raise PairsError(f"{where}: label {raw!r} is not 0 or 1")
                label = _LABELS[raw]
            elif require_label:
                raise PairsError(f"{where}: label is empty")
            if labelled is not None and (label is not None) != labelled:  # metrics need all or none
                said, before = ("is empty", "labels") if label is None else (repr(raw), "none")
                raise PairsError(f"{where}: label {said} where the lines before have {before}")
            labelled = label is not None
        count += 1
        yield Pair(names["a"], seqs["a"], names["b"], seqs["b"], label, line)
    if cols is None:
        raise PairsError(f"{name} line 1: empty file, no pairs")
    if count == 0:
        raise PairsError(f"{name} line {first_line}: a header but no pairs")


def read_pairs(path: PathLike, require_label: bool = True, max_length: int | None = None) -> list[Pair]:
    """All pairs of a file, in file order (see :func:`iter_pairs`)."""
    return list(iter_pairs(path, require_label=require_label, max_length=max_length))


def split_pairs(pairs: Sequence[Pair], val_fraction: float = 0.1, seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """Fixed, seeded train/validation split.

    ``numpy.random.default_rng([seed, 17]).permutation(n)``: its first
    ``round(val_fraction * n)`` indices are validation (at least one, and at least one pair left
    for training, when ``0 < val_fraction`` and ``n >= 2``). Both parts keep file order, so the
    split depends only on ``(n, val_fraction, seed)``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(pairs)
    n_val = int(round(val_fraction * n))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    perm = np.random.default_rng([seed, 17]).permutation(n)
    is_val = np.zeros(n, dtype=bool)
    is_val[perm[:n_val]] = True
    train = [p for p, v in zip(pairs, is_val) if not v]
    val = [p for p, v in zip(pairs, is_val) if v]
    return train, val
