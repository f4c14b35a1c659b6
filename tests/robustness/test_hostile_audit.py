"""Hostile inputs found by an audit of every command and the Python API: each case was a crash,
a hang, a misleading message or a traceback before its fix. Command-line cases keep the rule
of :mod:`tests.robustness.test_cli_cases` (one line naming the thing, the exit code, nothing
written)."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import signal
import threading

import pytest

import resm
from resm.cli import main as cli_main
from tests.robustness.test_cli_cases import Case, check_one_line

CASES = [
    # torch (OpenMP) dies with a segmentation fault when asked for 100,000 threads
    Case("fold/threads-huge", ["fold", "{fa}", "-o", "{t}/s.dbn", "--threads", "100000"], 2, ["--threads", "1024"]),
    Case("embed/threads-huge", ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--threads", "100000"], 2, ["--threads"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


def test_api_thread_count_is_checked_before_loading():
    import resm
    from resm.structure.io import FoldError

    for bad in (-3, 100000, "4"):
        with pytest.raises(FoldError, match=r"^threads must be an integer in \[0, 1024\]"):
            resm.load_predictor("/no/such/model.pt", threads=bad)


def test_compare_thread_count_is_checked():
    from resm.compare.config import parse_config
    from resm.config import ConfigError

    with pytest.raises(ConfigError, match=r"^threads must be an integer in \[0, 1024\] \(0: every core\), got 100000$"):
        parse_config(
            {
                "threads": 100000,
                "data": {"train": "a.dbn", "val": "b.dbn", "test": "c.dbn"},
                "backends": [{"name": "v", "kind": "viennarna"}],
            }
        )


# ---------------------------------------------------------------- named pipes and <(...)
@contextlib.contextmanager
def _piped(tmp_path, name: str, data: bytes):
    """A named pipe fed ``data`` once by a writer thread (as ``<(cat file)`` is), with a
    watchdog: a reader that opens it twice used to wait forever for a second writer."""
    fifo = tmp_path / name
    os.mkfifo(fifo)

    def feed():
        with contextlib.suppress(BrokenPipeError), open(fifo, "wb") as fh:
            fh.write(data)

    def alarm(*_):
        raise TimeoutError(f"{fifo}: still waiting for a writer")

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(20)
    try:
        yield fifo
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        if writer.is_alive():  # unblock it
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_fold_reads_a_named_pipe_once(ws, tmp_path, capfd, gz):
    """`resm fold <(zcat x.fa.gz)` (or a named pipe) hung: the file was opened once for its
    magic bytes, once to sniff its format and once to read it, and a pipe can be read once."""
    data = ws["fa"].read_bytes()
    assert cli_main(["fold", str(ws["fa"]), "-o", str(tmp_path / "file.dbn"), "--threads", "1"]) == 0
    with _piped(tmp_path, "in", gzip.compress(data) if gz else data) as fifo:
        code = cli_main(["fold", str(fifo), "-o", str(tmp_path / "pipe.dbn"), "--threads", "1"])
    assert code == 0, capfd.readouterr().err
    assert (tmp_path / "pipe.dbn").read_text() == (tmp_path / "file.dbn").read_text()


def test_embed_reads_a_named_pipe(ws, tmp_path, capfd):
    with _piped(tmp_path, "in", ws["fa"].read_bytes()) as fifo:
        code = cli_main(["embed", str(ws["tiny"]), str(fifo), str(tmp_path / "e.npz")])
    assert code == 0, capfd.readouterr().err
    arrays, index = resm.read_embeddings(tmp_path / "e.npz")
    assert index["ids"] == ["r1", "r2"]


def test_a_table_without_an_extension_is_read_once():
    """A pairs table from a pipe (no extension: the delimiter is sniffed from its first line)
    was opened once to sniff and once to read."""
    from resm.data.rri import table_rows

    text = "a_name\ta_seq\tb_name\tb_seq\n\nx\tACGU\ty\tGGCC\n"
    calls = []

    def opener(path, newline=None):
        calls.append(path)
        return io.StringIO(text, newline=newline)

    import resm.data.rri as rri

    real = rri.open_text
    rri.open_text = opener
    try:
        rows = list(table_rows("/dev/fd/63", ValueError))
    finally:
        rri.open_text = real
    assert calls == ["/dev/fd/63"]
    assert rows == [(1, ["a_name", "a_seq", "b_name", "b_seq"]), (3, ["x", "ACGU", "y", "GGCC"])]


# ---------------------------------------------------------------- UTF-16 text
@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be-bom", "utf-16-gzip", "utf-16-stdin"])
def test_utf16_text_with_a_byte_order_mark_is_read(ws, tmp_path, capfd, monkeypatch, codec):
    """A FASTA saved as Windows' "Unicode" (UTF-16 with a byte-order mark) was refused as
    "record 'seq_1': symbol '\ufffd' (U+FFFD) at position 1 is not a nucleotide", a record
    the file does not hold; a UTF-16 --reference failed the same way."""
    text = ws["fa"].read_text()
    data = text.encode("utf-16") if codec != "utf-16-be-bom" else b"\xfe\xff" + text.encode("utf-16-be")
    if codec == "utf-16-gzip":
        data = gzip.compress(data)
    fa, ref = tmp_path / "u.fa", tmp_path / "ref.dbn"
    fa.write_bytes(data)
    assert cli_main(["fold", str(ws["fa"]), "-o", str(tmp_path / "want.dbn"), "--threads", "1"]) == 0
    ref.write_bytes((tmp_path / "want.dbn").read_text().encode("utf-16"))
    argv = ["fold", str(fa), "-o", str(tmp_path / "got.dbn"), "--threads", "1", "--no-score"]
    if codec == "utf-16-stdin":
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
        argv[1] = "-"
    capfd.readouterr()
    assert cli_main(argv) == 0, capfd.readouterr().err
    capfd.readouterr()
    assert cli_main(["fold", str(fa), "--reference", str(ref), "--threads", "1"]) == 0, capfd.readouterr().err
    head, *rows = [ln.split("\t") for ln in capfd.readouterr().out.splitlines()]
    f1 = head.index("f1")
    assert [(r[0], r[f1]) for r in rows] == [("r1", "1.0000"), ("r2", "1.0000")], rows  # scored against itself
    want = (tmp_path / "want.dbn").read_text()
    assert (tmp_path / "got.dbn").read_text() == "".join(
        ln if not ln.startswith(("(", ".")) else ln.split(" [")[0] + "\n" for ln in want.splitlines(True)
    )
