"""``resm fold --reference``: a per-record report of the prediction against known structures,
with RNAfold's minimum free energy structure scored on the same record.

One TSV row per record (:data:`COLUMNS`): ``id``, ``length``, the number of reference and
predicted pairs, F1 strict and with the ±1 shift, MCC (:mod:`resm.structure.metrics`), then the
same three scores of RNAfold's MFE structure (:func:`resm.structure.folders.rnafold`).
:func:`summary` gives the means over the rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .metrics import f1_score, mcc, n_pairs
from .pairsets import PairSet

__all__ = ["COLUMNS", "HEADER", "score_record", "format_row", "summary", "format_summary"]

COLUMNS = ("id", "length", "n_ref", "n_pred", "f1", "f1_shift", "mcc", "rnafold_f1", "rnafold_f1_shift", "rnafold_mcc")
HEADER = "\t".join(COLUMNS) + "\n"
_SCORES = ("f1", "f1_shift", "mcc", "rnafold_f1", "rnafold_f1_shift", "rnafold_mcc")


def _scores(pred: np.ndarray, ref: np.ndarray) -> tuple:
    return f1_score(pred, ref), f1_score(pred, ref, shift=True), mcc(pred, ref)


def score_record(
    name: str, seq: str, pred: np.ndarray, ref: np.ndarray, rnafold_pairs: np.ndarray | None = None
) -> dict[str, object]:
    """The report row of one record (RNAfold folds ``seq`` here unless its MFE structure is
    given as ``rnafold_pairs``); ``pred`` and ``ref`` are partner arrays, or
    :class:`resm.structure.pairsets.PairSet` whose bases may sit in several pairs (every pair
    counts in ``n_pred`` / ``n_ref`` and the scores)."""
    from .folders import on_record, rnafold

    # a PairSet: a reference with base triples, or a prediction with --non-canonical's added pairs
    pred, ref = (x if isinstance(x, PairSet) else np.asarray(x) for x in (pred, ref))
    if rnafold_pairs is None:
        with on_record("RNAfold", name, seq):
            rnafold_pairs = rnafold(seq)[0]
    mfe = np.asarray(rnafold_pairs)
    row: dict[str, object] = {
        "id": name,
        "length": int(len(ref)),
        "n_ref": n_pairs(ref),
        "n_pred": n_pairs(pred),
    }
    row.update(zip(("f1", "f1_shift", "mcc"), _scores(pred, ref)))
    row.update(zip(("rnafold_f1", "rnafold_f1_shift", "rnafold_mcc"), _scores(mfe, ref)))
    return row


def format_row(row: dict[str, object]) -> str:
    return "\t".join(f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c]) for c in COLUMNS) + "\n"


def summary(rows: Sequence[dict[str, object]]) -> dict[str, float]:
    """``n`` and the mean of every score over ``rows``."""
    out: dict[str, float] = {"n": len(rows)}
    for c in _SCORES:
        out[c] = float(np.mean([float(r[c]) for r in rows])) if rows else float("nan")
    return out


def format_summary(s: dict[str, float]) -> str:
    """One line: the means of the model and of RNAfold."""
    return (
        f"F1 over {s['n']} sequence{'' if s['n'] == 1 else 's'} (mean): {s['f1']:.3f} strict, "
        f"{s['f1_shift']:.3f} with +-1 shift, "
        f"MCC {s['mcc']:.3f}; RNAfold on the same records: {s['rnafold_f1']:.3f} strict, "
        f"{s['rnafold_f1_shift']:.3f} with +-1 shift, MCC {s['rnafold_mcc']:.3f}"
    )
