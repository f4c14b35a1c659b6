"""The fifteenth audit: interruption, atomicity and output paths of every command that writes.

* A sharded ``resm fold``/``resm embed`` (more records than ``--shard-size``) into a folder that
  did not exist (``-o new/s.dbn``), stopped by Ctrl-C or SIGTERM before its first shard was
  done, removed its work folder but left ``new/``, which the work folder's ``mkdir -p`` had
  created (a one-shard run left nothing). :class:`resm.utils.shards.ShardRun` now removes the
  folders it made when it removes its work folder and they are empty; an error (not only a
  signal) before the first shard is done removes the work folder too (``ShardRun.process``).
* A training run stopped while it wrote a checkpoint (Ctrl-C, SIGTERM or an error) left
  ``checkpoints/step_N.tmp/`` with a part-written ``engine.pt`` until its next save, forever if
  the run was not resumed. The save removes its folder when it is stopped (SIGTERM through
  :func:`resm.utils.io.on_abort`).
* Ctrl-C that a library turned into its own error (Python wraps an exception raised in a
  class's ``__set_name__`` in a RuntimeError: Ctrl-C while ``resm compare`` imported
  matplotlib) was said as "RuntimeError: Error calling __set_name__ ... (unexpected ...)" with
  exit code 1; it is "interrupted" with 130 (:func:`resm.utils.io.interrupted`).
* A file output named as a folder (``-o s.dbn/``, ``s.dbn/.``) wrote the file ``s.dbn``
  (``Path`` drops the ending); it is refused, naming the option (:func:`resm.utils.io.check_output`
  on the path as typed).
* Every staged torch file (a model, a probe, a fair-esm checkpoint) held its temporary's name
  (host, process id, random letters) as the folder inside its zip, so one command wrote new
  bytes at each run (:func:`resm.utils.io.torch_save`).
* SIGHUP (the terminal closed) ended a command where it stood, leaving its temporaries; it
  cleans up as SIGTERM does (exit 129).

Checked and already right (no test added here): SIGINT and SIGTERM mid-run of fold (one shard,
and sharded with finished shards kept and named), embed, probe, interact, predict --task mrl,
init-checkpoint (.pt and --format hf), evaluate (its --bpp-cache entries are kept by design),
compare, pretrain before its first checkpoint (exit 130 / 143, one line, nothing left); a run
stopped by Ctrl-C after a checkpoint resumes to the uninterrupted run's weights and losses; an
output that is the input through a symbolic or hard link, a folder, or in a missing folder; an
existing output replaced atomically with its mode kept (a foreign folder or one of the other
kind refused) alike in every command; ``| head`` (quiet, 141) and a closed standard output (one
line, 1); the umask (077 and 002) on every file and folder written, run folders, checkpoints,
bundles, plots, split files and kept shards included.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from resm.cli import main as cli_main
from tests.conftest import ENV, REPO, signal_when
from tests.robustness.cases import Case, check_one_line


def _fasta(path: Path, n: int, length: int = 120) -> Path:
    rng = np.random.default_rng(0)
    path.write_text("".join(f">s{i}\n{''.join(rng.choice(list('ACGU'), length))}\n" for i in range(n)))
    return path


# ---------------------------------------------------------------- a sharded run's folders
def test_an_interrupted_shard_run_removes_the_folders_it_made(tmp_path):
    from resm.utils import shards

    run = shards.ShardRun(tmp_path / "a" / "b" / "s.dbn", 10, 4, {"command": "t"}, ".jsonl")
    run.prepare()
    assert (tmp_path / "a" / "b" / "s.dbn.shards" / "job.json").is_file()
    assert shards.interrupted_note() == ""  # no finished shard: nothing kept, nothing to say
    assert list(tmp_path.iterdir()) == []  # neither the work folder nor a/ and a/b/


def test_a_shard_run_keeps_a_folder_that_holds_other_files(tmp_path):
    from resm.utils import shards

    run = shards.ShardRun(tmp_path / "a" / "s.dbn", 10, 4, {"command": "t"}, ".jsonl")
    run.prepare()
    (tmp_path / "a" / "mine.txt").write_text("not the run's")
    shards.interrupted_note()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["mine.txt"]


def test_sigint_before_the_first_shard_leaves_no_folder(tmp_path):
    fa = _fasta(tmp_path / "many.fa", 1200)
    work = tmp_path / "new" / "s.dbn.shards"
    code, err = signal_when(
        ["fold", fa, "-o", tmp_path / "new" / "s.dbn", "--threads", "1", "--shard-size", "600"],
        lambda: (work / "job.json").exists(),  # the work folder is there, the first shard not done
        signal.SIGINT,
    )
    assert code == 130 and "resm fold: interrupted" in err and "Traceback" not in err, err
    assert sorted(tmp_path.iterdir()) == [fa]  # nor new/


# ---------------------------------------------------------------- a checkpoint stopped mid-save
def _pretrain_config(ws, tmp_path: Path) -> Path:
    cfg = yaml.safe_load(Path(ws["pretrain_cfg"]).read_text())
    cfg["train"].update(out_dir=str(tmp_path / "run"), max_steps=4, ckpt_every=1, val_every=0)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_ctrl_c_while_a_checkpoint_is_written_leaves_no_part_written_one(ws, tmp_path, monkeypatch, capfd):
    import resm.train as train

    real, calls = train.save_trainer_state, []

    def stopped(*a, **k):  # the second save: Ctrl-C after engine.pt is written
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(train, "save_trainer_state", stopped)
    assert cli_main(["pretrain", "--config", str(_pretrain_config(ws, tmp_path))]) == 130
    assert "resm pretrain: interrupted" in capfd.readouterr().err
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_00000001"]


def test_sigterm_while_a_checkpoint_is_written_leaves_no_part_written_one(ws, tmp_path):
    """SIGTERM's handler exits at once (no exception reaches the save): the save's folder is
    removed through on_abort. The signal is sent by the process itself mid-save."""
    script = (
        "import os, signal, sys, time\n"
        "import resm.train as train\n"
        "from resm.cli import main\n"
        "real, calls = train.save_trainer_state, []\n"
        "def stopped(*a, **k):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 2:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(60)\n"
        "    return real(*a, **k)\n"
        "train.save_trainer_state = stopped\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    cfg = _pretrain_config(ws, tmp_path)
    p = subprocess.run(
        [sys.executable, "-c", script, "pretrain", "--config", str(cfg)],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 143 and "resm pretrain: terminated" in p.stderr, p.stderr
    assert sorted(x.name for x in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_00000001"]


# ---------------------------------------------------------------- Ctrl-C wrapped by a library
def test_ctrl_c_wrapped_in_another_error_is_an_interruption(ws, tmp_path, monkeypatch, capfd):
    import resm.structure.inputs as inputs

    def importing(*a, **k):  # Ctrl-C in a class's __set_name__, as while a library is imported
        class Descriptor:
            def __set_name__(self, owner, name):
                raise KeyboardInterrupt

        type("Axes", (), {"method": Descriptor()})  # Python 3.11: a RuntimeError caused by it

    monkeypatch.setattr(inputs, "read_sequences", importing)
    code = cli_main(["fold", str(ws["fa"]), "-o", str(tmp_path / "s.dbn"), "--threads", "1"])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 130 and err == ["resm fold: interrupted"], err
    assert list(tmp_path.iterdir()) == []


def test_an_error_that_is_no_interruption_stays_unexpected(ws, tmp_path, monkeypatch, capfd):
    import resm.structure.inputs as inputs

    def broken(*a, **k):
        raise RuntimeError("boom") from ZeroDivisionError()

    monkeypatch.setattr(inputs, "read_sequences", broken)
    assert cli_main(["fold", str(ws["fa"]), "-o", str(tmp_path / "s.dbn"), "--threads", "1"]) == 1
    assert "RuntimeError: boom (unexpected" in capfd.readouterr().err


def test_interrupted_follows_causes_and_contexts():
    from resm.utils.io import interrupted

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ValueError("while stopping") from None
    except ValueError as e:
        assert interrupted(e)  # its context is the interrupt (from None only hides it when shown)
    assert not interrupted(RuntimeError("x"))


# ---------------------------------------------------------------- a file output named as a folder
# Path() drops an ending '/', so -o s.dbn/ wrote the file s.dbn (cp and the shell's > refuse it).
ENDS = "so it names a folder; a file is to be written here"
FOLDER_NAMED = [
    Case(
        "fold/out-slash",
        ["fold", "{fa}", "-o", "{t}/s.dbn/", "--threads", "1"],
        1,
        [f"--out {{t}}/s.dbn/: ends in '/', {ENDS}"],
    ),
    Case("fold/out-slash-dot", ["fold", "{fa}", "-o", "{t}/s.dbn/.", "--threads", "1"], 1, [f"ends in '/.', {ENDS}"]),
    Case(
        "fold/bpp-slash",
        ["fold", "{fa}", "-o", "{t}/s.dbn", "--bpp", "{t}/s.bpp/", "--threads", "1"],
        1,
        ["--bpp {t}/s.bpp/"],
    ),
    Case("embed/out-slash", ["embed", "{tiny}", "{fa}", "{t}/e.npz/"], 1, [f"OUT {{t}}/e.npz/: ends in '/', {ENDS}"]),
    Case("probe/out-slash", ["probe", "{tiny}", "{dbn}", "--out", "{t}/p.pt/"], 1, ["--out {t}/p.pt/"]),
    Case("init-checkpoint/out-slash", ["init-checkpoint", "--arch", "tiny", "-o", "{t}/t.pt/"], 1, ["--out {t}/t.pt/"]),
    Case(
        "interact/out-slash", ["interact", "{pairs}", "--model", "{rri_model}", "-o", "{t}/s.tsv/"], 1, ["{t}/s.tsv/"]
    ),
]


@pytest.mark.parametrize("case", FOLDER_NAMED, ids=[c.id for c in FOLDER_NAMED])
def test_a_file_output_named_as_a_folder_is_refused(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


def test_a_folder_output_may_end_in_a_slash(ws, tmp_path):
    out = tmp_path / "hf"
    assert cli_main(["init-checkpoint", "--arch", "tiny", "--format", "hf", "-o", f"{out}/"]) == 0
    assert (out / "config.json").is_file()
    assert cli_main(["fold", str(ws["fa"]), "--split-dir", f"{tmp_path}/sd/", "--threads", "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "sd").iterdir()) == ["r1.dbn", "r2.dbn"]


def test_the_api_refuses_a_file_named_as_a_folder(tmp_path):
    from resm.utils import io

    with pytest.raises(io.OutputError, match="ends in '/'"):
        io.atomic_write_text(f"{tmp_path}/a.txt/", "x")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- a torch file's inner name
def _zip_names(path: Path) -> list[str]:
    import zipfile

    with zipfile.ZipFile(path) as z:
        return z.namelist()


def test_a_torch_output_is_the_same_bytes_run_after_run(tmp_path):
    """torch.save(obj, path) names the folder inside its zip after the file: staged, that was
    the temporary's name (host, process id, random letters), so one command gave new bytes at
    each run (and published the host name)."""
    for name in ("a.pt", "b.pt"):
        assert cli_main(["init-checkpoint", "--arch", "tiny", "--seed", "3", "-o", str(tmp_path / name)]) == 0
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    names = _zip_names(tmp_path / "a.pt")
    assert all(n.startswith("archive/") for n in names), names


def test_a_probe_and_a_structure_model_name_no_temporary_inside(ws, tmp_path):
    import torch

    from resm.structure.model import save_structure_model

    assert (
        cli_main(["probe", str(ws["tiny"]), str(ws["dbn"]), "--out", str(tmp_path / "p.pt"), "--max-train", "4"]) == 0
    )
    save_structure_model({"weights": torch.zeros(2)}, tmp_path / "m.pt")
    for f in ("p.pt", "m.pt"):
        names = _zip_names(tmp_path / f)
        assert all(n.startswith("archive/") for n in names), names


# ---------------------------------------------------------------- SIGHUP: the terminal closed
def test_sighup_cleans_up_as_sigterm_does(tmp_path):
    """Closing the terminal (or an ssh session dropping) sends SIGHUP, whose default ends the
    process where it stands: a fold left its hidden temporary and the folder it made."""
    fa = _fasta(tmp_path / "many.fa", 400)
    out_dir = tmp_path / "o"
    code, err = signal_when(
        ["fold", fa, "-o", out_dir / "s.dbn", "--threads", "1"],
        lambda: out_dir.exists() and bool(list(out_dir.glob(".s.dbn.*.tmp"))),
        signal.SIGHUP,
    )
    assert code == 129 and [ln for ln in err.splitlines() if "hung up" in ln] == ["resm fold: hung up"], err
    assert sorted(tmp_path.iterdir()) == [fa]


# ---------------------------------------------------------------- a sharded run that fails
def test_a_sharded_fold_that_fails_before_a_shard_is_done_leaves_nothing(ws, tmp_path, monkeypatch, capfd):
    """An error (not only Ctrl-C) in a sharded run with no shard finished left the work folder
    holding job.json, and the folder made for it."""
    import resm.structure.pipeline as pipeline

    def failing(*a, **k):
        raise ValueError("record r1: the folder failed")

    monkeypatch.setattr(pipeline, "_fold_block", failing)
    out = tmp_path / "new" / "s.dbn"
    assert cli_main(["fold", str(ws["fa"]), "-o", str(out), "--shard-size", "1", "--threads", "1"]) == 1
    assert capfd.readouterr().err.strip().splitlines() == ["resm fold: error: record r1: the folder failed"]
    assert list(tmp_path.iterdir()) == []


def test_a_sharded_fold_that_fails_after_a_shard_keeps_it_to_resume(ws, tmp_path, monkeypatch, capfd):
    import resm.structure.pipeline as pipeline

    real, calls = pipeline._fold_block, []

    def second_fails(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("record r2: the folder failed")
        return real(*a, **k)

    monkeypatch.setattr(pipeline, "_fold_block", second_fails)
    out = tmp_path / "s.dbn"
    assert cli_main(["fold", str(ws["fa"]), "-o", str(out), "--shard-size", "1", "--threads", "1"]) == 1
    work = tmp_path / "s.dbn.shards"
    assert (work / "job.json").is_file() and len(list(work.glob("shard-*.jsonl"))) == 1
    monkeypatch.setattr(pipeline, "_fold_block", real)
    assert cli_main(["fold", str(ws["fa"]), "-o", str(out), "--shard-size", "1", "--threads", "1"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.dbn"]
