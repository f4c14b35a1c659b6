"""The sixth hostile-input audit: each case was read as something it is not (a file of a newer
format as if current, ``RESM_DATA=""`` as the current folder, ``-`` as a file named ``-``, a
named pipe as a file), or said so in a line naming what the command does not have. Command-line
cases keep the rule of :func:`tests.robustness.cases.check_one_line` (one line naming the thing,
the exit code, nothing written)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.robustness.cases import Case, check_one_line, write

REPO = Path(__file__).resolve().parents[2]
FOLD = ["fold", "{fa}", "--model", "{t}/s.pt", "-o", "{t}/o.dbn", "--threads", "1"]
INTERACT = ["interact", "{pairs}", "--model", "{t}/m", "--backbone", "{tiny}", "-o", "{t}/s.tsv", "--threads", "1"]
NEWER = "written by a newer resm (format version {v}; this resm reads up to {m})"


# ---------------------------------------------------------------- a file of a newer format version
# A structure model, a probe record or a bundle manifest claiming a format version this resm does
# not know was read as if current (the manifest's was said as 'unsupported version 2 (expected 1)').
def _model_version(value):
    def setup(p: dict) -> None:
        from resm.structure.model import resolve_model

        data = torch.load(resolve_model("default"), weights_only=True)
        data["version"] = value
        torch.save(data, Path(p["t"]) / "s.pt")

    return setup


def _probe_version(value):
    def setup(p: dict) -> None:
        t = Path(p["t"])
        shutil.copy2(p["probe"], t / "p.pt")
        record = json.loads(Path(p["probe"] + ".json").read_text())
        (t / "p.pt.json").write_text(json.dumps({**record, "version": value}))

    return setup


def _manifest_version(value):
    def setup(p: dict) -> None:
        dst = Path(p["t"]) / "m"
        shutil.copytree(p["rri_model"], dst)
        manifest = json.loads((dst / "manifest.json").read_text())
        manifest["version"] = value
        (dst / "manifest.json").write_text(json.dumps(manifest))

    return setup


PROBE_FOLD = ["fold", "{fa}", "--model", "{tiny}", "--probe", "{t}/p.pt", "-o", "{t}/o.dbn"]
CASES = [
    Case("fold/model-newer-version", FOLD, 1, ["{t}/s.pt: " + NEWER.format(v=3, m=2)], _model_version(3)),
    Case(
        "fold/model-version-text",
        FOLD,
        1,
        ["{t}/s.pt: its format version is '2', not a whole number from 1"],
        _model_version("2"),
    ),
    Case("fold/model-version-bool", FOLD, 1, ["{t}/s.pt: its format version is True"], _model_version(True)),
    Case(
        "fold/probe-record-newer-version",
        PROBE_FOLD,
        1,
        ["{t}/p.pt.json: " + NEWER.format(v=2, m=1)],
        _probe_version(2),
    ),
    Case(
        "fold/probe-record-version-a-list",
        PROBE_FOLD,
        1,
        ["{t}/p.pt.json: its format version is [1]"],
        _probe_version([1]),
    ),
    Case(
        "interact/bundle-manifest-newer-version",
        INTERACT,
        1,
        ["{t}/m/manifest.json: " + NEWER.format(v=2, m=1)],
        _manifest_version(2),
    ),
]


@pytest.mark.parametrize("value", [1, 2, None])
def test_a_structure_model_of_a_known_version_still_reads(value, tmp_path):
    """Versions 1 (the 2-D head's files) and 2 (the pair head's), and a file without a version,
    are read as before."""
    from resm.structure.model import load_structure_model, resolve_model

    data = torch.load(resolve_model("default"), weights_only=True)
    if value is None:
        data.pop("version", None)
    else:
        data["version"] = value
    torch.save(data, tmp_path / "s.pt")
    load_structure_model(tmp_path / "s.pt")


def test_a_trainer_state_of_a_newer_version_is_refused(tmp_path):
    from resm.backbone.load import CheckpointError
    from resm.train_state import load_trainer_state

    (tmp_path / "trainer_rank0.json").write_text(json.dumps({"format": "resm-trainer-state", "version": 9}))
    with pytest.raises(CheckpointError) as e:
        load_trainer_state(tmp_path, 0)
    assert str(e.value) == f"{tmp_path / 'trainer_rank0.json'}: " + NEWER.format(v=9, m=1)


def test_a_non_canonical_scorer_of_a_newer_version_is_refused():
    from resm.structure.noncanonical import FORMAT, NonCanonical, NonCanonicalError

    with pytest.raises(NonCanonicalError) as e:
        NonCanonical.from_payload({"format": FORMAT, "version": 5}, "s.pt")
    assert str(e.value) == "s.pt: its non-canonical scorer is unusable: " + NEWER.format(v=5, m=1)


# ---------------------------------------------------------------- an empty RESM_DATA
def test_an_empty_resm_data_is_unset(monkeypatch):
    """`RESM_DATA= resm evaluate ...` looked for the data sets in the current folder; an empty
    value is read as unset (the default data folder), as most tools read an empty variable."""
    from resm.config import default_data_dir

    monkeypatch.delenv("RESM_DATA", raising=False)
    unset = default_data_dir()
    monkeypatch.setenv("RESM_DATA", "")
    assert default_data_dir() == unset == "../shared/data"
    monkeypatch.setenv("RESM_DATA", "/elsewhere")
    assert default_data_dir() == "/elsewhere"


# ---------------------------------------------------------------- what resm probe accepts
# `resm probe default s.txt` said "its extension names no structure format (...); give the format",
# an option resm probe does not have: it reads the format from the extension alone.
CASES += [
    Case(
        f"probe/{what}-without-a-structure-extension",
        ["probe", "default", *argv, "--out", "{t}/p.pt", "--threads", "1"],
        1,
        [
            "{t}/s.txt: its extension names no structure format (dbn, bpseq, ct, pairs); "
            "give it one of the extensions .dbn, .db, .dot, .bpseq, .ct, .pairs (.gz ok)"
        ],
        write("s.txt", ">a\nGGGGAAAACCCC\n((((....))))\n"),
    )
    for what, argv in (("train", ["{t}/s.txt"]), ("val", ["{dbn}", "--val", "{t}/s.txt"]))
]


# ---------------------------------------------------------------- '-' where standard input is not read
# `resm interact - ...` and `resm predict - ...` opened a file named '-': '- line 1: cannot read
# (No such file or directory)'. Their readers take files alone; '-' is refused saying so.
PREDICT = ["predict", "-", "--model", "{mrl_model}", "--backbone", "{tiny}", "-o", "{t}/p.tsv", "--threads", "1"]
CASES += [
    Case(
        "interact/pairs-from-stdin",
        ["interact", "-", "--model", "{rri_model}", "--backbone", "{tiny}", "-o", "{t}/s.tsv", "--threads", "1"],
        2,
        ["PAIRS -: standard input is not read by this command; give the pairs table as a file"],
    ),
    Case(
        "interact/zero-shot-pairs-from-stdin",
        ["interact", "-", "--zero-shot", "--backbone", "{tiny}", "-o", "{t}/s.tsv", "--threads", "1"],
        2,
        ["PAIRS -: standard input is not read by this command"],
    ),
    Case(
        "predict/utrs-from-stdin",
        [*PREDICT, "--task", "mrl"],
        2,
        ["INPUT -: standard input is not read by this command; give the UTRs as a file"],
    ),
    Case(
        "predict/pairs-from-stdin",
        [*PREDICT, "--task", "rri"],
        2,
        ["INPUT -: standard input is not read by this command; give the pairs table as a file"],
    ),
]


# ---------------------------------------------------------------- a named pipe where a binary file goes
# `resm.read_embeddings("e.npz")` and `resm fold --model m.pt` on a named pipe waited for ever
# for a writer (np.load and torch.load open it; a text input, read once, reads a pipe as a file).
# Every binary reader is held to the prior cache's rule (resm.utils.paths.file_problem).
def _in_subprocess(tmp_path: Path, code: str) -> subprocess.CompletedProcess:
    """``code`` run by a fresh Python in ``tmp_path``; a run still waiting after a minute (on a
    named pipe) fails the test rather than hanging the suite."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    try:
        return subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the read waited on the named pipe")


