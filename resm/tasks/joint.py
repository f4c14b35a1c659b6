"""Several heads on one shared encoder (``task: joint``): one LoRA adapter trained jointly for
secondary structure, RNA–RNA interaction and expression (``configs/finetune/shared.yaml``).

Config::

    task: joint
    model: {init: ..., mode: adapters, adapter: {r: 8}}   # one encoder / adapter for all heads
    tasks:
      structure: {head: {...}, data: {...}, loss: {...}, weight: 1.0}
      rri: {head: {...}, data: {...}, weight: 1.0}
      mrl: {head: {...}, data: {...}, weight: 1.0}
    optim: ...
    train: ...

Each sub-task (:class:`JointEntry`) is the ordinary single-head task (any task whose
descriptor in :data:`resm.tasks.TASKS` has ``joint``: :class:`resm.tasks.structure_task.StructureTask`,
:class:`resm.tasks.rri.RRITask`, :class:`resm.tasks.mrl.MRLTask`) built on the shared encoder,
with the sections it reads (``head``, ``data``, and ``loss`` for a task that has one). The
training stream interleaves their batches round-robin; a step's loss is the named sub-task's
loss times its weight, and each batch makes one encoder pass. Validation reports every
sub-task's metrics prefixed with its name, and ``val_loss`` is their weighted sum. The bundle
holds the shared adapter once and one head file per task, each head's entry made by its
sub-task's ``bundle_head`` (its decoding settings and last validation metrics with it, from its
``finish_head``, which every process runs before the bundle is written); ``resm
fold``, ``resm interact``, ``resm predict --task mrl`` and :func:`resm.load_bundle` read it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError, from_dict
from .base import (
    BUNDLE_DIR,
    SEQUENCE_KEYS,
    ModelConfig,
    TaskModel,
    TaskSpec,
    build_encoder,
    bundle_outputs,
    save_bundle,
)

__all__ = ["JointEntry", "JointTask", "JointStream", "sub_tasks"]


def sub_tasks() -> dict[str, type]:
    """The tasks that can be sub-tasks (their descriptor's ``joint``): name -> class."""
    from . import TASKS

    return {n: s.cls for n, s in TASKS.items() if s.joint}


@dataclass
class JointEntry:
    """One sub-task of ``tasks``: its ``head`` and ``data`` sections (as in the single-head
    task's config), its ``loss`` section when the task has one (``structure``), and the weight
    of its loss."""

    head: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    loss: dict[str, Any] | None = None
    weight: float = 1.0

    def __post_init__(self):
        if not self.weight >= 0:
            raise ConfigError(f"weight must be >= 0, got {self.weight}")


class JointStream:
    """Round-robin over named sub-streams; resumable (each sub-stream keeps its own state)."""

    def __init__(self, streams: dict[str, Any]):
        self.streams = streams
        self.names = list(streams)
        self.turn = 0
        self._iters: dict[str, Iterator] = {}

    def __iter__(self) -> Iterator[tuple[str, list[Any]]]:
        self._iters = {n: iter(s) for n, s in self.streams.items()}
        while True:
            name = self.names[self.turn % len(self.names)]
            batch = next(self._iters[name])
            self.turn += 1
            yield name, batch

    def state_dict(self) -> dict[str, Any]:
        return {"turn": self.turn, **{n: s.state_dict() for n, s in self.streams.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.turn = int(state["turn"])
        for n, s in self.streams.items():
            s.load_state_dict(state[n])


class JointTask:
    """Several heads on one shared encoder (see the module notes)."""

    name = "joint"
    sections = ("model", "tasks")
    output = BUNDLE_DIR
    unused_parameters = True  # a batch trains one head: DDP must not wait for the others' gradients

    def __init__(self, cfg: dict[str, Any]):
        self.model_cfg = ModelConfig.for_task(cfg.get("model"), "joint")
        subs = cfg.get("tasks") or {}
        known = sub_tasks()
        if not isinstance(subs, dict) or not subs:
            raise ConfigError(f"tasks: name at least one sub-task ({sorted(known)})")
        unknown = sorted(set(subs) - set(known))
        if unknown:
            raise ConfigError(f"tasks: unknown task(s) {unknown}; known: {sorted(known)}")
        entries = {name: from_dict(JointEntry, sub, f"tasks.{name}") for name, sub in subs.items()}
        enc = build_encoder(self.model_cfg)
        self.scheme, self.source = enc[1], enc[2]
        self.tasks, self.weights = {}, {}
        heads, apply = {}, {}
        for name, entry in entries.items():
            self.weights[name] = entry.weight
            sub = {"model": cfg.get("model"), "head": entry.head, "data": entry.data}
            if entry.loss is not None:
                if "loss" not in known[name].sections:
                    raise ConfigError(f"tasks.{name}.loss: task {name} has no loss section")
                sub["loss"] = entry.loss
            task = known[name](sub, encoder=enc)
            self.tasks[name] = task
            heads[name] = task.model.heads[task.head_name]
            apply[name] = task.model.appliers[task.head_name]
        self.model = TaskModel(enc[0], heads, apply)
        self.final_metrics: dict[str, float] = {}

    def train_stream(self, rank: int, world_size: int) -> JointStream:
        return JointStream({n: t.train_stream(rank, world_size) for n, t in self.tasks.items()})

    def loss(self, model, item, generator, device):
        name, batch = item
        loss, info = self.tasks[name].loss(model, batch, generator, device)
        return loss * self.weights[name], {**info, f"loss_{name}": float(loss.detach())}

    def validate(self, model, device) -> dict[str, float]:
        out: dict[str, float] = {}
        total = 0.0
        for name, t in self.tasks.items():
            m = t.validate(model, device)
            total += self.weights[name] * m.get("val_loss", 0.0)
            out.update({f"{name}_{k}": v for k, v in m.items()})
        out["val_loss"] = total
        return out

    def fingerprint(self) -> dict[str, Any]:
        return {
            "task": "joint",
            "model": self.model_cfg.settings("joint"),
            "weights": self.weights,
            "tasks": {n: t.fingerprint() for n, t in self.tasks.items()},
        }

    def finish(self, module, device) -> None:
        """Every process, before the bundle is written: each head's last validation or decoding
        choice (:meth:`resm.train.Task.finish`)."""
        for t in self.tasks.values():
            if hasattr(t, "finish_head"):
                t.finish_head(module, device)

    def notes(self) -> list[str]:
        """Each task's warnings on its data, in the order of ``tasks``."""
        return [line for t in self.tasks.values() for line in getattr(t, "notes", list)()]

    def outputs(self, out_dir: Path) -> list[tuple[Path, str, Any]]:
        return bundle_outputs(out_dir)

    def save_final(self, module, out_dir: Path, state: dict[str, torch.Tensor]) -> None:
        device = next(iter(state.values())).device
        specs = {}
        for name, t in self.tasks.items():
            specs[name] = t.bundle_head(module, device)
        self.final_metrics = {k: v for n, t in self.tasks.items() for k, v in _flat(n, t.final_metrics)}
        save_bundle(Path(out_dir) / BUNDLE_DIR, module, self.scheme, self.source, specs)

    def summary(self) -> dict[str, Any]:
        return {"final": self.final_metrics}


def _flat(prefix: str, metrics: dict[str, Any]):
    """``(prefix_key, value)`` of ``metrics``, nested dicts flattened (``structure_val_f1_mean``)."""
    for k, v in metrics.items():
        if isinstance(v, dict):
            yield from _flat(f"{prefix}_{k}", v)
        else:
            yield f"{prefix}_{k}", v


TASK = TaskSpec("joint", JointTask, SEQUENCE_KEYS, config="shared", order=40)
