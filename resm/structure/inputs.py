"""What ``resm fold`` reads, the way RNAfold users hand it over.

:func:`read_sequences` returns the ``(id, sequence)`` records of

* FASTA, from a file (plain or gzip, streamed) or from ``-`` / a pipe (standard input is read
  once);
* bare sequences, one per line, with no header (named ``seq_1``, ``seq_2``, ... in order);
  lines starting with ``;`` are comments here too, as in FASTA;
* structure files, ``.dbn`` (also RNAfold's output: ``>name``, sequence, dot-bracket with an
  optional energy), ``.ct`` (several records allowed), ``.bpseq`` and pair lists (``.pairs``,
  as ``resm fold --format pairs`` writes them, with their ``#Sequence:`` line; a base may sit in
  several pairs), and pair tables (``.tsv``: ``id``, ``sequence``, ``pairs`` columns, as
  ``ss/pdb/TR1.tsv``): their sequences are folded, their structures ignored (give the file as
  ``--reference`` to score against them).

The format follows the file's extension when it names one, else the text: ``>`` headers make
FASTA, or dot-bracket records when a record holds a line of brackets and dots (alone, or with
RNAfold's energy or resm's own ``[eF1=...]`` note after it, as ``resm fold`` writes); ``N title``
followed by six columns is ct, ``i base j`` rows are bpseq, and after ``#`` comments the first
row decides between bpseq (``i base j``) and a pair list (``i j``), or a sequence followed by a
dot-bracket makes bpRNA's dbn (``#Name:`` comments for ``>name``); a pair table's header
line makes a pair table; anything else is bare sequences. Ids are cut at the first whitespace
(space or tab) and must be unique.
Every error names the source and the line.
"""

from __future__ import annotations

import gzip
import itertools
import os
import re
import sys
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from ..fasta import (
    FastaError,
    compression_problem,
    gz_name_note,
    open_text,
    parse_fasta,
    record_id,
    refuse_device,
    text_encoding,
)
from ..utils.paths import no_such
from .annotations import parse_note
from .io import StructureError, file_stem, infer_format, iter_bpseq, iter_ct, iter_dbn
from .pair_lists import parse_pair_lines
from .pairsets import is_pair_table_header, pair_table_named, parse_pair_table

__all__ = ["STDIN", "INPUT_FORMATS", "read_sequences", "sniff_format", "source_name"]

STDIN = "-"
_SNIFF_LINES = 2000  # the text that decides the format of a file without a telling extension
INPUT_FORMATS = ("fasta", "plain", "dbn", "ct", "bpseq", "pairs", "tsv")
# a dot-bracket (pseudoknot letters allowed beside at least one bracket), or dots alone
_DOTBRACKET = re.compile(r"^(?:[().\[\]{}<>,:_~A-Za-z-]*[()\[\]{}<>][().\[\]{}<>,:_~A-Za-z-]*|[.]+)$")


def _structure_line(line: str) -> bool:
    """Whether ``line`` is a record's structure line: a dot-bracket alone, or followed by
    RNAfold's energy ``( -1.20)`` or resm's own note ``[eF1=0.934]`` /
    ``[RNAfold MFE=-21.60]`` (:func:`resm.structure.annotations.parse_note`)."""
    head, *rest = line.split(None, 1)
    return bool(_DOTBRACKET.match(head)) and (not rest or parse_note(rest[0]) is not None)


def source_name(path) -> str:
    """How messages name the input: the file's path as given, or ``<stdin>``."""
    return "<stdin>" if str(path) == STDIN else os.fspath(path)


def _stdin_lines(stdin: TextIO | None) -> list[str]:
    """Every line of standard input, read once (a pipe cannot be read twice)."""
    stream = stdin if stdin is not None else sys.stdin
    if stream is None or (stream.isatty() if hasattr(stream, "isatty") else False):
        raise FastaError(
            "no input: standard input is a terminal; give an input file, or pipe sequences in (cat x.fa | resm ...)"
        )
    try:
        refuse_device(stream, "<stdin>")
    except OSError as e:
        raise FastaError(f"<stdin>: cannot read ({e.strerror})") from None
    data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
    if isinstance(data, bytes):
        if (why := compression_problem(data[:10])) is not None:
            raise FastaError(f"<stdin>: cannot read ({why})")
        if data[:2] == b"\x1f\x8b":
            try:
                data = gzip.decompress(data)
            except (EOFError, OSError, zlib.error) as e:  # gzip cut off, or damaged
                raise FastaError(f"<stdin>: cannot read the gzip data ({e})") from None
        data = data.decode(text_encoding(data), errors="replace")  # BOM dropped, ids in any script kept
    return data.splitlines()


def _file_lines(p: Path) -> Iterator[str]:
    """The lines of a plain or gzip file (by its magic bytes), streamed."""
    name = str(p)
    try:
        with open_text(p) as fh:  # opened once (a named pipe too); BOM dropped, ids in any script kept
            for line in fh:
                yield line.rstrip("\r\n")
    except (OSError, EOFError, zlib.error) as e:
        raise FastaError(f"{name}: cannot read ({getattr(e, 'strerror', None) or e})") from None


def _check_file(path) -> Path:
    p = Path(path)
    if p.is_dir():
        raise FastaError(f"{p}: is a directory, not a sequence file")
    if not p.exists():
        raise FastaError(f"{p}: {no_such(p, 'file')}")
    return p


