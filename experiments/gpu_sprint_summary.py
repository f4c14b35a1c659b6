"""The GPU sprint's summary (called by experiments/gpu_sprint.sh after every stage).

    python experiments/gpu_sprint_summary.py --work WORK --out OUTDIR

Reads the sprint's work folder (``stages.tsv``, ``env.json``, ``logs/``, ``runs/<run>/log.jsonl``)
and the exported ``OUTDIR/<run>.pt`` files, and writes ``OUTDIR/summary.md`` (stages, then for
each pretraining run its steps, tokens, tokens/s and validation loss curve, then the exports)
and ``OUTDIR/logs.tar.gz`` (stage logs, run logs and configs), both atomically. Standard
library only (``--env`` aside), so it works whatever else failed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import statistics
import sys
import tarfile
from pathlib import Path

RUNS = {
    "protein": "protein checkpoint (Swiss-Prot subset)",
    "rna_protein": "mapped Rfam, from the protein checkpoint",
    "rna_random": "mapped Rfam, from random initialisation",
}
MAX_EXPORT = 16 * 2**20


def read_log(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):  # a line cut off by a killed run
                rows.append(json.loads(line))
    return rows


def run_stats(rows: list[dict]) -> dict | None:
    train = [r for r in rows if r.get("split") == "train"]
    if not train:
        return None
    rates = [r["tokens_per_s"] for r in train[1:] or train]  # the first window holds the warm-up
    val = [r for r in rows if r.get("split") == "validation"]
    return {
        "steps": train[-1]["step"],
        "tokens": train[-1].get("tokens_seen", 0),
        "seconds": train[-1].get("elapsed_s", 0.0),
        "tokens_per_s": statistics.median(rates),
        "train_loss": train[-1]["loss"],
        "val": [(r["step"], r["val_loss"]) for r in val if "val_loss" in r],
        "unigram": next((r["unigram_baseline"] for r in val if "unigram_baseline" in r), None),
    }


def fmt(x, digits=4) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def summary(work: Path, out: Path) -> str:
    env = {}
    if (work / "env.json").is_file():
        env = json.loads((work / "env.json").read_text())
    lines = [
        "# GPU sprint",
        "",
        f"Written by `experiments/gpu_sprint.sh` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "Machine: " + (", ".join(f"{k} {v}" for k, v in env.items()) if env else "unknown (env stage missing)"),
        "",
        "## Stages",
        "",
        "| stage | status | seconds | note |",
        "|---|---|---:|---|",
    ]
    tsv = work / "stages.tsv"
    for line in tsv.read_text().splitlines() if tsv.is_file() else []:
        name, status, secs, note = (line.split("\t") + ["", "", ""])[:4]
        lines.append(f"| {name} | {status} | {secs} | {note.replace('|', '/')} |")
    stats = {name: run_stats(read_log(work / "runs" / name / "log.jsonl")) for name in RUNS}
    lines += [
        "",
        "## Pretraining",
        "",
        "| run | steps | tokens | seconds | tokens/s (median) | last train loss | last validation loss | unigram |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, what in RUNS.items():
        s = stats[name]
        if s is None:
            lines.append(f"| {name} ({what}) | not run | | | | | | |")
            continue
        last_val = s["val"][-1][1] if s["val"] else None
        lines.append(
            f"| {name} ({what}) | {s['steps']} | {s['tokens']:,} | {s['seconds']:.0f} | {s['tokens_per_s']:,.0f} | "
            f"{fmt(s['train_loss'])} | {fmt(last_val)} | {fmt(s['unigram'])} |"
        )
    rna = [n for n in ("rna_protein", "rna_random") if stats[n] and stats[n]["val"]]
    if rna:
        steps = sorted({st for n in rna for st, _ in stats[n]["val"]})
        lines += [
            "",
            "Validation MLM loss on held-out Rfam families (nats):",
            "",
            "| step | " + " | ".join(rna) + " |",
            "|---:|" + "---:|" * len(rna),
        ]
        for st in steps:
            vals = [dict(stats[n]["val"]).get(st) for n in rna]
            lines.append(f"| {st} | " + " | ".join(fmt(v) for v in vals) + " |")
    lines += ["", "## Exports (fair-esm .pt, fp16)", "", "| file | MiB | under 16 MiB |", "|---|---:|---|"]
    for name in RUNS:
        f = out / f"{name}.pt"
        if f.is_file():
            size = f.stat().st_size
            lines.append(f"| {f.name} | {size / 2**20:.2f} | {'yes' if size <= MAX_EXPORT else 'NO'} |")
    gpu = out / "gpu.md"
    lines += [
        "",
        "GPU checks: " + ("`gpu.md`" if gpu.is_file() else "no gpu.md (see the checks stage)"),
        "Logs: `logs.tar.gz` (logs/<stage>.log, runs/<run>/log.jsonl and config.json).",
        "",
    ]
    return "\n".join(lines)


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def logs_tar(work: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel in ["stages.tsv", "env.json", "logs"] + [
            f"runs/{n}/{f}" for n in RUNS for f in ("log.jsonl", "config.json")
        ]:
            if (work / rel).exists():
                tar.add(work / rel, arcname=rel)
    return buf.getvalue()


def machine(path: Path) -> dict:
    """Python, torch, CUDA and GPU of this machine, written to ``path`` as JSON."""
    import platform
    import subprocess

    import torch

    cuda = torch.cuda.is_available()
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None,
        "cpus": os.cpu_count(),
        "driver": None,
    }
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        info["driver"] = smi.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    write_atomic(path, json.dumps(info, indent=1).encode())
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--env", type=Path, help="instead: write this machine's python/torch/GPU facts here (JSON)")
    a = ap.parse_args()
    if a.env:
        print(json.dumps(machine(a.env)))
        return 0
    if not (a.work and a.out):
        ap.error("--work and --out are required (or --env)")
    write_atomic(a.out / "summary.md", summary(a.work, a.out).encode())
    write_atomic(a.out / "logs.tar.gz", logs_tar(a.work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
