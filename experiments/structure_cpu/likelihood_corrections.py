"""Learnt corrections inside the folding recursion, trained by conditional log-likelihood on the
constrained ensemble (issue 26, item 5, measured alone): ``ssvm_corrections.py``'s model with
its max-margin objective replaced by the CONTRAfold-style likelihood of the reference.

Model, features, records, split, budget, starting theta, L2, decoders, reference rows and
criterion: exactly ``ssvm_corrections.py``'s (imported from it, not copied): per candidate pair
the soft-constraint pseudo-energy ``-theta . phi`` kcal/mol with
``phi = [1, logit(head p), logit(prior p), ell, logit(head p) * ell]``, +5 kcal/mol on every
non-candidate pair (fixed), Turner 2004 untouched; training = TR1 + seeded halves of VL0 and the
held-out families (<= 400 nt, at most 300 each), evaluation = the other halves (at most 400 each)
+ all of VL1; theta starts at [0, 0.3, 0, 0, 0].

Objective (the only change). Per record, with ``y`` the nested canonical reference (as the SSVM
trains on), ``G(s) = Turner(s) + sum of the soft constraints over s's pairs`` and ``Z`` the
constrained partition function (ViennaRNA's ``pf`` with the same soft constraints, after
``exp_params_rescale`` at the constrained MFE):

    log P(y) = -G(y) / kT - log Z = (G_ensemble - G(y)) / kT,     kT = RT at 37 C

and the loss minimised is ``-log P(y) / max(1, |y|)`` (per reference pair), averaged over a
mini-batch, plus ``L2 / 2 * |theta|^2`` (L2 1e-3 as the SSVM). Its gradient per record:
``(E[Phi] - Phi(y)) / (kT * max(1, |y|))`` with ``Phi(y)`` the features summed over y's
candidate pairs and ``E[Phi] = sum over candidates of P(i, j) * phi_ij`` from the constrained
ensemble's pair probabilities (candidates only: phi is defined there).

Optimiser, fixed before the run: Adam (lr 0.01, betas 0.9 / 0.999, as the SSVM), mini-batch 16,
6 epochs (as the SSVM: one likelihood step measured 0.06 s per training record at the start
theta, about 45 s per epoch over the 719 records; the whole run is expected at ~12 min, within
the 20 min allowed, so no subsampling), seeded order; the model kept is the mean of
the iterates over the last 2 epochs. The training curve: per epoch, the mean log-likelihood per
reference pair under the theta of each mini-batch, the constrained MFE's F1 against y, and theta.
Before training and after it, one pass over the training records at the fixed theta gives their
mean log-likelihood per reference pair and every decoder's F1 (the pass after training is the
decoder choice).

Decoders (as the SSVM's): the constrained MFE and MEA (``mea_auto``) on the constrained
ensemble's pair probabilities (canonical pairs, i < j - 3, above 1e-3, as ``turner_ensemble``
gives them), each with and without the shipped pseudoknot step; the one of largest mean
per-sequence F1 over the training records is the one evaluated.

Criterion (the SSVM's, unchanged, fixed before the run): PASS when, on the evaluation records, the
mean of the three sources' F1 (VL0 half, families half, VL1) of the chosen decoder beats the
shipped decoding's by >= 0.004, with neither the VL0 half nor the families half lower than the
shipped decoding's by more than 0.003. No test set is read.

    python experiments/structure_cpu/likelihood_corrections.py runs/validation_KEY.npz \\
        --model resm/models/structure_default.pt \\
        --out experiments/results/structure_density_not_shipped/likelihood_corrections_cpu.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import socket
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # this checkout's resm, not an installed one
sys.path.insert(0, str(HERE))

import RNA  # noqa: E402
import ssvm_corrections as sv  # noqa: E402
from validation_cache import load  # noqa: E402

from resm.backbone.load import safe_load  # noqa: E402
from resm.structure.decode import Decoding  # noqa: E402
from resm.structure.folders import fold_compound  # noqa: E402
from resm.structure.io import parse_dotbracket  # noqa: E402
from resm.structure.metrics import evaluate, f1_score  # noqa: E402

# ----------------------------------------------------------------------------- fixed before the run
EPOCHS, BATCH, LR, AVERAGE_LAST = sv.EPOCHS, sv.BATCH, sv.LR, sv.AVERAGE_LAST  # ssvm_corrections.py's Adam (sv.fit)
KT = (37.0 + RNA.K0) * RNA.GASCONST / 1000.0  # kcal/mol


def constrained_fold(r: dict, theta: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """``(mfe pairs, ensemble free energy, (L+1, L+1) pair probabilities)`` of the record under
    Turner + the soft constraints of theta."""
    fc = fold_compound(r["s"], None)
    fc.sc_add_bp(sv.pseudo_energies(r, theta).tolist())
    db, mfe = fc.mfe()
    fc.exp_params_rescale(mfe)
    _, g_ens = fc.pf()
    return parse_dotbracket(db), float(g_ens), np.asarray(fc.bpp(), dtype=np.float64)


def likelihood_step(r: dict, theta: np.ndarray) -> tuple[np.ndarray, float, float, tuple]:
    """One record's gradient of -log P(y) per reference pair, log P(y) per reference pair, the
    constrained MFE's F1 against y, and the fold (for decoding)."""
    y = r["y"]
    ny = max(1, int((y > np.arange(len(y))).sum()))
    mfe, g_ens, b = constrained_fold(r, theta)
    g_y = fold_compound(r["s"], None).eval_structure(sv.to_db(y)) + sv.sc_energy(sv.pseudo_energies(r, theta), y)
    ll = (g_ens - g_y) / KT
    p = b[np.asarray(r["i"], np.int64) + 1, np.asarray(r["j"], np.int64) + 1]
    grad = (p @ r["phi"] - r["phi"][r["y_in"]].sum(axis=0)) / (KT * ny)
    return grad, ll / ny, f1_score(mfe, y), (mfe, b)


