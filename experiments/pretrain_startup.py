"""What `resm pretrain --config cpu_demo` does before its first step, phase by phase, each
checkout in a fresh process, one thread: importing torch, building the optimiser (torch's
AdamW imports torch._dynamo on first use), reading the first bucket of training records
(``data.bucket_size``, 20,000 records) into the first batch, and collecting the validation
records (``validation.max_records``; the first validation, at step ``val_every``, reads the
corpus until it has them).

    OMP_NUM_THREADS=1 python experiments/pretrain_startup.py --repo . --repo /tmp/base \\
        --out experiments/results/pretrain_startup_cpu.md

Each ``--repo`` is a checkout of resm (e.g. ``git archive BASE | tar -x -C /tmp/base`` for the
baseline); the phases of every checkout are run ``--repeats`` times alternately and the median
is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

PHASES = ("import torch", "optimiser", "first batch", "validation records")

CHILD = r"""
import json, sys, time
t = time.perf_counter(); out = {}
import torch
out["import torch"] = time.perf_counter() - t; t = time.perf_counter()
torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
out["optimiser"] = time.perf_counter() - t
import yaml
from resm.config import from_dict
from resm.data.pretrain import PretrainDataConfig, PretrainStream, validation_batches
cfg = yaml.safe_load(open("configs/pretrain/cpu_demo.yaml"))
d = cfg["data"]; d["train"] = [p.replace("{data_dir}", sys.argv[1]) for p in d["train"]]
dc = from_dict(PretrainDataConfig, d, "data")
t = time.perf_counter(); next(iter(PretrainStream(dc)))
out["first batch"] = time.perf_counter() - t; t = time.perf_counter()
validation_batches(dc, cfg["validation"]["max_records"])
out["validation records"] = time.perf_counter() - t
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", action="append", type=Path, required=True, help="a resm checkout (repeatable)")
    ap.add_argument("--data", default=os.environ.get("RESM_DATA", "../shared/data"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    data = str(Path(a.data).resolve())
    runs: dict[Path, list[dict]] = {r: [] for r in a.repo}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for _ in range(a.repeats):
        for repo in a.repo:
            env["PYTHONPATH"] = str(repo.resolve())
            p = subprocess.run(
                [sys.executable, "-c", CHILD, data], cwd=repo, env=env, capture_output=True, text=True, check=True
            )
            runs[repo].append(json.loads(p.stdout.strip().splitlines()[-1]))
            print(repo, runs[repo][-1], flush=True)
    load = os.getloadavg()[0]
    cmd = "OMP_NUM_THREADS=1 python experiments/pretrain_startup.py " + " ".join(map(shlex.quote, sys.argv[1:]))
    lines = [
        "# Before the first step of `resm pretrain --config cpu_demo` (CPU, one thread)",
        "",
        f"Command: `{cmd}`",
        "",
        f"Median of {a.repeats} fresh processes per checkout, run alternately; load average at the end "
        f"{load:.1f} on the shared 2-core machine (times are indicative only).",
        "",
        "| phase (s) | " + " | ".join(str(r) for r in a.repo) + " |",
        "|---|" + "---:|" * len(a.repo),
    ]
    for ph in PHASES:
        cells = [f"{statistics.median(x[ph] for x in runs[r]):.1f}" for r in a.repo]
        lines.append(f"| {ph} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)


if __name__ == "__main__":
    main()
