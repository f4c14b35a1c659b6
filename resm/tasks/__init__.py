"""Every training task of resm, in one registry, and the entry point that trains one.

``TASKS`` maps a task name to its descriptor, a :class:`resm.tasks.base.TaskSpec`: the task
class, the ``model`` keys it reads, its head (:data:`resm.heads.HEADS`), its shipped config and
what it supports (``resm finetune``, a ``task: joint`` sub-task, ``resm predict --task``, a
``resm compare`` runner). The tasks: ``mlm`` (masked-LM pretraining, :mod:`resm.tasks.mlm`),
``structure`` (:mod:`resm.tasks.structure_task`), ``rri`` (:mod:`resm.tasks.rri`), ``mrl``
(:mod:`resm.tasks.mrl`) and ``joint`` (several heads on one encoder, :mod:`resm.tasks.joint`).

Each module of this package that holds a task declares its descriptor as a module-level
``TASK``; the registry is their union, so a new task is one new module here (with its head in
:mod:`resm.heads` and its config in ``configs/finetune/``) and nothing else changes. A task
class follows :class:`resm.train.Task` and names the config ``sections`` it reads and the
``output`` it writes into ``train.out_dir``; what the tasks share (the ``model`` section,
:class:`resm.tasks.base.ModelConfig`; streams, bundles) is in :mod:`resm.tasks.base`.
:func:`run` trains one through the one loop, :func:`resm.train.run_task`: ``resm pretrain``
runs ``mlm``, ``resm finetune`` the task its config names.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import ConfigError, from_dict
from ..train import run_task
from ..train_config import TrainConfig

__all__ = ["TASKS", "FINETUNE_TASKS", "tasks_with", "run"]


def _discover() -> dict[str, Any]:
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        spec = getattr(importlib.import_module(f"{__name__}.{info.name}"), "TASK", None)
        if spec is not None:
            found.append(spec)
    names = [s.name for s in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RuntimeError(f"task(s) {twice} declared twice in resm.tasks")
    return {s.name: s for s in sorted(found, key=lambda s: (s.order, s.name))}


TASKS = _discover()


def tasks_with(what: str) -> tuple[str, ...]:
    """The names of the tasks whose descriptor has ``what`` (``finetune``, ``joint``,
    ``predict``, ``compare``, ``head``) set, in registry order."""
    return tuple(n for n, s in TASKS.items() if getattr(s, what))


FINETUNE_TASKS = tasks_with("finetune")


def run(
    cfg: dict[str, Any],
    default: str | None = None,
    known: Sequence[str] | None = None,
    config_file: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train the task named by ``cfg["task"]`` (``default`` when the config names none) on a
    loaded config (:func:`resm.config.load_config`, read from ``config_file``, which the run
    may not replace); ``known`` limits the choice.

    Returns the :meth:`resm.train.Trainer.fit` result plus ``model_file`` (what the task wrote
    into ``train.out_dir``) and the task's summary (``final`` validation metrics; the
    structure task's decoding ``threshold``)."""
    known = tuple(TASKS) if known is None else known
    name = cfg.get("task", default)
    if name not in known:  # named with its file and key: an empty config said "unknown task None"
        where = f"{os.fspath(config_file)}: " if config_file is not None else ""
        what = "missing" if name is None else f"unknown task {name!r}"
        raise ConfigError(f"{where}task: {what}; known tasks: {list(known)}")
    cls = TASKS[name].cls
    out_dir = from_dict(TrainConfig, cfg.get("train"), "train").out_dir
    result, task = run_task(cls, cfg, set(cls.sections) | {"task"}, config_file)  # refuses a null out_dir
    result.update(model_file=str(Path(out_dir) / cls.output), **task.summary())
    return result
