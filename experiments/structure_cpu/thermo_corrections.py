"""Learnt corrections inside the folding recursion (issue 26, item 5, measured alone): the pair
head's probabilities added to ViennaRNA's Turner energies as soft-constraint pseudo-energies,
then the structure decoded from the soft-constrained ensemble.

For each candidate pair (i, j) of the EternaFold prior, with ``p`` the head's probability
(optionally blended with the prior, ``(1 - w) * head + w * prior`` as :class:`Decoding`'s prior
weight), the folding gets ``fc.sc_add_bp(i, j, e)`` with

* ``logit``: ``e = -s * log(p / (1 - p))`` (p clipped to [1e-4, 1 - 1e-4]): pairs the head
  believes (p > 0.5) are favoured, the others penalised; ``s = kT`` (0.616 kcal/mol at 37 C)
  multiplies each structure's Boltzmann weight by the product of its pairs' odds;
* ``log``: ``e = -s * log(p / q)`` with q = 0.1 (so only pairs below 0.1 are penalised);

and every pair the head never lists (not a candidate) gets ``+penalty`` kcal/mol (0: left to
the Turner model alone). Decoders, from one fold compound per setting: the MFE structure, and
the library's MEA (:func:`resm.structure.decode.mea_pairs`, gamma 1 / 2 / 4, or per sequence:
:func:`mea_auto`) on the soft-constrained partition function's pair probabilities (canonical
pairs above 1e-3). References in the same run: plain RNAfold (MFE, and MEA gamma 1 on its own
partition function with the library's MEA), and the shipped model's own decodings (the one
stored in the file, and the one chosen on VL0 + families + VL1 in
``structure_density_not_shipped/decoding_shipped_cpu.md``).

Criterion, fixed before any run: the candidate is the grid setting of largest mean F1 over
VL0 + families + VL1 (canonical pairs); it passes when that mean F1 is > 0.634 (the shipped
model's under the same rule, reproduced by the reference rows), VL0 F1 >= 0.613, families F1
>= 0.559 and VL1 pred/ref >= 0.80. Nothing is shipped otherwise.

    python experiments/structure_cpu/thermo_corrections.py resm/models/structure_default.pt \\
        --config configs/finetune/structure_mix.yaml --cache runs/thermo_probs.npz \\
        --out experiments/results/structure_density_not_shipped/thermo_cpu.md \\
        model.init=null model.arch=small data.workers=1 data.bpp_cache=/work/density_cache

Validation data only (the config's ``data.val``, held-out families and ``data.val_sets``).
"""

from __future__ import annotations

import argparse
import itertools
import json
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

from decoding_density import describe, score_cells, setting_scores  # noqa: E402

from resm.backbone.load import safe_load  # noqa: E402
from resm.nucleotides import normalise_lenient  # noqa: E402
from resm.structure.decode import (  # noqa: E402
    Decoding,
    blend,
    mea_auto,
    mea_pairs,
    turner_constraints,
    turner_ensemble,
)
from resm.structure.metrics import evaluate  # noqa: E402
from resm.structure.pairsets import PairSet  # noqa: E402
from resm.utils.io import atomic_write_text  # noqa: E402

# the grid, fixed before the run (penalty 1 dropped before any score was seen: 49 settings would
# have taken ~1 h of the shared machine)
FORMS = ("logit", "log")
SCALES = (0.3, 0.6, 1.2, 2.4)
WEIGHTS = (0.0, 0.3)
PENALTIES = (0.0, 5.0)
GAMMAS = (1.0, 2.0, 4.0)
DECODERS = ("mfe", *(f"mea{g:g}" for g in GAMMAS), "mea-auto")
SHIPPED_RULE = Decoding(prior_weight=0.1, pseudoknot_threshold=0.3, auto_gamma=True)  # decoding_shipped_cpu.md
BAR = {"mean": 0.634, "val": 0.613, "family": 0.559, "vl1_ratio": 0.80}


# ----------------------------------------------------------------------------- cached probabilities
def save_cache(path: str, sets: dict[str, list]) -> None:
    """The validation predictions ``{set: [(seq, i, j, model_p, prior_p, true_pairs)]}`` as one
    npz of plain arrays (no pickles): per set the sequences, candidate counts and the
    concatenated candidates, probabilities and partner arrays."""
    arrays: dict[str, np.ndarray] = {"sets": np.array(list(sets))}
    for s, items in sets.items():
        arrays[f"{s}/seq"] = np.array([it[0] for it in items])
        arrays[f"{s}/n"] = np.array([len(it[1]) for it in items], dtype=np.int64)
        for k, name in ((1, "i"), (2, "j"), (3, "p"), (4, "q")):
            arrays[f"{s}/{name}"] = np.concatenate([np.asarray(it[k]) for it in items])
        ij = [truth_pairs(it[5]) for it in items]
        arrays[f"{s}/npairs"] = np.array([len(x) for x in ij], dtype=np.int64)
        arrays[f"{s}/true"] = np.concatenate([np.zeros((0, 2), np.int64), *ij])
    tmp = f"{path}.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def truth_pairs(t) -> np.ndarray:
    """The (n, 2) i < j pairs of a reference (partner array or :class:`PairSet`)."""
    if isinstance(t, PairSet):
        return t.ij
    t = np.asarray(t, dtype=np.int64)
    i = np.flatnonzero(t > np.arange(len(t)))
    return np.stack([i, t[i]], axis=1)


