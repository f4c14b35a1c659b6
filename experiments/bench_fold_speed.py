"""Folding speed: ``resm fold`` with the shipped model against RNAfold and LinearPartition
(EternaFold), side by side, from 50 to 4,000 nt.

Every cell is a whole fresh process on the same FASTA file, start-up and model loading
included, as a user meets it: ``resm fold FILE -o OUT --threads T``; RNAfold (ViennaRNA's MFE,
``RNA.fold`` in a loop; single-threaded, as the RNAfold program); RNAfold with its partition
function, as ``RNAfold -p --MEA`` runs it (MFE, then the partition function with the
Boltzmann factors rescaled by the MFE, then the MEA structure, gamma 1: the classical folder
that, like ``resm fold``, always computes pair probabilities); LinearPartition's MEA
structure with EternaFold parameters (beam 100, one process, as the ``linearpartition``
program). Cases:

* ``random L``: seeded random A/C/G/U sequences of length L, ``max(1, 8000 // L)`` of them (so
  short lengths are batches and start-up does not dominate);
* ``TS0 300``: 300 records of bpRNA TS0 (30-999 nt, seeded sample) and ``TS0 all``: all 1,305;
* ``23S``: the longest ArchiveII structure (2,968 nt).

Ratios are RNAfold seconds / resm seconds (> 1: resm faster). Peak memory is each process's
maximum RSS.

``--turner-scale S`` (repeatable) adds a column per S: ``resm fold --turner-scale S`` in its own
fresh process, with its ratio to plain resm (its cost factor) and each classical folder's seconds
over it. ``--folders`` keeps only some classical columns and ``--cases`` only some cases
(``random``, ``ts0-300``, ``ts0-all``, ``23s``), so a run fits its time (``--folders`` with no
name: resm only); the defaults give the table as before.

``--baseline-repo PATH`` adds a column for another checkout's resm (e.g. ``git worktree add
/tmp/base COMMIT``), run the same way (its folder on PYTHONPATH and as the working directory),
with the ratio baseline / resm (> 1: this checkout faster). ``--repeat N`` runs each resm cell N
times, baseline and this checkout alternating, and reports the medians; ``--bpp-cache DIR``
passes ``--bpp-cache DIR`` to every resm run (filled by one untimed run first), so that the
cells time start-up, model and decoding without the thermodynamic priors. The load average
before and after each case is printed and written under the table (the machine may be shared).

    python experiments/bench_fold_speed.py --threads 2 --out experiments/results/fold_speed_cpu.md
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LOOP = r"""
import sys
method, path = sys.argv[1], sys.argv[2]
recs, name = [], None
for line in open(path):
    line = line.strip()
    if line.startswith(">"):
        name = line[1:]
    elif line:
        recs.append(line)
if method == "rnafold":
    import RNA
    for s in recs:
        RNA.fold(s)
elif method == "rnafold-p":
    import RNA
    for s in recs:
        fc = RNA.fold_compound(s)
        _, mfe = fc.mfe()
        fc.exp_params_rescale(mfe)
        fc.pf()
        fc.MEA(1.0)
else:
    from resm.structure.folders import linearpartition_mea
    for s in recs:
        linearpartition_mea(s, "eterna", 100)
