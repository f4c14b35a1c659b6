"""Notes after a structure: the scores ``resm fold`` prints where RNAfold prints the energy,
and labelled lines for other folders' structures of the same sequence.

A note is one bracketed group after the dot-bracket, separated by a space (a tab is read as
one: :func:`structure_and_note`)::

    (((((((..((((........))))...)))))))... [eF1=0.934 MFE=-21.60]
    (((((((..((((........))))...)))))))... [RNAfold MFE=-21.60]

that is ``[`` an optional label (a word without ``=``, naming the folder whose structure the
line is) and ``key=value`` scores (numbers) ``]``. :func:`format_note` writes one and
:func:`parse_note` reads it back (the values to the printed precision); RNAfold's own energy,
``( -21.60)``, reads as ``{"energy": -21.6}``. Readers that take a structure line's first
field (as for RNAfold's output) see the dot-bracket alone.

:func:`rnafold_extra_line` recognises the lines ``RNAfold -p`` prints after its MFE line (the
ensemble ``[...]``, centroid and MEA ``{...}`` structures and the ``frequency of mfe
structure`` line), so a reader can skip them; :func:`bprna_headers` reads the ``#Name:``
comments with which bpRNA's dbn files open a record as the header ``>name``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from .partners import StructureError

__all__ = [
    "ENERGY_KEYS",
    "format_note",
    "parse_note",
    "noted",
    "comment_lines",
    "parse_comment",
    "structure_and_note",
    "rnafold_extra_line",
    "bprna_headers",
]

ENERGY_KEYS = ("MFE", "energy")  # kcal/mol: two decimals, as RNAfold prints them
_LABEL = re.compile(r"^[A-Za-z][\w.+-]*$")
_KEY = re.compile(r"^[A-Za-z]\w*$")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|nan|[-+]?inf"
_ENERGY = re.compile(rf"^\(\s*({_NUMBER})\s*\)$")
_PAIR = re.compile(rf"^([A-Za-z]\w*)=({_NUMBER})$")


def _value(key: str, v: float) -> str:
    return f"{v:.2f}" if key in ENERGY_KEYS else f"{v:.3f}"


def format_note(scores: dict[str, float] | None = None, label: str = "") -> str:
    """``[label k=v ...]`` ("" when there is neither a label nor a score)."""
    scores = scores or {}
    if label and not _LABEL.match(label):
        raise ValueError(f"note label {label!r} must be one word (letters, digits, . _ + -) and start with a letter")
    for k in scores:
        if not _KEY.match(k):
            raise ValueError(f"score name {k!r} must be one word of letters, digits and _")
    parts = ([label] if label else []) + [f"{k}={_value(k, float(v))}" for k, v in scores.items()]
    return f"[{' '.join(parts)}]" if parts else ""


def parse_note(text: str) -> tuple[str, dict[str, float]] | None:
    """``(label, scores)`` of a note written by :func:`format_note`, or of RNAfold's energy
    ``( -1.20)`` (``("", {"energy": -1.2})``); None when ``text`` is neither."""
    text = text.strip()
    m = _ENERGY.match(text)
    if m:
        return "", {"energy": float(m.group(1))}
    if not (text.startswith("[") and text.endswith("]")):
        return None
    toks = text[1:-1].split()
    label = ""
    if toks and "=" not in toks[0]:
        if not _LABEL.match(toks[0]):
            return None
        label, toks = toks[0], toks[1:]
    scores: dict[str, float] = {}
    for t in toks:
        m = _PAIR.match(t)
        if m is None:
            return None
        scores[m.group(1)] = float(m.group(2))
    return (label, scores) if label or scores else None


def noted(db: str, scores: dict[str, float] | None, label: str = "") -> str:
    """A structure line: the dot-bracket ``db`` and, when there is one, its note."""
    note = format_note(scores, label)
    return f"{db} {note}" if note else db


_SCORES_RE = re.compile(r"^#\s*scores\s*:\s*(.*)$", re.IGNORECASE)
_ALT_RE = re.compile(r"^#\s*alternative\s*:\s*(\S+)\s+(.*)$", re.IGNORECASE)


def comment_lines(scores: dict[str, float] | None, alternatives: list[tuple[str, str, dict[str, float]]]) -> list[str]:
    """The comment lines of a bpseq or pairs file that carry the notes: ``#Scores: k=v ...``
    and, per ``(dot-bracket, label, scores)`` alternative, ``#Alternative: <structure line>``."""
    rows = [f"#Scores: {format_note(scores)[1:-1]}\n"] if scores else []
    return rows + [f"#Alternative: {noted(db, sc, label)}\n" for db, label, sc in alternatives]


