"""Text and files as users have them, and outputs that are all or nothing: a byte-order mark,
record ids in any script, a log cut off by a crash, the user's umask, replaced outputs, a
failed start, SIGTERM and the temporaries of killed processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from resm.cli import main as cli_main
from tests.conftest import ENV, REPO, signal_when
from tests.robustness.conftest import listing

BOM = "\ufeff"
IDS = ["ARN_é", "αβ-1", "核糖"]


def run(*argv, capfd=None) -> int:
    return cli_main([str(a) for a in argv])


def test_optim_lr_in_e_notation_works(ws, tmp_path):
    cfg = yaml.safe_load(Path(ws["pretrain_cfg"]).read_text())
    cfg["train"].update(out_dir=str(tmp_path / "run"), max_steps=1, ckpt_every=0)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert run("pretrain", "--config", tmp_path / "c.yaml", "optim.lr=1e-3") == 0
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["optim"]["lr"] == "1e-3"
    assert log[0]["lr"] == pytest.approx(1e-3 / 5)  # the first warm-up step of five


def test_bom_and_ids_in_any_script_are_kept(ws, tmp_path, capfd, recwarn):
    fa = tmp_path / "u.fa"
    fa.write_text(BOM + "".join(f">{i} note\nGGGAAACCCAUGCGG\n" for i in IDS), encoding="utf-8")
    assert run("fold", fa, "-o", tmp_path / "s.dbn", "--plot", tmp_path / "plots") == 0
    assert not [w for w in recwarn if "Glyph" in str(w.message)]  # the font lacks CJK glyphs: boxes, no warning
    text = (tmp_path / "s.dbn").read_text(encoding="utf-8")
    assert [ln[1:] for ln in text.splitlines() if ln.startswith(">")] == IDS
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(
        f"{i}{s}.png" for i in IDS for s in ("", "_ss")
    )
    assert run("fold", fa, "--format", "ct", "--split-dir", tmp_path / "ct") == 0
    assert sorted(p.name for p in (tmp_path / "ct").iterdir()) == sorted(f"{i}.ct" for i in IDS)
    assert run("embed", ws["tiny"], fa, tmp_path / "e.safetensors") == 0
    from resm.embed import read_embeddings

    assert read_embeddings(tmp_path / "e.safetensors")[1]["ids"] == IDS
    pairs = tmp_path / "p.tsv"
    pairs.write_text(
        BOM + "a_name\ta_seq\tb_name\tb_seq\n" + "".join(f"{i}\tACGUACGU\tt{i}\tGGCCAAU\n" for i in IDS),
        encoding="utf-8",
    )
    assert run("interact", pairs, "--model", ws["rri_model"], "-o", tmp_path / "s.tsv") == 0
    rows = (tmp_path / "s.tsv").read_text(encoding="utf-8").splitlines()[1:]
    assert [r.split("\t")[1] for r in rows] == IDS
    utrs = tmp_path / "u.csv"
    utrs.write_text(BOM + "id,utr\n" + "".join(f"{i},ACGUACGUAC\n" for i in IDS), encoding="utf-8")
    assert run("predict", "--task", "mrl", utrs, "--model", ws["mrl_model"], "-o", tmp_path / "m.tsv") == 0
    assert [r.split("\t")[0] for r in (tmp_path / "m.tsv").read_text(encoding="utf-8").splitlines()[1:]] == IDS
    config = tmp_path / "c.yaml"
    config.write_text(BOM + Path(ws["pretrain_cfg"]).read_text())
    assert run("pretrain", "--config", config, f"train.out_dir={tmp_path / 'r'}", "train.max_steps=1") == 0


def _run_copy(ws, tmp_path) -> Path:
    shutil.copytree(ws["run"], tmp_path / "run")
    cfg = yaml.safe_load(Path(ws["pretrain_cfg"]).read_text())
    cfg["train"]["out_dir"] = str(tmp_path / "run")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "c.yaml"


def test_a_log_cut_off_by_a_crash_is_resumed_with_a_warning(ws, tmp_path, capfd):
    cfg = _run_copy(ws, tmp_path)
    log = tmp_path / "run" / "log.jsonl"
    with open(log, "a") as fh:
        fh.write('{"split": "train", "step": 3, "lo')  # the crash came mid-line
    capfd.readouterr()
    assert run("pretrain", "--config", cfg, "train.max_steps=3", "train.resume_changed=true") == 0
    err = capfd.readouterr().err
    assert f"warning: {log}: dropped line 3, not complete JSON" in err
    steps = [json.loads(x)["step"] for x in log.read_text().splitlines()]
    assert steps == [1, 2, 2, 3]  # the train lines, the resume record and the new step


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_run_folders_and_checkpoints_honour_the_umask(ws, tmp_path, mask):
    cfg = yaml.safe_load(Path(ws["pretrain_cfg"]).read_text())
    cfg["train"].update(out_dir=str(tmp_path / "run"), max_steps=2, ckpt_every=1)
    cfg["model"]["save_hf"] = True
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    old = os.umask(mask)
    try:
        assert run("pretrain", "--config", tmp_path / "c.yaml") == 0
        assert run("export", tmp_path / "run", "--out", tmp_path / "esm2_x.pt", "--hf", tmp_path / "x_hf") == 0
    finally:
        os.umask(old)
    modes = {
        p: stat.S_IMODE(p.stat().st_mode)
        for p in [
            tmp_path / "run",
            *(tmp_path / "run").rglob("*"),
            tmp_path / "esm2_x.pt",
            tmp_path / "esm2_x-contact-regression.pt",
            tmp_path / "x_hf",
            *(tmp_path / "x_hf").iterdir(),
        ]
    }
    want = {p: (0o777 if p.is_dir() else 0o666) & ~mask for p in modes}
    assert modes == want


def test_outputs_of_the_same_kind_are_replaced(ws, tmp_path):
    out, hf = tmp_path / "m.pt", tmp_path / "hf"
    for seed in ("1", "2"):
        assert run("init-checkpoint", "--arch", "tiny", "--seed", seed, "--out", out) == 0
        assert run("init-checkpoint", "--arch", "tiny", "--seed", seed, "--format", "hf", "--out", hf) == 0
    from resm.backbone.load import load_backbone

    assert json.loads((hf / "resm.json").read_text())["seed"] == 2
    assert load_backbone(out).meta["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "m.pt"]  # no temporaries left


@pytest.mark.parametrize("failure", ["bad record", "error in step 2"])
def test_a_failed_start_leaves_no_run_folder(ws, tmp_path, capfd, monkeypatch, failure):
    cfg = yaml.safe_load(Path(ws["pretrain_cfg"]).read_text())
    cfg["train"].update(max_steps=4, ckpt_every=3)
    if failure == "bad record":
        bad = tmp_path / "bad.fa"
        bad.write_text(">broken\nACGU!!\n" + Path(cfg["data"]["train"][0]).read_text())
        cfg["data"].update(train=[str(bad)], bad_records="error")
    else:
        from resm.tasks.mlm import MLMTask

        real = MLMTask.loss
        calls = []

        def loss(self, *a, **k):
            calls.append(1)
            if len(calls) % 2 == 0:  # step 2 of each run: config.json and a log line are written by now
                raise RuntimeError("broken batch")
            return real(self, *a, **k)

        monkeypatch.setattr(MLMTask, "loss", loss)
    for out in (tmp_path / "new", tmp_path / "existing"):
        cfg["train"]["out_dir"] = str(out)
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
        before = listing(tmp_path)
        capfd.readouterr()
        assert run("pretrain", "--config", tmp_path / "c.yaml") == 1
        err = capfd.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "broken" in err[0], err
        assert listing(tmp_path) == before
        (tmp_path / "existing").mkdir(exist_ok=True)  # the second round: a folder that was there
        (tmp_path / "existing" / "notes.txt").write_text("mine")


def test_all_outputs_or_none(tmp_path, monkeypatch):
    """The mechanism under every command: when putting one output in place fails, the outputs
    already put in place are taken back (and what they replaced restored)."""
    from resm.utils import io

    (tmp_path / "a.txt").write_text("old a")
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if Path(dst).name == "b.txt":
            raise PermissionError(13, "Permission denied", str(dst))
        return real(src, dst)

    monkeypatch.setattr(io.os, "replace", flaky)
    with pytest.raises(io.OutputError, match="b.txt: cannot be put in place"), io.transaction():
        io.atomic_write_text(tmp_path / "a.txt", "new a")
        io.atomic_write_text(tmp_path / "sub" / "b.txt", "new b")
    assert (tmp_path / "a.txt").read_text() == "old a"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.txt"]  # no temporary, no sub/
    monkeypatch.setattr(io.os, "replace", real)
    with io.transaction():
        io.atomic_write_text(tmp_path / "a.txt", "new a")
        io.atomic_write_text(tmp_path / "sub" / "b.txt", "new b")
        assert (tmp_path / "a.txt").read_text() == "old a"  # staged until the end
    assert (tmp_path / "a.txt").read_text() == "new a" and (tmp_path / "sub" / "b.txt").read_text() == "new b"


def test_stale_temporaries_of_killed_processes_are_removed(tmp_path):
    from resm.utils import io

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = io._host()
        stale = tmp_path / f".out.dbn.{host}-{dead_pid}.abc123.tmp"
        stale_dir = tmp_path / f".out.dbn.{host}-{dead_pid}.def456.tmp"
        running = tmp_path / f".out.dbn.{host}-{live.pid}.ghi789.tmp"
        other = tmp_path / ".out.dbn.otherhost-1.jkl.tmp"
        stale.write_text("half")
        stale_dir.mkdir()
        running.write_text("busy")
        other.write_text("?")
        io.atomic_write_text(tmp_path / "out.dbn", "done")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.dbn", running.name, other.name])
    finally:
        live.kill()
        live.wait()


def _terminate_when(argv, ready, command, hint=""):
    """Run ``resm ARGV`` as a real process, send SIGTERM once ``ready()`` holds, and check the
    answer: exit 143 and exactly one line saying so (then ``hint``)."""
    code, err = signal_when(argv, ready, signal.SIGTERM, timeout=120)
    assert code == 143, err
    want = f"resm {command}: terminated" + hint
    assert [ln for ln in err.splitlines() if "terminated" in ln] == [want]


@pytest.mark.parametrize("threads", ["1", "2"])  # 2: pair priors in worker processes
def test_sigterm_cleans_up(tmp_path, threads):
    """A real process: SIGTERM while it writes leaves no output, no temporary and no worker."""
    rng = np.random.default_rng(0)
    fa = tmp_path / "many.fa"
    fa.write_text("".join(f">s{i}\n{''.join(rng.choice(list('ACGU'), 120))}\n" for i in range(400)))
    out_dir = tmp_path / "o"
    _terminate_when(
        ["fold", fa, "-o", out_dir / "s.dbn", "--threads", threads],
        lambda: out_dir.exists() and bool(list(out_dir.glob(".s.dbn.*.tmp"))),
        "fold",
    )
    assert sorted(tmp_path.iterdir()) == [fa]  # neither s.dbn, nor its temporary, nor the folder o/
    time.sleep(0.5)
    assert subprocess.run(["pgrep", "-f", str(fa)], capture_output=True).stdout == b""  # no worker left


def test_sigterm_before_the_first_checkpoint_leaves_no_run_folder(ws, tmp_path):
    """A real training process stopped by SIGTERM before any checkpoint: the run folder it
    created is removed (as on an error), exit 143, one line."""
    cfg = yaml.safe_load(Path(ws["pretrain_cfg"]).read_text())
    run_dir = tmp_path / "run"
    cfg["train"].update(out_dir=str(run_dir), max_steps=100000, ckpt_every=0, val_every=0)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    removed = f"; no checkpoint had been written, so what the run wrote in {run_dir} was removed "
    _terminate_when(  # it said to resume from the run's last checkpoint, which there was not
        ["pretrain", "--config", tmp_path / "c.yaml"],
        lambda: (run_dir / "log.jsonl").exists(),  # training steps are being taken
        "pretrain",
        removed + "(the same command starts it afresh)",
    )
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c.yaml"]


def test_sigterm_after_a_checkpoint_names_the_one_a_rerun_resumes_from(ws, tmp_path):
    cfg = yaml.safe_load(Path(ws["pretrain_cfg"]).read_text())
    run_dir = tmp_path / "run"
    cfg["train"].update(out_dir=str(run_dir), max_steps=100000, ckpt_every=2, keep_last=1000, val_every=0)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    first = run_dir / "checkpoints" / "step_00000002"
    code, err = signal_when(
        ["pretrain", "--config", tmp_path / "c.yaml"], (first / "trainer_rank0.json").exists, signal.SIGTERM, 120
    )
    [line] = [ln for ln in err.splitlines() if "terminated" in ln]
    newest = sorted((run_dir / "checkpoints").glob("step_????????"))[-1]  # the first, or one written since
    assert code == 143 and line == f"resm pretrain: terminated; run the same command again to resume from {newest}"


def test_a_write_to_a_staged_temporary_goes_straight_in(tmp_path):
    """Writers that stage their own output (``save_probe`` into the probe's temporary) inside
    a transaction: the inner write lands in the temporary, which is then put in place."""
    from resm.utils import io

    with io.transaction(), io.atomic_path(tmp_path / "p.pt") as outer:
        io.atomic_write_text(outer, "weights")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.pt"]
    assert (tmp_path / "p.pt").read_text() == "weights"


@pytest.mark.parametrize(
    "argv,code,named",
    [
        (["fold", "{fa}", "-o", "/sys/x.dbn"], 1, "/sys/x.dbn"),
        (["pretrain", "--config", "{pretrain_cfg}", "train.max_steps=abc"], 1, "train.max_steps"),
        (["embed", "{text}", "{fa}", "{t}/e.npz", "--threads", "-3"], 2, "--threads"),
    ],
)
def test_a_real_process_prints_one_line(ws, tmp_path, argv, code, named):
    """The same rules in a process of its own (what a user runs): import-time noise of torch
    and friends must not reach stderr either."""
    places = {**ws.files, "t": tmp_path}
    args = [a.format(**places) for a in argv]
    p = subprocess.run([sys.executable, "-m", "resm", *args], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert p.returncode == code and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert named in p.stderr and "Traceback" not in p.stderr
    assert list(tmp_path.iterdir()) == []
