"""Writing folded structures: every output goes to temporary files first and is moved into
place only when all records are done, so an error never leaves a half-written output behind.

:func:`structure_output_mode` decides, before any work, how structures will be written: to
stdout, to one file (dbn and ct hold many records: a multi-record ct is records one after the
other), or, only when asked for with ``--split-dir``, to a folder of ``<id>.<ext>`` files named
by :func:`safe_filename`. :class:`StructureSink` collects them and commits; :class:`TextSink` does
the same for any other text output (base-pair probabilities, the reference report);
:func:`staged_dir` stages a folder's files (plots, one structure file per record).

Base-pair probabilities (``--bpp FILE``) are written as sparse text, :data:`BPP_HEADER`::

    # resm base-pair probabilities ...
    >id
    i j p

one block per record, ``i < j`` 1-based positions, ``p`` the pair's probability (pairs below
the cut-off left out), pairs sorted by i then j.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..utils.io import atomic_path, atomic_write_text, merge_dir
from .io import CT_ENERGY, FORMATS, FoldError, Structure, format_structures
from .pair_probs import sparse_probs

__all__ = [
    "BPP_HEADER",
    "safe_filename",
    "record_file_names",
    "structure_output_mode",
    "check_distinct",
    "staged_dir",
    "StructureSink",
    "TextSink",
    "format_bpp",
]

ONE_RECORD_FORMATS = ("bpseq", "pairs")  # one record per file


_UNSAFE = re.compile(r"[^\w.+=-]")  # \w: letters and digits of every script, and _


def safe_filename(name: str) -> str:
    """A file name for a record id: characters other than letters and digits (of any script:
    ``ARN_é`` stays as it is) and ``._+=-`` become ``_``; a leading dot is prefixed with ``_``
    (no hidden files, no ``..``)."""
    s = _UNSAFE.sub("_", name) or "_"
    return "_" + s if s.startswith(".") else s


NAME_MAX = 255  # bytes in one file name (Linux, macOS)


def record_file_names(
    ids: Sequence[str],
    ext: str,
    folder: Path | None = None,
    suffixes: Sequence[str] = ("",),
    files: Mapping[str, object] | None = None,
) -> dict[str, str]:
    """id -> ``<safe id>.<ext>``; refuses two ids that give the same name, an id too long for a
    file name, and (with ``folder``) a file there that is one of the command's inputs, or one of
    its file outputs ``files`` (``{"--bpp": path}``: ``--plot d --bpp d/r1.png`` wrote the
    figure over the pair probabilities and said it wrote both). With ``suffixes``, each record
    writes ``<safe id><suffix>.<ext>`` for every one (``--plot``'s ``<id>.png`` and
    ``<id>_ss.png``), and no two records' files may share a name: records ``x`` and ``x_ss``
    would both write ``x_ss.png``."""
    from ..utils.paths import check_not_input, is_stream, same_file

    outputs = {k: v for k, v in (files or {}).items() if v is not None and not is_stream(v)}

    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for i in ids:
        for suffix in suffixes:
            fn = f"{safe_filename(i)}{suffix}.{ext}"
            if len(fn.encode("utf-8")) > NAME_MAX:
                short = i if len(i) <= 40 else i[:40] + "..."
                raise FoldError(
                    f"record {short!r} ({len(i)} characters): its file name {fn[:20]}... would be "
                    f"{len(fn.encode('utf-8'))} bytes, more than the {NAME_MAX} a file name may hold; "
                    "shorten the id, or write one file (-o)"
                )
            if folder is not None:
                check_not_input(Path(folder) / fn)
                for opt, path in outputs.items():
                    if same_file(Path(folder) / fn, path):
                        raise FoldError(f"{opt} {path}: is the file {fn} that record {i!r} writes into {folder}")
            if fn.lower() in seen and seen[fn.lower()] != i:
                raise FoldError(f"records {seen[fn.lower()]!r} and {i!r} would both be written to {fn}")
            seen[fn.lower()] = i
            out.setdefault(i, fn)
    return out


def structure_output_mode(fmt: str, out: Path | None, ids: Sequence[str], split_dir: Path | None = None) -> str:
    """How the structures will be written: ``"stdout"``, ``"file"`` (``out``) or ``"dir"``
    (``split_dir``, one ``<id>.<ext>`` file per record).

    dbn and ct hold many records in one text (several ct records are written one after the
    other, as ct allows); bpseq and pairs (the pair list, ``i j`` lines) hold one, so several
    such records need ``split_dir``. An id that ct would read back as an energy (``dG=5``:
    :data:`resm.structure.io.CT_ENERGY`) is refused for ct."""
    if fmt not in FORMATS:
        raise FoldError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    if fmt == "ct" and (clash := next((i for i in ids if CT_ENERGY.match(i)), None)) is not None:
        raise FoldError(
            f"record {clash!r}: ct would read its name back as an energy: give --format dbn, bpseq or pairs"
        )
    if split_dir is not None:  # with out too: refused before any work (FoldOptions.check)
        if split_dir.exists() and not split_dir.is_dir():
            raise FoldError(f"--split-dir {split_dir}: is a file, not a folder")
        record_file_names(ids, fmt, split_dir)
        return "dir"
    if fmt in ONE_RECORD_FORMATS and len(ids) > 1:
        raise FoldError(
            f"{out if out is not None else 'stdout'}: {fmt} holds one record per file and the input has {len(ids)}: "
            "give --split-dir DIR (one file per record) or --format dbn/ct"
        )
    if out is None:
        return "stdout"
    if out.is_dir():
        raise FoldError(f"-o {out}: is a folder; -o names one file (--split-dir {out} writes one file per record)")
    return "file"


def check_distinct(**paths: Path | None) -> None:
    """Refuse two outputs that name the same file (``-o x --bpp x``, through links too)."""
    from ..utils.paths import OutputError, check_distinct_outputs

    try:
        check_distinct_outputs(paths)
    except OutputError as e:
        raise FoldError(str(e)) from None


BPP_HEADER = (
    "# resm base-pair probabilities\n"
    "# one block per record: a line '>id', then one line 'i j p' per pair: 1-based positions i < j\n"
    "# and the probability p that they pair; pairs with p below {min_p:g} are left out\n"
)


def format_bpp(name: str, probs, min_p: float = 1e-3) -> str:
    """One record's block of the ``--bpp`` file from dense (L, L) or sparse ``(i, j, p)``
    probabilities (:func:`resm.structure.pair_probs.sparse_probs`)."""
    i, j, p = sparse_probs(probs, min_p)
    rows = [f">{name}\n"]
    rows += [f"{a} {b} {q:.4g}\n" for a, b, q in zip((i + 1).tolist(), (j + 1).tolist(), p.tolist())]
    return "".join(rows)


def staged_dir(final: Path) -> contextlib.AbstractContextManager:
    """A temporary folder beside ``final``; on success its files are moved into ``final``
    (created if needed; other files there are left alone), on error it is removed
    (:func:`resm.utils.io.merge_dir`)."""
    return merge_dir(final)


def _abandon(stack: contextlib.ExitStack, exc: BaseException | None) -> None:
    """Unwind ``stack`` as after an error, so its staged files are removed."""
    err = exc or FoldError("output abandoned")
    try:
        stack.__exit__(type(err), err, None)
    except BaseException as e:  # the cleanup re-raises the error it was given
        if e is not err:
            raise


class TextSink:
    """A text output written at :meth:`commit`: to ``path`` (a temporary file beside it until
    then, renamed into place; gzip-compressed when the name ends in ``.gz``, as
    :func:`resm.structure.io.read_structures` reads it) or, when ``path`` is None, to
    ``stream`` (default stdout).
    :meth:`abandon` removes the temporary; as a context manager it commits on success and
    abandons on error."""

    def __init__(self, path: Path | None, header: str = "", stream=None):
        self.path, self.stream = path, stream or sys.stdout
        self._stack = contextlib.ExitStack()
        self._text: list[str] = []
        if path is not None:
            self._tmp = self._stack.enter_context(atomic_path(path))
            # the exit stack closes the file; a name ending in .gz is written gzip-compressed
            # (no name or time in its header, as resm.structure.io.write_structures)
            self._raw = self._stack.enter_context(open(self._tmp, "wb"))  # noqa: SIM115
            if path.name.lower().endswith(".gz"):
                target = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0)
            else:
                target = self._raw
            self._fh = self._stack.enter_context(io.TextIOWrapper(target, encoding="utf-8"))
        self.write(header)

    def write(self, text: str) -> None:
        if not text:
            return
        if self.path is None:
            self._text.append(text)
        else:
            self._fh.write(text)

    def commit(self) -> None:
        if self.path is None:
            self.stream.write("".join(self._text))
            self.stream.flush()
        else:
            self._fh.flush()
            if self._fh.buffer is not self._raw:
                self._fh.close()  # the gzip stream writes its trailer (the file stays open)
            self._raw.flush()
            os.fsync(self._raw.fileno())
        self._stack.close()

    def abandon(self, exc: BaseException | None = None) -> None:
        _abandon(self._stack, exc)

    def __enter__(self) -> TextSink:
        return self

    def __exit__(self, et, ev, tb) -> bool:
        if et is None:
            self.commit()
        else:
            self.abandon(ev)
        return False


class StructureSink:
    """Collects folded structures and writes them when :meth:`commit` is called.

    ``mode`` comes from :func:`structure_output_mode`: ``"stdout"`` and ``"file"`` write one text
    (:class:`TextSink`), ``"dir"`` one file per record into a folder staged until the commit.
    Files are written to temporary files as records arrive, so memory stays small, and renamed
    into place only at :meth:`commit`; :meth:`close` without commit removes them. Used as a
    context manager it commits on success and cleans up on error."""

    def __init__(self, fmt: str, out: Path | None, mode: str, stream=None):
        self.fmt, self.out, self.mode = fmt, out, mode
        self.n = 0
        self._stack = contextlib.ExitStack()
        self._sink: TextSink | None = None
        if mode in ("stdout", "file"):
            self._sink = TextSink(out if mode == "file" else None, stream=stream)
        elif mode == "dir":
            self._dir = self._stack.enter_context(staged_dir(out))
            self._names: dict[str, str] = {}

    def add(self, rec: Structure) -> None:
        self.add_text(rec.name, format_structures([rec], self.fmt))

    def add_text(self, name: str, text: str) -> None:
        """Add one record already formatted in this sink's format (a shard's, when merging)."""
        if self._sink is not None:
            self._sink.write(text)
        else:
            fn = f"{safe_filename(name)}.{self.fmt}"
            if fn.lower() in self._names:
                raise FoldError(f"records {self._names[fn.lower()]!r} and {name!r} would both be written to {fn}")
            self._names[fn.lower()] = name
            atomic_write_text(self._dir / fn, text)
        self.n += 1

    def commit(self) -> None:
        """Put everything in place (stdout: print it)."""
        if self._sink is not None:
            self._sink.commit()
        self._stack.close()

    def close(self, exc: BaseException | None = None) -> None:
        """Abandon: remove the temporary files."""
        if self._sink is not None:
            self._sink.abandon(exc)
        _abandon(self._stack, exc)

    def __enter__(self) -> StructureSink:
        return self

    def __exit__(self, et, ev, tb) -> bool:
        if et is None:
            self.commit()
        else:
            self.close(ev)
        return False
