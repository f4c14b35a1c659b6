"""Run resm's GPU checks and write a small report to experiments/results/gpu.md.

    python experiments/gpu_checks.py            # on a machine with a CUDA GPU

It runs the tests marked ``gpu`` (``pytest -m gpu tests/gpu``: bf16 forward parity with fp32,
the SDPA flash / memory-efficient path at 4,000 nt, 20 steps of DeepSpeed ZeRO-2 bf16
pretraining, a 4,000-nt fold on the GPU), collects each check's time and peak GPU memory, and
writes them with the GPU, torch and CUDA versions to ``experiments/results/gpu.md``.

The development machines of this project have no GPU, so the report can only be produced by
someone with one; without CUDA the checks are skipped and no report is written. The same
tests run (and skip cleanly) in the ordinary suite.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "experiments/results/gpu.md",
                    help="report to write (default: experiments/results/gpu.md)")
    a = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: the gpu checks skip and no report is written", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "gpu.jsonl"
        env = {**os.environ, "RESM_GPU_REPORT": str(log)}
        cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "tests/gpu", "-q", "-p", "no:cacheprovider"]
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        print(p.stdout[-3000:], p.stderr[-2000:], sep="\n")
        rows = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    summary = (p.stdout.strip().splitlines() or ["(no pytest output)"])[-1]
    lines = [
        "# GPU checks",
        "",
        f"Written by `python experiments/gpu_checks.py` on {datetime.date.today()}: "
        f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}.",
        f"pytest: {summary}",
        "",
        "| check | time (s) | peak GPU memory (GiB) | details |",
        "|---|---:|---:|---|",
    ]
    for r in rows:
        extra = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("test", "seconds", "peak_gib"))
        peak = "n/a (own process)" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
        lines.append(f"| {r['test']} | {r['seconds']:.1f} | {peak} | {extra} |")
    lines += ["", "Tolerances and what each check asserts: `tests/gpu/test_gpu.py`."]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