def parse_comment(line: str) -> tuple[str, str, str, dict[str, float]] | None:
    """``("scores", "", "", scores)`` or ``("alternative", dot-bracket, label, scores)`` of a
    comment written by :func:`comment_lines`; None for any other comment; ValueError (one
    line) for one of those two that is malformed."""
    if m := _SCORES_RE.match(line):
        note = parse_note(f"[{m.group(1)}]")
        if note is None or note[0]:
            raise ValueError(f"#Scores: expected 'name=number' items, got {m.group(1)[:40]!r}")
        return "scores", "", "", note[1]
    if m := _ALT_RE.match(line):
        note = parse_note(m.group(2))
        if note is None or not note[0]:
            raise ValueError(f"#Alternative: expected '<dot-bracket> [label ...]', got {line[:50]!r}")
        return "alternative", m.group(1), note[0], note[1]
    return None


def structure_and_note(line: str) -> tuple[str, str]:
    """A dbn structure line split where its dot-bracket ends, at the first whitespace (a space,
    as RNAfold writes its ``(-3.20)``, or a tab), into the dot-bracket and the note after it
    (stripped; "" when there is none): the one rule of every structure line a dbn reader reads."""
    parts = line.split(None, 1)
    return (parts[0] if parts else ""), (parts[1].strip() if len(parts) > 1 else "")


def rnafold_extra_line(line: str, length: int) -> bool:
    """Whether ``line`` is one of the lines ``RNAfold -p`` prints after a record's MFE line: a
    structure of ``length`` characters followed by ``[...]`` or ``{...}``, or the ``frequency
    of mfe structure in ensemble`` line."""
    s = line.strip()
    if s.startswith("frequency of mfe structure"):
        return True
    head, rest = structure_and_note(s)
    return len(head) == length and len(rest) > 1 and (rest[0], rest[-1]) in (("[", "]"), ("{", "}"))


_BPRNA_NAME = re.compile(r"^#\s*name\s*:\s*(.*)$", re.IGNORECASE)
_BPRNA_LENGTH = re.compile(r"^#\s*length\s*:\s*([0-9]+)\s*$", re.IGNORECASE)


def bprna_headers(lines: Iterable[str], source: str) -> Iterator[str]:
    """The lines of a dbn file with bpRNA's record headers (``#Name: x``, ``#Length: n``,
    ``#PageNumber: k`` comments before the sequence and dot-bracket lines, where others write
    ``>x``) as a reader of ``>name`` records takes them: a ``#Name:`` line as ``>x``, every
    other ``#`` comment as a blank line (line numbers kept). A ``#Length:`` that is not the
    length of the sequence after it is a StructureError naming its line."""
    length: tuple[int, int] | None = None  # the last #Length: and its line
    for lineno, raw in enumerate(lines, 1):
        s = raw.strip()
        if s.startswith("#"):
            if m := _BPRNA_NAME.match(s):
                yield ">" + m.group(1)
                continue
            if m := _BPRNA_LENGTH.match(s):
                length = (int(m.group(1)), lineno)
            yield ""
            continue
        if length is not None and s and not s.startswith(">"):  # the record's sequence
            if len(s) != length[0]:
                raise StructureError(
                    f"{source} line {length[1]}: #Length: {length[0]}, but the sequence on line {lineno} "
                    f"has {len(s)} nt"
                )
            length = None
        yield raw
