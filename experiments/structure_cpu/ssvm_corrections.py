"""Learnt corrections inside the folding recursion, trained by structured max-margin (issue 26,
item 5, measured alone): a per-pair bonus added to ViennaRNA's Turner energies as soft
constraints, its weights learnt by a structured SVM whose loss-augmented decoding is
ViennaRNA's own MFE recursion.

Model. For every candidate pair (i, j) of the shipped model (the pair head's candidates, cut from
its EternaFold prior) the folding gets the pseudo-energy ``-b_ij`` kcal/mol with
``b_ij = theta . phi_ij`` and the features (fixed before the run; p clipped to [1e-4, 1 - 1e-4],
``ell = max(0, log2(L / 150))``, the shipped length shift's variable):

    phi_ij = [1, logit(head p), logit(prior p), ell, logit(head p) * ell]

Every pair that is not a candidate gets a FIXED +5 kcal/mol (the ``--turner-scale`` option's
penalty; not learnt). The Turner 2004 parameters are untouched (``fold_compound`` +
``sc_add_bp`` of the library, :func:`resm.structure.decode.turner_ensemble` for decoding).

Training (subgradient of the structured hinge, margin-rescaled): per record the reference ``y``
is the nested canonical part of its pairs (bases in two pairs: the first pair by (i, j) kept;
pairs with j - i < 4 dropped; then :func:`resm.structure.decode.nested_subset`). The
loss-augmented structure is the MFE under Turner + the soft constraints with the Hamming margin
folded in (pairs of ``y``: +delta, every other pair: -delta; delta = 0.5 kcal/mol). The
subgradient of one record is ``(Phi(pred) - Phi(y)) / max(1, |y|)`` (Phi: the sum of the
features over the structure's candidate pairs; non-candidates carry no learnt weight), averaged
over a mini-batch of 16 records, plus L2 1e-3 * theta; Adam (lr 0.01, betas 0.9 / 0.999);
6 epochs over the training records in a seeded order; the model kept is the mean of the
iterates over the last 2 epochs. theta starts at [0, 0.3, 0, 0, 0] (the head's logit at scale
0.3 kcal/mol, the opt-in's scale). The training curve: per epoch, the mean structured hinge per
reference pair (Turner energy of ``y`` from ViennaRNA's ``eval_structure`` plus its
pseudo-energies, against the augmented MFE), the augmented prediction's F1 against ``y`` and
pred/ref, and theta.

Records (no test set is read: never TS0, bpRNA-new, ArchiveII). From the validation cache
(``validation_cache.py``, ``data.max_val=null``, TR1 added): training = all of TR1 (the shipped
head never trained on it) + a seeded half (numpy default_rng(0) permutation) of VL0 + a seeded
half of the held-out families; evaluation = the other halves + all of VL1. Budget, fixed before
the run: training uses records of at most 400 nt and at most 300 records from each of the two
halves (seeded); evaluation uses at most 400 records of each other half (seeded), no length cap,
and all of VL1. The whole run (training, the decoder choice, the evaluation) on one thread.

Decoders of the learnt model, from one constrained ensemble per record: the constrained MFE,
and MEA (``mea_auto``: gamma per sequence by pseudo-expected F1) on its pair probabilities; each
also with the shipped pseudoknot step (the stored decoding's threshold, on the stored decoded
probabilities) -- four decoders, the one of largest mean per-sequence F1 over the training
records (mean of the three training sources' means) is the one evaluated.

References on the same evaluation records, same run: the shipped decoding (the ``Decoding``
stored in the model file through ``decode_sparse``), ``--turner-scale 0.3`` (that decoding with
``turner_scale=0.3``), EternaFold MEA and RNAfold MFE (from the cache). Scores: against the
canonical pairs of each reference (bpRNA's references keep some non-canonical pairs: dropped;
the F1 against the full cached references is reported beside, not used), mean per-sequence F1
strict / ±1, precision / recall, predicted/reference pairs (:func:`resm.structure.metrics.evaluate`).

Criterion (fixed before the run): PASS when, on the evaluation records, the mean of the three
sources' F1 (VL0 half, families half, VL1) of the learnt model's chosen decoder beats the
shipped decoding's by >= 0.004, with neither the VL0 half nor the families half lower than the
shipped decoding's by more than 0.003.

    python experiments/structure_cpu/ssvm_corrections.py runs/validation_KEY.npz \\
        --model resm/models/structure_default.pt \\
        --out experiments/results/structure_density_not_shipped/ssvm_corrections_cpu.md

Post-hoc diagnostic (added after the fixed run above had FAILED; it cannot turn the verdict):
``--delta D`` retrains with another margin (0.1, 0.25, 1.0 were run) and ``--epochs 0`` scores
the starting theta untrained, each written to its own table.

(the cache built by ``validation_cache.cached_sets`` with ``configs/finetune/structure_mix.yaml``
and the overrides ``model.init=null model.arch=small data.workers=1
data.bpp_cache=/work/density_cache 'data.val_sets.tr1="{data_dir}/ss/pdb/TR1.tsv"'
data.max_val=null``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
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

from decoding_density import score_cells  # noqa: E402
from validation_cache import load  # noqa: E402

from resm.backbone.load import safe_load  # noqa: E402
from resm.nucleotides import normalise_lenient  # noqa: E402
from resm.structure.decode import (  # noqa: E402
    Decoding,
    add_pseudoknots,
    blend,
    decode_sparse,
    mea_auto,
    nested_subset,
    shift_by_length,
    turner_ensemble,
)
from resm.structure.folders import fold_compound  # noqa: E402
from resm.structure.io import parse_dotbracket  # noqa: E402
from resm.structure.metrics import evaluate, f1_score  # noqa: E402
from resm.structure.pairsets import PairRecord  # noqa: E402
from resm.utils.io import atomic_write_text  # noqa: E402

# ----------------------------------------------------------------------------- fixed before the run
FEATURES = ("1", "logit(head p)", "logit(prior p)", "ell", "logit(head p)*ell")
THETA0 = np.array([0.0, 0.3, 0.0, 0.0, 0.0])
PENALTY = 5.0  # kcal/mol on every non-candidate pair (fixed, not learnt)
DELTA = 0.5  # kcal/mol Hamming margin per pair
LENGTH_REF = 150.0
EPOCHS, BATCH, LR, L2, AVERAGE_LAST = 6, 16, 0.01, 1e-3, 2
TRAIN_MAX_LEN, TRAIN_CAP, EVAL_CAP = 400, 300, 400
SEED = 0
DECODERS = ("mfe", "mea-auto", "mfe+pk", "mea-auto+pk")
SOURCES = {"val": "VL0", "family": "families", "vl1": "VL1", "tr1": "TR1"}
EVAL_SOURCES = ("val", "family", "vl1")
TRAIN_SOURCES = ("tr1", "val", "family")
PASS_MEAN, PASS_DROP = 0.004, 0.003


# ----------------------------------------------------------------------------- records
def split(sets: dict[str, list]) -> tuple[dict[str, list], dict[str, list]]:
    """``(train, evaluation)`` records by source under the docstring's rule."""
    train, held = {"tr1": [r for r in sets["tr1"] if len(r["seq"]) <= TRAIN_MAX_LEN]}, {"vl1": list(sets["vl1"])}
    for s in ("val", "family"):
        recs = sets[s]
        order = np.random.default_rng(SEED).permutation(len(recs))
        half = len(recs) // 2
        tr = [recs[k] for k in order[:half] if len(recs[k]["seq"]) <= TRAIN_MAX_LEN]
        ev = [recs[k] for k in order[half:]]
        train[s] = [tr[k] for k in sorted(np.random.default_rng(SEED + 1).permutation(len(tr))[:TRAIN_CAP])]
        held[s] = [ev[k] for k in sorted(np.random.default_rng(SEED + 2).permutation(len(ev))[:EVAL_CAP])]
    return train, held


def logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-4, 1 - 1e-4)
    return np.log(q) - np.log1p(-q)


def features(r: dict) -> np.ndarray:
    """(n candidates, 5) features of a record's candidates (the docstring's phi)."""
    ell = max(0.0, float(np.log2(len(r["seq"]) / LENGTH_REF)))
    h, q = logit(r["model_p"]), logit(r["prior_p"])
    return np.stack([np.ones_like(h), h, q, np.full_like(h, ell), h * ell], axis=1)


def training_reference(r: dict) -> np.ndarray:
    """The nested canonical part of the reference as a partner array (the docstring's y)."""
    L = len(r["seq"])
    p = np.full(L, -1, dtype=np.int64)
    for a, b in r["ref"].ij.tolist():  # sorted by (i, j): the first pair of a multiplet base kept
        if b - a >= 4 and p[a] < 0 and p[b] < 0:
            p[a], p[b] = b, a
    return nested_subset(p)


def prepare(r: dict) -> dict:
    """The record with its reference's canonical pairs (``ref``; the cached one: ``ref_full``),
    features, training reference and the candidates in it."""
    L = len(r["seq"])
    y = training_reference({"seq": r["seq"], "ref": PairRecord("", r["seq"], r["ref"]).canonical().pairs})
    i, j = np.asarray(r["i"], np.int64), np.asarray(r["j"], np.int64)
    return {
        **r,
        "ref_full": r["ref"],
        "ref": PairRecord("", r["seq"], r["ref"]).canonical().pairs,
        "s": normalise_lenient(r["seq"]),
        "phi": features(r),
        "y": y,
        "y_in": y[i] == j,
        "keys": i * L + j,
    }


