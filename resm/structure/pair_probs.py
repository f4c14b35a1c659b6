"""Pair probabilities: dense, an (L, L) map, or sparse, arrays ``(i, j, p)`` of 0-based
indices; :func:`sparse_probs` and :func:`dense_probs` turn either into the other (what the
predictors return, the ``--bpp`` writers store, the plots draw and the metrics score).
"""

from __future__ import annotations

import numpy as np

__all__ = ["sparse_probs", "dense_probs"]


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def sparse_probs(P, min_p: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair probabilities as 0-based arrays ``(i, j, p)`` with i < j, sorted by (i, j), keeping
    ``p > min_p`` (``p >= min_p`` when ``min_p`` is 0: every listed pair).

    ``P`` is a dense (L, L) map (numpy or torch; symmetrised as decoding reads it,
    ``(P[i, j] + P[j, i]) / 2``), sparse arrays ``(i, j, p)`` (a tuple, or a mapping with keys
    ``i``, ``j``, ``p``; either order of i and j, a pair listed twice keeps its larger p), or a
    scipy sparse matrix (read as its coordinates).
    """
    if hasattr(P, "tocoo"):
        c = P.tocoo()
        P = (c.row, c.col, c.data)
    if isinstance(P, dict):
        P = (P["i"], P["j"], P["p"])
    if isinstance(P, (tuple, list)) and len(P) == 3:
        a, b, p = (_numpy(x).ravel() for x in P)
        if not len(a) == len(b) == len(p):
            raise ValueError(f"sparse probabilities: i, j and p differ in length ({len(a)}, {len(b)}, {len(p)})")
        i, j = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
        p = p.astype(np.float32)
        keep = i < j
        i, j, p = i[keep], j[keep], p[keep]
        order = np.lexsort((-p, j, i))
        i, j, p = i[order], j[order], p[order]
        first = np.ones(len(i), dtype=bool)
        first[1:] = (i[1:] != i[:-1]) | (j[1:] != j[:-1])
        i, j, p = i[first], j[first], p[first]
    else:
        M = _numpy(P)
        if M.ndim != 2 or M.shape[0] != M.shape[1]:
            raise ValueError(f"pair probabilities must be an (L, L) map or sparse (i, j, p), got shape {M.shape}")
        i, j = np.triu_indices(M.shape[0], 1)
        p = ((M[i, j].astype(np.float32) + M[j, i].astype(np.float32)) / 2).astype(np.float32)
    keep = p > min_p if min_p > 0 else p >= 0
    return i[keep], j[keep], p[keep]


def dense_probs(P, length: int) -> np.ndarray:
    """A symmetric (L, L) float32 map of pair probabilities given dense or sparse
    (:func:`sparse_probs`)."""
    i, j, p = sparse_probs(P)
    if len(i) and j.max() >= length:
        raise ValueError(f"pair ({int(i[j.argmax()]) + 1}, {int(j.max()) + 1}) out of range for length {length}")
    M = np.zeros((length, length), dtype=np.float32)
    M[i, j] = p
    M[j, i] = p
    return M