def ensemble_pairs(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs MEA decodes from, as ``turner_ensemble`` gives them (i < j - 3, above 1e-3; the
    constrained fold gives non-canonical pairs no probability)."""
    q = b[1:, 1:]
    i, j = np.nonzero(np.triu(q, 4) > 1e-3)
    return i, j, q[i, j]


def training_pass(recs: dict[str, list], theta: np.ndarray, stored: Decoding, desc: str) -> tuple[float, dict]:
    """At a fixed theta: the mean log-likelihood per reference pair over the training records and
    every decoder's mean F1 per source (canonical references)."""
    lls, f1 = [], {d: {} for d in sv.DECODERS}
    for s in sv.TRAIN_SOURCES:
        outs = []
        for r in tqdm(recs[s], desc=f"{desc} on {s}"):
            _, ll, _, (mfe, b) = likelihood_step(r, theta)
            lls.append(ll)
            outs.append(sv.decoders(r, mfe, ensemble_pairs(b), stored))
        for d in sv.DECODERS:
            f1[d][s] = evaluate([o[d] for o in outs], [r["ref"] for r in recs[s]])["f1_mean"]
    return float(np.mean(lls)), f1


def train(recs: list[dict]) -> tuple[np.ndarray, list[dict]]:
    return sv.fit(recs, lambda r, theta: likelihood_step(r, theta)[:3], ("loglik", "mfe_f1"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cache", help="the validation cache (.npz of validation_cache.py)")
    ap.add_argument("--model", default="resm/models/structure_default.pt")
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=0, help="smoke test only: at most this many records per source")
    a = ap.parse_args()
    t0 = time.time()
    stored = Decoding.from_dict(safe_load(a.model).get("decoding") or {})
    train_recs, held = sv.split(load(Path(a.cache)))
    lim = slice(None, a.limit or None)
    train_recs = {s: [sv.prepare(r) for r in v[lim]] for s, v in train_recs.items()}
    held = {s: [sv.prepare(r) for r in v[lim]] for s, v in held.items()}
    flat = [r for s in sv.TRAIN_SOURCES for r in train_recs[s]]
    print({s: len(v) for s, v in train_recs.items()}, {s: len(v) for s, v in held.items()}, flush=True)

    ll0, f1_0 = training_pass(train_recs, sv.THETA0, stored, "before training")
    t_before = time.time() - t0
    theta, curve = train(flat)
    t_train = time.time() - t0
    print("theta", theta.tolist(), flush=True)
    ll1, choice = training_pass(train_recs, theta, stored, "after training (decoder choice)")
    t_choice = time.time() - t0

    def learnt(r: dict) -> dict[str, np.ndarray]:
        mfe, _, b = constrained_fold(r, theta)
        return sv.decoders(r, mfe, ensemble_pairs(b), stored)

    names, rows, rows_full = sv.evaluation_rows(held, learnt, stored)
    out = sv.Outcome(held, choice, names, rows, rows_full)
    before, train_score, best = sv.mean_scores(f1_0), out.train_score, out.best
    wall = time.time() - t0
    load_avg = os.getloadavg()
    cmd = "python " + " ".join(shlex.quote(x) for x in sys.argv)
    src = sv.SOURCES
    lines = [
        "# Learnt corrections inside the folding recursion (conditional log-likelihood), CPU",
        "",
        f"Command: `{cmd}`  ",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {socket.gethostname()} "
        f"({os.cpu_count()} cores, shared), one process of one thread; load average at the end "
        f"{load_avg[0]:.1f} / {load_avg[1]:.1f} / {load_avg[2]:.1f}; wall time {wall / 60:.1f} min (pass before "
        f"training {t_before / 60:.1f}, training {(t_train - t_before) / 60:.1f}, pass after training and "
        f"decoder choice {(t_choice - t_train) / 60:.1f}, evaluation {(wall - t_choice) / 60:.1f}).  ",
        f"Model: {a.model}, stored decoding: {stored.describe()}.  ",
        f"Cache: {a.cache}. Setup, objective, optimiser and criterion: the script's docstring "
        "(experiments/structure_cpu/likelihood_corrections.py; model, records and criterion imported from "
        f"ssvm_corrections.py), all fixed before the run: Adam lr {LR}, batch {BATCH}, {EPOCHS} epochs, "
        f"L2 {sv.L2}, kT {KT:.4f} kcal/mol.  ",
        "Training records: "
        + ", ".join(f"{src[s]} {len(train_recs[s])}" for s in sv.TRAIN_SOURCES)
        + f" (<= {sv.TRAIN_MAX_LEN} nt); evaluation records: "
        + ", ".join(f"{src[s]} {len(held[s])}" for s in sv.EVAL_SOURCES)
        + ". No test set is read."
        + (f" **Smoke test: at most {a.limit} records per source.**" if a.limit else ""),
        "",
        *sv.theta_lines(theta, AVERAGE_LAST),
        "## Training records before and after training (theta fixed for the pass)",
        "",
        "| | mean log P(y) per reference pair | "
        + " | ".join(f"F1 {d}" for d in sv.DECODERS)
        + " (mean of TR1 / VL0 / families) |",
        "|---|---|" + "---|" * len(sv.DECODERS),
        f"| start theta | {ll0:.4f} | " + " | ".join(f"{before[d]:.4f}" for d in sv.DECODERS) + " |",
        f"| learnt theta | {ll1:.4f} | " + " | ".join(f"{train_score[d]:.4f}" for d in sv.DECODERS) + " |",
        "",
        "## Training curve (mean over each epoch's mini-batches, each at its current theta)",
        "",
        "| epoch | mean log P(y) / pair | constrained MFE F1 against y | theta at the end of the epoch |",
        "|---|---|---|---|",
        *(
            f"| {c['epoch']} | {c['loglik']:.4f} | {c['mfe_f1']:.3f} | "
            + ", ".join(f"{x:+.3f}" for x in c["theta"])
            + " |"
            for c in curve
        ),
        "",
        *out.report("Decoder choice (training records, learnt theta, mean per-sequence F1, canonical pairs)"),
    ]
    sv.write_outputs(
        a.out,
        lines,
        {
            "theta": theta.tolist(),
            "features": sv.FEATURES,
            "decoder": best,
            "loglik_before": ll0,
            "loglik_after": ll1,
            "train_score_before": before,
            "train_score": train_score,
            "pass": out.ok,
            "curve": curve,
        },
    )


if __name__ == "__main__":
    main()
