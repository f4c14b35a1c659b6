"""The GPU sprint's entry point (experiments/gpu_sprint.sh) run on the CPU with tiny sizes
(``RESM_SPRINT_DRY=1``): the same stages, configs, DeepSpeed ZeRO-2 engine, export and summary
as on the GPU, so that the GPU run can fail on nothing but the GPU. Also the offline wheel
closure check of experiments/gpu_sprint_install.py, on wheels made here."""

import gzip
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from tests.tasks.test_mlm import corpus

SCRIPT = REPO / "experiments" / "gpu_sprint.sh"


def sprint_data(root):
    """The layout of .sprint/data, small: Rfam-like records (families in the ids) and proteins."""
    (root / "pretrain").mkdir(parents=True)
    (root / "protein").mkdir()
    fa = corpus(root / "rfam.fa", n=300)
    with gzip.open(root / "pretrain" / "rfam14.2_seed_sequences.fasta.gz", "wb") as fh:
        fh.write(fa.read_bytes())
    rng = np.random.default_rng(0)
    with gzip.open(root / "protein" / "swissprot201401_clu50_reps.sprint_subset.fasta.gz", "wt") as fh:
        for i in range(300):
            fh.write(
                f">sp|P{i:05d}|TEST\n{''.join(rng.choice(list('ACDEFGHIKLMNPQRSTVWY'), int(rng.integers(30, 80))))}\n"
            )
    return root


def sprint(tmp_path, out, **env):
    full = {
        **os.environ,
        "RESM_SPRINT_DRY": "1",
        "RESM_SPRINT_PYTHON": sys.executable,
        "RESM_SPRINT_WORK": str(tmp_path / "work"),
        "RESM_SPRINT_WHEELS": str(tmp_path / "no_wheels"),
        "OMP_NUM_THREADS": "1",
        **env,
    }
    return subprocess.run(
        ["bash", str(SCRIPT), str(out)], cwd=tmp_path, env=full, capture_output=True, text=True, timeout=600
    )


def stages(work):
    return {ln.split("\t")[0]: ln.split("\t")[1:] for ln in (work / "stages.tsv").read_text().splitlines()}


