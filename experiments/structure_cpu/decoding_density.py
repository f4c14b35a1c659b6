"""How the decoding choice moves when it is made on several validation sets and when the pair
density takes part in it: one model's validation predictions, every decoding of the grid
``resm finetune`` searches (MEA gamma 1-6 or per sequence, prior weight 0-0.5, pseudoknot
threshold none/0.3/0.5/0.7) scored once per set, then each selection rule applied to those
scores exactly as :func:`resm.structure.decode.choose_decoding` applies it (mean F1 of the
named sets; with a density tolerance, the settings within it of the best mean F1 are ranked by
the mean ``|log(pair_ratio)|`` of those sets).

    python experiments/structure_cpu/decoding_density.py resm/models/structure_default.pt \\
        --config configs/finetune/structure_mix.yaml --select val,family,vl1 val,vl1 \\
        --tolerances 0 0.002 0.005 --out experiments/results/structure_decoding_density_cpu.md \\
        model.init=null model.arch=small data.bpp_cache=/work/density_cache

Validation data only (the config's ``data.val``, held-out families and ``data.val_sets``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's resm, not an installed one

from resm.backbone.load import CheckpointError, safe_load
from resm.config import load_config
from resm.structure.decode import Decoding, add_pseudoknots, blend, decode_sparse
from resm.structure.ensemble import ensemble_payload
from resm.structure.metrics import evaluate
from resm.structure.model import model_from_payload
from resm.tasks.structure_task import StructureTask
from resm.utils.io import atomic_write_text

GAMMAS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
THRESHOLDS = (0.3, 0.5, 0.7)
SMALL = ((2.0,), (0.0, 0.1, 0.2, 0.3, 0.5), (0.3, 0.5))  # --grid small: a subset, for screening


def grid_scores(sets: dict[str, list]) -> dict[tuple, dict[str, dict]]:
    """``{(gamma or "auto", weight, threshold or None): {set: metrics}}`` over the whole grid."""
    out: dict[tuple, dict[str, dict]] = {}
    bases = [Decoding(g, w, None) for w in WEIGHTS for g in GAMMAS]
    bases += [Decoding(prior_weight=w, auto_gamma=True) for w in WEIGHTS]
    for d in tqdm(bases, desc="decodings"):
        out.update(setting_scores(sets, d, THRESHOLDS))
    return out


def setting_scores(sets: dict[str, list], d: Decoding, thresholds) -> dict[tuple, dict[str, dict]]:
    """The scores of one decoding ``d`` (its own pseudoknot threshold ignored): without
    pseudoknots and with each of ``thresholds``."""
    g = "auto" if d.auto_gamma else d.gamma
    nested = {s: [decode_sparse(*it[:4], d, it[4], nested=True) for it in items] for s, items in sets.items()}
    out = {(g, d.prior_weight, None): {s: evaluate(nested[s], [it[5] for it in items]) for s, items in sets.items()}}
    for t in thresholds:
        out[(g, d.prior_weight, t)] = {
            s: evaluate(
                [
                    add_pseudoknots(p, it[1], it[2], blend(it[3], it[4], d.prior_weight), t)
                    for p, it in zip(nested[s], items)
                ],
                [it[5] for it in items],
            )
            for s, items in sets.items()
        }
    return out


def score_cells(m: dict) -> list[str]:
    """The three table cells of one set's scores (:func:`resm.structure.metrics.evaluate`'s
    means): F1 / F1 with a one-base shift, precision / recall, predicted pairs per reference pair."""
    return [
        f"{m['f1_mean']:.3f} / {m['f1_shift_mean']:.3f}",
        f"{m['precision_mean']:.3f} / {m['recall_mean']:.3f}",
        f"{m['pair_ratio']:.2f}",
    ]


def choose(scores: dict, on: list[str], tol: float) -> tuple:
    """The setting ``choose_decoding`` takes with ``density_tolerance=tol`` on the sets ``on``."""

    def f1(key):
        return float(np.mean([scores[key][s]["f1_mean"] for s in on]))

    def off(key):
        return float(np.mean([abs(np.log(scores[key][s]["pair_ratio"])) for s in on]))

    def pick(keys):
        top = max(f1(k) for k in keys)
        near = [k for k in keys if f1(k) >= top - tol]
        return min(near, key=off) if tol > 0 else near[0]

    order = [(g, w, None) for w in WEIGHTS for g in (*GAMMAS, "auto")]
    base = pick(order)
    return pick([base] + [(base[0], base[1], t) for t in THRESHOLDS])


def describe(key: tuple) -> str:
    g, w, t = key
    gamma = "per-sequence gamma" if g == "auto" else f"gamma {g:g}"
    return f"{gamma}, prior weight {w:g}, " + ("no pseudoknots" if t is None else f"pseudoknots above {t:g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a structure_model.pt with the pair head")
    ap.add_argument("--config", required=True, help="a finetune config naming the validation sets")
    ap.add_argument("--select", nargs="+", default=["val,family"], help="comma-separated set names, one rule each")
    ap.add_argument("--tolerances", nargs="+", type=float, default=[0.0])
    ap.add_argument("--out", default=None, help="markdown table")
    ap.add_argument(
        "--ensemble",
        nargs="+",
        default=None,
        help="more models: pair probabilities averaged with MODEL's (resm.structure.ensemble.ensemble_payload); "
        "the stored row is MODEL's decoding",
    )
    ap.add_argument("--grid", choices=["full", "small"], default="full", help="small: gamma 2 or per sequence")
    ap.add_argument("--scores", default=None, help="also write every grid setting's metrics per set (JSON)")
    ap.add_argument("overrides", nargs="*", help="key=value config overrides")
    a = ap.parse_intermixed_args()
    if a.grid == "small":
        global GAMMAS, WEIGHTS, THRESHOLDS
        GAMMAS, WEIGHTS, THRESHOLDS = SMALL
    task = StructureTask(load_config(a.config, a.overrides), train_priors=False)
    payload = safe_load(a.model)
    stored = Decoding.from_dict(payload.get("decoding") or {})
    if a.ensemble:  # one model averaging the heads' probabilities, candidate by candidate
        try:
            payload = ensemble_payload([(a.model, payload)] + [(n, safe_load(n)) for n in a.ensemble])
        except CheckpointError as e:
            raise SystemExit(str(e)) from None
    model, _ = model_from_payload(payload)
    sets = task.kind.validation_predictions(model, "cpu")
    scores = grid_scores(sets)
    if a.scores:
        atomic_write_text(a.scores, json.dumps([[list(k), v] for k, v in scores.items()]))
    names = list(sets)
    rows = []
    sk = ("auto" if stored.auto_gamma else stored.gamma, stored.prior_weight, stored.pseudoknot_threshold)
    if sk not in scores:  # a stored decoding off the (small) grid: scored alone, never chosen
        t = stored.pseudoknot_threshold
        scores[sk] = setting_scores(sets, stored, () if t is None else (t,))[sk]
    rows.append(("stored in the file", "", sk))
    for sel in a.select:
        on = sel.split(",")
        for tol in a.tolerances:
            rows.append((" + ".join(on), f"{tol:g}", choose(scores, on, tol)))
    head = "| chosen on | density tolerance | decoding | " + " | ".join(
        f"{s}: F1 / ±1 | {s}: P / R | {s}: pred/ref" for s in names
    )
    lines = [
        "Command: `python " + " ".join(shlex.quote(x) for x in sys.argv) + "`  ",
        f"Grid: {a.grid} (gamma {', '.join(map(str, GAMMAS))} or per sequence; prior weight "
        f"{', '.join(map(str, WEIGHTS))}; pseudoknots none or above {', '.join(map(str, THRESHOLDS))}).  ",
        "Sets: " + ", ".join(f"{s} ({len(sets[s])})" for s in names) + ".",
        "",
        head + " | mean F1 |",
        "|" + "---|" * (4 + 3 * len(names)),
    ]
    for label, tol, key in rows:
        cells = []
        for s in names:
            cells += score_cells(scores[key][s])
        mean = np.mean([scores[key][s]["f1_mean"] for s in names])
        lines.append(f"| {label} | {tol} | {describe(key)} | " + " | ".join(cells) + f" | {mean:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        atomic_write_text(a.out, text)


if __name__ == "__main__":
    main()
