"""``resm compare``: every backbone on the same tasks, splits, budgets and metrics (the run).

The question it answers: does a protein language model read through a nucleotide -> protein
letter mapping do as well as a model trained on nucleotides? Backends
(:mod:`resm.compare.backends`: mapped ESM-2, the native-nucleotide ESM-2 control, RNA-FM, other
RNA LMs through the optional multimolecule package, ViennaRNA and the other classical folders as
the classical reference and one-hot nucleotides as the no-pretraining floor) all go through one
frozen-backbone protocol, for each task named in the config's ``tasks`` list.

Everything task-specific comes from the task's descriptor, :attr:`resm.tasks.base.TaskSpec.compare`
(a :class:`resm.tasks.base.CompareSpec`): its config sections, its data loader (run once, before
any backend, so every backend sees the same examples), its runner for one loaded backend, its
table's columns and CSV, its section of ``results.md`` and any other outputs. This module holds
no list of tasks: a task whose descriptor has a compare spec is offered by ``tasks:``. The
tasks shipped, each with its module in this package: ``structure`` (:mod:`resm.compare.structure`:
zero-shot attention probe, supervised head on frozen embeddings, classical folders), ``rri``
(:mod:`resm.compare.rri`) and ``mrl`` (:mod:`resm.compare.mrl`).

The sequence-level tasks train the task's own head on frozen embeddings: every distinct sequence
is embedded once (``backend.embed``, per-residue (L, E)) and cached in memory, and a
:class:`resm.compare.training.CachedEncoder` hands a batch's cached rows, padded, with their
mask, to a :class:`resm.tasks.base.TaskModel` (:func:`sequence_task_model`), so the heads, the
tasks' predict functions and batch layouts are used unchanged. Batches come from
:class:`resm.tasks.base.ItemStream` (seeded: the same batches in the same order for every
backend); the heads are trained by :class:`resm.train.Trainer` on the tasks' losses. There is no
model selection: the head after the last step is scored.

Training budget (every head): AdamW through the loop, so no weight decay on norms and biases
(the loop's parameter groups), constant learning rate after an optional linear warm-up
(``warmup_steps``, default 0), gradient clipping, no validation during training; the loop's run
folder is temporary. Caps are seeded subsets (:func:`resm.tasks.base.subset`), drawn once, so
every backend sees the same examples.

Outputs under ``out_dir`` (default ``runs/compare/<config name>/``), all written atomically by
:mod:`resm.compare.report`: ``results.md`` (one section and table per task), one CSV per task
(its descriptor's ``csv``), the task's other outputs (the structure task's
``per_sequence.csv`` and plots) and ``config.json``. A backend whose package or weights are
missing (a checkpoint written with ``{data_dir}`` too: ``resm compare`` leaves the backends out of
its check of missing data files, unless ``--strict``) is a ``skipped: <reason>`` row in every
task's table (``--strict``: an error, nothing written); one that cannot take a task's
sequences is skipped in that task's table only. "n/a" marks what a backend cannot do.

Timing and memory: :mod:`resm.compare.measure`.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..tasks.base import TaskModel
from .backends import Backend, BackendSpec, BackendUnavailable, make_backend
from .config import CompareConfig, TaskSection, compare_tasks, parse_config
from .data import TaskData
from .measure import embed_unique
from .report import write_outputs
from .training import CachedEncoder

__all__ = [
    "run_compare",
    "empty_row",
    "check_length",
    "nanmax",
    "sequence_task_model",
    "task_details",
    "cached_scheme",
]


def empty_row(spec: BackendSpec, status: str, columns: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """A table row with every column empty but the backend, its kind and ``status``."""
    row = {k: None for k, _ in columns}
    row.update(backend=spec.name, kind=spec.kind, status=status)
    return row


def check_length(backend: Backend, seqs: Sequence[str]) -> None:
    """:class:`BackendUnavailable` when a sequence is longer than the backend takes."""
    if backend.max_length is not None and seqs:
        longest = max(len(s) for s in seqs)
        if longest > backend.max_length:
            raise BackendUnavailable(f"sequences up to {longest} nt exceed its limit of {backend.max_length} nt")


def _free(backend: Backend | None) -> None:
    if backend is not None:
        backend.close()
    gc.collect()


def nanmax(v: Sequence[float]) -> float | None:
    """The largest value that is not None or NaN (None when there is none)."""
    a = np.asarray([x for x in v if x is not None], dtype=float)
    return None if a.size == 0 or np.all(np.isnan(a)) else float(np.nanmax(a))


def sequence_task_model(backend: Backend, data: TaskData, sec: TaskSection, head_cls, apply, progress: bool):
    """What a sequence-level task's run shares before training (e.g. ``rri``, ``mrl``): every distinct sequence embedded
    once (test first, so its time is measured apart), the head built from the task's seed (the
    same initial weights for every backend) and a :class:`TaskModel` over the cached embeddings.
    Returns ``(model, head, cache, seconds per set)``."""
    name = sec.task
    check_length(backend, [s for part in ("train", "val", "test") for s in data.sequences(part)])
    cache, secs = embed_unique(
        backend,
        [data.sequences("test"), data.sequences("val"), data.sequences("train")],
        progress,
        f"{backend.name}: embed {name}",
    )
    torch.manual_seed(sec.seed)
    head = head_cls(sec.head_config(backend.embed_dim))
    model = TaskModel(CachedEncoder(cache, backend.embed_dim), {name: head}, {name: apply}).to(backend.device)
    return model, head, cache, secs


def task_details(m, mv, loss: float, head, cache, secs, train_s: float) -> dict[str, Any]:
    """The details (``config.json``) of a head trained on cached embeddings."""
    return {
        "test": m,
        "val": mv,
        "final_loss": loss,
        "head_params": sum(q.numel() for q in head.parameters()),
        "distinct_sequences": len(cache),
        "embed_s_all": float(sum(secs)),
        "train_s": train_s,
    }


def cached_scheme():
    """The scheme ``encode_batch`` builds tokens with: the cached encoder never reads them."""
    from ..mapping import DEFAULT_SCHEME, get_scheme

    return get_scheme(DEFAULT_SCHEME)


def run_compare(cfg: CompareConfig | dict[str, Any], name: str = "compare", log=print) -> dict[str, Any]:
    """Run every task of ``cfg`` for every backend and write the tables and plots; returns
    ``{"task_rows" (task -> rows), "rows" (every task's rows, in task order), "<task>_rows"
    (for every task compare offers; empty when it did not run),
    "details", "task_data" (task -> its loaded data), "tasks", "out_dir", "files"}`` and what
    the runners collect (e.g. the structure task's ``per_sequence`` and ``splits``)."""
    from ..tasks import TASKS
    from ..tasks.base import resolve

    if not isinstance(cfg, CompareConfig):
        cfg = parse_config(cfg, name)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    specs = {t: TASKS[t].compare for t in cfg.tasks}
    # every data set is read (and checked) before any backend runs
    task_data = {t: resolve(spec.load)(cfg, log) for t, spec in specs.items()}
    out_dir = cfg.output_dir()
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in cfg.tasks}
    collected: dict[str, list[Any]] = {}
    details: dict[str, Any] = {}
    for spec in cfg.backends:
        backend = None
        t0 = time.perf_counter()
        try:
            backend = make_backend(spec, cfg.device).load()
        except BackendUnavailable as e:
            if cfg.strict:
                raise BackendUnavailable(
                    f"backend {spec.name} cannot be loaded: {e} (--strict; nothing written)"
                ) from None
            log(f"SKIPPED backend {spec.name}: {e}; its rows say so (--strict makes this an error)")
            for t in cfg.tasks:
                rows[t].append(empty_row(spec, f"skipped: {e}", specs[t].columns))
            _free(backend)
            continue
        det: dict[str, Any] = {}
        for t in cfg.tasks:
            try:
                out = resolve(specs[t].run)(backend, cfg, task_data[t], log)
                row, det[t] = out[0], out[1]
                for key, items in (out[2] if len(out) > 2 else {}).items():
                    collected.setdefault(key, []).extend(items)
            except BackendUnavailable as e:
                if cfg.strict:
                    raise BackendUnavailable(
                        f"backend {spec.name} cannot run {t}: {e} (--strict; nothing written)"
                    ) from None
                log(f"SKIPPED backend {spec.name} on {t}: {e}")
                row, det[t] = empty_row(spec, f"skipped: {e}", specs[t].columns), {"skipped": str(e)}
            rows[t].append(row)
        _free(backend)
        det["seconds_total"] = time.perf_counter() - t0
        details[spec.name] = det
    ran = [r for t in cfg.tasks for r in rows[t] if not str(r.get("status", "")).startswith("skipped")]
    if not ran:
        raise BackendUnavailable("nothing compared: every backend was skipped (see the SKIPPED lines); nothing written")
    result: dict[str, Any] = {
        "task_rows": rows,
        "rows": [r for t in cfg.tasks for r in rows[t]],
        **{f"{t}_rows": rows.get(t, []) for t in compare_tasks()},
        "details": details,
        "task_data": task_data,
        "tasks": list(cfg.tasks),
        "out_dir": out_dir,
        **collected,
    }
    result["files"] = write_outputs(cfg, result, log)
    return result