@pytest.mark.slow
def test_dry_run_writes_logs_curves_and_loadable_fp16_exports(tmp_path):
    from resm.backbone.load import load_backbone, safe_load

    data = sprint_data(tmp_path / "data")
    out = tmp_path / "out"
    p = sprint(tmp_path, out, RESM_SPRINT_DATA=str(data))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    work = tmp_path / "work"
    st = stages(work)
    runs = ("protein", "rna_protein", "rna_random")
    for name in ("env", "install", *runs, *(f"export_{r}" for r in runs)):
        assert st[name][0] == "ok", (name, st[name])
    if torch.cuda.is_available():
        assert st["checks"][0] in ("ok", "failed") and (out / "gpu.md").is_file()
    else:  # recorded as a skip, with the reason
        assert st["checks"][0] == "skipped" and "no CUDA" in st["checks"][2] and not (out / "gpu.md").exists()

    summary = (out / "summary.md").read_text()
    for r in runs:
        log = [json.loads(x) for x in (work / "runs" / r / "log.jsonl").read_text().splitlines()]
        train = [x for x in log if x["split"] == "train"]
        val = [x for x in log if x["split"] == "validation"]
        assert [x["step"] for x in train] == [1, 2, 3, 4] and all(x["tokens_per_s"] > 0 for x in train)
        assert [x["step"] for x in val] == [2, 4] and all(np.isfinite(x["val_loss"]) for x in val)
        row = next(ln for ln in summary.splitlines() if ln.startswith(f"| {r} ("))
        cells = [c.strip() for c in row.split("|")[2:-1]]
        assert (
            cells[0] == "4"
            and float(cells[3].replace(",", "")) > 0
            and float(cells[5]) == pytest.approx(val[-1]["val_loss"], abs=1e-4)
        )

        # the export: fair-esm, fp16 on disk, read back by resm's loader as the run's own model
        exported = out / f"{r}.pt"
        raw = safe_load(exported)
        assert raw["resm"]["dtype"] == "fp16" and raw["resm"]["step"] == 4
        assert raw["model"]["encoder.sentence_encoder.embed_tokens.weight"].dtype == torch.float16
        got = load_backbone(exported).model.state_dict()
        final = load_backbone(work / "runs" / r / "model.pt").model.state_dict()
        for k, v in final.items():
            assert got[k].dtype == torch.float32
            assert torch.allclose(got[k], v, rtol=1e-3, atol=1e-4), k
    # the protein arm started from the protein stage's checkpoint, the other from random weights
    start = safe_load(work / "runs" / "rna_protein" / "model.pt")["resm"]["pretrained_from"]
    assert start == str(work / "runs" / "protein" / "model.pt")
    assert safe_load(work / "runs" / "rna_random" / "model.pt")["resm"]["pretrained_from"] == "random"
    assert "| 4 | " in summary.split("Validation MLM loss")[1]  # the curve table, both arms
    with tarfile.open(out / "logs.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"stages.tsv", "env.json", "logs/rna_random.log", "runs/rna_protein/log.jsonl"} <= names
    assert len(list(out.iterdir())) <= 8  # what the device tool brings back from $OUT


def test_a_failed_stage_is_recorded_and_the_later_ones_still_run(tmp_path):
    """No data: both pretraining stages fail with the loader's one-line error, the arm that
    needs the protein checkpoint is skipped, the summary is written, and the exit status is 1."""
    out = tmp_path / "out"
    p = sprint(
        tmp_path, out, RESM_SPRINT_DATA=str(tmp_path / "missing"), RESM_SPRINT_STAGES="protein,rna_protein,rna_random"
    )
    assert p.returncode == 1, p.stdout[-3000:] + p.stderr[-2000:]
    st = stages(tmp_path / "work")
    assert list(st) == ["protein", "rna_protein", "rna_random"]
    assert st["protein"][0] == st["rna_random"][0] == "failed"
    assert "rfam14.2_seed_sequences.fasta.gz" in st["rna_random"][2]
    assert st["rna_protein"][0] == "skipped" and "no protein checkpoint" in st["rna_protein"][2]
    assert "| rna_random | failed |" in (out / "summary.md").read_text()
    assert "failed or timed out: protein,rna_random" in p.stderr


def _wheel(folder, name, version, requires=()):
    path = folder / f"{name}-{version}-py3-none-any.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}-{version}.dist-info/METADATA", meta + "\nlong description\nRequires-Dist: not-a-header\n")
    return path


def test_wheel_closure_check_names_what_the_gpu_machine_would_lack(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "experiments"))
    import gpu_sprint_install as inst

    monkeypatch.setattr(inst, "requirements", lambda: ["alpha>=1.0"])
    _wheel(
        tmp_path, "alpha", "1.2", ["beta>=2", "torch>=2.0", "gamma; python_version < '3.10'", "delta; extra == 'dev'"]
    )
    _wheel(tmp_path, "beta", "2.1", ["epsilon"])
    assert inst.check_closure(tmp_path) == [
        "beta-2.1-py3-none-any.whl: needs epsilon, neither carried nor on the image"
    ]
    _wheel(tmp_path, "epsilon", "0.1")
    assert inst.check_closure(tmp_path) == []  # torch is the image's; gamma and delta do not apply
    _wheel(tmp_path, "beta", "1.0")
    assert any("second version of beta" in x for x in inst.check_closure(tmp_path))


