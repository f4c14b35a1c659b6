"""Peak memory of ``resm fold --turner-scale`` at length, side by side with plain ``resm fold``.

Each cell is a whole fresh process (peak RSS from ``wait4``, as :mod:`experiments.memory_fold`
measures it): ``python -m resm fold IN.fa -o OUT.dbn --threads 1`` with the shipped model on one
seeded random A/C/G/U sequence of length L, without and with ``--turner-scale S``. The Turner
step (:func:`resm.structure.decode.turner_ensemble`: ViennaRNA's constrained MFE and partition
function, and the (L+1)^2 soft-constraint and pair-probability matrices passed to and from it)
runs in the main process after the model, one record at a time. The estimate columns are what
``resm fold`` checks against the available memory before any work
(:func:`resm.utils.memory.fold_estimate`, ``turner=True`` when the decoding has a Turner scale).

    OMP_NUM_THREADS=1 python experiments/memory_fold_turner.py --lengths 1000 2000 3000 \
        --raw experiments/results/memory_fold_turner_cpu.json --out experiments/results/memory_fold_turner_cpu.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from experiments.memory_fold import peak  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[1000, 2000, 3000])
    ap.add_argument("--scale", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--raw", type=Path, default=None, help="JSON of the measurements, written after each length")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--table-only", action="store_true", help="measure nothing: the table from --raw")
    a = ap.parse_args()
    from resm.utils.memory import FOLD_TURNER_QUADRATIC_GIB_PER_KB2, GIB, fold_estimate

    py = sys.executable
    raw = json.loads(a.raw.read_text()) if a.table_only else {"scale": a.scale, "rows": []}
    with tempfile.TemporaryDirectory() as d:
        for L in [] if a.table_only else a.lengths:
            rng = random.Random(a.seed + L)
            fa = Path(d) / f"r{L}.fa"
            fa.write_text(f">r{L}\n" + "".join(rng.choice("ACGU") for _ in range(L)) + "\n")
            cmd = [py, "-m", "resm", "fold", fa, "-o", Path(d) / "o.dbn", "--threads", "1", "--ignore-memory-check"]
            plain_s, plain_gib = peak(cmd)
            turner_s, turner_gib = peak([*cmd, "--turner-scale", str(a.scale)])
            raw["rows"].append([L, plain_gib, plain_s, turner_gib, turner_s])
            print(f"L={L}: plain {plain_gib:.2f} GiB {plain_s:.0f}s, Turner {turner_gib:.2f} GiB {turner_s:.0f}s")
            if a.raw:
                a.raw.write_text(json.dumps(raw, indent=1) + "\n")
    s = raw["scale"]
    lines = [
        f"# Peak memory of `resm fold --turner-scale {s:g}` at length, beside plain `resm fold`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}; "
        "one seeded random A/C/G/U sequence per length, shipped model, `--threads 1`, CPU. Peak RSS of each "
        "whole process (wait4); both columns measured in the same run, one after the other. Seconds are wall "
        "time on the shared machine, other jobs alongside: the memory is what this table is for.",
        "",
        "| length (nt) | resm fold peak (GiB) | resm fold (s) | --turner-scale peak (GiB) | --turner-scale (s) "
        "| added by the Turner step (GiB) | estimate, plain (GiB) | estimate, Turner (GiB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for L, pg, ps, tg, ts in raw["rows"]:
        ep, et = fold_estimate([L], 1) / GIB, fold_estimate([L], 1, turner=True) / GIB
        lines.append(f"| {L:,} | {pg:.2f} | {ps:.0f} | {tg:.2f} | {ts:.0f} | {tg - pg:.2f} | {ep:.2f} | {et:.2f} |")
    lines += [
        "",
        "The Turner step's memory grows with L^2 (ViennaRNA's partition-function matrices and the (L+1)^2 "
        "matrices resm hands to it and reads back). `resm.utils.memory.fold_estimate(..., turner=True)` adds "
        f"{FOLD_TURNER_QUADRATIC_GIB_PER_KB2:g} GiB x kb^2 of the longest record (kb: its length in thousands "
        "of nt; the largest increment per kb^2 in the 'added' column) to the plain estimate before its margin, "
        "so `resm fold --turner-scale` checks an estimate above its measured peak where the plain estimate "
        "lies below it (2,000 and 3,000 nt) and refuses before any work instead of running out of memory.",
        "",
        "Command:",
        "",
        "    OMP_NUM_THREADS=1 python experiments/memory_fold_turner.py --lengths "
        + " ".join(str(r[0]) for r in raw["rows"])
        + (f" --scale {s:g}" if s != 0.3 else "")
        + (f" --raw {a.raw}" if a.raw else "")
        + (f" --out {a.out}" if a.out else ""),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
