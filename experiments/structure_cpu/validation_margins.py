"""The structure model's margin over EternaFold on the two validation sets, by prior weight.

The decoding of a pair-head model is chosen on two validation sets: VL0 (families seen in
training) and the records of the Rfam families held out of TR0 (``data.family_holdout``), the
project's check on families the model has not seen. This script measures, on the whole of
both sets (not the seeded 400-record subsets the choice used), every classical folder that
matters beside the model:

* the model with its stored decoding, and with the prior weight (the share of the EternaFold
  probability blended into the model's before MEA decoding) swept from 0 to 1 (1: the prior
  alone, decoded by the same MEA decoder);
* EternaFold MEA (LinearPartition, beam 100), the best classical folder on every test set;
* RNAfold MFE.

It reads training and validation data only (the held-out families are a part of TR0 chosen
by the config's seed), so whatever it shows may inform choices.

    python experiments/structure_cpu/validation_margins.py --threads 2 \\
        --bpp-cache runs/prior_cache --out experiments/results/validation_margins_cpu.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def main() -> None:
    from concurrent.futures import ProcessPoolExecutor

    import torch

    from resm.config import load_config
    from resm.data.labelled_structures import family_split, load_records
    from resm.fasta import token_batches
    from resm.mapping import get_scheme
    from resm.structure.decode import Decoding
    from resm.structure.folders import fold_with
    from resm.structure.metrics import evaluate
    from resm.structure.model import load_structure_model, model_priors, resolve_model
    from resm.structure.predictor import PairPredictor
    from resm.structure.priors import compute_priors
    from resm.utils.io import atomic_path

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="a pair-head structure_model.pt (default: the shipped model)")
    ap.add_argument(
        "--config",
        default="configs/finetune/structure.yaml",
        help="the finetune config the model was trained with (its validation sets and seed)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bpp-cache", default=None, help="folder of stored priors (read and filled)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    d = load_config(a.config, [])["data"]
    model, meta = load_structure_model(resolve_model(a.model))
    scheme = get_scheme(meta["scheme"])
    cfgs = model_priors(meta)
    stored = Decoding.from_dict(meta["decoding"])
    pred = PairPredictor(model, scheme, cfgs, stored)
    train, _, _ = load_records(d["train"], scheme, None, d["seed"])
    _, out, _ = family_split(train, d["families"], d["family_holdout"], d["seed"])
    val, _, _ = load_records(d["val"], scheme, None, d["seed"])
    sets = {"VL0": val, "TR0 held-out families": [train[k] for k in out]}

    results = {}
    for name, recs in sets.items():
        seqs, truth = [r.seq for r in recs], [r.pairs for r in recs]
        t = time.perf_counter()
        priors = compute_priors(seqs, cfgs, a.bpp_cache, a.threads, desc=f"{name}: priors")
        items = [None] * len(seqs)
        for g in token_batches([len(s) for s in seqs], 3200, extra=2):
            got = pred.probabilities([seqs[k] for k in g], [priors[k] for k in g])
            for k, item in zip(g, got):
                items[k] = (seqs[k], *item)
        model_s = time.perf_counter() - t

        def score(preds, truth=truth):
            r = evaluate(preds, truth)
            return r["f1_mean"], r["f1_shift_mean"]

        gamma = "per sequence" if stored.auto_gamma else f"{stored.gamma:g}"
        rows = [
            (
                f"resm, stored decoding (gamma {gamma}, prior weight {stored.prior_weight:g}, "
                f"pseudoknots above {stored.pseudoknot_threshold})",
                *score([pred.decode(s, c.i, c.j, q, pp) for s, c, q, pp in items]),
            )
        ]
        for w in WEIGHTS:
            dec = Decoding(stored.gamma, w, stored.pseudoknot_threshold, stored.auto_gamma)
            label = "EternaFold probabilities alone, resm's MEA decoder" if w == 1.0 else f"resm, prior weight {w:g}"
            rows.append((label, *score([pred.decode(s, c.i, c.j, q, pp, decoding=dec) for s, c, q, pp in items])))
        for folder in ("eternafold", "rnafold"):
            with ProcessPoolExecutor(a.threads) as ex:
                preds = list(ex.map(fold_with, [folder] * len(seqs), seqs, chunksize=16))
            rows.append(
                (
                    {"eternafold": "EternaFold MEA (LinearPartition, beam 100)", "rnafold": "RNAfold MFE"}[folder],
                    *score(preds),
                )
            )
        results[name] = (len(recs), rows, model_s)
        for r in rows:
            print(f"{name}: {r[0]}: {r[1]:.4f} / {r[2]:.4f}", flush=True)

    lines = [
        "# The structure model's margin over EternaFold on the validation sets",
        "",
        f"Command: `python experiments/structure_cpu/validation_margins.py --threads {a.threads}"
        + (f" --bpp-cache {a.bpp_cache}" if a.bpp_cache else "")
        + f" --out {a.out}`  ",
        f"Model: `{a.model or 'default (the shipped model)'}`; validation sets of `{a.config}` (whole sets, "
        f"not the 400-record subsets the decoding was chosen on). Machine: {platform.machine()}, "
        f"{a.threads} threads. Mean per-sequence F1, strict / ±1 shift; margin: against EternaFold MEA.",
        "",
    ]
    for name, (n, rows, _) in results.items():
        ef = next(r for r in rows if r[0].startswith("EternaFold MEA"))
        lines += [f"## {name} ({n:,} records)", "", "| method | F1 | F1 ±1 | margin |", "|---|---|---|---|"]
        lines += [f"| {lab} | {f:.4f} | {fs:.4f} | {f - ef[1]:+.4f} / {fs - ef[2]:+.4f} |" for lab, f, fs in rows]
        lines.append("")
    with atomic_path(a.out) as tmp:
        Path(tmp).write_text("\n".join(lines))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
