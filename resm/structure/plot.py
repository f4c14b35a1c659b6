"""Arc diagrams of secondary structures, with the pair-probability map beside them.

Drawn with matplotlib's Agg canvas (no pyplot state); matplotlib is an optional dependency
(``pip install 'resm[plot]'``): without it :func:`require_matplotlib` raises
:class:`MatplotlibMissing` with the fix.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ..utils.io import atomic_path
from .io import FoldError, check_pairs, pair_list, sparse_probs

__all__ = ["MatplotlibMissing", "require_matplotlib", "binned_map", "plot_structure", "COLOURS"]


class MatplotlibMissing(FoldError, ImportError):
    """Plotting was asked for but matplotlib is not installed."""


def require_matplotlib():
    """matplotlib's ``Figure`` and Agg canvas, or :class:`MatplotlibMissing` with the fix."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MatplotlibMissing("plotting needs matplotlib, which is not installed: pip install matplotlib") from None
    return Figure, FigureCanvasAgg


def _arc_segments(i: np.ndarray, j: np.ndarray, below: bool = False, n_points: int = 48) -> np.ndarray:
    """(n_pairs, n_points, 2) half-ellipses from x = i + 1 to x = j + 1 (1-based), height
    (j - i) / 2, above the axis (below it with ``below``)."""
    t = np.linspace(0.0, np.pi, n_points)
    centre = (i + j)[:, None] / 2.0 + 1.0
    radius = (j - i)[:, None] / 2.0
    return np.stack([centre - radius * np.cos(t), (-1.0 if below else 1.0) * radius * np.sin(t)], axis=-1)


# one colour per kind of pair, the same in the arcs and in the map
COLOURS = {"pair": "tab:blue", "tp": "tab:green", "fp": "tab:red", "fn": "0.55"}
LABELS = {"pair": "predicted pair", "tp": "true positive", "fp": "false positive", "fn": "missed (reference only)"}


def _ij(pairs: np.ndarray) -> np.ndarray:
    return np.asarray(pair_list(pairs), dtype=np.int64).reshape(-1, 2)


def _classes(pairs: np.ndarray, reference: Optional[np.ndarray]) -> dict:
    """kind -> (n, 2) pairs, and for each pair whether it is a pseudoknot pair (outside a
    maximum nested subset of its own structure)."""
    from .decode import nested_subset

    def pk_mask(p: np.ndarray, ij: np.ndarray) -> np.ndarray:
        nested = nested_subset(p)
        return nested[ij[:, 0]] != ij[:, 1] if len(ij) else np.zeros(0, dtype=bool)

    pred = _ij(pairs)
    if reference is None:
        return {"pair": (pred, pk_mask(pairs, pred))}
    ref = _ij(reference)
    in_ref = reference[pred[:, 0]] == pred[:, 1] if len(pred) else np.zeros(0, dtype=bool)
    in_pred = pairs[ref[:, 0]] == ref[:, 1] if len(ref) else np.zeros(0, dtype=bool)
    pk_pred, pk_ref = pk_mask(pairs, pred), pk_mask(reference, ref)
    return {"tp": (pred[in_ref], pk_pred[in_ref]), "fp": (pred[~in_ref], pk_pred[~in_ref]),
            "fn": (ref[~in_pred], pk_ref[~in_pred])}


