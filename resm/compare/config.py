"""The ``resm compare`` config: what every task shares (the backends, ``tasks``, output and
device keys; the :class:`Budget` of a trained head; the checks every section uses) and
:func:`parse_config`, which checks a whole config before any work. Each task's own sections
are named by its descriptor (:attr:`resm.tasks.base.CompareSpec.sections`) and checked by their
dataclasses through :func:`resm.config.from_dict` (unknown keys and wrong types are one-line
errors naming the key; ranges are checked on the dataclasses)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..config import ConfigError, PathText, check_device, coerce, config_sections, from_dict
from ..train_config import OptimConfig
from ..utils.device import THREADS_RULE, threads_ok
from ..utils.seeds import SEED_RULE, seed_ok
from .backends import BackendSpec

__all__ = [
    "Budget",
    "TaskSection",
    "positive",
    "number",
    "file_key",
    "head_options",
    "compare_tasks",
    "CompareConfig",
    "parse_config",
]


def positive(where: str, v: Any, allow_none: bool = False, zero: bool = False) -> None:
    """An integer >= 1 (>= 0 with ``zero``; or null with ``allow_none``): the range checks of
    the sections (their types are coerced by :func:`resm.config.from_dict` first)."""
    if v is None and allow_none:
        return
    if not isinstance(v, int) or isinstance(v, bool) or v < (0 if zero else 1):
        raise ConfigError(
            f"{where} must be an integer >= {0 if zero else 1}{' or null' if allow_none else ''}, got {v!r}"
        )


@dataclass
class Budget:
    """A head's training budget, the same for every backend: what the one training loop
    (:class:`resm.train.Trainer`) is given (:meth:`optim`; AdamW with no weight decay on norms
    and biases). Each task that trains a head holds one in its section.

    Attributes:
        steps: optimiser steps.
        lr: learning rate (constant after the warm-up).
        warmup_steps: linear warm-up steps (0: none).
        weight_decay: AdamW weight decay.
        batch: examples per step (and per prediction batch).
        max_grad_norm: gradient clipping (0: none).
        seed: seed of the head's initialisation and of the batches.
    """

    where: ClassVar[str] = ""

    steps: int = 300
    lr: float = 1.0e-3
    warmup_steps: int = 0
    weight_decay: float = 0.01
    batch: int = 32
    max_grad_norm: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        where = self.where
        for k in ("steps", "batch"):
            positive(f"{where}.{k}", getattr(self, k))
        positive(f"{where}.warmup_steps", self.warmup_steps, zero=True)
        if not seed_ok(self.seed):
            raise ConfigError(f"{where}.seed {SEED_RULE}, got {self.seed!r}")
        number(f"{where}.lr", self.lr)
        for k in ("weight_decay", "max_grad_norm"):
            number(f"{where}.{k}", getattr(self, k), strict=False)

    def optim(self) -> OptimConfig:
        """The loop's optimiser settings: AdamW (betas 0.9 / 0.999) at a constant rate after
        the warm-up, gradient clipping."""
        return OptimConfig(
            lr=self.lr,
            weight_decay=self.weight_decay,
            betas=(0.9, 0.999),
            eps=1e-8,
            warmup_steps=self.warmup_steps,
            schedule="constant",
            max_grad_norm=self.max_grad_norm,
        )


def number(where: str, v: Any, low: float = 0.0, strict: bool = True, high: float | None = None) -> None:
    """A real number above ``low`` (``>= low`` unless ``strict``) and below ``high`` when given."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (v > low if strict else v >= low)
    if ok and high is not None:
        ok = v < high
    if not ok:
        rng = f"{'>' if strict else '>='} {low:g}" + (f" and < {high:g}" if high is not None else "")
        raise ConfigError(f"{where} must be a number {rng}, got {v!r}")


def file_key(where: str, v: Any, what: str, optional: bool = False) -> None:
    if optional and v is None:
        return
    if not isinstance(v, str) or not v:
        raise ConfigError(f"{where}: give {what}{' (or null)' if optional else ''}, got {v!r}")


