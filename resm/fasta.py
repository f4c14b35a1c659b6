"""Streaming FASTA reading (plain or gzip), the checks of the text files and table cells resm
reads, and token-budget batching."""

from __future__ import annotations

import codecs
import csv
import errno
import gzip
import io
import numbers
import os
import re
import stat
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass


class FastaError(ValueError):
    """Malformed FASTA; the message names the file, line and record."""


def id_problem(rid: str) -> str | None:
    """What makes ``rid`` unfit as a record id, or None: a control character (a NUL, an escape
    sequence: it would be written into every output and file name), an invisible format
    character (Unicode category Cf: a zero-width space or joiner, a byte-order mark, a bidi
    override or isolate, which makes an id display as another one in every output), or U+FFFD,
    the mark of bytes that are not UTF-8 text (the id would not be the one in the file). Ids in
    any script are fine otherwise."""
    for c in rid:
        if c == "\ufffd":
            return "holds bytes that are not UTF-8 text"
        if ord(c) < 32 or 127 <= ord(c) < 160:
            return f"holds the control character U+{ord(c):04X}"
        if unicodedata.category(c) == "Cf":
            return f"holds the invisible format character U+{ord(c):04X}"
    return None


def record_id(name: str) -> str:
    """A record's id: its name up to the first whitespace (space or tab), as in a FASTA header;
    the name itself when it holds nothing else."""
    return (name.split() or [name])[0]


def checked_name(name: str, where: str, error: type[ValueError] = FastaError) -> str:
    """A structure file's record name (an id, maybe with a description after whitespace),
    refused in one line naming ``where`` (file and line) when :func:`id_problem` finds one."""
    if (why := id_problem("".join(name.split()))) is not None:
        raise error(f"{where}: name {name!r} {why}")
    return name


def checked_cell_name(name: str, where: str, error: type[ValueError] = FastaError) -> str:
    """A name that is a whole table cell (a pairs or UTR table's): spaces are part of it, and
    any other control character, a tab or a line break inside quotes included (it would break
    the tables written from it), is refused in one line naming ``where``, as :func:`id_problem`
    says."""
    if (why := id_problem(name.replace(" ", ""))) is not None:
        raise error(f"{where}: name {name!r} {why}")
    return name


def check_record_ids(ids: Iterable[str], error: type[ValueError] = ValueError) -> None:
    """The API's record ids, held to a file's rules: refuse a repeated id in one line naming it
    and the records (1-based) that hold it, an empty id, and an id that :func:`id_problem`
    refuses (a control character: it would be written into every output). Outputs and results
    are keyed by id."""
    seen: dict[str, int] = {}
    for k, rid in enumerate(ids, 1):
        if not rid:
            raise error(f"record {k} has an empty id")
        if (why := id_problem(rid)) is not None:
            raise error(f"record {k}: id {rid!r} {why}")
        if rid in seen:
            raise error(f"duplicate id {rid!r} (records {seen[rid]} and {k})")
        seen[rid] = k


@dataclass(frozen=True)
class Record:
    id: str
    description: str
    seq: str
    line: int  # 1-based line of the header, for error messages


def text_encoding(head: bytes) -> str:
    """How text starting with the bytes ``head`` is decoded: UTF-16 when they are a UTF-16
    byte-order mark (Windows' "Unicode" text, PowerShell's ``>``), else UTF-8 (a byte-order
    mark dropped)."""
    return "utf-16" if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"


# the magic bytes of the compressions resm does not read (gzip it reads): such a file was read as
# text, and its first bytes refused as "a bare sequence holds whitespace" or "sequence data
# before the first '>' header", which says nothing of the compression
_OTHER_COMPRESSIONS = (
    (re.compile(rb"BZh[1-9](1AY&SY|\x17rE8P\x90)", re.DOTALL), "bzip2"),
    (re.compile(rb"\xfd7zXZ\x00", re.DOTALL), "xz"),
    (re.compile(rb"\x28\xb5\x2f\xfd", re.DOTALL), "zstd"),
    (re.compile(rb"\x04\x22\x4d\x18", re.DOTALL), "lz4"),
    (re.compile(rb"PK\x03\x04", re.DOTALL), "zip"),
)


