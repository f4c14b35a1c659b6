"""Sharded runs of the inference commands (``resm embed``, ``resm fold``) under ``torchrun``.

The records are cut into fixed blocks of ``shard_size`` consecutive records, shard s holding
records ``s * shard_size`` up to the next block; shard s belongs to rank ``s % world``. The
blocks depend only on the input and ``shard_size``, never on the number of processes, so a
one-process run computes exactly what a run over N processes does (batches are formed inside
a shard), and a job killed and re-started with another process count still reuses every
finished shard.

Shards are written into a work folder beside the output, ``<output>.shards/``, each one atomically
(a temporary file renamed into place when the shard is complete), next to ``job.json``, the
fingerprint of the job (input, options, shard size): a re-run skips the finished shards, and a
folder left by another job is refused. A shard proves its contents: once its file is in place,
a manifest beside it (``shard-...-of-....<suffix>.json``) records its index, the ids of its
records, the SHA-256 of its file and of ``job.json``; a shard counts as finished only with its
manifest, and the merge checks every shard against its manifest, the job and the input's ids
before it reads any (the readers then check the ids inside the shard too), refusing in one line
that names the shard file: no wrong merge exits 0. Rank 0 waits for every shard, merges them in order into
the one output file that a one-process run writes, then removes the folder. No process group
is needed: the ranks meet through the files (so the folder must be on a file system every
process sees).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .device import launch
from .io import atomic_path, atomic_write_text, suspended
from .jsontext import load_json

__all__ = ["ShardError", "ShardRun", "fingerprint_records", "DEFAULT_SHARD_SIZE"]

DEFAULT_SHARD_SIZE = 1000


class ShardError(ValueError):
    """A work folder that belongs to another job, or a sharded run without an output."""


def fingerprint_records(records: Iterable) -> str:
    """SHA-256 of ``(id, sequence)`` records (any objects with ``str`` forms), in order."""
    h = hashlib.sha256()
    for rec in records:
        for x in rec:
            h.update(str(x).encode())
            h.update(b"\0")
        h.update(b"\n")
    return h.hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _one_line(e: BaseException) -> str:
    return " ".join(str(getattr(e, "strerror", None) or e).split()) or type(e).__name__


def _differing(found: str, want: str) -> str:
    """``": key, key differ"``: the entries of this job's ``job.json`` (``want``) that the found
    one lacks or holds with another value, named as this job names them (the found file's own
    extra entries only counted: it may be anything); empty when the found one is no JSON object."""
    try:
        a, b = json.loads(found), json.loads(want)
    except ValueError:
        return ""
    if not isinstance(a, dict):
        return ""
    keys = sorted(k for k in b if a.get(k, ...) != b[k])
    parts = [f"{', '.join(keys)} differ{'s' if len(keys) == 1 else ''}"] if keys else []
    if any(k not in b for k in a):
        parts.append("it holds entries this job has none of")
    return ": " + "; ".join(parts) if parts else ""


def _process_start() -> float:
    """When this process started (epoch seconds; Linux /proc, else now)."""
    try:
        with open("/proc/self/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as fh:
            boot = next(float(line.split()[1]) for line in fh if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


_OPEN: list[ShardRun] = []  # the run whose work folder this process prepared (its job's), until cleaned up


def interrupted_note() -> str:
    """What an interrupted command says of its shard work folders: the finished shards kept for
    a resumed run, or nothing, a folder that holds no finished shard of a one-process run being
    removed (it kept only the job's description)."""
    notes = []
    runs, _OPEN[:] = list(_OPEN), []
    for run in runs:
        if not run.work or not run.work.is_dir():
            continue
        finished = run.drop_unfinished()
        if finished:
            notes.append(
                f"{finished} of {run.n_shards} shards are kept in {run.work} (run the same command again to resume)"
            )
    return "".join(f"; {n}" for n in notes)


class ShardRun:
    """The shards of one job, seen from one process.

    ``anchor`` is the output the work folder sits beside; ``job`` a JSON-able dict that pins the
    job (input fingerprint and every option that changes the output). ``sharded`` is False for a
    one-process run of a single shard: it then needs no work folder at all.
    """

    def __init__(
        self,
        anchor: Path | None,
        n_items: int,
        shard_size: int,
        job: dict,
        suffix: str,
        log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
        ids: list[str] | None = None,
    ):
        if shard_size < 1:
            raise ShardError(f"--shard-size must be >= 1, got {shard_size}")
        me = launch()
        self.rank, self.world = me.rank, me.world
        self.n_items, self.shard_size, self.suffix, self.log = n_items, shard_size, suffix, log
        self.n_shards = max(1, -(-n_items // shard_size))
        self.sharded = self.world > 1 or self.n_shards > 1
        self.job = {**job, "n_items": n_items, "shard_size": shard_size}
        self.ids = list(ids) if ids is not None else [str(k) for k in range(n_items)]  # the records' ids, in order
        if len(self.ids) != n_items:
            raise ShardError(f"{len(self.ids)} ids for {n_items} records")
        self.work: Path | None = None
        self.made: list[Path] = []  # the folders prepare() created for the work folder, outermost first
        if self.sharded:
            if anchor is None:
                raise ShardError(
                    f"a sharded run ({self.world} processes, {self.n_shards} shards) needs an output file (-o)"
                )
            from .paths import is_stream

            if is_stream(anchor):
                raise ShardError(
                    f"a sharded run ({self.world} processes, {self.n_shards} shards) needs an output file "
                    f"for its work folder, not the stream {anchor}"
                )
            anchor = Path(anchor)
            self.work = anchor.with_name(anchor.name + ".shards")

    # ----------------------------------------------------------------- the plan
    def block(self, s: int) -> range:
        """The record indices of shard ``s``."""
        return range(s * self.shard_size, min((s + 1) * self.shard_size, self.n_items))

    def mine(self) -> list[int]:
        """This process's shards, in order."""
        return list(range(self.rank, self.n_shards, self.world))

    def path(self, s: int) -> Path:
        assert self.work is not None
        return self.work / f"shard-{s:06d}-of-{self.n_shards:06d}{self.suffix}"

    def manifest(self, s: int) -> Path:
        """The file that proves shard ``s``'s contents (written once the shard is in place)."""
        p = self.path(s)
        return p.with_name(p.name + ".json")

    def expected_ids(self, s: int) -> list[str]:
        """The ids of the records of shard ``s``, from the input."""
        return [self.ids[k] for k in self.block(s)]

    def done(self, s: int) -> bool:
        return self.sharded and self.path(s).exists() and self.manifest(s).exists()

    def _job_text(self) -> str:
        return json.dumps(self.job, sort_keys=True, indent=1) + "\n"

    def seal(self, s: int) -> None:
        """Write the manifest of shard ``s``, whose file is in place: its index, its records'
        ids, its checksum and the job's."""
        info = {
            "shard": s,
            "n_shards": self.n_shards,
            "ids": self.expected_ids(s),
            "sha256": _sha256(self.path(s)),
            "job_sha256": hashlib.sha256(self._job_text().encode()).hexdigest(),
        }
        with suspended():
            atomic_write_text(self.manifest(s), json.dumps(info) + "\n")

    def verify(self, s: int) -> None:
        """Refuse (:class:`ShardError`, naming the shard file) a shard whose file or manifest is
        missing, unreadable, of another job, index or records, or whose checksum differs."""
        path, man = self.path(s), self.manifest(s)
        again = f"remove it (and {man.name}) and re-run the command to recompute that shard"
        if not path.exists():
            raise ShardError(f"{path}: missing; re-run the command to recompute that shard")
        try:
            info = load_json(man.read_text(encoding="utf-8"))
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            raise ShardError(f"{path}: its manifest {man} cannot be read ({_one_line(e)}); {again}") from None
        want_job = hashlib.sha256(self._job_text().encode()).hexdigest()
        if info.get("job_sha256") != want_job:
            raise ShardError(f"{path}: written by another job (its manifest's job checksum differs); {again}")
        if info.get("shard") != s or info.get("n_shards") != self.n_shards:
            raise ShardError(
                f"{path}: its manifest says shard {info.get('shard')} of {info.get('n_shards')}, "
                f"this is shard {s} of {self.n_shards}; {again}"
            )
        if info.get("ids") != self.expected_ids(s):
            raise ShardError(f"{path}: holds other records than the input's shard {s} (ids differ); {again}")
        try:
            digest = _sha256(path)
        except OSError as e:
            raise ShardError(f"{path}: cannot be read ({_one_line(e)}); {again}") from None
        if digest != info.get("sha256"):
            raise ShardError(
                f"{path}: its contents changed since it was written (SHA-256 differs from its manifest's); {again}"
            )

    def check_ids(self, s: int, found: list[str]) -> None:
        """Refuse a shard whose records, as read, are not the input's (ids in order)."""
        want = self.expected_ids(s)
        if list(found) != want:
            extra = [i for i in found if i not in set(want)][:3]
            lost = [i for i in want if i not in set(found)][:3]
            what = (
                f"lacks {', '.join(map(repr, lost))}"
                if lost
                else f"holds {', '.join(map(repr, extra))} too"
                if extra
                else "holds its records in another order or twice"
            )
            raise ShardError(
                f"{self.path(s)}: {what} (expected the {len(want)} records of shard {s}); "
                "remove it and re-run the command to recompute that shard"
            )

    # ----------------------------------------------------------------- the folder
    def prepare(self) -> None:
        """Create the work folder, or check that the one there belongs to this job."""
        if not self.sharded:
            return
        assert self.work is not None
        missing = []  # the folders made on the way are the run's too: cleanup() removes them when empty
        p = Path(os.path.abspath(self.work.parent))
        while not os.path.lexists(p) and p != p.parent:
            missing.append(p)
            p = p.parent
        self.work.mkdir(parents=True, exist_ok=True)
        self.made = list(reversed(missing))
        want = self._job_text()
        found = self.work / "job.json"
        if found.exists():
            text = found.read_text(encoding="utf-8", errors="replace")
            if text != want:
                raise ShardError(
                    f"{self.work} holds the shards of another job (other input or options{_differing(text, want)}); "
                    "remove it, or re-run the command that made it"
                )
            # shards written before this process started: a resumed job (not the other ranks' work of this one)
            started = _process_start()
            finished = sum(self.done(s) and self.path(s).stat().st_mtime < started for s in range(self.n_shards))
            if self.rank == 0 and finished:
                self.log(f"resuming: {finished} of {self.n_shards} shards already done in {self.work}")
        else:
            with suspended():
                atomic_write_text(found, want)  # every rank writes the same bytes
        _OPEN[:] = [self]  # this job's folder (a command runs one job; an earlier one's is forgotten)

    def process(self, work: Callable[[int, range], None]) -> int:
        """``work(s, records)`` for each shard of this process not already done (it writes the
        shard, :meth:`write` or atomically itself); returns how many were skipped as done. The
        finished shards are verified (:meth:`verify`) first."""
        skipped = 0
        mine = self.mine()
        for s in mine:  # a finished shard is checked before any work: a wrong one is refused at once
            if self.done(s):
                self.verify(s)
        try:
            for s in mine:
                if self.done(s):
                    skipped += 1
                    continue
                work(s, self.block(s))
        except BaseException:  # an error or Ctrl-C: a work folder with nothing finished is not left behind
            self.drop_unfinished()
            raise
        return skipped

    def drop_unfinished(self) -> int:
        """How many shards are finished; with none, a one-process run's work folder (and the
        folders made for it) is removed, as it holds only the job's description. (Under a
        launcher the other processes may still be writing theirs.)"""
        if not self.work or not self.work.is_dir():
            return 0
        finished = sum(self.done(s) for s in range(self.n_shards))
        if not finished and self.world == 1:
            self.cleanup()
        return finished

    def merge(self, combine: Callable[[list[Path]], None]) -> bool:
        """Rank 0 waits for every shard, has ``combine(paths in order)`` write the output, and
        removes the work folder; other ranks return at once. Whether this process merged."""
        if self.rank != 0:
            return False
        self.wait_all()
        for s in range(self.n_shards):
            self.verify(s)
        combine(self.shard_paths())
        self.cleanup()
        return True

    def write(self, s: int, fill: Callable[[Path], None]) -> None:
        """Write shard ``s`` atomically: ``fill(tmp)`` writes the temporary file."""
        # a finished shard is on disk at once, even inside a command's transaction (so are the
        # per-record files its work writes): the other ranks and a resumed job read it
        with suspended(), atomic_path(self.path(s), self.suffix) as tmp:
            fill(tmp)
        self.seal(s)

    def wait_all(self, poll: float = 0.5) -> None:
        """Block until every shard is written (rank 0, before merging)."""
        missing = [s for s in range(self.n_shards) if not self.done(s)]
        while missing:
            time.sleep(poll)
            missing = [s for s in missing if not self.done(s)]

    def shard_paths(self) -> list[Path]:
        return [self.path(s) for s in range(self.n_shards)]

    def cleanup(self) -> None:
        """Remove the work folder, and the folders :meth:`prepare` created for it that are left
        empty (an interrupted ``resm fold x.fa -o new/s.dbn`` left ``new/`` behind)."""
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
        for d in reversed(self.made):
            with contextlib.suppress(OSError):
                d.rmdir()
        self.made = []
        if self in _OPEN:
            _OPEN.remove(self)

    @staticmethod
    def hash_file(path: os.PathLike | None) -> str | None:
        """Identify a model file by path, size and modification time (cheap, for job.json)."""
        if path is None:
            return None
        p = Path(path)
        if not p.exists():
            return str(path)
        st = p.stat()
        return f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"
