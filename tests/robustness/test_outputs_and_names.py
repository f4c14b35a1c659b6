"""Outputs that would destroy an input, streams and links, messages that name the whole path or
the record, memory refused before the work, and training values: table-driven (the rules of
:mod:`tests.robustness.cases`: one line naming the thing, the exit code, nothing
written), then the outputs that must work: ``-``, ``/dev/stdout``, a named pipe, a link."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from resm.cli import main as cli_main
from tests.robustness.cases import PRETRAIN_COPY, Case, check_one_line, copy, then, write

IN = copy("fa", "in.fa")
SEQ1, SEQ2 = "GGGAAACCCAUGC", "ACGUACGUAAAAACCCGGGUUU"
REF = f">r1\n{SEQ1}\n(((...)))....\n>r2\n{SEQ2}\n{'.' * len(SEQ2)}\n"
WITH_REF = then(IN, write("r.dbn", REF))
LONG_ID = "a" * 300


def _link(rel: str, to: str):
    """A symbolic link ``{t}/rel`` to ``to`` (a path in {t}, or "{key}" of the workspace)."""

    def setup(p: dict) -> None:
        target = p[to[1:-1]] if to.startswith("{") else str(Path(p["t"]) / to)
        (Path(p["t"]) / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, Path(p["t"]) / rel)

    return setup


def _hard(rel: str, to: str):
    """A hard link ``{t}/rel`` of ``{t}/to``."""

    def setup(p: dict) -> None:
        os.link(Path(p["t"]) / to, Path(p["t"]) / rel)

    return setup


def _copy_to(src: str, dst: str):
    def setup(p: dict) -> None:
        (Path(p["t"]) / dst).parent.mkdir(parents=True, exist_ok=True)
        copy(src, dst)(p)

    return setup


LOW_MEMORY = {"RESM_AVAILABLE_MEMORY": "1000"}  # bytes: every job is too big

OUTPUT_CASES = [
    # ------------------------------------------------------------------ no output may be an input
    Case("fold/out-is-the-input", ["fold", "{t}/in.fa", "-o", "{t}/in.fa"], 1, ["--out {t}/in.fa: is the input"], IN),
    Case(
        "fold/out-is-the-dbn-input",
        ["fold", "{t}/k.dbn", "-o", "{t}/k.dbn"],
        1,
        ["--out {t}/k.dbn: is the input"],
        copy("dbn", "k.dbn"),
    ),
    Case(
        "fold/bpp-is-the-input",
        ["fold", "{t}/in.fa", "-o", "{t}/o.dbn", "--bpp", "{t}/in.fa"],
        1,
        ["--bpp {t}/in.fa: is the input"],
        IN,
    ),
    Case(
        "fold/bpp-is-the-input-structures-to-stdout",
        ["fold", "{t}/in.fa", "--bpp", "{t}/in.fa"],
        1,
        ["--bpp {t}/in.fa: is the input"],
        IN,
    ),
    Case(
        "fold/report-is-the-reference",
        ["fold", "{t}/in.fa", "--reference", "{t}/r.dbn", "--report", "{t}/r.dbn"],
        1,
        ["--report {t}/r.dbn: is --reference"],
        WITH_REF,
    ),
    Case(
        "fold/out-is-the-reference",
        ["fold", "{t}/in.fa", "--reference", "{t}/r.dbn", "-o", "{t}/r.dbn"],
        1,
        ["--out {t}/r.dbn: is --reference"],
        WITH_REF,
    ),
    Case(
        "fold/report-is-the-input",
        ["fold", "{t}/in.fa", "--reference", "{t}/r.dbn", "--report", "{t}/in.fa"],
        1,
        ["--report {t}/in.fa: is the input"],
        WITH_REF,
    ),
    Case(
        "fold/out-is-a-link-to-the-input",
        ["fold", "{t}/in.fa", "-o", "{t}/link.fa"],
        1,
        ["--out {t}/link.fa: is the input ({t}/in.fa)"],
        then(IN, _link("link.fa", "in.fa")),
    ),
    Case(
        "fold/input-is-a-link-out-names-its-target",
        ["fold", "{t}/link.fa", "-o", "{t}/in.fa"],
        1,
        ["--out {t}/in.fa: is the input ({t}/link.fa)"],
        then(IN, _link("link.fa", "in.fa")),
    ),
    Case(
        "fold/out-is-a-hard-link-of-the-input",
        ["fold", "{t}/in.fa", "-o", "{t}/h.dbn"],
        1,
        ["--out {t}/h.dbn: is the input ({t}/in.fa)"],
        then(IN, _hard("h.dbn", "in.fa")),
    ),
    Case(
        "fold/bpp-is-a-hard-link-of-the-reference",
        ["fold", "{t}/in.fa", "--reference", "{t}/r.dbn", "--bpp", "{t}/h.bpp"],
        1,
        ["--bpp {t}/h.bpp: is --reference"],
        then(WITH_REF, _hard("h.bpp", "r.dbn")),
    ),
    Case(
        "fold/out-through-a-linked-folder",
        ["fold", "{t}/sub/in.fa", "-o", "{t}/L/in.fa"],
        1,
        ["--out {t}/L/in.fa: is the input"],
        then(_copy_to("fa", "sub/in.fa"), _link("L", "sub")),
    ),
    Case("fold/out-with-dot-dot", ["fold", "{t}/in.fa", "-o", "{t}/x/../in.fa"], 1, ["is the input"], IN),
    Case(
        "fold/split-dir-file-is-the-input",
        ["fold", "{t}/d/hp3.dbn", "--split-dir", "{t}/d"],
        1,
        ["{t}/d/hp3.dbn: is the input"],
        _copy_to("dbn", "d/hp3.dbn"),
    ),
    Case(
        "fold/plot-file-is-the-input",
        ["fold", "{t}/p/r1.png", "-o", "{t}/o.dbn", "--plot", "{t}/p"],
        1,
        ["{t}/p/r1.png: is the input"],
        _copy_to("fa", "p/r1.png"),
    ),
    Case(
        "fold/out-and-bpp-one-file-through-a-link",
        ["fold", "{fa}", "-o", "{t}/a.dbn", "--bpp", "{t}/l.txt"],
        1,
        ["--out and --bpp both name {t}/l.txt"],
        _link("l.txt", "a.dbn"),
    ),
    Case(
        "fold/out-and-report-hard-linked",
        ["fold", "{t}/in.fa", "--reference", "{t}/r.dbn", "-o", "{t}/a.dbn", "--report", "{t}/b.tsv"],
        1,
        ["--out and --report both name {t}/b.tsv"],
        then(WITH_REF, write("a.dbn", "old\n"), _hard("b.tsv", "a.dbn")),
    ),
    Case(
        "fold/out-is-the-model",
        ["fold", "{fa}", "--model", "{t}/m.pt", "-o", "{t}/m.pt"],
        1,
        ["--out {t}/m.pt: is --model"],
        copy("structure_model", "m.pt"),
    ),
    Case(
        "fold/out-is-the-probe",
        ["fold", "{fa}", "--model", "{tiny}", "--probe", "{t}/p.pt", "-o", "{t}/p.pt"],
        1,
        ["--out {t}/p.pt: is --probe"],
        then(copy("probe", "p.pt")),
    ),
    Case(
        "fold/split-dir-is-stdout",
        ["fold", "{fa}", "--split-dir", "/dev/stdout"],
        1,
        ["--split-dir /dev/stdout: a folder is to be written here, and this is a stream"],
    ),
    Case(
        "fold/plot-is-dash",
        ["fold", "{fa}", "-o", "{t}/o.dbn", "--plot", "-"],
        1,
        ["--plot -: a folder is to be written here"],
    ),
    Case(
        "init/hf-out-is-stdout",
        ["init-checkpoint", "--arch", "tiny", "--format", "hf", "--out", "/dev/stdout"],
        1,
        ["--out /dev/stdout: a folder is to be written here"],
    ),
    Case(
        "embed/out-is-the-input",
        ["embed", "{tiny}", "{t}/in.npz", "{t}/in.npz"],
        1,
        ["OUT {t}/in.npz: is the input"],
        copy("fa", "in.npz"),
    ),
    Case(
        "embed/out-links-to-the-model",
        ["embed", "{t}/m.pt", "{fa}", "{t}/o.npz"],
        1,
        ["OUT {t}/o.npz: is the model ({t}/m.pt)"],
        then(copy("tiny", "m.pt"), _link("o.npz", "m.pt")),
    ),
    Case(
        "embed/out-is-a-hard-link-of-the-input",
        ["embed", "{tiny}", "{t}/in.fa", "{t}/o.safetensors"],
        1,
        ["is the input ({t}/in.fa)"],
        then(IN, _hard("o.safetensors", "in.fa")),
    ),
    Case(
        "export/out-is-a-file-of-the-checkpoint",
        ["export", "{t}/run", "--out", "{t}/run/checkpoints/step_00000002/engine.pt"],
        1,
        ["is a file of the checkpoint ({t}/run)"],
        copy("run", "run"),
    ),
    Case(
        "export/hf-is-the-run-folder",
        ["export", "{t}/run", "--out", "{t}/m.pt", "--hf", "{t}/run"],
        1,
        ["--hf {t}/run: is the checkpoint"],
        copy("run", "run"),
    ),
    Case(
        "probe/out-is-the-training-file",
        ["probe", "{tiny}", "{t}/h.dbn", "--out", "{t}/h.dbn"],
        1,
        ["--out {t}/h.dbn: is the training structures"],
        copy("dbn", "h.dbn"),
    ),
    Case(
        "probe/out-is-val",
        ["probe", "{tiny}", "{dbn}", "--val", "{t}/v.dbn", "--out", "{t}/v.dbn"],
        1,
        ["--out {t}/v.dbn: is --val"],
        copy("dbn", "v.dbn"),
    ),
    Case(
        "probe/out-is-the-model",
        ["probe", "{t}/b.pt", "{dbn}", "--out", "{t}/b.pt"],
        1,
        ["--out {t}/b.pt: is the model"],
        copy("tiny", "b.pt"),
    ),
    Case(
        "interact/out-is-the-pairs",
        ["interact", "{t}/p.tsv", "--model", "{rri_model}", "-o", "{t}/p.tsv"],
        1,
        ["--out {t}/p.tsv: is the input"],
        copy("pairs", "p.tsv"),
    ),
    Case(
        "interact/maps-link-to-the-pairs",
        ["interact", "{t}/p.tsv", "--model", "{rri_model}", "--maps", "{t}/m.npz"],
        1,
        ["--maps {t}/m.npz: is the input ({t}/p.tsv)"],
        then(copy("pairs", "p.tsv"), _link("m.npz", "p.tsv")),
    ),
    Case(
        "interact/out-and-maps-one-file",
        ["interact", "{pairs}", "--model", "{rri_model}", "-o", "{t}/s.tsv", "--maps", "{t}/m.npz"],
        1,
        ["--out and --maps both name"],
        _link("m.npz", "s.tsv"),
    ),
    Case(
        "interact/out-is-the-probe",
        ["interact", "{pairs}", "--zero-shot", "--backbone", "{tiny}", "--probe", "{t}/p.pt", "-o", "{t}/p.pt"],
        1,
        ["--out {t}/p.pt: is --probe"],
        copy("probe", "p.pt"),
    ),
    Case(
        "predict/out-is-the-input",
        ["predict", "--task", "mrl", "{t}/u.csv", "--model", "{mrl_model}", "-o", "{t}/u.csv"],
        1,
        ["--out {t}/u.csv: is the input"],
        copy("utrs", "u.csv"),
    ),
    Case(
        "predict/out-links-to-the-input",
        ["predict", "--task", "mrl", "{t}/u.csv", "--model", "{mrl_model}", "-o", "{t}/o.tsv"],
        1,
        ["--out {t}/o.tsv: is the input ({t}/u.csv)"],
        then(copy("utrs", "u.csv"), _link("o.tsv", "u.csv")),
    ),
    Case(
        "evaluate/out-is-the-model",
        ["evaluate", "structure", "--model", "{t}/m.pt", "--dataset", "ts0", "--out", "{t}/m.pt"],
        1,
        ["--out {t}/m.pt: is --model"],
        copy("structure_model", "m.pt"),
    ),
    # ------------------------------------------------------------------ messages name the whole path or the record
    Case("fold/missing-input-named-in-full", ["fold", "{t}/nowhere/x.fa", "-o", "{t}/o.dbn"], 1, ["{t}/nowhere/x.fa"]),
    Case(
        "embed/missing-input-named-in-full",
        ["embed", "{tiny}", "{t}/nowhere/x.fa", "{t}/e.npz"],
        1,
        ["{t}/nowhere/x.fa"],
    ),
    Case(
        "fold/only-semicolon-lines",
        ["fold", "{t}/s.txt", "-o", "{t}/o.dbn"],
        1,
        ["{t}/s.txt: no records"],  # FASTA's ';' comments (once read as the bare sequence ';')
        write("s.txt", ";\n;\n;\n"),
    ),
    Case(
        "embed/only-semicolon-lines",
        ["embed", "{tiny}", "{t}/s.txt", "{t}/e.npz"],
        1,
        ["{t}/s.txt: no records"],
        write("s.txt", ";\n;\n"),
    ),
    Case(
        "fold/id-too-long-for-split-dir",
        ["fold", "{t}/long.fa", "--split-dir", "{t}/d"],
        1,
        [f"record '{LONG_ID[:40]}...' (300 characters)", "255"],
        write("long.fa", f">{LONG_ID}\nACGUACGU\n"),
    ),
    Case(
        "fold/id-too-long-for-plot",
        ["fold", "{t}/long.fa", "-o", "{t}/o.dbn", "--plot", "{t}/p"],
        1,
        ["(300 characters)"],
        write("long.fa", f">{LONG_ID}\nACGUACGU\n"),
    ),
    Case(
        "fold/reference-duplicate-id",
        ["fold", "{t}/in.fa", "--reference", "{t}/d.dbn"],
        1,
        ["{t}/d.dbn: duplicate id 'r1'"],
        then(IN, write("d.dbn", REF + f">r1\n{SEQ1}\n.............\n")),
    ),
    Case(
        "fold/reference-missing-named-in-full",
        ["fold", "{fa}", "--reference", "{t}/nowhere/r.dbn"],
        1,
        ["{t}/nowhere/r.dbn"],
    ),
    Case(
        "fold/reference-wrong-length-named-in-full",
        ["fold", "{t}/in.fa", "--reference", "{t}/r.dbn"],
        1,
        ["{t}/r.dbn: record 'r1' has length 4"],
        then(IN, write("r.dbn", ">r1\nGGGA\n(..)\n")),
    ),
    Case(
        "fold/reference-other-sequence-named-in-full",
        ["fold", "{t}/in.fa", "--reference", "{t}/r.dbn"],
        1,
        ["{t}/r.dbn: record 'r1'"],
        then(IN, write("r.dbn", REF.replace(SEQ1, "A" * len(SEQ1)))),
    ),
    Case(
        "probe/structures-missing-named-in-full",
        ["probe", "{tiny}", "{t}/nowhere/h.dbn", "--out", "{t}/p.pt"],
        1,
        ["{t}/nowhere/h.dbn"],
    ),
    Case(
        "fold/bad-symbol-names-the-file",
        ["fold", "{t}/bad.fa", "-o", "{t}/o.dbn"],
        1,
        ["{t}/bad.fa: record 'bad'"],
        write("bad.fa", ">ok\nACGU\n>bad one\nACGUJ\n"),
    ),
    Case(
        "embed/bad-symbol-names-the-file",
        ["embed", "{tiny}", "{t}/bad.fa", "{t}/e.npz"],
        1,
        ["{t}/bad.fa: record 'bad'"],
        write("bad.fa", ">ok\nACGU\n>bad one\nACGUJ\n"),
    ),
    Case(
        "fold/too-long-names-the-file",
        ["fold", "{fa}", "--max-length", "5", "-o", "{t}/o.dbn"],
        1,
        ["{fa}: record 'r1': 13 nt is longer than --max-length 5"],
    ),
    Case(
        "embed/too-long-names-the-file",
        ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--max-length", "5"],
        1,
        ["{fa}: record 'r1'"],
    ),
    Case(
        "fold/unknown-extension-named-in-full",
        ["fold", "{fa}", "--reference", "{t}/r.xyz"],
        1,
        ["{t}/r.xyz"],
        write("r.xyz", REF),
    ),
    # ------------------------------------------------------------------ memory, before the work
    Case(
        "fold/memory-refused",
        ["fold", "{fa}", "-o", "{t}/o.dbn"],
        1,
        ["folding 2 records (the longest 22 nt", "GiB are available", "--ignore-memory-check"],
        env=LOW_MEMORY,
    ),
    Case(
        "fold/memory-refused-to-stdout",
        ["fold", "{fa}", "--threads", "1"],
        1,
        ["1 prior worker", "--ignore-memory-check"],
        env=LOW_MEMORY,
    ),
    Case(
        "embed/memory-refused",
        ["embed", "{tiny}", "{fa}", "{t}/e.npz"],
        1,
        ["embedding 2 records (the longest 22 nt)", "--ignore-memory-check"],
        env=LOW_MEMORY,
    ),
    Case(
        "embed/memory-refused-with-contacts",
        ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--include", "contacts"],
        1,
        ["with contacts", "--ignore-memory-check"],
        env=LOW_MEMORY,
    ),
    # ------------------------------------------------------------------ training values
    *[
        Case(
            f"pretrain/{key}={value}",
            ["pretrain", "--config", "{t}/cfg.yaml", f"{key}={value}"],
            1,
            [key.split(".")[1], value.strip("[]").split(",")[0]],
            PRETRAIN_COPY,
        )
        for key, value in [
            ("optim.warmup_steps", "-1"),
            ("optim.weight_decay", "-1"),
            ("optim.betas", "[1.5,0.9]"),
            ("optim.schedule", "bogus"),
            ("optim.min_lr_ratio", "2"),
            ("optim.max_grad_norm", "-1"),
            ("train.grad_accum", "0"),
            ("train.precision", "fp8"),
            ("train.engine", "bogus"),
            ("train.device", "bogus"),
            ("data.val_fraction", "2"),
            ("data.max_length", "0"),
            ("masking.mask_prob", "1.5"),
            ("train.log_every", "-1"),
            ("train.max_steps", "0"),
        ]
    ],
    *[
        Case(
            f"finetune/{key}={value}",
            ["finetune", "--config", "{rri_cfg}", f"{key}={value}", "train.out_dir={t}/new"],
            1,
            [key],
        )
        for key, value in [
            ("optim.warmup_steps", "-1"),
            ("train.val_every", "-1"),
            ("optim.lr", "0"),
            ("train.grad_accum", "0"),
        ]
    ],
]


@pytest.mark.parametrize("case", OUTPUT_CASES, ids=[c.id for c in OUTPUT_CASES])
def test_bad_output_or_value_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


# ----------------------------------------------------------------------------- outputs that must work
@pytest.fixture(scope="module")
def folded(ws, tmp_path_factory):
    """The structures and pair probabilities of the workspace's FASTA, written to plain files."""
    d = tmp_path_factory.mktemp("folded")
    assert cli_main(["fold", str(ws["fa"]), "-o", str(d / "s.dbn"), "--bpp", str(d / "s.bpp"), "--threads", "1"]) == 0
    return (d / "s.dbn").read_text(), (d / "s.bpp").read_text()