def compression_problem(head: bytes) -> str | None:
    """What keeps a file starting with the bytes ``head`` (ten of them do) from being read, when
    it is compressed in a format other than gzip; None otherwise."""
    for magic, name in _OTHER_COMPRESSIONS:
        if magic.match(head):
            return f"compressed with {name}, which resm does not read: decompress it, or compress it with gzip"
    return None


def refuse_device(fh, name: str) -> None:
    """An input that is a device other than a terminal (``/dev/zero``, ``/dev/urandom``: read
    until memory ran out) is an OSError naming it."""
    try:
        fd = fh.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test's stream)
        return
    if stat.S_ISCHR(os.fstat(fd).st_mode) and not os.isatty(fd):
        raise OSError(errno.EINVAL, "a device, not a file", name)


def open_text(path: str | os.PathLike, newline: str | None = None) -> io.TextIOWrapper:
    """A text handle on a file resm reads (FASTA, tables, structure files), plain or gzip by its
    magic bytes, opened once: the magic bytes are peeked, not read, so a named pipe or a process
    substitution (``resm fold <(zcat x.fa.gz)``), which can be read only once, reads as a file
    does. UTF-8 (a byte-order mark dropped), or UTF-16 after its byte-order mark
    (:func:`text_encoding`); bytes that are not text become U+FFFD, which the readers name in
    their errors. ``newline`` as :func:`open`'s (``""`` for the csv module). A device other
    than a terminal (``/dev/zero``, which never ends), and a file compressed in a format other
    than gzip (:func:`compression_problem`), are an OSError naming it. The content decides, never
    the name: every reader opens its files here, so a file is read the same way whatever reads
    it, and a plain file named ``x.fa.gz`` (a ``gunzip -c`` kept under its old name) is read as
    the text it holds, which the reader then checks as any other."""
    raw = open(path, "rb")  # noqa: SIM115 (closed with the wrapper)
    try:
        refuse_device(raw, os.fspath(path))
        stream = raw
        if raw.peek(2)[:2] == b"\x1f\x8b":
            stream = gzip.GzipFile(fileobj=raw, mode="rb")
            stream.myfileobj = raw  # closed with the GzipFile, as when it opens the file itself
        if (why := compression_problem(raw.peek(10)[:10])) is not None:
            raise OSError(errno.EINVAL, why, os.fspath(path))
        enc = text_encoding(stream.peek(2)[:2])
        return io.TextIOWrapper(stream, encoding=enc, errors="replace", newline=newline)
    except BaseException:
        raw.close()
        raise


def gz_name_note(path: str | os.PathLike) -> str:
    """What to add to an error about the content of ``path`` when its name ends in ``.gz`` and
    it is not gzip (:func:`open_text` read it as the text it holds): most often the wrong file,
    or a ``gunzip -c`` kept under its old name, which the error alone would not say. Empty
    otherwise, and for what is not a regular file (a named pipe is not read twice)."""
    if not os.fspath(path).lower().endswith(".gz") or not os.path.isfile(path):
        return ""
    try:
        with open(path, "rb") as fh:
            if fh.read(2) == b"\x1f\x8b":
                return ""
    except OSError:
        return ""
    return " (named .gz, but not gzip-compressed: read as text)"


def csv_problem(e: csv.Error) -> str:
    """What the ``csv`` module's error means, in resm's words: a field over its size limit
    (``field larger than field limit (131072)``) is most often a quote left open, which runs
    the field on to the end of the file."""
    if "field limit" not in str(e):
        return str(e)
    limit = csv.field_size_limit()
    return (
        f"a field of more than {limit:,} characters (no field resm reads is that long; a quote "
        "left open runs a field on to the end of the file)"
    )


