"""Pair density against sequence length (issue 26, the lead left by the density diagnosis), on
validation data only: per length bin and per validation set, for the shipped model's stored
decoding, EternaFold (LinearPartition MEA, beam 100) and RNAfold (MFE), the number of records,
mean per-sequence F1 / precision / recall and predicted/reference pairs (summed over the bin);
and the head's calibration in the bin: the sum of the head's probabilities over its candidates
divided by the reference pairs (the same for the decoded blend with the prior), and the mean
gamma the per-sequence choice (pseudo-expected F1 among 1/2/4/8) takes.

    python experiments/structure_cpu/density_by_length.py resm/models/structure_default.pt \\
        --config configs/finetune/structure_mix.yaml \\
        --out experiments/results/structure_density_not_shipped/density_by_length_cpu.md \\
        model.init=null model.arch=small data.workers=1 data.bpp_cache=/work/density_cache \\
        'data.val_sets.tr1="{data_dir}/ss/pdb/TR1.tsv"'

Sets: VL0 (the config's ``data.val``, 400 seeded records), the held-out families (400), VL1 and,
as a check set only, TR1 (SPOT-RNA's PDB-derived training set: the shipped model's head never
trained on it; ``data.val_sets.tr1`` adds it to the cache), both over canonical pairs. No test
set is read. The predictions and the folders' structures come from ``validation_cache.py``
(computed once under ``runs/mixdiag/``, never committed).

``--grid`` (the one idea the measurement motivates, measured alone): a length-aware shift of the
decoded probabilities' log-odds. Above a reference length L0 every decoded probability p (the
blend with the prior that the stored decoding reads) becomes

    logit(p') = logit(p) + b * log2(L / L0)        (L > L0; unchanged for L <= L0)

before the MEA, the per-sequence gamma choice and the pseudoknot step, so that a long sequence's
probabilities (whose sum falls below the reference pairs as L grows, "head Σp / ref") are read as
denser (``resm.structure.decode.shift_by_length``, ``Decoding.length_shift`` / ``length_ref``
in the library); the rest of the decoding stays the stored one (per-sequence gamma, prior weight 0.1,
pseudoknots above 0.5). Grid: L0 in {100, 150, 200} nt, b in {0.25, 0.5, 0.75, 1.0}, and b = 0
(the stored decoding, reproduced in the same run), 13 settings.

Criterion, fixed before the grid was run: the setting is chosen by the mean over VL0, the
held-out families and VL1 (canonical pairs) of each set's mean per-sequence F1 (ties: the
earlier in grid order, b = 0 first). It passes only if the chosen setting has b > 0 and
mean F1 > the b = 0 row's (the shipped decoding, about 0.634), VL0 >= 0.613, families >= 0.559,
and the predicted/reference pair ratio pooled over the validation records of >= 200 nt (VL0 +
families + VL1) is nearer 1.0 (smaller |log ratio|) than the shipped decoding's. TR1 is reported
as a check, never used for the choice.

    python experiments/structure_cpu/density_by_length.py resm/models/structure_default.pt --grid \
        --config configs/finetune/structure_mix.yaml \
        --out experiments/results/structure_density_not_shipped/length_shift_cpu.md \
        model.init=null model.arch=small data.workers=1 data.bpp_cache=/work/density_cache \
        'data.val_sets.tr1="{data_dir}/ss/pdb/TR1.tsv"'
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
from dataclasses import replace
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling experiment scripts
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's resm, not an installed one

from validation_cache import cached_sets

from resm.backbone.load import safe_load
from resm.structure.decode import AUTO_GAMMAS, Decoding, add_pseudoknots, blend, decode_sparse, mea_pairs
from resm.structure.metrics import evaluate, f1_score, pseudo_expected_f1
from resm.utils.io import atomic_write_text

EDGES = (0, 50, 100, 200, 400, 10**9)
BINS = ("<50", "50-99", "100-199", "200-399", ">=400")
SET_NAMES = {"val": "VL0", "family": "families", "vl1": "VL1", "tr1": "TR1 (check)"}
CHOICE_SETS = ("val", "family", "vl1")
L0S = (100, 150, 200)
BS = (0.25, 0.5, 0.75, 1.0)
GRID = [(0, 0.0)] + [(L0, b) for L0 in L0S for b in BS]
BAR = {"val": 0.613, "family": 0.559}
LONG = 200  # the records whose pooled pred/ref must move towards 1.0


def length_bin(L: int) -> int:
    return int(np.searchsorted(EDGES, L, side="right") - 1)


def auto_decode(seq: str, i, j, p, gammas) -> tuple[np.ndarray, int]:
    """``mea_auto``'s structure and the index of the gamma it takes (same rule: the largest
    pseudo-expected F1, ties to the earlier gamma)."""
    best, best_f, k_best = None, -1.0, 0
    for k, g in enumerate(gammas):
        pairs = mea_pairs(seq, i, j, p, g)
        f = pseudo_expected_f1(pairs, i, j, p)
        if f > best_f + 1e-12:
            best, best_f, k_best = pairs, f, k
    return best, k_best


def model_predictions(recs, d: Decoding) -> tuple[list[np.ndarray], list[float]]:
    """The stored decoding's structure of every record and the gamma it used (the decoding has
    no length shift: this is the measurement's, not the grid's)."""
    preds, gammas = [], []
    for r in recs:
        p = blend(r["model_p"], r["prior_p"], d.prior_weight)
        if d.auto_gamma:
            pairs, k = auto_decode(r["seq"], r["i"], r["j"], p, AUTO_GAMMAS)
            g = AUTO_GAMMAS[k]
        else:
            pairs, g = mea_pairs(r["seq"], r["i"], r["j"], p, d.gamma), d.gamma
        if d.pseudoknot_threshold is not None:
            pairs = add_pseudoknots(pairs, r["i"], r["j"], p, d.pseudoknot_threshold)
        preds.append(pairs)
        gammas.append(g)
    return preds, gammas


def bin_rows(recs: list[dict], preds: list, gammas: list[float], d: Decoding) -> list[dict]:
    """One dict per bin (and a last one for the whole set)."""
    groups = [[k for k, r in enumerate(recs) if length_bin(len(r["seq"])) == b] for b in range(len(BINS))]
    groups.append(list(range(len(recs))))
    rows = []
    for label, ks in zip((*BINS, "all"), groups):
        row = {"bin": label, "n": len(ks)}
        if ks:
            refs = [recs[k]["ref"] for k in ks]
            row["ref_pairs"] = int(sum(len(x.ij) for x in refs))
            row["model"] = evaluate([preds[k] for k in ks], refs)
            row["EternaFold"] = evaluate([recs[k]["eterna"] for k in ks], refs)
            row["RNAfold"] = evaluate([recs[k]["mfe"] for k in ks], refs)
            head = sum(float(recs[k]["model_p"].sum()) for k in ks)
            mixed = sum(float(blend(recs[k]["model_p"], recs[k]["prior_p"], d.prior_weight).sum()) for k in ks)
            row["head_cal"] = head / row["ref_pairs"] if row["ref_pairs"] else float("nan")
            row["blend_cal"] = mixed / row["ref_pairs"] if row["ref_pairs"] else float("nan")
            row["gamma"] = float(np.mean([gammas[k] for k in ks]))
        rows.append(row)
    return rows


def table(name: str, rows: list[dict]) -> list[str]:
    methods = ("model", "EternaFold", "RNAfold")
    lines = [
        f"### {name}",
        "",
        "| length (nt) | n | ref pairs | F1: model / EternaFold / RNAfold | precision | recall | pred/ref "
        "| head Σp / ref | decoded Σp / ref | mean gamma |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if not r["n"]:
            lines.append(f"| {r['bin']} | 0 | – | – | – | – | – | – | – | – |")
            continue

        def cell(key: str, fmt: str, r=r) -> str:
            return " / ".join(format(r[m][key], fmt) for m in methods)

        lines.append(
            f"| {r['bin']} | {r['n']} | {r['ref_pairs']} | {cell('f1_mean', '.3f')} | {cell('precision_mean', '.3f')} "
            f"| {cell('recall_mean', '.3f')} | {cell('pair_ratio', '.2f')} | {r['head_cal']:.2f} "
            f"| {r['blend_cal']:.2f} | {r['gamma']:.2f} |"
        )
    return lines + [""]


_SETS: dict[str, list] = {}  # the cached validation sets, inherited by the forked workers
_STORED: list[Decoding] = []


def _score(setting: tuple[int, float]) -> dict:
    """One grid setting's metrics per set, its per-bin pred/ref and the >= LONG nt pooled ratio."""
    L0, b = setting
    out: dict = {"sets": {}, "bins": {}, "long": [0, 0]}
    for s, recs in _SETS.items():
        # through the library's decoding (Decoding.length_shift), b = 0 being the stored decoding
        d = replace(_STORED[0], length_shift=b, length_ref=L0) if b else _STORED[0]
        preds = [decode_sparse(r["seq"], r["i"], r["j"], r["model_p"], d, r["prior_p"]) for r in recs]
        refs = [r["ref"] for r in recs]
        out["sets"][s] = evaluate(preds, refs)
        out["sets"][s]["f1_each"] = [f1_score(x, y) for x, y in zip(preds, refs)]
        out["bins"][s] = {}
        for k, label in enumerate(BINS):
            ks = [n for n, r in enumerate(recs) if length_bin(len(r["seq"])) == k]
            if ks:
                m = evaluate([preds[n] for n in ks], [refs[n] for n in ks])
                out["bins"][s][label] = [m["n_pred"], m["n_true"], m["f1_mean"]]
        if s in CHOICE_SETS:
            for n, r in enumerate(recs):
                if len(r["seq"]) >= LONG:
                    out["long"][0] += int(np.count_nonzero(preds[n] > np.arange(len(preds[n]))))
                    out["long"][1] += len(r["ref"].ij)
    return out