def pseudo_energies(r: dict, theta: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """The (L+1, L+1) soft constraints: -theta.phi at candidates, PENALTY elsewhere; with ``y``
    the Hamming margin folded in (pairs of y +DELTA, all others -DELTA)."""
    L = len(r["seq"])
    sc = np.full((L + 1, L + 1), PENALTY)
    i, j = np.asarray(r["i"], np.int64), np.asarray(r["j"], np.int64)
    if len(i):
        sc[i + 1, j + 1] = -(r["phi"] @ theta)
    if y is not None:
        sc -= DELTA
        yi = np.flatnonzero(y > np.arange(L))
        sc[yi + 1, y[yi] + 1] += 2 * DELTA
    return sc


def candidate_sum(r: dict, pairs: np.ndarray) -> np.ndarray:
    """Phi of a structure: its candidate pairs' features summed."""
    L = len(pairs)
    a = np.flatnonzero(pairs > np.arange(L))
    keys = a * L + pairs[a]
    hit = np.isin(r["keys"], keys)
    return r["phi"][hit].sum(axis=0)


def sc_energy(sc: np.ndarray, pairs: np.ndarray) -> float:
    a = np.flatnonzero(pairs > np.arange(len(pairs)))
    return float(sc[a + 1, pairs[a] + 1].sum())


def to_db(pairs: np.ndarray) -> str:
    return "".join("(" if q > k else ")" if q >= 0 else "." for k, q in enumerate(pairs.tolist()))


def augmented_step(r: dict, theta: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """One record's subgradient, hinge per reference pair, and the augmented prediction's F1 and
    pair count."""
    y = r["y"]
    ny = int((y > np.arange(len(y))).sum())
    sc = pseudo_energies(r, theta, y)
    fc = fold_compound(r["s"], None)
    fc.sc_add_bp(sc.tolist())
    db, e_aug = fc.mfe()
    pred = parse_dotbracket(db)
    # hinge = G(y) - min_s [G(s) - Delta(s, y)] with G = Turner + the unaugmented pseudo-energies
    g_y = fold_compound(r["s"], None).eval_structure(to_db(y)) + sc_energy(pseudo_energies(r, theta), y)
    hinge = g_y - (e_aug - DELTA * ny)
    grad = (candidate_sum(r, pred) - r["phi"][r["y_in"]].sum(axis=0)) / max(1, ny)
    return grad, hinge / max(1, ny), f1_score(pred, y), int((pred > np.arange(len(pred))).sum()) / max(1, ny)


def fit(recs: list[dict], step, stats: tuple[str, ...]) -> tuple[np.ndarray, list[dict]]:
    """Adam from THETA0 over ``recs`` (the schedule above: EPOCHS epochs of batches of BATCH, lr
    LR, L2 toward zero): ``step(r, theta) -> (gradient, *values)`` per record, the epoch's mean
    values logged in the curve under the names ``stats``; returns the mean theta of the last
    AVERAGE_LAST epochs and the curve."""
    theta = THETA0.copy()
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    t, kept, curve = 0, [], []
    rng = np.random.default_rng(SEED + 3)
    for ep in range(EPOCHS):
        order = rng.permutation(len(recs))
        values = []
        for b in tqdm(range(0, len(order), BATCH), desc=f"epoch {ep + 1}/{EPOCHS}", total=-(-len(order) // BATCH)):
            g = np.zeros_like(theta)
            batch = order[b : b + BATCH]
            for k in batch:
                gk, *st = step(recs[k], theta)
                g += gk
                values.append(st)
            g = g / len(batch) + L2 * theta
            t += 1
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            theta = theta - LR * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
            if ep >= EPOCHS - AVERAGE_LAST:
                kept.append(theta.copy())
        means = (float(x) for x in np.array(values).mean(axis=0))
        curve.append({"epoch": ep + 1, **dict(zip(stats, means)), "theta": theta.tolist()})
        print(json.dumps(curve[-1]), flush=True)
    return (np.mean(kept, axis=0) if kept else theta), curve


def train(recs: list[dict]) -> tuple[np.ndarray, list[dict]]:
    return fit(recs, augmented_step, ("hinge", "aug_f1", "aug_ratio"))


# ----------------------------------------------------------------------------- decoding
def learnt_structures(r: dict, theta: np.ndarray, stored: Decoding) -> dict[str, np.ndarray]:
    """Every decoder's structure of the learnt model."""
    mfe, ens = turner_ensemble(r["s"], pseudo_energies(r, theta))
    return decoders(r, mfe, ens, stored)


def decoders(r: dict, mfe: np.ndarray, ens: tuple, stored: Decoding) -> dict[str, np.ndarray]:
    """Every decoder's structure from one constrained fold: its MFE ``mfe`` and its pairs
    ``ens = (i, j, p)``."""
    mea = mea_auto(r["s"], *ens)
    p = blend(r["model_p"], r["prior_p"], stored.prior_weight)
    p = shift_by_length(p, len(r["seq"]), stored.length_ref, stored.length_shift)
    t = stored.pseudoknot_threshold
    pk = (lambda x: add_pseudoknots(x, r["i"], r["j"], p, t)) if t is not None else (lambda x: x)
    return {"mfe": mfe, "mea-auto": mea, "mfe+pk": pk(mfe), "mea-auto+pk": pk(mea)}


def evaluation_rows(held: dict[str, list], learnt, stored: Decoding) -> tuple[list[str], dict, dict]:
    """``(names, rows, rows_full)``: every row's scores per evaluation source, against the
    canonical references (``rows``) and the cached ones (``rows_full``); ``learnt(r)`` gives the
    learnt model's structures by decoder."""
    opt_in = dataclasses.replace(stored, turner_scale=0.3)
    rows: dict[str, dict[str, dict]] = {}
    rows_full: dict[str, dict[str, dict]] = {}  # against the cached references, non-canonical pairs included
    names = [f"learnt, {d}" for d in DECODERS]
    names += ["shipped decoding", "--turner-scale 0.3", "EternaFold MEA", "RNAfold MFE"]
    for s in EVAL_SOURCES:
        preds: dict[str, list] = {n: [] for n in names}
        for r in tqdm(held[s], desc=f"evaluation on {s}"):
            for d, x in learnt(r).items():
                preds[f"learnt, {d}"].append(x)
            args = (r["seq"], r["i"], r["j"], r["model_p"])
            preds["shipped decoding"].append(decode_sparse(*args, stored, r["prior_p"]))
            preds["--turner-scale 0.3"].append(decode_sparse(*args, opt_in, r["prior_p"]))
            preds["EternaFold MEA"].append(r["eterna"])
            preds["RNAfold MFE"].append(r["mfe"])
        refs = [r["ref"] for r in held[s]]
        full = [r["ref_full"] for r in held[s]]
        for n in names:
            rows.setdefault(n, {})[s] = evaluate(preds[n], refs)
            rows_full.setdefault(n, {})[s] = evaluate(preds[n], full)
    return names, rows, rows_full


def mean_scores(choice: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each decoder's F1 averaged over the training sources."""
    return {d: float(np.mean(list(choice[d].values()))) for d in DECODERS}


@dataclasses.dataclass
class Outcome:
    """One learnt model's decoder choice on the training records and its evaluation rows, with the
    criterion's verdict and the report blocks both training objectives share."""

    held: dict[str, list]
    choice: dict[str, dict[str, float]]  # decoder -> training source -> F1
    names: list[str]
    rows: dict
    rows_full: dict

    def __post_init__(self) -> None:
        self.train_score = mean_scores(self.choice)
        self.best = max(DECODERS, key=lambda d: (self.train_score[d], -DECODERS.index(d)))
        self.chosen, self.ship = f"learnt, {self.best}", "shipped decoding"
        self.gain = self.mean3(self.chosen) - self.mean3(self.ship)
        self.drops = {
            s: self.rows[self.chosen][s]["f1_mean"] - self.rows[self.ship][s]["f1_mean"] for s in ("val", "family")
        }
        self.ok = self.gain >= PASS_MEAN and all(x >= -PASS_DROP for x in self.drops.values())

    def mean3(self, n: str) -> float:
        return float(np.mean([self.rows[n][s]["f1_mean"] for s in EVAL_SOURCES]))

    def report(self, choice_title: str) -> list[str]:
        """The decoder-choice table, the evaluation table and the verdict, as report lines."""
        best, chosen, ship, rows, held = self.best, self.chosen, self.ship, self.rows, self.held
        return [
            f"## {choice_title}",
            "",
            "| decoder | " + " | ".join(SOURCES[s] for s in TRAIN_SOURCES) + " | mean |",
            "|---|" + "---|" * (len(TRAIN_SOURCES) + 1),
            *(
                f"| {'**' + d + '** (chosen)' if d == best else d} | "
                + " | ".join(f"{self.choice[d][s]:.3f}" for s in TRAIN_SOURCES)
                + f" | {self.train_score[d]:.4f} |"
                for d in DECODERS
            ),
            "",
            "## Evaluation records (canonical pairs): F1 / ±1 | P / R | pred/ref",
            "",
            "| row | "
            + " | ".join(f"{SOURCES[s]} ({len(held[s])}): F1 / ±1 | P / R | pred/ref" for s in EVAL_SOURCES)
            + " | mean F1 of the three |",
            "|---|" + "---|---|---|" * len(EVAL_SOURCES) + "---|",
            *(
                f"| {'**' + n + '** (chosen)' if n == chosen else n} | "
                + " | ".join(x for s in EVAL_SOURCES for x in score_cells(rows[n][s]))
                + f" | {self.mean3(n):.4f} |"
                for n in self.names
            ),
            "",
            "Against the cached references with their non-canonical pairs (bpRNA's annotation keeps some; "
            "VL1's cache is canonical already), mean per-sequence F1, not the criterion's: "
            + "; ".join(
                f"{n}: " + " / ".join(f"{self.rows_full[n][s]['f1_mean']:.3f}" for s in EVAL_SOURCES)
                for n in (chosen, ship, "--turner-scale 0.3", "EternaFold MEA")
            )
            + " (VL0 / families / VL1).",
            "",
            f"## Verdict: **{'PASS' if self.ok else 'FAIL'}**",
            "",
            f"Chosen decoder ({best}) against the shipped decoding: mean of the three F1 {self.gain:+.4f} (needs >= "
            f"+{PASS_MEAN}); VL0 half {self.drops['val']:+.4f}, families half {self.drops['family']:+.4f} (each "
            f"needs >= -{PASS_DROP}).",
            "",
        ]


def theta_lines(theta: np.ndarray, last: int) -> list[str]:
    """The learnt-theta table of a report."""
    return [
        "## Learnt theta (kcal/mol per unit feature; bonus b = theta . phi, pseudo-energy -b)",
        "",
        f"| feature | start | learnt (mean of the last {last} epochs' iterates) |",
        "|---|---|---|",
        *(f"| {f} | {x0:g} | {x:+.4f} |" for f, x0, x in zip(FEATURES, THETA0, theta)),
        "",
    ]


def write_outputs(out: str, lines: list[str], result: dict) -> None:
    """The report (markdown ``lines``) at ``out``, ``result`` as JSON beside it (``.json``), and
    the report's last three lines on stdout."""
    atomic_write_text(out, "\n".join(lines))
    atomic_write_text(str(Path(out).with_suffix(".json")), json.dumps(result))
    print("\n".join(lines[-3:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cache", help="the validation cache (.npz of validation_cache.py)")
    ap.add_argument("--model", default="resm/models/structure_default.pt")
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--delta",
        type=float,
        default=DELTA,
        help="the Hamming margin per pair, kcal/mol (0.5: the fixed run; other values: the post-hoc diagnostic)",
    )
    ap.add_argument("--epochs", type=int, default=EPOCHS, help="0: theta stays at its start (the diagnostic)")
    a = ap.parse_args()
    globals().update(DELTA=a.delta, EPOCHS=a.epochs)
    t0 = time.time()
    stored = Decoding.from_dict(safe_load(a.model).get("decoding") or {})
    sets = load(Path(a.cache))
    train_recs, held = split(sets)
    train_recs = {s: [prepare(r) for r in v] for s, v in train_recs.items()}
    held = {s: [prepare(r) for r in v] for s, v in held.items()}
    flat = [r for s in TRAIN_SOURCES for r in train_recs[s]]
    print({s: len(v) for s, v in train_recs.items()}, {s: len(v) for s, v in held.items()}, flush=True)
    theta, curve = train(flat)
    t_train = time.time() - t0
    print("theta", theta.tolist(), flush=True)

    # decoder choice on the training records (their original references, canonical pairs)
    choice = {d: {} for d in DECODERS}
    for s in TRAIN_SOURCES:
        outs = [learnt_structures(r, theta, stored) for r in tqdm(train_recs[s], desc=f"choice on {s}")]
        for d in DECODERS:
            choice[d][s] = evaluate([o[d] for o in outs], [r["ref"] for r in train_recs[s]])["f1_mean"]
    t_choice = time.time() - t0

    names, rows, rows_full = evaluation_rows(held, lambda r: learnt_structures(r, theta, stored), stored)
    out = Outcome(held, choice, names, rows, rows_full)
    best = out.best
    wall = time.time() - t0
    load_avg = os.getloadavg()
    cmd = "python " + " ".join(shlex.quote(x) for x in sys.argv)
    lines = [
        "# Learnt corrections inside the folding recursion (structured max-margin), CPU",
        "",
        f"Command: `{cmd}`  ",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {socket.gethostname()} "
        f"({os.cpu_count()} cores, shared), one process of one thread; load average at the end "
        f"{load_avg[0]:.1f} / {load_avg[1]:.1f} / {load_avg[2]:.1f}; wall time {wall / 60:.1f} min (training "
        f"{t_train / 60:.1f}, decoder choice {(t_choice - t_train) / 60:.1f}, "
        f"evaluation {(wall - t_choice) / 60:.1f}).  ",
        f"Model: {a.model}, stored decoding: {stored.describe()}. Hamming margin delta = {DELTA:g} kcal/mol.  ",
        f"Cache: {a.cache}. Setup, features, training and criterion: the script's docstring "
        "(experiments/structure_cpu/ssvm_corrections.py), all fixed before the run.  ",
        "Training records: "
        + ", ".join(f"{SOURCES[s]} {len(train_recs[s])}" for s in TRAIN_SOURCES)
        + f" (<= {TRAIN_MAX_LEN} nt); evaluation records: "
        + ", ".join(f"{SOURCES[s]} {len(held[s])}" for s in EVAL_SOURCES)
        + ". No test set is read.",
        "",
        *theta_lines(theta, 2),
        "## Training curve (training records; hinge per reference pair, kcal/mol; augmented prediction against y)",
        "",
        "| epoch | mean hinge / pair | augmented F1 | augmented pred/ref | theta at the end of the epoch |",
        "|---|---|---|---|---|",
        *(
            f"| {c['epoch']} | {c['hinge']:.3f} | {c['aug_f1']:.3f} | {c['aug_ratio']:.2f} | "
            + ", ".join(f"{x:+.3f}" for x in c["theta"])
            + " |"
            for c in curve
        ),
        "",
        *out.report("Decoder choice (training records, mean per-sequence F1, canonical pairs)"),
    ]
    write_outputs(
        a.out,
        lines,
        {
            "delta": DELTA,
            "theta": theta.tolist(),
            "features": FEATURES,
            "decoder": best,
            "train_score": out.train_score,
            "pass": out.ok,
            "curve": curve,
        },
    )


if __name__ == "__main__":
    main()
