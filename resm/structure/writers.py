"""Writing folded structures: every output goes to temporary files first and is moved into
place only when all records are done, so an error never leaves a half-written output behind.

:func:`check_output` decides, before any work, how structures will be written (stdout, one
file, or a folder of ``<id>.<ext>`` files named by :func:`safe_filename`);
:class:`StructureSink` collects them and commits; :func:`staged_dir` stages a folder's files
(plots, one structure file per record).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

from ..utils.io import atomic_path, atomic_write_text, merge_dir
from .io import FoldError, Structure, format_structures

__all__ = ["OUTPUT_FORMATS", "safe_filename", "record_file_names", "check_output", "staged_dir", "StructureSink"]

OUTPUT_FORMATS = ("dbn", "bpseq", "ct")


_UNSAFE = re.compile(r"[^\w.+=-]")  # \w: letters and digits of every script, and _


def safe_filename(name: str) -> str:
    """A file name for a record id: characters other than letters and digits (of any script:
    ``ARN_é`` stays as it is) and ``._+=-`` become ``_``; a leading dot is prefixed with ``_``
    (no hidden files, no ``..``)."""
    s = _UNSAFE.sub("_", name) or "_"
    return "_" + s if s.startswith(".") else s


def record_file_names(ids: Sequence[str], ext: str) -> Dict[str, str]:
    """id -> ``<safe id>.<ext>``; refuses two ids that give the same name."""
    out: Dict[str, str] = {}
    seen: Dict[str, str] = {}
    for i in ids:
        fn = f"{safe_filename(i)}.{ext}"
        if fn.lower() in seen:
            raise FoldError(f"records {seen[fn.lower()]!r} and {i!r} would both be written to {fn}")
        seen[fn.lower()] = i
        out[i] = fn
    return out


def check_output(fmt: str, out: Optional[Path], ids: Sequence[str]) -> str:
    """How the structures will be written: ``"stdout"``, ``"file"`` or ``"dir"``.

    dbn and ct hold many records in one text; bpseq holds one. Several records in bpseq or ct
    with ``out`` given go to a directory (one ``<id>.<ext>`` file each); an existing directory
    ``out`` always receives one file per record."""
    if fmt not in OUTPUT_FORMATS:
        raise FoldError(f"unknown format {fmt!r}; expected one of {OUTPUT_FORMATS}")
    if out is None:
        if fmt == "bpseq" and len(ids) > 1:
            raise FoldError(f"bpseq holds one record per file and the FASTA has {len(ids)}: give -o DIR")
        return "stdout"
    if fmt == "dbn":
        if out.is_dir():
            raise FoldError(f"{out} is a directory; dbn output is one file holding every record")
        return "file"
    if out.is_dir() or len(ids) > 1:
        if out.exists() and not out.is_dir():
            raise FoldError(f"{out} is a file; {len(ids)} {fmt} records need a directory (one file each)")
        record_file_names(ids, fmt)
        return "dir"
    return "file"


def staged_dir(final: Path) -> contextlib.AbstractContextManager:
    """A temporary folder beside ``final``; on success its files are moved into ``final``
    (created if needed; other files there are left alone), on error it is removed
    (:func:`resm.utils.io.merge_dir`)."""
    return merge_dir(final)


class StructureSink:
    """Collects folded structures and writes them when :meth:`commit` is called.

    ``mode`` comes from :func:`check_output`. Files (and directory members) are written to
    temporary files as records arrive, so memory stays small, and renamed into place only at
    :meth:`commit`; :meth:`close` without commit removes them. Used as a context manager it
    commits on success and cleans up on error."""

    def __init__(self, fmt: str, out: Optional[Path], mode: str, stream=None):
        self.fmt, self.out, self.mode = fmt, out, mode
        self.stream = stream or sys.stdout
        self.n = 0
        self._stack = contextlib.ExitStack()
        self._text: List[str] = []
        if mode == "file":
            self._tmp = self._stack.enter_context(atomic_path(out))
            self._fh = self._stack.enter_context(open(self._tmp, "w", encoding="utf-8"))
        elif mode == "dir":
            self._dir = self._stack.enter_context(staged_dir(out))
            self._names: Dict[str, str] = {}

    def add(self, rec: Structure) -> None:
        text = format_structures([rec], self.fmt)
        if self.mode == "stdout":
            self._text.append(text)
        elif self.mode == "file":
            self._fh.write(text)
        else:
            fn = f"{safe_filename(rec.name)}.{self.fmt}"
            if fn.lower() in self._names:
                raise FoldError(f"records {self._names[fn.lower()]!r} and {rec.name!r} would both be written to {fn}")
            self._names[fn.lower()] = rec.name
            atomic_write_text(self._dir / fn, text)
        self.n += 1

    def commit(self) -> None:
        """Put everything in place (stdout: print it)."""
        if self.mode == "stdout":
            self.stream.write("".join(self._text))
            self.stream.flush()
        elif self.mode == "file":
            self._fh.flush()
            os.fsync(self._fh.fileno())
        self._stack.close()

    def close(self, exc: Optional[BaseException] = None) -> None:
        """Abandon: remove the temporary files."""
        err = exc or FoldError("output abandoned")
        try:
            self._stack.__exit__(type(err), err, None)
        except BaseException as e:  # the cleanup re-raises the error it was given
            if e is not err:
                raise

    def __enter__(self) -> "StructureSink":
        return self

    def __exit__(self, et, ev, tb) -> bool:
        if et is None:
            self.commit()
        else:
            self.close(ev)
        return False
