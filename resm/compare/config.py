"""The ``resm compare`` config: its sections, each a dataclass validated by
:func:`resm.config.from_dict` (unknown keys and wrong types are one-line errors naming the key;
ranges are checked on the dataclasses), and :func:`parse_config`, which checks a whole config
before any work."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..config import ConfigError, coerce, from_dict
from ..heads.mrl import ExpressionHeadConfig
from ..heads.pair_map import StructureHeadConfig
from ..heads.rri import InteractionHeadConfig
from ..train import OptimConfig
from .backends import BackendSpec

__all__ = [
    "DataSection",
    "ProbeSection",
    "Budget",
    "TrainSection",
    "TaskSection",
    "RRISection",
    "MRLSection",
    "compare_tasks",
    "CompareConfig",
    "parse_config",
]

HEAD_FORBIDDEN = {
    "embed_dim": "taken from each backend",
    "use_attention": "the head reads embeddings only (the probe covers attention)",
    "attn_channels": "the head reads embeddings only",
    "use_bpp": "the head reads embeddings only (ViennaRNA is its own row)",
}


def _positive(where: str, v: Any, allow_none: bool = False, zero: bool = False) -> None:
    """An integer >= 1 (>= 0 with ``zero``; or null with ``allow_none``): the range checks of
    the sections (their types are coerced by :func:`resm.config.from_dict` first)."""
    if v is None and allow_none:
        return
    if not isinstance(v, int) or isinstance(v, bool) or v < (0 if zero else 1):
        raise ConfigError(
            f"{where} must be an integer >= {0 if zero else 1}{' or null' if allow_none else ''}, got {v!r}"
        )


@dataclass
class DataSection:
    """The structure sets: the same records for every backend.

    Attributes:
        train: structures to fit the probe and train the head on: any file
            :func:`resm.structure.io.read_structures` reads (dbn, bpseq, ct, pairs; ``.gz`` ok) or
            an ArchiveII CSV (:func:`resm.structure.io.read_archiveii_csv`).
        val: structures to choose the decoding thresholds on.
        test: structures the F1 is reported on (an ArchiveII CSV also gives ``per_family.png``).
        max_train, max_val, max_test: seeded random subsets of this size (null: all).
        max_length: records longer than this are left out of every set (no cropping at test).
        seed: seed of the subsets.
    """

    train: str = ""
    val: str = ""
    test: str = ""
    max_train: int | None = 100
    max_val: int | None = 100
    max_test: int | None = 200
    max_length: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        for k in ("train", "val", "test"):
            if not getattr(self, k):
                raise ConfigError(f"data.{k}: give a structure file")
        for k in ("max_train", "max_val", "max_test"):
            _positive(f"data.{k}", getattr(self, k), allow_none=True)
        _positive("data.max_length", self.max_length)
        _positive("data.seed", self.seed, zero=True)


@dataclass
class ProbeSection:
    """The zero-shot attention probe.

    Attributes:
        enabled: run it (backends without attention maps show "n/a").
        max_pairs_per_seq: sampled non-pairs per training structure.
        C: inverse L2 strength of the logistic regression.
        min_sep: pairs need ``j - i > min_sep``.
        method: decoding, ``greedy`` or ``matching``.
        seed: seed of the non-pair sampling.
    """

    enabled: bool = True
    max_pairs_per_seq: int = 1000
    C: float = 1.0
    min_sep: int = 3
    method: str = "greedy"
    seed: int = 0

    def __post_init__(self) -> None:
        _positive("probe.max_pairs_per_seq", self.max_pairs_per_seq)
        _positive("probe.min_sep", self.min_sep, zero=True)
        if self.method not in ("greedy", "matching"):
            raise ConfigError(f"probe.method must be greedy or matching, got {self.method!r}")
        if not isinstance(self.C, (int, float)) or self.C <= 0:
            raise ConfigError(f"probe.C must be a positive number, got {self.C!r}")


@dataclass
class Budget:
    """A head's training budget, the same for every backend: what the one training loop
    (:class:`resm.train.Trainer`) is given (:meth:`optim`; AdamW with no weight decay on norms
    and biases). The ``train``, ``rri`` and ``mrl`` sections hold one each.

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
            _positive(f"{where}.{k}", getattr(self, k))
        for k in ("seed", "warmup_steps"):
            _positive(f"{where}.{k}", getattr(self, k), zero=True)
        _number(f"{where}.lr", self.lr)
        for k in ("weight_decay", "max_grad_norm"):
            _number(f"{where}.{k}", getattr(self, k), strict=False)

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


