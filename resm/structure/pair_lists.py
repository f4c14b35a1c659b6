"""The pair-list format (``.pairs``): one record as a list of its pairs.

A pair-list file holds one record: ``#`` comments, ``#Name:``, ``#Length:`` and ``#Sequence:``
among them (``#Scores:`` and ``#Alternative:`` as in bpseq: :class:`resm.structure.record.CommentNotes`),
then one ``i j`` line per pair (1-based; written i < j, a pair given ``j i`` is read as ``i j``).
A base may sit in several pairs.

* :func:`parse_pair_lines` is the format's one reader, giving a :class:`PairList` with every pair
  kept; :func:`iter_pairs` reads its one-partner view (:class:`~resm.structure.record.Structure`),
  in which a base in two pairs is an error. :func:`pair_list_text` is the format's one writer.
* :func:`pair_of` reads one pair written ``i<sep>j``: a pair list's lines and a pair table's
  ``i:j`` (:mod:`resm.structure.pairsets`).

Files are read and written through :mod:`resm.structure.io` (``read_structures``,
``read_pair_list``, ``write_structures``); records with base multiplets are
:mod:`resm.structure.pairsets`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from ..fasta import checked_name
from .partners import StructureError, pairs_from_list
from .record import NAME_COMMENT, CommentNotes, Structure, check_writable, columns, line_error

__all__ = ["PairList", "pair_of", "parse_pair_lines", "iter_pairs", "pair_list_text"]


_LEN_RE = re.compile(r"^#\s*length\s*:(.*)$", re.IGNORECASE)
_SEQ_RE = re.compile(r"^#\s*sequence\s*:(.*)$", re.IGNORECASE)
_DIGITS = re.compile(r"[0-9]+")  # str.isdigit also passes superscripts and other scripts' digits


def pair_of(written: str, sep: str, where: str, length: int | None = None) -> tuple[int, int]:
    """0-based ``(i, j)``, i < j, of a pair written ``i<sep>j`` or ``j<sep>i`` (1-based, in digits 0-9,
    in 1..length when given) in a pair list or a pair table, as 3D-derived tables write either
    order; else StructureError ``{where}: pair '<written>' ...``."""
    a, _, b = written.partition(sep)
    if not (_DIGITS.fullmatch(a) and _DIGITS.fullmatch(b)):
        raise StructureError(f"{where}: pair {written!r} is not 'i{sep}j' with positive integers")
    i, j = int(a), int(b)
    if i == j:
        raise StructureError(f"{where}: pair {written!r} pairs base {i} with itself")
    if length is not None and (min(i, j) < 1 or max(i, j) > length):
        raise StructureError(f"{where}: pair {written!r} lies outside the sequence (1..{length})")
    return min(i, j) - 1, max(i, j) - 1  # was refused, "needs i < j"


@dataclass
class PairList:
    """A pair-list file (:func:`parse_pair_lines`): pairs ``ij`` (0-based, i < j, each once, in file
    order, a base maybe in several), the ``lines`` they are on, and the comments' notes."""

    name: str
    seq: str
    length: int
    ij: list[tuple[int, int]]
    lines: list[int]
    scores: dict[str, float] = field(default_factory=dict)
    alternatives: list[Structure] = field(default_factory=list)

    def structure(self, source: str) -> Structure:
        """The one-partner view: a base in a second pair is an error naming that pair's line."""
        seen: dict[int, int] = {}
        for (i, j), ln in zip(self.ij, self.lines):
            for b in (i + 1, j + 1):
                if b in seen:
                    raise line_error(source, ln, f"base {b} already paired on line {seen[b]}")
                seen[b] = ln
        return Structure(self.name, self.seq, pairs_from_list(self.ij, self.length), self.scores, self.alternatives)


