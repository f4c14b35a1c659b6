"""Standard output for one command of the command line (:func:`for_command`).

* Writes to it are whole or an error: under ``PYTHONUNBUFFERED=1`` or ``python -u`` Python's
  standard output is unbuffered, and a write that a pipe's reader cuts short by leaving (``resm
  fold x.fa | head -1``) returns a short count that Python's text layer drops without a word,
  so the command exited 0 with its output cut. Here a short write is written on until done
  or refused (then ``BrokenPipeError``, as a buffered stream says).
* Its errors name it: a write that fails with no file name (``resm schemes > /dev/full``)
  says ``standard output: No space left on device``, not the bare ``No space left on device``.
* It is flushed before the command ends, so that a failure is the command's one-line error,
  not Python's "Exception ignored" at exit (exit code 120).
* :func:`stdout_gone`: whether its reader has left (``| head``), after which nothing more is
  written to it.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from collections.abc import Callable, Iterator

__all__ = ["STDOUT", "guarded", "for_command", "failed", "stdout_gone", "named", "require_stdout"]

STDOUT = "standard output"  # how an error names it


def named(e: OSError) -> OSError:
    """``e`` naming standard output when it names no file (the same exception type, so that a
    reader gone stays a ``BrokenPipeError``)."""
    if e.filename is not None or e.errno is None:
        return e
    return type(e)(e.errno, e.strerror, STDOUT)


class _Binary:
    """Standard output's byte layer, writing whole and naming its errors."""

    def __init__(self, inner):
        self._inner = inner

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        try:
            if not isinstance(self._inner, io.RawIOBase):  # a buffered layer writes all or raises
                return self._inner.write(view)
            done = 0
            while done < len(view):
                n = self._inner.write(view[done:])
                if not n:  # a pipe whose reader left mid-write: the next write says so
                    n = os.write(self._inner.fileno(), view[done:])
                done += n
            return done
        except OSError as e:
            raise named(e) from None

    def flush(self) -> None:
        try:
            self._inner.flush()
        except OSError as e:
            raise named(e) from None

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


class _Text:
    """Standard output's text layer over :class:`_Binary` when Python's own would drop a short
    write (an unbuffered one), else Python's own with its errors named. A write that failed is
    said again at the next flush: argparse, for one, drops the errors of its writes (``resm
    --help > /dev/full`` exited 0)."""

    def __init__(self, inner):
        self._inner = inner
        raw = getattr(inner, "buffer", None)
        self.buffer = _Binary(raw) if raw is not None else None
        self._own = isinstance(raw, io.RawIOBase)  # unbuffered: encode and write whole here
        self._failed: OSError | None = None

    def write(self, text: str) -> int:
        try:
            if not self._own:
                return self._inner.write(text)
            self._inner.flush()
            self.buffer.write(text.encode(self._inner.encoding or "utf-8", self._inner.errors or "strict"))
            return len(text)
        except OSError as e:
            self._failed = named(e)
            raise self._failed from None

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._failed is not None:
            raise self._failed
        try:
            self._inner.flush()
        except OSError as e:
            raise named(e) from None

    def abandon(self) -> None:
        """After the command's error was said, or for a summary said once the outputs are in
        place (:func:`resm.utils.io.announce`): what standard output still holds is dropped when
        it cannot be written, rather than said as a (second) error."""
        try:
            self.flush()
        except OSError:
            drop()
            self._failed = None

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


class _Closed:
    """Standard output when there is none (``resm schemes >&-``): a write is an error naming it,
    as a shell's is (print() to a missing stream said nothing, exit 0)."""

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "closed", STDOUT)

    def flush(self) -> None:
        pass


def require_stdout() -> None:
    """Before a command whose output is standard output does its work: the error its first write
    would raise (``standard output: closed``) when there is none (``resm fold x.fa >&-``), where
    the command did all its work and failed only when it wrote."""
    out = sys.stdout
    if out is None or isinstance(out, _Closed) or isinstance(getattr(out, "_inner", None), _Closed):
        raise OSError(errno.EBADF, "closed", STDOUT)


