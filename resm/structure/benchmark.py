"""``resm evaluate structure``: a structure model against RNAfold, same sequences, same run.

For each sequence of the chosen set, the model's pair probabilities are decoded at the
threshold stored in the model file (chosen on validation data when it was trained) and
RNAfold's MFE structure is computed; both are scored with :func:`resm.structure.metrics.evaluate`
(per-sequence mean and pooled, strict and ±1 shift). Time per sequence and the peak resident
memory of the process are recorded too.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from ..heads.structure import DEFAULT_TILE
from ..utils.io import atomic_write_text
from .datasets import FAMFOLD_SPLIT, load_dataset, read_split
from .decode import decode
from .folders import rnafold
from .io import Structure
from .metrics import evaluate
from .model import load_structure_model, predict_pairs

__all__ = ["evaluate_structure", "evaluate_famfold", "format_table", "write_table"]


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def evaluate_structure(model_path, dataset: str, data_dir, limit: Optional[int] = None, seed: int = 0,
                       tile: int = DEFAULT_TILE, progress: bool = True, bpp_cache=None) -> Dict[str, object]:
    if dataset == "archiveii-famfold":
        raise ValueError("archiveii-famfold has one model per fold: use evaluate_famfold")
    model, meta = load_structure_model(model_path)
    return _score(model, meta, load_dataset(dataset, data_dir, limit, seed), dataset, tile, progress,
                  bpp_cache=bpp_cache)


def evaluate_famfold(model_path: str, data_dir, folds: Optional[List[str]] = None, limit: Optional[int] = None,
                     seed: int = 0, tile: int = DEFAULT_TILE, progress: bool = True,
                     bpp_cache=None) -> List[Dict[str, object]]:
    """Family-wise cross-validation on ArchiveII (<= 512 nt): for each fold, the model trained
    without that family (``model_path`` with ``{fold}`` in it, e.g.
    ``runs/famfold/{fold}/structure_model.pt``) on the held-out family's test partition, with
    RNAfold on the same sequences. One result per fold, then a pooled row ("all folds": every
    test sequence once, each scored by its own fold's model)."""
    if "{fold}" not in str(model_path):
        raise ValueError("archiveii-famfold needs one model per fold: give --model with {fold} in the path")
    split = read_split(Path(data_dir) / FAMFOLD_SPLIT)
    names = folds or sorted(split)
    unknown = sorted(set(names) - set(split))
    if unknown:
        raise ValueError(f"unknown fold(s) {unknown}; known: {sorted(split)}")
    recs = load_dataset("archiveii-famfold", data_dir)
    results, pooled = [], {"pred": [], "fold": [], "true": [], "seconds_model": 0.0, "seconds_rnafold": 0.0, "per_seq": []}
    for name in names:
        test = [r for r in recs if r.name in split[name]["test"]]
        if limit is not None and limit < len(test):
            idx = sorted(np.random.default_rng(seed).choice(len(test), limit, replace=False))
            test = [test[i] for i in idx]
        model, meta = load_structure_model(str(model_path).replace("{fold}", name))
        r = _score(model, meta, test, f"archiveii-famfold {name}", tile, progress, keep=pooled, bpp_cache=bpp_cache)
        results.append(r)
    results.append({"dataset": "archiveii-famfold, all folds", "n": len(pooled["true"]), "threshold": float("nan"),
                    "model": evaluate(pooled["pred"], pooled["true"]), "rnafold": evaluate(pooled["fold"], pooled["true"]),
                    "seconds_model": pooled["seconds_model"], "seconds_rnafold": pooled["seconds_rnafold"],
                    "peak_gib": _peak_gib(), "per_seq": pooled["per_seq"]})
    return results


def _score(model, meta, recs: List[Structure], dataset: str, tile: int = DEFAULT_TILE, progress: bool = True,
           keep: Optional[dict] = None, bpp_cache=None) -> Dict[str, object]:
    threshold = float(meta["threshold"])
    scheme = meta["scheme"]
    pred, fold, true = [], [], []
    t_model = t_fold = 0.0
    per_seq = []
    for rec in tqdm(recs, desc=f"evaluate {dataset}", disable=not progress):
        t0 = time.perf_counter()
        with torch.inference_mode():
            probs = predict_pairs(model, scheme, rec.seq, tile=tile, bpp_cache=bpp_cache)
        p = decode(probs, rec.seq, threshold=threshold)
        t1 = time.perf_counter()
        f, _ = rnafold(rec.seq)
        t2 = time.perf_counter()
        pred.append(p)
        fold.append(f)
        true.append(rec.pairs)
        t_model += t1 - t0
        t_fold += t2 - t1
        per_seq.append((rec.name, len(rec.seq), t1 - t0, t2 - t1))
    if keep is not None:
        keep["pred"] += pred
        keep["fold"] += fold
        keep["true"] += true
        keep["seconds_model"] += t_model
        keep["seconds_rnafold"] += t_fold
        keep["per_seq"] += per_seq
    return {
        "dataset": dataset,
        "n": len(recs),
        "threshold": threshold,
        "model": evaluate(pred, true),
        "rnafold": evaluate(fold, true),
        "seconds_model": t_model,
        "seconds_rnafold": t_fold,
        "peak_gib": _peak_gib(),
        "per_seq": per_seq,
    }


def format_table(results: List[Dict[str, object]], command: str, model_path, cached_prior: bool = False) -> str:
    threads = torch.get_num_threads()
    timing = f"time is the total over the set on this machine ({threads} CPU thread{'s' if threads > 1 else ''}"
    timing += "; the model's time leaves out its ViennaRNA prior, read from a cache)." if cached_prior else ")."
    lines = [
        "# Secondary structure: resm model vs RNAfold (same sequences, same run)",
        "",
        f"Command: `{command}`  ",
        f"Model: `{model_path}`. Mean per-sequence F1 (strict / ±1 shift), pooled F1 (strict), "
        f"mean MCC; {timing}",
        "",
        "| set | n | resm F1 | resm F1 ±1 | resm pooled F1 | resm MCC | RNAfold F1 | RNAfold F1 ±1 | RNAfold pooled F1 | RNAfold MCC | resm s | RNAfold s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m, f = r["model"], r["rnafold"]
        lines.append(
            f"| {r['dataset']} | {r['n']} | {m['f1_mean']:.3f} | {m['f1_shift_mean']:.3f} | {m['f1_pooled']:.3f} | {m['mcc_mean']:.3f} "
            f"| {f['f1_mean']:.3f} | {f['f1_shift_mean']:.3f} | {f['f1_pooled']:.3f} | {f['mcc_mean']:.3f} "
            f"| {r['seconds_model']:.0f} | {r['seconds_rnafold']:.0f} |"
        )
    lines += ["", f"Peak resident memory of the run: {max(r['peak_gib'] for r in results):.2f} GiB."]
    return "\n".join(lines) + "\n"


def write_table(path, text: str) -> None:
    atomic_write_text(path, text)
