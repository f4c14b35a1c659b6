"""What every training task shares.

* :class:`ModelConfig` (the ``model`` section of every task) and :func:`build_encoder`: an
  ESM-2 backbone (fair-esm ``.pt``, Hugging Face folder or name; or a random architecture) in
  mode frozen / adapters / full, or the one-hot CNN baseline encoder. A task refuses the keys
  it does not use (:meth:`ModelConfig.for_task`);
* :class:`TaskModel`: one encoder and a dict of heads. ``model(batch, names)`` runs the encoder
  once and every named head on its output: heads that share an adapter share the pass;
* :class:`ItemStream`: deterministic, resumable, sharded mini-batches over examples held in
  memory (the same contract as the pretraining and structure streams);
* :func:`save_bundle` / :func:`load_bundle`: the trained parts saved apart from the backbone
  (adapter file, one head file per head, ``manifest.json`` naming the backbone checksum and the
  mapping scheme; see :mod:`resm.backbone.adapters`), heads rebuilt through the head registry
  (:data:`resm.heads.HEADS`). With mode ``full`` the fine-tuned backbone is saved into the
  bundle as a fair-esm ``.pt``; the one-hot baseline saves its encoder with its head.

The loop itself is :class:`resm.train.Trainer`: the tasks only supply streams, losses,
validation metrics and the final save.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..alphabet import pad_batch
from ..backbone.adapters import BundleError, head_for, is_bundle
from ..backbone.encoder import MODES, BackboneEncoder, OneHotConfig, OneHotEncoder
from ..config import ConfigError, from_dict
from ..data.stream import EpochStream, digest_of, item_bytes
from ..mapping import Scheme, get_scheme
from ..nucleotides import UNKNOWN_BASE, rna_codes
from ..utils.paths import no_such
from ..utils.seeds import SEED_RULE, seed_ok

__all__ = [
    "TaskSpec",
    "CompareSpec",
    "BACKEND_COLUMNS",
    "SEQUENCE_KEYS",
    "resolve",
    "ModelConfig",
    "build_encoder",
    "load_model_backbone",
    "adapter_config",
    "TaskModel",
    "ItemStream",
    "encode_batch",
    "save_bundle",
    "load_bundle",
    "subset",
    "BUNDLE_DIR",
    "BundleError",
    "is_bundle",
    "head_for",
    "open_bundle",
    "check_item_data",
    "seeded_head",
    "bundle_config",
    "counted_once",
    "BundleHeadTask",
    "bundle_outputs",
    "no_validation",
    "one_label",
]

BUNDLE_DIR = "model"


# The ``model`` keys of a task on a sequence encoder (a backbone or the one-hot baseline)
SEQUENCE_KEYS = ("encoder", "init", "arch", "init_seed", "mode", "adapter", "scheme", "trust_checkpoint", "onehot")


# The columns every table of ``resm compare`` starts with: the backend, its kind and the run's
# status (:func:`resm.compare.harness.empty_row` fills them in any row)
BACKEND_COLUMNS = (("backend", "backend"), ("kind", "kind"), ("status", "status"))


@dataclass(frozen=True)
class CompareSpec:
    """How ``resm compare`` runs a task: everything task-specific the comparison reads (the
    package :mod:`resm.compare` holds no list of tasks). References are ``"module:attribute"``
    (:func:`resolve`), so the descriptor names its task's part of the comparison (a module of
    :mod:`resm.compare`, e.g. :mod:`resm.compare.rri`) without importing it: the comparison
    imports the tasks, never the reverse.

    Attributes:
        run: the runner, ``run(backend, cfg, data, log) -> (row, details)`` or ``(row, details,
            collected)`` for one loaded :class:`resm.compare.backends.Backend`: ``row`` holds the
            table's ``columns``, ``details`` goes into ``config.json``, ``collected`` maps a
            result key to rows added to ``result[key]`` (e.g. ``per_sequence``). It raises
            :class:`resm.compare.backends.BackendUnavailable` when the backend cannot take the
            task's data (a ``skipped`` row in this task's table only).
        load: ``load(cfg, log) -> data``: the task's data, read and checked once before any
            backend runs (the same for every backend).
        sections: the config sections the task reads, ``(key, reference, required)``: the
            reference names a dataclass (validated by :func:`resm.config.from_dict`) or a
            function ``parse(raw, key)``. A required section must be present when the task runs
            (else it is None when absent); an optional one always takes its defaults.
        columns: the table's ``(row key, header)`` pairs, the CSV's columns too.
        csv: the CSV file the table is written to.
        report: ``report(cfg, result, rows) -> lines``: the task's section of ``results.md``
            (heading, data, protocol and the table, :func:`resm.compare.report.table`).
        write: optional ``write(cfg, result, out, log) -> [file names]``: the task's other
            outputs (the structure task's plots and per-sequence CSV), written before the
            tables.
    """

    run: str
    load: str
    sections: tuple[tuple[str, str, bool], ...]
    columns: tuple[tuple[str, str], ...]
    csv: str
    report: str
    write: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    """What a task is and supports: the one descriptor of a task. Each module of
    :mod:`resm.tasks` that holds a task declares it as a module-level ``TASK``, and
    :data:`resm.tasks.TASKS` (name -> spec) is their union, which every list of tasks reads
    (``resm finetune``, ``task: joint``, ``resm predict --task``, ``resm compare``'s tasks, the
    ``model`` keys a task accepts).

    Attributes:
        name: the task's name (``task:`` in a config).
        cls: the task class (:class:`resm.train.Task`; its ``sections`` are the config's
            sections it reads).
        model_keys: the ``model`` keys it reads (:class:`ModelConfig`); others are refused.
        head: its head's name in :data:`resm.heads.HEADS` (None: no head, e.g. ``mlm``).
        config: its shipped config (``configs/finetune/<config>.yaml``), if any.
        finetune: ``resm finetune`` trains it.
        joint: it can be a sub-task of ``task: joint`` (its class then takes ``encoder=``).
        predict: ``"module:function"`` behind ``resm predict --task <name>``: the function
            takes a :class:`resm.predict.PredictOptions` and returns ``{"text", "n", "what"}``
            and optionally ``"metrics"`` (label -> metrics).
        compare: how ``resm compare`` runs it (:class:`CompareSpec`), if it does.
        order: its place in listings and in ``resm compare``'s runs.
    """

    name: str
    cls: type
    model_keys: tuple[str, ...]
    head: str | None = None
    config: str | None = None
    finetune: bool = True
    joint: bool = False
    predict: str | None = None
    compare: CompareSpec | None = None
    order: int = 100


def resolve(ref: str):
    """The object a ``"module:attribute"`` reference of a :class:`TaskSpec` names."""
    import importlib

    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def _model_keys(task: str) -> tuple[str, ...]:
    from . import TASKS

    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; known tasks: {list(TASKS)}")
    return TASKS[task].model_keys


@dataclass
class ModelConfig:
    """The ``model`` section of every task: which backbone (or encoder) it trains on.

    Attributes:
        encoder: "backbone" (an ESM-2 model) or "onehot" (the one-hot CNN baseline; no
            pretrained weights, trained with the head). Tasks rri, mrl and joint.
        init: backbone weights: a fair-esm ``.pt`` path, a Hugging Face folder or an ESM-2
            name (e.g. the model written by ``resm pretrain``) to continue from.
        arch: instead of ``init``, a named architecture (``esm2_t6_8M_UR50D``, ...) with random
            weights.
        init_seed: seed of that random initialisation (and of a LoRA adapter's).
        mode: "frozen" (heads only), "adapters" (a LoRA adapter on the frozen backbone + heads)
            or "full" (the backbone trains too). Fine-tuning tasks; the mlm task always trains
            the whole backbone (it accepts ``full`` only).
        adapter: LoRA settings for mode adapters (:class:`resm.backbone.adapters.AdapterConfig`:
            r, alpha, dropout, targets, layers).
        scheme: nucleotide -> protein-letter mapping scheme; must match the checkpoint's.
            Fine-tuning tasks (the mlm task reads ``data.scheme``).
        trust_checkpoint: allow unpickling arbitrary objects from ``init`` (trusted files only).
        onehot: settings of the one-hot encoder (:class:`resm.backbone.encoder.OneHotConfig`).
            Tasks rri, mrl and joint.
        save_hf: also write the final model as a Hugging Face folder. Task mlm.
    """

    encoder: str = "backbone"
    init: str | None = None
    arch: str | None = None
    init_seed: int = 0
    mode: str = "frozen"
    adapter: dict[str, Any] | None = None
    scheme: str = "kdny"
    trust_checkpoint: bool = False
    onehot: dict[str, Any] = field(default_factory=dict)
    save_hf: bool = False

    def __post_init__(self):
        if self.encoder not in ("backbone", "onehot"):
            raise ConfigError(f"model.encoder must be backbone or onehot, not {self.encoder!r}")
        if self.encoder == "backbone" and self.init and self.arch:
            raise ConfigError(
                f"model: give exactly one of init (checkpoint) or arch (random init), not both: "
                f"add model.arch=null to start from model.init={self.init}"
            )
        if self.encoder == "backbone" and not self.init and not self.arch:
            raise ConfigError(
                "model: give exactly one of init (checkpoint) or arch (random init), e.g. "
                "model.init=default (the shipped model's backbone) or model.arch=small"
            )
        if self.arch is not None:
            from ..backbone.config import ARCHS

            if self.arch not in ARCHS:
                raise ConfigError(f"model.arch: unknown architecture {self.arch!r}; known: {', '.join(ARCHS)}")
        if self.mode not in MODES:
            raise ConfigError(f"model.mode must be one of {list(MODES)}, not {self.mode!r}")
        if not seed_ok(self.init_seed):  # past 2**64: "Overflow when unpacking long long", naming no key
            raise ConfigError(f"model.init_seed {SEED_RULE}, got {self.init_seed!r}")
        if self.mode == "adapters" and self.adapter is None:
            self.adapter = {}
        if self.mode != "adapters" and self.adapter:
            raise ConfigError("model.adapter is only used with model.mode adapters")

    @classmethod
    def for_task(cls, section: dict[str, Any] | None, task: str, **values) -> ModelConfig:
        """The ``model`` section of ``task``, validated by :func:`resm.config.from_dict`; keys
        the task does not use are refused. ``values`` set fields the task decides itself."""
        used = _model_keys(task)
        unused = {f.name: f"not used by task {task}" for f in fields(cls) if f.name not in used}
        d = dict(section) if isinstance(section, dict) else section
        if task == "mlm" and isinstance(d, dict) and "mode" in d and d.pop("mode") != "full":
            raise ConfigError("model.mode: task mlm trains the whole backbone (full only)")
        if task == "mlm":
            values.setdefault("mode", "full")
        return from_dict(cls, d, "model", fixed={k: v for k, v in unused.items() if k not in values}, extra=values)

    def settings(self, task: str) -> dict[str, Any]:
        """The keys ``task`` reads, with their values (what a resumed run must not change)."""
        d = asdict(self)
        return {k: d[k] for k in _model_keys(task)}


def load_model_backbone(cfg, scheme: Scheme):
    """``(ESM2, arch name or None, source)`` of a ``model`` section with ``init`` (a checkpoint)
    or ``arch`` (random weights from ``init_seed``); shared by every task."""
    from ..backbone.load import HUB_ID, init_model
    from ..structure.model import load_backbone

    if cfg.init:
        from pathlib import Path

        init = str(cfg.init)
        a_file = Path(init).suffix in (".pt", ".pth", ".bin") or ("/" in init and not HUB_ID.match(init))
        if a_file and not Path(init).exists():
            raise ConfigError(
                f"model.init: {cfg.init}: {no_such(init, 'checkpoint')}; make it first "
                "(resm pretrain --config cpu_demo writes runs/cpu_demo/model.pt) or start from the shipped "
                "model's backbone: model.init=default"
            )
        loaded = load_backbone(cfg.init, scheme, trust=cfg.trust_checkpoint)
        return loaded.model, loaded.meta.get("arch"), cfg.init
    from ..backbone.config import ARCHS

    # before a model too big is built: its weights, gradients and Adam's moments where it trains
    # (mode full: pretraining, or fine-tuning it all); its weights alone where it stays frozen
    # (modes frozen and adapters: only the heads, and a LoRA adapter, train)
    ARCHS[cfg.arch].require_buildable("model.arch", cfg.arch, train=cfg.mode == "full")
    return init_model(cfg.arch, seed=cfg.init_seed), cfg.arch, f"random:{cfg.arch}"


def adapter_config(cfg):
    """The :class:`resm.backbone.adapters.AdapterConfig` of a ``model`` section in mode adapters
    (None in the other modes); a bad setting is a ConfigError naming ``model.adapter``."""
    if cfg.mode != "adapters":
        return None
    from ..backbone.adapters import AdapterConfig

    return from_dict(AdapterConfig, cfg.adapter, "model.adapter")


def build_encoder(cfg: ModelConfig) -> tuple[nn.Module, Scheme, str]:
    """``(encoder, scheme, backbone source)`` for a ``model`` section."""
    scheme = get_scheme(cfg.scheme)
    if cfg.encoder == "onehot":
        return OneHotEncoder(from_dict(OneHotConfig, cfg.onehot, "model.onehot")), scheme, "onehot"
    backbone, _, source = load_model_backbone(cfg, scheme)
    return BackboneEncoder(backbone, cfg.mode, adapter_config(cfg), seed=cfg.init_seed), scheme, source


class TaskModel(nn.Module):
    """One encoder, several heads. ``heads`` maps a head name to ``(module, apply)`` where
    ``apply(head, h, mask, batch) -> output`` reads the encoder output for that head."""

    def __init__(self, encoder: nn.Module, heads: dict[str, nn.Module], apply: dict[str, Callable]):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads)
        self.appliers = dict(apply)
        self.encoder_calls = 0  # counts encoder passes (tests check one pass serves all heads)

    def add_head(self, name: str, head: nn.Module, apply: Callable) -> None:
        self.heads[name] = head
        self.appliers[name] = apply

    def forward(self, batch: dict[str, Any], names: Sequence[str] | None = None) -> dict[str, Any]:
        names = list(self.heads) if names is None else list(names)
        h, mask = self.encoder(batch)
        self.encoder_calls += 1
        return {n: self.appliers[n](self.heads[n], h, mask, batch) for n in names}


def check_item_data(cfg: Any, what: str) -> None:
    """The checks every ``data`` section of examples held in memory shares (``train`` named,
    ``seed`` as :mod:`resm.utils.seeds` says, ``batch_size`` / ``max_train`` / ``max_val`` >= 1); ``what``: what the
    training file holds, as the error names it."""
    if not cfg.train:
        raise ConfigError(f"data.train: give the {what} file")
    if not seed_ok(cfg.seed):
        raise ConfigError(f"data.seed {SEED_RULE}, got {cfg.seed!r}")
    for key in ("batch_size", "max_train", "max_val"):
        v = getattr(cfg, key)
        if v is not None and v < 1:
            raise ConfigError(f"data.{key} must be >= 1, got {v}")


def counted_once(n: int) -> int:
    """A count of validation examples that every process scores in full (rri, mrl: AUROC, R²
    and Spearman's rho do not split over processes): ``n`` on the first process, 0 on the
    others. The training loop sums counts over the processes (and averages the metrics), so it
    logs ``n``, not ``n`` times the number of processes; a bundle's metrics, measured by the
    first process alone, hold ``n`` too."""
    import torch.distributed as dist

    return n if not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0 else 0


def no_validation(val_items: Sequence[Any], split: str) -> list[str]:
    """A warning when the validation split is empty (``split``: the keys and the file that made
    it): the run then measures no validation metrics, and its bundle records none."""
    if val_items:
        return []
    return [f"resm: warning: the validation split is empty ({split}): no validation metrics are measured"]


def one_label(labels: Sequence[float], where: str, what: str, metric: str) -> list[str]:
    """A warning when every training example carries the same label (``what``: the examples,
    as the line names them; ``metric``: the validation metric it empties): the head then learns
    only to answer that constant, and ``metric`` measures nothing (nan when the validation
    examples carry one label too). A warning, not a refusal, as a training set without a base
    pair is for the structure task: the run is legal, what it logs is not wrong, and a capped
    quick run (``data.max_train``) may draw such a set."""
    values = {float(v) for v in labels}
    if len(values) != 1:
        return []
    return [
        f"resm: warning: {where}: all {len(labels)} training {what} have the label {values.pop():g}, so the head "
        f"learns only to answer that constant: {metric} measures nothing (nan with one label in validation too)"
    ]


def bundle_config(head_cfg) -> dict[str, Any]:
    """A head's config as its bundle entry stores it: without ``embed_dim``, which comes from
    the encoder the bundle is opened with."""
    return {k: v for k, v in head_cfg.to_dict().items() if k != "embed_dim"}


def seeded_head(make: Callable[[], Any], seed: int) -> Any:
    """``make()`` under ``torch.manual_seed(seed)`` (a head's initialisation, reproducible), the
    global random state left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


class BundleHeadTask:
    """What a task with one head saved into a bundle shares (``mrl``, ``rri``): its last
    validation (:meth:`finish_head`, on every process) goes into the head's bundle entry
    (:meth:`bundle_head`, also a joint run's), and the run ends with the bundle written. A
    subclass sets ``name``, ``head_name``, ``model_cfg``, ``head_cfg``, ``data_cfg``, ``scheme``,
    ``source`` and ``final_metrics``, and defines ``validate`` and ``head_spec``."""

    def _encoder(self, encoder: tuple | None) -> nn.Module:
        """The encoder the head reads: the ``(module, scheme, source)`` a joint run hands in, or
        one built from ``model_cfg`` (:func:`build_encoder`); ``scheme`` and ``source`` are set
        from it."""
        encoder, self.scheme, self.source = build_encoder(self.model_cfg) if encoder is None else encoder
        return encoder

    @staticmethod
    def _head_config(config_cls: type, section: Any, encoder: nn.Module):
        """The config section ``head`` as a ``config_cls``, its ``embed_dim`` the encoder's."""
        fixed = {"embed_dim": "taken from the encoder"}
        return from_dict(config_cls, section, "head", fixed=fixed, extra={"embed_dim": encoder.embed_dim})

    def fingerprint(self) -> dict[str, Any]:
        """What a resumed run must not change (:meth:`resm.train.Task.fingerprint`): the task,
        the ``model`` keys it reads, its ``head`` and ``data`` sections and the mapping scheme's
        table."""
        return {
            "task": self.name,
            "model": self.model_cfg.settings(self.name),
            "head": self.head_cfg.to_dict(),
            "data": asdict(self.data_cfg),
            "scheme_hash": self.scheme.table_hash,
        }

    def notes(self) -> list[str]:
        """Warnings on the data (``_notes``, set by the subclass), printed by the loop once every
        check has passed (a refused run says one line)."""
        return list(getattr(self, "_notes", ()))

    finished = False  # finish_head has run

    def finish_head(self, module, device) -> None:
        """The last validation, whose metrics go into the head's bundle entry: on every process
        (the loop's :meth:`resm.train.Task.finish`; a joint run's, for each head)."""
        self.final_metrics = dict(self.validate(module, device))
        self.finished = True

    def finish(self, module, device) -> None:
        self.finish_head(module, device)

    def bundle_head(self, module, device) -> dict[str, Any]:
        """The head's bundle entry, with the metrics of :meth:`finish_head` (run now when it has
        not run: a caller outside the loop, in one process)."""
        if not self.finished:
            self.finish_head(module, device)
        return self.head_spec()

    def outputs(self, out_dir: Path) -> list[tuple[Path, str, Any]]:
        return bundle_outputs(out_dir)

    def save_final(self, module, out_dir: Path, state: dict[str, torch.Tensor]) -> None:
        spec = self.bundle_head(module, next(iter(state.values())).device)
        save_bundle(Path(out_dir) / BUNDLE_DIR, module, self.scheme, self.source, {self.head_name: spec})

    def summary(self) -> dict[str, Any]:
        return {"final": self.final_metrics}


def subset(items: Sequence[Any], n: int | None, seed: int) -> list[Any]:
    """A seeded random subset of ``n`` items (file order kept); all of them when n is None."""
    if n is None or n >= len(items):
        return list(items)
    keep = np.sort(np.random.default_rng([seed, 23]).permutation(len(items))[:n])
    return [items[i] for i in keep]


def encode_batch(seqs: Sequence[str], scheme: Scheme, names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """tokens (B, T) with BOS/EOS, nuc (B, L) codes (4 at padding) and mask (B, L)."""
    names = names or [f"seq{i}" for i in range(len(seqs))]
    ids = [scheme.encode(s, n) for s, n in zip(seqs, names)]
    B, L = len(seqs), max(len(s) for s in seqs)
    nuc = torch.full((B, L), UNKNOWN_BASE, dtype=torch.long)
    mask = torch.zeros(B, L, dtype=torch.bool)
    for b, (s, n) in enumerate(zip(seqs, names)):
        nuc[b, : len(s)] = torch.from_numpy(rna_codes(s, n).astype(np.int64))
        mask[b, : len(s)] = True
    return {"tokens": pad_batch(ids), "nuc": nuc, "mask": mask}


def on_device(batch: dict[str, Any], device) -> dict[str, Any]:
    """A batch's tensors on ``device`` (its other entries as they are)."""
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


class ItemStream(EpochStream):
    """Deterministic, resumable, sharded mini-batches of ``batch_size`` examples.

    Example k goes to rank ``k % world_size``; an epoch's order is a pure function of
    ``(seed, epoch, rank)`` (resumption: :class:`resm.data.stream.EpochStream`). Endless. A
    batch is a list of examples (whatever ``items`` holds).
    """

    def __init__(self, items: Sequence[Any], batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        super().__init__(seed, rank, world_size)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.items = [items[k] for k in range(rank, len(items), world_size)]
        if not self.items:
            raise ConfigError(f"rank {rank}/{world_size}: no training examples")
        self.batch_size = batch_size
        self._digest: str | None = None

    def records_digest(self) -> str:
        if self._digest is None:
            self._digest = digest_of(item_bytes(it) for it in self.items)
        return self._digest

    def iter_epoch(self, epoch: int) -> Iterator[list[Any]]:
        order = np.random.default_rng([self.seed, epoch, self.rank, 13]).permutation(len(self.items))
        for s in range(0, len(order), self.batch_size):
            yield [self.items[i] for i in order[s : s + self.batch_size]]


# ----------------------------------------------------------------------------- bundles
def bundle_outputs(out_dir: Path) -> list[tuple[Path, str, Any]]:
    """What a bundle task writes at the end of its run (:meth:`resm.train.Task.outputs`): the
    bundle folder ``out_dir/model``, replacing only an earlier bundle."""
    return [(Path(out_dir) / BUNDLE_DIR, "dir", is_bundle)]


def save_bundle(folder: Path, model: TaskModel, scheme: Scheme, source: str, heads: dict[str, dict[str, Any]]) -> Path:
    """Write ``folder`` (created atomically): adapter (mode adapters), head files and manifest.

    ``heads`` maps a head name to ``{"task", "config", "extra"}`` (JSON-able). Returns folder.
    """
    from ..backbone import adapters as A
    from ..utils.io import atomic_dir

    folder = Path(folder)
    source = manifest_source(source, folder)
    enc = model.encoder

    with atomic_dir(folder, replaces=is_bundle) as tmp:
        if isinstance(enc, OneHotEncoder):
            for name, spec in heads.items():
                state = {f"head.{k}": v for k, v in model.heads[name].state_dict().items()}
                state.update({f"encoder.{k}": v for k, v in enc.state_dict().items()})
                torch.save(
                    {
                        "format": "resm-onehot-task",
                        "task": spec["task"],
                        "head_config": spec["config"],
                        "encoder_config": asdict(enc.cfg),
                        "extra": spec.get("extra", {}),
                        "scheme": scheme.name,
                        "state": state,
                    },
                    tmp / f"onehot-{name}.pt",
                )
            return folder
        backbone = enc.backbone
        if enc.mode == "full":
            from ..backbone.load import resm_meta, save_fair_esm

            save_fair_esm(backbone, tmp / "backbone.pt", meta=resm_meta(scheme))
            source = "backbone.pt"
        adapter = None
        if enc.mode == "adapters":
            A.save_adapter(tmp, backbone, enc.adapter_name, enc.adapter_cfg, scheme, backbone_source=source)
            from ..backbone.peft_format import peft_folder_name, save_peft_adapter

            # the same adapter in PEFT's format: PeftModel.from_pretrained(<the HF export>, bundle/peft-<name>)
            save_peft_adapter(tmp / peft_folder_name(enc.adapter_name), backbone, enc.adapter_name, enc.adapter_cfg)
            adapter = enc.adapter_name
        for name, spec in heads.items():
            extra = dict(spec.get("extra", {}), backbone_source=source, mode=enc.mode)
            A.save_head(
                tmp,
                name,
                model.heads[name],
                spec["config"],
                spec["task"],
                adapter,
                extra=extra,
                model=backbone,
                scheme=scheme,
                backbone_source=source,
            )
    return folder


def manifest_source(source: str, folder: Path) -> str:
    """The backbone as a bundle's manifest records it: a path that exists, relative to the
    bundle folder (so the bundle can move with its backbone, and loads from any working
    directory); a model name (``esm2_...``, ``default``, a hub id, ``random:...``) as it is."""
    if not source or not Path(source).exists():
        return source
    return os.path.relpath(Path(source).resolve(), Path(folder).resolve())


def resolve_source(src: str, folder: Path) -> str:
    """Inverse of :func:`manifest_source`: a relative path is read from the bundle folder; a
    manifest written before paths were recorded that way (relative to the working directory
    of training) still loads when that path exists."""
    if not src or Path(src).is_absolute() or src.startswith("random:"):
        return src
    beside = Path(folder) / src
    return str(beside) if beside.exists() else src


def bundle_backbone(folder: str | os.PathLike) -> str:
    """The backbone a bundle's manifest records (``backbone.source``, else the first head's
    ``extra.backbone_source``), resolved from the bundle folder (:func:`resolve_source`); ""
    when none is recorded. The manifest is read with :func:`resm.backbone.adapters.read_manifest`
    (its errors name the file)."""
    from ..backbone.adapters import read_manifest

    manifest = read_manifest(folder)
    first = next(iter(manifest.get("heads", {}).values()), {})
    src = manifest["backbone"].get("source") or first.get("extra", {}).get("backbone_source", "")
    return resolve_source(src, Path(folder))


def open_bundle(folder, backbone: str | None = None, trust: bool = False, adapter: Path | None = None):
    """:func:`load_bundle` for the commands and the API: a folder that is no bundle, or one
    made for another backbone (checksum) or mapping scheme, is a :class:`BundleError` naming
    the bundle."""
    from ..backbone.adapters import AdapterError
    from ..backbone.load import CheckpointError
    from ..mapping import MappingError

    folder = Path(folder)
    if not is_bundle(folder):
        what = "model bundle (a folder with manifest.json: out_dir/model of `resm finetune`)"
        raise BundleError(f"{folder}: {f'not a {what}' if folder.exists() else no_such(folder, what)}")
    try:
        return load_bundle(folder, backbone=backbone, trust=trust, adapter=adapter)
    except (AdapterError, CheckpointError, MappingError) as e:
        msg = str(e)
        raise BundleError(msg if str(folder) in msg else f"{folder}: {msg}") from None


def load_bundle(
    folder: Path,
    backbone: str | None = None,
    trust: bool = False,
    builders: dict[str, Callable[[dict, int], tuple[nn.Module, Callable]]] | None = None,
    adapter: Path | None = None,
) -> tuple[TaskModel, dict[str, dict], Scheme]:
    """``(TaskModel in eval mode, manifest head entries, scheme)`` from a bundle folder.

    Each head is rebuilt by ``builders[task](head_config, embed_dim) -> (head module, apply)``,
    by default the head registry :data:`resm.heads.HEADS`. ``backbone`` overrides the backbone
    recorded in the manifest (its checksum must match). ``adapter``, a PEFT LoRA folder (made on
    the Hugging Face export of the same backbone), takes the place of the bundle's adapter.
    """
    from ..backbone import adapters as A
    from ..heads import HEADS, build_for_weights

    builders = HEADS if builders is None else builders
    from ..backbone.load import reading
    from ..structure.model import load_backbone

    folder = Path(folder)
    if not folder.is_dir():
        what = "model folder (out_dir/model of `resm finetune`)"
        why = f"is a file, not a {what}" if folder.exists() else no_such(folder, what)
        raise A.AdapterError(f"{folder}: {why}")
    onehot = sorted(folder.glob("onehot-*.pt"))
    if onehot and adapter is not None:
        raise A.AdapterError(f"{adapter}: the bundle {folder} is a one-hot baseline: no backbone for an adapter")
    if onehot:
        from ..backbone.load import safe_load

        heads, apply, entries = {}, {}, {}
        enc = None
        for f in onehot:
            d = safe_load(f)
            name = f.stem[len("onehot-") :]
            with reading(f, "one-hot model"):
                if enc is None:
                    enc = OneHotEncoder(OneHotConfig(**d["encoder_config"]))
                    enc.load_state_dict({k[8:]: v for k, v in d["state"].items() if k.startswith("encoder.")})
                head_state = {k[5:]: v for k, v in d["state"].items() if k.startswith("head.")}
                head, fn = build_for_weights(builders[d["task"]], d["head_config"], enc.embed_dim, head_state)
                head.load_state_dict(head_state)
                heads[name], apply[name] = head, fn
                entries[name] = {"task": d["task"], "config": d["head_config"], "extra": d["extra"]}
                scheme = get_scheme(d["scheme"])
        return TaskModel(enc, heads, apply).eval(), entries, scheme
    manifest = A.read_manifest(folder)
    scheme = get_scheme(manifest["scheme"]["name"])
    entries = manifest.get("heads", {})
    if not entries:
        raise A.AdapterError(f"{folder}: the bundle has no heads")
    src = backbone or bundle_backbone(folder)
    if not src or src.startswith("random:"):
        raise A.AdapterError(f"{folder}: no backbone recorded ({src or 'none'}); pass the backbone checkpoint")
    bb = load_backbone(src, scheme, trust=trust).model
    A.check_manifest(manifest, bb, scheme, str(folder))
    names = list(manifest.get("adapters", {}))
    enc = BackboneEncoder(bb, "frozen")
    if adapter is not None:
        from ..backbone.peft_format import load_peft_adapter

        if len(names) > 1:
            raise A.AdapterError(f"{folder}: the bundle holds {len(names)} adapters; a PEFT folder replaces only one")
        load_peft_adapter(adapter, bb, names[0] if names else "shared")  # its own faults are named first
        if not names:  # nothing to take the place of: the heads read the backbone's own features
            mode = next(iter(entries.values())).get("extra", {}).get("mode", "frozen")
            raise A.AdapterError(
                f"{adapter}: the bundle {folder} holds no adapter for it to replace (trained in mode {mode}: "
                "its heads read the backbone without one)"
            )
        names = []
        entries = {k: dict(e, adapter=None) for k, e in entries.items()}  # the PEFT adapter stays active
    for n in names:
        A.load_adapter(folder, bb, n, scheme)
    heads, apply = {}, {}
    for name, entry in entries.items():
        state, _ = A.load_head_state(folder, name)
        with reading(folder / A.MANIFEST, f"model bundle (head {name!r})"):
            # the registry head it is rebuilt with: its task's, unless the entry names another
            # (a structure head of kind pairs is the registry's "pairs")
            build = builders[entry.get("extra", {}).get("head", entry["task"])]
            head, fn = build_for_weights(build, entry["config"], bb.embed_dim, state)
            head.load_state_dict(state)
        heads[name], apply[name] = head, fn
        if entry.get("adapter"):
            A.set_active_adapter(bb, entry["adapter"])
    return TaskModel(enc, heads, apply).eval(), entries, scheme
