"""The second hostile-input audit of the command line and the Python API: each case was a wrong
exit code, a message naming nothing, a traceback or a silent wrong result before its fix.
Command-line cases keep the rule of :mod:`tests.robustness.cases` (one line naming
the thing, the exit code, nothing written)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import resm
from tests.conftest import ENV, REPO
from tests.robustness.cases import Case, check_one_line, write
from tests.robustness.conftest import said
from tests.robustness.test_hostile_audit import _edit_pt

FIVE_S = (
    "UGCCUGGCGGCCGUAGCGCGGUGGUCCCACCUGACCCCAUGCCGAACUCAGAAGUGAAACGCC"
    "GUAGCGCCGAUGGUAGUGUGGGGUCUCCCCAUGCGAGAGUAGGGAACUGCCAGGCAU"
)


DEEP = "[" * 200000 + "]" * 200000


TWO = ">a\nGGGGAAACCCC\n>b\nGCGCAAAAGCGCAUAU\n"
FOLD = ["fold", "{t}/in.fa", "-o", "{t}/o.dbn", "--threads", "1"]

CASES = [
    # a --bpp-min of nan or 2 wrote a --bpp file without a pair, -1 one of every pair, exit 0
    *[
        Case(
            f"fold/bpp-min-{v}",
            [*FOLD, "--bpp", "{t}/b.txt", "--bpp-min", v],
            2,
            [f"argument --bpp-min: must be a number in [0, 1], got {said_}"],
            write("in.fa", TWO),
        )
        for v, said_ in [("nan", "nan"), ("2", "2.0"), ("-1", "-1.0")]
    ],
    # usage errors said as argparse's are (exit 2): they were exit 1, '--dpi: must be ...'
    Case("fold/dpi-0", [*FOLD, "--plot", "{t}/p", "--dpi", "0"], 2, ["argument --dpi: must be in [10, 2400], got 0"]),
    Case("fold/jobs-negative", [*FOLD[:4], "-j", "-1"], 2, ["argument --jobs: must be an integer in [0, 1024]"]),
    # -j 100000 said that it and --threads disagree
    Case("fold/jobs-huge", [*FOLD[:4], "-j", "100000"], 2, ["argument --jobs: must be an integer in [0, 1024]"]),
    # 1e308 overflowed numpy (a RuntimeWarning on stderr, exit 0) and 1e9 ViennaRNA's integer
    # energies, silently
    *[
        Case(
            f"fold/turner-scale-{v}",
            [*FOLD, "--turner-scale", v],
            2,
            [f"argument --turner-scale: must be a finite number in [0, 1000] (kcal/mol), got {said_}"],
        )
        for v, said_ in [("1e308", "1e+308"), ("1e9", "1000000000.0")]
    ],
    Case("fold/shard-size-0", [*FOLD, "--shard-size", "0"], 2, ["argument --shard-size: must be >= 1, got 0"]),
    # records x and x_ss: the 2-D drawing of x and the arcs of x_ss were both x_ss.png, one lost,
    # and the summary said 4 figures were written (3 were)
    Case(
        "fold/plot-names-collide",
        ["fold", "{t}/in.fa", "--plot", "{t}/p", "--threads", "1"],
        1,
        ["records 'x' and 'x_ss' would both be written to x_ss.png"],
        write("in.fa", ">x\nGGGGAAACCCC\n>x_ss\nGGGGAAACCCC\n"),
    ),
    Case(
        "fold/plot-names-collide-with-compare",
        ["fold", "{t}/in.fa", "--plot", "{t}/p", "--threads", "1", "--compare", "rnafold", "-o", "{t}/o.dbn"],
        1,
        ["records 'x' and 'x_rnafold' would both be written to x_rnafold_ss.png"],
        write("in.fa", ">x\nGGGGAAACCCC\n>x_rnafold\nGGGGAAACCCC\n"),
    ),
    # a dbn record under a bare '>' was folded as the id '' and written back as a bare '>' (which
    # no reader takes), and --split-dir named its file _.dbn
    Case(
        "fold/dbn-header-without-id",
        ["fold", "{t}/in.dbn", "--split-dir", "{t}/s", "--threads", "1"],
        1,
        ["{t}/in.dbn line 4: header has no id"],
        write("in.dbn", ">a\nGGGGAAACCCC\n((((...))))\n>\nGGGAAACCC\n(((...)))\n"),
    ),
    Case(
        "fold/reference-dbn-header-without-id",
        ["fold", "{t}/in.fa", "--reference", "{t}/r.dbn", "--threads", "1"],
        1,
        ["{t}/r.dbn line 1: header has no id"],
        lambda p: (
            write("in.fa", ">a\nGGGGAAACCCC\n")(p),
            write("r.dbn", ">\nGGGGAAACCCC\n((((...))))\n")(p),
        ),
    ),
    # an architecture a file records that its weights do not hold: 10**12 layers were built layer
    # by layer until memory ran out (a Hugging Face config's looped over 10**12 layer names first)
    Case(
        "fold/structure-model-layers-huge",
        ["fold", "{fa}", "--model", "{t}/s.pt", "-o", "{t}/s.dbn"],
        1,
        ["{t}/s.pt: its config says num_layers 1000000000000, its weights hold 4 layers"],
        _edit_pt("shipped", "s.pt", lambda d: d["backbone_config"].__setitem__("num_layers", 10**12)),
    ),
    Case(
        "embed/fair-embed-dim-huge",
        ["embed", "{t}/m.pt", "{fa}", "{t}/e.npz"],
        1,
        [
            "{t}/m.pt: its config says vocab_size 33 and embed_dim 1000000000, "
            "its embed_tokens.weight has shape (33, 64)"
        ],
        _edit_pt("tiny", "m.pt", lambda d: setattr(d["cfg"]["model"], "encoder_embed_dim", 10**9)),
    ),
    Case(
        "embed/hf-layers-huge",
        ["embed", "{t}/hf", "{fa}", "{t}/e.npz"],
        1,
        ["{t}/hf: its config says num_layers 1000000000000, its weights hold 2 layers"],
        lambda p: _hf_config(p, num_hidden_layers=10**12),
    ),
    # an id of 100,000 characters: the .npz's entry names overflowed once the work was done
    # ('error: ushort format requires 0 <= number <= 65535 (unexpected; ...)')
    Case(
        "embed/npz-name-too-long",
        ["embed", "{tiny}", "{t}/in.fa", "{t}/e.npz"],
        1,
        [
            "{t}/e.npz: record 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...' (100000 characters)",
            "its array name would be 100011 bytes, more than the 65535 an .npz entry name may hold",
        ],
        write("in.fa", ">" + "n" * 100000 + "\nGGCC\n"),
    ),
    # a header naming a column twice read the first without a word; a UTR table with an id
    # twice predicted both rows under one name (a FASTA file with one is refused)
    Case(
        "interact/header-names-a-column-twice",
        ["interact", "{t}/p.tsv", "--model", "{rri_model}", "-o", "{t}/s.tsv"],
        1,
        ["{t}/p.tsv line 1: the header names column 'a_seq' twice (columns 2 and 3)"],
        write("p.tsv", "a_name\ta_seq\tA_SEQ\tb_name\tb_seq\nm\tGGGAAAUUU\tCCC\tt\tAAAUUUCCC\n"),
    ),
    Case(
        "predict/header-names-utr-twice",
        ["predict", "--task", "mrl", "{t}/u.csv", "--model", "{mrl_model}", "-o", "{t}/o.tsv"],
        1,
        ["{t}/u.csv line 1: the header names column 'utr' twice (columns 2 and 3)"],
        write("u.csv", "id,utr,utr\nu1,ACGUACGU,GGGG\n"),
    ),
    Case(
        "predict/table-duplicate-id",
        ["predict", "--task", "mrl", "{t}/u.csv", "--model", "{mrl_model}", "-o", "{t}/o.tsv"],
        1,
        ["{t}/u.csv line 3: duplicate id 'u1' (line 2)"],
        write("u.csv", "id,utr\nu1,ACGUACGU\nu1,GGCCAAUU\n"),
    ),
    # head sizes of 0 or less (a kernel of -1 is odd) crashed building the convolutions:
    # 'RuntimeError: Trying to create tensor with negative dimension -1 (unexpected; ...)'
    *[
        Case(
            f"finetune/{cfg}-head-{key}-{value}",
            ["finetune", "--config", f"{{{cfg}_cfg}}", f"head.{key}={value}", "train.out_dir={t}/run"],
            1,
            [f"head: {key} must be {rule}, got {value}"],
        )
        for cfg, key, value, rule in [
            ("structure", "channels", 0, ">= 1"),
            ("structure", "proj_dim", -1, ">= 1"),
            ("structure", "min_loop", -1, ">= 0"),
            ("rri", "kernel", -1, "odd and positive"),
            ("mrl", "kernel", -1, "odd and positive"),
        ]
    ],
    Case(
        "finetune/mrl-optimus-filters-0",
        ["finetune", "--config", "{mrl_cfg}", "head={kind: optimus, filters: 0}", "train.out_dir={t}/run"],
        1,
        ["head: filters must be >= 1, got 0"],
    ),
    # a device that never ends was read until memory ran out ('MemoryError: no message (unexpected; ...)')
    Case(
        "fold/input-dev-zero",
        ["fold", "/dev/zero", "-o", "{t}/o.dbn"],
        1,
        ["/dev/zero: cannot read (a device, not a file)"],
    ),
    Case("embed/input-dev-urandom", ["embed", "{tiny}", "/dev/urandom", "{t}/e.npz"], 1, ["/dev/urandom: cannot read"]),
    Case(
        "interact/pairs-dev-zero",
        ["interact", "/dev/zero", "--model", "{rri_model}"],
        1,
        ["/dev/zero line 1: cannot read (a device, not a file)"],
    ),
    Case(
        "fold/reference-dev-zero",
        ["fold", "{fa}", "--reference", "/dev/zero", "--reference-format", "dbn"],
        1,
        ["/dev/zero: a device, not a file"],
    ),
    # --out -: the probe went to standard output and its record to '-.json' in the working folder
    Case(
        "probe/out-is-a-stream",
        ["probe", "{tiny}", "{dbn}", "--out", "-"],
        1,
        ["--out -: a probe is two files, PROBE.pt and PROBE.pt.json beside it; give a file path"],
    ),
    Case(
        "probe/record-path-is-a-folder",
        ["probe", "{tiny}", "{dbn}", "--out", "{t}/p.pt"],
        1,
        ["{t}/p.pt.json: is a folder"],
        lambda p: (Path(p["t"]) / "p.pt.json").mkdir(),
    ),
    # a sequence that is no RNA named the record, not the file
    Case(
        "probe/bad-symbol-names-the-file",
        ["probe", "{tiny}", "{t}/s.dbn", "--out", "{t}/p.pt"],
        1,
        ["{t}/s.dbn: record 'a': gap '-' at position 5 is not a nucleotide"],
        write("s.dbn", ">a\nGGGG-AAACCCC\n((((....))))\n"),
    ),
    # a data set with an id twice: the model's fold refused it naming no file (since the API's
    # records are held to the rules of a file's; before, both records were scored)
    Case(
        "evaluate/data-set-duplicate-id",
        ["evaluate", "structure", "--model", "{structure_model}", "--dataset", "ts0", "--data-dir", "{t}"],
        1,
        ["{t}/ss/bprna/TS0.dbn: duplicate id 'a' (records 1 and 2)"],
        lambda p: (
            (Path(p["t"]) / "ss" / "bprna").mkdir(parents=True),
            write("ss/bprna/TS0.dbn", ">a\nGGGGAAACCCC\n((((...))))\n>a\nGGGAAACCC\n(((...)))\n")(p),
        ),
    ),
    # a bundle's head config whose sizes its weights do not hold: 10**5 channels allocated a
    # 10**10-weight convolution until memory ran out
    Case(
        "interact/bundle-head-config-huge",
        ["interact", "{pairs}", "--model", "{t}/m", "--backbone", "{tiny}", "-o", "{t}/s.tsv"],
        1,
        ["{t}/m/manifest.json: not a usable model bundle (head 'rri') (its config gives stem_pairs the shape"],
        lambda p: _manifest(p, "rri_model", lambda m: m["heads"]["rri"]["config"].__setitem__("channels", 10**5)),
    ),
    # a file of FASTA ';' comments only was read as the bare sequence ';c', "record 'seq_1':
    # symbol ';' at position 1 is not a nucleotide", a record the file does not hold
    Case("fold/comments-only", [*FOLD], 1, ["{t}/in.fa: no records"], write("in.fa", ";c\n;d\n")),
    # nine nested lists of nine aliases (387 million values once expanded): reading the config
    # ran out of memory, 'MemoryError: no message (unexpected; ...)'; a recursive alias recursed
    Case(
        "finetune/yaml-alias-bomb",
        ["finetune", "--config", "{t}/c.yaml"],
        1,
        ["{t}/c.yaml: not valid YAML (line 1, column 1: its aliases expand to more than 100,000 values"],
        write(
            "c.yaml",
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi")),
        ),
    ),
    Case(
        "finetune/override-recursive-alias",
        ["finetune", "--config", "{structure_cfg}", "head.dilations=&a [1, *a]", "train.out_dir={t}/run"],
        1,
        ["override 'head.dilations=&a [1, *a]': the value is not valid YAML", "or into themselves"],
    ),
    # a document nested 200,000 deep: 'RecursionError: maximum recursion depth exceeded while
    # decoding a JSON array (unexpected; ...)', naming no file
    Case(
        "embed/hf-config-nested-too-deeply",
        ["embed", "{t}/hf", "{fa}", "{t}/e.npz"],
        1,
        ["{t}/hf/config.json: nested too deeply"],
        write("hf/config.json", DEEP, key="hf"),
    ),
    Case(
        "interact/manifest-nested-too-deeply",
        ["interact", "{pairs}", "--model", "{t}/m", "--backbone", "{tiny}"],
        1,
        ["{t}/m/manifest.json: invalid JSON (line 1: nested too deeply)"],
        write("m/manifest.json", DEEP, key="rri_model"),
    ),
    Case(
        "fold/probe-record-nested-too-deeply",
        ["fold", "{fa}", "--model", "{tiny}", "--probe", "{t}/p.pt"],
        1,
        ["{t}/p.pt.json: unreadable probe record (nested too deeply"],
        lambda p: (shutil.copy2(p["probe"], Path(p["t"]) / "p.pt"), write("p.pt.json", DEEP)(p)),
    ),
    Case(
        "finetune/yaml-nested-too-deeply",
        ["finetune", "--config", "{t}/c.yaml"],
        1,
        ["{t}/c.yaml: not valid YAML (nested too deeply)"],
        write("c.yaml", "a: " + "[" * 50000 + "]" * 50000 + "\n"),
    ),
    # an output that is a symbolic link to itself was replaced by a file (exit 0): a link is
    # written to its target, and this one has none
    Case(
        "fold/out-is-a-looping-link",
        ["fold", "{fa}", "-o", "{t}/loop"],
        1,
        ["{t}/loop: a symbolic link that loops"],
        lambda p: os.symlink("loop", Path(p["t"]) / "loop"),
    ),
    # a test set with an id twice: per_sequence.csv held two rows of one id, exit 0
    Case(
        "compare/test-set-duplicate-id",
        ["compare", "--config", "{compare_cfg}", "data.test={t}/e.dbn", "out_dir={t}/cmp"],
        1,
        ["data.test: {t}/e.dbn: duplicate id 'a' (records 1 and 2)"],
        write("e.dbn", ">a\nGGGGAAACCCC\n((((...))))\n>a\nGGGGAAACCCC\n((((...))))\n"),
    ),
]


def _manifest(p: dict, key: str, edit) -> None:
    import json

    shutil.copytree(p[key], Path(p["t"]) / "m")
    path = Path(p["t"]) / "m" / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def _hf_config(p: dict, **changes) -> None:
    import json

    shutil.copytree(p["hf"], Path(p["t"]) / "hf")
    cfg = json.loads((Path(p["t"]) / "hf" / "config.json").read_text())
    (Path(p["t"]) / "hf" / "config.json").write_text(json.dumps({**cfg, **changes}))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


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


@pytest.mark.parametrize(
    "name, text",
    [
        ("e.bpseq", "# Name:\n1 G 4\n2 G 0\n3 C 0\n4 C 1\n"),
        ("e.pairs", "# Name: \n# Sequence: GGCC\n1 4\n"),
    ],
)
def test_an_empty_name_comment_keeps_the_files_name(tmp_path, name, text):
    """'# Name:' with nothing after it named the record '' (written back as a bare '>')."""
    from resm.structure.io import read_structure

    (tmp_path / name).write_text(text)
    rec = read_structure(tmp_path / name)
    assert (rec.name, rec.seq, rec.dotbracket) == ("e", "GGCC", "(..)")


@pytest.mark.parametrize(
    "call, error, message",
    [
        # an id with a line break or an empty one was folded (a file with either is refused)
        (
            lambda p, b, m: p.fold_one("GGGAAACCC", "a\nb"),
            "FoldError",
            "name: 'a\\nb' holds the control character U+000A",
        ),
        (lambda p, b, m: list(p.fold([("", "GGGAAACCC")], progress=False)), "FoldError", "record 1 has an empty id"),
        # torch's own error listed every device type it knows, naming no option
        (lambda p, b, m: resm.load_predictor(device="bogus"), "ConfigError", "device: unknown device 'bogus'"),
        # "not enough values to unpack (expected 4, got 3)"
        (
            lambda p, b, m: b.interact([("GGC", "ACGU", "x")]),
            "BundleError",
            "pair 1: expected (a, b) or (a_name, a, b_name, b), got 3 items",
        ),
        # "cannot convert 'NoneType' object to bytes"
        (lambda p, b, m: m.predict_mrl([None]), "TypeError", "record 'utr1': the sequence must be a str, got NoneType"),
        (
            lambda p, b, m: b.interact([(None, "ACGU")]),
            "TypeError",
            "record 'a1': the sequence must be a str, got NoneType",
        ),
        # "'<=' not supported between instances of 'int' and 'str'"
        (
            lambda p, b, m: resm.embed_sequences("default", {"a": "ACGU"}, layers=["x"], device="cpu"),
            "TypeError",
            "layers: each layer must be an integer, got 'x'",
        ),
    ],
    ids=["id-line-break", "id-empty", "device", "interact-3-items", "mrl-none", "interact-none", "layers-str"],
)
def test_api_refuses_in_one_line(predictor, ws, call, error, message):
    bundle, mrl = resm.load_bundle(ws["rri_model"], device="cpu"), resm.load_bundle(ws["mrl_model"], device="cpu")
    with pytest.raises(Exception) as e:
        call(predictor, bundle, mrl)
    assert type(e.value).__name__ == error and str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


def test_api_one_str_is_one_item(ws):
    """`predict_mrl("ACGU...")` predicted one UTR per letter (8 values for an 8-nt UTR), and
    `embed_sequences(..., include="mean")` refused the letters 'm', 'e', 'a', 'n'."""
    mrl = resm.load_bundle(ws["mrl_model"], device="cpu")
    utr = "ACGUACGUAAGG"
    assert mrl.predict_mrl(utr).tolist() == mrl.predict_mrl([utr]).tolist()
    assert len(mrl.predict_mrl(utr)) == 1
    arrays, index = resm.embed_sequences(ws["tiny"], {"a": utr}, include="mean", layers=-1, device="cpu")
    assert sorted(arrays) == [f"a/mean/{index['layers'][0]}"]


def test_write_embeddings_refuses_objects(tmp_path):
    """An object array was pickled into an .npz that read_embeddings then refused."""
    import numpy as np

    with pytest.raises(ValueError, match=r"array 'a/mean/1' holds object values, not numbers$"):
        resm.write_embeddings(tmp_path / "x.npz", {"a/mean/1": np.array([object()])}, {"ids": ["a"]})
    assert list(tmp_path.iterdir()) == []


def test_standard_input_that_never_ends_is_refused(tmp_path):
    """`resm fold - < /dev/zero` read standard input until memory ran out."""
    with open("/dev/zero", "rb") as zero:
        p = subprocess.run(
            [sys.executable, "-m", "resm", "fold", "-", "-o", str(tmp_path / "o.dbn")],
            stdin=zero,
            capture_output=True,
            text=True,
            cwd=REPO,
            env=ENV,
            timeout=120,
        )
    assert (p.returncode, said(p.stderr)) == (1, ["resm fold: error: <stdin>: cannot read (a device, not a file)"])
    assert list(tmp_path.iterdir()) == []


def test_bare_sequences_skip_comment_lines(tmp_path):
    from resm.structure.inputs import read_sequences

    (tmp_path / "s.txt").write_text(";a comment\nGGGGAAACCCC\n; another\nACGU\n")
    assert read_sequences(tmp_path / "s.txt") == [("seq_1", "GGGGAAACCCC"), ("seq_2", "ACGU")]


def _resm(args: list[str], cwd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resm", *args], cwd=cwd, env=ENV, text=True, timeout=300, **kw)


def test_a_summary_that_cannot_be_said_does_not_fail_a_written_command(ws, tmp_path):
    """`resm fold x.fa -o s.dbn > /dev/full` wrote s.dbn, then failed saying its summary
    ('folded 2 sequences: wrote s.dbn') and exited 1: a failure that wrote its output. The
    summary is said once the outputs are in place, so it is dropped when it cannot be."""
    out = tmp_path / "s.dbn"
    with open("/dev/full", "w") as full:
        p = _resm(["fold", str(ws["fa"]), "-o", str(out), "--threads", "1"], REPO, stdout=full, stderr=subprocess.PIPE)
    assert (p.returncode, said(p.stderr)) == (0, [])
    assert out.read_text().count(">") == 2


def test_closed_standard_streams(ws, tmp_path):
    """`resm schemes >&-` said nothing and exited 0 (print() to no stream is silent); `resm fold
    x.fa 2>&-` crashed on its progress bar ("'NoneType' object has no attribute 'write'")."""
    code = "import sys; sys.stdout = None; from resm.cli import main; sys.exit(main(['schemes']))"
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert (p.returncode, said(p.stderr)) == (1, ["resm schemes: error: standard output: closed"])
    argv = ["fold", str(ws["fa"]), "--threads", "1"]
    code = f"import sys; sys.stderr = None; from resm.cli import main; sys.exit(main({argv!r}))"
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.count(">") == 2 and p.stderr == "", p.stderr
