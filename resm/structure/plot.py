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
from .io import FoldError, check_pairs, pair_list

__all__ = ["MatplotlibMissing", "require_matplotlib", "plot_structure"]


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


def _arc_segments(i: np.ndarray, j: np.ndarray, n_points: int = 48) -> np.ndarray:
    """(n_pairs, n_points, 2) half-ellipses from x = i + 1 to x = j + 1 (1-based), height
    (j - i) / 2, above the axis."""
    t = np.linspace(0.0, np.pi, n_points)
    centre = (i + j)[:, None] / 2.0 + 1.0
    radius = (j - i)[:, None] / 2.0
    return np.stack([centre - radius * np.cos(t), radius * np.sin(t)], axis=-1)


def plot_structure(
    path: str | os.PathLike,
    seq: str,
    pairs,
    prob: Optional[np.ndarray] = None,
    title: Optional[str] = None,
    dpi: int = 100,
) -> None:
    """Write a PNG: an arc diagram of ``pairs`` (arcs above the sequence axis) and, if
    ``prob`` (L, L) is given, a second panel with the pair-probability map (predicted pairs
    marked in its lower triangle). Drawn with matplotlib's Agg canvas (no pyplot state) and
    written atomically."""
    Figure, FigureCanvasAgg = require_matplotlib()
    from matplotlib.collections import LineCollection

    pairs = check_pairs(pairs)
    L = len(pairs)
    if seq and len(seq) != L:
        raise ValueError(f"sequence length {len(seq)} != structure length {L}")
    if prob is not None:
        prob = np.asarray(prob, dtype=np.float32)
        if prob.shape != (L, L):
            raise ValueError(f"probability map has shape {prob.shape}, expected {(L, L)}")
    ij = np.asarray(pair_list(pairs), dtype=np.int64).reshape(-1, 2)
    i, j = ij[:, 0], ij[:, 1]

    fig = Figure(figsize=(11, 4) if prob is not None else (8, 3.5), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, 2, width_ratios=[1.8, 1]) if prob is not None else fig.add_gridspec(1, 1)
    ax = fig.add_subplot(grid[0, 0])
    if len(i):
        ax.add_collection(LineCollection(_arc_segments(i, j), linewidths=0.8, colors="tab:blue"))
    top = float((j - i).max()) / 2 if len(i) else 1.0
    ax.plot([1, max(L, 1)], [0, 0], color="0.3", linewidth=1.0)
    ax.set_xlim(0.5, L + 0.5)
    ax.set_ylim(-0.02 * top, 1.05 * top)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    if seq and L <= 80:
        ax.set_xticks(np.arange(1, L + 1))
        ax.set_xticklabels(list(seq), fontsize=6, family="monospace")
    else:
        ax.set_xlabel("position")
    ax.set_title(f"{title + ': ' if title else ''}{len(i)} pairs, {L} nt", fontsize=10)

    if prob is not None:
        ax2 = fig.add_subplot(grid[0, 1])
        im = ax2.imshow(prob, cmap="viridis", vmin=0.0, vmax=1.0, extent=(0.5, L + 0.5, L + 0.5, 0.5), interpolation="nearest")
        if len(i):
            size = float(np.clip(4000.0 / L, 1.0, 16.0))  # about one cell, readable when L is small
            ax2.scatter(i + 1, j + 1, s=size, c="red", marker="s", linewidths=0)  # lower triangle
        ax2.set_title("pair probability (predicted pairs below the diagonal)", fontsize=8)
        fig.colorbar(im, ax=ax2, fraction=0.046, pad=0.04)
    fig.tight_layout()
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
