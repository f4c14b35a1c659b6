"""What ``--non-canonical`` does on bpRNA's validation set VL0 (comparative annotations, where
non-canonical pairs are rare): the structure model with its non-canonical scorer, with and
without the added pairs, on a seeded subset of VL0, scored over all reference pairs. Evidence
for the option's default; VL0 is a validation set (never TS0 or bpRNA-new).

    RESM_DATA=../shared/data python experiments/noncanonical/bprna_check.py --model M --limit 300
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's resm, not an installed one

from resm.config import default_data_dir
from resm.structure.io import read_structures
from resm.structure.metrics import evaluate
from resm.structure.predictor_loading import supervised_predictor


def vl0_check_arguments(doc: str | None = None) -> argparse.Namespace:
    """The arguments every VL0 check of the scorer takes (one thread for torch)."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--model", required=True)
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bpp-cache", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    return a


def seeded_vl0(limit: int, seed: int) -> list:
    """The seeded VL0 subset the checks use: ``limit`` records drawn without replacement, in file order."""
    recs = list(read_structures(Path(default_data_dir()) / "ss/bprna/VL0.dbn"))
    idx = sorted(np.random.default_rng(seed).choice(len(recs), min(limit, len(recs)), replace=False))
    return [recs[i] for i in idx]


def main() -> None:
    a = vl0_check_arguments(__doc__)
    recs = seeded_vl0(a.limit, a.seed)
    pred = supervised_predictor(a.model, workers=1, cache=a.bpp_cache)
    scorer = pred.non_canonical_scorer()
    base, added = [], []
    for s, P in pred.fold([(r.name, r.seq) for r in recs], progress=False):
        base.append(s.pairs)
        added.append(scorer.add(s.seq, s.pairs, P))
    true = [r.pairs for r in recs]
    print(f"Command: `python experiments/noncanonical/bprna_check.py {' '.join(sys.argv[1:])}`  ")
    print(f"VL0, {len(recs)} records (seeded subset, seed {a.seed}), all reference pairs.\n")
    print("| structure | F1 | F1 ±1 | precision | recall | pred/ref pairs |")
    print("|---|---|---|---|---|---|")
    for name, p in (("canonical structure only", base), ("with --non-canonical", added)):
        m = evaluate(p, true)
        print(
            f"| {name} | {m['f1_mean']:.3f} | {m['f1_shift_mean']:.3f} | {m['precision_mean']:.3f} "
            f"| {m['recall_mean']:.3f} | {m['pair_ratio']:.2f} |"
        )


if __name__ == "__main__":
    main()
