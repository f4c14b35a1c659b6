"""Zero-shot secondary structure from attention maps: ESM's contact-head probe, fitted on RNA.

The probe is ESM's contact head: a logistic regression over the symmetrised, APC-corrected
attention maps of every layer and head (``ContactHead.features``). Its channel order is
layer-major, ``channel = layer * heads + head``, as in ``model.contact_head.regression``.

* its examples are the attention features of sampled (i, j) cells
  (:func:`resm.model.attention.pair_attention_features`: one layer's maps at a time, O(H L^2),
  plus O(n_pairs x layers x heads) for the result).
* :func:`fit_probe` fits the regression on a few labelled structures (all pairs with
  ``j - i > min_sep`` as positives, a random sample of the other cells as negatives) and
  writes it into ``model.contact_head.regression``, so ``model.predict_contacts`` (the
  O(L^2) layer-by-layer path) returns the probe's probabilities.
* :func:`predict_pair_probs` gives the (L, L) probability map of one sequence; decode it
  with :func:`resm.decode.decode`, threshold chosen on validation data.
"""

from __future__ import annotations

import os
from typing import Iterable, Optional

import numpy as np
import torch

from .alphabet import pad_batch
from .mapping import Scheme
from .model.attention import pair_attention_features
from .model.esm2 import ESM2
from .structure import Structure
from .utils.io import atomic_path

__all__ = [
    "sample_pairs",
    "fit_probe",
    "predict_pair_probs",
    "save_probe",
    "load_probe",
]


def sample_pairs(
    pairs: np.ndarray,
    n_neg: int,
    rng: np.random.Generator,
    min_sep: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Positives (all true pairs with ``j - i > min_sep``) and up to ``n_neg`` negatives drawn
    uniformly without replacement from the other cells i < j with ``j - i > min_sep``.

    Returns ``(index, label)``: an (n, 2) int64 array of (i, j) and 0/1 labels. Long sequences
    are sampled by rejection, never by listing all L^2 cells.
    """
    pairs = np.asarray(pairs, dtype=np.int64)
    L = len(pairs)
    pi = np.flatnonzero(pairs > np.arange(L))
    pj = pairs[pi]
    sel = pj - pi > min_sep
    pos = np.stack([pi[sel], pj[sel]], 1)
    pos_keys = set((pos[:, 0] * L + pos[:, 1]).tolist())
    n_cells = max(L - min_sep - 1, 0) * max(L - min_sep, 0) // 2  # cells with j - i > min_sep
    n_free = n_cells - len(pos)
    n_neg = max(min(int(n_neg), n_free), 0)
    if n_neg == 0:
        neg = np.zeros((0, 2), dtype=np.int64)
    elif n_free <= 4 * n_neg:  # dense: list the eligible cells and choose
        a, b = np.triu_indices(L, min_sep + 1)
        keys = a * L + b
        ok = ~np.isin(keys, np.fromiter(pos_keys, dtype=np.int64, count=len(pos_keys)))
        cells = np.stack([a[ok], b[ok]], 1).astype(np.int64)
        neg = cells[rng.choice(len(cells), n_neg, replace=False)]
    else:  # sparse: rejection sampling keeps memory O(n_neg)
        chosen: dict[int, None] = {}
        while len(chosen) < n_neg:
            draw = rng.integers(0, L, size=(2 * (n_neg - len(chosen)) + 16, 2))
            a, b = draw.min(1), draw.max(1)
            for key in (a * L + b)[b - a > min_sep].tolist():
                if key not in pos_keys and key not in chosen:
                    chosen[key] = None
                    if len(chosen) == n_neg:
                        break
        keys = np.fromiter(chosen, dtype=np.int64, count=n_neg)
        neg = np.stack([keys // L, keys % L], 1)
    index = np.concatenate([pos, neg]).astype(np.int64)
    label = np.concatenate([np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)])
    return index, label


def _tokens(scheme: Scheme, seq: str, record: str = "<sequence>") -> torch.Tensor:
    return pad_batch([scheme.encode(seq, record)])


def fit_probe(
    model: ESM2,
    scheme: Scheme,
    structures: Iterable[Structure],
    max_pairs_per_seq: int = 1000,
    C: float = 1.0,
    seed: int = 0,
    min_sep: int = 3,
    max_len: Optional[int] = None,
    class_weight: Optional[str | dict] = None,
    max_iter: int = 2000,
) -> dict:
    """Fit the contact-head regression on labelled structures and write it into the model.

    For each structure (longer than ``max_len`` skipped): all pairs with ``j - i > min_sep``
    are positives and ``max_pairs_per_seq`` negatives are sampled (:func:`sample_pairs`).
    Features are standardised, an L2 ``LogisticRegression(C=C)`` is fitted, and the scaling is
    folded back into raw-feature weights (``w = w_std / sd``, ``b = b_std - sum(w * mean)``),
    which go into ``model.contact_head.regression``. ``class_weight`` defaults to None:
    negatives are subsampled anyway, so the probabilities are not calibrated to the true
    pair frequency — pick the decoding threshold on validation data
    (:func:`resm.decode.choose_threshold`).

    Returns ``{"n_seqs", "n_pos", "n_neg", "train_auroc", "classifier"}``; ``classifier`` is
    the fitted sklearn pipeline (StandardScaler + LogisticRegression) on raw features.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    feats, labels = [], []
    n_seqs = 0
    for rec in structures:
        if not rec.seq:
            raise ValueError(f"{rec.name}: structure has no sequence")
        if max_len is not None and len(rec) > max_len:
            continue
        index, label = sample_pairs(rec.pairs, max_pairs_per_seq, rng, min_sep)
        if len(index) == 0:
            continue
        feats.append(pair_attention_features(model, _tokens(scheme, rec.seq, rec.name), index))
        labels.append(label)
        n_seqs += 1
    if not feats:
        raise ValueError("no usable structures to fit the probe")
    X = np.concatenate(feats).astype(np.float64)
    y = np.concatenate(labels)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise ValueError(f"need both pairs and non-pairs to fit the probe (n_pos={n_pos}, n={len(y)})")
    clf = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=C, class_weight=class_weight, max_iter=max_iter, random_state=seed),
    )
    clf.fit(X, y)
    scaler, lr = clf[0], clf[-1]
    w = lr.coef_[0] / scaler.scale_
    b = float(lr.intercept_[0] - np.dot(w, scaler.mean_))
    reg = model.contact_head.regression
    with torch.no_grad():
        reg.weight.copy_(torch.as_tensor(w, dtype=reg.weight.dtype).view_as(reg.weight))
        reg.bias.fill_(b)
    auroc = float(roc_auc_score(y, clf.decision_function(X)))
    return {"n_seqs": n_seqs, "n_pos": n_pos, "n_neg": int(len(y) - n_pos), "train_auroc": auroc, "classifier": clf}


