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
