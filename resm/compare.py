"""``resm compare``: every backbone on the same tasks, splits, budgets and metrics.

The question it answers: does a protein language model read through a nucleotide -> protein
letter mapping do as well as a model trained on nucleotides? Backends
(:mod:`resm.backends`: mapped ESM-2, the native-nucleotide ESM-2 control, RNA-FM, other RNA LMs
through the optional multimolecule package, ViennaRNA as the classical reference and one-hot
nucleotides as the no-pretraining floor) all go through one frozen-backbone protocol, for each
task named in the config's ``tasks`` list (``structure``, ``rri``, ``mrl``; default
``[structure]``).

**structure** (sections ``data``, ``probe``, ``head``, ``train``):

1. **Zero-shot structure probe.** A logistic regression (StandardScaler + L2
   ``LogisticRegression``, as :func:`resm.zeroshot.fit_probe`, but backend-generic) over the
   symmetrised + APC attention maps of all layers and heads, fitted on the training structures
   (all pairs with ``j - i > min_sep`` as positives, ``max_pairs_per_seq`` sampled non-pairs,
   :func:`resm.zeroshot.sample_pairs`); the decoding threshold is chosen on the validation
   structures (:func:`resm.decode.choose_threshold`); F1 on the test structures
   (:func:`resm.metrics.evaluate`, per-sequence mean, strict and ±1 shift). A backend without
   attention maps (one-hot) shows "n/a".
2. **Supervised structure head, backbone frozen.** The same :class:`StructureHeadConfig` and the
   same budget (steps, lr, batch, crop, seed: identical initialisation and identical batches)
   for every backbone: :class:`resm.heads.structure.StructureHead` on the backend's per-residue
   embeddings, computed once per sequence (full sequence) and cached in memory; training windows
   of ``crop`` residues are cut from the cache; plain AdamW steps on
   :func:`resm.heads.structure.pair_loss`. Threshold on validation, F1 on test. The shared
   training loop (:mod:`resm.train`, ``resm finetune``) drives backbones that need gradients
   (adapters, full fine-tuning); a frozen-embedding comparison only trains a head on cached
   features, so this small loop is all it needs.
3. **ViennaRNA row.** RNAfold MFE F1 on the same test structures.

**rri**, RNA-RNA interaction (section ``rri``, :class:`RRISection`): pairs read by
:func:`resm.data.rri.read_pairs`; train / validation are :func:`resm.data.rri.split_pairs` of the
training file (the split of ``resm finetune`` with ``configs/finetune/rri.yaml``) or a separate
validation file; the test file stands apart (``DeepMirTar_IndTest.tsv``, as
``experiments/rri_mrl_cpu``). Metrics on test: AUROC and AUPRC
(:func:`resm.tasks.rri.rri_metrics`); validation AUROC alongside. ViennaRNA's row scores each
pair by ``-dG`` of ``RNA.duplexfold`` (no training).

**mrl**, mean ribosome load (section ``mrl``, :class:`MRLSection`): UTRs read by
:func:`resm.data.mrl.read_mrl`, split train / validation / test by
:func:`resm.data.mrl.split_utrs` (the split of ``configs/finetune/mrl.yaml``), or tested on a
separate file. Metrics on test: R^2 and Spearman's rho (:func:`resm.tasks.mrl.mrl_metrics`);
validation R^2 alongside. ViennaRNA has no MRL model: "n/a".

Both sequence-level tasks train the task's own head (:class:`resm.heads.rri.InteractionHead`,
:class:`resm.heads.mrl.ExpressionHead`, created right after ``torch.manual_seed(seed)``) on
frozen embeddings: every distinct sequence is embedded once (``backend.embed``, per-residue
(L, E)) and cached in memory, and a :class:`CachedEncoder` hands a batch's cached rows, padded,
with their mask, to a :class:`resm.tasks.base.TaskModel`, so the tasks' ``rri_apply`` /
``mrl_apply``, ``predict_rri`` / ``predict_mrl`` and batch layouts (``collate_pairs``,
``encode_batch``) are used unchanged. Batches come from :class:`resm.tasks.base.ItemStream`
(seeded: the same batches in the same order for every backend); plain AdamW steps (constant lr,
gradient clipping) on the tasks' losses (binary cross-entropy on the interaction logit; mean
squared error on the MRL standardised with the training mean and standard deviation). There is
no model selection: the head after the last step is scored. Caps are seeded subsets
(:func:`resm.tasks.base.subset`), drawn once, so every backend sees the same examples.

Outputs under ``out_dir`` (default ``experiments/results/compare_<config name>/``), all written
atomically: ``results.md`` (one section and table per task); one CSV per task:
``results.csv`` (structure: backend x zero-shot F1, supervised F1 strict and ±1, RNAfold MFE
F1, embedding seconds over the test set, peak memory of one forward pass),
``results_rri.csv`` (test AUROC, AUPRC, validation AUROC, embedding seconds over the test
pairs' distinct sequences, head training seconds) and ``results_mrl.csv`` (test R^2,
Spearman, validation R^2, the same seconds), each written when its task ran; for structure
also ``per_sequence.csv`` and the plots ``f1_vs_length.png``, ``time_memory_vs_length.png``
and, when the test set is an ArchiveII CSV (family = the name's prefix before ``_``),
``per_family.png``; and ``config.json``. A backend whose package or weights are missing is a
``skipped: <reason>`` row in every task's table; one whose length limit a task's sequences
exceed is skipped in that task's table only. "n/a" marks what a backend cannot do.

Timing and memory: each sequence's embedding pass (no attention maps) is timed; its peak memory
is the allocator's peak above the start on CUDA and, on CPU, the resident set size sampled every
2 ms by a thread, above the start (approximate: freed memory the allocator keeps, or a pass
shorter than the sampling interval, read as little). Weights are not counted.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .backends import Backend, BackendSpec, BackendUnavailable, ViennaBackend, make_backend
from .heads.mrl import ExpressionHead, ExpressionHeadConfig
from .heads.rri import InteractionHead, InteractionHeadConfig
from .heads.structure import StructureHead, StructureHeadConfig, pair_loss
from .structure.io import Structure
from .tasks.base import TaskModel
from .config import ConfigError
from .utils.io import atomic_path, atomic_write_text

__all__ = [
    "DataSection",
    "ProbeSection",
    "TrainSection",
    "RRISection",
    "MRLSection",
    "TASKS",
    "CompareConfig",
    "parse_config",
    "load_split",
    "TaskData",
    "load_rri",
    "load_mrl",
    "CachedEncoder",
    "train_task_head",
    "PeakMemory",
    "AttentionProbe",
    "fit_attention_probe",
    "train_head",
    "run_compare",
    "format_markdown",
]

HEAD_FORBIDDEN = {
    "embed_dim": "taken from each backend",
    "use_attention": "the head reads embeddings only (the probe covers attention)",
    "attn_channels": "the head reads embeddings only",
    "use_bpp": "the head reads embeddings only (ViennaRNA is its own row)",
}


# --------------------------------------------------------------------------- config
def _check_keys(d: Any, cls, where: str) -> Dict[str, Any]:
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a mapping, got {d!r}")
    known = [f.name for f in fields(cls)]
    for k in d:
        if k not in known:
            raise ConfigError(f"{where}: unknown key {k!r}; known: {', '.join(known)}")
    return d


def _positive(where: str, v: Any, allow_none: bool = False, zero: bool = False) -> None:
    if v is None and allow_none:
        return
    if not isinstance(v, int) or isinstance(v, bool) or v < (0 if zero else 1):
        raise ConfigError(f"{where} must be an integer >= {0 if zero else 1}{' or null' if allow_none else ''}, got {v!r}")


@dataclass
class DataSection:
    """The structure sets: the same records for every backend.

    Attributes:
        train: structures to fit the probe and train the head on: any file
            :func:`resm.structure.read_structures` reads (dbn, bpseq, ct, pairs; ``.gz`` ok) or
            an ArchiveII CSV (:func:`resm.structure.read_archiveii_csv`).
        val: structures to choose the decoding thresholds on.
        test: structures the F1 is reported on (an ArchiveII CSV also gives ``per_family.png``).
        max_train, max_val, max_test: seeded random subsets of this size (null: all).
        max_length: records longer than this are left out of every set (no cropping at test).
        seed: seed of the subsets.
    """

    train: str = ""
    val: str = ""
    test: str = ""
    max_train: Optional[int] = 100
    max_val: Optional[int] = 100
    max_test: Optional[int] = 200
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
class TrainSection:
    """The supervised head's budget: identical for every backend.

    Attributes:
        enabled: train the head.
        steps: AdamW steps.
        lr: learning rate (constant).
        weight_decay: AdamW weight decay.
        batch: training windows per step.
        crop: window length; longer records are cropped at a random start (pairs leaving the
            window are dropped); shorter ones are used whole.
        pos_weight: weight of the paired term of the binary cross-entropy.
        max_grad_norm: gradient clipping (0: none).
        seed: seed of the head's initialisation and of the batches and crops.
        tile: tile of the memory-bounded inference (:meth:`StructureHead.predict_tiled`).
    """

    enabled: bool = True
    steps: int = 200
    lr: float = 2.0e-3
    weight_decay: float = 0.01
    batch: int = 4
    crop: int = 160
    pos_weight: float = 10.0
    max_grad_norm: float = 1.0
    seed: int = 0
    tile: int = 256

    def __post_init__(self) -> None:
        for k in ("steps", "batch", "crop", "tile"):
            _positive(f"train.{k}", getattr(self, k))
        _positive("train.seed", self.seed, zero=True)
        for k in ("lr", "pos_weight"):
            v = getattr(self, k)
            if not isinstance(v, (int, float)) or v <= 0:
                raise ConfigError(f"train.{k} must be a positive number, got {v!r}")
        for k in ("weight_decay", "max_grad_norm"):
            v = getattr(self, k)
            if not isinstance(v, (int, float)) or v < 0:
                raise ConfigError(f"train.{k} must be a number >= 0, got {v!r}")


def _number(where: str, v: Any, low: float = 0.0, strict: bool = True, high: Optional[float] = None) -> None:
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


def _head_options(where: str, head: Any, head_cls, forbidden: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Validate a ``head`` mapping: fields of ``head_cls`` except the ``forbidden`` ones (name ->
    why it is not set in the config; default: embed_dim, taken from each backend)."""
    forbidden = {"embed_dim": "taken from each backend"} if forbidden is None else forbidden
    if head is None:
        return {}
    if not isinstance(head, dict):
        raise ConfigError(f"{where}: expected a mapping, got {head!r}")
    known = {f.name for f in fields(head_cls)} - set(forbidden)
    for k in head:
        if k in forbidden:
            raise ConfigError(f"{where}.{k} cannot be set here ({forbidden[k]})")
        if k not in known:
            raise ConfigError(f"{where}: unknown key {k!r}; known: {', '.join(sorted(known))}")
    try:
        head_cls(**{**head, "embed_dim": 8})
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None
    return dict(head)


