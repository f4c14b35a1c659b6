"""``resm evaluate structure``: a structure model against RNAfold, same sequences, same run.

For each sequence of the chosen set, the model's pair probabilities are decoded at the
threshold stored in the model file (chosen on validation data when it was trained) and
RNAfold's MFE structure is computed; both are scored with ``resm.metrics.evaluate``
(per-sequence mean and pooled, strict and ±1 shift). Time per sequence and the peak resident
memory of the process are recorded too.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from .baselines import rnafold
from .decode import decode
from .metrics import evaluate
from .structure import Structure, iter_ct_tarball, read_archiveii_csv, read_structures
from .utils.io import atomic_write_text

DATASETS = {
    "ts0": "ss/bprna/TS0.dbn",
    "bprna-new": "ss/bprna/bpRNAnew.dbn",
    "archiveii": "ss/archiveII/ArchiveII.csv",
    "archiveii-long": "ss/archiveII/archiveII_ct.tar.gz",
}


def load_dataset(name: str, data_dir: str | os.PathLike, limit: Optional[int] = None, seed: int = 0) -> List[Structure]:
    """The structures of a named set; ``limit`` takes a seeded random subset (reported)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    path = Path(data_dir) / DATASETS[name]
    if not path.exists():
        raise FileNotFoundError(f"{path}: data set not found (set RESM_DATA or --data-dir)")
    if name == "archiveii":
        recs = list(read_archiveii_csv(path))
    elif name == "archiveii-long":
        recs = [r for r in iter_ct_tarball(path) if len(r.seq) >= 1000]
    else:
        recs = list(read_structures(path))
    if limit is not None and limit < len(recs):
        idx = sorted(np.random.default_rng(seed).choice(len(recs), limit, replace=False))
        recs = [recs[i] for i in idx]
    return recs


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def evaluate_structure(model_path, dataset: str, data_dir, limit: Optional[int] = None, seed: int = 0,
                       tile: int = 256, progress: bool = True) -> Dict[str, object]:
    from .finetune import load_structure_model, predict_pairs

    model, meta = load_structure_model(model_path)
    threshold = float(meta["threshold"])
    scheme = meta["scheme"]
    recs = load_dataset(dataset, data_dir, limit, seed)
    pred, fold, true = [], [], []
    t_model = t_fold = 0.0
    per_seq = []
    for rec in tqdm(recs, desc=f"evaluate {dataset}", disable=not progress):
        t0 = time.perf_counter()
        with torch.inference_mode():
            probs = predict_pairs(model, scheme, rec.seq, tile=tile)
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


def format_table(results: List[Dict[str, object]], command: str, model_path) -> str:
    lines = [
        "# Secondary structure: resm model vs RNAfold (same sequences, same run)",
        "",
        f"Command: `{command}`  ",
        f"Model: `{model_path}`. Mean per-sequence F1 (strict / ±1 shift), pooled F1 (strict), "
        "mean MCC; time is the total over the set on this machine (2 CPU threads).",
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
