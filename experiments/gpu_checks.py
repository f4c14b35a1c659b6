"""Run resm's GPU checks and write a small report to experiments/results/gpu.md.

    python experiments/gpu_checks.py            # on a machine with a CUDA GPU

It runs the tests marked ``gpu`` (``pytest -m gpu tests/gpu``: bf16 forward parity with fp32,
the SDPA flash / memory-efficient path at 4,000 nt, 20 steps of DeepSpeed ZeRO-2 bf16
pretraining, a 4,000-nt fold on the GPU, the pair head under bf16 autocast, a DeepSpeed bf16
fine-tune of a head reading float features, a resume that repeats the uninterrupted run, the
training loop in memory on the GPU, a conv head's map predictor on the GPU, the non-canonical
scorer's fit and its scoring on the GPU),
collects each check's time and peak GPU memory, and writes them with the GPU, torch and CUDA
versions to ``experiments/results/gpu.md``.

The report has one row per test, with its outcome (from pytest's JUnit XML), so a check that
failed before it could record its numbers still shows, with the first line of its error. With
``--limit S`` pytest is killed after S seconds (the sprint's checks stage passes a limit below its
own, so that the report is still written) and the report lists the checks recorded by then.

The development machines of this project have no GPU, so the report can only be produced by
someone with one; without CUDA the checks are skipped, no report is written and the exit
status is 3. The same tests run (and skip cleanly) in the ordinary suite.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


NO_CUDA = 3
CUT = 124  # pytest killed at --limit (the exit status of timeout(1))
PYTEST = ["-m", "pytest", "-m", "gpu", "tests/gpu", "-q", "-rA", "-p", "no:cacheprovider"]


def outcomes(junit: Path) -> dict:
    """{test function name: (outcome, seconds, first line of the failure)} from JUnit XML."""
    out = {}
    if not junit.is_file():
        return out
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome, why = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[tag]
                why = (el.get("message") or el.text or "").strip().splitlines()[:1]
                why = why[0][:160] if why else ""
                break
        out[case.get("name")] = (outcome, float(case.get("time") or 0.0), why)
    return out


def report_lines(device: str, summary: str, rows: list, results: dict) -> list:
    """The report: one row per test of ``results`` (:func:`outcomes`), with the time, peak
    memory and details its check recorded (``rows``, the $RESM_GPU_REPORT lines), if any."""
    cell = lambda x: str(x).replace("|", "/").replace("\n", " ")  # noqa: E731
    lines = [
        "# GPU checks",
        "",
        f"Written by `python experiments/gpu_checks.py` on {datetime.date.today()}: {device}.",
        f"pytest: {cell(summary)}",
        "",
        "| test | outcome | test time (s) | check | check time (s) | peak GPU memory (GiB) | details |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    recorded = {r.get("function"): r for r in rows}
    for name, (outcome, secs, why) in results.items():
        r = recorded.get(name)
        if r is None:
            lines.append(f"| {name} | {outcome} | {secs:.1f} | (not recorded) | | | {cell(why)} |")
            continue
        extra = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("test", "function", "seconds", "peak_gib"))
        if outcome != "passed" and why:
            extra = f"{extra}; {why}" if extra else why
        peak = "n/a (own process)" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
        check = f"{cell(r['test'])} | {r['seconds']:.1f} | {peak} | {cell(extra)}"
        lines.append(f"| {name} | {outcome} | {secs:.1f} | {check} |")
    return lines + ["", "Tolerances and what each check asserts: `tests/gpu/test_gpu.py`."]


def run_pytest(env: dict, junit: Path, limit: float | None) -> tuple[int, str, str]:
    """``pytest -m gpu tests/gpu`` (``env`` names the JSON-lines file the checks record into,
    ``junit`` the JUnit XML it writes): ``(exit status, stdout, stderr)``. Past ``limit``
    seconds pytest and what it started (a check's own ``resm`` process) are killed, there is no
    JUnit XML, and the status is :data:`CUT`: the sprint's stage limit would otherwise kill this
    script before it wrote any report, and leave pytest running on the GPU into the next stage."""
    with subprocess.Popen(
        [sys.executable, *PYTEST, f"--junitxml={junit}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, killed whole
    ) as p:
        try:
            out, err = p.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            return CUT, out, err + f"\npytest killed after {limit:g} s (--limit)"
    return p.returncode, out, err


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--out",
        type=Path,
        default=REPO / "experiments/results/gpu.md",
        help="report to write (default: experiments/results/gpu.md)",
    )
    ap.add_argument("--log", type=Path, default=None, help="also write pytest's whole output here")
    ap.add_argument(
        "--limit",
        type=float,
        default=None,
        help="seconds pytest may run; past them it is killed and the report holds the checks recorded so far "
        "(default: none)",
    )
    a = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: the gpu checks skip and no report is written", file=sys.stderr)
        return NO_CUDA
    with tempfile.TemporaryDirectory() as tmp:
        log, junit = Path(tmp) / "gpu.jsonl", Path(tmp) / "junit.xml"
        env = {**os.environ, "RESM_GPU_REPORT": str(log)}
        code, stdout, stderr = run_pytest(env, junit, a.limit)
        print(stdout[-3000:], stderr[-2000:], sep="\n")
        if a.log:
            a.log.parent.mkdir(parents=True, exist_ok=True)
            a.log.write_text(stdout + "\n" + stderr)
        rows = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
        results = outcomes(junit)
    if code == CUT:  # no JUnit XML: the checks that recorded, then pytest was killed
        results = {r.get("function"): ("recorded, then cut", float(r["seconds"]), "") for r in rows}
        summary = f"killed after {a.limit:g} s (--limit): the checks below recorded before that"
    else:
        summary = (stdout.strip().splitlines() or ["(no pytest output)"])[-1]
    device = f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    lines = report_lines(device, summary, rows, results)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