@pytest.mark.parametrize("name", ["e.npz", "e.safetensors"])
def test_read_embeddings_refuses_a_named_pipe(name, tmp_path):
    os.mkfifo(tmp_path / name)
    r = _in_subprocess(
        tmp_path,
        f"import resm\ntry:\n    resm.read_embeddings({name!r})\nexcept ValueError as e:\n    print(e)\n",
    )
    assert r.returncode == 0 and r.stdout.strip() == f"{name}: is not a regular file, not an embeddings file", r


def test_fold_refuses_a_model_that_is_a_named_pipe(ws, tmp_path):
    os.mkfifo(tmp_path / "s.pt")
    argv = ["fold", str(ws["fa"]), "--model", "s.pt", "-o", "o.dbn", "--threads", "1"]
    r = _in_subprocess(tmp_path, f"import sys\nfrom resm.cli import main\nsys.exit(main({argv!r}))\n")
    assert r.returncode == 1, r
    assert r.stderr.strip().splitlines() == ["resm fold: error: s.pt: is not a regular file, not a checkpoint file"]
    assert sorted(os.listdir(tmp_path)) == ["s.pt"]


def test_a_bundle_head_file_that_is_a_named_pipe_is_refused(ws, tmp_path):
    shutil.copytree(ws["rri_model"], tmp_path / "m")
    head = next((tmp_path / "m").glob("head-*.safetensors"))
    head.unlink()
    os.mkfifo(head)  # read_bytes() waited for ever
    load = f"resm.load_bundle('m', backbone={str(ws['tiny'])!r})"
    code = f"import resm\ntry:\n    {load}\nexcept ValueError as e:\n    print(e)\n"
    r = _in_subprocess(tmp_path, code)
    assert r.returncode == 0 and r.stdout.strip() == f"m/{head.name}: head 'rri' is not a regular file", r


