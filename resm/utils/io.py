"""Writing outputs: staged beside their targets, put in place atomically, all or nothing.

* :func:`atomic_path`, :func:`atomic_dir`, :func:`merge_dir` and :func:`atomic_write_text`
  write to a hidden temporary beside the target (``.NAME.<host>-<pid>.<random>.tmp``) and
  rename it into place when the block ends without error; on any error the temporary is
  removed (on ``SIGTERM`` or ``SIGHUP`` the command line removes every temporary, :func:`abort_all`,
  and exits), so a target is never half-written. ``atomic_dir`` replaces a folder whole; ``merge_dir`` moves its files
  into a folder and leaves the folder's other files alone.
* :func:`transaction` makes several outputs one unit: inside it, those writes are staged and
  renamed into place together when the transaction ends without error, and all removed
  otherwise (with the folders created for them), so a command that fails writes nothing and
  a command that succeeds writes all of its outputs. The command line runs every command but
  the training ones inside one (a training run writes its checkpoints as it goes, and
  :func:`suspended` lets the loop do that even inside a transaction). Writes to a staged
  temporary, or into a staged folder, go straight in: that output is the unit.
* :func:`check_output` refuses, before any work, a target that cannot be written: a folder
  where a file goes (or the reverse), a path under a file, or a place where no file can be
  created (read-only or not a real folder: it tries), and a file output named as a folder
  (``out/``, ``out/.``: ``Path`` drops the ending, the command line keeps the path as typed).
* No output may replace an input (:mod:`resm.utils.paths`): every check and staging
  (:func:`check_output`, :meth:`Transaction.stage`, and the commit, for the files of a folder
  output too) refuses one.
* ``-`` (standard output) and special files (``/dev/stdout``, a named pipe, a terminal) are
  streamed: the output is staged in a private temporary file and copied into the stream at the
  commit, never renamed over it. An output that is a symbolic link is written to the link's
  target (staged beside the target and renamed there), so the link stays a link.
* A process killed with ``SIGKILL`` cannot clean up: its temporaries stay. The first write
  of a later run into the same folder removes those left by processes of this machine that
  are no longer running (their names carry host and process id).

Outputs get the permissions a plainly created file or folder would get: ``0666`` (files) or
``0777`` (folders) less the user's umask, or, when a file is replaced, the mode it had. (The
temporaries themselves are created private, as ``mkstemp``/``mkdtemp`` make them, and opened
up only when they are complete.)
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import tempfile
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .paths import (
    OutputError,
    check_not_input,
    is_stream,
)
from .stdout import STDOUT

__all__ = [
    "umask",
    "check_output",
    "transaction",
    "suspended",
    "atomic_path",
    "atomic_dir",
    "merge_dir",
    "atomic_write_text",
    "torch_save",
    "remove_stale",
    "held_signals",
    "defer_signal",
    "interrupted",
    "abort_all",
    "on_abort",
]


def umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: the classic read (set, then put back)
    os.umask(mask)
    return mask


def _file_mode(path: Path) -> int:
    try:
        st = path.stat()
        if stat.S_ISREG(st.st_mode):
            return stat.S_IMODE(st.st_mode)  # replacing a file keeps its permissions
    except OSError:
        pass
    return 0o666 & ~umask()


# ----------------------------------------------------------------------------- temporaries
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:16] or "host"


def _prefix(name: str) -> str:
    return f".{name}.{_host()}-{os.getpid()}."


def _aside_name(target: Path) -> Path:
    return target.with_name(f"{_prefix(target.name)}{secrets.token_hex(4)}.old.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


_SWEPT: set = set()  # folders already swept by this process


def remove_stale(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries in ``folder`` that resm processes of this machine left when they
    were killed (the name carries host and process id, and that process is gone); returns
    what was removed. Each folder is swept once per process."""
    key = os.path.abspath(folder)
    removed: list[Path] = []
    if key in _SWEPT:
        return removed
    _SWEPT.add(key)
    mark = re.compile(rf"\.{re.escape(_host())}-(\d+)\.")
    try:
        entries = list(os.scandir(key))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(".") and name.endswith(".tmp")):
            continue
        m = mark.search(name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            _remove(Path(entry.path))
            removed.append(Path(entry.path))
    return removed


def _why(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__


def _resolved(path: Path) -> Path:
    """``path`` with its symbolic links followed (also a dangling link's target)."""
    return Path(os.path.realpath(path)) if os.path.islink(path) else path


# ----------------------------------------------------------------------------- checks
def _nearest_existing(p: Path) -> Path:
    p = Path(os.path.abspath(p))
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _dangling_parent(path: Path) -> Path | None:
    """The folder before the first ``..`` of ``path`` when it does not exist: ``zz/../o.dbn``
    names no place (as the shell says), and writing there created ``zz`` to reach ``./o.dbn``,
    which no other output's check saw coming (``-o o.dbn --bpp-cache o.dbn/..``)."""
    parts = path.parts
    for k, part in enumerate(parts):
        if part == ".." and k and not os.path.isdir(Path(*parts[:k])):
            return Path(*parts[:k])
    return None


def _folder_name(path: str | os.PathLike) -> str | None:
    """The ending (``/``, ``/.``, ``/..``) by which ``path`` names a folder, or None. ``Path``
    drops it, so ``-o s.dbn/`` wrote the file ``s.dbn`` where the shell and ``cp`` take a
    folder."""
    text = os.fspath(path)
    seps = (os.sep, os.altsep) if os.altsep else (os.sep,)
    if text.endswith(seps) and text.strip("".join(seps)):
        return text[-1]
    name = os.path.basename(text)
    return f"{text[-len(name) - 1]}{name}" if name in (".", "..") and len(text) > len(name) else None


def _refuse_folder_name(path: str | os.PathLike, what: str = "") -> None:
    """A file output named as a folder (``out/``, ``out/.``) is an :class:`OutputError`."""
    ending = _folder_name(path)
    if ending is not None:
        label = f"{what} {path}" if what else str(path)
        raise OutputError(f"{label}: ends in '{ending}', so it names a folder; a file is to be written here")


def _foreign_folder(final: Path, earlier: Callable[[Path], bool]) -> None:
    """A folder that holds files and is no earlier output of the same kind (``earlier`` says)
    is never replaced: an :class:`OutputError` naming it."""
    if final.is_dir() and any(final.iterdir()) and not earlier(final):
        raise OutputError(f"{final}: is a folder that holds other files; not replacing it (give a new path)")


def check_output(
    path: str | os.PathLike,
    kind: str = "file",
    what: str = "",
    replaces: bool = True,
    earlier: Callable[[Path], bool] | None = None,
) -> None:
    """Raise :class:`OutputError` unless ``path`` can receive a ``kind`` output ("file", "dir"
    for a folder, or "any" of the two) that is no input (:func:`check_not_input`; ``replaces``:
    the folder is replaced whole, so it may hold no input either; ``what`` names the option).
    With ``earlier``, a folder output replaces an existing folder that holds files only when it
    is an earlier output of the same kind (as :meth:`Transaction.stage` with ``replaces``).
    Nothing is left behind: the check creates one temporary file in the nearest existing folder
    on the way and removes it."""
    if str(path) == "":
        raise OutputError("an output path is empty")
    if is_stream(path):
        if kind == "dir":
            label = f"{what} {path}" if what else str(path)
            raise OutputError(f"{label}: a folder is to be written here, and this is a stream")
        return
    if kind == "file":
        _refuse_folder_name(path, what)
    check_not_input(path, kind if replaces else "file", what)
    if (gone := _dangling_parent(Path(path))) is not None:
        label = f"{what} {path}" if what else str(path)
        raise OutputError(f"{label}: no such folder {gone} before its '..'")
    if os.path.islink(path):  # a link is written to its target: one that loops has none
        try:
            os.stat(path)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise OutputError(f"{path}: a symbolic link that loops ({_why(e)})") from None
    p = _resolved(Path(path))
    if kind == "file" and p.is_dir():
        raise OutputError(f"{p}: is a folder; a file is to be written here")
    if kind != "file" and os.path.lexists(p) and not p.is_dir():
        raise OutputError(f"{p}: is a file; a folder is to be written here")
    if kind == "dir" and earlier is not None:
        _foreign_folder(p, earlier)
    where = _nearest_existing(p if p.is_dir() and kind != "file" else p.parent)
    if not where.is_dir():
        raise OutputError(f"{p}: cannot be created, {where} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=_prefix("probe"), suffix=".tmp", dir=where)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{p}: cannot write in {where} ({_why(e)})") from None


# ----------------------------------------------------------------------------- transactions
@dataclass
class _Entry:
    final: Path
    tmp: Path
    kind: str  # "file", "dir" (replaces the folder) or "merge" (files moved into the folder)


_HELD = [0]  # depth of the open held_signals blocks
_DEFERRED: list[int] = []  # signals that came meanwhile


@contextlib.contextmanager
def held_signals() -> Iterator[None]:
    """Signals whose handler defers (:func:`defer_signal`: resm's SIGTERM handler) wait until
    the block ends, and are raised again then: a staging or a commit is never cut in two.
    (A Python-level hold: blocking the signal in the main thread would not do, as the kernel
    hands a process's signal to any thread that does not block it, torch's among them.)"""
    _HELD[0] += 1
    try:
        yield
    finally:
        _HELD[0] -= 1
        if _HELD[0] == 0 and _DEFERRED:
            signum = _DEFERRED[0]
            _DEFERRED.clear()
            signal.raise_signal(signum)


def defer_signal(signum: int) -> bool:
    """For a signal handler, first thing: inside :func:`held_signals` the signal is kept for
    the end of the block and this returns True (the handler then returns at once)."""
    if _HELD[0]:
        _DEFERRED.append(signum)
        return True
    return False


def interrupted(e: BaseException) -> bool:
    """Whether ``e`` is Ctrl-C (``KeyboardInterrupt``), or an error raised because of it: a
    library may wrap the interrupt in its own exception (Python itself makes it a RuntimeError
    when it lands in a class's ``__set_name__``, as while matplotlib is being imported), which
    was then said as an unexpected error with exit code 1 instead of 'interrupted' and 130."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


@dataclass(eq=False)
class Transaction:
    """Outputs staged as temporaries, put in place together by :meth:`commit`."""

    entries: dict[str, _Entry] = field(default_factory=dict)
    made: list[Path] = field(default_factory=list)  # folders created for the outputs, outermost first
    said: list[tuple[str, object]] = field(default_factory=list)  # announce()'s lines, said after the commit

    def __post_init__(self) -> None:
        _LIVE.add(self)

    def holds(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` is one of this transaction's temporaries or lies inside one (a
        write there is part of a staged output already)."""
        p = os.path.abspath(path)
        return any(
            p == os.path.abspath(e.tmp) or p.startswith(os.path.abspath(e.tmp) + os.sep) for e in self.entries.values()
        )

    def _parent(self, final: Path) -> None:
        missing = []
        p = Path(os.path.abspath(final.parent))
        while not os.path.lexists(p) and p != p.parent:
            missing.append(p)
            p = p.parent
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{final}: cannot create its folder {final.parent} ({_why(e)})") from None
        self.made.extend(reversed(missing))

    def stage(
        self,
        final: str | os.PathLike,
        kind: str = "file",
        suffix: str = "",
        replaces: Callable[[Path], bool] | None = None,
    ) -> Path:
        """A new temporary for ``final``; staging the same target again replaces the first.
        An existing folder that is not empty is replaced (kind "dir") only when ``replaces``
        says it is an earlier output of the same kind."""
        if is_stream(final):
            if kind != "file":
                raise OutputError(f"{final}: a folder is to be written here, and this is a stream")
            return self._stage_stream(Path(final), suffix)
        if kind == "file":
            _refuse_folder_name(final)
        check_not_input(final, "dir" if kind == "dir" else "file")
        final = _resolved(Path(final))  # a link: written to its target, the link stays
        if kind == "file" and final.is_dir():
            raise OutputError(f"{final}: is a folder; a file is to be written here")
        if kind != "file" and os.path.lexists(final) and not final.is_dir():
            raise OutputError(f"{final}: is a file; a folder is to be written here")
        if kind == "dir":
            _foreign_folder(final, replaces or (lambda _: False))
        self._parent(final)
        remove_stale(final.parent)
        key = os.path.abspath(final)
        old = self.entries.pop(key, None)
        if old is not None:
            _remove(old.tmp)
        with held_signals():  # created and recorded together: abort_all() finds every temporary
            try:
                if kind == "file":
                    fd, tmp = tempfile.mkstemp(prefix=_prefix(final.name), suffix=suffix + ".tmp", dir=final.parent)
                    os.close(fd)
                else:
                    tmp = tempfile.mkdtemp(prefix=_prefix(final.name), suffix=".tmp", dir=final.parent)
            except OSError as e:
                raise OutputError(f"{final}: cannot write in {final.parent} ({_why(e)})") from None
            self.entries[key] = _Entry(final, Path(tmp), kind)
        return Path(tmp)

    def _stage_stream(self, final: Path, suffix: str) -> Path:
        """A private temporary for a streamed output, copied into the stream at the commit,
        after the streamed outputs staged before it: two outputs to one stream are written one
        after the other whatever they call it (``-o - --bpp -`` as ``-o - --bpp /dev/stdout``),
        where the second staged under the same name replaced the first, lost with exit code 0."""
        key = f"stream:{len(self.entries)}:{final}"
        with held_signals():
            fd, tmp = tempfile.mkstemp(prefix="resm-stream-", suffix=suffix + ".tmp")
            os.close(fd)
            self.entries[key] = _Entry(final, Path(tmp), "stream")
        return Path(tmp)

    def discard(self, tmp: Path) -> None:
        """Drop one staged output (its temporary is removed)."""
        for key, e in list(self.entries.items()):
            if e.tmp == tmp:
                del self.entries[key]
                _remove(e.tmp)

    def abort(self) -> None:
        """Remove every temporary, and the folders created for them if they are empty."""
        for e in self.entries.values():
            _remove(e.tmp)
        self.entries.clear()
        for d in reversed(self.made):
            with contextlib.suppress(OSError):
                d.rmdir()
        self.made.clear()

    def commit(self) -> None:
        """Rename every temporary into place. With several outputs, what they replace is kept
        aside until all are in, and put back if one fails. resm's SIGTERM handler waits until
        the commit is through (:func:`held_signals`); Ctrl-C in the middle puts back what it
        replaced."""
        with held_signals():
            self._commit()

    def _guard(self) -> None:
        """Before anything is put in place: no target is an input (the files of a folder
        output included, whose names are known only now)."""
        try:
            for e in self.entries.values():
                if e.kind == "merge":
                    for f in e.tmp.iterdir():
                        check_not_input(e.final / f.name)
                elif e.kind != "stream":
                    check_not_input(e.final, "dir" if e.kind == "dir" else "file")
        except BaseException:
            self.abort()
            raise

    def _commit(self) -> None:
        self._guard()
        files = [e for e in self.entries.values() if e.kind != "stream"]
        keep = len(files) > 1
        undo: list[Callable[[], None]] = []
        done: list[Callable[[], None]] = []
        try:
            for e in files:
                self._install(e, keep, undo, done)
            for e in self.entries.values():  # streams last: what went into them cannot be taken back
                if e.kind == "stream":
                    _copy_to_stream(e.tmp, e.final)
                    _remove(e.tmp)
        except BaseException as err:
            for u in reversed(undo):
                with contextlib.suppress(OSError):
                    u()
            self.abort()
            shown = STDOUT if str(e.final) == "-" else e.final
            if isinstance(err, BrokenPipeError) and e.kind == "stream":  # its reader left: as SIGPIPE
                raise BrokenPipeError(err.errno, err.strerror, str(shown)) from None
            if isinstance(err, OSError):
                raise OutputError(f"{shown}: cannot be put in place ({_why(err)})") from None
            raise
        for d in done:
            with contextlib.suppress(OSError):
                d()
        self.entries.clear()
        self.made.clear()

    @staticmethod
    def _put(tmp: Path, target: Path, keep: bool, undo: list, done: list) -> None:
        """``os.replace(tmp, target)``; with ``keep``, the file it replaces is kept aside (a
        hard link) until the commit is through, so that a failed commit can restore it."""
        backup = None
        if keep and os.path.lexists(target):
            backup = _aside_name(target)
            try:
                os.link(target, backup)
            except OSError:
                shutil.copy2(target, backup)
        try:
            os.replace(tmp, target)
        except BaseException:
            if backup is not None:
                backup.unlink()
            raise
        if backup is None:
            undo.append(lambda: _remove(target))
        else:
            undo.append(lambda: os.replace(backup, target))
            done.append(lambda: backup.unlink())

    def _install(self, e: _Entry, keep: bool, undo: list, done: list) -> None:
        if e.kind == "file":
            os.chmod(e.tmp, _file_mode(e.final))
            self._put(e.tmp, e.final, keep, undo, done)
        elif e.kind == "dir":
            _open_up(e.tmp)
            if e.final.exists():
                old = _aside_name(e.final)
                os.replace(e.final, old)
                undo.append(lambda: os.replace(old, e.final))
                os.replace(e.tmp, e.final)
                undo.append(lambda: shutil.rmtree(e.final))
                done.append(lambda: shutil.rmtree(old))
            else:
                os.replace(e.tmp, e.final)
                undo.append(lambda: shutil.rmtree(e.final))
        else:
            if not e.final.is_dir():
                e.final.mkdir()
                undo.append(lambda: shutil.rmtree(e.final))
            for f in sorted(e.tmp.iterdir()):
                target = e.final / f.name
                if f.is_file():
                    os.chmod(f, _file_mode(target))
                self._put(f, target, True, undo, done)  # several files: always restorable
            e.tmp.rmdir()


def _copy_to_stream(tmp: Path, final: Path) -> None:
    """Copy a staged output into standard output (``-``) or a special file."""
    import sys

    with open(tmp, "rb") as src:
        if str(final) == "-":
            sys.stdout.flush()
            out = getattr(sys.stdout, "buffer", None)
            if out is None:
                sys.stdout.write(src.read().decode("utf-8", errors="replace"))
            else:
                shutil.copyfileobj(src, out)
                out.flush()
            sys.stdout.flush()
        else:
            with open(final, "ab") as dst:  # append: a regular file behind /dev/stdout is not cut
                shutil.copyfileobj(src, dst)


def _open_up(folder: Path) -> None:
    """A staged folder and what is in it get the modes of plainly created ones (some writers,
    safetensors for one, create their files private)."""
    mask = umask()
    for root, _dirs, files in os.walk(folder):
        os.chmod(root, 0o777 & ~mask)
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                os.chmod(p, 0o666 & ~mask)


_CURRENT: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar("resm_outputs", default=None)
_LIVE: weakref.WeakSet[Transaction] = weakref.WeakSet()  # every transaction not yet collected
_UNDO: list[Callable[[], None]] = []  # the undo actions of the open on_abort blocks


def abort_all() -> None:
    """Remove the temporaries of every transaction of this process and run the undo action of
    every open :func:`on_abort` block (newest first): what the command line's SIGTERM handler
    does before it exits (it cannot rely on an exception reaching the ``except`` blocks: Python
    drops one raised inside a fork hook or a finaliser)."""
    for tx in list(_LIVE):
        tx.abort()
    for undo in reversed(list(_UNDO)):
        with contextlib.suppress(Exception):
            undo()
    _UNDO.clear()


@contextlib.contextmanager
def on_abort(undo: Callable[[], None]) -> Iterator[None]:
    """While the block runs, :func:`abort_all` (a SIGTERM at the command line) calls ``undo``:
    for work that is written as it goes rather than staged (a training run's folder)."""
    _UNDO.append(undo)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            _UNDO.remove(undo)


@contextlib.contextmanager
def transaction() -> Iterator[Transaction]:
    """Make every atomic write inside the block part of one all-or-nothing unit (see the
    module notes). A transaction opened inside another one joins it."""
    outer = _CURRENT.get()
    if outer is not None:
        yield outer
        return
    tx = Transaction()
    token = _CURRENT.set(tx)
    try:
        yield tx
    except BaseException:
        tx.abort()
        raise
    finally:
        _CURRENT.reset(token)
    tx.commit()
    for line, stream in tx.said:
        _say(line, stream)


def _say(line: str, stream) -> None:
    """Say a summary once the outputs are in place. A stream that cannot take it (a full disk,
    a closed standard output, a reader gone) does not undo a command whose outputs are written:
    the line is dropped (resm fold x.fa -o s.dbn > /dev/full wrote s.dbn and exited 1)."""
    try:
        print(line, file=stream)
        stream.flush()
    except OSError:
        abandon = getattr(stream, "abandon", None)  # standard output's (resm.utils.stdout)
        if abandon is not None:
            abandon()


def announce(line: str, stream=None) -> None:
    """Say a command's summary of what it wrote (``wrote X``) on ``stream`` (default: standard
    output) once the outputs are in place: inside a transaction the line waits for the commit,
    so a commit that fails (a full disk, a stream whose reader left) never follows a line
    claiming the write; outside one it is said at once."""
    import sys

    stream = stream if stream is not None else sys.stdout
    tx = _CURRENT.get()
    if tx is None:
        _say(line, stream)
    else:
        tx.said.append((line, stream))


@contextlib.contextmanager
def suspended() -> Iterator[None]:
    """Writes inside the block go in place at once, even within a transaction (a training
    run's checkpoints and final model)."""
    token = _CURRENT.set(None)
    try:
        yield
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def _staged(
    path: str | os.PathLike, kind: str, suffix: str = "", replaces: Callable[[Path], bool] | None = None
) -> Iterator[Path]:
    tx = _CURRENT.get()
    own = tx is None or tx.holds(path)
    if own:
        tx = Transaction()
    tmp = tx.stage(path, kind, suffix, replaces)
    try:
        yield tmp
    except BaseException:
        if own:
            tx.abort()
        else:
            tx.discard(tmp)
        raise
    if own:
        tx.commit()


def atomic_path(path: str | os.PathLike, suffix: str = "") -> contextlib.AbstractContextManager:
    """Yield a temporary path beside ``path``; when the block ends without error it replaces
    ``path`` (at once, or when the enclosing :func:`transaction` commits); on error it is
    removed, so ``path`` is never half-written."""
    return _staged(path, "file", suffix)


def atomic_dir(
    path: str | os.PathLike, replaces: Callable[[Path], bool] | None = None
) -> contextlib.AbstractContextManager:
    """Like :func:`atomic_path` for a folder: fill the yielded folder; it then replaces ``path``.
    An existing ``path`` that holds files is replaced only if ``replaces(path)`` says it is an
    earlier output of the same kind (say, a model folder); otherwise it is an OutputError."""
    return _staged(path, "dir", replaces=replaces)


def merge_dir(path: str | os.PathLike) -> contextlib.AbstractContextManager:
    """A temporary folder whose files are moved into ``path`` (created if needed; its other
    files are left alone) when the block ends without error."""
    return _staged(path, "merge")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` through an open file, as every staged torch file is written:
    given a path, torch names the folder inside its zip archive after the file, which for a
    staged temporary held the host, the process id and random letters (``.model.pt.vm-17702.r8g9ddh4/``
    in every model.pt), so two runs of one command wrote different bytes. Written through a
    file, the folder is torch's own ``archive/``."""
    import torch

    with open(path, "wb") as fh:
        torch.save(obj, fh)
