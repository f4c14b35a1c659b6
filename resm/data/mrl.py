"""Mean ribosome load (MRL) of 5'UTRs (Sample et al. 2019): reading, a fixed split, variants.

An MRL file is a delimited table (CSV; a ``.tsv`` or tab-separated first line means TSV; plain
or gzip) whose first non-blank row is a header. One column holds the UTR (``utr`` by default,
DNA or RNA alphabet, normalised to ACGU/N with :func:`resm.nucleotides.normalise`) and one the
measured MRL (``rl`` in the random-library files, ``hrl`` in the human designed library). The
record name is the ``id`` column when there is one, else the first column (the pandas index of
the released files, whose header is empty), else ``line<n>``::

    ,utr,total,rl,energy_5utr
    0,GTGATCAGCTCCTGATCCACGCGTTTAAGCAAAGTAGGTGAAGCTCGATC,0.000848688,5.515445537,-11.2

Files are streamed with the ``csv`` module; reading stops at the first bad line with an
:class:`MRLError` whose message is ``"<file> line <n>: <problem>"`` (base name, 1-based
physical line).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fasta import checked_cell_name
from ..mapping import MappingError
from ..nucleotides import normalise
from .rri import PathLike, check_columns_once, table_rows, table_sequence

TARGET_COLUMNS = ("rl", "hrl")  # auto-detected target columns, in order of preference
MAX_TARGET = 1e30  # a larger label overflows the 32-bit maths of training (normalised targets, predictions)


class MRLError(ValueError):
    """A malformed MRL file; the message is ``"<file> line <n>: <problem>"``."""


@dataclass(frozen=True)
class UTR:
    name: str
    seq: str  # normalised (ACGU, N for unknown)
    mrl: float
    line: int  # 1-based line in the file


@dataclass(frozen=True)
class VariantPair:
    """A wild-type UTR and one of its variants, as indices into the list returned with it."""

    wt: int
    var: int


def _iter_rows(
    path: PathLike,
    seq_column: str = "utr",
    target_column: str | None = None,
    extra: Sequence[str] = (),
    need_target: bool = True,
) -> Iterator[tuple[UTR, dict[str, str]]]:
    """Yield ``(UTR, {column: value for column in extra})`` per data row; without
    ``need_target``, a table with no target column gives UTRs whose ``mrl`` is NaN."""
    name = os.fspath(path)
    header: list[str] | None = None
    header_line = 0
    count = 0
    for line, cells in table_rows(path, MRLError):
        where = f"{name} line {line}"
        if header is None:
            header, header_line = cells, line
            listed = ", ".join(repr(c) for c in header)
            if seq_column not in header:
                raise MRLError(f"{where}: no sequence column {seq_column!r}; columns: {listed}")
            if target_column is None:
                target_column = next((c for c in TARGET_COLUMNS if c in header), None)
                if target_column is None and need_target:
                    raise MRLError(
                        f"{where}: no target column ({' or '.join(TARGET_COLUMNS)}); give one of the columns: {listed}"
                    )
            elif target_column not in header:
                raise MRLError(f"{where}: no target column {target_column!r}; columns: {listed}")
            for c in extra:
                if c not in header:
                    raise MRLError(f"{where}: no column {c!r}; columns: {listed}")
            check_columns_once(header, [seq_column, target_column, "id", *extra], where, MRLError)
            i_seq = header.index(seq_column)
            i_y = header.index(target_column) if target_column is not None else None
            if "id" in header:
                i_name: int | None = header.index("id")
            elif 0 not in (i_seq, i_y):
                i_name = 0
            else:
                i_name = None
            i_extra = {c: header.index(c) for c in extra}
            continue
        if len(cells) != len(header):
            raise MRLError(f"{where}: expected {len(header)} columns, found {len(cells)}")
        rec = cells[i_name] if i_name is not None else ""
        rec = checked_cell_name(rec, f"{where}: {header[i_name]}", MRLError) if rec else f"line{line}"
        seq = table_sequence(cells[i_seq], rec, f"{where}: {seq_column}", MRLError)
        if i_y is None:
            count += 1
            yield UTR(rec, seq, math.nan, line), {c: cells[i] for c, i in i_extra.items()}
            continue
        text = cells[i_y]
        if not text:
            raise MRLError(f"{where}: {target_column} is empty")
        try:
            y = float(text)
        except ValueError:
            raise MRLError(f"{where}: {target_column} {text!r} is not a number") from None
        if not math.isfinite(y):
            raise MRLError(f"{where}: {target_column} {text!r} is not finite")
        if abs(y) > MAX_TARGET:
            raise MRLError(f"{where}: {target_column} {text!r} is out of range (|value| must be <= {MAX_TARGET:g})")
        count += 1
        yield UTR(rec, seq, y, line), {c: cells[i] for c, i in i_extra.items()}
    if header is None:
        raise MRLError(f"{name} line 1: empty file, no header")
    if count == 0:
        raise MRLError(f"{name} line {header_line}: a header but no UTRs (the file holds a header only)")


def iter_mrl(path: PathLike, seq_column: str = "utr", target_column: str | None = None) -> Iterator[UTR]:
    """Stream the UTRs of an MRL file (see the module docstring for the format).

    ``target_column`` None picks ``rl`` if present, else ``hrl``, else raises listing the
    columns. Raises :class:`MRLError` at the first bad line: missing columns, wrong number of
    cells, an empty sequence, a symbol that is not a nucleotide, an empty, non-numeric or
    non-finite target, or a file without records.
    """
    for utr, _ in _iter_rows(path, seq_column, target_column):
        yield utr


def read_mrl(path: PathLike, seq_column: str = "utr", target_column: str | None = None) -> list[UTR]:
    """All UTRs of an MRL file, in file order (see :func:`iter_mrl`)."""
    return list(iter_mrl(path, seq_column, target_column))


def read_utrs(path: PathLike) -> tuple[list[str], list[str], np.ndarray | None]:
    """``(names, sequences, measured MRL or None)`` of the UTRs to predict: a FASTA file
    (``.fa``, ``.fasta``, ``.fna``, gzip too; ids unique), or a table with a ``utr`` column
    (:func:`iter_mrl`'s rules) whose ``rl``/``hrl`` column, when it has one, is the measured
    MRL."""
    from ..fasta import read_fasta

    suffixes = "".join(Path(path).suffixes[-2:]).lower()
    if any(x in suffixes for x in (".fa", ".fasta", ".fna")):
        recs = list(read_fasta(path, unique=True))
        seqs = []
        for r in recs:
            try:
                seqs.append(normalise(r.seq, r.id))
            except MappingError as e:  # it named the record only
                raise MappingError(f"{os.fspath(path)} line {r.line}: {e}") from None
        return [r.id for r in recs], seqs, None
    utrs = [u for u, _ in _iter_rows(path, need_target=False)]
    seen: dict[str, int] = {}
    for u in utrs:  # as a FASTA file's: the predictions are keyed by name
        if u.name in seen:
            raise MRLError(f"{os.fspath(path)} line {u.line}: duplicate id {u.name!r} (line {seen[u.name]})")
        seen[u.name] = u.line
    y = np.array([u.mrl for u in utrs])
    return [u.name for u in utrs], [u.seq for u in utrs], None if np.isnan(y).all() else y


def split_utrs(
    utrs: Sequence[UTR], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[list[UTR], list[UTR], list[UTR]]:
    """Fixed, seeded train/validation/test split (disjoint, covering, file order kept).

    ``numpy.random.default_rng([seed, 17]).permutation(n)``: the first
    ``round(fractions[1] * n)`` indices are validation, the next ``round(fractions[2] * n)``
    test, the rest train (20,000 UTRs -> 16,000 / 2,000 / 2,000). The split depends only on
    ``(n, fractions, seed)``.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    n = len(utrs)
    n_val = int(round(fractions[1] * n))
    n_test = min(int(round(fractions[2] * n)), n - n_val)
    perm = np.random.default_rng([seed, 17]).permutation(n)
    part = np.zeros(n, dtype=np.int8)  # 0 train, 1 validation, 2 test
    part[perm[:n_val]] = 1
    part[perm[n_val : n_val + n_test]] = 2
    out: tuple[list[UTR], list[UTR], list[UTR]] = ([], [], [])
    for u, k in zip(utrs, part):
        out[k].append(u)
    return out


def read_variants(path: PathLike) -> tuple[list[UTR], list[VariantPair]]:
    """The human designed SNV library (``pjsample_human_snv_designed_library_mrl.csv``):
    every row as a :class:`UTR` (target ``hrl``, name = ``id``) plus the wild-type/variant pairs.

    Column ``info4`` is ``normal`` (wild type) or ``variant``. **Linking rule**: a variant row
    belongs to the wild-type row whose ``utr`` equals the variant's ``mother`` column (after
    normalisation; a wild-type row's ``mother`` is its own ``utr``). Several ClinVar SNVs share
    one 50-nt wild-type window, and the file keeps a single wild-type row per window whose
    ``id`` is one of those SNVs, so the id rule (variant id = ``<wt id>_v<k>``) finds only a
    subset. If two wild-type rows had the same UTR, variants link to the first.

    Counts on the released file (3,002 rows, all 50 nt): 867 wild types, 2,135 variants.
    The ``mother`` rule links 1,996 variants to 797 wild types (70 wild types have no variant);
    139 variants stay unlinked (their mother window has no wild-type row). The id rule links
    only 907 variants, all of them to the same wild type as the ``mother`` rule. Every linked
    pair has equal lengths and different sequences: 1,941 differ by exactly one substitution
    (the ``snv`` rows, ``info3``), 55 at several positions (``del``/``indel`` rows, where the
    deletion shifts the window).

    Pairs come in the file order of their variant rows.
    """
    name = os.fspath(path)
    utrs: list[UTR] = []
    kinds: list[str] = []
    mothers: list[str] = []
    for utr, extra in _iter_rows(path, "utr", "hrl", extra=("info4", "mother")):
        kind = extra["info4"].lower()
        if kind not in ("normal", "variant"):
            raise MRLError(f"{name} line {utr.line}: info4 {extra['info4']!r} is not 'normal' or 'variant'")
        mother = extra["mother"]
        if mother:
            try:
                mother = normalise(mother, utr.name)
            except MappingError as e:
                raise MRLError(f"{name} line {utr.line}: mother: {e}") from None
        utrs.append(utr)
        kinds.append(kind)
        mothers.append(mother)
    wt_of: dict[str, int] = {}
    for i, (u, k) in enumerate(zip(utrs, kinds)):
        if k == "normal":
            wt_of.setdefault(u.seq, i)
    pairs = [VariantPair(wt_of[m], i) for i, (k, m) in enumerate(zip(kinds, mothers)) if k == "variant" and m in wt_of]
    if not pairs:
        raise MRLError(f"{name}: no variant row whose mother is the utr of a 'normal' row, so no variant to compare")
    return utrs, pairs
