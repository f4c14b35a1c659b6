"""What a scorer trained with ``tertiary_canonical`` adds (:mod:`resm.structure.noncanonical`):
the pairs it adds to the decoded structure, split into the candidates only that option makes
(canonical letters, both bases unpaired in the decoded structure) and the others, with how many
of each are reference pairs; the correct option-only pairs split by their stacking in the
reference (lone: neither (i-1, j+1) nor (i+1, j-1) is a reference pair) and by what they stack
on in the prediction (a decoded pair, another added pair, nothing). Validation sets only: PDB
VL1 (all its pairs) and a seeded subset of bpRNA VL0.

    python experiments/noncanonical/tertiary_breakdown.py --model M --limit 300 --bpp-cache DIR
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling experiment scripts
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's resm

from bprna_check import seeded_vl0, vl0_check_arguments

from resm.config import default_data_dir
from resm.nucleotides import PAIR_TYPE, lenient_codes
from resm.structure.pairsets import read_pair_table
from resm.structure.predictor_loading import supervised_predictor


def keys(ij) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in np.asarray(ij).reshape(-1, 2)}


def ref_keys(pairs) -> set[tuple[int, int]]:
    if hasattr(pairs, "ij"):
        return keys(pairs.ij)
    p = np.asarray(pairs)
    i = np.flatnonzero(p > np.arange(len(p)))
    return keys(np.stack([i, p[i]], 1))


def breakdown(pred, scorer, recs) -> Counter:
    c: Counter = Counter()
    for r, (s, P) in zip(recs, pred.fold([(r.name, r.seq) for r in recs], progress=False)):
        part = s.pairs
        codes = lenient_codes(s.seq)
        dec = ref_keys(part)
        added = keys(scorer.add(s.seq, part, P).ij) - dec
        ref = ref_keys(r.pairs)
        for a, b in added:
            tert = PAIR_TYPE[codes[a], codes[b]] >= 0 and part[a] < 0 and part[b] < 0
            kind = "option-only" if tert else "other"
            hit = (a, b) in ref
            c[f"{kind} added"] += 1
            c[f"{kind} correct"] += hit
            if tert and hit:
                lone = (a - 1, b + 1) not in ref and (a + 1, b - 1) not in ref
                c["option-only correct, lone in the reference"] += lone
                nb = {(a - 1, b + 1), (a + 1, b - 1)}
                on = "a decoded pair" if nb & dec else "another added pair" if nb & added else "nothing"
                c[f"option-only correct, stacked in the prediction on {on}"] += 1
        c["reference pairs"] += len(ref)
    return c


def main() -> None:
    a = vl0_check_arguments(__doc__)
    pred = supervised_predictor(a.model, workers=1, cache=a.bpp_cache)
    scorer = pred.non_canonical_scorer()
    vl0 = seeded_vl0(a.limit, a.seed)
    vl1 = read_pair_table(Path(default_data_dir()) / "ss/pdb/VL1.tsv")
    sets = {"VL1 (all pairs)": vl1, f"VL0 ({len(vl0)})": vl0}
    res = {name: breakdown(pred, scorer, recs) for name, recs in sets.items()}
    print(f"Command: `python experiments/noncanonical/tertiary_breakdown.py {' '.join(sys.argv[1:])}`\n")
    rows = sorted({k for c in res.values() for k in c}, key=lambda k: (not k.startswith("option"), k))
    print("| count | " + " | ".join(res) + " |")
    print("|---|" + "---|" * len(res))
    for k in rows:
        print(f"| {k} | " + " | ".join(str(c[k]) for c in res.values()) + " |")


if __name__ == "__main__":
    main()