def test_resm_runs_from_the_source_checkout_without_being_installed(tmp_path):
    """On the GPU machine resm is not installed: the sprint runs it from the checkout on
    PYTHONPATH. Schemes (mapping/) and shipped configs (configs/) must be found there, not
    only as the package data of an installed resm (an editable install's finder removed)."""
    code = (
        "import sys\n"
        "sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "import resm.mapping, resm.config\n"
        "assert resm.__file__.startswith(sys.path[0])\n"
        "print(resm.mapping.get_scheme('kdny').name, resm.mapping.list_schemes())\n"
        "print(resm.config.find_config('sprint_rna_gpu', 'pretrain'))\n"
        "print(resm.config.find_config('zero2', 'deepspeed'))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    first, rna, zero2 = p.stdout.splitlines()
    assert first.startswith("kdny [") and "'protein'" in first
    assert rna == str(REPO / "configs" / "pretrain" / "sprint_rna_gpu.yaml")
    assert zero2 == str(REPO / "configs" / "deepspeed" / "zero2.json")


def test_gpu_report_has_a_row_per_test_with_its_outcome(tmp_path, monkeypatch):
    """gpu.md: the outcome of every gpu test from pytest's JUnit XML, joined with what each
    check recorded; a check that failed before recording still has its row and its error."""
    monkeypatch.syspath_prepend(str(REPO / "experiments"))
    import gpu_checks

    (tmp_path / "j.xml").write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest">'
        '<testcase classname="tests.gpu.test_gpu" name="test_a" time="1.5"/>'
        '<testcase classname="tests.gpu.test_gpu" name="test_b" time="0.2">'
        '<failure message="RuntimeError: No available kernel | aborting">trace</failure></testcase>'
        '<testcase classname="tests.gpu.test_gpu" name="test_c" time="9.0">'
        '<failure message="assert 0.9 &gt;= 0.99">trace</failure></testcase>'
        "</testsuite></testsuites>"
    )
    results = gpu_checks.outcomes(tmp_path / "j.xml")
    assert results["test_a"] == ("passed", 1.5, "") and results["test_b"][0] == "FAILED"
    rows = [
        {"test": "check A", "function": "test_a", "seconds": 1.2, "peak_gib": 0.5, "pairs": 3},
        {"test": "check C", "function": "test_c", "seconds": 8.0, "peak_gib": None, "min_cosine": 0.9},
    ]
    lines = gpu_checks.report_lines("GPU X", "1 passed, 2 failed in 10s", rows, results)
    table = [ln for ln in lines if ln.startswith("| test_")]
    assert table[0] == "| test_a | passed | 1.5 | check A | 1.2 | 0.50 | pairs 3 |"
    assert table[1] == "| test_b | FAILED | 0.2 | (not recorded) | | | RuntimeError: No available kernel / aborting |"
    assert (
        table[2] == "| test_c | FAILED | 9.0 | check C | 8.0 | n/a (own process) | min_cosine 0.9; assert 0.9 >= 0.99 |"
    )
    assert all(ln.count("|") == 8 for ln in table)


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie waiting for its reaper counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_gpu_checks_past_their_limit_are_killed_with_what_they_started_and_still_reported(tmp_path, monkeypatch):
    """experiments/gpu_checks.py --limit (the sprint passes one below its checks stage's): pytest
    and the process it started are killed, and gpu.md lists the checks recorded by then. Killed
    by the stage's own limit instead, the script wrote no report and left pytest running on the GPU
    into the pretraining stages."""
    import time

    monkeypatch.syspath_prepend(str(REPO / "experiments"))
    import gpu_checks

    child = tmp_path / "child.pid"
    row = {"test": "check A", "function": "test_a", "seconds": 1.5, "peak_gib": 0.25}
    script = (
        "import json, os, subprocess, sys, time\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(child)!r}, 'w').write(str(c.pid))\n"
        "with open(os.environ['RESM_GPU_REPORT'], 'a') as fh:\n"
        f"    fh.write(json.dumps({row!r}) + '\\n')\n"
        "time.sleep(600)\n"
    )
    monkeypatch.setattr(gpu_checks, "PYTEST", ["-c", script])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "GPU X")
    monkeypatch.setattr(sys, "argv", ["gpu_checks.py", "--out", str(tmp_path / "gpu.md"), "--limit", "8"])
    t0 = time.monotonic()
    assert gpu_checks.main() == gpu_checks.CUT
    assert time.monotonic() - t0 < 120
    deadline = time.monotonic() + 10
    while not _gone(int(child.read_text())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _gone(int(child.read_text()))
    md = (tmp_path / "gpu.md").read_text()
    assert "pytest: killed after 8 s (--limit)" in md
    assert "| test_a | recorded, then cut | 1.5 | check A | 1.5 | 0.25 |  |" in md
