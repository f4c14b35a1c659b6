"""RNA secondary structure files: their formats, read and written.

A record is a :class:`~resm.structure.record.Structure` (name, sequence, partner array, scores,
alternatives); its pairs are a partner array (``pairs[i]``: the 0-based partner of base i, or
-1), checked and written in dot-bracket by :mod:`resm.structure.partners`. The names of both are
handed on from here.

Formats (all indices in files are 1-based):

* dot-bracket: see :mod:`resm.structure.partners`.
* ``.dbn``/``.db``: records of three lines ``>name``, sequence, dot-bracket (bpRNA's ``#Name:`` comments for ``>name``).
* ``.bpseq``: one record, lines ``i base j`` (j = 0 unpaired), ``#`` comments; ``#Name: x`` names it
  (the header lines of the Comparative RNA Web site's files are passed over).
* ``.ct``: one or more blocks, header ``N title`` then N rows ``i base i-1 i+1 j i_hist`` (j = 0
  unpaired). Columns 3, 4 and 6 must be integers but are not otherwise checked (real files number them freely).
* In both, a base given as a residue name (a modified base as 3D-annotation tools write it, ``PSU``,
  ``5MC``) is the unknown base ``N`` at its position (:func:`resm.nucleotides.residue_letter`).
* ``.pairs``: lines ``i j`` with i < j, ``#`` comments; ``#Name:``, ``#Length:``, ``#Sequence:`` carry those.
  The format's reader and writer are :mod:`resm.structure.pair_lists`: a base may sit in several
  pairs (:func:`~resm.structure.pair_lists.parse_pair_lines`, :func:`read_pair_list`), which the
  one-partner view (:func:`~resm.structure.pair_lists.iter_pairs`, :func:`read_structures`) refuses.

Files may be gzip-compressed (``x.ct.gz``), told by their content as every input
(:func:`resm.fasta.open_text`). Every malformed file (a damaged .gz, a control character in a
record's name included) raises :class:`StructureError` naming the file and the 1-based line.

Pair probabilities (dense maps and sparse ``(i, j, p)`` arrays) are :mod:`resm.structure.pair_probs`.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..config import UsageError
from ..fasta import checked_name, csv_problem, gz_name_note, open_text
from ..nucleotides import residue_letter
from ..utils.jsontext import load_json
from .pair_lists import PairList, iter_pairs, pair_list_text, parse_pair_lines
from .partners import (
    StructureError,
    check_pairs,
    matrix_to_pairs,
    pair_list,
    pairs_from_list,
    pairs_to_matrix,
    parse_dotbracket,
    to_dotbracket,
)
from .record import NAME_COMMENT, CommentNotes, Structure, check_writable, columns, line_error

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
    "format_structures",
    "read_structures",
    "read_structure",
    "read_pair_list",
    "write_structures",
    "read_archiveii_csv",
    "FORMATS",
]


FORMATS = ("dbn", "bpseq", "ct", "pairs")
_EXT_TO_FMT = {".dbn": "dbn", ".db": "dbn", ".dot": "dbn", ".bpseq": "bpseq", ".ct": "ct", ".pairs": "pairs"}


class FoldError(ValueError):
    """A user error of the fold and probe commands (reported in one line by the CLI)."""


class FoldUsageError(FoldError, UsageError):
    """Fold options that do not go together, whatever the files (``--dpi`` without ``--plot``,
    ``--scheme`` without ``--probe``): a FoldError to the Python API, a usage error (exit
    code 2) to the command line (:class:`resm.config.UsageError`)."""


# ---------------------------------------------------------------- text parsers


_INTEGER = re.compile(r"[+-]?[0-9]+")


def _int(tok: str, source: str, lineno: int, what: str) -> int:
    """An integer column written in the digits 0-9 (``int`` alone would also take ``1_0`` as 10
    and other scripts' digits)."""
    if not _INTEGER.fullmatch(tok.strip()):
        raise line_error(source, lineno, f"{what} {tok!r} is not an integer")
    return int(tok)


class _BaseRows:
    """The numbered base rows of one bpseq or ct record: each base, its 1-based partner
    (0 = unpaired) and the line it stands on."""

    def __init__(self) -> None:
        self.bases: list[str] = []
        self.partners: list[int] = []
        self.linenos: list[int] = []

    def __len__(self) -> int:
        return len(self.partners)

    def add(self, i: int, base: str, j: int, source: str, lineno: int) -> None:
        """Row ``i`` (the next index, else one line naming the file and line): ``base`` paired
        with ``j``."""
        if i == len(self.partners) and i:  # a base listed twice, as for a base triple: was "index 1, expected 2"
            why = "a base in two pairs needs a pair list (.pairs), as bpseq and ct give each base one partner"
            raise line_error(source, lineno, f"base {i} listed again (first on line {self.linenos[-1]}): {why}")
        if i != len(self.partners) + 1:
            raise line_error(source, lineno, f"index {i}, expected {len(self.partners) + 1}")
        self.bases.append(base)
        self.partners.append(j)
        self.linenos.append(lineno)

    def structure(self, source: str, name: str, header: str = "") -> Structure:
        """The record's Structure: bases of one letter, or a residue name read as N
        (:func:`resm.nucleotides.residue_letter`), partners in range and each other's (else one
        line naming the file and the base's line; a partner out of range ends with ``header``,
        where the length came from)."""
        partners, linenos = self.partners, self.linenos
        letters = []
        for b, ln in zip(self.bases, linenos):
            if (letter := residue_letter(b)) is None:  # a residue name (PSU, 5MC) was refused too
                why = "is neither one letter nor a residue name (2 to 5 letters and digits, as PSU or 5MC)"
                raise line_error(source, ln, f"base {b!r} {why}")
            letters.append(letter)
        seq = "".join(letters)
        L = len(partners)
        for k, j in enumerate(partners):
            i = k + 1
            if j == 0:
                continue
            if j < 0 or j > L:
                raise line_error(source, linenos[k], f"partner {j} of base {i} out of range 1..{L}{header}")
            if j == i:
                raise line_error(source, linenos[k], f"base {i} paired with itself")
            back = partners[j - 1]
            if back != i:
                raise line_error(source, linenos[k], f"partner {j} of base {i} says {back}")
        p = np.asarray(partners, dtype=np.int64) - 1
        return Structure(name, seq, p)


def _dbn_structure(line: str, seq: str, source: str, lineno: int, required: bool = False):
    """``(pairs, (label, scores))`` of a structure line and its note; for a line that is no
    such line (whitespace then no note, a wrong length; no note where not ``required``): an error when
    ``required``, else None."""
    from .annotations import parse_note, structure_and_note

    db, rest = structure_and_note(line)  # was split at a space only: a tab's note was read as dot-bracket
    note = parse_note(rest) if rest else (("", {}) if required else None)
    problem = None
    if note is None:  # a tab was "structure length 21 != 16", the note read as dot-bracket
        problem = f"dot-bracket line contains whitespace, then {rest[:30]!r}, which is no note ('(-1.20)', '[k=v ...]')"
    if problem is None and len(db) != len(seq):
        problem = f"structure length {len(db)} != sequence length {len(seq)}"
    try:
        if problem is None:
            return parse_dotbracket(db), note
    except StructureError as e:
        problem = str(e)
    if required:
        if db.isalpha() and not set(db.upper()) - set("ACGUTN"):  # a sequence wrapped over two lines
            problem = "expected the dot-bracket, got nucleotide letters (a dbn record holds its sequence on one line)"
        raise line_error(source, lineno, problem)
    return None


def iter_dbn(lines: Iterable[str], source: str = "<dbn>") -> Iterator[Structure]:
    """Records from ``>name`` / sequence / dot-bracket lines (blank lines skipped; bpRNA's
    ``#Name:`` comments open a record as ``>name``: :func:`~.annotations.bprna_headers`).

    A note after the dot-bracket gives ``scores`` (``[eF1=0.93]``; RNAfold's ``(-12.30)`` as
    ``energy``); labelled lines after it (``<dot-bracket> [RNAfold MFE=-21.60]``) are read into
    ``alternatives`` and ``RNAfold -p``'s further lines are skipped
    (:mod:`resm.structure.annotations`)."""
    from .annotations import bprna_headers, rnafold_extra_line

    lines = bprna_headers(lines, source)
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
                raise line_error(source, lineno, f"expected '>name' header, got {line[:30]!r}")
            if last is not None:
                yield last
                last = None
            name = checked_name(line[1:].strip(), f"{source} line {lineno}", StructureError)
            if not name:  # as a FASTA header without an id: it would be written back as a bare '>'
                raise line_error(source, lineno, "header has no id")
            state = 1
        elif state == 1:
            if line.startswith(">"):
                raise line_error(source, lineno, f"record {name!r} has no sequence")
            seq = line
            state = 2
        else:
            if line.startswith(">"):  # was "structure length 2 != sequence length 9", the header read as one
                raise line_error(
                    source, lineno, f"record {name!r} holds one line where a sequence and a dot-bracket are due"
                )
            p, (_, scores) = _dbn_structure(line, seq, source, lineno, required=True)
            last = Structure(name, seq, p, scores)
            state = 0
    if last is not None:
        yield last
    if state == 1:
        raise line_error(source, lineno, f"record {name!r} ends without sequence and structure")
    if state == 2:
        raise line_error(source, lineno, f"record {name!r} ends without a structure line")


_CRW_HEADER = re.compile(r"^(Filename|Organism|Accession Number|Citation and related information)\b", re.I)


def iter_bpseq(lines: Iterable[str], source: str = "<bpseq>", name: str = "") -> Iterator[Structure]:
    """The single record of a bpseq file (``i base j`` rows; the header lines of the Comparative
    RNA Web site's files, ``Filename:``, ``Organism:``, ... before them, are passed over)."""
    rows = _BaseRows()
    notes = CommentNotes()
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if not rows and _CRW_HEADER.match(line):  # the Comparative RNA Web site's header lines
            continue
        if line.startswith("#"):
            m = NAME_COMMENT.match(line)
            if m and not rows and m.group(1).strip():  # an empty one keeps the file's name
                name = checked_name(m.group(1).strip(), f"{source} line {lineno}", StructureError)
            notes.read(line, source, lineno)
            continue
        toks = columns(line, "i base j", source, lineno)
        i = _int(toks[0], source, lineno, "index")
        j = _int(toks[2], source, lineno, "partner")
        rows.add(i, toks[1], j, source, lineno)
    if not rows:
        raise line_error(source, 1, "no bases")
    rec = rows.structure(source, name)
    rec.scores, rec.alternatives = notes.scores, notes.alternatives(rec.seq, len(rec), source)
    yield rec


CT_ENERGY = re.compile(r"^(ENERGY|dG)\s*=\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?(\s+|$)", re.I)


def _continues(line: str, n: int) -> bool:
    """Whether ``line``, where a ct header is due, is instead the row of base ``n + 1`` of the
    block of ``n`` bases just read (``n+1 base n n+2 j n+1``): a header that gave too few bases."""
    toks = line.split()
    return (
        len(toks) == 6
        and all(_INTEGER.fullmatch(t) for t in toks[:1] + toks[2:])
        and int(toks[0]) == n + 1
        and int(toks[2]) == n
    )


def iter_ct(lines: Iterable[str], source: str = "<ct>", name: str = "") -> Iterator[Structure]:
    """Records of a (multi-record) ct file.

    The name is the header title (a leading ``ENERGY = <number>`` or ``dG = <number>``, other
    tools' energy, is dropped: :data:`CT_ENERGY`), else ``name`` (numbered ``name_2``,
    ``name_3``... after the first record).
    """
    n_rec = 0
    need = 0  # rows still expected in the current block
    lineno = header_line = 0
    rows = _BaseRows()
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if need == 0:
            if n_rec and _continues(line, len(rows)):  # the rows go on past the length the header gave
                raise line_error(
                    source,
                    lineno,
                    f"row {len(rows) + 1} continues the ct block starting line {header_line}, whose header "
                    f"gives {len(rows)} bases",
                )
            toks = line.split(None, 1)
            n = _int(toks[0], source, lineno, "ct header length")
            if n < 1:
                raise line_error(source, lineno, f"ct header length {n} must be positive")
            title = CT_ENERGY.sub("", toks[1].strip()) if len(toks) > 1 else ""
            title = checked_name(title, f"{source} line {lineno}", StructureError)
            n_rec += 1
            rec_name = title or (name if n_rec == 1 else f"{name}_{n_rec}")
            need, header_line, rows = n, lineno, _BaseRows()
            continue
        toks = columns(line, "i base i-1 i+1 j i", source, lineno)
        i = _int(toks[0], source, lineno, "index")
        for k in (2, 3, 5):
            _int(toks[k], source, lineno, f"column {k + 1}")
        j = _int(toks[4], source, lineno, "partner")
        rows.add(i, toks[1], j, source, lineno)
        need -= 1
        if need == 0:
            yield rows.structure(source, rec_name, f" (the ct header on line {header_line} gives {n} bases)")
    if need:
        raise line_error(
            source, lineno, f"ct block starting line {header_line} has {len(rows)} of {len(rows) + need} rows"
        )
    if n_rec == 0:
        raise line_error(source, max(lineno, 1), "no ct records")


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
    return pair_list_text(rec.name, rec.seq, len(rec), pair_list(rec.pairs), _comment_notes(rec))


_FORMATTERS = {"dbn": _fmt_dbn, "bpseq": _fmt_bpseq, "ct": _fmt_ct, "pairs": _fmt_pairs}


def _check_dotbracket(rec: Structure, fmt: str) -> None:
    """What ``fmt`` writes in dot-bracket (dbn: the record and its alternatives; bpseq and pairs:
    the alternatives) must fit its 30 levels of brackets: else a StructureError naming the
    record, the structure and the formats that hold any pseudoknot."""
    from .partners import MAX_LEVELS

    main = "ct, bpseq and pairs hold any pseudoknot"
    todo = ([("its structure", rec.pairs, main)] if fmt == "dbn" else []) + [
        (f"its {a.name} structure", a.pairs, "every format writes an alternative in dot-bracket")
        for a in rec.alternatives
    ]
    for what, pairs, hold in todo:
        try:
            to_dotbracket(pairs)
        except StructureError:
            raise StructureError(
                f"record {rec.name!r}: {what} needs more than {MAX_LEVELS} pseudoknot levels, more than "
                f"dot-bracket has brackets for ([] {{}} <> Aa..Zz); {hold}"
            ) from None


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
        check_writable(r.name, r.seq)
        if any(len(a) != len(r) or not a.name for a in r.alternatives):
            raise ValueError(f"{r.name}: an alternative structure needs a label and the record's length")
        if r.alternatives and fmt == "ct":
            raise ValueError(f"{r.name}: ct has no room for a second structure per record (dbn, bpseq and pairs have)")
        if fmt == "ct" and CT_ENERGY.match(r.name.strip()):
            raise ValueError(f"{r.name!r}: ct would read it back as an energy then a name (dbn, bpseq, pairs keep it)")
        _check_dotbracket(r, fmt)
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
        raise ValueError(f"{path}: its extension names no structure format ({', '.join(FORMATS)})")
    return _EXT_TO_FMT[ext]


def file_stem(path: Path) -> str:
    """A file's name without its extension (and without ``.gz``): the record name of a
    one-record file."""
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    return os.path.splitext(name)[0]


def read_structures(path: str | os.PathLike, fmt: str | None = None) -> Iterator[Structure]:
    """Yield the records of a structure file (format from extension unless given: a file whose
    extension names none is refused naming the extensions that do, since the commands reading
    structures without a format option, ``resm probe`` among them, have no other way to say it)."""
    path = Path(path)
    if fmt is None:
        try:
            fmt = infer_format(path)
        except ValueError as e:
            raise ValueError(f"{e}; give it one of the extensions {', '.join(_EXT_TO_FMT)} (.gz ok)") from None
    if fmt not in _ITERS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    kwargs = {} if fmt == "dbn" else {"name": file_stem(path)}
    with _opened(path) as fh:
        yield from _ITERS[fmt](fh, source=str(path), **kwargs)


@contextlib.contextmanager
def _opened(path: Path) -> Iterator:
    """A structure file opened as every input (gzip or not by its content: a plain file named
    .gz is read as text); a damaged gzip is a StructureError naming the file, and a
    StructureError raised inside notes a .gz name that is not gzip."""
    try:
        with open_text(path) as fh:
            yield fh
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:  # a damaged gzip, or one cut off
        raise StructureError(f"{path}: cannot read ({e})") from None
    except StructureError as e:
        if note := gz_name_note(path):
            raise StructureError(f"{e}{note}") from None
        raise


def read_pair_list(path: str | os.PathLike) -> PairList:
    """The record of a pair-list file with every pair kept, a base in several pairs included
    (:func:`parse_pair_lines`; named by ``#Name:``, else the file's stem)."""
    path = Path(path)
    with _opened(path) as fh:
        return parse_pair_lines(fh, str(path), file_stem(path))


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
    try:  # opened as every input; bytes that are not UTF-8 text are named with their line below
        fh = open_text(path, newline="")
    except OSError as e:
        raise StructureError(f"{path}: cannot read ({e.strerror or e})") from None
    with fh:
        reader = csv.DictReader(fh)
        ln = 1  # the line of the last row read
        try:
            missing = {"id", "sequence", "base_pairs"} - set(reader.fieldnames or [])
        except csv.Error as e:
            raise line_error(src, 1, csv_problem(e)) from None
        except (OSError, EOFError, zlib.error) as e:  # a gzip cut off or damaged
            raise StructureError(f"{path}: cannot read ({e})") from None
        if missing:
            raise line_error(src, 1, f"missing columns {sorted(missing)}")
        while True:
            try:
                row = next(reader, None)
            except csv.Error as e:
                raise line_error(src, ln + 1, csv_problem(e)) from None
            except (OSError, EOFError, zlib.error) as e:  # a gzip cut off or damaged
                raise StructureError(f"{path}: cannot read ({e})") from None
            if row is None:
                break
            ln = reader.line_num
            seq = row["sequence"] or ""
            if row.get("len") not in (None, "") and _int(row["len"], src, ln, "len") != len(seq):
                raise line_error(src, ln, f"len {row['len']} != sequence length {len(seq)}")
            try:
                plist = load_json(row["base_pairs"])
            except (json.JSONDecodeError, TypeError) as e:
                raise line_error(src, ln, f"base_pairs is not a JSON list: {e}") from None
            try:
                p = pairs_from_list(plist, len(seq), one_based=True)
            except (StructureError, ValueError) as e:
                raise line_error(src, ln, f"base_pairs: {e}") from None
            yield Structure(checked_name(row["id"] or "", f"{src} line {ln}", StructureError), seq, p)