def parse_pair_lines(
    lines: Iterable[str], source: str = "<pairs>", name: str = "", length: int | None = None
) -> PairList:
    """The :class:`PairList` of a pair-list file (``i j`` rows, 1-based, either order, ``#`` comments), the
    format's one reader. Length: ``#Length:``, else ``length``, else ``#Sequence:``'s, else the
    largest index. A malformed line, a pair outside the length, a self-pair or a pair written
    twice (``1 5`` and ``5 1`` included) is a StructureError naming the line."""
    seq, seq_line, file_len = "", 0, None
    first: dict[tuple[int, int], tuple[str, int]] = {}  # pair -> (as written, line)
    notes = CommentNotes()
    said: dict[str, tuple[str, int]] = {}  # header -> (its value, line)

    def once(key: str, value: str, lineno: int) -> None:
        # two records one after the other (cat a.pairs b.pairs) were read as one: the second's
        # name and sequence with the pairs of both
        if key in said and said[key][0] != value:
            raise line_error(
                source,
                lineno,
                f"a second #{key}: line, {value[:30]!r} (the first, on line {said[key][1]}: "
                f"{said[key][0][:30]!r}); a pair list holds one record (one file per record)",
            )
        said.setdefault(key, (value, lineno))

    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if line.startswith("#"):
            if m := NAME_COMMENT.match(line):
                if m.group(1).strip():  # an empty one keeps the file's name
                    name = checked_name(m.group(1).strip(), f"{source} line {lineno}", StructureError)
                    once("Name", name, lineno)
            elif m := _LEN_RE.match(line):
                if not _DIGITS.fullmatch(tok := m.group(1).strip()):
                    raise line_error(source, lineno, f"length {tok!r} is not a whole number")
                file_len = int(tok)
                once("Length", tok, lineno)
            elif m := _SEQ_RE.match(line):
                seq, seq_line = m.group(1).strip(), lineno
                once("Sequence", seq, lineno)
                if len(seq.split()) > 1:
                    raise line_error(source, lineno, f"sequence {seq[:30]!r} holds whitespace")
            else:
                notes.read(line, source, lineno)
        elif line:
            written = " ".join(columns(line, "i j", source, lineno))
            pair = pair_of(written, " ", f"{source} line {lineno}")
            if pair in first:  # once each way ('1 5', then '5 1') is twice too
                was, ln = first[pair]
                said_as = "" if was == written else f" as {was!r}"
                raise line_error(source, lineno, f"pair {written!r} written twice (first on line {ln}{said_as})")
            first[pair] = (written, lineno)
    L = file_len if file_len is not None else length
    if L is None:
        L = len(seq) if seq else max((j + 1 for _, j in first), default=0)
    if seq and len(seq) != L:
        raise line_error(source, seq_line, f"sequence length {len(seq)} != length {L}")
    for (i, j), (written, ln) in first.items():
        if i < 0 or j >= L:
            raise line_error(source, ln, f"pair {written!r} lies outside the sequence (1..{L})")
    lines_of = [ln for _, ln in first.values()]
    return PairList(name, seq, L, list(first), lines_of, notes.scores, notes.alternatives(seq, L, source))


def iter_pairs(
    lines: Iterable[str], source: str = "<pairs>", name: str = "", length: int | None = None
) -> Iterator[Structure]:
    """The record of a pair-list file (:func:`parse_pair_lines`) as a :class:`Structure`, one
    partner per base: a base in two pairs is an error naming the file and the second's line."""
    yield parse_pair_lines(lines, source, name, length).structure(source)


def pair_list_text(
    name: str, seq: str, length: int, ij: Iterable[tuple[int, int]], comments: Sequence[str] = ()
) -> str:
    """The text of one pair-list record (0-based pairs ``ij``, i < j, written 1-based in the
    order given; ``comments``: whole ``#`` lines after the header), the one writer of the
    format; ValueError for a name with a newline or a sequence with whitespace."""
    check_writable(name, seq)
    rows = [f"#Name: {name}\n"] if name else []
    rows.append(f"#Length: {length}\n")
    if seq:
        rows.append(f"#Sequence: {seq}\n")
    rows += comments
    rows += [f"{i + 1} {j + 1}\n" for i, j in ij]
    return "".join(rows)
