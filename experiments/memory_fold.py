"""Peak memory of ``resm fold`` at length, beside LinearPartition alone.

Each cell is a whole fresh process (its peak RSS from ``wait4``, the largest of the process and
the children it waited for, as ``/usr/bin/time -v`` reports it):

* ``resm fold``: ``python -m resm fold IN.fa -o OUT.dbn --max-length 20000 --threads 1`` with
  the shipped model, one seeded random A/C/G/U sequence of length L;
* ``LinearPartition alone``: the model's prior, EternaFold parameters through LinearPartition
  at the shipped beam (100), on the same sequence, in a bare Python process
  (:func:`resm.structure.priors.pair_prior`);
* ``bare Python + resm``: the same interpreter importing resm's folding modules and doing
  nothing (the floor the other two stand on).

The last column is the estimate that ``resm fold`` checks against the available memory before
it starts (:func:`resm.utils.memory.fold_estimate`), to compare with the measured peak.

    OMP_NUM_THREADS=1 python experiments/memory_fold.py --lengths 2000 5000 10000 \
        --out experiments/results/memory_fold_cpu.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PRIOR = "import sys; from resm.structure.priors import pair_prior; pair_prior(open(sys.argv[1]).read().split()[1])"
FLOOR = "import resm.structure.pipeline, resm.structure.priors, resm.structure.model"


def peak(cmd) -> tuple:
    """Wall seconds and peak RSS (GiB) of one child process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=REPO)
        _, status, usage = os.wait4(p.pid, 0)
        secs = time.perf_counter() - t
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{err.read().decode()[-2000:]}")
    return secs, usage.ru_maxrss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[2000, 5000, 10000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--raw",
        type=Path,
        default=None,
        help="JSON of the measurements: written after each length; with --table-only, read back",
    )
    ap.add_argument(
        "--embed",
        action="store_true",
        help="also measure resm embed (a random ESM-2 t6 checkpoint; --include mean, then contacts)",
    )
    ap.add_argument(
        "--no-fold",
        action="store_true",
        help="measure resm embed only (with --embed), keeping the fold rows already in --raw",
    )
    ap.add_argument(
        "--table-only",
        action="store_true",
        help="measure nothing: write the table from --raw (the estimate column recomputed)",
    )
    a = ap.parse_args()
    try:
        from resm.utils.memory import fold_estimate
    except ImportError:  # an older resm: no estimate column

        def fold_estimate(lengths):
            return float("nan")

    py = sys.executable
    keep = a.raw is not None and a.raw.exists() and (a.table_only or a.no_fold)
    raw = json.loads(a.raw.read_text()) if keep else {"floor": None, "rows": []}
    with tempfile.TemporaryDirectory() as d:
        if not a.table_only and not a.no_fold:
            raw["floor"] = peak([py, "-c", FLOOR])[1]
        for L in [] if a.table_only else a.lengths:
            rng = random.Random(a.seed + L)
            fa = Path(d) / f"r{L}.fa"
            fa.write_text(f">r{L}\n" + "".join(rng.choice("ACGU") for _ in range(L)) + "\n")
            if not a.no_fold:
                fold_s, fold_gib = peak(
                    [py, "-m", "resm", "fold", fa, "-o", Path(d) / "o.dbn", "--max-length", "20000", "--threads", "1"]
                )
                lp_s, lp_gib = peak([py, "-c", PRIOR, fa])
                raw["rows"].append([L, fold_gib, fold_s, lp_gib, lp_s])
                print(
                    f"L={L}: resm fold {fold_gib:.2f} GiB {fold_s:.0f}s, LinearPartition alone {lp_gib:.2f} GiB "
                    f"{lp_s:.0f}s",
                    flush=True,
                )
            if a.embed:
                ckpt = Path(d) / "t6.pt"
                if not ckpt.exists():
                    peak(
                        [
                            py,
                            "-m",
                            "resm",
                            "init-checkpoint",
                            "--arch",
                            "esm2_t6_8M_UR50D",
                            "--scheme",
                            "kdny",
                            "--out",
                            ckpt,
                        ]
                    )
                rows = [r for r in raw.get("embed", []) if r[0] != L]
                for inc in ("mean", "contacts"):
                    secs, gib = peak(
                        [
                            py,
                            "-m",
                            "resm",
                            "embed",
                            ckpt,
                            fa,
                            Path(d) / "e.npz",
                            "--include",
                            inc,
                            "--threads",
                            "1",
                            "--max-length",
                            "20000",
                            "--ignore-memory-check",
                        ]
                    )
                    rows.append([L, inc, gib, secs])
                    print(f"L={L}: resm embed --include {inc} {gib:.2f} GiB {secs:.0f}s", flush=True)
                raw["embed"] = sorted(rows, key=lambda r: (r[0], r[1]))
            if a.raw:
                a.raw.write_text(json.dumps(raw, indent=1) + "\n")
    floor_gib = raw["floor"]
    rows = [(*r, fold_estimate([r[0]]) / 2**30) for r in raw["rows"]]
    lines = [
        "# Peak memory of `resm fold` at length, beside LinearPartition alone",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}; "
        "one seeded random A/C/G/U sequence per length, shipped model, `--threads 1`, CPU. Peak RSS of each "
        f"whole process (wait4). A bare Python importing resm's folding modules peaks at {floor_gib:.2f} GiB. "
        "Seconds are wall time on that shared machine, other jobs running alongside: the memory is what this table "
        "is for.",
        "",
        "| length (nt) | resm fold peak (GiB) | resm fold (s) | LinearPartition alone peak (GiB) | "
        "LinearPartition alone (s) | resm's estimate (GiB) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {L:,} | {f:.2f} | {fs:.0f} | {lp:.2f} | {ls:.0f} | {e:.2f} |" for L, f, fs, lp, ls, e in rows]
    lines += [
        "",
        "The estimate is what `resm fold` checks against the available memory before any work "
        "(`resm.utils.memory.fold_estimate`: a quadratic through the 5,000- and 10,000-nt peaks here and "
        "the 9.5 GiB that issue 28 reported for `resm fold` at 20,000 nt (9.54 GiB measured here since), "
        "raised by 15%; at 20,000 nt it "
        f"gives {fold_estimate([20000]) / 2**30:.1f} GiB). It refuses in one line when the estimate exceeds "
        "the available memory, and `--ignore-memory-check` runs anyway. At 10,000 and 20,000 nt "
        "LinearPartition's own pair probabilities are 91% and 97% of the whole command's peak: the "
        "model adds about 0.3 GiB, so a lower peak at these lengths has to come from the prior.",
    ]
    if raw.get("embed"):
        from resm.backbone.load import init_model
        from resm.utils.memory import embed_estimate

        net = init_model("esm2_t6_8M_UR50D")
        n = sum(p.numel() for p in net.parameters())
        lines += [
            "",
            "`resm embed` of the same sequences with ESM-2 t6 (8M parameters, random weights; "
            "`--toks-per-batch 4096`), and its estimate (`resm.utils.memory.embed_estimate`):",
            "",
            "| length (nt) | --include | resm embed peak (GiB) | resm embed (s) | resm's estimate (GiB) |",
            "|---:|---|---:|---:|---:|",
        ]
        for L, inc, gib, secs in raw["embed"]:
            est = (
                embed_estimate(n, net.embed_dim, net.num_layers, net.attention_heads, [L], 4096, inc == "contacts")
                / 2**30
            )
            lines.append(f"| {L:,} | {inc} | {gib:.2f} | {secs:.0f} | {est:.2f} |")
    lines += [
        "",
        "Command (the measurements are kept in the --raw file; `--table-only` rewrites the table from it):",
        "",
        "    OMP_NUM_THREADS=1 python experiments/memory_fold.py --lengths "
        + " ".join(str(r[0]) for r in raw["rows"])
        + (f" --raw {a.raw}" if a.raw else "")
        + (f" --out {a.out}" if a.out else ""),
    ]
    if raw.get("embed"):
        lines += [
            "    OMP_NUM_THREADS=1 python experiments/memory_fold.py --no-fold --embed --lengths "
            + " ".join(sorted({str(r[0]) for r in raw["embed"]}, key=int))
            + (f" --raw {a.raw}" if a.raw else "")
            + (f" --out {a.out}" if a.out else "")
        ]
    lines += [""]
    text = "\n".join(lines)
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