@dataclass
class TrainSection(Budget):
    """The supervised structure head's budget (the fields of :class:`Budget`; ``batch``
    counts training windows, ``seed`` also draws the crops), and:

    Attributes:
        enabled: train the head.
        crop: window length; longer records are cropped at a random start (pairs leaving the
            window are dropped); shorter ones are used whole.
        pos_weight: weight of the paired term of the binary cross-entropy.
        tile: tile of the memory-bounded inference (:meth:`StructureHead.predict_tiled`).
    """

    where: ClassVar[str] = "train"

    enabled: bool = True
    steps: int = 200
    lr: float = 2.0e-3
    batch: int = 4
    crop: int = 160
    pos_weight: float = 10.0
    tile: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        for k in ("crop", "tile"):
            _positive(f"train.{k}", getattr(self, k))
        _number("train.pos_weight", self.pos_weight)


def _number(where: str, v: Any, low: float = 0.0, strict: bool = True, high: float | None = None) -> None:
    """A real number above ``low`` (``>= low`` unless ``strict``) and below ``high`` when given."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (v > low if strict else v >= low)
    if ok and high is not None:
        ok = v < high
    if not ok:
        rng = f"{'>' if strict else '>='} {low:g}" + (f" and < {high:g}" if high is not None else "")
        raise ConfigError(f"{where} must be a number {rng}, got {v!r}")


def _file_key(where: str, v: Any, what: str, optional: bool = False) -> None:
    if optional and v is None:
        return
    if not isinstance(v, str) or not v:
        raise ConfigError(f"{where}: give {what}{' (or null)' if optional else ''}, got {v!r}")


def _head_options(where: str, head: Any, head_cls, forbidden: dict[str, str] | None = None) -> dict[str, Any]:
    """Validate a ``head`` mapping (:func:`resm.config.from_dict`): fields of ``head_cls`` except
    the ``forbidden`` ones (name -> why it is not set in the config; default: embed_dim, taken
    from each backend). Returns the options as given."""
    forbidden = {"embed_dim": "taken from each backend"} if forbidden is None else forbidden
    from_dict(head_cls, head, where, fixed=forbidden, extra={"embed_dim": 8})
    return dict(head or {})


@dataclass
class TaskSection(Budget):
    """What the ``rri`` and ``mrl`` sections share: caps, head options and the training budget
    (:class:`Budget`; documented on :class:`RRISection`). Subclasses set ``task`` and
    ``head_cls``."""

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
            _positive(f"{self.task}.{k}", getattr(self, k), allow_none=True)
        self.head = _head_options(f"{self.task}.head", self.head, self.head_cls)

    def head_config(self, embed_dim: int):
        """The task's head config for a backend of width ``embed_dim``."""
        return self.head_cls(**{**self.head, "embed_dim": int(embed_dim)})


@dataclass
class RRISection(TaskSection):
    """The RNA-RNA interaction task (``rri``): the same pairs, head and budget for every backend.

    Attributes:
        train: pairs file (:func:`resm.data.rri.read_pairs`: CSV/TSV with a_name, a_seq, b_name,
            b_seq, label), e.g. ``{data_dir}/rri/MirTarRAW.csv``; split into train and
            validation by :func:`resm.data.rri.split_pairs` (``val_fraction``, ``seed``), as
            ``resm finetune`` does with ``configs/finetune/rri.yaml``.
        val_fraction: share of ``train`` held out for validation.
        val: optional separate validation pairs file (then ``train`` is used whole).
        test: pairs file the metrics are reported on, e.g.
            ``{data_dir}/rri/DeepMirTar_IndTest.tsv`` (the test set of experiments/rri_mrl_cpu).
        max_train, max_val, max_test: seeded random subsets of this size
            (:func:`resm.tasks.base.subset`; null: all), drawn once for every backend.
        head: :class:`resm.heads.rri.InteractionHeadConfig` options except embed_dim (taken from
            each backend); its ``max_length`` is the longest partner accepted (a longer one is
            an error naming the file and line).
        steps, lr, warmup_steps, weight_decay, batch (pairs per step), max_grad_norm: the
            training budget (:class:`Budget`).
        seed: seed of the split, the subsets, the head's initialisation and the batch order.
    """

    task: ClassVar[str] = "rri"
    head_cls: ClassVar[type] = InteractionHeadConfig

    train: str = ""
    val_fraction: float = 0.1
    val: str | None = None
    test: str = ""

    def __post_init__(self) -> None:
        _file_key("rri.train", self.train, "the training pairs file")
        _file_key("rri.test", self.test, "the test pairs file")
        _file_key("rri.val", self.val, "a validation pairs file", optional=True)
        if not self.val:
            _number("rri.val_fraction", self.val_fraction, high=1.0)
        super().__post_init__()