@dataclass
class _TaskSection:
    """What the ``rri`` and ``mrl`` sections share: caps, head options and the training budget
    (documented on :class:`RRISection`). Subclasses set ``task`` and ``head_cls``."""

    task: ClassVar[str] = ""
    head_cls: ClassVar[type] = object

    max_train: Optional[int] = 2000
    max_val: Optional[int] = 500
    max_test: Optional[int] = None
    head: Dict[str, Any] = field(default_factory=dict)
    steps: int = 300
    lr: float = 1.0e-3
    weight_decay: float = 0.01
    batch: int = 32
    max_grad_norm: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        where = self.task
        for k in ("max_train", "max_val", "max_test"):
            _positive(f"{where}.{k}", getattr(self, k), allow_none=True)
        for k in ("steps", "batch"):
            _positive(f"{where}.{k}", getattr(self, k))
        _positive(f"{where}.seed", self.seed, zero=True)
        _number(f"{where}.lr", self.lr)
        for k in ("weight_decay", "max_grad_norm"):
            _number(f"{where}.{k}", getattr(self, k), strict=False)
        self.head = _head_options(f"{where}.head", self.head, self.head_cls)

    def head_config(self, embed_dim: int):
        """The task's head config for a backend of width ``embed_dim``."""
        return self.head_cls(**{**self.head, "embed_dim": int(embed_dim)})


@dataclass
class RRISection(_TaskSection):
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
        steps: AdamW steps.
        lr: learning rate (constant).
        weight_decay: AdamW weight decay.
        batch: pairs per step (and per prediction batch).
        max_grad_norm: gradient clipping (0: none).
        seed: seed of the split, the subsets, the head's initialisation and the batch order.
    """

    task: ClassVar[str] = "rri"
    head_cls: ClassVar[type] = InteractionHeadConfig

    train: str = ""
    val_fraction: float = 0.1
    val: Optional[str] = None
    test: str = ""

    def __post_init__(self) -> None:
        _file_key("rri.train", self.train, "the training pairs file")
        _file_key("rri.test", self.test, "the test pairs file")
        _file_key("rri.val", self.val, "a validation pairs file", optional=True)
        if not self.val:
            _number("rri.val_fraction", self.val_fraction, high=1.0)
        super().__post_init__()


@dataclass
class MRLSection(_TaskSection):
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
        steps, lr, weight_decay, batch, max_grad_norm: as in :class:`RRISection`.
        seed: seed of the split, the subsets, the head's initialisation and the batch order.
    """

    task: ClassVar[str] = "mrl"
    head_cls: ClassVar[type] = ExpressionHeadConfig

    train: str = ""
    fractions: List[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    target: Optional[str] = None
    test: Optional[str] = None
    batch: int = 64

    def __post_init__(self) -> None:
        _file_key("mrl.train", self.train, "the UTR file")
        _file_key("mrl.test", self.test, "a test UTR file", optional=True)
        _file_key("mrl.target", self.target, "a column name", optional=True)
        f = self.fractions
        if (not isinstance(f, (list, tuple)) or len(f) != 3
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in f)
                or abs(sum(f) - 1) > 1e-6 or f[0] <= 0):
            raise ConfigError(f"mrl.fractions must be three shares >= 0 (train > 0) summing to 1, got {f!r}")
        self.fractions = [float(x) for x in f]
        super().__post_init__()


TASKS = ("structure", "rri", "mrl")


@dataclass
class CompareConfig:
    """A whole ``resm compare`` config.

    Attributes:
        name: config name (the YAML file's stem): names the default output folder.
        data: :class:`DataSection` (the structure sets; needed when ``structure`` is a task).
        backends: :class:`resm.backends.BackendSpec` entries, run in order.
        tasks: which tasks to run, a list of ``structure``, ``rri``, ``mrl`` (default
            ``[structure]``).
        probe: :class:`ProbeSection` (structure).
        head: :class:`resm.heads.structure.StructureHeadConfig` options except embed_dim
            (taken from each backend) and the attention / bpp inputs (structure).
        train: :class:`TrainSection` (structure).
        rri: :class:`RRISection` (needed when ``rri`` is a task).
        mrl: :class:`MRLSection` (needed when ``mrl`` is a task).
        out_dir: output folder (default ``experiments/results/compare_<name>``).
        device: ``cpu`` or ``cuda[:n]``.
        threads: torch CPU threads (0: torch's default).
        progress: show tqdm progress bars.
    """

    name: str
    data: Optional[DataSection]
    backends: List[BackendSpec]
    probe: ProbeSection = field(default_factory=ProbeSection)
    head: Dict[str, Any] = field(default_factory=dict)
    train: TrainSection = field(default_factory=TrainSection)
    tasks: List[str] = field(default_factory=lambda: ["structure"])
    rri: Optional[RRISection] = None
    mrl: Optional[MRLSection] = None
    out_dir: Optional[str] = None
    device: str = "cpu"
    threads: int = 0
    progress: bool = True

    def head_config(self, embed_dim: int) -> StructureHeadConfig:
        return StructureHeadConfig(**{**self.head, "embed_dim": int(embed_dim)})

    def output_dir(self) -> Path:
        return Path(self.out_dir or f"experiments/results/compare_{self.name}")


