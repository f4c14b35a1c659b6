"""The RNA alphabet: nucleotide codes, the unknown base, the canonical pairs and the two
normalisers. Every other module takes them from here.

Codes: ``0..3`` are A C G U (:data:`NUCLEOTIDES`) and ``4`` (:data:`UNKNOWN_BASE`) is a base we
cannot name, written ``N`` (:data:`LETTERS` spells a code as its letter). A base never pairs
with the unknown base; :data:`CANONICAL_PAIRS` are the Watson-Crick and wobble pairs, and
:data:`PAIR_TYPE` numbers them on codes.

Two normalisers, both case-insensitive and both reading ``T`` as ``U``:

* **strict** (:func:`rna_codes`, :func:`normalise`), for sequences a user gives (FASTA records,
  tables, structure files): the IUPAC ambiguity codes (``R Y S W K M B D H V N``) and the
  one-letter codes of modified bases (inosine ``I``, pseudouridine ``P``, unknown ``X``) are
  the unknown base; any other symbol (a gap, a digit, whitespace, punctuation, a non-ASCII
  letter) and an empty sequence are a one-line :class:`MappingError` naming the record and
  the 1-based position of the first bad symbol;
* **lenient** (:func:`lenient_codes`, :func:`normalise_lenient`), for code that must take any
  string (decoding a pair map, the classical folders, the pair head's features): every
  symbol other than A C G U T is the unknown base, gaps, digits and non-ASCII letters
  included (one unknown base per character of a ``str``); it never raises, and an empty
  sequence gives an empty result.

A base named by several letters and digits (``PSU``, ``5MC``, ``H2U``: the residue names of
modified bases that 3D-annotation tools write in a ct or bpseq file's base column) is a modified
base, the unknown base, one position: :func:`residue_letter` spells it ``N``.

On a sequence the strict normaliser accepts, both give the same codes. Both work through
256-entry byte lookup tables, so a million nucleotides take milliseconds.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = [
    "NUCLEOTIDES",
    "UNKNOWN_BASE",
    "UNKNOWN_LETTER",
    "LETTERS",
    "IUPAC_AMBIGUOUS",
    "MODIFIED",
    "CANONICAL_PAIRS",
    "PAIR_TYPE",
    "MappingError",
    "rna_codes",
    "record_bytes",
    "normalise",
    "lenient_codes",
    "normalise_lenient",
    "letters_of",
    "residue_letter",
]

NUCLEOTIDES = "ACGU"  # codes 0..3
UNKNOWN_BASE = 4  # the code of a base we cannot name
UNKNOWN_LETTER = "N"
LETTERS = NUCLEOTIDES + UNKNOWN_LETTER  # code -> letter
# Letters that mean "some nucleotide we cannot name": IUPAC ambiguity codes and the common
# one-letter codes of modified bases (inosine I, pseudouridine P, unknown X).
IUPAC_AMBIGUOUS = "RYSWKMBDHVN"
MODIFIED = "IPX"
CANONICAL_PAIRS = ("AU", "UA", "GC", "CG", "GU", "UG")

# PAIR_TYPE[a, b]: the index in CANONICAL_PAIRS of the pair of codes (a, b), -1 when they do
# not pair (every pair with the unknown base included).
PAIR_TYPE = np.full((len(LETTERS), len(LETTERS)), -1, dtype=np.int64)
for _k, (_a, _b) in enumerate(CANONICAL_PAIRS):
    PAIR_TYPE[NUCLEOTIDES.index(_a), NUCLEOTIDES.index(_b)] = _k
PAIR_TYPE.setflags(write=False)

_INVALID = 255  # the strict table's mark of a symbol that is no nucleotide
_LETTER_BYTES = np.frombuffer(LETTERS.encode("ascii"), dtype=np.uint8)

Sequence = str | bytes | bytearray | memoryview


class MappingError(ValueError):
    """A sequence that cannot be read as RNA (or mapped); the message names the record and
    the position."""


def _lut(other: int, unknown: int) -> np.ndarray:
    """byte -> 0..3 for A C G U (T as U, either case), ``unknown`` for the unknown-base letters
    and ``other`` for every other byte."""
    lut = np.full(256, other, dtype=np.uint8)
    for c in IUPAC_AMBIGUOUS + MODIFIED:
        lut[ord(c)] = lut[ord(c.lower())] = unknown
    for i, n in enumerate(NUCLEOTIDES):
        lut[ord(n)] = lut[ord(n.lower())] = i
    lut[ord("T")] = lut[ord("t")] = NUCLEOTIDES.index("U")
    lut.setflags(write=False)
    return lut


_STRICT = _lut(_INVALID, UNKNOWN_BASE)
_LENIENT = _lut(UNKNOWN_BASE, UNKNOWN_BASE)


def as_bytes(seq: Sequence) -> np.ndarray:
    """The bytes of ``seq`` as a uint8 array; a ``str`` is encoded as ASCII with every other
    character replaced by one ``?``, so positions still count characters."""
    if isinstance(seq, str):
        seq = seq.encode("ascii", errors="replace")
    elif not isinstance(seq, (bytes, bytearray, memoryview, np.ndarray)):
        # bytes(3) is three NUL bytes and bytes([65, 67]) is b'AC': neither is a sequence given as text
        raise TypeError(f"cannot convert {type(seq).__name__!r} object to bytes")
    return np.frombuffer(bytes(seq), dtype=np.uint8)


def record_bytes(seq: Sequence, record: str = "<sequence>") -> np.ndarray:
    """:func:`as_bytes` of record ``record``'s sequence: a TypeError naming the record for one
    that is not text (None, a number), a MappingError for an empty one."""
    try:
        raw = as_bytes(seq)
    except TypeError:  # None, a number: "cannot convert 'NoneType' object to bytes" named nothing
        raise TypeError(f"record {record!r}: the sequence must be a str, got {type(seq).__name__}") from None
    if raw.size == 0:
        raise MappingError(f"record {record!r}: empty sequence")
    return raw


def describe_symbol(seq: Sequence, raw: np.ndarray, p: int) -> str:
    """The symbol at position ``p`` of ``seq`` in words (a non-ASCII letter of a str, which
    :func:`as_bytes` turned into '?', is named with its code point)."""
    if not isinstance(seq, str) and raw[p] > 127:
        return f"byte 0x{int(raw[p]):02x}"
    c = seq[p] if isinstance(seq, str) else chr(int(raw[p]))
    if c == "\ufffd":  # what a reader puts for bytes that are not UTF-8 text (a Latin-1 'é'), as ids say
        return "a byte that is not UTF-8 text (read as U+FFFD)"
    if ord(c) > 127:
        return f"symbol {c!r} (U+{ord(c):04X})"
    if c in "-.":
        return f"gap {c!r}"
    if c.isdigit():
        return f"digit {c!r}"
    if c.isspace():
        return "whitespace"
    return f"symbol {c!r}"


def rna_codes(seq: Sequence, record: str = "<sequence>") -> np.ndarray:
    """Strict: codes 0..4 (uint8) of an RNA/DNA sequence, by the rules of the module's
    docstring. Raises :class:`MappingError` naming ``record`` and the 1-based position of the
    first symbol that is no nucleotide, or saying the sequence is empty."""
    raw = record_bytes(seq, record)
    codes = _STRICT[raw]
    bad = np.flatnonzero(codes == _INVALID)
    if bad.size:
        p = int(bad[0])
        raise MappingError(f"record {record!r}: {describe_symbol(seq, raw, p)} at position {p + 1} is not a nucleotide")
    return codes


def normalise(seq: Sequence, record: str = "<sequence>") -> str:
    """Strict: the upper-case ACGU string of ``seq`` with unknown bases as N (errors as
    :func:`rna_codes`)."""
    return letters_of(rna_codes(seq, record))


def lenient_codes(seq: Sequence) -> np.ndarray:
    """Lenient: codes 0..4 (uint8), one per character; anything but A C G U T (either case) is
    the unknown base. Never raises."""
    return _LENIENT[as_bytes(seq)]


def normalise_lenient(seq: Sequence) -> str:
    """Lenient: the upper-case ACGU string of ``seq``, T as U and every other character N."""
    return letters_of(lenient_codes(seq))


def letters_of(codes: np.ndarray) -> str:
    """The ACGUN string spelt by codes 0..4."""
    return _LETTER_BYTES[np.asarray(codes)].tobytes().decode("ascii")


_RESIDUE_NAME = re.compile(r"(?=[0-9]*[A-Za-z])[A-Za-z0-9]{2,5}")  # a PDB chemical component id: PSU, 5MC, H2U


def residue_letter(name: str) -> str | None:
    """The one letter a structure file's base column stands for: a single symbol as it is
    (the normalisers judge it later, as every sequence's), a residue name of 2 to 5 ASCII letters
    and digits, one a letter (a modified base, ``PSU``, ``5MC``) the unknown base
    :data:`UNKNOWN_LETTER`; None for anything else."""
    if len(name) == 1:
        return name
    return UNKNOWN_LETTER if _RESIDUE_NAME.fullmatch(name) else None