def head_options(where: str, head: Any, head_cls, forbidden: dict[str, str] | None = None) -> dict[str, Any]:
    """Validate a ``head`` mapping (:func:`resm.config.from_dict`): fields of ``head_cls`` except
    the ``forbidden`` ones (name -> why it is not set in the config; default: embed_dim, taken
    from each backend). Returns the options as given."""
    forbidden = {"embed_dim": "taken from each backend"} if forbidden is None else forbidden
    from_dict(head_cls, head, where, fixed=forbidden, extra={"embed_dim": 8})
    return dict(head or {})


@dataclass
class TaskSection(Budget):
    """The section of a sequence-level task that trains its own head on cached embeddings
    (e.g. :class:`resm.compare.rri.RRISection`): caps, head options and the training budget
    (:class:`Budget`). Subclasses set ``task`` and ``head_cls``.

    Attributes:
        max_train, max_val, max_test: seeded random subsets of this size
            (:func:`resm.tasks.base.subset`; null: all), drawn once for every backend.
        head: ``head_cls`` options except embed_dim (taken from each backend).
    """

    task: ClassVar[str] = ""
    head_cls: ClassVar[type] = object

    max_train: int | None = 2000
    max_val: int | None = 500
    max_test: int | None = None
    head: dict[str, Any] | None = field(default_factory=dict)

    @property
    def where(self) -> str:
        return self.task

    def __post_init__(self) -> None:
        super().__post_init__()
        for k in ("max_train", "max_val", "max_test"):
            positive(f"{self.task}.{k}", getattr(self, k), allow_none=True)
        self.head = head_options(f"{self.task}.head", self.head, self.head_cls)

    def head_config(self, embed_dim: int):
        """The task's head config for a backend of width ``embed_dim``."""
        return self.head_cls(**{**self.head, "embed_dim": int(embed_dim)})


def compare_tasks() -> tuple[str, ...]:
    """The tasks ``resm compare`` runs: those whose descriptor (:data:`resm.tasks.TASKS`) has a
    compare spec, in registry order."""
    from ..tasks import tasks_with

    return tasks_with("compare")


def _sections() -> dict[str, tuple[str, str, bool]]:
    """Every compare task's config sections: key -> (task, reference, required)."""
    from ..tasks import TASKS

    out: dict[str, tuple[str, str, bool]] = {}
    for t in compare_tasks():
        for key, ref, required in TASKS[t].compare.sections:
            if key in out:
                raise RuntimeError(f"compare section {key!r} is declared by tasks {out[key][0]} and {t}")
            out[key] = (t, ref, required)
    return out


@dataclass
class CompareConfig:
    """A whole ``resm compare`` config.

    Attributes:
        name: config name (the YAML file's stem): names the default output folder.
        backends: :class:`resm.compare.backends.BackendSpec` entries, run in order.
        tasks: which tasks to run, among those whose descriptor has a compare spec
            (:func:`compare_tasks`: ``structure``, ``rri``, ``mrl``; default: the first of them).
        sections: each task's sections, key -> parsed value (its dataclass; None for a required
            section that is absent), as the tasks' descriptors declare them
            (:attr:`resm.tasks.base.CompareSpec.sections`; e.g. structure: ``data``, ``probe``,
            ``head``, ``train``; rri: ``rri``; mrl: ``mrl``). ``cfg.<key>`` reads one.
        out_dir: output folder (default ``runs/compare/<name>``: a run never overwrites the
            committed results in ``experiments/results/`` unless asked to).
        device: ``auto`` (the GPU when CUDA is available), ``cpu`` or ``cuda[:n]``.
        threads: torch CPU threads (0: torch's default).
        progress: show tqdm progress bars.
        strict: a backend that cannot be loaded (weights or package missing) is an error, and
            nothing is written (``resm compare --strict``); otherwise it is a loud
            ``skipped`` line and a ``skipped: <reason>`` row.
    """

    name: str
    backends: list[BackendSpec]
    tasks: list[str]
    sections: dict[str, Any] = field(default_factory=dict)
    out_dir: PathText | None = None
    device: str = "auto"
    threads: int = 0
    progress: bool = True
    strict: bool = False

    def __getattr__(self, key: str) -> Any:
        sections = self.__dict__.get("sections")
        if sections is not None and key in sections:
            return sections[key]
        raise AttributeError(f"{type(self).__name__} has no attribute or section {key!r}")

    def output_dir(self) -> Path:
        return Path(self.out_dir or f"runs/compare/{self.name}")


