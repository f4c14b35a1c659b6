"""The eleventh hostile-input audit: each case was an input resm took silently or said wrongly.

* A file compressed in a format other than gzip (bzip2, xz, zstd, lz4, zip), given as any
  input, was read as text and refused as "a bare sequence holds whitespace", "sequence data
  before the first '>' header" or "expected the header ...": now "cannot read (compressed with
  bzip2, ...)" (:func:`resm.fasta.compression_problem`, in :func:`resm.fasta.open_text` and the
  standard-input reader).
* The files training reads beside its data, ``data.clusters`` (pretraining), ``data.families``
  (a structure run's held-out families), ``data.split`` (a fold table), a PDB pair table
  (``.tsv``) and ArchiveII's table, opened their own way: a device was read until memory ran
  out, a gzip file cut off was "EOFError ... (unexpected ...)", bytes that are not UTF-8 text
  were "'utf-8' codec can't decode byte 0xe9 in position 7" naming no file, and a UTF-16 pair
  table was "expected the header". They are now opened as every input (the families through
  the one FASTA reader).
* A structure config's ``head.kind`` given as a list or a mapping was "TypeError: unhashable
  type: 'list' (unexpected ...)"; ``model.init_seed`` past 2**64 "Overflow when unpacking long
  long" (a negative one was taken); ``data.train``'s ``repeat: 10**11`` a MemoryError, ``repeat:
  true`` a repeat of 1, ``pos_weight: .inf`` taken.
* ``resm pretrain`` on a corpus that is a named pipe waited for ever at its second read.
* A labelled ``resm interact`` / ``resm predict`` table, or ``resm fold --reference``, with ``-o``
  on a full disk said its metrics line before the error.
* The Python API: ``device=0`` (or ``""``) was ``auto`` in silence, a ``torch.device`` an
  AttributeError; ``resm.Structure`` took a sequence that is a list (written as its repr) or a
  name that is no text; ``read_embeddings(3)`` / ``write_embeddings(None, ...)`` said os.fspath's
  words; a set of bare sequences was named seq_1, seq_2... in an order that changes from run to run.

Command-line cases keep the rule of :func:`tests.robustness.cases.check_one_line` (one line
naming the thing, the exit code, nothing written). ``/dev/urandom`` stands for a device: it
fails fast without the fixes, where ``/dev/zero`` would fill the memory first."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import shutil
import zipfile
from pathlib import Path

import pytest

from tests.robustness.cases import PRETRAIN_COPY, Case, check_one_line, write

FASTA = ">a\nGGGGAAACCCC\n>b\nACGUACGUAA\n"
PAIRS = "a_name\ta_seq\tb_name\tb_seq\nx\tGGGGAAACCCC\ty\tGGGGUUUCCCC\n"


def _zip(text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.fa", text)
    return buf.getvalue()


COMPRESSED = {
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zip": _zip,
    # no zstd or lz4 module in the standard library: the magic bytes are what is read
    "zstd": lambda b: b"\x28\xb5\x2f\xfd" + b"\x00" * 8 + b,
    "lz4": lambda b: b"\x04\x22\x4d\x18" + b"\x00" * 8 + b,
}


def _packed(kind: str, text: str) -> bytes:
    data = text.encode()
    return COMPRESSED[kind](data) if kind != "zip" else _zip(text)


def _said(kind: str) -> str:
    return f"compressed with {kind}, which resm does not read"


CASES = [
    Case(
        f"fold/input-compressed-with-{kind}",
        ["fold", "{t}/x.fa.cmp", "-o", "{t}/o.dbn", "--threads", "1"],
        1,
        [f"{{t}}/x.fa.cmp: cannot read ({_said(kind)}"],
        write("x.fa.cmp", _packed(kind, FASTA)),
    )
    for kind in COMPRESSED
]
CASES += [
    Case(
        "embed/input-compressed-with-xz",
        ["embed", "{tiny}", "{t}/x.fa.xz", "{t}/e.npz"],
        1,
        [f"{{t}}/x.fa.xz: cannot read ({_said('xz')}"],
        write("x.fa.xz", lzma.compress(FASTA.encode())),
    ),
    Case(
        "fold/reference-compressed-with-bzip2",
        ["fold", "{fa}", "-o", "{t}/o.dbn", "--reference", "{t}/r.dbn.bz2", "--reference-format", "dbn"],
        1,
        [f"{{t}}/r.dbn.bz2: {_said('bzip2')}"],
        write("r.dbn.bz2", bz2.compress(b">r1\nGGGAAACCCAUGC\n(((...)))....\n")),
    ),
    Case(
        "interact/pairs-compressed-with-bzip2",
        ["interact", "{t}/p.tsv", "--model", "{rri_model}", "-o", "{t}/s.tsv"],
        1,
        [f"{{t}}/p.tsv line 1: cannot read ({_said('bzip2')}"],
        write("p.tsv", bz2.compress(PAIRS.encode())),
    ),
    Case(
        "predict/utrs-compressed-with-xz",
        ["predict", "--task", "mrl", "{t}/u.csv", "--model", "{mrl_model}", "-o", "{t}/m.tsv"],
        1,
        [f"{{t}}/u.csv line 1: cannot read ({_said('xz')}"],
        write("u.csv", lzma.compress(b"id,utr\nu1,ACGUACGU\n")),
    ),
]


# ---------------------------------------------------------------- the files beside the data
CLUSTERED = [
    "pretrain",
    "--config",
    "{t}/cfg.yaml",
    "train.out_dir={t}/run2",
    "data.val_by=cluster",
]
CASES += [
    Case(
        "pretrain/clusters-a-device",
        [*CLUSTERED, "data.clusters=/dev/urandom"],
        1,
        ["/dev/urandom: cannot read (a device, not a file)"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/clusters-gzip-cut-off",
        [*CLUSTERED, "data.clusters={t}/c.tsv.gz"],
        1,
        ["{t}/c.tsv.gz: cannot read (Compressed file ended"],
        lambda p: (PRETRAIN_COPY(p), write("c.tsv.gz", gzip.compress(b"a\tb\n" * 50)[:-9])(p)),
    ),
    Case(
        "pretrain/clusters-not-utf8",
        [*CLUSTERED, "data.clusters={t}/c.tsv"],
        1,
        ["{t}/c.tsv line 2: name 'b\ufffd' holds bytes that are not UTF-8 text"],
        lambda p: (PRETRAIN_COPY(p), write("c.tsv", b"a\ta\na\tb\xe9\n")(p)),
    ),
    Case(
        "pretrain/clusters-missing",
        [*CLUSTERED, "data.clusters={t}/none.tsv"],
        1,
        ["data.clusters: {t}/none.tsv: no such file"],  # refused before any work (test_preflight.py)
        PRETRAIN_COPY,
    ),
]

STRUCTURE = ["finetune", "--config", "{structure_cfg}", "train.out_dir={t}/run"]
FAMILIES = [*STRUCTURE, "head={kind: pairs}", "data.family_holdout=0.5"]
CASES += [
    Case(
        "finetune/families-a-device",
        [*FAMILIES, "data.families=/dev/urandom"],
        1,
        ["data.families: /dev/urandom: cannot read (a device, not a file)"],
    ),
    Case(
        "finetune/families-gzip-cut-off",
        [*FAMILIES, "data.families={t}/f.fa.gz"],
        1,
        ["data.families: {t}/f.fa.gz: cannot read (Compressed file ended"],
        write("f.fa.gz", gzip.compress(b">RF1|a\nGGGGAAACCCC\n" * 50)[:-9]),
    ),
    Case(
        "finetune/families-not-utf8",
        [*FAMILIES, "data.families={t}/f.fa"],
        1,
        ["data.families: {t}/f.fa line 1: id 'RF1|a\ufffd' holds bytes that are not UTF-8 text"],
        write("f.fa", b">RF1|a\xe9\nGGGGAAACCCC\n"),
    ),
    Case(
        "finetune/split-a-device",
        [*STRUCTURE, "data.split=/dev/urandom", "data.fold=f1", "data.val=null"],
        1,
        ["/dev/urandom: cannot read (a device, not a file)"],
    ),
    Case(
        "finetune/split-not-utf8",
        [*STRUCTURE, "data.split={t}/s.csv", "data.fold=f1", "data.val=null"],
        1,
        ["{t}/s.csv line 2: id 'hp0\ufffd' holds bytes that are not UTF-8 text"],
        write("s.csv", b"fold_name,partition,id\nf1,train,hp0\xe9\n"),
    ),
    Case(
        "finetune/pair-table-a-device",
        [*STRUCTURE, "data.train={t}/z.tsv"],
        1,
        ["{t}/z.tsv: cannot read (a device, not a file)"],
        lambda p: (Path(p["t"]) / "z.tsv").symlink_to("/dev/urandom"),
    ),
    Case(
        "finetune/head-kind-a-list",
        [*STRUCTURE, "head.kind=[conv]"],
        1,
        ["head.kind must be one of ['conv', 'pairs'], not ['conv']"],
    ),
    Case(
        "finetune/head-kind-a-mapping",
        [*STRUCTURE, "head.kind={conv: 1}"],
        1,
        ["head.kind must be one of ['conv', 'pairs'], not {'conv': 1}"],
    ),
]

# model.init_seed: past 2**64 "Overflow when unpacking long long" (naming no key); a negative one
# was taken, where init-checkpoint --seed, data.seed and train.seed refuse it
CASES += [
    Case(
        f"{cmd}/model-init-seed-{name}",
        [*argv, f"model.init_seed={value}"],
        1,
        [f"model.init_seed must be >= 0 and <= 2**53 - 1 (an integer), got {value}"],
    )
    for cmd, argv in (
        ("pretrain", ["pretrain", "--config", "{pretrain_cfg}", "train.out_dir={t}/run"]),
        ("finetune", STRUCTURE),
    )
    for name, value in (("negative", -1), ("huge", 2**70))
]

# data.train's {file, repeat, pos_weight}: a repeat of 10**11 ran out of memory listing the
# copies ("MemoryError (unexpected ...)"), true was a repeat of 1, and a pos_weight of .inf was taken
CASES += [
    Case(
        "finetune/train-repeat-huge",
        [*STRUCTURE, "data.train=[{file: {t}/hp.dbn, repeat: 100000000000}]"],
        1,
        ["data.train[0]: expected a file or {file: F, repeat: N in [1, 1000]"],
        lambda p: shutil.copy2(p["dbn"], Path(p["t"]) / "hp.dbn"),
    ),
]


def _archiveii(data: bytes):
    def setup(p: dict) -> None:
        d = Path(p["t"]) / "data" / "ss" / "archiveII"
        d.mkdir(parents=True)
        (d / "ArchiveII.csv").write_bytes(data)

    return setup


ARCHIVE = b'id,sequence,len,structure,base_pairs\na,GGGGAAACCCC,11,((((...)))),"[[1,11],[2,10]]"\n'
ROW = b'r%d,GGGGAAACCCC,11,((((...)))),"[[1,11],[2,10]]"\n'
ARCHIVE_EVAL = ["evaluate", "structure", "--model", "{structure_model}", "--folders", "--data-dir", "{t}/data"]
CASES += [
    Case(
        "evaluate/archiveii-id-not-utf8",
        [*ARCHIVE_EVAL, "--dataset", "archiveii"],
        1,
        ["ArchiveII.csv line 2: name 'a\ufffd' holds bytes that are not UTF-8 text"],
        _archiveii(ARCHIVE.replace(b"\na,", b"\na\xe9,")),
    ),
    Case(
        "evaluate/archiveii-gzip-cut-off",
        [*ARCHIVE_EVAL, "--dataset", "archiveii"],
        1,
        ["{t}/data/ss/archiveII/ArchiveII.csv: cannot read (Compressed file ended"],
        _archiveii(gzip.compress(ARCHIVE + b"".join(ROW % k for k in range(50)))[:-9]),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


def test_compressed_standard_input_is_named(ws, tmp_path, capfd, monkeypatch):
    from resm.cli import main

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(bz2.compress(FASTA.encode()))))
    code = main(["fold", "-", "-o", str(tmp_path / "o.dbn"), "--threads", "1"])
    err = capfd.readouterr().err
    said = f"{_said('bzip2')}: decompress it, or compress it with gzip"
    assert (code, err.strip()) == (1, f"resm fold: error: <stdin>: cannot read ({said})")
    assert not list(tmp_path.iterdir())


def test_a_utf16_pair_table_is_read_as_every_input(tmp_path):
    """A PDB pair table saved as UTF-16 (Windows' "Unicode" text) was "expected the header"."""
    from resm.structure.pairsets import read_pair_table

    path = tmp_path / "VL1.tsv"
    path.write_text("id\tsequence\tpairs\na\tGGGGAAACCCC\t1:11 2:10\n", encoding="utf-16")
    (rec,) = read_pair_table(path)
    assert (rec.name, rec.seq, rec.pairs.ij.tolist()) == ("a", "GGGGAAACCCC", [[0, 10], [1, 9]])


def test_text_that_merely_starts_like_a_magic_number_is_read():
    """Only a whole magic number is a compression: a bare sequence file starting "BZh" is text."""
    from resm.fasta import compression_problem

    assert compression_problem(b"BZhello\n") is None
    assert compression_problem(b"PK\n") is None
    assert compression_problem(bz2.compress(b"x")[:10]) is not None


@pytest.mark.parametrize("device", [0, False, 0.0, b"cpu", ["cpu"]])
def test_api_names_a_device_that_is_no_text(ws, device):
    """``device=0`` (or False) was taken as ``auto`` in silence, where ``device=1`` was an
    unknown device; a device is a name, as ``--device`` takes."""
    import resm

    with pytest.raises(TypeError, match=r"^device: expected a device name \(auto, cpu, cuda or cuda:N\), got "):
        resm.load_backbone(ws["tiny"], device=device)
    with pytest.raises(TypeError, match="^device: expected a device name"):
        resm.embed_sequences(ws["tiny"], {"a": "GGGGAAACCCC"}, device=device)


def test_api_refuses_an_empty_device_as_the_command_line_does(ws):
    import resm
    from resm.config import ConfigError

    with pytest.raises(ConfigError, match=r"^device: unknown device ''"):
        resm.load_backbone(ws["tiny"], device="")


def test_api_takes_a_torch_device(ws):
    import torch

    import resm

    model, _ = resm.load_backbone(ws["tiny"], device=torch.device("cpu"))
    assert next(model.parameters()).device.type == "cpu"


@pytest.mark.parametrize(
    "name, seq, said",
    [
        ("a", b"GGGC", "Structure 'a': the sequence must be a str ('' when unknown), got bytes"),
        ("a", None, "Structure 'a': the sequence must be a str ('' when unknown), got NoneType"),
        ("a", list("GGGC"), "Structure 'a': the sequence must be a str ('' when unknown), got list"),
        (3, "GGGC", "Structure: the name must be a str, got int"),
        (b"a", "GGGC", "Structure: the name must be a str, got bytes"),
    ],
)
def test_api_structure_names_a_name_or_sequence_that_is_no_text(name, seq, said):
    """resm.Structure took any name and sequence: a list was written as "['G', 'G', ...]" in
    silence, bytes failed when written ("'int' object has no attribute 'isspace'")."""
    import resm

    with pytest.raises(TypeError) as e:
        resm.Structure(name, seq, [3, -1, -1, 0])
    assert str(e.value) == said


@pytest.mark.parametrize("path", [3, None, b"e.npz"], ids=["int", "none", "bytes"])
def test_api_embeddings_files_name_a_path_of_the_wrong_type(ws, path):
    """read_embeddings(3) and write_embeddings(None, ...) said os.fspath's words ('expected str,
    bytes or os.PathLike object, not int'), naming no keyword."""
    import resm

    arrays, index = resm.embed_sequences(ws["tiny"], {"a": "GGGGAAACCCC"}, device="cpu")
    said = f"path: expected a path, got {type(path).__name__}"
    with pytest.raises(TypeError) as e:
        resm.read_embeddings(path)
    assert str(e.value) == said
    with pytest.raises(TypeError) as e:
        resm.write_embeddings(path, arrays, index)
    assert str(e.value) == said


def test_api_embeddings_files_name_an_empty_path(ws):
    """'' was '.: is a folder, not an embeddings file' and '.: output must end in ...'."""
    import resm

    arrays, index = resm.embed_sequences(ws["tiny"], {"a": "GGGGAAACCCC"}, device="cpu")
    with pytest.raises(ValueError, match=r"^path: is empty \('' names nothing to read\)$"):
        resm.read_embeddings("")
    with pytest.raises(ValueError, match=r"^path: is empty \('' names no file to write\)$"):
        resm.write_embeddings("", arrays, index)


@pytest.mark.parametrize(
    "entry, said",
    [
        (
            {"file": "b.dbn", "repeat": True},
            r"^data.train\[0\]: expected a file or \{file: F, repeat: N in \[1, 1000\]",
        ),
        (
            {"file": "b.dbn", "repeat": 1001},
            r"^data.train\[0\]: expected a file or \{file: F, repeat: N in \[1, 1000\]",
        ),
        (
            {"file": "b.dbn", "pos_weight": float("inf")},
            r"^data.train\[0\].pos_weight must be a finite number > 0, got inf$",
        ),
        (
            {"file": "b.dbn", "pos_weight": float("nan")},
            r"^data.train\[0\].pos_weight must be a finite number > 0, got nan$",
        ),
    ],
    ids=["repeat-true", "repeat-1001", "pos-weight-inf", "pos-weight-nan"],
)
def test_a_training_file_entry_is_held_to_its_ranges(entry, said):
    from resm.config import ConfigError
    from resm.data.labelled_structures import StructureDataConfig

    with pytest.raises(ConfigError, match=said):
        StructureDataConfig(train=[entry]).train_files()
    assert StructureDataConfig(train=[{"file": "b.dbn", "repeat": 1000}]).train_files() == [("b.dbn", 1000, None)]


def test_a_pretraining_corpus_that_is_a_named_pipe_is_refused_before_reading(tmp_path):
    """``resm pretrain`` on ``data.train=[FIFO]`` read the pipe's text once, then waited for ever
    at the next read of the corpus (each epoch reads it again). The stream refuses it when built,
    before the run folder is made or anything is read (so a pipe nothing writes to is fine here)."""
    import os

    from resm.data.pretrain import PretrainDataConfig, PretrainStream

    fifo = tmp_path / "corpus.fa"
    os.mkfifo(fifo)
    with pytest.raises(ValueError) as e:
        PretrainStream(PretrainDataConfig(train=[str(fifo)]))
    assert str(e.value) == (
        f"data.train: {fifo} is a named pipe, which gives its text once; pretraining reads its corpus "
        "once per epoch: give a file"
    )


@pytest.mark.parametrize(
    "records", [{"GGGGAAACCCC", "ACGUACGUAA"}, frozenset({"GGGGAAACCCC"})], ids=["set", "frozenset"]
)
def test_api_refuses_a_set_of_bare_sequences(ws, records):
    """A set's order changes from run to run (string hashing is salted), so the same sequence
    was named seq_1 in one run and seq_2 in the next, in silence; pairs in a set keep their ids."""
    import resm

    said = (
        "a set of sequences has no order, so they cannot be named seq_1, seq_2... the same way twice; "
        "give a list, or a mapping of id to sequence"
    )
    with pytest.raises(TypeError) as e:
        resm.embed_sequences(ws["tiny"], records, device="cpu")
    assert str(e.value) == f"sequences: {said}"
    predictor = resm.load_predictor(ws["tiny"], zero_shot=ws["probe"], device="cpu", threads=1)
    with pytest.raises(TypeError) as e:
        list(predictor.fold(records))
    assert str(e.value) == f"records: {said}"
    assert [f.name for f in predictor.fold({("a", "GGGGAAACCCC")})] == ["a"]


@pytest.mark.parametrize("argv", [["interact"], ["predict", "--task", "rri"]], ids=["interact", "predict"])
def test_a_full_disk_under_a_labelled_table_is_one_line(ws, tmp_path, capfd, argv):
    """-o on a full disk: the labelled table's metrics ("labels in the file: accuracy ...") were
    said on stderr before the commit failed, a second line before the error."""
    from resm.cli import main
    from tests.robustness.conftest import said

    capfd.readouterr()
    code = main([*argv, str(ws["pairs"]), "--model", str(ws["rri_model"]), "-o", "/dev/full"])
    err = said(capfd.readouterr().err)
    assert (code, err) == (1, [f"resm {argv[0]}: error: /dev/full: cannot be put in place (No space left on device)"])


@pytest.mark.parametrize("out", [["--report", "/dev/full"], ["-o", "/dev/full"]], ids=["report", "out"])
def test_a_full_disk_under_a_scored_fold_is_one_line(ws, tmp_path, capfd, out):
    """resm fold --reference said its 'F1 over N sequences (mean): ...' line before the commit of
    its outputs failed (a full disk), a second line before the error."""
    from resm.cli import main
    from tests.robustness.conftest import said

    capfd.readouterr()
    argv = ["fold", ws["dbn"], "--reference", ws["dbn"], "--threads", "1", *out]
    code = main([str(a) for a in (argv if "-o" in out else [*argv, "-o", tmp_path / "o.dbn"])])
    err = said(capfd.readouterr().err)
    assert (code, err) == (1, ["resm fold: error: /dev/full: cannot be put in place (No space left on device)"])
    assert not list(tmp_path.iterdir())
