"""Where the shipped model's missing pairs are: the reference pairs of each validation set broken
into categories, with the recall of the model (its stored decoding), EternaFold (MEA) and RNAfold
(MFE) in each and each category's share of the misses; where the model's missed pairs fall in
its own probabilities; and every method's predicted/reference pair ratio by sequence length.

    python experiments/structure_cpu/density_diagnosis.py resm/models/structure_default.pt \\
        --config configs/finetune/structure_mix.yaml \\
        --out experiments/results/structure_density_not_shipped/diagnosis_cpu.md \\
        model.init=null model.arch=small data.workers=1 data.bpp_cache=/work/density_cache

Validation data only: the sets ``decoding_density.py`` builds from the config (``data.val``,
the held-out families, ``data.val_sets``; VL1 over its canonical pairs). The predictions and the
folders' structures are computed once and cached under ``runs/mixdiag/`` (validation_cache.py).

Categories of a reference pair (i, j), each pair counted in every category it belongs to: lone
(neither (i-1, j+1) nor (i+1, j-1) is a reference pair; "also among all pairs": nor a non-
canonical pair of VL1's full table), helix-terminal (exactly one of them is), helix-interior
(both are); pseudoknotted (crosses another reference pair; "helix pair": a stacked pair crossing
another stacked pair, so that helices crossed only by lone tertiary pairs and the lone pairs
themselves do not count); GU; non-canonical (not AU, GC, GU: bpRNA's annotation holds some, VL1
is scored over its canonical pairs; no method here can predict them); multiplet (i or j sits in
more than one pair of VL1's full table); short (j - i <= 20), mid, long (j - i > 200). Recall is
pooled over the pairs of a category; a category's share of the misses is its missed pairs over
all the missed pairs of the set (the shares of lone/terminal/interior add up to 1, the others
overlap).
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling experiment scripts
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's resm, not an installed one

from validation_cache import cached_sets, pair_arrays

from resm.backbone.load import safe_load
from resm.config import load_config
from resm.nucleotides import PAIR_TYPE, lenient_codes
from resm.structure.decode import Decoding, decode_sparse
from resm.structure.metrics import evaluate
from resm.structure.pairsets import read_pair_table

METHODS = ("model", "EternaFold", "RNAfold")
CATEGORIES = (
    "all",
    "lone",
    "lone, also among all pairs",
    "lone and pseudoknotted",
    "helix-terminal",
    "helix-interior",
    "pseudoknotted",
    "pseudoknotted helix pair",
    "GU",
    "non-canonical",
    "multiplet",
    "short (j-i<=20)",
    "mid (20<j-i<=200)",
    "long (j-i>200)",
)
LENGTH_BINS = ((0, 60), (61, 100), (101, 200), (201, 400), (401, 10**9))
PROB_BINS = ("not a candidate", "<0.1", "0.1-0.3", "0.3-0.5", ">0.5")
SET_NAMES = {"val": "VL0", "family": "families", "vl1": "VL1"}


def pair_keys(pred) -> set[tuple[int, int]]:
    _, i, j = pair_arrays(pred)
    return set(zip(i.tolist(), j.tolist()))


def categorise(seq: str, ref_ij: np.ndarray, multi: np.ndarray, full_ij: np.ndarray | None) -> dict[str, np.ndarray]:
    """One boolean mask over the reference pairs per category (``full_ij``: every pair of the
    record's full table, non-canonical ones included, when it has one)."""
    i, j = ref_ij[:, 0], ref_ij[:, 1]
    n = len(i)
    keys = set(zip(i.tolist(), j.tolist()))
    every = keys if full_ij is None else set(zip(full_ij[:, 0].tolist(), full_ij[:, 1].tolist()))
    alone = np.array(
        [(a - 1, b + 1) not in every and (a + 1, b - 1) not in every for a, b in zip(i.tolist(), j.tolist())],
        dtype=bool,
    )
    outer = np.array([(a - 1, b + 1) in keys for a, b in zip(i.tolist(), j.tolist())], dtype=bool)
    inner = np.array([(a + 1, b - 1) in keys for a, b in zip(i.tolist(), j.tolist())], dtype=bool)
    stacked = outer.astype(int) + inner.astype(int)
    if n:
        a, b = i[:, None], j[:, None]
        cross = ((a < i) & (i < b) & (b < j)) | ((i < a) & (a < j) & (j < b))
        pk = cross.any(1)
        pk_stacked = (stacked > 0) & (cross & (stacked > 0)[None, :]).any(1)
    else:
        pk = pk_stacked = np.zeros(0, bool)
    codes = lenient_codes(seq)
    t = PAIR_TYPE[codes[i], codes[j]] if n else np.zeros(0, int)
    gu = np.array(
        [
            {seq[a].upper().replace("T", "U"), seq[b].upper().replace("T", "U")} == {"G", "U"}
            for a, b in zip(i.tolist(), j.tolist())
        ],
        dtype=bool,
    )
    m = np.zeros(len(seq), bool)
    m[multi] = True
    span = j - i
    return {
        "all": np.ones(n, bool),
        "lone": stacked == 0,
        "lone, also among all pairs": alone,
        "lone and pseudoknotted": (stacked == 0) & pk,
        "helix-terminal": stacked == 1,
        "helix-interior": stacked == 2,
        "pseudoknotted": pk,
        "pseudoknotted helix pair": pk_stacked,
        "GU": gu,
        "non-canonical": t < 0,
        "multiplet": m[i] | m[j] if n else np.zeros(0, bool),
        "short (j-i<=20)": span <= 20,
        "mid (20<j-i<=200)": (span > 20) & (span <= 200),
        "long (j-i>200)": span > 200,
    }


PRED_CATEGORIES = (
    "all",
    "lone",
    "in a stem of 2-3 pairs",
    "in a stem of >= 4 pairs, its end",
    "in a stem of >= 4 pairs, inside",
    "GU",
    "short (j-i<=20)",
    "mid (20<j-i<=200)",
    "long (j-i>200)",
)


def predicted_categories(seq: str, keys: set) -> dict[tuple[int, int], list[str]]:
    """The categories of each pair of a predicted structure (its own stems, not the reference's)."""
    out = {}
    for a, b in keys:
        up = 0
        while (a - up - 1, b + up + 1) in keys:
            up += 1
        down = 0
        while (a + down + 1, b - down - 1) in keys:
            down += 1
        stem = up + down + 1
        cats = ["all"]
        if stem == 1:
            cats.append("lone")
        elif stem <= 3:
            cats.append("in a stem of 2-3 pairs")
        else:
            cats.append("in a stem of >= 4 pairs, " + ("its end" if min(up, down) == 0 else "inside"))
        if {seq[a].upper().replace("T", "U"), seq[b].upper().replace("T", "U")} == {"G", "U"}:
            cats.append("GU")
        span = b - a
        cats.append("short (j-i<=20)" if span <= 20 else "mid (20<j-i<=200)" if span <= 200 else "long (j-i>200)")
        out[(a, b)] = cats
    return out


def head_bin(p: float | None) -> str:
    if p is None:
        return PROB_BINS[0]
    return PROB_BINS[1 + int(p >= 0.1) + int(p >= 0.3) + int(p >= 0.5)]


def length_bin(L: int) -> str:
    for lo, hi in LENGTH_BINS:
        if lo <= L <= hi:
            return f"{lo}-{hi}" if hi < 10**9 else f">{lo - 1}"
    raise AssertionError(L)


def analyse(recs: list[dict], decoding: Decoding, full: dict | None = None) -> dict:
    """Per-category hit/total counts of each method, the model's missed pairs by head and prior
    probability, and pair counts by length bin."""
    cat = {m: {c: [0, 0] for c in CATEGORIES} for m in METHODS}  # [hits, total]
    prob = {k: {b: [0, 0] for b in PROB_BINS} for k in ("head", "prior", "head, lone pairs only")}
    lengths = {m: {} for m in (*METHODS, "reference", "model hits")}
    preds = {m: [] for m in METHODS}
    # EternaFold's pairs, by category in its own structure: [dropped by the model, of them true,
    # kept by the model, of them true]
    eterna = {c: [0, 0, 0, 0] for c in PRED_CATEGORIES}
    for r in recs:
        pred = {
            "model": decode_sparse(r["seq"], r["i"], r["j"], r["model_p"], decoding, r["prior_p"]),
            "EternaFold": r["eterna"],
            "RNAfold": r["mfe"],
        }
        f = (full or {}).get(r["seq"])
        masks = categorise(r["seq"], r["ref"].ij, r["multi"], None if f is None else f.ij)
        ref = [tuple(x) for x in r["ref"].ij.tolist()]
        lb = length_bin(len(r["seq"]))
        lengths["reference"][lb] = lengths["reference"].get(lb, 0) + len(ref)
        mk, rk = pair_keys(pred["model"]), set(ref)
        for pair, cats in predicted_categories(r["seq"], pair_keys(pred["EternaFold"])).items():
            kept, true = pair in mk, pair in rk
            for c in cats:
                eterna[c][2 * kept] += 1
                eterna[c][2 * kept + 1] += int(true)
        for m in METHODS:
            preds[m].append(pred[m])
            keys = pair_keys(pred[m])
            lengths[m][lb] = lengths[m].get(lb, 0) + len(keys)
            hit = np.array([k in keys for k in ref], dtype=bool)
            for c in CATEGORIES:
                cat[m][c][0] += int((hit & masks[c]).sum())
                cat[m][c][1] += int(masks[c].sum())
            if m == "model":
                lengths["model hits"][lb] = lengths["model hits"].get(lb, 0) + int(hit.sum())
                where = {(a, b): k for k, (a, b) in enumerate(zip(r["i"].tolist(), r["j"].tolist()))}
                for k, (a, b) in enumerate(ref):
                    c = where.get((a, b))
                    for key, arr in (("head", r["model_p"]), ("prior", r["prior_p"])):
                        b_ = head_bin(None if c is None else float(arr[c]))
                        prob[key][b_][0] += int(hit[k])
                        prob[key][b_][1] += 1
                        if key == "head" and masks["lone"][k]:
                            prob["head, lone pairs only"][b_][0] += int(hit[k])
                            prob["head, lone pairs only"][b_][1] += 1
    scores = {m: evaluate(preds[m], [r["ref"] for r in recs]) for m in METHODS}
    return {"cat": cat, "prob": prob, "lengths": lengths, "scores": scores, "n": len(recs), "eterna": eterna}


def _rec(h: int, n: int) -> str:
    return f"{h / n:.2f}" if n else "–"


def category_table(res: dict) -> list[str]:
    cat = res["cat"]
    miss = {m: cat[m]["all"][1] - cat[m]["all"][0] for m in METHODS}
    lines = [
        "| category | reference pairs (share) | recall: model / EternaFold / RNAfold | model − EternaFold "
        "| share of the misses: model / EternaFold / RNAfold |",
        "|---|---|---|---|---|",
    ]
    n_all = cat["model"]["all"][1]
    for c in CATEGORIES:
        n = cat["model"][c][1]
        if c not in ("all",) and n == 0:
            continue
        rec = " / ".join(_rec(*cat[m][c]) for m in METHODS)
        diff = f"{(cat['model'][c][0] - cat['EternaFold'][c][0]) / n:+.2f}" if n else "–"
        share = " / ".join(f"{(cat[m][c][1] - cat[m][c][0]) / miss[m]:.2f}" if miss[m] else "–" for m in METHODS)
        lines.append(f"| {c} | {n} ({n / n_all:.2f}) | {rec} | {diff} | {share} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a structure_model.pt with the pair head (its stored decoding is used)")
    ap.add_argument("--config", required=True, help="a finetune config naming the validation sets")
    ap.add_argument("--out", default=None, help="markdown table")
    ap.add_argument("overrides", nargs="*", help="key=value config overrides")
    a = ap.parse_intermixed_args()
    decoding = Decoding.from_dict(safe_load(a.model).get("decoding") or {})
    sets = cached_sets(a.model, a.config, a.overrides)
    tables = load_config(a.config, a.overrides)["data"].get("val_sets") or {}
    full = {s: {r.seq: r.pairs for r in read_pair_table(p)} for s, p in tables.items() if str(p).endswith(".tsv")}
    results = {s: analyse(recs, decoding, full.get(s)) for s, recs in sets.items()}
    names = list(results)
    lines = [
        "Command: `python " + " ".join(shlex.quote(x) for x in sys.argv) + "`  ",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Model decoding (stored in the "
        f"file): {decoding.describe()}. EternaFold: LinearPartition MEA (beam 100); RNAfold: MFE.  ",
        "Sets: "
        + ", ".join(
            f"{SET_NAMES.get(s, s)} ({results[s]['n']} records, {results[s]['cat']['model']['all'][1]} reference pairs)"
            for s in names
        )
        + "; VL1 over its canonical pairs.",
        "",
        "## Overall (mean per-sequence F1, precision, recall; predicted/reference pairs summed over the set)",
        "",
        "| set | method | F1 | precision | recall | pred/ref | pred / non-lone ref |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in names:
        for m in METHODS:
            r = results[s]["scores"][m]
            lines.append(
                f"| {SET_NAMES.get(s, s)} | {m} | {r['f1_mean']:.3f} | {r['precision_mean']:.3f} | "
                f"{r['recall_mean']:.3f} | {r['pair_ratio']:.2f} | "
                f"{r['n_pred'] / (r['n_true'] - results[s]['cat'][m]['lone'][1]):.2f} |"
            )
    lines += [
        "",
        "## Recall by category of the reference pair",
        "",
        "Recall pooled over the category's reference pairs; model − EternaFold: the difference of those recalls; "
        "share of the misses: the category's missed pairs over all the method's missed pairs of the set.",
        "",
    ]
    for s in names:
        lines += [f"### {SET_NAMES.get(s, s)}", "", *category_table(results[s]), ""]
    lines += [
        "## EternaFold's pairs that the model drops",
        "",
        "Each pair of EternaFold's MEA structure, by its category in that structure (stems are EternaFold's, "
        "so the categories are visible at prediction time): how many the model drops (does not predict) and how many "
        "of those are reference pairs (their precision), against the pairs it keeps. Cells: dropped n (precision) "
        "· kept n (precision).",
        "",
        "| EternaFold pair | " + " | ".join(SET_NAMES.get(s, s) for s in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for c in PRED_CATEGORIES:
        cells = []
        for s in names:
            d, dt, k, kt = results[s]["eterna"][c]
            cells.append(f"{d} ({_rec(dt, d)}) · {k} ({_rec(kt, k)})")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## The model's reference pairs by its own probability of them",
        "",
        "Head probability (the pair head's sigmoid, before blending with the prior) and EternaFold prior "
        "probability of each reference pair; 'not a candidate': the pair is not among the head's "
        "candidates (EternaFold prior below 1e-4, or not canonical), so no decoding can predict it. "
        "Cells: reference pairs in the bin (share of all reference pairs) · recall · share of the model's misses.",
        "",
        "| set | probability | " + " | ".join(PROB_BINS) + " |",
        "|---|---|" + "---|" * len(PROB_BINS),
    ]
    for s in names:
        prob = results[s]["prob"]
        n_all = sum(v[1] for v in prob["head"].values())
        miss = sum(v[1] - v[0] for v in prob["head"].values())
        for key in ("head", "prior", "head, lone pairs only"):
            cells = [
                f"{n} ({n / n_all:.2f}) · {_rec(h, n)} · {(n - h) / miss:.2f}" if miss else f"{n}"
                for h, n in (prob[key][b] for b in PROB_BINS)
            ]
            lines.append(f"| {SET_NAMES.get(s, s)} | {key} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Predicted/reference pairs by sequence length (nt)",
        "",
        "Cells: pred/ref of the model / EternaFold / RNAfold (reference pairs in the bin); then the model's "
        "recall in the bin and the bin's share of the model's misses.",
        "",
        "| set | " + " | ".join(length_bin(hi if hi < 10**9 else lo + 1) for lo, hi in LENGTH_BINS) + " |",
        "|---|" + "---|" * len(LENGTH_BINS),
    ]
    for s in names:
        ln = results[s]["lengths"]
        cells, rec = [], []
        miss = sum(ln["reference"].values()) - sum(ln["model hits"].values())
        for lo, hi in LENGTH_BINS:
            b = length_bin(hi if hi < 10**9 else lo + 1)
            n, h = ln["reference"].get(b, 0), ln["model hits"].get(b, 0)
            cells.append(" / ".join(f"{ln[m].get(b, 0) / n:.2f}" for m in METHODS) + f" ({n})" if n else "–")
            rec.append(f"{h / n:.2f} · {(n - h) / miss:.2f}" if n and miss else "–")
        lines.append(f"| {SET_NAMES.get(s, s)}: pred/ref | " + " | ".join(cells) + " |")
        lines.append(f"| {SET_NAMES.get(s, s)}: model recall · share of its misses | " + " | ".join(rec) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        from resm.utils.io import atomic_write_text

        atomic_write_text(a.out, text)


if __name__ == "__main__":
    main()