COMMON_KEYS = ("backends", "tasks", "out_dir", "device", "threads", "progress", "data_dir", "strict")


def _parse_tasks(raw: Any) -> list[str]:
    TASKS = compare_tasks()
    if raw is None:
        return list(TASKS[:1])
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"tasks: give a non-empty list of {', '.join(TASKS)}, got {raw!r}")
    for t in raw:
        if t not in TASKS:
            raise ConfigError(f"tasks: unknown task {t!r}; known: {', '.join(TASKS)}")
    if len(set(raw)) != len(raw):
        raise ConfigError(f"tasks: a task is listed twice in {raw!r}")
    return [t for t in TASKS if t in raw]  # always run in this order


def _parse_section(ref: str, raw: Any, key: str) -> Any:
    """A section through its reference: a dataclass (:func:`resm.config.from_dict`) or a
    function ``parse(raw, key)``."""
    from ..tasks.base import resolve

    obj = resolve(ref)
    if dataclasses.is_dataclass(obj):
        return from_dict(obj, raw, key)
    return obj(raw, key)


def parse_config(cfg: dict[str, Any], name: str = "compare") -> CompareConfig:
    """Validate a config dict (from :func:`resm.config.load_config`); every section goes through
    its task's parser, and every problem is a one-line :class:`resm.config.ConfigError` (a
    ValueError) naming the key. Every key naming a file or a folder (``out_dir``, ``data_dir``,
    a backend's ``checkpoint`` or ``model``, a section's data files) is a
    :data:`resm.config.PathText`: a string, never a number written out."""
    if not isinstance(cfg, dict):
        raise ConfigError("compare config: expected a mapping of sections")
    coerce(PathText | None, cfg.get("data_dir"), "data_dir")  # as load_config reads it
    declared = _sections()
    known = (*declared, *COMMON_KEYS)
    for k in config_sections(cfg):
        if k not in known:
            raise ConfigError(f"compare config: unknown key {k!r}; known: {', '.join(known)}")
    tasks = _parse_tasks(cfg.get("tasks"))
    for key, (task, _, required) in declared.items():
        if required and task in tasks and cfg.get(key) is None:
            raise ConfigError(f"compare config: task {task} needs a section {key!r}")
    sections: dict[str, Any] = {}
    for key, (_task, ref, required) in declared.items():
        # a required section present is checked even when its task is off; an optional one
        # always takes its defaults
        sections[key] = None if required and cfg.get(key) is None else _parse_section(ref, cfg.get(key), key)
    raw = cfg.get("backends")
    if not isinstance(raw, list) or not raw:
        raise ConfigError("backends: give a non-empty list of {name, kind, ...} entries")
    backends = [BackendSpec.from_dict(d, f"backends[{i}]") for i, d in enumerate(raw)]
    seen = set()
    for b in backends:
        if b.name in seen:
            raise ConfigError(f"backends: name {b.name!r} is used twice")
        seen.add(b.name)
    # null is the default; any other value is a name (0 or false was taken for auto), held to
    # the rule of train.device and --device ('cudafoo' and 'cuda:abc' passed, then failed in torch)
    device = "auto" if cfg.get("device") is None else coerce(str, cfg["device"], "device")
    if not (device in ("cpu", "auto") or device.startswith("cuda")):
        raise ConfigError(f"device must be auto, cpu or cuda[:n], got {device!r}")
    check_device(device, "device")
    if device == "auto":
        from ..utils.device import resolve_device

        device = resolve_device(device)
    threads = coerce(int, cfg.get("threads") or 0, "threads")
    if not threads_ok(threads):
        raise ConfigError(f"threads {THREADS_RULE}, got {threads!r}")
    return CompareConfig(
        name=name,
        backends=backends,
        tasks=tasks,
        sections=sections,
        out_dir=coerce(PathText | None, cfg.get("out_dir"), "out_dir"),
        device=device,
        threads=threads,
        progress=coerce(bool, cfg.get("progress", True), "progress"),
        strict=coerce(bool, cfg.get("strict", False), "strict"),
    )
