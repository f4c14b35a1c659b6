"""Hostile inputs found by an audit of every command and the Python API: each case was a crash,
a hang, a misleading message or a traceback before its fix. Command-line cases keep the rule
of :mod:`tests.robustness.cases` (one line naming the thing, the exit code, nothing
written)."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest
import torch

import resm
from resm.cli import main as cli_main
from tests.robustness.cases import Case, check_one_line, write


def _edit_pt(key: str, rel: str, edit):
    """A copy of the torch file ``key`` (``shipped``: the shipped structure model) at ``rel``,
    changed by ``edit(data)``."""

    def setup(p: dict) -> None:
        from resm.structure.model import resolve_model

        data = torch.load(resolve_model("default") if key == "shipped" else p[key], weights_only=False)
        edit(data)
        torch.save(data, Path(p["t"]) / rel)

    return setup


def _set_cfg(name: str, value):
    def edit(data):
        setattr(data["cfg"]["model"], name, value)

    return edit


def _probe_with(**changes):
    """A copy of the workspace's probe at ``p.pt`` whose record (``p.pt.json``) has ``changes``."""

    def setup(p: dict) -> None:
        t = Path(p["t"])
        shutil.copy2(p["probe"], t / "p.pt")
        record = json.loads(Path(p["probe"] + ".json").read_text())
        record.update(changes)
        (t / "p.pt.json").write_text(json.dumps(record))

    return setup


HF_CONFIG = json.dumps({"model_type": "esm", "num_hidden_layers": "two", "hidden_size": 64, "num_attention_heads": 4})

