"""A DeepSpeed op's build lock that no process holds is refused before DeepSpeed starts.

DeepSpeed builds an op it lacks through torch's cpp_extension (on a CPU, deepspeed_shm_comm as
it starts), under a lock file (torch.utils.file_baton.FileBaton: created exclusively, held open
by the build, removed when it ends) that every other start waits on with no time limit. A start
killed during the build left ``<torch_extensions>/deepspeed_shm_comm/lock`` behind, and every
later DeepSpeed start on the machine waited forever. Such a lock, open in no process, is now a
one-line error naming the file (kept: the user removes it). These tests use their own
TORCH_EXTENSIONS_DIR and never start a build."""

from __future__ import annotations

import os
import re
import threading

import pytest

from tests.conftest import resm_main

deepspeed = pytest.importorskip("deepspeed")


@pytest.fixture
def lock(tmp_path, monkeypatch):
    """Where a build of deepspeed_shm_comm takes its lock, under a TORCH_EXTENSIONS_DIR of this test."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "torch_extensions"))
    path = tmp_path / "torch_extensions" / "deepspeed_shm_comm" / "lock"
    path.parent.mkdir(parents=True)
    return path


def test_a_lock_no_process_holds_is_refused_and_kept(lock):
    from resm.engines import StaleBuildLock, refuse_stale_build_locks

    refuse_stale_build_locks()  # no lock: nothing to say
    fd = os.open(lock, os.O_CREAT | os.O_EXCL)  # as FileBaton takes it: a build in progress, waited for
    try:
        refuse_stale_build_locks()
    finally:
        os.close(fd)
    with pytest.raises(StaleBuildLock, match="^" + re.escape(f"{lock}: a lock left by a build of DeepSpeed's ")):
        refuse_stale_build_locks()
    assert lock.exists()


def test_a_lock_released_while_it_is_looked_at_is_not_stale(lock):
    """A build ending closes its lock, then removes it: a start of another process (a second
    rank) that found the file and then no holder must not refuse a build that just ended."""
    from resm.engines import STALE_LOCK_GRACE_S, refuse_stale_build_locks

    lock.write_bytes(b"")  # closed, not yet removed: the build is ending
    remover = threading.Timer(min(0.5, STALE_LOCK_GRACE_S / 3), lock.unlink)
    remover.start()
    try:
        refuse_stale_build_locks()
    finally:
        remover.join()
    assert not lock.exists()


def test_a_deepspeed_run_is_refused_in_one_line_before_deepspeed_starts(lock, tmp_path, monkeypatch):
    def init_distributed(*a, **k):  # what a start would reach: here it would wait on the lock forever
        raise AssertionError("DeepSpeed was started")

    monkeypatch.setattr(deepspeed, "init_distributed", init_distributed)
    for k, v in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "127.0.0.1")):
        monkeypatch.setenv(k, v)  # what the run sets for one process, restored after the test
    monkeypatch.setenv("MASTER_PORT", "29555")
    lock.write_bytes(b"")  # left by a killed build
    corpus, run = tmp_path / "corpus.fa", tmp_path / "run"
    corpus.write_text("".join(f">r{i}\nGGGAAACCCUUCGACGUAGC\n" for i in range(20)))
    p = resm_main("pretrain", "--config", "cpu_demo", "model.arch=tiny", f"data.train=[{corpus}]",
                  "train.engine=deepspeed", "train.deepspeed_config=zero0", "train.progress=false",
                  f"train.out_dir={run}", check=False)  # fmt: skip
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith(f"resm pretrain: error: {lock}: a lock left by a build of DeepSpeed's "), p.stderr
    assert p.stderr.rstrip().endswith(
        "delete it (if no build runs on another machine sharing this folder) and start again"
    )
    assert not run.exists() and lock.exists()
