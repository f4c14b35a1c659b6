"""The plots of ``resm compare`` (matplotlib, optional: without it they are skipped with a
note): F1 against length, embedding time and memory against length, and F1 per ArchiveII
family, each written atomically as a PNG. Each backend keeps one colour in every panel and
figure (:func:`backend_colours`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..utils.io import atomic_path
from .config import CompareConfig

__all__ = ["make_plots", "backend_colours"]


def _savefig(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def _length_bins(lengths: np.ndarray, n: int = 5) -> np.ndarray:
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, n + 1)).round().astype(int))
    if len(edges) < 2:
        edges = np.array([lengths.min(), lengths.max() + 1])
    edges[-1] = max(edges[-1], lengths.max()) + 1  # right edge exclusive
    return edges


def backend_colours(names: list[str]) -> dict[str, str]:
    """One colour per backend, in the config's order, the same in every figure."""
    palette = [f"C{k}" for k in range(10)] + ["black", "olive", "navy", "teal", "maroon"]
    return {b: palette[k % len(palette)] for k, b in enumerate(names)}


def make_plots(cfg: CompareConfig, result: dict[str, Any], out: Path, log=print) -> list[str]:
    """Write the plots; returns their file names (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("plots skipped: matplotlib is not installed (pip install 'resm[plot]')")
        return []
    seqs = result["per_sequence"]
    te = result["splits"]["test"]
    lengths = np.array([len(r) for r in te.records])
    edges = _length_bins(lengths)
    centres = [(a + b - 1) / 2 for a, b in zip(edges[:-1], edges[1:])]
    names = [r["backend"] for r in result["rows"] if not str(r["status"]).startswith("skipped")]
    colour = backend_colours([b.name for b in cfg.backends])
    written = []

    def series(backend: str, method: str, key: str) -> list[dict[str, Any]]:
        return [s for s in seqs if s["backend"] == backend and s["method"] == method and s.get(key) is not None]

    # F1 against length
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, method, title in (
        (axes[0], "zeroshot", "zero-shot probe"),
        (axes[1], "supervised", "supervised head (frozen)"),
    ):
        for b in names:
            for m, style in ((method, "-o"), ("mfe", "--s")):
                ss = series(b, m, "f1")
                if not ss:
                    continue
                L = np.array([s["length"] for s in ss])
                f = np.array([s["f1"] for s in ss])
                k = np.searchsorted(edges, L, side="right") - 1
                y = [f[k == i].mean() if np.any(k == i) else np.nan for i in range(len(centres))]
                ax.plot(centres, y, style, color=colour[b], label=b + (" (RNAfold MFE)" if m == "mfe" else ""))
        ax.set_title(title)
        ax.set_xlabel("sequence length (nt), bin centres")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean F1 (test)")
    axes[1].legend(fontsize=8, loc="best")
    fig.suptitle(f"F1 against length: {cfg.name}")
    _savefig(fig, out / "f1_vs_length.png")
    written.append("f1_vs_length.png")

    # time and memory against length: every test sequence (points) and bin means (lines)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for b in names:
        pts: dict[str, dict[str, Any]] = {}
        for s in seqs:
            if s["backend"] == b and s.get("seconds") is not None:
                pts.setdefault(s["name"], s)  # one timing per sequence, whatever the method
        if not pts:
            continue
        L = np.array([s["length"] for s in pts.values()])
        label = b + (" (RNAfold)" if any(s["method"] == "mfe" for s in pts.values()) else "")
        k = np.searchsorted(edges, L, side="right") - 1
        for ax, vals in (
            (axes[0], [1000 * s["seconds"] for s in pts.values()]),
            (axes[1], [np.nan if s["peak_mem_mb"] is None else s["peak_mem_mb"] for s in pts.values()]),
        ):
            v = np.asarray(vals, dtype=float)
            line = ax.plot(
                centres,
                [np.nanmean(v[k == i]) if np.any((k == i) & ~np.isnan(v)) else np.nan for i in range(len(centres))],
                "-o",
                color=colour[b],
                label=label,
            )[0]
            ax.scatter(L, v, s=8, alpha=0.35, color=line.get_color())
    axes[0].set_ylabel("embedding time per sequence (ms)")
    axes[1].set_ylabel("peak extra memory of one pass (MB)")
    for ax in axes:
        ax.set_xlabel("sequence length (nt); lines: bin means")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(f"time and memory against length ({cfg.device}): {cfg.name}")
    _savefig(fig, out / "time_memory_vs_length.png")
    written.append("time_memory_vs_length.png")

    # per family (ArchiveII)
    fams = sorted({te.family(r) for r in te.records} - {None})
    if not fams:
        if te.archiveii:
            log("per_family.png skipped: no family prefix in the test record names")
        return written
    method = "supervised" if cfg.train.enabled else "zeroshot"
    bars = []
    for b in names:
        for m in (method, "mfe"):
            ss = series(b, m, "f1")
            if ss:
                vals = [np.mean([s["f1"] for s in ss if s["family"] == f] or [np.nan]) for f in fams]
                bars.append((b + (" (RNAfold MFE)" if m == "mfe" else ""), vals, colour[b], m == "mfe"))
    if not bars:
        return written
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(fams) * max(1, len(bars)) / 2), 4))
    width = 0.8 / len(bars)
    x = np.arange(len(fams))
    for i, (label, vals, c, mfe) in enumerate(bars):
        ax.bar(
            x + i * width - 0.4 + width / 2,
            vals,
            width,
            label=label,
            color=c,
            hatch="//" if mfe else None,
            edgecolor="white" if mfe else None,
        )
    ax.set_xticks(x)
    ax.set_xticklabels(fams, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"mean F1 ({'supervised' if method == 'supervised' else 'zero-shot'}; test)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"F1 per ArchiveII family: {cfg.name}")
    _savefig(fig, out / "per_family.png")
    written.append("per_family.png")
    return written
