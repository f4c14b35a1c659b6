"""Train the non-canonical pair scorer (:mod:`resm.structure.noncanonical`) and store it in a
structure model's file.

1. The structure model folds PDB TR1 and VL1 as ``resm fold`` does (its canonical structure and
   its candidates' probabilities are the scorer's inputs).
2. The threshold is chosen by ``--folds``-fold cross-validation on TR1: a scorer is trained on
   each fold's other records, every TR1 record is scored by the scorer that did not see it, and
   the threshold maximising the mean per-sequence F1 over all pairs is kept.
3. The scorer is trained again on all of TR1 and stored with that threshold in ``--out`` (the
   input model with the entry ``non_canonical`` added).
4. VL1 (validation; never used to fit or choose) is scored over all pairs and over the
   non-canonical pairs alone, with and without the added pairs; the figures go to ``--report``
   and into the file's entry, with VL1's canonical pairs alone and the recall of its lone
   canonical pairs (a canonical reference pair with neither stacked neighbour (i-1, j+1),
   (i+1, j-1) among the canonical reference pairs; pooled over the set).

``--tertiary-canonical`` stores ``tertiary_canonical: true`` in the scorer's config: canonical
pairs between two bases the decoded structure leaves unpaired become candidates too
(:class:`resm.structure.noncanonical.NonCanonicalConfig`).

Never reads PDB test sets. Runs on CPU in a few minutes:

    RESM_DATA=../shared/data python experiments/noncanonical/train.py --model resm/models/structure_default.pt \
        --out runs/noncanonical/structure_model.pt --report experiments/results/noncanonical_train_cpu.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's resm, not an installed one

from resm.config import default_data_dir
from resm.structure.metrics import evaluate
from resm.structure.noncanonical import (
    NonCanonical,
    NonCanonicalConfig,
    add_pairs,
    attach,
    choose_threshold,
    labelled_arrays,
    score_candidates,
)
from resm.structure.pairsets import PairSet, read_pair_table
from resm.structure.predictor_loading import supervised_predictor
from resm.tasks.noncanonical_scorer import TrainOptions, train_scorer


def fold_items(pred, path: Path) -> list[tuple]:
    recs = read_pair_table(path)
    out = []
    for r, (s, P) in zip(recs, pred.fold([(r.name, r.seq) for r in recs], progress=False)):
        out.append((s.seq, s.pairs, P, r.pairs, r))
    return out


def non_canonical_view(items, preds) -> tuple[list, list]:
    """Predictions and references restricted to their non-canonical pairs (letters)."""
    from resm.structure.pairsets import PairRecord

    p_out, t_out = [], []
    for it, p in zip(items, preds):
        rec = it[4]
        p_out.append(PairRecord(rec.name, rec.seq, p).non_canonical().pairs)
        t_out.append(rec.non_canonical().pairs)
    return p_out, t_out


def canonical_view(items, preds) -> tuple[list, list]:
    """Predictions and references restricted to their canonical pairs (letters)."""
    from resm.structure.pairsets import PairRecord

    p_out = [PairRecord(it[4].name, it[4].seq, p).canonical().pairs for it, p in zip(items, preds)]
    return p_out, [it[4].canonical().pairs for it in items]


def lone_recall(items, preds) -> tuple[int, int]:
    """(found, total) over the lone canonical reference pairs of ``items`` (see the notes)."""
    found = total = 0
    for it, p in zip(items, preds):
        ref = {tuple(x) for x in it[4].canonical().pairs.ij.tolist()}
        got = {tuple(x) for x in p.ij.tolist()}
        for a, b in ref:
            if (a - 1, b + 1) not in ref and (a + 1, b - 1) not in ref:
                total += 1
                found += (a, b) in got
    return found, total


def as_set(partners) -> PairSet:
    a = np.flatnonzero(partners > np.arange(len(partners)))
    return PairSet(np.stack([a, partners[a]], 1), len(partners))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resm/models/structure_default.pt")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--report", type=Path)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bpp-cache", default=None)
    ap.add_argument(
        "--tertiary-canonical",
        action="store_true",
        help="also take canonical pairs between two bases unpaired in the decoded structure as candidates",
    )
    a = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    data = Path(a.data_dir or default_data_dir())
    pred = supervised_predictor(a.model, workers=1, cache=a.bpp_cache)
    tr = fold_items(pred, data / "ss/pdb/TR1.tsv")
    vl = fold_items(pred, data / "ss/pdb/VL1.tsv")
    cfg = NonCanonicalConfig(hidden=a.hidden, members=a.members, tertiary_canonical=a.tertiary_canonical)
    opts = TrainOptions(epochs=a.epochs, seed=a.seed)
    # cross-validation on TR1: out-of-fold scores choose the threshold
    fold_of = np.random.default_rng(a.seed).permutation(len(tr)) % a.folds
    oof: list = [None] * len(tr)
    cv_losses = []
    for f in range(a.folds):
        train = [it[:4] for k, it in enumerate(tr) if fold_of[k] != f]
        X, y = labelled_arrays(train, cfg)
        scorer, losses = train_scorer(X, y, cfg, opts)
        cv_losses.append(losses)
        for k, it in enumerate(tr):
            if fold_of[k] == f:
                oof[k] = score_candidates(scorer, it[0], it[1], it[2])
        print(
            f"fold {f + 1}/{a.folds}: {len(X)} candidates, {int(y.sum())} positive, "
            f"loss {losses[0]:.4f} -> {losses[-1]:.4f}",
            file=sys.stderr,
        )
    threshold, grid = choose_threshold([it[:4] for it in tr], oof, cfg.max_partners)
    cv_base = evaluate([it[1] for it in tr], [it[3] for it in tr])
    cv_added = evaluate(
        [add_pairs(it[1], *sc, threshold, cfg.max_partners) for it, sc in zip(tr, oof)], [it[3] for it in tr]
    )
    # the final scorer: all of TR1
    X, y = labelled_arrays([it[:4] for it in tr], cfg)
    scorer, losses = train_scorer(X, y, cfg, opts)
    nc = NonCanonical(scorer, threshold)
    vl_base = [as_set(it[1]) for it in vl]
    vl_added = [nc.add(it[0], it[1], it[2]) for it in vl]
    refs = [it[3] for it in vl]
    rows = {
        "VL1 canonical pairs, canonical structure only": evaluate(*canonical_view(vl, vl_base)),
        "VL1 canonical pairs, with --non-canonical": evaluate(*canonical_view(vl, vl_added)),
        "VL1 all pairs, canonical structure only": evaluate(vl_base, refs),
        "VL1 all pairs, with --non-canonical": evaluate(vl_added, refs),
        "VL1 non-canonical pairs, canonical structure only": evaluate(*non_canonical_view(vl, vl_base)),
        "VL1 non-canonical pairs, with --non-canonical": evaluate(*non_canonical_view(vl, vl_added)),
        f"TR1 all pairs, {a.folds}-fold CV, canonical structure only": cv_base,
        f"TR1 all pairs, {a.folds}-fold CV, with --non-canonical": cv_added,
    }
    nc.about = {
        "trained_on": "SPOT-RNA PDB TR1 (120 RNAs), all pairs",
        "threshold_chosen_by": f"{a.folds}-fold cross-validation on TR1, mean per-sequence F1 over all pairs",
        "structure_model": str(a.model),
        "epochs": a.epochs,
        "seed": a.seed,
        "tertiary_canonical": a.tertiary_canonical,
        "vl1_f1_all_pairs": rows["VL1 all pairs, with --non-canonical"]["f1_mean"],
        "vl1_f1_all_pairs_without": rows["VL1 all pairs, canonical structure only"]["f1_mean"],
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    attach(a.model, nc, a.out)
    lines = [
        "# Non-canonical pair scorer: training and validation",
        "",
        f"Command: `RESM_DATA=../shared/data python experiments/noncanonical/train.py {' '.join(sys.argv[1:])}`  ",
        f"Structure model: `{a.model}`. Candidates: tertiary_canonical={cfg.tertiary_canonical}. "
        f"Scorer: {cfg.members} MLPs {cfg.layers} x {cfg.hidden} (mean logit), "
        f"{sum(p.numel() for p in scorer.parameters())} parameters, {len(X)} TR1 candidates "
        f"({int(y.sum())} reference pairs among them), {a.epochs} epochs; training loss per epoch (all TR1): "
        + ", ".join(f"{v:.4f}" for v in losses)
        + ".  ",
        f"Threshold {threshold:g}, chosen by {a.folds}-fold cross-validation on TR1 (mean per-sequence F1 "
        "over all pairs at each threshold: " + ", ".join(f"{t:g}: {v:.3f}" for t, v in grid.items()) + ").  ",
        f"Wall time {time.time() - t0:.0f} s (CPU, 1 thread).",
        "",
        "| set | n | F1 | F1 ±1 | precision | recall | pred/ref pairs | pooled F1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, m in rows.items():
        lines.append(
            f"| {k} | {m['n']} | {m['f1_mean']:.3f} | {m['f1_shift_mean']:.3f} | {m['precision_mean']:.3f} "
            f"| {m['recall_mean']:.3f} | {m['pair_ratio']:.2f} | {m['f1_pooled']:.3f} |"
        )
    for name, preds in (("canonical structure only", vl_base), ("with --non-canonical", vl_added)):
        f, n = lone_recall(vl, preds)
        lines.append(f"\nVL1 lone canonical reference pairs found, {name}: {f} of {n} ({f / max(n, 1):.2f}).  ")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.report:
        a.report.write_text(text)
    print(
        json.dumps({"threshold": threshold, "cv_losses_first_last": [(x[0], x[-1]) for x in cv_losses]}),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