TOP_KEYS = ("data", "backends", "tasks", "probe", "head", "train", "rri", "mrl", "out_dir", "device", "threads",
            "progress", "data_dir")


def _parse_tasks(raw: Any) -> List[str]:
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


def parse_config(cfg: Dict[str, Any], name: str = "compare") -> CompareConfig:
    """Validate a config dict (from :func:`resm.config.load_config`); every problem is a
    one-line :class:`resm.train.ConfigError` (a ValueError) naming the key."""
    if not isinstance(cfg, dict):
        raise ConfigError("compare config: expected a mapping of sections")
    for k in cfg:
        if k not in TOP_KEYS:
            raise ConfigError(f"compare config: unknown key {k!r}; known: {', '.join(TOP_KEYS)}")
    tasks = _parse_tasks(cfg.get("tasks"))
    if "structure" in tasks and "data" not in cfg:
        raise ConfigError("compare config: missing section 'data' (the structure sets)")
    data = DataSection(**_check_keys(cfg["data"], DataSection, "data")) if "data" in cfg else None
    sections: Dict[str, Any] = {}
    for key, cls in (("rri", RRISection), ("mrl", MRLSection)):
        if key in tasks or cfg.get(key) is not None:  # a section present is checked even when its task is off
            if key in tasks and cfg.get(key) is None:
                raise ConfigError(f"compare config: task {key} needs a section {key!r}")
            sections[key] = cls(**_check_keys(cfg.get(key), cls, key))
    raw = cfg.get("backends")
    if not isinstance(raw, list) or not raw:
        raise ConfigError("backends: give a non-empty list of {name, kind, ...} entries")
    backends = [BackendSpec.from_dict(d, f"backends[{i}]") for i, d in enumerate(raw)]
    seen = set()
    for b in backends:
        if b.name in seen:
            raise ConfigError(f"backends: name {b.name!r} is used twice")
        seen.add(b.name)
    probe = ProbeSection(**_check_keys(cfg.get("probe"), ProbeSection, "probe"))
    train = TrainSection(**_check_keys(cfg.get("train"), TrainSection, "train"))
    head = _head_options("head", cfg.get("head") or {}, StructureHeadConfig, HEAD_FORBIDDEN)
    device = str(cfg.get("device") or "cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ConfigError(f"device must be cpu or cuda[:n], got {device!r}")
    threads = cfg.get("threads") or 0
    _positive("threads", threads, zero=True)
    return CompareConfig(name=name, data=data, backends=backends, probe=probe, head=dict(head), train=train,
                         tasks=tasks, rri=sections.get("rri"), mrl=sections.get("mrl"),
                         out_dir=cfg.get("out_dir"), device=device, threads=threads,
                         progress=bool(cfg.get("progress", True)))


# --------------------------------------------------------------------------- data
@dataclass
class Split:
    """The records of one set after filtering and subsetting, with what was left out."""

    path: str
    records: List[Structure]
    n_read: int
    n_long: int
    n_bad: int
    archiveii: bool

    def family(self, rec: Structure) -> Optional[str]:
        """ArchiveII family (name prefix before ``_``), or None."""
        if not self.archiveii or "_" not in rec.name:
            return None
        return rec.name.split("_", 1)[0]


def load_split(path: str, cap: Optional[int], max_length: int, seed: int, what: str = "data") -> Split:
    """Records of ``path`` with a usable sequence (A C G U/T and IUPAC codes) and length <=
    ``max_length``; then a seeded random subset of ``cap`` (file order kept)."""
    from .mapping import MappingError, rna_codes
    from .structure.io import read_archiveii_csv, read_structures

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what}: {p} not found")
    archiveii = p.name.lower().endswith(".csv")
    recs = list(read_archiveii_csv(p) if archiveii else read_structures(p))
    keep, n_long, n_bad = [], 0, 0
    for r in recs:
        if not r.seq:
            n_bad += 1
            continue
        try:
            rna_codes(r.seq, r.name)
        except MappingError:
            n_bad += 1
            continue
        if len(r) > max_length:
            n_long += 1
            continue
        keep.append(r)
    if not keep:
        raise ConfigError(f"{what}: no usable structures in {p} ({n_long} longer than max_length {max_length}, {n_bad} without a valid sequence)")
    if cap is not None and cap < len(keep):
        idx = sorted(np.random.default_rng(seed).choice(len(keep), cap, replace=False).tolist())
        keep = [keep[i] for i in idx]
    return Split(str(p), keep, len(recs), n_long, n_bad, archiveii)


def load_structure_splits(d: DataSection) -> Dict[str, Split]:
    """The train / val / test structure sets of ``data``."""
    return {
        "train": load_split(d.train, d.max_train, d.max_length, d.seed, "data.train"),
        "val": load_split(d.val, d.max_val, d.max_length, d.seed, "data.val"),
        "test": load_split(d.test, d.max_test, d.max_length, d.seed, "data.test"),
    }


@dataclass
class TaskData:
    """The examples of a sequence-level task, drawn once: the same for every backend.

    ``train`` / ``val`` / ``test`` hold :class:`resm.data.rri.Pair` or
    :class:`resm.data.mrl.UTR` records; ``about`` describes each set for the tables; ``mean``
    and ``std`` standardise the MRL target (training set; 0 / 1 for RRI).
    """

    train: List[Any]
    val: List[Any]
    test: List[Any]
    about: Dict[str, str]
    mean: float = 0.0
    std: float = 1.0

    def sequences(self, part: str) -> List[str]:
        """The sequences of one set (both partners of every pair), in order."""
        items = getattr(self, part)
        if items and hasattr(items[0], "b"):
            return [s for p in items for s in (p.a, p.b)]
        return [u.seq for u in items]


def _of(kept: int, total: int) -> str:
    return f"{kept}" if kept == total else f"{kept} (seeded subset) of {total}"