def binned_map(prob, L: int, max_px: int = 600) -> tuple[np.ndarray, int]:
    """The symmetric pair-probability map max-pooled into bins of ``b`` nucleotides so that it
    is at most ``max_px`` cells wide (``b`` = 1 up to ``max_px`` nt): ``(map, b)``. ``prob`` is
    dense (L, L) or sparse ``(i, j, p)``."""
    b = max(1, -(-L // max_px))
    n = -(-L // b)
    if isinstance(prob, np.ndarray) and prob.ndim == 2:
        if prob.shape != (L, L):
            raise ValueError(f"probability map has shape {prob.shape}, expected {(L, L)}")
        sym = np.maximum(prob, prob.T).astype(np.float32)
        if b == 1:
            return sym, 1
        padded = np.zeros((n * b, n * b), dtype=np.float32)
        padded[:L, :L] = sym
        return padded.reshape(n, b, n, b).max(axis=(1, 3)), b
    i, j, p = sparse_probs(prob)
    if len(j) and j.max() >= L:
        raise ValueError(f"probability of pair ({int(i[j.argmax()]) + 1}, {int(j.max()) + 1}) out of range for length {L}")
    M = np.zeros((n, n), dtype=np.float32)
    np.maximum.at(M, (i // b, j // b), p)
    np.maximum.at(M, (j // b, i // b), p)
    return M, b


def plot_structure(
    path: str | os.PathLike,
    seq: str,
    pairs,
    prob=None,
    title: Optional[str] = None,
    dpi: int = 100,
    reference=None,
    max_px: int = 600,
) -> None:
    """Write a PNG: an arc diagram of ``pairs`` and, if ``prob`` (dense (L, L) or sparse
    ``(i, j, p)``) is given, a second panel with the pair-probability map, its pairs marked in
    the lower triangle.

    Nested pairs arc above the sequence axis, pseudoknot pairs (those outside a maximum nested
    subset) below it. With ``reference`` (a partner array) the arcs and marks are true
    positives, false positives and missed reference pairs in their own colours
    (:data:`COLOURS`), with a legend. Long RNAs keep a readable map: it is max-pooled to at most
    ``max_px`` cells a side. Drawn with matplotlib's Agg canvas (no pyplot state) and written
    atomically."""
    Figure, FigureCanvasAgg = require_matplotlib()
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    pairs = check_pairs(pairs)
    L = len(pairs)
    if seq and len(seq) != L:
        raise ValueError(f"sequence length {len(seq)} != structure length {L}")
    if reference is not None:
        reference = check_pairs(reference)
        if len(reference) != L:
            raise ValueError(f"reference length {len(reference)} != structure length {L}")
    grid_map = binned_map(prob, L, max_px) if prob is not None else None
    classes = _classes(pairs, reference)

    fig = Figure(figsize=(11, 4) if prob is not None else (8, 3.5), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, 2, width_ratios=[1.8, 1]) if prob is not None else fig.add_gridspec(1, 1)
    ax = fig.add_subplot(grid[0, 0])
    top, bottom = 1.0, 0.0
    handles = []
    for kind, (ij, pk) in classes.items():
        for below in (False, True):
            sel = ij[pk == below]
            if len(sel):
                ax.add_collection(LineCollection(_arc_segments(sel[:, 0], sel[:, 1], below), linewidths=0.8,
                                                 colors=COLOURS[kind], linestyles="--" if below else "-"))
                h = float((sel[:, 1] - sel[:, 0]).max()) / 2
                top, bottom = (top, max(bottom, h)) if below else (max(top, h), bottom)
        if reference is not None or len(ij):
            handles.append(Line2D([], [], color=COLOURS[kind], label=f"{LABELS[kind]} ({len(ij)})"))
    if any(pk.any() for _, pk in classes.values()):
        handles.append(Line2D([], [], color="0.3", linestyle="--", label="pseudoknot pairs (below the axis)"))
    ax.plot([1, max(L, 1)], [0, 0], color="0.3", linewidth=1.0)
    ax.set_xlim(0.5, L + 0.5)
    ax.set_ylim(-1.05 * bottom - 0.02 * top, 1.05 * top)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    if seq and L <= 80:
        ax.set_xticks(np.arange(1, L + 1))
        ax.set_xticklabels(list(seq), fontsize=6, family="monospace")
    else:
        ax.set_xlabel("position")
    n_pred = int((pairs >= 0).sum() // 2)
    ax.set_title(f"{title + ': ' if title else ''}{n_pred} pairs, {L} nt", fontsize=10)
    if handles and (reference is not None or len(handles) > 1):
        ax.legend(handles=handles, fontsize=7, loc="upper right", frameon=False)

    if grid_map is not None:
        M, b = grid_map
        ax2 = fig.add_subplot(grid[0, 1])
        n = M.shape[0]
        edge = n * b + 0.5
        im = ax2.imshow(np.triu(M), cmap="viridis", vmin=0.0, vmax=1.0, extent=(0.5, edge, edge, 0.5),
                        interpolation="nearest")
        size = float(np.clip(4000.0 / n, 1.0, 16.0))  # about one cell, readable when L is small
        for kind, (ij, _) in classes.items():
            if len(ij):  # lower triangle: (j, i), at the centre of their bins
                ax2.scatter((ij[:, 0] // b) * b + (b + 1) / 2, (ij[:, 1] // b) * b + (b + 1) / 2, s=size,
                            c=COLOURS[kind], marker="s", linewidths=0)
        binned = f", max over {b}x{b}-nt bins" if b > 1 else ""
        ax2.set_title(f"pair probability{binned} (pairs below the diagonal)", fontsize=8)
        fig.colorbar(im, ax=ax2, fraction=0.046, pad=0.04)
    fig.tight_layout()
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