# ---------------------------------------------------------------- an option shaping an output not asked for
# `resm fold --dpi 300` without --plot, --plot-format svg without --plot, --bpp-min 0.1 without --bpp and
# --reference-format dbn without --reference were passed over in silence: exit 0, the figures, the pair
# probabilities or the reference the user shaped were never made. Each comes with its option now, even
# given at its default value (the RNAfold spellings --noPS, --MEA, -j still fold: the test below).
SHIPPED_FOLD = ["fold", "{fa}", "-o", "{t}/o.dbn", "--threads", "1"]
CASES += [
    Case(
        f"fold/{shaped[0][2:]}-{value}-without-{parent[2:]}",
        [*SHIPPED_FOLD, *shaped],
        2,
        [f"{shaped[0]} comes with {parent}: {without} without it"],
    )
    for shaped, value, parent, without in (
        (["--dpi", "300"], "300", "--plot", "nothing is drawn"),
        (["--dpi", "100"], "default", "--plot", "nothing is drawn"),
        (["--plot-format", "svg"], "svg", "--plot", "nothing is drawn"),
        (["--bpp-min", "0.1"], "0.1", "--bpp", "no pair probabilities are written"),
        (["--bpp-min", "0.001"], "default", "--bpp", "no pair probabilities are written"),
        (["--reference-format", "dbn"], "dbn", "--reference", "no known structures are read"),
    )
]


def test_options_not_given_keep_their_defaults(ws, tmp_path, capfd):
    """Left out, --bpp-min is 0.001 and --plot-format png; RNAfold's spellings still fold."""
    from resm.cli import main as cli_main

    argv = ["fold", str(ws["fa"]), "-o", str(tmp_path / "o.dbn"), "--threads", "1", "--noPS", "--MEA", "-j", "1"]
    assert cli_main([*argv, "--bpp", str(tmp_path / "p.bpp")]) == 0
    bpp = (tmp_path / "p.bpp").read_text()
    assert "pairs with p below 0.001 are left out" in bpp
    assert min(float(line.split()[2]) for line in bpp.splitlines() if line[:1].isdigit()) >= 1e-3
    pytest.importorskip("matplotlib")
    assert cli_main([*argv, "--plot", str(tmp_path / "p")]) == 0
    assert {p.suffix for p in (tmp_path / "p").iterdir()} == {".png"}
    capfd.readouterr()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)
