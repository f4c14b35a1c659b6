"""The scale of ``resm fold --turner-scale`` (the Turner-corrected decoding,
:func:`resm.structure.decode.turner_ensemble`), chosen on PDB-derived data the shipped model's
pair head never trained on: SPOT-RNA's TR1 (120 RNAs; the head was trained on bpRNA TR0 alone,
``configs/finetune/structure.yaml``).

Each row decodes the shipped model's validation probabilities exactly as the option does: the
decoding stored in the model file with ``turner_scale`` set (penalty 5 kcal/mol on pairs that are
not candidates), through :func:`resm.structure.decode.decode_sparse`. Rule, fixed before the
run: the scale of largest mean per-sequence F1 on TR1 (canonical pairs); ties go to the larger
scale (the nearer to the head's own decoding). A reference row repeats the setting of
``structure_density_not_shipped/thermo_cpu.md`` (the model's probabilities alone, no pseudoknot
step), which the option does not offer. VL1 is reported beside it, not used; VL0 and the
held-out families show what the option costs on bpRNA's annotation style.

    python experiments/structure_cpu/turner_option.py resm/models/structure_default.pt \\
        --config configs/finetune/structure_mix.yaml --cache runs/turner_probs.npz --workers 2 \\
        --out experiments/results/structure_turner_option_cpu.md \\
        model.init=null model.arch=small data.workers=1 data.bpp_cache=/work/density_cache

Validation and training data only (VL0, held-out families, VL1, TR1); no test set is read.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import socket
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # this checkout's resm, not an installed one
sys.path.insert(0, str(HERE))

from decoding_density import score_cells  # noqa: E402
from thermo_corrections import load_cache, save_cache, validation_sets  # noqa: E402

from resm.backbone.load import safe_load  # noqa: E402
from resm.structure.decode import Decoding, decode_sparse  # noqa: E402
from resm.structure.metrics import evaluate  # noqa: E402
from resm.utils.io import atomic_write_text  # noqa: E402

SCALES = (0.2, 0.3, 0.5, 0.8)  # fixed before the run
PENALTY = 5.0
SETS = ("tr1", "vl1", "val", "family")
NAMES = {"tr1": "TR1 (chooses)", "vl1": "VL1 (reported)", "val": "VL0", "family": "families"}
PDB_SETS = 'data.val_sets={vl1: "{data_dir}/ss/pdb/VL1.tsv", tr1: "{data_dir}/ss/pdb/TR1.tsv"}'


def _decode(job: tuple) -> list[np.ndarray]:
    """One record's structure under each decoding of ``job = (item, decodings)``."""
    item, decodings = job
    seq, i, j, mp, pp = item[:5]
    return [decode_sparse(seq, i, j, mp, d, pp) for d in decodings]


def cells(m: dict) -> str:
    """One set's three cells (:func:`decoding_density.score_cells`) as a piece of a table row."""
    return " | ".join(score_cells(m))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="the structure_model.pt whose stored decoding the option modifies")
    ap.add_argument("--config", required=True, help="a finetune config naming the validation sets")
    ap.add_argument("--cache", required=True, help="npz of the head's probabilities on the four sets (made once)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default=None, help="markdown table")
    ap.add_argument("overrides", nargs="*", help="config overrides (key=value)")
    a = ap.parse_intermixed_args()
    if not Path(a.cache).exists():
        save_cache(a.cache, validation_sets(a.model, a.config, [*a.overrides, PDB_SETS]))
    sets = load_cache(a.cache)
    missing = [s for s in SETS if s not in sets]
    if missing:
        raise SystemExit(f"{a.cache}: holds no set {', '.join(missing)} (delete it to rebuild)")
    stored = Decoding.from_dict(safe_load(a.model).get("decoding") or {})
    decodings = [stored] + [dataclasses.replace(stored, turner_scale=s, turner_penalty=PENALTY) for s in SCALES]
    labels = ["shipped decoding (no Turner step)"] + [f"--turner-scale {s:g}" for s in SCALES]
    # reference, not a candidate: thermo_cpu.md's setting of VL1 0.765 (model alone, nested)
    decodings.append(Decoding(auto_gamma=True, turner_scale=0.3, turner_penalty=PENALTY))
    labels.append("reference: scale 0.3, prior weight 0, no pseudoknot step (thermo_cpu.md's VL1 0.765 row)")

    flat = [(s, it) for s in SETS for it in sets[s]]
    order = sorted(range(len(flat)), key=lambda k: -len(flat[k][1][0]))  # longest first
    folded: list = [None] * len(flat)
    t0 = time.time()
    with Pool(a.workers) as pool:
        got = pool.imap(_decode, [(flat[k][1], decodings) for k in order])
        for k, res in zip(order, tqdm(got, total=len(order), desc="records")):
            folded[k] = res
    seconds = time.time() - t0
    rows = {
        lab: {
            s: evaluate([folded[k][n] for k in range(len(flat)) if flat[k][0] == s], [it[5] for it in sets[s]])
            for s in SETS
        }
        for n, lab in enumerate(labels)
    }
    tr1 = {s: rows[lab]["tr1"]["f1_mean"] for s, lab in zip(SCALES, labels[1:])}
    best = max(SCALES, key=lambda s: (round(tr1[s], 12), s))

    load = os.getloadavg()
    lines = [
        "Command: `python " + " ".join(shlex.quote(x) for x in sys.argv) + "`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {socket.gethostname()} "
        f"({os.cpu_count()} cores, shared), {a.workers} worker(s) of one thread; load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; decoding {seconds / 60:.1f} min (every row, every set).  ",
        "Sets: " + ", ".join(f"{NAMES[s]} ({len(sets[s])})" for s in SETS) + "; canonical pairs; mean per-sequence "
        "F1 strict / ±1, mean precision / recall, predicted/reference pairs.  ",
        f"Model: {a.model}, stored decoding: {stored.describe()}; each --turner-scale row is that decoding with "
        f"the Turner step (penalty {PENALTY:g} kcal/mol on non-candidates).  ",
        "Rule (fixed before the run): the scale of largest TR1 F1, ties to the larger. TR1 F1 by scale: "
        + ", ".join(f"{s:g}: {tr1[s]:.4f}" for s in SCALES)
        + f". **Chosen: {best:g}.**",
        "",
        "| row | " + " | ".join(f"{NAMES[s]}: F1 / ±1 | P / R | pred/ref" for s in SETS) + " |",
        "|" + "---|" * (1 + 3 * len(SETS)),
    ]
    for lab in labels:
        bold = lab == f"--turner-scale {best:g}"
        name = f"**{lab}** (chosen)" if bold else lab
        lines.append(f"| {name} | " + " | ".join(cells(rows[lab][s]) for s in SETS) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        atomic_write_text(a.out, text)


if __name__ == "__main__":
    main()