"""


def timed(cmd, env=None, cwd=REPO):
    """Wall seconds and peak RSS (GiB) of one child process (its own, from wait4)."""
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(p.pid, 0)
        secs = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{err.read().decode()[-2000:]}")
    return secs, usage.ru_maxrss / 2**20


def write_fasta(path: Path, recs):
    path.write_text("".join(f">{n}\n{s}\n" for n, s in recs))


CASES = ("random", "ts0-300", "ts0-all", "23s")
FOLDERS = {"rnafold": "RNAfold", "rnafold-p": "RNAfold -p (MFE + pf + MEA)", "eternafold": "LinearPartition-E"}


def cases(data_dir: Path, lengths, seed: int, only=CASES):
    rng = random.Random(seed)
    out = []
    for L in lengths if "random" in only else ():
        n = max(1, 8000 // L)
        out.append((f"random {L}", L, [(f"r{L}_{k}", "".join(rng.choice("ACGU") for _ in range(L))) for k in range(n)]))
    ts0 = data_dir / "ss" / "bprna" / "TS0.dbn"
    if ts0.exists() and ("ts0-300" in only or "ts0-all" in only):
        from resm.structure.io import read_structures

        recs = [(r.name, r.seq) for r in read_structures(ts0)]
        short = [r for r in recs if 30 <= len(r[1]) <= 999]
        if "ts0-300" in only:
            out.append(("TS0 300 (30-999 nt)", None, random.Random(seed).sample(short, 300)))
        if "ts0-all" in only:
            out.append(("TS0 all", None, recs))
    arch = data_dir / "ss" / "archiveII" / "ArchiveII.csv"
    if arch.exists() and "23s" in only:
        from resm.structure.datasets import load_dataset

        longest = max(load_dataset("archiveii-long", data_dir), key=lambda r: len(r.seq))
        out.append((f"23S ({longest.name})", len(longest.seq), [(longest.name, longest.seq)]))
    return out


def classical(folders) -> str:
    """The header's words for the classical folders that ran (all: as the table always said)."""
    if set(folders) == set(FOLDERS):
        return "RNAfold (MFE; and -p: MFE, partition function and MEA) and LinearPartition"
    words = {"rnafold": "RNAfold (MFE)", "rnafold-p": "RNAfold -p (MFE, partition function and MEA)"}
    return " and ".join(words.get(f, "LinearPartition") for f in folders)


def variant_name(scale: float) -> str:
    return f"resm --turner-scale {scale:g}"


