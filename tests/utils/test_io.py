"""Atomic writes give their outputs the user's permissions (umask), like any Unix tool."""

import os
import stat
from contextlib import contextmanager

import pytest

from resm.utils.io import atomic_dir, atomic_path, atomic_write_text, umask
from tests.conftest import REPO, resm_cli


@contextmanager
def user_umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_files_and_folders_honour_the_umask(tmp_path, mask):
    with user_umask(mask):
        assert umask() == mask
        atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"y")
        with atomic_dir(tmp_path / "folder") as d:
            (d / "inside.txt").write_text("z")
    assert mode(tmp_path / "a.txt") == mode(tmp_path / "b.bin") == 0o666 & ~mask
    assert mode(tmp_path / "folder") == 0o777 & ~mask
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "kept.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    with user_umask(0o077):
        atomic_write_text(path, "new")
    assert path.read_text() == "new" and mode(path) == 0o640


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_fold_output_honours_the_umask(tmp_path, mask):
    out, plots = tmp_path / "s.dbn", tmp_path / "ct"
    with user_umask(mask):  # the command inherits it
        resm_cli("fold", REPO / "examples" / "rna.fasta", "-o", out)
        resm_cli("fold", REPO / "examples" / "rna.fasta", "--format", "ct", "--split-dir", plots)
    assert mode(out) == 0o666 & ~mask
    assert mode(plots) == 0o777 & ~mask
    assert {mode(p) for p in plots.iterdir()} == {0o666 & ~mask}


def test_held_signals_defers_sigterm_to_the_end_of_the_block():
    import signal

    from resm.utils.io import defer_signal, held_signals

    got = []

    def handler(signum, frame):  # as resm's SIGTERM handler begins
        if not defer_signal(signum):
            got.append(signum)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        with held_signals():
            with held_signals():  # nested: held until the outer block ends
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(1000):  # plenty of bytecode boundaries: the handler has run
                    pass
            assert got == []
        assert got == [signal.SIGTERM]  # raised again, synchronously, at the end
    finally:
        signal.signal(signal.SIGTERM, old)


def test_abort_all_removes_every_staged_temporary(tmp_path):
    """What resm's SIGTERM handler does before it exits: no temporary of an open transaction
    or of a lone atomic write is left."""
    from resm.utils.io import abort_all, transaction

    with pytest.raises(RuntimeError, match="^stop$"), transaction():  # the test's own, past every check
        with atomic_path(tmp_path / "a.txt") as a:
            a.write_text("a")
        with atomic_path(tmp_path / "sub" / "b.txt") as b:
            b.write_text("b")
            assert sorted(p.name for p in tmp_path.iterdir()) == sorted([a.name, "sub"])
            abort_all()
            assert list(tmp_path.iterdir()) == []
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_no_numpy_file_is_not_called_a_pickle(tmp_path, capsys):
    """np.load(allow_pickle=False) says 'pickled data' of every file that is no .npz or .npy: a
    FASTA file given to read_embeddings, or a prior cache entry overwritten with text, was said
    to hold pickled Python objects. Only a numpy file holding object arrays is said to."""
    import numpy as np

    from resm.embed import read_embeddings
    from resm.structure.priors import PriorConfig, cached_prior

    (tmp_path / "x.npz").write_text(">a\nACGU\n")
    with pytest.raises(ValueError) as e:
        read_embeddings(tmp_path / "x.npz")
    said = "not a readable embeddings file (not a numpy file: neither an .npz archive nor an .npy array)"
    assert str(e.value) == f"{tmp_path / 'x.npz'}: {said}"
    np.savez(tmp_path / "o.npz", __index__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"o\.npz: not a readable embeddings file \(it holds pickled Python objects"):
        read_embeddings(tmp_path / "o.npz")
    pytest.importorskip("linearpartition")
    seq = "GGGGAAACCCCAUAGCGCGAAAGCGCU"
    first = cached_prior(tmp_path / "cache", seq, PriorConfig())
    (entry,) = (tmp_path / "cache").glob("*.npz")
    entry.write_text("not a cache entry\n")
    capsys.readouterr()
    again = cached_prior(tmp_path / "cache", seq, PriorConfig())  # computed again, with one warning
    assert np.array_equal(again.i, first.i)
    warned = capsys.readouterr().err
    assert "not a numpy file" in warned and "pickled" not in warned, warned
