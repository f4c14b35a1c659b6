"""The :class:`Structure` record, and what its text formats share.

A :class:`Structure` is one record: name, sequence and partner array (:mod:`resm.structure.partners`),
with its scores and alternative structures (:mod:`resm.structure.annotations`). The formats'
readers and writers are :mod:`resm.structure.io` and, for pair lists, :mod:`resm.structure.pair_lists`;
they share from here:

* :func:`line_error`: the one-line :class:`StructureError` naming the file and the 1-based line;
* :func:`columns`: the columns of a data line of a column format (bpseq, ct, pairs);
* :data:`NAME_COMMENT` and :class:`CommentNotes`: the ``#Name:``, ``#Scores:`` and ``#Alternative:``
  comments of bpseq and pair-list files;
* :func:`check_writable`: a name and a sequence that a file can hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .partners import StructureError, check_pairs, parse_dotbracket, to_dotbracket

__all__ = ["Structure", "line_error", "columns", "NAME_COMMENT", "CommentNotes", "check_writable"]


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
        # a name or a sequence that is no text (bytes, None, a list) failed later, where it was
        # written ("'int' object has no attribute 'isspace'"), or was written as its repr
        if not isinstance(self.name, str):
            raise TypeError(f"Structure: the name must be a str, got {type(self.name).__name__}")
        if not isinstance(self.seq, str):
            raise TypeError(
                f"Structure {self.name!r}: the sequence must be a str ('' when unknown), got {type(self.seq).__name__}"
            )
        self.pairs = check_pairs(self.pairs)
        if self.seq and len(self.seq) != len(self.pairs):
            raise StructureError(f"{self.name}: sequence length {len(self.seq)} != structure length {len(self.pairs)}")

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def dotbracket(self) -> str:
        """The structure in dot-bracket, pseudoknots as ``[]``, ``{}``, ``<>``, then ``Aa``, ``Bb``...
        (:func:`to_dotbracket`)."""
        return to_dotbracket(self.pairs)

    def __repr__(self) -> str:
        """One short line however long the RNA: name, length, number of pairs, the sequence's
        start, and the scores and alternatives when there are any."""
        seq = self.seq if len(self.seq) <= 40 else f"{self.seq[:37]}..."
        extra = f", scores={self.scores!r}" if self.scores else ""
        if self.alternatives:
            extra += f", alternatives={[a.name for a in self.alternatives]!r}"
        n = int((self.pairs >= 0).sum()) // 2
        return f"Structure(name={self.name!r}, length={len(self)}, pairs={n}, seq={seq!r}{extra})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Structure):
            return NotImplemented
        return self.name == other.name and self.seq == other.seq and np.array_equal(self.pairs, other.pairs)


def line_error(source: str, lineno: int, msg: str) -> StructureError:
    """The error of line ``lineno`` of ``source``: ``<source> line <lineno>: <msg>``."""
    return StructureError(f"{source} line {lineno}: {msg}")


def columns(line: str, spec: str, source: str, lineno: int) -> list[str]:
    """The columns of a data line of a column format (bpseq, ct, pairs), exactly as many as
    ``spec`` names (e.g. ``"i base j"``), else one line naming the file and line."""
    toks = line.split()
    if len(toks) != len(spec.split()):
        raise line_error(source, lineno, f"expected {len(spec.split())} columns '{spec}', got {len(toks)}")
    return toks


NAME_COMMENT = re.compile(r"^#\s*name\s*:\s*(.*)$", re.IGNORECASE)  # a bpseq or pair-list file's ``#Name:``


class CommentNotes:
    """The ``#Scores:`` and ``#Alternative:`` comments of a bpseq or pairs file
    (:func:`resm.structure.annotations.parse_comment`), given to its record at the end."""

    def __init__(self):
        self.scores: dict[str, float] = {}
        self.alts: list[tuple[str, str, dict[str, float], int]] = []

    def read(self, line: str, source: str, lineno: int) -> None:
        from .annotations import parse_comment

        try:
            kind, db, label, scores = parse_comment(line) or ("", "", "", {})
        except ValueError as e:
            raise line_error(source, lineno, str(e)) from None
        if kind == "scores":
            self.scores = scores
        elif kind == "alternative":
            self.alts.append((db, label, scores, lineno))

    def alternatives(self, seq: str, length: int, source: str) -> list[Structure]:
        out = []
        for db, label, scores, lineno in self.alts:
            if len(db) != length:
                raise line_error(source, lineno, f"#Alternative: structure length {len(db)} != record length {length}")
            try:
                out.append(Structure(label, seq, parse_dotbracket(db), scores))
            except StructureError as e:
                raise line_error(source, lineno, str(e)) from None
        return out


def check_writable(name: str, seq: str) -> None:
    """ValueError for a sequence with whitespace or a name with a newline, which no format can hold."""
    if any(c.isspace() for c in seq):
        raise ValueError(f"{name}: sequence contains whitespace")
    if "\n" in name:
        raise ValueError(f"{name!r}: name contains a newline")
