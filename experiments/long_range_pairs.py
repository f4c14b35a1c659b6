"""Long-range pairs in long RNAs: does anything cap the span of predicted pairs?

For every ArchiveII structure of at least 1,000 nt (16S and 23S rRNAs, group I/II introns,
...), counts the reference pairs that span more than ``--span`` nt (j - i), and for the shipped
model (``resm fold``'s path: EternaFold priors through LinearPartition, no span window, the pair head,
MEA decoding), RNAfold MFE and LinearPartition-EternaFold MEA the predicted pairs over that
span and how many of them are in the reference. Same records, same run.

    python experiments/long_range_pairs.py --out experiments/results/long_range_pairs_cpu.md
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def long_pairs(pairs: np.ndarray, span: int) -> set:
    i = np.flatnonzero(pairs > np.arange(len(pairs)))
    return {(int(a), int(pairs[a])) for a in i if pairs[a] - a > span}


def main():
    from resm.structure.datasets import load_dataset
    from resm.structure.folders import FOLDERS
    from resm.structure.model import resolve_model
    from resm.structure.predictor_loading import supervised_predictor

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--span", type=int, default=500)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("RESM_DATA", REPO.parent / "shared" / "data")))
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    recs = load_dataset("archiveii-long", a.data_dir)
    model = resolve_model(a.model)
    pred = supervised_predictor(model, workers=a.threads)
    methods = {"resm": {s.name: s.pairs for s, _ in pred.fold([(r.name, r.seq) for r in recs], progress=True)}}
    for name in ("rnafold", "eternafold"):
        methods[name] = {r.name: FOLDERS[name].fold(r.seq) for r in recs}
    rows, totals = [], {m: [0, 0] for m in methods}
    ref_total = 0
    for r in recs:
        ref = long_pairs(r.pairs, a.span)
        ref_total += len(ref)
        cells = []
        for m, got in methods.items():
            p = long_pairs(got[r.name], a.span)
            hit = len(p & ref)
            totals[m][0] += len(p)
            totals[m][1] += hit
            cells.append(f"{len(p)} ({hit})")
        longest = max([b - i for i, b in long_pairs(methods["resm"][r.name], 0)] or [0])
        rows.append(f"| {r.name} | {len(r.seq)} | {len(ref)} | " + " | ".join(cells) + f" | {longest} |")
    names = list(methods)
    lines = [
        f"# Pairs spanning more than {a.span} nt in ArchiveII's RNAs of 1,000 nt and more",
        "",
        f"Command: `python experiments/{Path(__file__).name} {' '.join(sys.argv[1:])}`  ",
        f"Model: `{os.path.relpath(model, REPO) if Path(model).is_absolute() else model}`"
        + (" (the shipped one)" if a.model is None else "")
        + f". Each cell: predicted pairs with j - i > {a.span}, in brackets how many of them are "
        "reference pairs. Last column: the longest span of any pair resm predicts.",
        "",
        "| RNA | nt | reference | " + " | ".join(names) + " | resm longest span |",
        "|---|---|---|" + "---|" * len(names) + "---|",
        *rows,
        f"| **all {len(recs)}** | | {ref_total} | " + " | ".join(f"{t[0]} ({t[1]})" for t in totals.values()) + " | |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