def read_fasta(path: str | os.PathLike, unique: bool = False) -> Iterator[Record]:
    """Yield records one by one, never holding the file in memory (:func:`parse_fasta` over
    the lines of a plain or gzip file)."""
    name = os.fspath(path)
    try:
        with open_text(path) as fh:
            yield from parse_fasta(fh, name, unique)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise FastaError(f"{name}: cannot read ({getattr(e, 'strerror', None) or e})") from e
    except FastaError as e:
        if note := gz_name_note(path):
            raise FastaError(f"{e}{note}") from None
        raise


def parse_fasta(lines: Iterable[str], name: str = "<fasta>", unique: bool = False) -> Iterator[Record]:
    """Records of FASTA text given as lines; ``name`` (the source) is used in messages.

    Sequence lines are joined with whitespace removed; the sequence itself is not validated
    here (the mapping layer does that and names the record). Raises FastaError on text before
    the first header, a header without an id, an id with a control or invisible format
    character or with bytes that are not UTF-8 (:func:`id_problem`), a record without sequence lines, or (with
    ``unique``) a repeated id. The id ends at the header's first whitespace (space or tab).
    """
    seen = set() if unique else None
    header: str | None = None
    header_line = 0
    chunks: list[str] = []

    def emit() -> Record:
        rid = record_id(header)  # the header is stripped and starts with no whitespace
        desc = header[len(rid) :]
        if (why := id_problem(rid)) is not None:
            raise FastaError(f"{name} line {header_line}: id {rid!r} {why}")
        if not chunks:
            raise FastaError(f"{name} line {header_line}: record {rid!r} has no sequence")
        if seen is not None:
            if rid in seen:
                raise FastaError(f"{name} line {header_line}: duplicate id {rid!r}")
            seen.add(rid)
        return Record(rid, desc.strip(), "".join(chunks), header_line)

    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            if header is not None:
                yield emit()
            header = line[1:].strip()
            header_line = lineno
            chunks = []
            if not header or header[0].isspace():
                raise FastaError(f"{name} line {lineno}: header has no id")
        elif header is None:
            raise FastaError(f"{name} line {lineno}: sequence data before the first '>' header")
        else:
            chunks.append("".join(line.split()))
    if header is not None:
        yield emit()


def write_fasta(records: Iterable[tuple], fh, width: int = 0) -> None:
    for rid, seq in records:
        fh.write(f">{rid}\n")
        if width:
            for i in range(0, len(seq), width):
                fh.write(seq[i : i + width] + "\n")
        else:
            fh.write(seq + "\n")


# The token budget of a batch (``resm embed --toks-per-batch``, ``embed_sequences``'s
# ``toks_per_batch``): one home for the rule, which the command line's option rules use too.
TOKS_PER_BATCH_RULE = "must be an integer >= 1"


def toks_per_batch_ok(v) -> bool:
    """Whether ``v`` is a token budget: an integer >= 1 (not a bool)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1


def checked_toks_per_batch(v) -> int:
    """``v`` when :func:`toks_per_batch_ok`, else a one-line ValueError naming ``toks_per_batch``."""
    if not toks_per_batch_ok(v):
        raise ValueError(f"toks_per_batch {TOKS_PER_BATCH_RULE}, got {v!r}")
    return int(v)


def token_batches(
    lengths: Sequence[int], max_tokens: int, max_batch: int | None = None, extra: int = 2
) -> list[list[int]]:
    """Group indices into batches sorted by length whose padded size stays within
    ``max_tokens`` (a batch's cost is ``count x (longest + extra)``). A sequence longer than
    the budget gets a batch of its own."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    longest = 0
    for i in order:
        n = lengths[i] + extra
        if cur and (max(longest, n) * (len(cur) + 1) > max_tokens or (max_batch is not None and len(cur) >= max_batch)):
            batches.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        batches.append(cur)
    return batches
