"""Every training task of resm, in one registry, and the entry point that trains one.

``TASKS`` maps a task name to its class: ``mlm`` (masked-LM pretraining,
:mod:`resm.tasks.mlm`), ``structure`` (:mod:`resm.tasks.structure_task`), ``rri``
(:mod:`resm.tasks.rri`), ``mrl`` (:mod:`resm.tasks.mrl`) and ``joint`` (several heads on one
encoder, :mod:`resm.tasks.joint`). A task class follows :class:`resm.train.Task` and names the
config ``sections`` it reads and the ``output`` it writes into ``train.out_dir``; what the tasks
share (the ``model`` section, :class:`resm.tasks.base.ModelConfig`; streams, bundles) is in
:mod:`resm.tasks.base`. :func:`run` trains one through the one loop, :func:`resm.train.run_task`:
``resm pretrain`` runs ``mlm``, ``resm finetune`` the task its config names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..config import ConfigError, from_dict
from ..train import TrainConfig, run_task
from .joint import JointTask
from .mlm import MLMTask
from .mrl import MRLTask
from .rri import RRITask
from .structure_task import StructureTask

__all__ = ["TASKS", "FINETUNE_TASKS", "run"]

TASKS = {"mlm": MLMTask, "structure": StructureTask, "rri": RRITask, "mrl": MRLTask, "joint": JointTask}
FINETUNE_TASKS = ("structure", "rri", "mrl", "joint")


def run(cfg: dict[str, Any], default: str | None = None, known: Sequence[str] = tuple(TASKS)) -> dict[str, Any]:
    """Train the task named by ``cfg["task"]`` (``default`` when the config names none) on a
    loaded config (:func:`resm.config.load_config`); ``known`` limits the choice.

    Returns the :meth:`resm.train.Trainer.fit` result plus ``model_file`` (what the task wrote
    into ``train.out_dir``) and the task's summary (``final`` validation metrics; the
    structure task's decoding ``threshold``)."""
    name = cfg.get("task", default)
    if name not in known:
        raise ConfigError(f"unknown task {name!r}; known tasks: {list(known)}")
    cls = TASKS[name]
    out_dir = Path(from_dict(TrainConfig, cfg.get("train"), "train").out_dir)
    result, task = run_task(cls, cfg, set(cls.sections) | {"task"})
    result.update(model_file=str(out_dir / cls.output), **task.summary())
    return result