def grid_report(sets: dict, stored: Decoding, workers: int, scores_path: str | None, fixed=None) -> list[str]:
    """Score the grid and render it, with the verdict under the docstring's criterion; with
    ``fixed`` (an ``(L0, b)`` of the grid) that setting is compared with the shipped decoding
    instead, and no choice is made (a check on records the choice did not see)."""
    _SETS.update(sets)
    _STORED.append(stored)
    with Pool(workers) as pool:
        res = list(tqdm(pool.imap(_score, GRID), total=len(GRID), desc="length-shift settings"))
    scores = dict(zip(GRID, res))
    if scores_path:
        atomic_write_text(scores_path, json.dumps([[list(k), v] for k, v in scores.items()]))
    names = [s for s in CHOICE_SETS if s in sets]

    def mean(k):
        return float(np.mean([scores[k]["sets"][s]["f1_mean"] for s in names]))

    def long_ratio(k):
        n_pred, n_true = scores[k]["long"]
        return n_pred / n_true if n_true else float("nan")

    top = max(mean(k) for k in GRID)
    chosen = fixed if fixed is not None else next(k for k in GRID if mean(k) == top)
    base = GRID[0]
    c = scores[chosen]["sets"]
    checks = {
        "b > 0": chosen[1] > 0,
        f"mean F1 {mean(chosen):.4f} > shipped {mean(base):.4f}": mean(chosen) > mean(base),
        f"VL0 {c['val']['f1_mean']:.4f} >= {BAR['val']}": c["val"]["f1_mean"] >= BAR["val"],
        f"families {c['family']['f1_mean']:.4f} >= {BAR['family']}": c["family"]["f1_mean"] >= BAR["family"],
        f">= {LONG} nt pooled pred/ref {long_ratio(chosen):.3f} nearer 1 than shipped {long_ratio(base):.3f}": abs(
            np.log(long_ratio(chosen))
        )
        < abs(np.log(long_ratio(base))),
    }
    verdict = all(checks.values())

    def changes(s):
        d = np.array(scores[chosen]["sets"][s]["f1_each"]) - np.array(scores[base]["sets"][s]["f1_each"])
        return f"{int((d > 1e-12).sum())} / {int((d < -1e-12).sum())} / {int((np.abs(d) <= 1e-12).sum())}"

    allsets = list(sets)
    head = "| L0 | b | " + " | ".join(f"{SET_NAMES.get(s, s)} F1 (pred/ref)" for s in allsets)
    lines = [
        "## Length-aware log-odds shift: the grid",
        "",
        "logit(p') = logit(p) + b * log2(L / L0) for L > L0, on the decoded probabilities (per-sequence gamma, "
        "prior weight 0.1, pseudoknots above 0.5 otherwise unchanged); b = 0 is the shipped decoding. Mean: over "
        f"VL0, families and VL1; last column: pred/ref pooled over their records of >= {LONG} nt.",
        "",
        head + f" | mean F1 | >= {LONG} nt pred/ref |",
        "|" + "---|" * (4 + len(allsets)),
    ]
    for k in GRID:
        cells = [f"{scores[k]['sets'][s]['f1_mean']:.4f} ({scores[k]['sets'][s]['pair_ratio']:.2f})" for s in allsets]
        label = "– (shipped)" if k[1] == 0 else str(k[0])
        lines.append(f"| {label} | {k[1]:g} | " + " | ".join(cells) + f" | {mean(k):.4f} | {long_ratio(k):.3f} |")
    said = (
        f"Chosen by the rule: L0 {chosen[0]}, b {chosen[1]:g}. Verdict under the fixed criterion: "
        f"**{'passes' if verdict else 'does not pass'}** ("
        if fixed is None
        else f"Check of the setting L0 {chosen[0]}, b {chosen[1]:g} (given, not chosen here; no verdict), the "
        "criterion's tests on these records for information ("
    )
    lines += [
        "",
        said + "; ".join(f"{t}: {'yes' if ok else 'no'}" for t, ok in checks.items()) + ").",
        "",
        "Descriptive, not part of the criterion (added after the first run of the grid): records whose F1 "
        "rises / falls / stays from the shipped decoding to the chosen setting, and the ±1 F1: "
        + "; ".join(
            f"{SET_NAMES.get(s, s)} {changes(s)}, ±1 {scores[base]['sets'][s]['f1_shift_mean']:.4f} -> "
            f"{scores[chosen]['sets'][s]['f1_shift_mean']:.4f}"
            for s in allsets
        )
        + ".",
        "",
        "Per-bin pred/ref (F1), shipped -> chosen setting:",
        "",
        "| set | " + " | ".join(BINS) + " |",
        "|---|" + "---|" * len(BINS),
    ]
    for s in allsets:
        cells = []
        for label in BINS:
            a, z = scores[base]["bins"][s].get(label), scores[chosen]["bins"][s].get(label)
            if a is None:
                cells.append("–")
                continue
            cells.append(f"{a[0] / a[1]:.2f} ({a[2]:.3f}) -> {z[0] / z[1]:.2f} ({z[2]:.3f})")
        lines.append(f"| {SET_NAMES.get(s, s)} | " + " | ".join(cells) + " |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a structure_model.pt with the pair head")
    ap.add_argument("--config", required=True, help="a finetune config naming the validation sets")
    ap.add_argument("--out", default=None, help="markdown table")
    ap.add_argument("--grid", action="store_true", help="the length-aware shift's grid and verdict (docstring)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scores", default=None, help="with --grid: every setting's metrics (JSON)")
    ap.add_argument(
        "--fixed",
        nargs=2,
        type=float,
        metavar=("L0", "B"),
        default=None,
        help="with --grid: compare this setting with the shipped decoding, no choice (a check)",
    )
    ap.add_argument(
        "--fresh",
        action="store_true",
        help="drop the records (by sequence) of the same command without its data.max_val override: "
        "those the choice was made on",
    )
    ap.add_argument("overrides", nargs="*", help="key=value config overrides")
    a = ap.parse_intermixed_args()
    stored = Decoding.from_dict(safe_load(a.model).get("decoding") or {})
    sets = cached_sets(a.model, a.config, a.overrides)
    if a.fresh:
        seen_sets = cached_sets(a.model, a.config, [o for o in a.overrides if not o.startswith("data.max_val=")])
        seen = {r["seq"] for recs in seen_sets.values() for r in recs}
        sets = {s: [r for r in recs if r["seq"] not in seen] for s, recs in sets.items()}
        sets = {s: recs for s, recs in sets.items() if recs}
    fixed = None if a.fixed is None else (int(a.fixed[0]), a.fixed[1])
    if fixed is not None and fixed not in GRID:
        raise SystemExit(f"--fixed {a.fixed[0]:g} {a.fixed[1]:g}: not a setting of the grid")
    lines = [
        "Command: `python " + " ".join(shlex.quote(x) for x in sys.argv) + "`  ",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Model decoding (stored in the "
        f"file): {stored.describe()}. EternaFold: LinearPartition MEA (beam 100); RNAfold: MFE.  ",
        "Sets: " + ", ".join(f"{SET_NAMES.get(s, s)} ({len(recs)})" for s, recs in sets.items()) + "; VL1 and TR1 "
        "over their canonical pairs; TR1 is a check set (the head never trained on it), never used for a choice.  ",
        "Cells: mean per-sequence F1, precision and recall, and predicted/reference pairs summed over the bin, as "
        "model / EternaFold / RNAfold; head Σp / ref: the head's probabilities summed over its candidates over the "
        "reference pairs (decoded: the blend with the prior the decoding reads); mean gamma: the per-sequence "
        "choice's gamma.",
        "",
    ]
    if a.grid:
        lines += grid_report(sets, stored, a.workers, a.scores, fixed)
    else:
        for s, recs in sets.items():
            preds, gammas = model_predictions(tqdm(recs, desc=f"decoding {s}"), stored)
            lines += table(SET_NAMES.get(s, s), bin_rows(recs, preds, gammas, stored))
    text = "\n".join(lines)
    print(text)
    if a.out:
        atomic_write_text(a.out, text)


if __name__ == "__main__":
    main()