def test_dash_and_dev_stdout_are_streamed(ws, folded, tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    capfd.readouterr()
    assert cli_main(["fold", str(ws["fa"]), "-o", str(tmp_path / "s.dbn"), "--bpp", "-", "--threads", "1"]) == 0
    out = capfd.readouterr().out
    assert out.startswith(folded[1]) and (tmp_path / "s.dbn").read_text() == folded[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.dbn"]  # no file called '-'
    was = os.readlink("/dev/stdout")
    assert cli_main(["fold", str(ws["fa"]), "-o", "/dev/stdout", "--threads", "1"]) == 0
    assert capfd.readouterr().out.startswith(folded[0])
    assert os.path.islink("/dev/stdout") and os.readlink("/dev/stdout") == was  # not renamed over, even as root
    assert cli_main(["fold", str(ws["fa"]), "-o", "-", "--bpp", "/dev/stdout", "--threads", "1"]) == 0
    assert capfd.readouterr().out == folded[0] + folded[1] and sorted(p.name for p in tmp_path.iterdir()) == ["s.dbn"]


def test_a_named_pipe_is_streamed(ws, folded, tmp_path):
    fifo = tmp_path / "bpp.pipe"
    os.mkfifo(fifo)
    got = []

    def read() -> None:
        with open(fifo) as fh:
            got.append(fh.read())

    reader = threading.Thread(target=read)
    reader.start()
    assert cli_main(["fold", str(ws["fa"]), "-o", str(tmp_path / "s.dbn"), "--bpp", str(fifo), "--threads", "1"]) == 0
    reader.join(30)
    assert got == [folded[1]] and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bpp.pipe", "s.dbn"]


def test_a_linked_output_is_written_to_its_target(ws, folded, tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "s.dbn"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    (tmp_path / "link.dbn").symlink_to(target)
    (tmp_path / "dangling.bpp").symlink_to(tmp_path / "real" / "new.bpp")
    assert (
        cli_main(
            [
                "fold",
                str(ws["fa"]),
                "-o",
                str(tmp_path / "link.dbn"),
                "--bpp",
                str(tmp_path / "dangling.bpp"),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert os.path.islink(tmp_path / "link.dbn") and os.path.islink(tmp_path / "dangling.bpp")
    assert target.read_text() == folded[0] and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert (tmp_path / "real" / "new.bpp").read_text() == folded[1]
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["new.bpp", "s.dbn"]  # staged beside the target


def test_a_hard_linked_output_that_is_no_input_is_replaced(ws, folded, tmp_path):
    (tmp_path / "a.dbn").write_text("old\n")
    os.link(tmp_path / "a.dbn", tmp_path / "b.dbn")
    assert cli_main(["fold", str(ws["fa"]), "-o", str(tmp_path / "a.dbn"), "--threads", "1"]) == 0
    assert (tmp_path / "a.dbn").read_text() == folded[0] and (tmp_path / "b.dbn").read_text() == "old\n"


def test_the_memory_check_can_be_overridden(ws, folded, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("RESM_AVAILABLE_MEMORY", "1000")
    assert (
        cli_main(["fold", str(ws["fa"]), "-o", str(tmp_path / "s.dbn"), "--threads", "1", "--ignore-memory-check"]) == 0
    )
    assert (tmp_path / "s.dbn").read_text() == folded[0]
    assert cli_main(["embed", str(ws["tiny"]), str(ws["fa"]), str(tmp_path / "e.npz"), "--ignore-memory-check"]) == 0


def test_the_fold_estimate_stays_above_the_measured_peaks():
    """The estimate against the peaks measured by experiments/memory_fold.py (its table)."""
    import re

    from resm.utils.memory import GIB, fold_estimate
    from tests.conftest import REPO

    rows = re.findall(
        r"^\| ([\d,]+) \| ([\d.]+) \|", (REPO / "experiments/results/memory_fold_cpu.md").read_text(), re.M
    )
    assert len(rows) >= 3
    for length, peak in rows:
        est = fold_estimate([int(length.replace(",", ""))]) / GIB
        assert float(peak) <= est <= 1.6 * float(peak) + 0.3, (length, peak, est)
    text = (REPO / "experiments/results/memory_fold_cpu.md").read_text()
    embed = re.findall(r"^\| ([\d,]+) \| (mean|contacts) \| ([\d.]+) \| \d+ \| ([\d.]+) \|$", text, re.M)
    assert len(embed) >= 4
    for length, inc, peak, est in embed:  # the estimate printed by the script, from resm.utils.memory
        assert float(peak) <= float(est), (length, inc, peak, est)
