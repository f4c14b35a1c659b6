"""The second hostile-input audit of the command line and the Python API: each case was a wrong
exit code, a message naming nothing, a traceback or a silent wrong result before its fix.
Command-line cases keep the rule of :mod:`tests.robustness.test_cli_cases` (one line naming
the thing, the exit code, nothing written)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import resm
from tests.conftest import ENV, REPO
from tests.robustness.conftest import said

FIVE_S = (
    "UGCCUGGCGGCCGUAGCGCGGUGGUCCCACCUGACCCCAUGCCGAACUCAGAAGUGAAACGCC"
    "GUAGCGCCGAUGGUAGUGUGGGGUCUCCCCAUGCGAGAGUAGGGAACUGCCAGGCAU"
)


def _env(unbuffered: bool) -> dict:
    env = {k: v for k, v in ENV.items() if k != "PYTHONUNBUFFERED"}
    return {**env, "PYTHONUNBUFFERED": "1"} if unbuffered else env


# ---------------------------------------------------------------- standard output
@pytest.mark.parametrize("unbuffered", [True, False], ids=["unbuffered", "buffered"])
@pytest.mark.parametrize(
    "argv, prog",
    [
        (["schemes"], "resm schemes"),
        (["--help"], "resm"),
        (["fold", "{fa}", "--no-score", "--threads", "1"], "resm fold"),
    ],
    ids=["schemes", "help", "fold"],
)
def test_a_full_standard_output_is_named(ws, argv, prog, unbuffered):
    """`resm schemes > /dev/full` said 'error: No space left on device', naming nothing (and,
    with Python's buffered stdout, 'Exception ignored ... OSError' and exit code 120); `resm
    --help > /dev/full` exited 0 or 120. Now: one line naming standard output, exit code 1."""
    args = [a.format(fa=ws["fa"]) for a in argv]
    with open("/dev/full", "w") as full:
        p = subprocess.run(
            [sys.executable, "-m", "resm", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=_env(unbuffered),
            timeout=300,
        )
    assert (p.returncode, said(p.stderr)) == (1, [f"{prog}: error: standard output: No space left on device"])


def _read_a_little(argv: list[str], unbuffered: bool) -> subprocess.CompletedProcess:
    """Run resm with its standard output read for 10 bytes, then closed (as `| head -c 10`)."""
    p = subprocess.Popen(
        [sys.executable, "-m", "resm", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=_env(unbuffered),
        bufsize=0,
    )
    first = os.read(p.stdout.fileno(), 10)
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(timeout=300)
    assert first
    return subprocess.CompletedProcess(p.args, p.returncode, first, err)


@pytest.mark.parametrize(
    "unbuffered, out",
    [(True, None), (False, None), (True, "/dev/stdout")],
    ids=["unbuffered", "buffered", "dev-stdout"],
)
def test_a_reader_leaving_mid_output_is_141(tmp_path, unbuffered, out):
    """`resm fold big.fa | head -1` exited 0 under PYTHONUNBUFFERED=1 (or python -u): the
    write that head's leaving cut short was dropped without a word, so a cut output looked
    whole; `-o /dev/stdout` said '/dev/stdout: cannot be put in place (Broken pipe)', exit 1.
    Now both are quiet with 141, as `resm schemes | head` already was (a command SIGPIPE ends)."""
    fa = tmp_path / "big.fa"
    fa.write_text("".join(f">r{i}\n{FIVE_S}\n" for i in range(48)))  # about 97 kB of ct, more than a pipe holds
    argv = ["fold", str(fa), "--format", "ct", "--threads", "1"] + (["-o", out] if out else [])
    p = _read_a_little(argv, unbuffered)
    assert (p.returncode, said(p.stderr)) == (141, [])


# ---------------------------------------------------------------- the Python API's record ids
@pytest.fixture(scope="module")
def predictor():
    return resm.load_predictor(device="cpu", threads=1)


def test_api_fold_refuses_a_repeated_id(predictor):
    """`Predictor.fold([("a", s), ("b", s), ("a", t)])` folded both records named 'a' (a file
    with them is refused); the results are keyed by id. Now a one-line error naming the id."""
    from resm.structure.io import FoldError

    with pytest.raises(FoldError) as e:
        list(predictor.fold([("a", "GGGAAACCC"), ("b", "GGGAAACCC"), ("a", "GGGGAAACCCC")], progress=False))
    assert str(e.value) == "duplicate id 'a' (records 1 and 3)"
    folded = list(predictor.fold({"a": "GGGAAACCC", "b": "GGGAAACCC"}, progress=False))  # unique ids still fold
    assert [s.name for s, _ in folded] == ["a", "b"]


def test_api_embed_names_the_repeated_id(ws):
    """`embed_sequences(m, [("a", ...), ("a", ...)])` said 'sequence ids must be unique', naming none."""
    with pytest.raises(ValueError) as e:
        resm.embed_sequences(ws["tiny"], [("x", "ACGU"), ("a", "ACGU"), ("a", "GGCC")], device="cpu")
    assert str(e.value) == "duplicate id 'a' (records 2 and 3)"
