"""What a path names, and what it may be used for: the rules every reader and writer of resm
shares, kept apart from how outputs are written (:mod:`resm.utils.io`).

* :func:`file_problem` is the readers' rule for a binary input: a folder, a named pipe or a
  device is refused before it is opened (opening a named pipe waits for a writer for ever);
  :func:`numpy_problem` says what numpy's refusal of a file means.
* :func:`is_stream`: ``-`` (standard output) and special files (``/dev/stdout``, a named pipe, a
  terminal) are streamed, never replaced.
* No output may replace an input: :func:`declared_inputs` names a command's inputs, and
  :func:`check_not_input` (called by every check and staging of :mod:`resm.utils.io`) refuses
  an output that is one of them, compared through symbolic and hard links (:func:`same_file`:
  the same resolved path, or the same device and inode); a folder output that would replace a
  folder holding an input is refused too. :func:`check_distinct_outputs` refuses two outputs
  that name one file.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "OutputError",
    "file_problem",
    "broken_link",
    "no_such",
    "numpy_problem",
    "is_stream",
    "same_file",
    "declared_inputs",
    "check_not_input",
    "check_distinct_outputs",
    "PACKAGE_DIR",
]


class OutputError(ValueError):
    """An output that cannot be written where it was asked for (one line naming the path)."""


_STREAM_PATH = re.compile(r"^/dev/(stdout|stderr|fd/\d+)$|^/proc/(self|thread-self|\d+)/fd/\d+$")


def file_problem(path: str | os.PathLike, missing: bool = False) -> str | None:
    """Why ``path`` cannot be read as a file (the rule of every reader of a binary file: models,
    checkpoints, embeddings, prior cache entries): ``"is a folder"``, ``"is not a regular file"``
    (a named pipe, whose opening blocks for ever until something writes to it, a device, a
    socket), ``"cannot be read (...)"`` when it cannot be looked at (a link that loops); None for
    a regular file, and for a path that is not there unless ``missing`` (each reader says that
    its own way)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as e:
        return f"cannot be read ({e.strerror})" if missing else None
    except OSError as e:
        return f"cannot be read ({e.strerror or type(e).__name__})"
    if stat.S_ISREG(mode):
        return None
    return "is a folder" if stat.S_ISDIR(mode) else "is not a regular file"


def broken_link(path: str | os.PathLike) -> str | None:
    """What a path that is a symbolic link to nothing is (``"is a link that loops"``, ``"is a
    link to X, which is not there"``), where a reader said 'no such file' of a path that is
    there; None for any other path."""
    p = os.fspath(path)
    if not os.path.islink(p) or os.path.exists(p):
        return None
    try:
        os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"is a link that loops ({e.strerror})"
    return f"is a link to {os.readlink(p)}, which is not there"


def no_such(path: str | os.PathLike, what: str) -> str:
    """What a reader says of an input ``path`` that it cannot find: ``"no such <what>"``, unless
    the path is a link to nothing (:func:`broken_link`), which is said as such. The one wording
    of every "no such file / model / folder" message."""
    return broken_link(path) or f"no such {what}"


def numpy_problem(path: str | os.PathLike, error: BaseException) -> str | None:
    """What ``np.load(path, allow_pickle=False)``'s ``error`` means, where it is numpy's refusal of
    a pickle, which numpy says of every file that is neither an ``.npz`` archive nor an ``.npy``
    array (a FASTA file 'held pickled objects'): ``"it holds pickled Python objects, which resm
    never loads"`` for a numpy file, ``"not a numpy file: neither an .npz archive nor an .npy
    array"`` for any other; None for another error (the reader says it)."""
    if "allow_pickle" not in str(error):
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError:
        head = b"PK"
    if head.startswith(b"PK") or head == b"\x93NUMPY":
        return "it holds pickled Python objects, which resm never loads"
    return "not a numpy file: neither an .npz archive nor an .npy array"


def is_stream(path: str | os.PathLike) -> bool:
    """Whether an output path is streamed rather than replaced: ``-`` (standard output), a
    process's file descriptor (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``), or an
    existing special file (a character device, a named pipe, a socket)."""
    s = os.fspath(path)
    if s == "-" or _STREAM_PATH.match(os.path.abspath(s)):
        return True
    try:
        mode = os.stat(s).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: the same resolved path, or (both existing) the same
    device and inode (hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


_INPUTS: contextvars.ContextVar[tuple] = contextvars.ContextVar("resm_inputs", default=())
# the installed package's folder: an input of every command (declared_inputs)
PACKAGE_DIR = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def declared_inputs(inputs: dict[str, object]) -> Iterator[None]:
    """Inside the block, no output may replace one of ``inputs`` (``{what: path}``, e.g.
    ``{"the input": "x.fa", "--reference": "r.dbn"}``; None values and ``-`` are skipped), nor
    a file of the resm package itself (its modules, and the shipped model that ``resm fold``
    reads when no ``--model`` is given)."""
    extra = tuple((what, Path(p)) for what, p in inputs.items() if p is not None and os.fspath(p) != "-")
    extra += (("the resm package", PACKAGE_DIR),)
    token = _INPUTS.set(_INPUTS.get() + extra)
    try:
        yield
    finally:
        _INPUTS.reset(token)


def check_not_input(path: str | os.PathLike, kind: str = "file", what: str = "") -> None:
    """Raise :class:`OutputError` if the output ``path`` is one of the declared inputs (through
    links), or, for a folder output (``kind`` "dir"), holds one."""
    if is_stream(path):
        return
    out = os.path.realpath(path)
    for name, inp in _INPUTS.get():
        clash = same_file(path, inp)
        if not clash and kind == "dir" and os.path.isdir(out):  # a folder output replacing a folder holding an input
            clash = os.path.realpath(inp).startswith(out.rstrip(os.sep) + os.sep)
        if not clash and os.path.isdir(inp) and os.path.lexists(path):  # replacing a file of a folder input
            clash = out.startswith(os.path.realpath(inp).rstrip(os.sep) + os.sep)
        if clash:
            label = f"{what} {path}" if what else str(path)
            where = f" ({inp})" if os.path.abspath(inp) != os.path.abspath(path) else ""
            held = "is" if same_file(path, inp) else "holds" if kind == "dir" else "is a file of"
            raise OutputError(f"{label}: {held} {name}{where}; an output may not replace an input (give another path)")


def check_distinct_outputs(outputs: dict[str, object]) -> None:
    """Refuse two outputs (``{option: path}``) that name the same file, through links."""
    seen: list[tuple] = []
    for opt, p in outputs.items():
        if p is None or is_stream(p):
            continue
        for other, q in seen:
            if same_file(p, q):
                raise OutputError(f"{other} and {opt} both name {p}" + (f" (through {q})" if str(p) != str(q) else ""))
        seen.append((opt, p))