def _table_file(path: str, key: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{key}: {p} not found")
    return p


def load_rri(sec: RRISection) -> TaskData:
    """Train / val / test pairs of the ``rri`` section (see :class:`RRISection`)."""
    from .data.rri import read_pairs, split_pairs
    from .tasks.base import subset

    n = sec.head_config(1).max_length
    pairs = read_pairs(_table_file(sec.train, "rri.train"), max_length=n)
    if sec.val:
        tr, va = pairs, read_pairs(_table_file(sec.val, "rri.val"), max_length=n)
        src_tr, src_va = f"`{sec.train}`", f"`{sec.val}`"
    else:
        tr, va = split_pairs(pairs, sec.val_fraction, sec.seed)
        src_tr = f"the training part of `{sec.train}` (`split_pairs`, val_fraction {sec.val_fraction:g}, seed {sec.seed})"
        src_va = "its validation part"
    te = read_pairs(_table_file(sec.test, "rri.test"), max_length=n)
    sub = [subset(x, cap, sec.seed) for x, cap in ((tr, sec.max_train), (va, sec.max_val), (te, sec.max_test))]
    if len({p.label for p in sub[0]}) < 2:
        raise ConfigError("rri.train: the training pairs need both labels, 0 and 1")
    if len({p.label for p in sub[2]}) < 2:
        raise ConfigError("rri.test: AUROC and AUPRC need both labels, 0 and 1, among the test pairs")
    seen = {(p.a, p.b) for p in sub[0]}
    overlap = sum((p.a, p.b) in seen for p in sub[2])
    about = {"train": f"{_of(len(sub[0]), len(tr))} pairs: {src_tr}",
             "val": f"{_of(len(sub[1]), len(va))} pairs: {src_va}",
             "test": f"{_of(len(sub[2]), len(te))} pairs from `{sec.test}` ({overlap} of them also among the training pairs)"}
    return TaskData(*sub, about=about)


def load_mrl(sec: MRLSection) -> TaskData:
    """Train / val / test UTRs of the ``mrl`` section (see :class:`MRLSection`)."""
    from .data.mrl import read_mrl, split_utrs
    from .tasks.base import subset

    utrs = read_mrl(_table_file(sec.train, "mrl.train"), target_column=sec.target)
    tr, va, te = split_utrs(utrs, tuple(sec.fractions), sec.seed)
    split = f"`split_utrs` of `{sec.train}` (fractions {'/'.join(f'{f:g}' for f in sec.fractions)}, seed {sec.seed})"
    src_te = "its test part"
    if sec.test:
        te = read_mrl(_table_file(sec.test, "mrl.test"))
        src_te = f"`{sec.test}`"
    limit = sec.head_config(1).max_length
    for u in (*tr, *va, *te):
        if len(u.seq) > limit:
            raise ConfigError(f"mrl: UTR {u.name!r} (line {u.line}) has {len(u.seq)} nt, longer than "
                              f"mrl.head.max_length {limit}")
    sub = [subset(x, cap, sec.seed) for x, cap in ((tr, sec.max_train), (va, sec.max_val), (te, sec.max_test))]
    if len(sub[0]) < 2:
        raise ConfigError(f"mrl.train: {len(sub[0])} training UTRs; the head needs at least 2")
    if len(sub[2]) < 2:
        raise ConfigError("mrl: fewer than 2 test UTRs (mrl.fractions gives the test share none; or give mrl.test)")
    y = np.array([u.mrl for u in sub[0]])
    about = {"train": f"{_of(len(sub[0]), len(tr))} UTRs: the training part of {split}",
             "val": f"{_of(len(sub[1]), len(va))} UTRs: its validation part",
             "test": f"{_of(len(sub[2]), len(te))} UTRs: {src_te}"}
    return TaskData(*sub, about=about, mean=float(y.mean()), std=float(y.std() or 1.0))


# --------------------------------------------------------------------------- measurement
def _rss_bytes() -> Optional[int]:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            import psutil

            return int(psutil.Process().memory_info().rss)
        except Exception:  # psutil missing or failing: no CPU memory figure
            return None


class PeakMemory:
    """Context manager: ``.mb`` is the peak extra memory of the block (see the module notes)."""

    def __init__(self, device: torch.device, interval: float = 0.002):
        self.device = torch.device(device)
        self.interval = interval
        self.mb = float("nan")

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        self._base = _rss_bytes()
        self._peak = self._base
        self._stop = threading.Event()
        if self._base is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            v = _rss_bytes()
            if v is not None and v > self._peak:
                self._peak = v

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
            return
        if self._base is None:
            return
        self._stop.set()
        self._thread.join()
        end = _rss_bytes() or 0
        self.mb = max(self._peak, end, self._base) / 2**20 - self._base / 2**20


@dataclass
class Timed:
    seconds: List[float]
    peak_mb: List[float]


def embed_all(backend: Backend, recs: Sequence[Structure], progress: bool, desc: str) -> Tuple[List[torch.Tensor], Timed]:
    """Embeddings (cached, CPU float32) of ``recs``, each pass timed and its memory measured
    (after one untimed warm-up pass, so first-call set-up is not charged to a sequence)."""
    out, secs, mems = [], [], []
    if recs:
        backend.embed(recs[0].seq)
    for r in tqdm(recs, desc=desc, disable=not progress, leave=False):
        with PeakMemory(backend.device) as pm:
            t0 = time.perf_counter()
            h = backend.embed(r.seq)
            secs.append(time.perf_counter() - t0)
        if h.shape[0] != len(r):
            raise ValueError(f"{backend.name}: {h.shape[0]} embeddings for {len(r)} nt in {r.name}")
        mems.append(pm.mb)
        out.append(h)
    return out, Timed(secs, mems)


# --------------------------------------------------------------------------- zero-shot probe
@dataclass
class AttentionProbe:
    """Logistic regression over attention features, folded back to raw-feature weights."""

    weight: np.ndarray  # (layers * heads,)
    bias: float
    heads: int
    n_seqs: int
    n_pos: int
    n_neg: int
    train_auroc: float

    def pair_probs(self, backend: Backend, seq: str) -> np.ndarray:
        """(L, L) probabilities, accumulated layer by layer (O(H L^2) memory)."""
        return torch.sigmoid(backend.weighted_attention(seq, self.weight) + self.bias).cpu().numpy()


def fit_attention_probe(backend: Backend, recs: Sequence[Structure], cfg: ProbeSection,
                        progress: bool = True) -> AttentionProbe:
    """Fit the probe on ``recs`` with the one probe fit, :func:`resm.structure.probe.fit_probe_weights`,
    on the backend's attention features (:meth:`resm.backends.Backend.pair_features`)."""
    from .structure.probe import fit_probe_weights

    fit = fit_probe_weights(lambda r, index: backend.pair_features(r.seq, index), recs, cfg.max_pairs_per_seq,
                            cfg.C, cfg.seed, cfg.min_sep, progress=progress, desc=f"{backend.name}: probe features")
    return AttentionProbe(fit["weight"].astype(np.float32), fit["bias"], backend.num_heads, fit["n_seqs"],
                          fit["n_pos"], fit["n_neg"], fit["train_auroc"])


# --------------------------------------------------------------------------- supervised head
def _batch(embs: Sequence[torch.Tensor], recs: Sequence[Structure], picks: List[Tuple[int, int, int]]):
    """Padded (h, mask, nuc, target) of windows ``(record, start, stop)``."""
    from .mapping import rna_codes

    B, W, E = len(picks), max(e - s for _, s, e in picks), embs[0].shape[1]
    h = torch.zeros(B, W, E)
    mask = torch.zeros(B, W, dtype=torch.bool)
    nuc = torch.full((B, W), 4, dtype=torch.long)
    target = torch.zeros(B, W, W)
    for b, (k, s, e) in enumerate(picks):
        n = e - s
        h[b, :n] = embs[k][s:e]
        mask[b, :n] = True
        nuc[b, :n] = torch.as_tensor(rna_codes(recs[k].seq[s:e]).astype(np.int64))
        p = recs[k].pairs[s:e] - s
        i = np.flatnonzero((p >= 0) & (p < n))
        target[b, torch.as_tensor(i), torch.as_tensor(p[i])] = 1.0
    return h, mask, nuc, target


def _step(opt: torch.optim.Optimizer, head: torch.nn.Module, loss: torch.Tensor, max_grad_norm: float) -> float:
    """One optimiser step on ``loss`` (gradients of ``head`` clipped to ``max_grad_norm``, 0:
    none); returns the loss value."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm:
        torch.nn.utils.clip_grad_norm_(head.parameters(), max_grad_norm)
    opt.step()
    return float(loss.detach())


def train_head(embs: Sequence[torch.Tensor], recs: Sequence[Structure], head_cfg: StructureHeadConfig,
               cfg: TrainSection, device: str | torch.device = "cpu", progress: bool = True,
               desc: str = "head") -> Tuple[StructureHead, float]:
    """Train a :class:`StructureHead` on cached embeddings; returns it (eval mode) and the mean
    loss of the last 10% of steps. Initialisation, batches and crops depend only on
    ``cfg.seed`` and the records, so every backend sees the same ones."""
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    head = StructureHead(head_cfg).to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    head.train()
    losses = []
    for _ in tqdm(range(cfg.steps), desc=desc, disable=not progress, leave=False):
        picks = []
        for k in rng.integers(0, len(recs), size=cfg.batch).tolist():
            L = len(recs[k])
            s = int(rng.integers(0, L - cfg.crop + 1)) if L > cfg.crop else 0
            picks.append((k, s, min(L, s + cfg.crop)))
        h, mask, nuc, target = (x.to(device) for x in _batch(embs, recs, picks))
        logits = head(h, mask, nuc=nuc)
        loss = pair_loss(logits, target, mask, cfg.pos_weight, head_cfg.min_loop)
        losses.append(_step(opt, head, loss, cfg.max_grad_norm))
    head.eval()
    tail = losses[-max(1, len(losses) // 10):]
    return head, float(np.mean(tail))


def head_probs(head: StructureHead, embs: Sequence[torch.Tensor], recs: Sequence[Structure], tile: int,
               progress: bool = False, desc: str = "head") -> List[np.ndarray]:
    """(L, L) pair probabilities of each record from the head (tiled inference)."""
    from .mapping import rna_codes

    device = next(head.parameters()).device
    out = []
    for h, r in tqdm(list(zip(embs, recs)), desc=desc, disable=not progress, leave=False):
        mask = torch.ones(1, len(r), dtype=torch.bool)
        nuc = torch.as_tensor(rna_codes(r.seq).astype(np.int64))[None]
        logits = head.predict_tiled(h[None].to(device), mask, nuc=nuc, tile=tile)
        out.append(torch.sigmoid(logits[0].float()).cpu().numpy())
    return out


# --------------------------------------------------------------------------- sequence-level heads
_LETTERS = np.frombuffer(b"ACGUN", dtype=np.uint8)  # nucleotide codes 0..4, as resm.mapping.normalise


class CachedEncoder(torch.nn.Module):
    """A frozen encoder that reads embeddings computed beforehand.

    ``forward(batch) -> (h, mask)`` like the tasks' encoders: ``batch`` is what
    :func:`resm.tasks.base.encode_batch` builds (``collate_pairs`` for RRI); its ``nuc`` codes
    and ``mask`` spell each row's normalised sequence, whose cached (L, E) embedding is copied
    into a zero-padded (B, Lmax, E) tensor. A :class:`resm.tasks.base.TaskModel` over it runs
    the tasks' own ``apply`` and ``predict`` functions unchanged. No parameters.
    """

    mode = "frozen"

    def __init__(self, cache: Dict[str, torch.Tensor], embed_dim: int):
        super().__init__()
        self.cache = cache
        self.embed_dim = int(embed_dim)

    def forward(self, batch: Dict[str, Any]) -> Tuple[torch.Tensor, torch.Tensor]:
        nuc, mask = batch["nuc"], batch["mask"]
        codes = nuc.cpu().numpy().astype(np.intp)
        lengths = mask.sum(1).tolist()
        h = torch.zeros(nuc.shape[0], nuc.shape[1], self.embed_dim)
        for b, n in enumerate(lengths):
            seq = _LETTERS[codes[b, :n]].tobytes().decode()
            e = self.cache.get(seq)
            if e is None:
                raise KeyError(f"no cached embedding for the {n}-nt sequence {seq[:40]}")
            h[b, :n] = e
        return h.to(nuc.device), mask


def embed_unique(backend: Backend, groups: Sequence[Sequence[str]], progress: bool = False,
                 desc: str = "embed") -> Tuple[Dict[str, torch.Tensor], List[float]]:
    """Embed every distinct sequence of ``groups`` once (after one untimed warm-up pass).

    Returns the cache (sequence -> (L, E) CPU float32) and, per group, the seconds spent on the
    sequences it added (the first group's figure is its full embedding time)."""
    cache: Dict[str, torch.Tensor] = {}
    secs: List[float] = []
    first = next((s for g in groups for s in g), None)
    if first is not None:
        backend.embed(first)
    for k, g in enumerate(groups):
        new = [s for s in dict.fromkeys(g) if s not in cache]
        t = 0.0
        for s in tqdm(new, desc=f"{desc} ({k + 1}/{len(groups)})", disable=not progress, leave=False):
            t0 = time.perf_counter()
            e = backend.embed(s)
            t += time.perf_counter() - t0
            if e.shape[0] != len(s):
                raise ValueError(f"{backend.name}: {e.shape[0]} embeddings for a {len(s)}-nt sequence")
            cache[s] = e
        secs.append(t)
    return cache, secs


def _on(batch: Dict[str, Any], device: torch.device) -> Dict[str, Any]:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def train_task_head(model: TaskModel, name: str, items: Sequence[Any], collate, loss_fn, sec: Any,
                    progress: bool = False, desc: str = "head") -> float:
    """Train ``model.heads[name]`` (the encoder is frozen) for ``sec.steps`` AdamW steps on
    batches of ``sec.batch`` items from :class:`resm.tasks.base.ItemStream` (seed
    ``sec.seed``: the same batches in the same order whatever the backend); ``collate(items)``
    makes the batch dict, ``loss_fn(output, batch)`` the loss. Leaves the model in eval mode;
    returns the mean loss of the last 10% of steps."""
    from .tasks.base import ItemStream

    head = model.heads[name]
    opt = torch.optim.AdamW(head.parameters(), lr=sec.lr, weight_decay=sec.weight_decay)
    stream = iter(ItemStream(list(items), sec.batch, sec.seed))
    model.train()
    losses = []
    for _ in tqdm(range(sec.steps), desc=desc, disable=not progress, leave=False):
        batch = collate(next(stream))
        losses.append(_step(opt, head, loss_fn(model(batch, [name])[name], batch), sec.max_grad_norm))
    model.eval()
    return float(np.mean(losses[-max(1, len(losses) // 10):]))


# --------------------------------------------------------------------------- scoring
def _choose_and_decode(val_maps, val_recs, test_maps, test_recs, method: str, min_loop: int):
    from .structure.decode import choose_threshold, decode

    t = float(choose_threshold(val_maps, [r.seq for r in val_recs], [r.pairs for r in val_recs],
                               method=method, min_loop=min_loop))
    preds = [decode(P, r.seq, t, method, min_loop=min_loop) for P, r in zip(test_maps, test_recs)]
    return t, preds


def _score(preds, recs) -> Tuple[Dict[str, float], List[Tuple[float, float]]]:
    from .structure.metrics import evaluate, f1_score

    m = evaluate(preds, [r.pairs for r in recs])
    per = [(f1_score(p, r.pairs), f1_score(p, r.pairs, shift=True)) for p, r in zip(preds, recs)]
    return m, per


# --------------------------------------------------------------------------- the run
COLUMNS = [
    ("backend", "backend"), ("kind", "kind"), ("status", "status"),
    ("zeroshot_f1", "zero-shot F1"), ("zeroshot_f1_shift", "zero-shot F1 ±1"),
    ("supervised_f1", "supervised F1"), ("supervised_f1_shift", "supervised F1 ±1"),
    ("mfe_f1", "RNAfold MFE F1"), ("mfe_f1_shift", "RNAfold MFE F1 ±1"),
    ("embed_s", "embed s (test)"), ("peak_mem_mb", "peak MB"), ("params_m", "params (M)"),
]
RRI_COLUMNS = [
    ("backend", "backend"), ("kind", "kind"), ("status", "status"),
    ("auroc", "test AUROC"), ("auprc", "test AUPRC"), ("val_auroc", "val AUROC"),
    ("embed_s", "embed s (test)"), ("train_s", "head train s"),
]
MRL_COLUMNS = [
    ("backend", "backend"), ("kind", "kind"), ("status", "status"),
    ("r2", "test R²"), ("spearman", "test Spearman"), ("val_r2", "val R²"),
    ("embed_s", "embed s (test)"), ("train_s", "head train s"),
]
TASK_COLUMNS = {"structure": COLUMNS, "rri": RRI_COLUMNS, "mrl": MRL_COLUMNS}
TASK_CSV = {"structure": "results.csv", "rri": "results_rri.csv", "mrl": "results_mrl.csv"}
NA = "n/a"  # what a backend cannot do (no attention maps for the probe, no MRL model in ViennaRNA)


def _empty_row(spec: BackendSpec, status: str, columns: Sequence[Tuple[str, str]] = COLUMNS) -> Dict[str, Any]:
    row = {k: None for k, _ in columns}
    row.update(backend=spec.name, kind=spec.kind, status=status)
    return row


def _check_length(backend: Backend, seqs: Sequence[str]) -> None:
    if backend.max_length is not None and seqs:
        longest = max(len(s) for s in seqs)
        if longest > backend.max_length:
            raise BackendUnavailable(f"sequences up to {longest} nt exceed its limit of {backend.max_length} nt")


def _free(backend: Optional[Backend]) -> None:
    if backend is not None:
        backend.close()
    gc.collect()


def run_backend(backend: Backend, cfg: CompareConfig, splits: Dict[str, Split], log) -> Tuple[Dict[str, Any], List[Dict[str, Any]], Dict[str, Any]]:
    """The whole protocol for one loaded backend: (table row, per-sequence rows, details)."""
    tr, va, te = (splits[k].records for k in ("train", "val", "test"))
    row = _empty_row(backend.spec, "ok")
    per_seq: List[Dict[str, Any]] = []
    details: Dict[str, Any] = {}
    prog = cfg.progress

    def seq_rows(method: str, scores, timed: Optional[Timed]):
        for k, (r, (f, fs)) in enumerate(zip(te, scores)):
            per_seq.append({"backend": backend.name, "method": method, "name": r.name, "length": len(r),
                            "family": splits["test"].family(r), "f1": f, "f1_shift": fs,
                            "seconds": timed.seconds[k] if timed else None,
                            "peak_mem_mb": timed.peak_mb[k] if timed else None})

    if isinstance(backend, ViennaBackend):
        preds, secs, mems = [], [], []
        for r in tqdm(te, desc=f"{backend.name}: RNAfold", disable=not prog, leave=False):
            with PeakMemory("cpu") as pm:
                t0 = time.perf_counter()
                preds.append(backend.fold(r.seq))
                secs.append(time.perf_counter() - t0)
            mems.append(pm.mb)
        m, per = _score(preds, te)
        row.update(status="ok (RNAfold MFE)", mfe_f1=m["f1_mean"], mfe_f1_shift=m["f1_shift_mean"],
                   embed_s=float(np.sum(secs)), peak_mem_mb=_nanmax(mems))
        seq_rows("mfe", per, Timed(secs, mems))
        return row, per_seq, {"mfe": m}

    if backend.max_length is not None:
        longest = max(len(r) for s in splits.values() for r in s.records)
        if longest > backend.max_length:
            raise BackendUnavailable(
                f"sequences up to {longest} nt exceed its limit of {backend.max_length} nt (set data.max_length <= {backend.max_length})")
    row.update(params_m=backend.num_params / 1e6)
    details["model"] = backend.describe()

    # embeddings: one timed pass per sequence, cached (the head's input)
    need_embs = cfg.train.enabled
    timed_test: Optional[Timed] = None
    embs: Dict[str, List[torch.Tensor]] = {}
    for k in ("test", "val", "train") if need_embs else ("test",):
        e, timed = embed_all(backend, splits[k].records, prog, f"{backend.name}: embed {k}")
        embs[k] = e if need_embs else []
        if k == "test":
            timed_test = timed
    assert timed_test is not None
    row.update(embed_s=float(np.sum(timed_test.seconds)), peak_mem_mb=_nanmax(timed_test.peak_mb))

    # 1. zero-shot probe
    if cfg.probe.enabled and backend.has_attention:
        probe = fit_attention_probe(backend, tr, cfg.probe, prog)
        val_maps = [probe.pair_probs(backend, r.seq) for r in tqdm(va, desc=f"{backend.name}: probe val", disable=not prog, leave=False)]
        test_maps = [probe.pair_probs(backend, r.seq) for r in tqdm(te, desc=f"{backend.name}: probe test", disable=not prog, leave=False)]
        t, preds = _choose_and_decode(val_maps, va, test_maps, te, cfg.probe.method, cfg.probe.min_sep)
        m, per = _score(preds, te)
        row.update(zeroshot_f1=m["f1_mean"], zeroshot_f1_shift=m["f1_shift_mean"])
        seq_rows("zeroshot", per, timed_test)
        details["zeroshot"] = {"threshold": t, "train_auroc": probe.train_auroc, "n_pos": probe.n_pos,
                               "n_neg": probe.n_neg, **m}
        log(f"{backend.name}: zero-shot F1 {m['f1_mean']:.3f} (±1 {m['f1_shift_mean']:.3f}), threshold {t:g}, "
            f"train AUROC {probe.train_auroc:.3f}")
    elif cfg.probe.enabled:
        row.update(zeroshot_f1=NA, zeroshot_f1_shift=NA)
        details["zeroshot"] = "n/a: the backend has no attention maps"

    # 2. supervised head on frozen, cached embeddings
    if cfg.train.enabled:
        hcfg = cfg.head_config(backend.embed_dim)
        head, loss = train_head(embs["train"], tr, hcfg, cfg.train, backend.device, prog, f"{backend.name}: head")
        val_maps = head_probs(head, embs["val"], va, cfg.train.tile, prog, f"{backend.name}: head val")
        test_maps = head_probs(head, embs["test"], te, cfg.train.tile, prog, f"{backend.name}: head test")
        t, preds = _choose_and_decode(val_maps, va, test_maps, te, cfg.probe.method, hcfg.min_loop)
        m, per = _score(preds, te)
        row.update(supervised_f1=m["f1_mean"], supervised_f1_shift=m["f1_shift_mean"])
        seq_rows("supervised", per, timed_test)
        details["supervised"] = {"threshold": t, "final_loss": loss, "head_params": head.num_parameters(), **m}
        log(f"{backend.name}: supervised F1 {m['f1_mean']:.3f} (±1 {m['f1_shift_mean']:.3f}), threshold {t:g}, "
            f"final loss {loss:.4f}")
    if not any(r["method"] != "embed" for r in per_seq):
        seq_rows("embed", [(None, None)] * len(te), timed_test)
    return row, per_seq, details


def _nanmax(v: Sequence[float]) -> Optional[float]:
    a = np.asarray([x for x in v if x is not None], dtype=float)
    return None if a.size == 0 or np.all(np.isnan(a)) else float(np.nanmax(a))


def _sequence_task_model(backend: Backend, data: TaskData, sec: _TaskSection, head_cls, apply, progress: bool):
    """What the ``rri`` and ``mrl`` runs share before training: every distinct sequence embedded
    once (test first, so its time is measured apart), the head built from the task's seed (the
    same initial weights for every backend) and a :class:`TaskModel` over the cached embeddings.
    Returns ``(model, head, cache, seconds per set)``."""
    name = sec.task
    _check_length(backend, [s for part in ("train", "val", "test") for s in data.sequences(part)])
    cache, secs = embed_unique(backend, [data.sequences("test"), data.sequences("val"), data.sequences("train")],
                               progress, f"{backend.name}: embed {name}")
    torch.manual_seed(sec.seed)
    head = head_cls(sec.head_config(backend.embed_dim))
    model = TaskModel(CachedEncoder(cache, backend.embed_dim), {name: head}, {name: apply}).to(backend.device)
    return model, head, cache, secs


def _task_details(m, mv, loss: float, head, cache, secs, train_s: float) -> Dict[str, Any]:
    return {"test": m, "val": mv, "final_loss": loss, "head_params": sum(q.numel() for q in head.parameters()),
            "distinct_sequences": len(cache), "embed_s_all": float(sum(secs)), "train_s": train_s}


def _scheme():
    """The scheme ``encode_batch`` builds tokens with: the cached encoder never reads them."""
    from .mapping import DEFAULT_SCHEME, get_scheme

    return get_scheme(DEFAULT_SCHEME)


def run_rri(backend: Backend, cfg: CompareConfig, data: TaskData, log) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """RNA-RNA interaction for one loaded backend: (table row, details)."""
    from .tasks.rri import collate_pairs, predict_rri, rri_apply, rri_metrics

    sec, prog = cfg.rri, cfg.progress
    row = _empty_row(backend.spec, "ok", RRI_COLUMNS)
    y_val = np.array([p.label for p in data.val])
    y_test = np.array([p.label for p in data.test])

    def metrics(y: np.ndarray, score: np.ndarray) -> Optional[Dict[str, float]]:
        return rri_metrics(y, score) if len(y) else None

    if isinstance(backend, ViennaBackend):
        t0 = time.perf_counter()
        s_test = -np.array([backend.duplex_energy(p.a, p.b) for p in tqdm(data.test, desc=f"{backend.name}: duplexfold",
                                                                           disable=not prog, leave=False)])
        secs = time.perf_counter() - t0
        s_val = -np.array([backend.duplex_energy(p.a, p.b) for p in data.val])
        m, mv = metrics(y_test, s_test), metrics(y_val, s_val)
        row.update(status="ok (duplexfold -dG, no training)", auroc=m["auroc"], auprc=m["auprc"],
                   val_auroc=mv["auroc"] if mv else None, embed_s=secs)
        log(f"{backend.name}: RRI duplexfold -dG test AUROC {m['auroc']:.3f}, AUPRC {m['auprc']:.3f}")
        return row, {"test": m, "val": mv, "score": "-dG of RNA.duplexfold"}
    if not backend.has_embeddings:
        row.update(status=f"{NA}: no embeddings")
        return row, {}
    model, head, cache, secs = _sequence_task_model(backend, data, sec, InteractionHead, rri_apply, prog)
    scheme = _scheme()
    t0 = time.perf_counter()
    loss = train_task_head(
        model, "rri", data.train, lambda items: _on(collate_pairs(items, scheme), backend.device),
        lambda out, b: F.binary_cross_entropy_with_logits(out["logit"].float(), b["label"]),
        sec, prog, f"{backend.name}: rri head")
    train_s = time.perf_counter() - t0
    p_test = predict_rri(model, scheme, data.test, sec.batch, backend.device, "rri")[0]
    m = metrics(y_test, p_test)
    mv = metrics(y_val, predict_rri(model, scheme, data.val, sec.batch, backend.device, "rri")[0]) if data.val else None
    row.update(auroc=m["auroc"], auprc=m["auprc"], val_auroc=mv["auroc"] if mv else None, embed_s=secs[0], train_s=train_s)
    log(f"{backend.name}: RRI test AUROC {m['auroc']:.3f}, AUPRC {m['auprc']:.3f}"
        + (f", val AUROC {mv['auroc']:.3f}" if mv else "") + f", final loss {loss:.4f}, head {train_s:.0f} s")
    return row, _task_details(m, mv, loss, head, cache, secs, train_s)


def run_mrl(backend: Backend, cfg: CompareConfig, data: TaskData, log) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Mean ribosome load for one loaded backend: (table row, details)."""
    from .tasks.base import encode_batch
    from .tasks.mrl import mrl_apply, mrl_metrics, predict_mrl

    sec, prog = cfg.mrl, cfg.progress
    row = _empty_row(backend.spec, "ok", MRL_COLUMNS)
    if not backend.has_embeddings:
        row.update(status=f"{NA}: no MRL model" if isinstance(backend, ViennaBackend) else f"{NA}: no embeddings")
        return row, {}
    model, head, cache, secs = _sequence_task_model(backend, data, sec, ExpressionHead, mrl_apply, prog)
    scheme = _scheme()
    mean, std = data.mean, data.std

    def collate(items):
        b = encode_batch([u.seq for u in items], scheme, [f"{u.name} (line {u.line})" for u in items])
        b["y"] = torch.tensor([(u.mrl - mean) / std for u in items], dtype=torch.float32)
        return _on(b, backend.device)

    t0 = time.perf_counter()
    loss = train_task_head(model, "mrl", data.train, collate, lambda out, b: F.mse_loss(out.float(), b["y"]),
                           sec, prog, f"{backend.name}: mrl head")
    train_s = time.perf_counter() - t0

    def metrics(utrs) -> Optional[Dict[str, float]]:
        if not utrs:
            return None
        pred = predict_mrl(model, scheme, [u.seq for u in utrs], mean, std, sec.batch, backend.device, "mrl")
        return mrl_metrics(np.array([u.mrl for u in utrs]), pred)

    m, mv = metrics(data.test), metrics(data.val)
    row.update(r2=m["r2"], spearman=m["spearman"], val_r2=mv["r2"] if mv else None, embed_s=secs[0], train_s=train_s)
    log(f"{backend.name}: MRL test R² {m['r2']:.3f}, Spearman {m['spearman']:.3f}"
        + (f", val R² {mv['r2']:.3f}" if mv else "") + f", final loss {loss:.4f}, head {train_s:.0f} s")
    return row, {**_task_details(m, mv, loss, head, cache, secs, train_s), "target_mean": mean, "target_std": std}


def run_compare(cfg: CompareConfig | Dict[str, Any], name: str = "compare", log=print) -> Dict[str, Any]:
    """Run every task of ``cfg`` for every backend and write the tables and plots; returns
    ``{"rows" (structure), "rri_rows", "mrl_rows", "per_sequence", "details", "splits",
    "task_data", "tasks", "out_dir", "files"}``."""
    if not isinstance(cfg, CompareConfig):
        cfg = parse_config(cfg, name)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # every data set is read (and checked) before any backend runs
    splits: Dict[str, Split] = {}
    if "structure" in cfg.tasks:
        d = cfg.data
        splits = load_structure_splits(d)
        for k, s in splits.items():
            log(f"{k}: {len(s.records)} structures from {s.path} ({s.n_long} longer than {d.max_length} nt and "
                f"{s.n_bad} without a valid sequence left out)")
    task_data: Dict[str, TaskData] = {}
    for task, loader, sec in (("rri", load_rri, cfg.rri), ("mrl", load_mrl, cfg.mrl)):
        if task in cfg.tasks:
            task_data[task] = loader(sec)
            for k, text in task_data[task].about.items():
                log(f"{task} {k}: {text}")
    out_dir = cfg.output_dir()
    rows: Dict[str, List[Dict[str, Any]]] = {t: [] for t in cfg.tasks}
    per_seq: List[Dict[str, Any]] = []
    details: Dict[str, Any] = {}
    for spec in cfg.backends:
        backend = None
        t0 = time.perf_counter()
        try:
            backend = make_backend(spec, cfg.device).load()
        except BackendUnavailable as e:
            log(f"skipped {spec.name}: {e}")
            for t in cfg.tasks:
                rows[t].append(_empty_row(spec, f"skipped: {e}", TASK_COLUMNS[t]))
            _free(backend)
            continue
        det: Dict[str, Any] = {}
        for t in cfg.tasks:
            try:
                if t == "structure":
                    row, seqs, det[t] = run_backend(backend, cfg, splits, log)
                    per_seq.extend(seqs)
                else:
                    row, det[t] = (run_rri if t == "rri" else run_mrl)(backend, cfg, task_data[t], log)
            except BackendUnavailable as e:
                log(f"skipped {spec.name}: {e} ({t})")
                row, det[t] = _empty_row(spec, f"skipped: {e}", TASK_COLUMNS[t]), {"skipped": str(e)}
            rows[t].append(row)
        _free(backend)
        det["seconds_total"] = time.perf_counter() - t0
        details[spec.name] = det
    result = {"rows": rows.get("structure", []), "rri_rows": rows.get("rri", []), "mrl_rows": rows.get("mrl", []),
              "per_sequence": per_seq, "details": details, "splits": splits, "task_data": task_data,
              "tasks": list(cfg.tasks), "out_dir": out_dir}
    result["files"] = write_outputs(cfg, result, log)
    return result


# --------------------------------------------------------------------------- outputs
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


def _table(rows: List[Dict[str, Any]], columns: Sequence[Tuple[str, str]]) -> List[str]:
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(k), k) for k, _ in columns) + " |")
    return lines


def _budget(sec: Any) -> str:
    return (f"{sec.steps} AdamW steps, lr {sec.lr:g} (constant), weight decay {sec.weight_decay:g}, batch {sec.batch}, "
            f"gradient clipping {sec.max_grad_norm:g}, seed {sec.seed}")


def _structure_markdown(cfg: CompareConfig, result: Dict[str, Any]) -> List[str]:
    s = result["splits"]
    t, p = cfg.train, cfg.probe
    lines = [
        "## Secondary structure",
        "",
        "Data (records longer than {} nt left out, seeded subsets, seed {}):".format(cfg.data.max_length, cfg.data.seed),
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
        f"(cached; each backend's `layer`, default the last), {t.steps} AdamW steps, lr {t.lr:g}, batch {t.batch}, crop {t.crop}, pos_weight {t.pos_weight:g}, "
        f"seed {t.seed}; threshold chosen on val." + ("" if t.enabled else " (disabled)"),
        "- F1: mean over test sequences, strict and with ±1 shift (`resm.metrics`).",
        "- embed s: total seconds of the embedding passes over the test set (ViennaRNA: RNAfold MFE); "
        f"peak MB: largest extra memory of one pass (weights excluded); device {cfg.device}.",
        "",
    ]
    lines += _table(result["rows"], COLUMNS)
    plots = [f for f in result.get("plots", []) if f]
    if plots:
        lines += ["", "Plots: " + ", ".join(f"[{f}]({f})" for f in plots) + "."]
    return lines


def _task_markdown(cfg: CompareConfig, result: Dict[str, Any], task: str) -> List[str]:
    data: TaskData = result["task_data"][task]
    common = ("on frozen per-residue embeddings (each backend's `layer`, default the last; one pass per distinct "
              "sequence, cached), ")
    if task == "rri":
        sec = cfg.rri
        intro = (f"Pairs (each partner at most {sec.head_config(1).max_length} nt; seeded subsets, "
                 f"seed {sec.seed}):")
        lines = ["## RNA-RNA interaction", "", intro, ""]
        about = [
            (f"- head: InteractionHead {json.dumps(sec.head, sort_keys=True)} {common}the two partners embedded "
             f"apart; {_budget(sec)}; binary cross-entropy on the interaction label; the head after the last step "
             "is scored."),
            ("- AUROC / AUPRC on the test pairs (`resm.tasks.rri.rri_metrics`), val AUROC alongside; ViennaRNA: "
             "-dG of `RNA.duplexfold` as the score, no training."),
            ("- embed s: seconds of the embedding passes over the test pairs' distinct sequences (ViennaRNA: "
             f"duplexfold over the test pairs); head train s: the head's training steps; device {cfg.device}."),
        ]
        rows, columns = result["rri_rows"], RRI_COLUMNS
    else:
        sec = cfg.mrl
        intro = (f"5'UTRs (at most {sec.head_config(1).max_length} nt; seeded subsets, seed {sec.seed}; "
                 f"target mean {data.mean:.3f}, sd {data.std:.3f} on train):")
        lines = ["## Mean ribosome load", "", intro, ""]
        about = [
            (f"- head: ExpressionHead {json.dumps(sec.head, sort_keys=True)} {common}{_budget(sec)}; mean squared "
             "error on the standardised MRL; the head after the last step is scored."),
            ("- R² and Spearman's rho on the test UTRs (`resm.tasks.mrl.mrl_metrics`), val R² alongside; "
             "ViennaRNA has no MRL model (n/a)."),
            ("- embed s: seconds of the embedding passes over the test UTRs' distinct sequences; head train s: "
             f"the head's training steps; device {cfg.device}."),
        ]
        rows, columns = result["mrl_rows"], MRL_COLUMNS
    lines += [f"- {k}: {data.about[k]}" for k in ("train", "val", "test")] + ["", *about, ""]
    return lines + _table(rows, columns)


def format_markdown(cfg: CompareConfig, result: Dict[str, Any]) -> str:
    """The result tables in markdown (one section per task), with the data, protocol and
    budgets they came from."""
    tasks = result.get("tasks", cfg.tasks)
    intro = ("Same data, same frozen-backbone protocol, same heads and budgets for every backend "
             f"(`resm compare`); tasks: {', '.join(tasks)}. A skipped backend lacks its package or weights "
             "(or, in one task's table, cannot take that task's sequences); n/a: the backend cannot do it.")
    lines = [f"# Backbone comparison: {cfg.name}", "", intro]
    for task in tasks:
        lines.append("")
        lines += _structure_markdown(cfg, result) if task == "structure" else _task_markdown(cfg, result, task)
    return "\n".join(lines) + "\n"


def _csv_text(rows: List[Dict[str, Any]], keys: List[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})
    return buf.getvalue()


def write_outputs(cfg: CompareConfig, result: Dict[str, Any], log=print) -> List[Path]:
    """Write the tables (one CSV per task that ran), config.json, results.md and, with the
    structure task, per_sequence.csv and the plots; returns the paths."""
    out = Path(result["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
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
    conf = {"name": cfg.name, "tasks": list(tasks), "data": asdict(cfg.data) if cfg.data else None,
            "backends": [asdict(b) for b in cfg.backends], "probe": asdict(cfg.probe), "head": cfg.head,
            "train": asdict(cfg.train), "rri": asdict(cfg.rri) if cfg.rri else None,
            "mrl": asdict(cfg.mrl) if cfg.mrl else None, "device": cfg.device, "details": result["details"]}
    atomic_write_text(out / "config.json", json.dumps(conf, indent=2, default=str) + "\n")
    files.append(out / "config.json")
    atomic_write_text(out / "results.md", format_markdown(cfg, result))
    files.append(out / "results.md")
    return files + [out / f for f in result["plots"]]


# --------------------------------------------------------------------------- plots
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


def make_plots(cfg: CompareConfig, result: Dict[str, Any], out: Path, log=print) -> List[str]:
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
    written = []

    def series(backend: str, method: str, key: str) -> List[Dict[str, Any]]:
        return [s for s in seqs if s["backend"] == backend and s["method"] == method and s.get(key) is not None]

    # F1 against length
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, method, title in ((axes[0], "zeroshot", "zero-shot probe"), (axes[1], "supervised", "supervised head (frozen)")):
        for b in names:
            for m, style in ((method, "-o"), ("mfe", "--s")):
                ss = series(b, m, "f1")
                if not ss:
                    continue
                L = np.array([s["length"] for s in ss])
                f = np.array([s["f1"] for s in ss])
                k = np.searchsorted(edges, L, side="right") - 1
                y = [f[k == i].mean() if np.any(k == i) else np.nan for i in range(len(centres))]
                ax.plot(centres, y, style, label=b + (" (RNAfold MFE)" if m == "mfe" else ""))
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
        pts: Dict[str, Dict[str, Any]] = {}
        for s in seqs:
            if s["backend"] == b and s.get("seconds") is not None:
                pts.setdefault(s["name"], s)  # one timing per sequence, whatever the method
        if not pts:
            continue
        L = np.array([s["length"] for s in pts.values()])
        label = b + (" (RNAfold)" if any(s["method"] == "mfe" for s in pts.values()) else "")
        k = np.searchsorted(edges, L, side="right") - 1
        for ax, vals in ((axes[0], [1000 * s["seconds"] for s in pts.values()]),
                         (axes[1], [np.nan if s["peak_mem_mb"] is None else s["peak_mem_mb"] for s in pts.values()])):
            v = np.asarray(vals, dtype=float)
            line = ax.plot(centres, [np.nanmean(v[k == i]) if np.any((k == i) & ~np.isnan(v)) else np.nan
                                     for i in range(len(centres))], "-o", label=label)[0]
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
                bars.append((b + (" (RNAfold MFE)" if m == "mfe" else ""), vals))
    if not bars:
        return written
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(fams) * max(1, len(bars)) / 2), 4))
    width = 0.8 / len(bars)
    x = np.arange(len(fams))
    for i, (label, vals) in enumerate(bars):
        ax.bar(x + i * width - 0.4 + width / 2, vals, width, label=label)
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
