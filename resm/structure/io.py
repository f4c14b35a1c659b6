"""RNA secondary structures: the :class:`Structure` record and its file formats.

A structure is a numpy int array ``pairs`` of length L: ``pairs[i]`` is the 0-based partner of
base i, or -1 when i is unpaired. Each base has at most one partner, pairs are symmetric and no
base pairs with itself; pseudoknots (crossing pairs) are allowed.

Formats (all indices in files are 1-based):

* dot-bracket: ``()`` ``[]`` ``{}`` ``<>`` then ``Aa`` ``Bb`` ... (upper case opens, lower case closes);
  ``. - , : _ ~`` are unpaired.
* ``.dbn``/``.db``: records of three lines ``>name``, sequence, dot-bracket.
* ``.bpseq``: one record, lines ``i base j`` (j = 0 unpaired), ``#`` comments; ``#Name: x`` names it.
* ``.ct``: one or more blocks, header ``N title`` then N rows ``i base i-1 i+1 j i_hist`` (j = 0
  unpaired). Columns 3, 4 and 6 must be integers but are not otherwise checked (real files number them freely).
* ``.pairs``: lines ``i j`` with i < j, ``#`` comments; ``#Name:``, ``#Length:``, ``#Sequence:`` carry those.

Files may be gzip-compressed (``x.ct.gz``). Every malformed file (a damaged .gz, a control character
in a record's name included) raises :class:`StructureError` naming the file and the 1-based line.

Pair probabilities (dense maps and sparse ``(i, j, p)`` arrays) are :mod:`resm.structure.pair_probs`.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import load_json
from ..fasta import checked_name, open_text

__all__ = [
    "StructureError",
    "FoldError",
    "Structure",
    "check_pairs",
    "parse_dotbracket",
    "to_dotbracket",
    "pairs_to_matrix",
    "matrix_to_pairs",
    "pair_list",
    "pairs_from_list",
    "iter_dbn",
    "iter_bpseq",
    "iter_ct",
    "iter_pairs",
    "format_structures",
    "read_structures",
    "read_structure",
    "write_structures",
    "read_archiveii_csv",
    "iter_ct_tarball",
    "FORMATS",
]

UNPAIRED = ".-,:_~"
_OPEN = "([{<" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CLOSE = ")]}>" + "abcdefghijklmnopqrstuvwxyz"
_CLOSE_TO_OPEN = dict(zip(_CLOSE, _OPEN))
_OPEN_SET = frozenset(_OPEN)
MAX_LEVELS = len(_OPEN)

FORMATS = ("dbn", "bpseq", "ct", "pairs")
_EXT_TO_FMT = {".dbn": "dbn", ".db": "dbn", ".dot": "dbn", ".bpseq": "bpseq", ".ct": "ct", ".pairs": "pairs"}


class StructureError(ValueError):
    """Invalid structure or malformed structure file."""


class FoldError(ValueError):
    """A user error of the fold and probe commands (reported in one line by the CLI)."""


@dataclass
class Structure:
    """One record: name, sequence ("" when unknown) and partner array; ``scores`` (e.g.
    ``{"eF1": 0.93}``) and ``alternatives`` (other folders' structures, each named by its
    folder), written and read back by dbn, bpseq and pairs (:mod:`resm.structure.annotations`;
    ct holds neither). Equality compares name, sequence and pairs."""

    name: str
    seq: str
    pairs: np.ndarray
    scores: dict[str, float] = field(default_factory=dict)
    alternatives: list[Structure] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pairs = check_pairs(self.pairs)
        if self.seq and len(self.seq) != len(self.pairs):
            raise StructureError(f"{self.name}: sequence length {len(self.seq)} != structure length {len(self.pairs)}")

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def dotbracket(self) -> str:
        return to_dotbracket(self.pairs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Structure):
            return NotImplemented
        return self.name == other.name and self.seq == other.seq and np.array_equal(self.pairs, other.pairs)


# ---------------------------------------------------------------- pair arrays


def check_pairs(pairs: Sequence[int] | np.ndarray) -> np.ndarray:
    """Return ``pairs`` as an int64 array after checking it is a valid pairing."""
    p = np.asarray(pairs)
    if p.ndim != 1:
        raise StructureError(f"pairs must be 1-D, got shape {p.shape}")
    if p.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(p.dtype, np.integer) and not np.all(np.equal(np.mod(p, 1), 0)):
        raise StructureError("pairs must be integers")
    p = p.astype(np.int64)
    L = len(p)
    bad = np.flatnonzero((p < -1) | (p >= L))
    if bad.size:
        i = int(bad[0])
        raise StructureError(f"partner {p[i]} of base {i} out of range for length {L}")
    idx = np.arange(L)
    bad = np.flatnonzero(p == idx)
    if bad.size:
        raise StructureError(f"base {int(bad[0])} paired with itself")
    paired = np.flatnonzero(p >= 0)
    bad = paired[p[p[paired]] != paired]
    if bad.size:
        i = int(bad[0])
        raise StructureError(f"asymmetric pairing: base {i} -> {p[i]} but {p[i]} -> {p[p[i]]}")
    return p


def pair_list(pairs: Sequence[int] | np.ndarray) -> list[tuple[int, int]]:
    """Sorted 0-based pairs ``(i, j)`` with i < j."""
    p = np.asarray(pairs, dtype=np.int64)
    i = np.flatnonzero(p > np.arange(len(p)))
    return list(zip(i.tolist(), p[i].tolist()))


def pairs_from_list(plist: Iterable[Sequence[int]], length: int, one_based: bool = False) -> np.ndarray:
    """Partner array of ``length`` from pairs ``(i, j)`` (either order)."""
    arr = np.asarray(list(plist), dtype=np.int64).reshape(-1, 2)
    if one_based:
        arr = arr - 1
    p = np.full(length, -1, dtype=np.int64)
    if arr.size == 0:
        return p
    if arr.min() < 0 or arr.max() >= length:
        raise StructureError(f"pair index out of range for length {length}")
    if np.any(arr[:, 0] == arr[:, 1]):
        raise StructureError("self pair in pair list")
    flat = arr.ravel()
    uniq, counts = np.unique(flat, return_counts=True)
    if np.any(counts > 1):
        raise StructureError(f"base {int(uniq[counts > 1][0])} appears in more than one pair")
    p[arr[:, 0]] = arr[:, 1]
    p[arr[:, 1]] = arr[:, 0]
    return p


def pairs_to_matrix(pairs: Sequence[int] | np.ndarray) -> np.ndarray:
    """Symmetric (L, L) bool contact matrix."""
    p = np.asarray(pairs, dtype=np.int64)
    m = np.zeros((len(p), len(p)), dtype=bool)
    i = np.flatnonzero(p >= 0)
    m[i, p[i]] = True
    return m


def matrix_to_pairs(mat: np.ndarray) -> np.ndarray:
    """Partner array from a square matrix (nonzero = paired; symmetrised).

    Raises StructureError if a base has several partners or pairs with itself.
    """
    m = np.asarray(mat)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise StructureError(f"pair matrix must be square, got shape {m.shape}")
    m = m.astype(bool)
    m = m | m.T
    if np.any(np.diagonal(m)):
        raise StructureError(f"base {int(np.flatnonzero(np.diagonal(m))[0])} paired with itself")
    deg = m.sum(axis=1)
    if np.any(deg > 1):
        raise StructureError(f"base {int(np.flatnonzero(deg > 1)[0])} has {int(deg.max())} partners")
    p = np.full(len(m), -1, dtype=np.int64)
    i, j = np.nonzero(m)
    p[i] = j
    return p


# ---------------------------------------------------------------- dot-bracket


def parse_dotbracket(db: str) -> np.ndarray:
    """Partner array from a dot-bracket string (positions in errors are 1-based)."""
    stacks: dict[str, list[int]] = {}
    p = np.full(len(db), -1, dtype=np.int64)
    for k, c in enumerate(db):
        if c in UNPAIRED:
            continue
        if c in _OPEN_SET:
            stacks.setdefault(c, []).append(k)
        elif c in _CLOSE_TO_OPEN:
            st = stacks.get(_CLOSE_TO_OPEN[c])
            if not st:
                raise StructureError(f"unmatched '{c}' at position {k + 1}")
            i = st.pop()
            p[i] = k
            p[k] = i
        else:
            raise StructureError(f"unknown character {c!r} at position {k + 1}")
    for o, st in stacks.items():
        if st:
            raise StructureError(f"unmatched '{o}' at position {st[-1] + 1}")
    return p


def _levels(pairs: np.ndarray) -> list[tuple[int, int, int]]:
    """Greedy pseudoknot levels: (i, j, level) for each pair, in order of i.

    Each level keeps a stack of the closing indices of its pairs still open at
    i; as a level is nested, (i, j) crosses one of them iff the innermost
    (top of stack) closes before j.
    """
    out = []
    stacks: list[list[int]] = []
    for i, j in pair_list(pairs):
        for lev, st in enumerate(stacks):  # noqa: B007 (lev is read after the break)
            while st and st[-1] < i:
                st.pop()
            if not st or st[-1] > j:
                break
        else:
            lev = len(stacks)
            stacks.append([])
        stacks[lev].append(j)
        out.append((i, j, lev))
    return out


def to_dotbracket(pairs: Sequence[int] | np.ndarray) -> str:
    """Dot-bracket string; crossing pairs go to greedily assigned higher levels."""
    p = check_pairs(pairs)
    chars = ["."] * len(p)
    for i, j, lev in _levels(p):
        if lev >= MAX_LEVELS:
            raise StructureError(f"more than {MAX_LEVELS} pseudoknot levels needed")
        chars[i] = _OPEN[lev]
        chars[j] = _CLOSE[lev]
    return "".join(chars)


# ---------------------------------------------------------------- text parsers


def _err(source: str, lineno: int, msg: str) -> StructureError:
    return StructureError(f"{source} line {lineno}: {msg}")


def _int(tok: str, source: str, lineno: int, what: str) -> int:
    try:
        return int(tok)
    except ValueError:
        raise _err(source, lineno, f"{what} {tok!r} is not an integer") from None


def _columns(line: str, spec: str, source: str, lineno: int) -> list[str]:
    """The columns of a data line of a column format (bpseq, ct, pairs), exactly as many as
    ``spec`` names (e.g. ``"i base j"``), else one line naming the file and line."""
    toks = line.split()
    if len(toks) != len(spec.split()):
        raise _err(source, lineno, f"expected {len(spec.split())} columns '{spec}', got {len(toks)}")
    return toks


def _finish(partners: list[int], linenos: list[int], source: str, name: str, seq: str) -> Structure:
    """1-based partner list (0 = unpaired) with per-base line numbers -> Structure."""
    L = len(partners)
    for k, j in enumerate(partners):
        i = k + 1
        if j == 0:
            continue
        if j < 0 or j > L:
            raise _err(source, linenos[k], f"partner {j} of base {i} out of range 1..{L}")
        if j == i:
            raise _err(source, linenos[k], f"base {i} paired with itself")
        back = partners[j - 1]
        if back != i:
            raise _err(source, linenos[k], f"partner {j} of base {i} says {back}")
    p = np.asarray(partners, dtype=np.int64) - 1
    return Structure(name, seq, p)


def _dbn_structure(line: str, seq: str, source: str, lineno: int, required: bool = False):
    """``(pairs, (label, scores))`` of a structure line and its note; for a line that is no
    such line (spaces in it, a wrong length; no note where not ``required``): an error when
    ``required``, else None."""
    from .annotations import parse_note

    db, _, rest = line.strip().partition(" ")
    note = parse_note(rest) if rest.strip() else (("", {}) if required else None)
    problem = "dot-bracket line contains spaces" if note is None else None
    if problem is None and len(db) != len(seq):
        problem = f"structure length {len(db)} != sequence length {len(seq)}"
    try:
        if problem is None:
            return parse_dotbracket(db), note
    except StructureError as e:
        problem = str(e)
    if required:
        raise _err(source, lineno, problem)
    return None


def iter_dbn(lines: Iterable[str], source: str = "<dbn>") -> Iterator[Structure]:
    """Records from ``>name`` / sequence / dot-bracket lines (blank lines skipped).

    A note after the dot-bracket gives ``scores`` (``[eF1=0.93]``; RNAfold's ``(-12.30)`` as
    ``energy``); labelled lines after it (``<dot-bracket> [RNAfold MFE=-21.60]``) are read into
    ``alternatives`` and ``RNAfold -p``'s further lines are skipped
    (:mod:`resm.structure.annotations`)."""
    from .annotations import rnafold_extra_line

    state = 0
    name = seq = ""
    last: Structure | None = None  # the record whose extra lines may follow
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if state == 0:
            if not line.startswith(">"):
                if last is not None:
                    alt = _dbn_structure(line, last.seq, source, lineno)
                    if alt is not None and alt[1][0]:  # a labelled line
                        pairs, (label, scores) = alt
                        last.alternatives.append(Structure(label, last.seq, pairs, scores))
                        continue
                    if rnafold_extra_line(raw, len(last.seq)):
                        continue
                raise _err(source, lineno, f"expected '>name' header, got {line[:30]!r}")
            if last is not None:
                yield last
                last = None
            name = checked_name(line[1:].strip(), f"{source} line {lineno}", StructureError)
            if not name:  # as a FASTA header without an id: it would be written back as a bare '>'
                raise _err(source, lineno, "header has no id")
            state = 1
        elif state == 1:
            if line.startswith(">"):
                raise _err(source, lineno, f"record {name!r} has no sequence")
            seq = line
            state = 2
        else:
            p, (_, scores) = _dbn_structure(line, seq, source, lineno, required=True)
            last = Structure(name, seq, p, scores)
            state = 0
    if last is not None:
        yield last
    if state == 1:
        raise _err(source, lineno, f"record {name!r} ends without sequence and structure")
    if state == 2:
        raise _err(source, lineno, f"record {name!r} ends without a structure line")


_NAME_RE = re.compile(r"^#\s*name\s*:\s*(.*)$", re.IGNORECASE)
_LEN_RE = re.compile(r"^#\s*length\s*:\s*(\S+)\s*$", re.IGNORECASE)
_SEQ_RE = re.compile(r"^#\s*sequence\s*:\s*(\S*)\s*$", re.IGNORECASE)


class _CommentNotes:
    """The ``#Scores:`` and ``#Alternative:`` comments of a bpseq or pairs file
    (:func:`resm.structure.annotations.parse_comment`), attached to its record at the end."""

    def __init__(self):
        self.scores: dict[str, float] = {}
        self.alts: list[tuple[str, str, dict[str, float], int]] = []

    def read(self, line: str, source: str, lineno: int) -> None:
        from .annotations import parse_comment

        try:
            kind, db, label, scores = parse_comment(line) or ("", "", "", {})
        except ValueError as e:
            raise _err(source, lineno, str(e)) from None
        if kind == "scores":
            self.scores = scores
        elif kind == "alternative":
            self.alts.append((db, label, scores, lineno))

    def attach(self, rec: Structure, source: str) -> Structure:
        rec.scores = self.scores
        for db, label, scores, lineno in self.alts:
            if len(db) != len(rec):
                raise _err(source, lineno, f"#Alternative: structure length {len(db)} != record length {len(rec)}")
            try:
                rec.alternatives.append(Structure(label, rec.seq, parse_dotbracket(db), scores))
            except StructureError as e:
                raise _err(source, lineno, str(e)) from None
        return rec


def iter_bpseq(lines: Iterable[str], source: str = "<bpseq>", name: str = "") -> Iterator[Structure]:
    """The single record of a bpseq file (``i base j`` rows)."""
    bases: list[str] = []
    partners: list[int] = []
    linenos: list[int] = []
    notes = _CommentNotes()
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = _NAME_RE.match(line)
            if m and not partners and m.group(1).strip():  # an empty one keeps the file's name
                name = checked_name(m.group(1).strip(), f"{source} line {lineno}", StructureError)
            notes.read(line, source, lineno)
            continue
        toks = _columns(line, "i base j", source, lineno)
        i = _int(toks[0], source, lineno, "index")
        j = _int(toks[2], source, lineno, "partner")
        if i != len(partners) + 1:
            raise _err(source, lineno, f"index {i}, expected {len(partners) + 1}")
        bases.append(toks[1])
        partners.append(j)
        linenos.append(lineno)
    if not partners:
        raise _err(source, 1, "no bases")
    yield notes.attach(_finish(partners, linenos, source, name, _join_bases(bases, source, linenos)), source)


def _join_bases(bases: list[str], source: str, linenos: list[int]) -> str:
    for b, ln in zip(bases, linenos):
        if len(b) != 1:
            raise _err(source, ln, f"base {b!r} is not a single letter")
    return "".join(bases)


_CT_ENERGY = re.compile(r"^(ENERGY|dG)\s*=\s*\S+\s*", re.IGNORECASE)


def iter_ct(lines: Iterable[str], source: str = "<ct>", name: str = "") -> Iterator[Structure]:
    """Records of a (multi-record) ct file.

    The name is the header title (a leading ``ENERGY = x`` is dropped), else
    ``name`` (numbered ``name_2``, ``name_3``... after the first record).
    """
    n_rec = 0
    need = 0  # rows still expected in the current block
    lineno = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if need == 0:
            toks = line.split(None, 1)
            n = _int(toks[0], source, lineno, "ct header length")
            if n < 1:
                raise _err(source, lineno, f"ct header length {n} must be positive")
            title = _CT_ENERGY.sub("", toks[1].strip()) if len(toks) > 1 else ""
            title = checked_name(title, f"{source} line {lineno}", StructureError)
            n_rec += 1
            rec_name = title or (name if n_rec == 1 else f"{name}_{n_rec}")
            need, header_line = n, lineno
            bases: list[str] = []
            partners: list[int] = []
            linenos: list[int] = []
            continue
        toks = _columns(line, "i base i-1 i+1 j i", source, lineno)
        i = _int(toks[0], source, lineno, "index")
        for k in (2, 3, 5):
            _int(toks[k], source, lineno, f"column {k + 1}")
        j = _int(toks[4], source, lineno, "partner")
        if i != len(partners) + 1:
            raise _err(source, lineno, f"index {i}, expected {len(partners) + 1}")
        bases.append(toks[1])
        partners.append(j)
        linenos.append(lineno)
        need -= 1
        if need == 0:
            yield _finish(partners, linenos, source, rec_name, _join_bases(bases, source, linenos))
    if need:
        raise _err(
            source, lineno, f"ct block starting line {header_line} has {len(partners)} of {len(partners) + need} rows"
        )
    if n_rec == 0:
        raise _err(source, max(lineno, 1), "no ct records")


def iter_pairs(
    lines: Iterable[str], source: str = "<pairs>", name: str = "", length: int | None = None
) -> Iterator[Structure]:
    """The single record of a pair-list file (``i j`` rows, 1-based, i < j).

    Length: ``#Length:`` comment, else ``length``, else length of ``#Sequence:``,
    else the largest index.
    """
    seq = ""
    file_len: int | None = None
    plist: list[tuple[int, int]] = []
    linenos: list[int] = []
    notes = _CommentNotes()
    lineno = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if m := _NAME_RE.match(line):
                if m.group(1).strip():  # an empty one keeps the file's name
                    name = checked_name(m.group(1).strip(), f"{source} line {lineno}", StructureError)
            elif m := _LEN_RE.match(line):
                file_len = _int(m.group(1), source, lineno, "length")
                if file_len < 0:
                    raise _err(source, lineno, f"length {file_len} is negative")
            elif m := _SEQ_RE.match(line):
                seq = m.group(1)
            else:
                notes.read(line, source, lineno)
            continue
        toks = _columns(line, "i j", source, lineno)
        i = _int(toks[0], source, lineno, "index")
        j = _int(toks[1], source, lineno, "index")
        if i < 1:
            raise _err(source, lineno, f"index {i} must be >= 1")
        if i >= j:
            raise _err(source, lineno, f"pair ({i}, {j}) needs i < j")
        plist.append((i, j))
        linenos.append(lineno)
    L = file_len if file_len is not None else length
    if L is None:
        L = len(seq) if seq else max((j for _, j in plist), default=0)
    if seq and len(seq) != L:
        raise _err(source, lineno, f"sequence length {len(seq)} != length {L}")
    seen: dict[int, int] = {}
    for (i, j), ln in zip(plist, linenos):
        if j > L:
            raise _err(source, ln, f"index {j} out of range 1..{L}")
        for b in (i, j):
            if b in seen:
                raise _err(source, ln, f"base {b} already paired on line {seen[b]}")
            seen[b] = ln
    yield notes.attach(Structure(name, seq, pairs_from_list(plist, L, one_based=True)), source)


_ITERS = {"dbn": iter_dbn, "bpseq": iter_bpseq, "ct": iter_ct, "pairs": iter_pairs}


# ---------------------------------------------------------------- writers


def _fmt_dbn(rec: Structure) -> str:
    from .annotations import noted

    rows = [f">{rec.name}\n{rec.seq or 'N' * len(rec)}\n{noted(to_dotbracket(rec.pairs), rec.scores)}\n"]
    rows += [f"{noted(to_dotbracket(a.pairs), a.scores, a.name)}\n" for a in rec.alternatives]
    return "".join(rows)


def _comment_notes(rec: Structure) -> list[str]:
    from .annotations import comment_lines

    return comment_lines(rec.scores, [(to_dotbracket(a.pairs), a.name, a.scores) for a in rec.alternatives])


def _bases(rec: Structure) -> str:
    return rec.seq or "N" * len(rec)


def _fmt_bpseq(rec: Structure) -> str:
    j = rec.pairs + 1
    rows = [f"#Name: {rec.name}\n"] if rec.name else []
    rows += _comment_notes(rec)
    rows += [f"{i + 1} {b} {j[i]}\n" for i, b in enumerate(_bases(rec))]
    return "".join(rows)


def _fmt_ct(rec: Structure) -> str:
    L = len(rec)
    j = rec.pairs + 1
    rows = [f"{L}\t{rec.name}\n"]
    rows += [f"{i + 1}\t{b}\t{i}\t{i + 2 if i + 1 < L else 0}\t{j[i]}\t{i + 1}\n" for i, b in enumerate(_bases(rec))]
    return "".join(rows)


def _fmt_pairs(rec: Structure) -> str:
    rows = [f"#Name: {rec.name}\n"] if rec.name else []
    rows.append(f"#Length: {len(rec)}\n")
    if rec.seq:
        rows.append(f"#Sequence: {rec.seq}\n")
    rows += _comment_notes(rec)
    rows += [f"{i + 1} {j + 1}\n" for i, j in pair_list(rec.pairs)]
    return "".join(rows)


_FORMATTERS = {"dbn": _fmt_dbn, "bpseq": _fmt_bpseq, "ct": _fmt_ct, "pairs": _fmt_pairs}


def format_structures(records: Iterable[Structure], fmt: str) -> str:
    """Text of ``records`` in ``fmt``; bpseq and pairs hold exactly one record. Scores and
    alternative structures are written as :class:`Structure` says (ct: scores left out).

    Only the pairs format can hold an empty (length 0) record.
    """
    if fmt not in _FORMATTERS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    recs = list(records)
    if fmt in ("bpseq", "pairs") and len(recs) != 1:
        raise ValueError(f"{fmt} files hold exactly one record, got {len(recs)}")
    for r in recs:
        if len(r) == 0 and fmt != "pairs":
            raise ValueError(f"{r.name}: empty structure cannot be written as {fmt}")
        if any(c.isspace() for c in r.seq):
            raise ValueError(f"{r.name}: sequence contains whitespace")
        if "\n" in r.name:
            raise ValueError(f"{r.name!r}: name contains a newline")
        if any(len(a) != len(r) or not a.name for a in r.alternatives):
            raise ValueError(f"{r.name}: an alternative structure needs a label and the record's length")
        if r.alternatives and fmt == "ct":
            raise ValueError(f"{r.name}: ct has no room for a second structure per record (dbn, bpseq and pairs have)")
    return "".join(_FORMATTERS[fmt](r) for r in recs)


# ---------------------------------------------------------------- files


def infer_format(path: Path) -> str:
    """The structure format named by a file's extension (``.gz`` ignored); ValueError when
    the extension names none."""
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    ext = os.path.splitext(name)[1]
    if ext not in _EXT_TO_FMT:
        raise ValueError(f"{path}: its extension names no structure format ({', '.join(FORMATS)}); give the format")
    return _EXT_TO_FMT[ext]


def file_stem(path: Path) -> str:
    """A file's name without its extension (and without ``.gz``): the record name of a
    one-record file."""
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    return os.path.splitext(name)[0]


def read_structures(path: str | os.PathLike, fmt: str | None = None) -> Iterator[Structure]:
    """Yield the records of a structure file (format from extension unless given)."""
    path = Path(path)
    fmt = fmt or infer_format(path)
    if fmt not in _ITERS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    kwargs = {} if fmt == "dbn" else {"name": file_stem(path)}
    try:
        if path.name.lower().endswith(".gz"):  # a .gz that is not gzip is an error
            fh = gzip.open(path, "rt", encoding="utf-8-sig", errors="replace")  # noqa: SIM115 (the with below)
        else:
            fh = open_text(path)  # UTF-8 or UTF-16 after a byte-order mark, as every input
        with fh:
            yield from _ITERS[fmt](fh, source=str(path), **kwargs)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:  # a .gz that is not gzip, or one cut off
        raise StructureError(f"{path}: cannot read ({e})") from None


def read_structure(path: str | os.PathLike, fmt: str | None = None) -> Structure:
    """The single record of a structure file."""
    recs = list(read_structures(path, fmt))
    if len(recs) != 1:
        raise StructureError(f"{path}: expected one record, found {len(recs)}")
    return recs[0]


def write_structures(records: Iterable[Structure] | Structure, path: str | os.PathLike, fmt: str | None = None) -> None:
    """Write records atomically (temporary file in the same directory, then renamed)."""
    from ..utils.io import atomic_path

    path = Path(path)
    fmt = fmt or infer_format(path)
    if isinstance(records, Structure):
        records = [records]
    data = format_structures(records, fmt).encode("utf-8")
    if path.name.lower().endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


# ---------------------------------------------------------------- ArchiveII


def read_archiveii_csv(path: str | os.PathLike) -> Iterator[Structure]:
    """Records of ArchiveII.csv (id,sequence,len,structure,base_pairs).

    Pairs come from ``base_pairs`` (1-based, keeps pseudoknots); ``len`` is checked.
    """
    path = Path(path)
    src = path.name
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"id", "sequence", "base_pairs"} - set(reader.fieldnames or [])
        if missing:
            raise _err(src, 1, f"missing columns {sorted(missing)}")
        for row in reader:
            ln = reader.line_num
            seq = row["sequence"] or ""
            if row.get("len") not in (None, "") and _int(row["len"], src, ln, "len") != len(seq):
                raise _err(src, ln, f"len {row['len']} != sequence length {len(seq)}")
            try:
                plist = load_json(row["base_pairs"])
            except (json.JSONDecodeError, TypeError) as e:
                raise _err(src, ln, f"base_pairs is not a JSON list: {e}") from None
            try:
                p = pairs_from_list(plist, len(seq), one_based=True)
            except (StructureError, ValueError) as e:
                raise _err(src, ln, f"base_pairs: {e}") from None
            yield Structure(row["id"], seq, p)


def iter_ct_tarball(path: str | os.PathLike, limit: int | None = None) -> Iterator[Structure]:
    """Stream the ``.ct`` members of a tar(.gz) archive, named by member stem (members holding
    several ct blocks give ``stem``, ``stem_2``, ...); ``limit`` stops after that many members."""
    n = 0
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if not member.isfile() or not member.name.lower().endswith(".ct"):
                    continue
                if limit is not None and n >= limit:
                    return
                n += 1
                fh = tar.extractfile(member)
                assert fh is not None
                stem = file_stem(Path(member.name))
                text = fh.read().decode("utf-8", errors="replace").splitlines()
                for k, rec in enumerate(iter_ct(text, source=f"{path}:{member.name}", name=stem)):
                    rec.name = stem if k == 0 else f"{stem}_{k + 1}"
                    yield rec
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:  # not an archive, or one cut off
        raise StructureError(f"{path}: not a readable tar archive ({e})") from None
