"""Figures of secondary structures: an arc diagram with the pair-probability map beside it
(:func:`plot_structure`) and a 2-D drawing in ViennaRNA's layout, each base coloured by the
probability of the state drawn (:func:`plot_layout`, RNAfold's ``_ss`` plot); PNG, SVG or PDF
(:data:`FORMATS`) at any dpi; :func:`plot_record` writes both for one record.

Drawn with matplotlib's Agg canvas (no pyplot state); matplotlib is an optional dependency
(``pip install 'resm[plot]'``): without it :func:`require_matplotlib` raises
:class:`MatplotlibMissing` with the fix. The colours of the pair kinds are chosen apart from
the probability scales (grey for the map, viridis for the drawing), so a mark never reads as
a probability; every mark has a legend entry.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from ..utils.io import atomic_path
from .io import FoldError, check_pairs, pair_list
from .pair_probs import sparse_probs
from .rnafold_vocabulary import DEFAULT_DPI, DEFAULT_PLOT_FORMAT, PLOT_FORMATS

__all__ = [
    "MatplotlibMissing",
    "require_matplotlib",
    "binned_map",
    "plot_structure",
    "plot_layout",
    "plot_record",
    "COLOURS",
    "FORMATS",
]
FORMATS = PLOT_FORMATS


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


# one colour per kind of pair, the same in the arcs, the map and the drawing; none of them is a
# grey (the map's scale) and missed pairs are drawn thin and light under the predicted ones
COLOURS = {"pair": "tab:blue", "tp": "tab:blue", "fp": "tab:red", "fn": "tab:orange"}
LABELS = {"pair": "predicted pair", "tp": "true positive", "fp": "false positive", "fn": "missed (reference only)"}


def _drawn(pairs, seq: str = "", length: int | None = None, what: str = "") -> np.ndarray:
    """``pairs`` as a partner array (:func:`check_pairs`) of a figure: as long as ``seq`` (when
    given), and as ``length`` (the figure's structure, when ``pairs`` is ``what`` drawn with it)."""
    pairs = check_pairs(pairs)
    if seq and len(seq) != len(pairs):
        raise ValueError(f"sequence length {len(seq)} != structure length {len(pairs)}")
    if length is not None and len(pairs) != length:
        raise ValueError(f"{what} length {len(pairs)} != structure length {length}")
    return pairs


def _ij(pairs: np.ndarray) -> np.ndarray:
    return np.asarray(pair_list(pairs), dtype=np.int64).reshape(-1, 2)


def _classes(pairs: np.ndarray, reference: np.ndarray | None) -> dict:
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
    return {
        "tp": (pred[in_ref], pk_pred[in_ref]),
        "fp": (pred[~in_ref], pk_pred[~in_ref]),
        "fn": (ref[~in_pred], pk_ref[~in_pred]),
    }


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
        raise ValueError(
            f"probability of pair ({int(i[j.argmax()]) + 1}, {int(j.max()) + 1}) out of range for length {L}"
        )
    M = np.zeros((n, n), dtype=np.float32)
    np.maximum.at(M, (i // b, j // b), p)
    np.maximum.at(M, (j // b, i // b), p)
    return M, b


def plot_structure(
    path: str | os.PathLike,
    seq: str,
    pairs,
    prob=None,
    title: str | None = None,
    dpi: int = DEFAULT_DPI,
    reference=None,
    max_px: int = 600,
    fmt: str = DEFAULT_PLOT_FORMAT,
    compare: tuple[str, np.ndarray] | None = None,
) -> None:
    """Write a figure (``fmt``: png, svg or pdf): an arc diagram of ``pairs`` and, if ``prob`` (dense (L, L) or sparse
    ``(i, j, p)``) is given, a second panel with the pair-probability map, its pairs marked in
    the lower triangle.

    Nested pairs arc above the sequence axis, pseudoknot pairs (those outside a maximum nested
    subset) below it. With ``reference`` (a partner array) the arcs and marks are true
    positives, false positives and missed reference pairs in their own colours
    (:data:`COLOURS`), with a legend. Without ``reference``, ``compare`` (a label and another
    folder's partner array, e.g. ``("RNAfold", mfe)``) draws the pairs in both structures, in
    ``pairs`` only and in the other only in those colours instead. Long RNAs keep a readable
    map: it is max-pooled to at most ``max_px`` cells a side. Drawn with matplotlib's Agg
    canvas (no pyplot state) and written atomically."""
    Figure, FigureCanvasAgg = require_matplotlib()
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    pairs = _drawn(pairs, seq)
    L = len(pairs)
    if reference is not None:
        reference = _drawn(reference, "", L, "reference")
    grid_map = binned_map(prob, L, max_px) if prob is not None else None
    labels = LABELS
    if reference is None and compare is not None:
        reference = _drawn(compare[1], "", L, f"{compare[0]} structure")
        labels = {"tp": "in both", "fp": "resm only", "fn": f"{compare[0]} only"}
    classes = _classes(pairs, reference)

    fig = Figure(figsize=(11, 4) if prob is not None else (8, 3.5), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, 2, width_ratios=[1.8, 1]) if prob is not None else fig.add_gridspec(1, 1)
    ax = fig.add_subplot(grid[0, 0])
    top, bottom = 1.0, 0.0
    handles = []
    thin = float(np.clip(150.0 / max(L, 1), 0.5, 1.0))  # arcs stay apart at 1,500 nt
    order = sorted(classes, key=lambda k: k != "fn")  # missed pairs first: predicted ones over them
    for kind in order:
        ij, pk = classes[kind]
        missed = kind == "fn"
        for below in (False, True):
            sel = ij[pk == below]
            if len(sel):
                ax.add_collection(
                    LineCollection(
                        _arc_segments(sel[:, 0], sel[:, 1], below),
                        linewidths=thin * (0.7 if missed else 1.0),
                        colors=COLOURS[kind],
                        alpha=0.5 if missed else 1.0,
                        linestyles="--" if below else "-",
                        zorder=1 if missed else 2,
                        antialiaseds=L <= 600,
                    )
                )
                h = float((sel[:, 1] - sel[:, 0]).max()) / 2
                top, bottom = (top, max(bottom, h)) if below else (max(top, h), bottom)
    for kind in classes:
        ij, _ = classes[kind]
        if reference is not None or len(ij):
            handles.append(
                Line2D(
                    [], [], color=COLOURS[kind], alpha=0.7 if kind == "fn" else 1.0, label=f"{labels[kind]} ({len(ij)})"
                )
            )
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
        integer_ticks(ax.xaxis)
        ax.set_xlabel("position")
    n_pred = int((pairs >= 0).sum() // 2)
    counts = f"{n_pred} pairs"
    if labels is not LABELS:  # compare: both structures' pair counts
        counts = f"resm {n_pred} pairs, {compare[0]} {int((reference >= 0).sum() // 2)} pairs"
    ax.set_title(f"{title + ': ' if title else ''}{counts}, {L} nt", fontsize=10)
    if handles:  # under the axis, where no arc runs
        ax.legend(
            handles=handles,
            fontsize=7,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.12 if L > 80 else -0.06),
            ncol=min(len(handles), 4),
            frameon=False,
        )

    if grid_map is not None:
        M, b = grid_map
        ax2 = fig.add_subplot(grid[0, 1])
        n = M.shape[0]
        edge = n * b + 0.5
        im = ax2.imshow(
            np.triu(M), cmap="Greys", vmin=0.0, vmax=1.0, extent=(0.5, edge, edge, 0.5), interpolation="nearest"
        )
        size = float(np.clip(4000.0 / n, 1.0, 16.0))  # about one cell, readable when L is small
        marks = []
        for kind in order:
            ij, _ = classes[kind]
            if len(ij):  # lower triangle: (j, i), at the centre of their bins
                ax2.scatter(
                    (ij[:, 0] // b) * b + (b + 1) / 2,
                    (ij[:, 1] // b) * b + (b + 1) / 2,
                    s=size,
                    c=COLOURS[kind],
                    marker="s",
                    linewidths=0,
                    alpha=0.6 if kind == "fn" else 1.0,
                )
                marks.append(
                    Line2D([], [], color=COLOURS[kind], marker="s", linestyle="", markersize=5, label=labels[kind])
                )
        integer_ticks(ax2.xaxis, ax2.yaxis, nbins=5)
        binned = f", max over {b}x{b}-nt bins" if b > 1 else ""
        ax2.set_title(f"pair probability{binned}\n(upper: probability; lower: pairs)", fontsize=8)
        if marks:  # below the map, where it hides nothing
            ax2.legend(
                handles=marks,
                fontsize=6,
                loc="upper center",
                bbox_to_anchor=(0.5, -0.07),
                ncol=len(marks),
                frameon=False,
                handletextpad=0.2,
                columnspacing=0.8,
            )
        bar = fig.colorbar(im, ax=ax2, fraction=0.046, pad=0.04)
        bar.set_label("pair probability", fontsize=7)
    _save(fig, path, fmt, dpi)


def integer_ticks(*axes, nbins="auto") -> None:
    from matplotlib.ticker import MaxNLocator

    for a in axes:
        a.set_major_locator(MaxNLocator(nbins=nbins, integer=True, min_n_ticks=1))


def _save(fig, path, fmt: str, dpi: int) -> None:
    """Lay ``fig`` out and write it atomically. A record name in a script the font lacks (CJK,
    say) is drawn as boxes without a warning line on the user's terminal."""
    if fmt not in FORMATS:
        raise ValueError(f"plot format {fmt!r}: choose one of {', '.join(FORMATS)}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
        fig.tight_layout()
        with atomic_path(path, f".{fmt}") as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi)


def layout_coordinates(pairs: np.ndarray) -> np.ndarray:
    """(L, 2) coordinates of each base in ViennaRNA's naview layout of the nested part of
    ``pairs`` (ViennaRNA's simple layout where naview gives no finite answer)."""
    import RNA

    from .decode import nested_subset
    from .io import to_dotbracket

    db = to_dotbracket(nested_subset(pairs))
    L = len(db)
    for layout in (RNA.naview_xy_coordinates, RNA.simple_xy_coordinates):
        c = layout(db)
        xy = np.array([(c[k].X, c[k].Y) for k in range(L)], dtype=np.float64)
        if np.isfinite(xy).all() and np.ptp(xy, axis=0).max() > 0:
            return xy
    return np.stack([np.arange(L, dtype=np.float64), np.zeros(L)], axis=1)


def state_probability(pairs: np.ndarray, prob) -> np.ndarray:
    """Per base, the probability of the state drawn: P(i, j) for a base paired with j, the
    probability of being unpaired (1 - sum_j P(i, j)) for an unpaired one."""
    L = len(pairs)
    i, j, p = sparse_probs(prob)
    paired = np.zeros(L)
    np.add.at(paired, i, p)
    np.add.at(paired, j, p)
    out = np.clip(1.0 - paired, 0.0, 1.0)
    ij = _ij(pairs)
    if len(ij):
        lookup = {(int(a), int(b)): float(q) for a, b, q in zip(i, j, p)}
        for a, b in ij:
            out[a] = out[b] = lookup.get((int(a), int(b)), 0.0)
    return out


def plot_layout(
    path: str | os.PathLike,
    seq: str,
    pairs,
    prob=None,
    title: str | None = None,
    dpi: int = DEFAULT_DPI,
    fmt: str = DEFAULT_PLOT_FORMAT,
) -> None:
    """Write the 2-D drawing of ``pairs`` in ViennaRNA's layout (RNAfold's ``_ss`` plot): the
    backbone as a line, pairs as bonds (pseudoknot pairs dashed), each base a dot coloured by
    the probability of its drawn state (:func:`state_probability`) when ``prob`` is given;
    first base and every tenth numbered."""
    Figure, FigureCanvasAgg = require_matplotlib()
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    pairs = _drawn(pairs, seq)
    L = len(pairs)
    xy = layout_coordinates(pairs)
    from .decode import nested_subset

    nested = nested_subset(pairs)
    ij = _ij(pairs)
    pk = nested[ij[:, 0]] != ij[:, 1] if len(ij) else np.zeros(0, dtype=bool)
    fig = Figure(figsize=(7, 7), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    dot = float(np.clip(2.4e4 / max(L, 1) ** 1.2, 2.0, 90.0))
    ax.plot(xy[:, 0], xy[:, 1], color="0.35", linewidth=0.6, zorder=1)
    handles = [Line2D([], [], color="0.35", linewidth=0.8, label="backbone")]
    for mask, style, label in ((~pk, "-", "base pair"), (pk, "--", "pseudoknot pair")):
        sel = ij[mask]
        if len(sel):
            ax.add_collection(
                LineCollection(
                    np.stack([xy[sel[:, 0]], xy[sel[:, 1]]], axis=1),
                    colors=COLOURS["pair"],
                    linewidths=0.8,
                    linestyles=style,
                    zorder=2,
                )
            )
            handles.append(Line2D([], [], color=COLOURS["pair"], linestyle=style, label=f"{label} ({len(sel)})"))
    state = state_probability(pairs, prob) if prob is not None else np.zeros(L)
    if prob is not None:
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=state, cmap="viridis", vmin=0, vmax=1, s=dot, zorder=3, linewidths=0)
        bar = fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.04, shrink=0.6)
        bar.set_label("probability of the state drawn\n(paired with this partner, or unpaired)", fontsize=7)
    else:
        ax.scatter(xy[:, 0], xy[:, 1], color="0.2", s=dot, zorder=3, linewidths=0)
    handles.append(
        Line2D(
            [],
            [],
            color="0.5",
            marker="o",
            linestyle="",
            label="base" + (" (colour: probability)" if prob is not None else ""),
        )
    )
    if seq and L <= 120:
        for k, c in enumerate(seq):
            ax.annotate(
                c, xy[k], fontsize=5, ha="center", va="center", color="black" if state[k] > 0.6 else "white", zorder=4
            )
    step = 10 if L <= 150 else 50 if L <= 600 else 100 if L <= 2000 else 500
    gap = float(np.median(np.linalg.norm(np.diff(xy, axis=0), axis=1))) if L > 1 else 1.0
    for k in [0, *range(step - 1, L, step)]:  # numbers pushed away from the base's neighbours
        near = [xy[m] for m in (k - 1, k + 1, int(pairs[k])) if 0 <= m < L and m != k]
        d = xy[k] - (np.mean(near, axis=0) if near else xy.mean(axis=0))
        ax.annotate(
            str(k + 1),
            xy[k] + d / (np.linalg.norm(d) or 1.0) * gap * 1.5,
            fontsize=6,
            ha="center",
            va="center",
            color="0.15",
            zorder=4,
        )
    ax.set_aspect("equal")
    ax.set_axis_off()
    n = int((pairs >= 0).sum() // 2)
    fig.suptitle(f"{title + ': ' if title else ''}{n} pairs, {L} nt (ViennaRNA naview layout)", fontsize=9)
    ax.legend(
        handles=handles, fontsize=6, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles), frameon=False
    )
    _save(fig, path, fmt, dpi)


def plot_record(
    folder,
    stem: str,
    seq: str,
    pairs,
    prob=None,
    title: str | None = None,
    reference=None,
    fmt: str = DEFAULT_PLOT_FORMAT,
    dpi: int = DEFAULT_DPI,
    compare: tuple[str, np.ndarray] | None = None,
) -> None:
    """Both figures of one record in ``folder``: ``<stem>.<fmt>`` (arcs and map) and
    ``<stem>_ss.<fmt>`` (the 2-D drawing, named as RNAfold names its own); with ``compare``
    (label, partner array: another folder's structure), the arcs show both structures (against
    ``reference`` when given, the arcs score resm's) and ``<stem>_<label>_ss.<fmt>`` (label in
    lower case) draws the other structure."""
    from pathlib import Path

    folder = Path(folder)
    arcs, layout, *other = (f"{stem}{suffix}.{fmt}" for suffix in plot_suffixes(compare[0] if compare else None))
    plot_structure(folder / arcs, seq, pairs, prob, title=title, dpi=dpi, reference=reference, fmt=fmt, compare=compare)
    plot_layout(folder / layout, seq, pairs, prob, title=title, dpi=dpi, fmt=fmt)
    if compare is not None:
        label = compare[0]
        who = f"{title}, {label}" if title else label
        plot_layout(folder / other[0], seq, compare[1], None, title=who, dpi=dpi, fmt=fmt)


def plot_suffixes(compare: str | None = None) -> tuple[str, ...]:
    """What :func:`plot_record` adds to a record's file stem, one per figure: the arcs (none),
    the 2-D drawing (``_ss``) and, with ``compare`` (a folder's name or label), the compared
    structure's drawing (``_<label>_ss``, the label in lower case)."""
    if compare is None:
        return ("", "_ss")
    from .folders import FOLDERS

    label = FOLDERS[compare].label if compare in FOLDERS else compare
    return ("", "_ss", f"_{label.lower()}_ss")
