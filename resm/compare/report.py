"""The tables of ``resm compare``: ``results.md`` (one section per task, with the data,
protocol and budgets the numbers came from), one CSV per task, ``per_sequence.csv`` and
``config.json``, all written atomically; the plots come from :mod:`resm.compare.plots`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..utils.io import atomic_write_text
from .config import CompareConfig
from .data import TaskData
from .plots import make_plots

__all__ = [
    "COLUMNS",
    "RRI_COLUMNS",
    "MRL_COLUMNS",
    "TASK_COLUMNS",
    "TASK_CSV",
    "NA",
    "backends_run",
    "format_markdown",
    "write_outputs",
]

COLUMNS = [
    ("backend", "backend"),
    ("kind", "kind"),
    ("status", "status"),
    ("zeroshot_f1", "zero-shot F1"),
    ("zeroshot_f1_shift", "zero-shot F1 ±1"),
    ("supervised_f1", "supervised F1"),
    ("supervised_f1_shift", "supervised F1 ±1"),
    ("mfe_f1", "classical fold F1"),
    ("mfe_f1_shift", "classical fold F1 ±1"),
    ("embed_s", "embed s (test)"),
    ("peak_mem_mb", "peak MB"),
    ("params_m", "params (M)"),
]
RRI_COLUMNS = [
    ("backend", "backend"),
    ("kind", "kind"),
    ("status", "status"),
    ("auroc", "test AUROC"),
    ("auprc", "test AUPRC"),
    ("val_auroc", "val AUROC"),
    ("embed_s", "embed s (test)"),
    ("train_s", "head train s"),
]
MRL_COLUMNS = [
    ("backend", "backend"),
    ("kind", "kind"),
    ("status", "status"),
    ("r2", "test R²"),
    ("spearman", "test Spearman"),
    ("val_r2", "val R²"),
    ("embed_s", "embed s (test)"),
    ("train_s", "head train s"),
]
TASK_COLUMNS = {"structure": COLUMNS, "rri": RRI_COLUMNS, "mrl": MRL_COLUMNS}
TASK_CSV = {"structure": "results.csv", "rri": "results_rri.csv", "mrl": "results_mrl.csv"}
NA = "n/a"  # what a backend cannot do (no attention maps for the probe, no MRL model in ViennaRNA)


def _fmt(v: Any, key: str) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    if isinstance(v, float):
        if key == "embed_s":
            return f"{v:.2f}"
        if key in ("peak_mem_mb", "train_s"):
            return f"{v:.1f}"
        if key == "params_m":
            return f"{v:.3g}"
        return f"{v:.3f}"
    return str(v).replace("|", "/")


def _table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> list[str]:
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(k), k) for k, _ in columns) + " |")
    return lines


def _budget(sec: Any) -> str:
    warm = f", {sec.warmup_steps} warm-up steps" if sec.warmup_steps else ""
    return (
        f"{sec.steps} AdamW steps through resm's training loop (no weight decay on norms and biases), "
        f"lr {sec.lr:g} (constant{warm}), weight decay {sec.weight_decay:g}, batch {sec.batch}, "
        f"gradient clipping {sec.max_grad_norm:g}, seed {sec.seed}"
    )


def _structure_markdown(cfg: CompareConfig, result: dict[str, Any]) -> list[str]:
    s = result["splits"]
    t, p = cfg.train, cfg.probe
    lines = [
        "## Secondary structure",
        "",
        f"Data (records longer than {cfg.data.max_length} nt left out, seeded subsets, seed {cfg.data.seed}):",
        "",
    ]
    for k in ("train", "val", "test"):
        lines.append(f"- {k}: {len(s[k].records)} structures from `{s[k].path}`")
    lines += [
        "",
        f"- zero-shot: logistic regression on sym+APC attention maps of all layers and heads, fitted on the "
        f"train set ({p.max_pairs_per_seq} sampled non-pairs per structure, C = {p.C}), threshold chosen on val, "
        f"{p.method} decoding; n/a: the backend has no attention maps." + ("" if p.enabled else " (disabled)"),
        f"- supervised: StructureHead {json.dumps(cfg.head, sort_keys=True)} on frozen embeddings "
        f"(cached; each backend's `layer`, default the last), {_budget(t)}, crop {t.crop}, "
        f"pos_weight {t.pos_weight:g}; threshold chosen on val." + ("" if t.enabled else " (disabled)"),
        "- F1: mean over test sequences, strict and with ±1 shift (`resm.structure.metrics`).",
        "- embed s: total seconds of the embedding passes over the test set (ViennaRNA: RNAfold MFE); "
        f"peak MB: largest extra memory of one pass (weights excluded); device {cfg.device}.",
        "",
    ]
    lines += _table(result["rows"], COLUMNS)
    plots = [f for f in result.get("plots", []) if f]
    if plots:
        lines += ["", "Plots: " + ", ".join(f"[{f}]({f})" for f in plots) + "."]
    return lines


def _task_markdown(cfg: CompareConfig, result: dict[str, Any], task: str) -> list[str]:
    data: TaskData = result["task_data"][task]
    common = (
        "on frozen per-residue embeddings (each backend's `layer`, default the last; one pass per distinct "
        "sequence, cached), "
    )
    if task == "rri":
        sec = cfg.rri
        intro = f"Pairs (each partner at most {sec.head_config(1).max_length} nt; seeded subsets, seed {sec.seed}):"
        lines = ["## RNA-RNA interaction", "", intro, ""]
        about = [
            (
                f"- head: InteractionHead {json.dumps(sec.head, sort_keys=True)} {common}the two partners embedded "
                f"apart; {_budget(sec)}; binary cross-entropy on the interaction label; the head after the last step "
                "is scored."
            ),
            (
                "- AUROC / AUPRC on the test pairs (`resm.tasks.rri.rri_metrics`), val AUROC alongside; ViennaRNA: "
                "-dG of `RNA.duplexfold` as the score, no training."
            ),
            (
                "- embed s: seconds of the embedding passes over the test pairs' distinct sequences (ViennaRNA: "
                f"duplexfold over the test pairs); head train s: the head's training steps; device {cfg.device}."
            ),
        ]
        rows, columns = result["rri_rows"], RRI_COLUMNS
    else:
        sec = cfg.mrl
        intro = (
            f"5'UTRs (at most {sec.head_config(1).max_length} nt; seeded subsets, seed {sec.seed}; "
            f"target mean {data.mean:.3f}, sd {data.std:.3f} on train):"
        )
        lines = ["## Mean ribosome load", "", intro, ""]
        about = [
            (
                f"- head: ExpressionHead {json.dumps(sec.head, sort_keys=True)} {common}{_budget(sec)}; mean squared "
                "error on the standardised MRL; the head after the last step is scored."
            ),
            (
                "- R² and Spearman's rho on the test UTRs (`resm.tasks.mrl.mrl_metrics`), val R² alongside; "
                "ViennaRNA has no MRL model (n/a)."
            ),
            (
                "- embed s: seconds of the embedding passes over the test UTRs' distinct sequences; head train s: "
                f"the head's training steps; device {cfg.device}."
            ),
        ]
        rows, columns = result["mrl_rows"], MRL_COLUMNS
    lines += [f"- {k}: {data.about[k]}" for k in ("train", "val", "test")] + ["", *about, ""]
    return lines + _table(rows, columns)


def format_markdown(cfg: CompareConfig, result: dict[str, Any]) -> str:
    """The result tables in markdown (one section per task), with the data, protocol and
    budgets they came from."""
    tasks = result.get("tasks", cfg.tasks)
    intro = (
        "Same data, same frozen-backbone protocol, same heads and budgets for every backend "
        f"(`resm compare`); tasks: {', '.join(tasks)}. A skipped backend lacks its package or weights "
        "(or, in one task's table, cannot take that task's sequences); n/a: the backend cannot do it."
    )
    lines = [f"# Backbone comparison: {cfg.name}", "", intro]
    for task in tasks:
        lines.append("")
        lines += _structure_markdown(cfg, result) if task == "structure" else _task_markdown(cfg, result, task)
    return "\n".join(lines) + "\n"


def backends_run(result: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The backends of a :func:`resm.compare.harness.run_compare` result that ran (in at least
    one row) and those skipped, each sorted by name."""
    rows = [r for t in ("rows", "rri_rows", "mrl_rows") for r in result[t]]
    skipped = sorted({r["backend"] for r in rows if str(r.get("status", "")).startswith("skipped")})
    ran = sorted({r["backend"] for r in rows} - set(skipped))
    return ran, skipped


