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
folder left by another job is refused. Rank 0 waits for every shard, merges them in order into
the one output file that a one-process run writes, then removes the folder. No process group
is needed: the ranks meet through the files (so the folder must be on a file system every
process sees).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, List, Optional

from .device import launch
from .io import atomic_path, atomic_write_text, suspended

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


class ShardRun:
    """The shards of one job, seen from one process.

    ``anchor`` is the output the work folder sits beside; ``job`` a JSON-able dict that pins the
    job (input fingerprint and every option that changes the output). ``sharded`` is False for a
    one-process run of a single shard: it then needs no work folder at all.
    """

    def __init__(self, anchor: Optional[Path], n_items: int, shard_size: int, job: dict, suffix: str,
                 log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)):
        if shard_size < 1:
            raise ShardError(f"--shard-size must be >= 1, got {shard_size}")
        me = launch()
        self.rank, self.world = me.rank, me.world
        self.n_items, self.shard_size, self.suffix, self.log = n_items, shard_size, suffix, log
        self.n_shards = max(1, -(-n_items // shard_size))
        self.sharded = self.world > 1 or self.n_shards > 1
        self.job = {**job, "n_items": n_items, "shard_size": shard_size}
        self.work: Optional[Path] = None
        if self.sharded:
            if anchor is None:
                raise ShardError(f"a sharded run ({self.world} processes, {self.n_shards} shards) needs an output file (-o)")
            anchor = Path(anchor)
            self.work = anchor.with_name(anchor.name + ".shards")

    # ----------------------------------------------------------------- the plan
    def block(self, s: int) -> range:
        """The record indices of shard ``s``."""
        return range(s * self.shard_size, min((s + 1) * self.shard_size, self.n_items))

    def mine(self) -> List[int]:
        """This process's shards, in order."""
        return list(range(self.rank, self.n_shards, self.world))

    def path(self, s: int) -> Path:
        assert self.work is not None
        return self.work / f"shard-{s:06d}-of-{self.n_shards:06d}{self.suffix}"

    def done(self, s: int) -> bool:
        return self.sharded and self.path(s).exists()

    # ----------------------------------------------------------------- the folder
    def prepare(self) -> None:
        """Create the work folder, or check that the one there belongs to this job."""
        if not self.sharded:
            return
        assert self.work is not None
        self.work.mkdir(parents=True, exist_ok=True)
        want = json.dumps(self.job, sort_keys=True, indent=1) + "\n"
        found = self.work / "job.json"
        if found.exists():
            if found.read_text() != want:
                raise ShardError(f"{self.work} holds the shards of another job (other input or options); "
                                 "remove it, or re-run the command that made it")
            # shards written before this process started: a resumed job (not the other ranks' work of this one)
            started = _process_start()
            finished = sum(self.path(s).exists() and self.path(s).stat().st_mtime < started for s in range(self.n_shards))
            if self.rank == 0 and finished:
                self.log(f"resuming: {finished} of {self.n_shards} shards already done in {self.work}")
        else:
            with suspended():
                atomic_write_text(found, want)  # every rank writes the same bytes

    def process(self, work: Callable[[int, range], None]) -> int:
        """``work(s, records)`` for each shard of this process not already done (it writes the
        shard, :meth:`write` or atomically itself); returns how many were skipped as done."""
        skipped = 0
        for s in self.mine():
            if self.done(s):
                skipped += 1
                continue
            work(s, self.block(s))
        return skipped

    def merge(self, combine: Callable[[List[Path]], None]) -> bool:
        """Rank 0 waits for every shard, has ``combine(paths in order)`` write the output, and
        removes the work folder; other ranks return at once. Whether this process merged."""
        if self.rank != 0:
            return False
        self.wait_all()
        combine(self.shard_paths())
        self.cleanup()
        return True

    def write(self, s: int, fill: Callable[[Path], None]) -> None:
        """Write shard ``s`` atomically: ``fill(tmp)`` writes the temporary file."""
        # a finished shard is on disk at once, even inside a command's transaction (so are the
        # per-record files its work writes): the other ranks and a resumed job read it
        with suspended(), atomic_path(self.path(s), self.suffix) as tmp:
            fill(tmp)

    def wait_all(self, poll: float = 0.5) -> None:
        """Block until every shard is written (rank 0, before merging)."""
        missing = [s for s in range(self.n_shards) if not self.path(s).exists()]
        while missing:
            time.sleep(poll)
            missing = [s for s in missing if not self.path(s).exists()]

    def shard_paths(self) -> List[Path]:
        return [self.path(s) for s in range(self.n_shards)]

    def cleanup(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)

    @staticmethod
    def hash_file(path: Optional[os.PathLike]) -> Optional[str]:
        """Identify a model file by path, size and modification time (cheap, for job.json)."""
        if path is None:
            return None
        p = Path(path)
        if not p.exists():
            return str(path)
        st = p.stat()
        return f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"