def checkout_env(repo: Path) -> dict:
    """The environment of a resm run from the checkout ``repo`` (its folder first on PYTHONPATH)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(repo)] + [x for x in env.get("PYTHONPATH", "").split(os.pathsep) if x])
    return env


def resm_cells(fold, baseline: Path | None, repeat: int) -> dict:
    """Median seconds (and this checkout's largest peak GiB) of ``repeat`` runs of the command
    ``fold`` from this checkout and, when given, from ``baseline``, the two alternating."""
    runs = {"resm": [], "baseline": []}
    peak = 0.0
    for _ in range(repeat):
        if baseline is not None:
            runs["baseline"].append(timed(fold, checkout_env(baseline), baseline)[0])
        secs, gib = timed(fold, checkout_env(REPO))
        runs["resm"].append(secs)
        peak = max(peak, gib)
    out = {"resm": statistics.median(runs["resm"]), "peak": peak, "runs": runs}
    if baseline is not None:
        out["baseline"] = statistics.median(runs["baseline"])
    return out


def table(rows, folders, scales, header_lines, baseline: bool = False):
    """The markdown table. ``rows``: dicts with ``name``, ``n``, ``nt``, ``resm``, ``peak``, one key per
    folder in ``folders`` (names of FOLDERS), one per ``variant_name(s)`` for s in ``scales`` (seconds),
    and ``baseline`` (seconds) when ``baseline``."""
    variants = [variant_name(s) for s in scales]
    cols = ["case", "records", "nt"] + (["baseline resm s"] if baseline else []) + ["resm s"]
    cols += [f"{v} s" for v in variants]
    cols += [f"{FOLDERS[f]} s" for f in folders]
    cols += [f"{FOLDERS[f].split(' (')[0]} s / resm s" for f in folders]
    cols += [f"{v} s / resm s" for v in variants]
    cols += [f"{FOLDERS[f].split(' (')[0]} s / {v} s" for v in variants for f in folders]
    cols += ["baseline s / resm s"] if baseline else []
    cols.append("resm peak GiB")
    lines = list(header_lines) + ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [r["name"], str(r["n"]), str(r["nt"])] + ([f"{r['baseline']:.1f}"] if baseline else [])
        cells.append(f"{r['resm']:.1f}")
        cells += [f"{r[v]:.1f}" for v in variants]
        cells += [f"{r[f]:.1f}" for f in folders]
        cells += [f"{r[f] / r['resm']:.2f}" for f in folders]
        cells += [f"{r[v] / r['resm']:.2f}" for v in variants]
        cells += [f"{r[f] / r[v]:.2f}" for v in variants for f in folders]
        cells += [f"{r['baseline'] / r['resm']:.2f}"] if baseline else []
        cells.append(f"{r['peak']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--lengths", type=int, nargs="+", default=[50, 100, 200, 500, 1000, 2000, 4000])
    ap.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES), help="which cases (default: all)")
    ap.add_argument(
        "--folders", nargs="*", choices=list(FOLDERS), default=list(FOLDERS), help="classical columns (default: all)"
    )
    ap.add_argument("--baseline-repo", type=Path, default=None, help="also time this checkout's resm (default: none)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each resm cell, median reported (default: 1)")
    ap.add_argument(
        "--bpp-cache", type=Path, default=None, help="resm fold --bpp-cache DIR, filled first (default: off)"
    )
    ap.add_argument(
        "--turner-scale",
        type=float,
        action="append",
        default=[],
        metavar="S",
        help="add a column for resm fold --turner-scale S (repeatable)",
    )
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("RESM_DATA", REPO.parent / "shared" / "data")))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    folders = [f for f in FOLDERS if f in a.folders]
    rows, loads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, _L, recs in cases(a.data_dir, a.lengths, a.seed, a.cases):
            fa = Path(tmp) / "in.fa"
            write_fasta(fa, recs)
            nt = sum(len(s) for _, s in recs)
            fold = [sys.executable, "-m", "resm", "fold", fa, "--model", a.model, "-o", Path(tmp) / "o.dbn"]
            fold += ["--threads", str(a.threads)]
            if a.bpp_cache:
                fold += ["--bpp-cache", a.bpp_cache]
                timed(fold)  # fills the cache, untimed
            row = {"name": name, "n": len(recs), "nt": nt}
            before = os.getloadavg()[0]
            cells = resm_cells(fold, a.baseline_repo, a.repeat)
            row.update((k, cells[k]) for k in ("resm", "peak", "baseline") if k in cells)
            for scale in a.turner_scale:
                row[variant_name(scale)], _ = timed(fold + ["--turner-scale", str(scale)])
            for f in folders:
                row[f], _ = timed([sys.executable, "-c", LOOP, f, fa])
            rows.append(row)
            loads.append(f"{name}: {before:.1f} before, {os.getloadavg()[0]:.1f} after")
            times = ", ".join(f"{k} {v:.1f} s" for k, v in row.items() if k not in ("name", "n", "nt", "peak"))
            runs = "; ".join(f"{k} {', '.join(f'{x:.1f}' for x in v)}" for k, v in cells["runs"].items() if v)
            print(f"{name}: {len(recs)} records, {nt} nt: {times} (runs: {runs}); load {loads[-1]}", flush=True)
    title = "# Folding speed: resm fold against RNAfold and LinearPartition (same files, same run)"
    if a.turner_scale:
        title = "# Folding speed: resm fold, resm fold --turner-scale, and classical folders (same files, same run)"
    elif not folders:
        title = "# Folding speed: resm fold, this checkout against a baseline checkout (same files, same run)"
    header = [
        title,
        "",
        f"Command: `python experiments/{Path(__file__).name} {' '.join(sys.argv[1:])}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch CPU; resm with --threads {a.threads} "
        "(torch threads and prior processes)"
        + (f"; {classical(folders)} single-process" if folders else "")
        + ". Every cell is a whole fresh process (start-up and model loading included).",
        "",
    ]
    if a.baseline_repo or a.repeat > 1 or a.bpp_cache:
        header[-1:-1] = [
            f"resm cells: the median of {a.repeat} run(s)"
            + (f", alternating with the baseline checkout {a.baseline_repo}" if a.baseline_repo else "")
            + ("; priors read from --bpp-cache (filled by an untimed run first)" if a.bpp_cache else "")
            + ".  "
        ]
    text = table(rows, folders, a.turner_scale, header, a.baseline_repo is not None)
    text += "\nLoad average (1 min): " + "; ".join(loads) + ".\n"
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
