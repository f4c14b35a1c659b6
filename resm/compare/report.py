"""The outputs of ``resm compare``: ``results.md`` (one section per task, with the data,
protocol and budgets the numbers came from: each task's descriptor names the function that
writes its section), one CSV per task (the descriptor's ``columns`` and ``csv``), each task's
other outputs (the descriptor's ``write``: the structure task's ``per_sequence.csv`` and plots,
:mod:`resm.compare.plots`) and ``config.json``, all written atomically."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..utils.io import atomic_write_text
from .config import CompareConfig

__all__ = [
    "NA",
    "EMBEDDINGS",
    "table",
    "budget_text",
    "section",
    "write_csv",
    "backends_run",
    "format_markdown",
    "write_outputs",
]

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


def table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> list[str]:
    """A markdown table of ``rows`` under ``(key, header)`` columns."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(k), k) for k, _ in columns) + " |")
    return lines


def budget_text(sec: Any) -> str:
    """A :class:`resm.compare.config.Budget` in words."""
    warm = f", {sec.warmup_steps} warm-up steps" if sec.warmup_steps else ""
    return (
        f"{sec.steps} AdamW steps through resm's training loop (no weight decay on norms and biases), "
        f"lr {sec.lr:g} (constant{warm}), weight decay {sec.weight_decay:g}, batch {sec.batch}, "
        f"gradient clipping {sec.max_grad_norm:g}, seed {sec.seed}"
    )


EMBEDDINGS = (
    "on frozen per-residue embeddings (each backend's `layer`, default the last; one pass per distinct "
    "sequence, cached), "
)


def section(
    title: str,
    intro: str,
    about: dict[str, str],
    notes: Sequence[str],
    rows: list[dict[str, Any]],
    columns: Sequence[tuple[str, str]],
) -> list[str]:
    """One task's section of ``results.md``: the ``## title``, the ``intro`` line, the train / val /
    test sets as ``about`` describes them, the ``notes`` (protocol, metrics, timings; each a
    "- ..." line) and the table of ``rows``."""
    lines = [f"## {title}", "", intro, ""]
    lines += [f"- {k}: {about[k]}" for k in ("train", "val", "test")] + ["", *notes, ""]
    return lines + table(rows, columns)


def format_markdown(cfg: CompareConfig, result: dict[str, Any]) -> str:
    """The result tables in markdown (one section per task), with the data, protocol and
    budgets they came from."""
    from ..tasks import TASKS
    from ..tasks.base import resolve

    tasks = result.get("tasks", cfg.tasks)
    intro = (
        "Same data, same frozen-backbone protocol, same heads and budgets for every backend "
        f"(`resm compare`); tasks: {', '.join(tasks)}. A skipped backend lacks its package or weights "
        "(or, in one task's table, cannot take that task's sequences); n/a: the backend cannot do it."
    )
    lines = [f"# Backbone comparison: {cfg.name}", "", intro]
    for task in tasks:
        lines.append("")
        lines += resolve(TASKS[task].compare.report)(cfg, result, result["task_rows"][task])
    return "\n".join(lines) + "\n"


def backends_run(result: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The backends of a :func:`resm.compare.harness.run_compare` result that ran (in at least
    one row) and those skipped, each sorted by name."""
    rows = [r for task_rows in result["task_rows"].values() for r in task_rows]
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


def write_csv(path: Path, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """``rows`` as a CSV of the ``keys`` columns (empty cells for None), written atomically."""
    atomic_write_text(path, _csv_text(rows, keys))


def _section(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) else value


def write_outputs(cfg: CompareConfig, result: dict[str, Any], log=print) -> list[Path]:
    """Write each task's other outputs (its descriptor's ``write``, e.g. the structure plots),
    its table as a CSV, config.json and results.md; returns the paths."""
    from ..tasks import TASKS
    from ..tasks.base import resolve

    out = Path(result["out_dir"])  # created by the first write (and removed again if the command fails)
    tasks = result.get("tasks", cfg.tasks)
    extra: list[str] = []
    for task in tasks:
        if TASKS[task].compare.write:
            extra += resolve(TASKS[task].compare.write)(cfg, result, out, log)
    files = []
    for task in tasks:
        spec = TASKS[task].compare
        write_csv(out / spec.csv, result["task_rows"][task], [k for k, _ in spec.columns])
        files.append(out / spec.csv)
    conf = {
        "name": cfg.name,
        "tasks": list(tasks),
        "backends": [asdict(b) for b in cfg.backends],
        **{k: _section(v) for k, v in cfg.sections.items()},
        "device": cfg.device,
        "details": result["details"],
    }
    atomic_write_text(out / "config.json", json.dumps(conf, indent=2, default=str) + "\n")
    files.append(out / "config.json")
    atomic_write_text(out / "results.md", format_markdown(cfg, result))
    files.append(out / "results.md")
    return files + [out / f for f in extra if f]