@dataclass
class MRLSection(TaskSection):
    """The mean-ribosome-load task (``mrl``): the same UTRs, head and budget for every backend.

    Attributes:
        train: UTR table (:func:`resm.data.mrl.read_mrl`: a ``utr`` column and a target
            column), e.g. ``{data_dir}/mrl/Smart5UTR_egfp_m1pseudo_2_test20k.csv``; split
            train / validation / test by :func:`resm.data.mrl.split_utrs` (``fractions``,
            ``seed``), as ``resm finetune`` does with ``configs/finetune/mrl.yaml``.
        fractions: train / validation / test shares of ``train``.
        target: target column (null: ``rl``, else ``hrl``).
        test: optional separate test file (target column detected: ``rl``, else ``hrl``);
            then the test share of the split is not used.
        max_train, max_val, max_test: seeded random subsets of this size (null: all).
        head: :class:`resm.heads.mrl.ExpressionHeadConfig` options except embed_dim; its
            ``max_length`` is the longest UTR accepted (a longer one is an error).
        steps, lr, warmup_steps, weight_decay, batch, max_grad_norm: as in :class:`RRISection`.
        seed: seed of the split, the subsets, the head's initialisation and the batch order.
    """

    task: ClassVar[str] = "mrl"
    head_cls: ClassVar[type] = ExpressionHeadConfig

    train: str = ""
    fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    target: str | None = None
    test: str | None = None
    batch: int = 64

    def __post_init__(self) -> None:
        _file_key("mrl.train", self.train, "the UTR file")
        _file_key("mrl.test", self.test, "a test UTR file", optional=True)
        _file_key("mrl.target", self.target, "a column name", optional=True)
        f = self.fractions
        if (
            not isinstance(f, (list, tuple))
            or len(f) != 3
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in f)
            or abs(sum(f) - 1) > 1e-6
            or f[0] <= 0
        ):
            raise ConfigError(f"mrl.fractions must be three shares >= 0 (train > 0) summing to 1, got {f!r}")
        self.fractions = [float(x) for x in f]
        super().__post_init__()


def compare_tasks() -> tuple[str, ...]:
    """The tasks ``resm compare`` runs: those whose descriptor (:data:`resm.tasks.TASKS`) has a
    compare runner, in registry order."""
    from ..tasks import tasks_with

    return tasks_with("compare")