def _csv_text(rows: list[dict[str, Any]], keys: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})
    return buf.getvalue()


def write_outputs(cfg: CompareConfig, result: dict[str, Any], log=print) -> list[Path]:
    """Write the tables (one CSV per task that ran), config.json, results.md and, with the
    structure task, per_sequence.csv and the plots; returns the paths."""
    out = Path(result["out_dir"])  # created by the first write (and removed again if the command fails)
    tasks = result.get("tasks", cfg.tasks)
    result["plots"] = make_plots(cfg, result, out, log) if "structure" in tasks else []
    files = []
    task_rows = {"structure": result["rows"], "rri": result.get("rri_rows", []), "mrl": result.get("mrl_rows", [])}
    for task in tasks:
        atomic_write_text(out / TASK_CSV[task], _csv_text(task_rows[task], [k for k, _ in TASK_COLUMNS[task]]))
        files.append(out / TASK_CSV[task])
    if "structure" in tasks:
        keys = ["backend", "method", "name", "length", "family", "f1", "f1_shift", "seconds", "peak_mem_mb"]
        atomic_write_text(out / "per_sequence.csv", _csv_text(result["per_sequence"], keys))
        files.append(out / "per_sequence.csv")
    conf = {
        "name": cfg.name,
        "tasks": list(tasks),
        "data": asdict(cfg.data) if cfg.data else None,
        "backends": [asdict(b) for b in cfg.backends],
        "probe": asdict(cfg.probe),
        "head": cfg.head,
        "train": asdict(cfg.train),
        "rri": asdict(cfg.rri) if cfg.rri else None,
        "mrl": asdict(cfg.mrl) if cfg.mrl else None,
        "device": cfg.device,
        "details": result["details"],
    }
    atomic_write_text(out / "config.json", json.dumps(conf, indent=2, default=str) + "\n")
    files.append(out / "config.json")
    atomic_write_text(out / "results.md", format_markdown(cfg, result))
    files.append(out / "results.md")
    return files + [out / f for f in result["plots"]]