def predict_pair_probs(model: ESM2, scheme: Scheme, seq: str) -> np.ndarray:
    """(L, L) float32 pair probabilities of one sequence from ``model.predict_contacts``."""
    tokens = _tokens(scheme, seq).to(model.device)
    with torch.inference_mode():
        probs = model.predict_contacts(tokens)[0]
    return probs.float().cpu().numpy()


def save_probe(model: ESM2, path: str | os.PathLike) -> None:
    """Write the contact-head regression (weight, bias) with num_layers and heads, as tensors
    only, to a small ``.pt`` file (atomically)."""
    reg = model.contact_head.regression
    data = {
        "weight": reg.weight.detach().float().cpu().clone(),
        "bias": reg.bias.detach().float().cpu().clone(),
        "num_layers": torch.tensor(model.num_layers),
        "heads": torch.tensor(model.attention_heads),
    }
    with atomic_path(path) as tmp:
        torch.save(data, tmp)


def load_probe(model: ESM2, path: str | os.PathLike) -> ESM2:
    """Load a probe written by :func:`save_probe` into ``model`` (``weights_only=True``).

    Raises ValueError if the file is not a probe or was fitted for another number of
    layers or heads.
    """
    data = torch.load(path, map_location="cpu", weights_only=True)
    need = {"weight", "bias", "num_layers", "heads"}
    if not isinstance(data, dict) or not need <= set(data):
        raise ValueError(f"{path}: not a probe file (expected keys {sorted(need)})")
    layers, heads = int(data["num_layers"]), int(data["heads"])
    if (layers, heads) != (model.num_layers, model.attention_heads):
        raise ValueError(
            f"{path}: probe is for {layers} layers x {heads} heads, model has "
            f"{model.num_layers} x {model.attention_heads}"
        )
    reg = model.contact_head.regression
    if tuple(data["weight"].shape) != tuple(reg.weight.shape) or data["bias"].numel() != 1:
        raise ValueError(
            f"{path}: weight shape {tuple(data['weight'].shape)} does not match {tuple(reg.weight.shape)}"
        )
    with torch.no_grad():
        reg.weight.copy_(data["weight"].to(reg.weight))
        reg.bias.copy_(data["bias"].reshape(reg.bias.shape).to(reg.bias))
    return model