def load_cache(path: str) -> dict[str, list]:
    z = np.load(path, allow_pickle=False)
    out: dict[str, list] = {}
    for s in z["sets"].tolist():
        seqs, n = z[f"{s}/seq"].tolist(), z[f"{s}/n"]
        cut = np.concatenate([[0], np.cumsum(n)])
        tcut = np.concatenate([[0], np.cumsum(z[f"{s}/npairs"])])
        i, j, p, q, true = (z[f"{s}/{k}"] for k in ("i", "j", "p", "q", "true"))
        out[s] = [
            (
                seqs[k],
                i[cut[k] : cut[k + 1]],
                j[cut[k] : cut[k + 1]],
                p[cut[k] : cut[k + 1]],
                q[cut[k] : cut[k + 1]],
                PairSet(true[tcut[k] : tcut[k + 1]], len(seqs[k])),
            )
            for k in range(len(seqs))
        ]
    return out


def validation_sets(model: str, config: str, overrides: list[str]) -> dict[str, list]:
    """The model's validation predictions, exactly as ``decoding_density.py`` gets them."""
    from resm.config import load_config
    from resm.structure.model import model_from_payload
    from resm.tasks.structure_task import StructureTask

    task = StructureTask(load_config(config, overrides), train_priors=False)
    net, _ = model_from_payload(safe_load(model))
    return task.kind.validation_predictions(net, "cpu")


# ----------------------------------------------------------------------------- folding
# the soft constraints and the constrained ensemble live in the library (resm fold --turner-scale)
def fold(seq: str, sc: np.ndarray | None) -> dict[str, np.ndarray]:
    """Every decoder's structure of ``seq`` under the soft constraints ``sc`` ((L+1, L+1),
    1-based pseudo-energies; None: plain Turner)."""
    s = normalise_lenient(seq)
    mfe, (i, j, p) = turner_ensemble(s, sc)
    out = {"mfe": mfe}
    for g in GAMMAS:
        out[f"mea{g:g}"] = mea_pairs(s, i, j, p, g)
    out["mea-auto"] = mea_auto(s, i, j, p)
    return out


def constraints(item: tuple, form: str, scale: float, weight: float, penalty: float) -> np.ndarray:
    seq, i, j, mp, pp = item[:5]
    return turner_constraints(len(seq), i, j, blend(mp, pp, weight), scale, penalty, form)


def settings() -> list[tuple]:
    """``(form, scale, weight, penalty)`` of the grid; ``None`` is plain RNAfold."""
    return [None, *itertools.product(FORMS, SCALES, WEIGHTS, PENALTIES)]


def fold_record(item: tuple) -> list[dict[str, np.ndarray]]:
    """One record's structures, one dict of decoders per :func:`settings` entry."""
    return [fold(item[0], None if st is None else constraints(item, *st)) for st in settings()]


def label(st: tuple | None, dec: str) -> str:
    if st is None:
        return f"RNAfold, {dec}"
    form, scale, weight, penalty = st
    return f"{form} s={scale:g} w={weight:g} pen={penalty:g}, {dec}"


# ----------------------------------------------------------------------------- report
def mean_f1(m: dict[str, dict]) -> float:
    return float(np.mean([v["f1_mean"] for v in m.values()]))


def passes(m: dict[str, dict]) -> bool:
    return (
        mean_f1(m) > BAR["mean"]
        and m["val"]["f1_mean"] >= BAR["val"]
        and m["family"]["f1_mean"] >= BAR["family"]
        and m["vl1"]["pair_ratio"] >= BAR["vl1_ratio"]
    )