def sniff_format(lines: Sequence[str]) -> str:
    """One of :data:`INPUT_FORMATS`, from the text (see the module's rules)."""
    body = [(k, ln.strip()) for k, ln in enumerate(lines) if ln.strip() and not ln.strip().startswith(";")]
    if not body:  # nothing, or FASTA's ';' comments only (read as a bare sequence ';...', named 'seq_1')
        return "fasta"  # reported as "no records" by the caller
    first = body[0][1]
    if is_pair_table_header(first):
        return "tsv"
    if any(ln.startswith(">") for _, ln in body):  # FASTA, or text before its first header (an error)
        for _, ln in body[1:]:
            if not ln.startswith(">") and _structure_line(ln):
                return "dbn"
        return "fasta"
    if first.startswith("#"):  # bpRNA's bpseq and dbn and resm's pair lists all start with '#Name:' comments
        rows = [ln for _, ln in body if not ln.startswith("#")][:2]
        if len(rows) == 2 and len(rows[0].split()) == 1 and _structure_line(rows[1]):
            return "dbn"  # bpRNA's: a sequence, then its dot-bracket
        return "pairs" if rows and len(rows[0].split()) == 2 else "bpseq"
    toks = first.split()
    if toks[0].isdigit():
        # a ct header 'N title' is followed by six-column rows; its title may end in a number
        # ('11  tRNA 5'), which made it three columns like a bpseq row
        if len(body) > 1 and len(body[1][1].split()) == 6:
            return "ct"
        if len(toks) == 3 and toks[2].lstrip("-").isdigit():
            return "bpseq"
    return "plain"


def _plain(lines: Sequence[str], source: str) -> list[tuple[str, str]]:
    out = []
    for lineno, ln in enumerate(lines, 1):
        s = ln.strip()
        if not s or s.startswith(";"):
            continue
        if any(c.isspace() for c in s):
            raise FastaError(
                f"{source} line {lineno}: a bare sequence holds whitespace "
                "(one sequence per line, or FASTA with '>' headers)"
            )
        out.append((f"seq_{len(out) + 1}", s))
    return out


def _pair_list_record(lines: Iterable[str], source: str, stem: str) -> tuple[str, str]:
    """The one record of a pair list: its ``#Name:`` (else ``stem``) and its ``#Sequence:``,
    which it must hold (the pairs alone give no sequence to fold)."""
    rec = parse_pair_lines(lines, source, stem)
    if not rec.seq:
        raise StructureError(f"{source}: a pair list without a '#Sequence:' line holds no sequence to fold")
    return record_id(rec.name), rec.seq


def read_sequences(path, fmt: str | None = None, stdin: TextIO | None = None) -> list[tuple[str, str]]:
    """The ``(id, sequence)`` records of ``path`` (``-``: standard input) in file order.

    ``fmt`` forces one of :data:`INPUT_FORMATS`; by default the extension decides when it is a
    structure format's, else :func:`sniff_format`. Raises :class:`FastaError` /
    :class:`StructureError` naming the source and line (no records, duplicate ids included; a
    file named .gz that is not gzip says so, :func:`resm.fasta.gz_name_note`)."""
    try:
        return _read_sequences(path, fmt, stdin)
    except (FastaError, StructureError) as e:
        if str(path) != STDIN and (note := gz_name_note(path)):
            raise type(e)(f"{e}{note}") from None
        raise


def _read_sequences(path, fmt: str | None, stdin: TextIO | None) -> list[tuple[str, str]]:
    source = source_name(path)
    if fmt is not None and fmt not in INPUT_FORMATS:
        raise FastaError(f"unknown input format {fmt!r}; expected one of {INPUT_FORMATS}")
    if str(path) == STDIN:
        lines: Iterable[str] = _stdin_lines(stdin)
        head = lines
    else:
        p = _check_file(path)
        if p.is_file():
            lines = _file_lines(p)
            head = list(itertools.islice(_file_lines(p), _SNIFF_LINES)) if fmt is None else []
        else:  # a named pipe or a process substitution can be read only once, as standard input
            lines = head = list(_file_lines(p))
    if fmt is None and str(path) != STDIN:
        try:
            by_ext = infer_format(Path(path))
        except ValueError:  # .fa, .fasta, .txt, ...: the text decides
            by_ext = None
        fmt = by_ext if by_ext in ("dbn", "ct", "bpseq", "pairs") else "tsv" if pair_table_named(path) else None
    fmt = fmt or sniff_format(head)
    if fmt == "fasta":
        records = [(r.id, r.seq) for r in parse_fasta(lines, source, unique=True)]
    elif fmt == "plain":
        records = _plain(lines, source)
    elif fmt == "pairs":
        records = [_pair_list_record(lines, source, "seq" if str(path) == STDIN else file_stem(Path(path)))]
    else:
        stem = "seq" if str(path) == STDIN else file_stem(Path(path))
        it = {"dbn": iter_dbn, "ct": iter_ct, "bpseq": iter_bpseq, "tsv": parse_pair_table}[fmt]
        kwargs = {} if fmt in ("dbn", "tsv") else {"name": stem}
        records = []
        seen = {}
        for k, rec in enumerate(it(lines, source, **kwargs), 1):
            rec.name = record_id(rec.name)  # cut at the first whitespace, as FASTA ids and references
            if rec.name in seen:
                raise StructureError(f"{source}: duplicate id {rec.name!r} (records {seen[rec.name]} and {k})")
            seen[rec.name] = k
            records.append((rec.name, rec.seq))
    if not records:
        raise FastaError(f"{source}: no records")
    return records