CASES = [
    # torch (OpenMP) dies with a segmentation fault when asked for 100,000 threads
    Case("fold/threads-huge", ["fold", "{fa}", "-o", "{t}/s.dbn", "--threads", "100000"], 2, ["--threads", "1024"]),
    # a model file's architecture of the wrong type or range crashed building the model: a
    # TypeError, a ZeroDivisionError or "negative dimension", naming no file
    Case(
        "embed/hf-config-wrong-type",
        ["embed", "{t}/hf", "{fa}", "{t}/e.npz"],
        1,
        ["{t}/hf/config.json", "num_hidden_layers must be a positive integer, got 'two'"],
        write("hf/config.json", HF_CONFIG, key="hf"),
    ),
    Case(
        "embed/hf-config-not-an-object",
        ["embed", "{t}/hf", "{fa}", "{t}/e.npz"],
        1,
        ["{t}/hf/config.json", "expected a JSON object, got list"],
        write("hf/config.json", "[1, 2]", key="hf"),
    ),
    Case(
        "embed/hf-resm-json-not-json",
        ["embed", "{t}/hf", "{fa}", "{t}/e.npz"],
        1,
        ["{t}/hf/resm.json", "not valid JSON"],
        write("hf/resm.json", "{scheme: kdny", key="hf"),
    ),
    Case(
        "embed/hf-resm-json-a-list",
        ["embed", "{t}/hf", "{fa}", "{t}/e.npz"],
        1,
        ["{t}/hf/resm.json", "its resm metadata is list, not a mapping"],
        write("hf/resm.json", "[1]", key="hf"),
    ),
    Case(
        "embed/hf-resm-json-unknown-scheme",
        ["embed", "{t}/hf", "{fa}", "{t}/e.npz"],
        1,
        ["{t}/hf/resm.json", "records the unknown mapping scheme 5; known: codon3, kdny"],
        write("hf/resm.json", '{"scheme": 5}', key="hf"),
    ),
    Case(
        "embed/fair-layers-negative",
        ["embed", "{t}/m.pt", "{fa}", "{t}/e.npz"],
        1,
        ["{t}/m.pt", "cfg.model: encoder_layers must be a positive integer, got -2"],
        _edit_pt("tiny", "m.pt", _set_cfg("encoder_layers", -2)),
    ),
    Case(
        "embed/fair-heads-zero",
        ["embed", "{t}/m.pt", "{fa}", "{t}/e.npz"],
        1,
        ["{t}/m.pt", "encoder_attention_heads must be a positive integer, got 0"],
        _edit_pt("tiny", "m.pt", _set_cfg("encoder_attention_heads", 0)),
    ),
    Case(
        "embed/fair-layers-a-word",
        ["embed", "{t}/m.pt", "{fa}", "{t}/e.npz"],
        1,
        ["{t}/m.pt", "encoder_layers must be a positive integer, got 'two'"],
        _edit_pt("tiny", "m.pt", _set_cfg("encoder_layers", "two")),
    ),
    Case(
        "embed/fair-resm-not-a-mapping",
        ["embed", "{t}/m.pt", "{fa}", "{t}/e.npz"],
        1,
        ["{t}/m.pt", "its resm metadata is str, not a mapping"],
        _edit_pt("tiny", "m.pt", lambda d: d.__setitem__("resm", "kdny")),
    ),
    Case(
        "embed/fair-unknown-scheme",
        ["embed", "{t}/m.pt", "{fa}", "{t}/e.npz"],
        1,
        ["{t}/m.pt", "records the unknown mapping scheme 'bogus'"],
        _edit_pt("tiny", "m.pt", lambda d: d["resm"].__setitem__("scheme", "bogus")),
    ),
    Case(
        "fold/structure-model-backbone-layers-negative",
        ["fold", "{fa}", "--model", "{t}/s.pt", "-o", "{t}/s.dbn"],
        1,
        ["{t}/s.pt", "num_layers must be a positive integer, got -2"],
        _edit_pt("structure_model", "s.pt", lambda d: d["backbone_config"].__setitem__("num_layers", -2)),
    ),
    # a bad symbol in a FASTA of UTRs named the record but not the file
    Case(
        "predict/mrl-fasta-bad-symbol",
        ["predict", "--task", "mrl", "{t}/u.fa", "--model", "{mrl_model}", "-o", "{t}/p.csv"],
        1,
        ["{t}/u.fa line 3: record 'b': gap '-' at position 3 is not a nucleotide"],
        write("u.fa", ">a\nACGUACGU\n>b\nAC-GU\n"),
    ),
    # torch.manual_seed overflowed: 'error: Overflow when unpacking long long', exit 1, no option named
    Case(
        "init/seed-huge",
        ["init-checkpoint", "--arch", "tiny", "--seed", "99999999999999999999", "--out", "{t}/x.pt"],
        2,
        ["argument --seed: must be >= 0 and <= 2**53 - 1 (an integer), got 99999999999999999999"],
    ),
    # in a config the same overflow named no key
    Case(
        "finetune/train-seed-huge",
        ["finetune", "--config", "{rri_cfg}", "train.seed=99999999999999999999", "train.out_dir={t}/run"],
        1,
        ["train.seed must be >= 0 and <= 2**53 - 1 (an integer), got 99999999999999999999"],
    ),
    Case(
        "finetune/data-seed-huge",
        ["finetune", "--config", "{rri_cfg}", "data.seed=99999999999999999999", "train.out_dir={t}/run"],
        1,
        ["data.seed must be >= 0 and <= 2**53 - 1 (an integer), got 99999999999999999999"],
    ),
    Case(
        "finetune/structure-data-seed-huge",
        ["finetune", "--config", "{structure_cfg}", "data.seed=99999999999999999999", "train.out_dir={t}/run"],
        1,
        ["data.seed must be >= 0 and <= 2**53 - 1 (an integer)"],
    ),
    Case(
        "pretrain/train-seed-huge",
        ["pretrain", "--config", "{pretrain_cfg}", "train.seed=99999999999999999999", "train.out_dir={t}/run"],
        1,
        ["train.seed must be >= 0 and <= 2**53 - 1 (an integer)"],
    ),
    # a probe record's threshold NaN or 7 decoded no pair at all and exited 0 (a wrong result);
    # a word failed later with "could not convert string to float", naming no file
    *[
        Case(
            f"fold/probe-threshold-{name}",
            ["fold", "{fa}", "--model", "{tiny}", "--probe", "{t}/p.pt", "-o", "{t}/s.dbn"],
            1,
            [f"{{t}}/p.pt.json: threshold must be a number in [0, 1], got {said}"],
            _probe_with(threshold=value),
        )
        for name, value, said in [("nan", float("nan"), "nan"), ("7", 7, "7"), ("word", "high", "'high'")]
    ],
    # the same in a structure model's file (a 2-D head's threshold)
    *[
        Case(
            f"fold/structure-model-threshold-{name}",
            ["fold", "{fa}", "--model", "{t}/s.pt", "-o", "{t}/s.dbn"],
            1,
            [f"structure model {{t}}/s.pt: threshold must be a number in [0, 1], got {said}"],
            _edit_pt("structure_model", "s.pt", lambda d, v=value: d.__setitem__("threshold", v)),
        )
        for name, value, said in [("nan", float("nan"), "nan"), ("7", 7.0, "7.0"), ("word", "x", "'x'")]
    ],
    # a pair-head model's stored decoding: a NaN prior weight decoded no pair and exited 0,
    # a weight of 5 blended the model's probabilities in with a negative sign
    *[
        Case(
            f"fold/decoding-{key}-{value}",
            ["fold", "{fa}", "--model", "{t}/d.pt", "-o", "{t}/s.dbn"],
            1,
            [f"structure model {{t}}/d.pt: decoding key {key}: {rule}, got {value}"],
            _edit_pt("shipped", "d.pt", lambda d, k=key, v=value: d["decoding"].__setitem__(k, v)),
        )
        for key, value, rule in [
            ("prior_weight", float("nan"), "must be a number in [0, 1]"),
            ("prior_weight", 5.0, "must be a number in [0, 1]"),
            ("gamma", -1.0, "must be a finite number > 0"),
            ("pseudoknot_threshold", float("nan"), "must be null or a number in [0, 1]"),
        ]
    ],
    Case(
        "fold/probe-method-unknown",
        ["fold", "{fa}", "--model", "{tiny}", "--probe", "{t}/p.pt", "-o", "{t}/s.dbn"],
        1,
        ["{t}/p.pt.json: method must be one of"],
        _probe_with(method="best"),
    ),
    # an empty config said "unknown task None", naming neither the file nor the key
    Case(
        "finetune/empty-config",
        ["finetune", "--config", "{t}/c.yaml"],
        1,
        ["{t}/c.yaml: task: missing; known tasks: ['structure', 'rri', 'mrl', 'joint']"],
        write("c.yaml", ""),
    ),
    Case("embed/threads-huge", ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--threads", "100000"], 2, ["--threads"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


def test_api_thread_count_is_checked_before_loading():
    import resm
    from resm.structure.io import FoldError

    for bad in (-3, 100000, "4"):
        with pytest.raises(FoldError, match=r"^threads: must be an integer in \[0, 1024\]"):
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


# ---------------------------------------------------------------- the Python API's records
@pytest.fixture(scope="module")
def predictor():
    return resm.load_predictor(device="cpu", threads=1)


@pytest.mark.parametrize(
    "call, error, said",
    [
        # str(None) and str(b"...") used to be folded as the sequences "None" and "b'GGG...'"
        (lambda p: p.fold_one(None), TypeError, "record 'seq': the sequence must be a str, got NoneType"),
        (lambda p: p.fold_one(5), TypeError, "record 'seq': the sequence must be a str, got int"),
        (lambda p: list(p.fold([("a", 7)])), TypeError, "record 'a': the sequence must be a str, got int"),
        # a lone string or a short tuple was an AttributeError or IndexError
        (lambda p: list(p.fold("GGGGAAACCCC")), TypeError, "got one str (fold_one folds a single sequence)"),
        (lambda p: list(p.fold([("a",)])), TypeError, "an (id, sequence) pair, got 1 items"),
        (lambda p: list(p.fold([3])), TypeError, "a Structure or a FASTA record, got int"),
    ],
    ids=["none", "int", "pair-int", "lone-str", "short-tuple", "not-a-record"],
)
def test_api_records_of_the_wrong_type_are_refused(predictor, call, error, said):
    with pytest.raises(error) as e:
        call(predictor)
    assert said in str(e.value) and "\n" not in str(e.value)


def test_api_folds_a_mapping_and_bytes_as_text(predictor):
    """``fold({"a": seq})`` was an AttributeError ('str' object has no attribute 'name'), as
    :func:`resm.embed_sequences` takes a mapping; bytes were folded as "b'GGGG...'"."""
    seq = "GGGGAAACCCC"
    want = predictor.fold_one(seq)[0].dotbracket
    got = [(s.name, s.dotbracket) for s, _ in predictor.fold({"a": seq, "b": seq.encode()}, progress=False)]
    assert got == [("a", want), ("b", want)]
    assert predictor.fold_one(seq.encode())[0].seq == seq


def test_embed_sequences_refuses_a_sequence_that_is_not_text(ws):
    """``embed_sequences(m, {"a": None})`` embedded... nothing: it was refused as "symbol 'o' at
    position 2", the sequence read as the text "None"; bytes were read as "b'GGG...'"."""
    with pytest.raises(TypeError, match=r"^record 'a': the sequence must be a str, got NoneType$"):
        resm.embed_sequences(ws["tiny"], {"a": None}, device="cpu")
    _, as_text = resm.embed_sequences(ws["tiny"], {"a": "GGGAAACCC"}, device="cpu")
    _, as_bytes = resm.embed_sequences(ws["tiny"], {"a": b"GGGAAACCC"}, device="cpu")
    assert as_bytes["lengths"] == as_text["lengths"] == [9]


# ---------------------------------------------------------------- standard output's reader gone
def test_a_closed_stdout_pipe_is_quiet(tmp_path):
    """`resm schemes --show codon3 | head -c 1` said 'resm schemes: error: Broken pipe' and
    exited 1: the reader leaving is no error of the input. Now nothing is said and the exit
    code is 141, a command's that SIGPIPE ended (pipefail still sees it)."""
    import subprocess
    import sys

    r, w = os.pipe()
    os.close(r)  # the reader is gone before anything is written
    try:
        p = subprocess.run(
            [sys.executable, "-m", "resm", "schemes", "--show", "codon3"],
            stdout=w,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            cwd=Path(__file__).resolve().parents[2],
        )
    finally:
        os.close(w)
    assert (p.returncode, p.stderr) == (141, "")


def test_schemes_show_unknown_prints_nothing_first(capfd):
    """`resm schemes --show bogus` printed the list of schemes on stdout, then failed."""
    capfd.readouterr()
    with pytest.raises(SystemExit) as e:  # a usage error, said by the option check before any work
        cli_main(["schemes", "--show", "bogus"])
    assert e.value.code == 2
    out, err = capfd.readouterr()
    assert out == ""
    assert err == (
        "resm schemes: error: argument --show: must name a mapping scheme (codon3, kdny, kerd, nt, protein), "
        "got 'bogus' (see resm schemes --help)\n"
    )


def test_a_failed_commit_says_nothing_of_writing(ws, capfd):
    """A commit that fails (here a full disk) said "folded 2 sequences: wrote /dev/full" first,
    then the error: a summary line claimed a write that did not happen. Now it is said only
    after the commit."""
    from tests.robustness.conftest import said

    capfd.readouterr()
    code = cli_main(["fold", str(ws["fa"]), "-o", "/dev/full", "--threads", "1"])
    lines = said(capfd.readouterr().err)
    assert code == 1
    assert lines == ["resm fold: error: /dev/full: cannot be put in place (No space left on device)"]


def test_embed_memory_estimate_counts_the_tokens_there_are():
    """``resm embed --toks-per-batch 99999999999999999999`` on one 11-nt record was refused as
    needing 2.9e14 GiB: the estimate took the budget, not the tokens a batch can hold."""
    from resm.utils.memory import embed_estimate

    args = (10**6, 64, 2, 4)
    huge = embed_estimate(*args, [11, 20], 99999999999999999999)
    assert huge == embed_estimate(*args, [11, 20], 13 + 22)  # both records in one batch
    assert embed_estimate(*args, [11, 20], 8) == embed_estimate(*args, [11, 20], 22)  # the longest still fits