def score(a) -> tuple[dict, dict]:
    """Every row's metrics per set, and the run's facts (the table's header lines)."""
    if not Path(a.cache).exists():
        save_cache(a.cache, validation_sets(a.model, a.config, a.overrides))
    full = load_cache(a.cache)
    sets = {s: [it for it in items if len(it[0]) <= a.max_length] for s, items in full.items()}
    for s, items in sets.items():
        if not items:
            raise SystemExit(f"{a.cache}: no record of set {s} is at most --max-length {a.max_length} nt")
    stored = Decoding.from_dict(safe_load(a.model).get("decoding") or {})

    rows: dict[str, dict[str, dict]] = {}
    for name, d in (
        ("shipped model, decoding stored in the file", stored),
        ("shipped model, chosen on VL0 + families + VL1", SHIPPED_RULE),
    ):
        key = ("auto" if d.auto_gamma else d.gamma, d.prior_weight, d.pseudoknot_threshold)
        rows[f"{name} ({describe(key)})"] = setting_scores(sets, d, (d.pseudoknot_threshold,))[key]

    t0 = time.time()
    flat = [(s, it) for s, items in sets.items() for it in items]
    order = sorted(range(len(flat)), key=lambda k: -len(flat[k][1][0]))  # longest first
    folded: list = [None] * len(flat)
    with Pool(a.workers) as pool:
        it = pool.imap(fold_record, [flat[k][1] for k in order])
        for k, res in zip(order, tqdm(it, total=len(order), desc="records")):
            folded[k] = res
    seconds = time.time() - t0
    for n, st in enumerate(settings()):
        for dec in DECODERS:
            rows[label(st, dec)] = {
                s: evaluate([folded[k][n][dec] for k in range(len(flat)) if flat[k][0] == s], [it[5] for it in items])
                for s, items in sets.items()
            }
    load = os.getloadavg()
    meta = {
        "command": "python " + " ".join(shlex.quote(x) for x in sys.argv),
        "run": f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {socket.gethostname()} "
        f"({os.cpu_count()} cores, shared), {a.workers} worker(s) of one thread; load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; folding {seconds / 60:.1f} min.",
        "sets": "Sets: "
        + ", ".join(
            f"{s} ({len(sets[s])}"
            + (f"; {len(full[s]) - len(sets[s])} over {a.max_length} nt skipped" if len(full[s]) > len(sets[s]) else "")
            + ")"
            for s in sets
        )
        + "; canonical pairs.",
    }
    return rows, meta


def table(rows: dict, labels: list[str], names: list[str]) -> list[str]:
    head = (
        "| row | " + " | ".join(f"{s}: F1 / ±1 | {s}: P / R | {s}: pred/ref" for s in names) + " | mean F1 | passes |"
    )
    lines = [head, "|" + "---|" * (3 + 3 * len(names))]
    for r in labels:
        if r not in rows:
            lines.append(f"| {r} |" + " |" * (2 + 3 * len(names)))
            continue
        m = rows[r]
        c = [x for s in names for x in score_cells(m[s])]
        lines.append(f"| {r} | " + " | ".join(c) + f" | {mean_f1(m):.3f} | {'yes' if passes(m) else 'no'} |")
    return lines


def render(rows: dict, meta: dict, top: int) -> str:
    names = list(next(iter(rows.values())))
    refs = [r for r in rows if r.startswith(("shipped", "RNAfold"))]
    grid = sorted((r for r in rows if r not in refs), key=lambda r: -mean_f1(rows[r]))
    best = grid[0]
    dense = [r for r in grid if rows[r]["vl1"]["pair_ratio"] >= BAR["vl1_ratio"]]
    show = list(dict.fromkeys(grid[:top] + dense[:3]))
    lines = [
        f"Command: `{meta['command']}`  ",
        meta["run"] + "  ",
        meta["sets"] + "  ",
        f"Grid ({len(grid)} settings): form {'/'.join(FORMS)}, scale {'/'.join(map(str, SCALES))} kcal/mol, "
        f"prior weight {'/'.join(map(str, WEIGHTS))}, non-candidate penalty {'/'.join(map(str, PENALTIES))} "
        f"kcal/mol, decoder {'/'.join(DECODERS)}.  ",
        f"Criterion (fixed before the run): the grid's best mean F1 must be > {BAR['mean']}, VL0 >= {BAR['val']}, "
        f"families >= {BAR['family']}, VL1 pred/ref >= {BAR['vl1_ratio']}. "
        f"**Candidate: {best} -> {'passes' if passes(rows[best]) else 'fails'}.**",
        "",
        f"References, then the grid's {top} best settings by mean F1 (and the best three with VL1 pred/ref >= "
        f"{BAR['vl1_ratio']}):",
        "",
        *table(rows, refs + ["**grid, by mean F1**"] + show, names),
        "",
        "The whole grid with the per-sequence gamma decoder (mea-auto), as listed:",
        "",
        *table(rows, [r for r in rows if r.endswith(", mea-auto") and r not in refs], names),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a structure_model.pt with the pair head")
    ap.add_argument("--config", required=True, help="a finetune config naming the validation sets")
    ap.add_argument("--cache", required=True, help="npz of the head's validation probabilities (made once)")
    ap.add_argument("--max-length", type=int, default=1000, help="longer records are skipped (every row)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--top", type=int, default=12, help="grid rows shown, by mean F1")
    ap.add_argument("--out", default=None, help="markdown table")
    ap.add_argument("--scores", default=None, help="every row's metrics per set and the run's facts (JSON)")
    ap.add_argument("--render", action="store_true", help="only write the table again from --scores (no folding)")
    ap.add_argument("overrides", nargs="*", help="key=value config overrides")
    a = ap.parse_intermixed_args()
    if a.render:
        if not a.scores:
            raise SystemExit("--render needs --scores")
        saved = json.loads(Path(a.scores).read_text())
        rows, meta = saved["rows"], saved["meta"]
    else:
        rows, meta = score(a)
        if a.scores:
            atomic_write_text(a.scores, json.dumps({"rows": rows, "meta": meta}))
    text = render(rows, meta, a.top)
    print(text)
    if a.out:
        atomic_write_text(a.out, text)


if __name__ == "__main__":
    main()