@contextlib.contextmanager
def for_command() -> Iterator[_Text]:
    """Within the block, ``sys.stdout`` writes whole and names itself in its errors (the module's
    docstring); the block's end flushes it (a failure raised there, named). A closed standard
    error (``2>&-``) becomes ``/dev/null``: the progress bars and messages have nowhere to go,
    and they crashed the command ('NoneType' object has no attribute 'write'); the exit code
    still tells. The streams replaced are put back. Yields standard output."""
    real, real_err = sys.stdout, sys.stderr
    sys.stdout = out = _Text(real if real is not None else _Closed())
    err = None
    if real_err is None:
        sys.stderr = err = open(os.devnull, "w")  # noqa: SIM115 (closed below)
    try:
        yield out
        out.flush()
    finally:
        sys.stdout, sys.stderr = real, real_err
        if err is not None:
            err.close()


def guarded(run: Callable[[], int], prog: str) -> int:
    """``run()`` (a command: its exit code) with standard output :func:`for_command`'s; what is
    left for it is flushed before the end (for argparse's ``--help`` too), or dropped after the
    command said its error. A failure to write it is :func:`failed`'s (``prog``: who says it)."""
    try:
        with for_command() as out:
            try:
                code = run()
            except SystemExit as e:  # argparse: --help, --version, a bad command line
                out.abandon() if e.code else out.flush()
                raise
            if code:  # its error is said: one line
                out.abandon()
            return code
    except OSError as e:  # standard output, at the last flush
        return failed(prog, named(e))


def failed(prog: str, e: OSError) -> int:
    """Say an OSError in one line (``<prog>: error: <file>: <why>``) and give the exit code 1;
    but quiet with 141 when standard output's reader left (``| head``: no error of the input,
    and SIGPIPE's code). After a failed write to standard output nothing more is written to it
    (Python's flush at exit would fail again)."""
    if isinstance(e, BrokenPipeError) and stdout_gone():
        return 141
    if e.filename == STDOUT:
        drop()
    if e.filename is None and e.strerror is None:  # raised with a message of its own
        what = str(e) or type(e).__name__
    else:
        from .paths import broken_link

        where = f"{e.filename}" + (f" -> {e.filename2}" if e.filename2 else "") if e.filename else ""
        why = e.strerror or type(e).__name__
        if isinstance(e, FileNotFoundError) and e.filename and not e.filename2:  # a link to nothing is there
            why = broken_link(e.filename) or why
        what = f"{where}: {why}" if where else why
    say_error(f"{prog}: error: {' '.join(ln.strip() for ln in what.splitlines() if ln.strip())}")
    return 1


def say_error(line: str) -> None:
    """A command's last word (its one-line error, or 'interrupted') on stderr, after the progress
    bars a failure left drawn are closed: a run that failed mid-way (a training file missing)
    glued its error to a half-drawn bar, and the bars were drawn again below it at exit."""
    bars = getattr(sys.modules.get("tqdm"), "tqdm", None)  # tqdm's live bars, of every kind
    for bar in sorted(getattr(bars, "_instances", ()), key=lambda b: -getattr(b, "pos", 0)):
        with contextlib.suppress(Exception):  # a bar on a stream gone: the error is said all the same
            bar.close()
    print(line, file=sys.stderr)


def stdout_gone() -> bool:
    """Whether standard output is a pipe whose reader has left (``resm fold x.fa | head -1``
    once ``head`` is done). Then standard output is pointed at ``/dev/null``, so that
    nothing more (Python's own flush at exit included) fails writing to it."""
    import select

    try:
        fd = sys.__stdout__.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        if not any(ev & select.POLLERR for _, ev in poller.poll(0)):
            return False
        drop()
        return True
    except (OSError, ValueError, AttributeError):  # no file descriptor, or no poll here
        return False


def drop() -> None:
    """Point standard output at ``/dev/null``: after a write to it failed (a full disk), what
    Python still holds for it would fail again at exit ("Exception ignored", exit code 120)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fd = sys.__stdout__.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
