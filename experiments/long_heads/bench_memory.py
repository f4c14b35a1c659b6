"""Peak memory (RSS) and wall time of `resm interact` and `resm predict --task mrl` on long
inputs, on the CPU, one thread, each case in a fresh process (the resident set of the whole
command: Python, torch, the model and the scan).

    OMP_NUM_THREADS=1 python experiments/long_heads/bench_memory.py \
        --model runs/rri_long/model --out experiments/results/long_heads_memory_cpu.md

Cases (random sequences, seed 0; the memory does not depend on the letters):

* 22 x 64: a miRNA against one 64-nt window (the size the head was trained on): the baseline;
* 22 x 4,000: a miRNA scanned along a 4,000-nt 3'UTR;
* 300 x 4,000: an sRNA against a 4,000-nt mRNA region (both scanned);
* 4,000 x 4,000: two 4,000-nt partners (both scanned);
* MRL 50 and 4,000 nt: one UTR through an expression head. The rri bundle has no expression
  head, so this script writes one with an untrained head on the same backbone (memory only: its
  predictions mean nothing).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # this checkout's resm, not an installed one


def _proc(pid: int):
    """(peak RSS so far in KiB, CPU seconds so far) of a live process, from /proc."""
    hwm = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    with open(f"/proc/{pid}/stat") as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return hwm, (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def measure(args, limit: float):
    """(peak RSS in MiB, wall seconds, note) of ``python -m resm ARGS`` in a fresh process. A
    run still going after ``limit`` seconds is stopped; its peak RSS so far (VmHWM) is reported
    and the note says so (not a finished measurement)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t = time.time()
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(
            [sys.executable, "-m", "resm", *map(str, args)], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err
        )
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.time() - t > limit:
                hwm, cpu = _proc(p.pid)
                p.kill()
                os.wait4(p.pid, 0)
                wall = time.time() - t
                return (
                    hwm / 1024,
                    wall,
                    f"**unfinished**: stopped after {wall:.0f} s wall ({cpu:.0f} s CPU); peak so far",
                )
            time.sleep(0.5)
        wall = time.time() - t
        if os.waitstatus_to_exitcode(status):
            err.seek(0)
            raise SystemExit(f"failed: resm {' '.join(map(str, args))}\n{err.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, wall, ""


CASES = ("22x64", "22x4000", "300x4000", "mrl", "4000x4000")


def mrl_bundle(rri_bundle: Path, folder: Path) -> Path:
    """A bundle with an untrained expression head on the rri bundle's backbone."""
    import torch

    from resm.backbone.adapters import read_manifest
    from resm.heads.mrl import ExpressionHead, ExpressionHeadConfig, mrl_apply
    from resm.tasks.base import TaskModel, load_bundle, resolve_source, save_bundle

    model, _, scheme = load_bundle(rri_bundle)
    torch.manual_seed(0)
    cfg = ExpressionHeadConfig(embed_dim=model.encoder.embed_dim)
    tm = TaskModel(model.encoder, {"mrl": ExpressionHead(cfg)}, {"mrl": mrl_apply})
    src = resolve_source(read_manifest(rri_bundle)["backbone"]["source"], rri_bundle)
    spec = {
        "task": "mrl",
        "config": {k: v for k, v in cfg.to_dict().items() if k != "embed_dim"},
        "extra": {"mean": 0.0, "std": 1.0},
    }
    return save_bundle(folder, tm, scheme, src, {"mrl": spec})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=REPO / "runs/rri_long/model")
    ap.add_argument("--out", type=Path, default=REPO / "experiments/results/long_heads_memory_cpu.md")
    ap.add_argument("--limit", type=float, default=3600, help="seconds a case may run before it is stopped")
    ap.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"comma-separated cases to run, of {', '.join(CASES)} (default: all)",
    )
    a = ap.parse_args()
    cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise SystemExit(f"--cases: unknown case {unknown[0]!r}; expected some of {', '.join(CASES)}")
    rng = np.random.default_rng(0)

    def seq(n):
        return "".join(rng.choice(list("ACGU"), n))

    mir, s300, t4k, u4k = seq(22), seq(300), seq(4000), seq(4000)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def interact(label, x, y):
            f = tmp / "pair.tsv"
            f.write_text(f"a\t{x}\tb\t{y}\n")
            sites = tmp / "sites.tsv"
            sites.unlink(missing_ok=True)
            args = ["interact", f, "--model", a.model, "--threads", "1", "--device", "cpu", "-o", tmp / "scores.tsv"]
            rss, wall, note = measure(args + ["--sites", sites], a.limit)
            if not note:
                note = f"{len(sites.read_text().splitlines()) - 1} sites written"
            rows.append((f"interact {label}", rss, wall, note))
            print(rows[-1], flush=True)

        if "22x64" in cases:
            interact("22 x 64 (one window: baseline)", mir, t4k[:64])
        if "22x4000" in cases:
            interact("22 x 4,000 (miRNA along a 3'UTR)", mir, t4k)
        if "300x4000" in cases:
            interact("300 x 4,000 (sRNA against an mRNA region)", s300, t4k)
        mb = mrl_bundle(a.model, tmp / "mrl_model") if "mrl" in cases else None
        for n in (50, 4000) if mb is not None else ():
            f = tmp / "utr.fa"
            f.write_text(f">utr\n{t4k[:n]}\n")
            args = ["predict", "--task", "mrl", f, "--model", mb, "--threads", "1", "--device", "cpu"]
            rss, wall, note = measure(args + ["-o", tmp / "mrl.tsv"], a.limit)
            rows.append((f"predict --task mrl, one {n:,}-nt UTR (untrained head)", rss, wall, note))
            print(rows[-1], flush=True)
        if "4000x4000" in cases:
            interact("4,000 x 4,000 (15,376 window pairs)", u4k, t4k)
    import torch

    cmd = "OMP_NUM_THREADS=1 python experiments/long_heads/bench_memory.py " + " ".join(
        shlex.quote(x) for x in sys.argv[1:]
    )
    lines = [
        "# Peak memory of the interaction and expression heads on long inputs (CPU)",
        "",
        f"Command: `{cmd}`",
        "",
        f"Model: `{a.model}` (see experiments/long_heads/README.md for its recipe); window 64 nt "
        "(the head's max_length), stride 32, batch 64 window pairs; one thread; torch "
        f"{torch.__version__}; each case a fresh `python -m resm` process (peak RSS of the whole "
        "command, from wait4; for a stopped case, VmHWM from /proc when it was stopped).",
        "",
        "| case | peak RSS (MiB) | wall (s) | note |",
        "|---|---:|---:|---|",
    ]
    lines += [f"| {c} | {r:.0f} | {w:.1f} | {n} |" for c, r, w, n in rows]
    lines += ["", "Wall times are on the shared 2-core machine (other jobs running), so they are indicative only."]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