@dataclass
class CompareConfig:
    """A whole ``resm compare`` config.

    Attributes:
        name: config name (the YAML file's stem): names the default output folder.
        data: :class:`DataSection` (the structure sets; needed when ``structure`` is a task).
        backends: :class:`resm.compare.backends.BackendSpec` entries, run in order.
        tasks: which tasks to run, a list of ``structure``, ``rri``, ``mrl`` (default
            ``[structure]``).
        probe: :class:`ProbeSection` (structure).
        head: :class:`resm.heads.pair_map.StructureHeadConfig` options except embed_dim
            (taken from each backend) and the attention / bpp inputs (structure).
        train: :class:`TrainSection` (structure).
        rri: :class:`RRISection` (needed when ``rri`` is a task).
        mrl: :class:`MRLSection` (needed when ``mrl`` is a task).
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
    data: DataSection | None
    backends: list[BackendSpec]
    probe: ProbeSection = field(default_factory=ProbeSection)
    head: dict[str, Any] = field(default_factory=dict)
    train: TrainSection = field(default_factory=TrainSection)
    tasks: list[str] = field(default_factory=lambda: ["structure"])
    rri: RRISection | None = None
    mrl: MRLSection | None = None
    out_dir: str | None = None
    device: str = "auto"
    threads: int = 0
    progress: bool = True
    strict: bool = False

    def head_config(self, embed_dim: int) -> StructureHeadConfig:
        return StructureHeadConfig(**{**self.head, "embed_dim": int(embed_dim)})

    def output_dir(self) -> Path:
        return Path(self.out_dir or f"runs/compare/{self.name}")


TOP_KEYS = (
    "data",
    "backends",
    "tasks",
    "probe",
    "head",
    "train",
    "rri",
    "mrl",
    "out_dir",
    "device",
    "threads",
    "progress",
    "data_dir",
    "strict",
)


def _parse_tasks(raw: Any) -> list[str]:
    TASKS = compare_tasks()
    if raw is None:
        return ["structure"]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"tasks: give a non-empty list of {', '.join(TASKS)}, got {raw!r}")
    for t in raw:
        if t not in TASKS:
            raise ConfigError(f"tasks: unknown task {t!r}; known: {', '.join(TASKS)}")
    if len(set(raw)) != len(raw):
        raise ConfigError(f"tasks: a task is listed twice in {raw!r}")
    return [t for t in TASKS if t in raw]  # always run in this order


def parse_config(cfg: dict[str, Any], name: str = "compare") -> CompareConfig:
    """Validate a config dict (from :func:`resm.config.load_config`); every section goes through
    :func:`resm.config.from_dict`, and every problem is a one-line
    :class:`resm.config.ConfigError` (a ValueError) naming the key."""
    if not isinstance(cfg, dict):
        raise ConfigError("compare config: expected a mapping of sections")
    for k in cfg:
        if k not in TOP_KEYS:
            raise ConfigError(f"compare config: unknown key {k!r}; known: {', '.join(TOP_KEYS)}")
    tasks = _parse_tasks(cfg.get("tasks"))
    if "structure" in tasks and "data" not in cfg:
        raise ConfigError("compare config: missing section 'data' (the structure sets)")
    data = from_dict(DataSection, cfg["data"], "data") if "data" in cfg else None
    sections: dict[str, Any] = {}
    for key, cls in (("rri", RRISection), ("mrl", MRLSection)):
        if key in tasks or cfg.get(key) is not None:  # a section present is checked even when its task is off
            if key in tasks and cfg.get(key) is None:
                raise ConfigError(f"compare config: task {key} needs a section {key!r}")
            sections[key] = from_dict(cls, cfg.get(key), key)
    raw = cfg.get("backends")
    if not isinstance(raw, list) or not raw:
        raise ConfigError("backends: give a non-empty list of {name, kind, ...} entries")
    backends = [BackendSpec.from_dict(d, f"backends[{i}]") for i, d in enumerate(raw)]
    seen = set()
    for b in backends:
        if b.name in seen:
            raise ConfigError(f"backends: name {b.name!r} is used twice")
        seen.add(b.name)
    probe = from_dict(ProbeSection, cfg.get("probe"), "probe")
    train = from_dict(TrainSection, cfg.get("train"), "train")
    head = _head_options("head", cfg.get("head") or {}, StructureHeadConfig, HEAD_FORBIDDEN)
    device = coerce(str, cfg.get("device") or "auto", "device")
    if not (device in ("cpu", "auto") or device.startswith("cuda")):
        raise ConfigError(f"device must be auto, cpu or cuda[:n], got {device!r}")
    if device == "auto":
        from ..utils.device import resolve_device

        device = resolve_device(device)
    threads = coerce(int, cfg.get("threads") or 0, "threads")
    _positive("threads", threads, zero=True)
    return CompareConfig(
        name=name,
        data=data,
        backends=backends,
        probe=probe,
        head=dict(head),
        train=train,
        tasks=tasks,
        rri=sections.get("rri"),
        mrl=sections.get("mrl"),
        out_dir=coerce(str | None, cfg.get("out_dir"), "out_dir"),
        device=device,
        threads=threads,
        progress=coerce(bool, cfg.get("progress", True), "progress"),
        strict=coerce(bool, cfg.get("strict", False), "strict"),
    )
