"""The secondary-structure task (``structure``): an ESM-2 backbone and a structure head trained
on labelled structures (e.g. bpRNA TR0, validated on VL0). The head's kind (``head.kind``:
``pairs``, the sparse pair head and the shipped model's, or ``conv``, the older dense 2-D head)
is a :class:`resm.tasks.structure_heads.HeadKind`, which builds the head's config, gives the
loss on a batch, validates and chooses the decoding through the kind's predictor
(:mod:`resm.structure.predictor`, as ``resm fold`` decodes) and says what the model file holds;
this module holds no kind-specific code. The head itself is built through
:data:`resm.heads.HEADS`.

The task is also a sub-task of ``task: joint`` (:mod:`resm.tasks.joint`): built on the shared
encoder, its head then reads the encoder's embeddings (no attention maps) and its decoding
settings go into the bundle with the head.

The config has these sections (every option is documented on its dataclass):

* ``task``: ``structure``;
* ``model`` (:class:`resm.tasks.base.ModelConfig`): backbone weights, training mode, mapping
  scheme;
* ``head``: ``kind`` (:data:`resm.tasks.structure_heads.KINDS`) and the fields of its config,
  :class:`resm.heads.pairs.PairHeadConfig` or :class:`resm.heads.pair_map.StructureHeadConfig`
  (the backbone's sizes and the prior count are filled in);
* ``data`` (:class:`resm.data.labelled_structures.StructureDataConfig`): structure files, crops,
  batching, priors, family hold-out;
* ``loss`` (:class:`StructureLossConfig`): positive-pair weight, expected-F1 weight;
* ``start`` (:class:`StructureStartConfig`, optional): a trained structure model to start from
  (fine-tuning it, e.g. the shipped model on PDB-derived TR1);
* ``optim`` / ``train``: :class:`resm.train_config.OptimConfig` / :class:`resm.train_config.TrainConfig`.

The loop is :class:`resm.train.Trainer` (checkpoints, exact resume, DDP / DeepSpeed); this
module supplies the task. The finished model is one file, ``out_dir/structure_model.pt``
(:mod:`resm.structure.model`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ConfigError, from_dict
from ..data.labelled_structures import (
    Item,
    StructureDataConfig,
    StructureStream,
    load_records,
    load_training_records,
    split_training_records,
)
from ..fasta import token_batches
from ..mapping import get_scheme
from ..nucleotides import rna_codes
from ..records import validation_is_training
from ..structure.model import (
    DEFAULT_KIND,
    FORMAT,
    HEAD_KINDS,
    MODEL_FILE,
    HeadOfBundle,
    StructureModel,
    model_from_payload,
    save_structure_model,
    structure_payload,
)
from ..utils.paths import no_such
from .base import (
    BACKEND_COLUMNS,
    CompareSpec,
    ModelConfig,
    TaskModel,
    TaskSpec,
    adapter_config,
    bundle_config,
    load_model_backbone,
    seeded_head,
)
from .structure_heads import KINDS

__all__ = ["StructureLossConfig", "StructureStartConfig", "StructureTask"]

_EXTRA = 2  # BOS + EOS


@dataclass
class StructureLossConfig:
    """Loss of the ``structure`` task.

    Attributes:
        pos_weight: weight of the positive (paired) term of the binary cross-entropy. The 2-D
            head sees every cell, of which about 1 in L/2 is paired, so it is well above 1
            there; the pair head's candidates are already mostly plausible pairs, and 1 keeps
            its probabilities calibrated for maximum-expected-accuracy decoding.
        f1_weight: weight (a finite number >= 0) of an expected-F1 term added to the pair
            head's loss: ``f1_weight * mean_s (1 - softF1_s)`` over the batch's sequences that
            have a reference pair, ``softF1_s = 2 sum(p y) / (sum(p) + n_s)`` over sequence s's
            candidates (p the head's probability, y the reference indicator) and ``n_s`` the
            sequence's reference pairs, those outside the candidates included: the per-sequence
            F1 the metrics score (:func:`resm.tasks.structure_heads.soft_f1_loss`). 0 (the
            default) is the binary cross-entropy alone, bit for bit. The 2-D head (``head.kind
            conv``) refuses a value above 0.
    """

    pos_weight: float = 10.0
    f1_weight: float = 0.0

    def __post_init__(self):
        if not self.pos_weight > 0:
            raise ConfigError(f"loss.pos_weight must be > 0, got {self.pos_weight}")
        w = self.f1_weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ConfigError(f"loss.f1_weight must be a finite number >= 0, got {w!r}")


@dataclass
class StructureStartConfig:
    """Where the ``structure`` task's weights start (the ``start`` section).

    Attributes:
        model: a ``structure_model.pt`` (e.g. ``resm/models/structure_default.pt``, the shipped
            model) whose backbone and head weights the training starts from: fine-tuning a
            trained model on other data. Its head kind and head settings, mapping scheme and
            pair priors must be this config's (``model.arch`` or ``model.init`` only gives the
            backbone's architecture; its weights are replaced). None: the head starts at random.
    """

    model: str | None = None


def _start_weights(task, path: str, backbone, head) -> None:
    """Load the backbone and head weights of the structure model at ``path`` into ``backbone``
    and ``head``, after checking that it was built as ``task``'s config builds them."""
    from ..backbone.load import safe_load

    where = f"start.model {path}"
    try:
        payload = safe_load(path)
    except FileNotFoundError:
        raise ConfigError(f"{where}: {no_such(path, 'file')}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError(f"{where}: not a resm structure model (written by resm finetune)")
    kind = task.kind.name
    if payload.get("head_kind", "conv") != kind:
        raise ConfigError(
            f"{where}: its head is {payload.get('head_kind', 'conv')!r}, this config's head.kind {kind!r}"
        )
    if payload.get("scheme") != task.scheme.name:
        raise ConfigError(
            f"{where}: trained with scheme {payload.get('scheme')!r}, this config's model.scheme {task.scheme.name!r}"
        )
    task.kind.check_start(payload, where)
    mine, theirs = task.head_cfg.to_dict(), payload.get("head_config") or {}
    diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    if diff:
        raise ConfigError(f"{where}: head.{diff[0]} is {theirs.get(diff[0])!r} there, {mine.get(diff[0])!r} here")
    trained, _ = model_from_payload(payload)
    try:
        backbone.load_state_dict(trained.backbone.state_dict())
        head.load_state_dict(trained.head.state_dict())
    except RuntimeError as e:
        raise ConfigError(f"{where}: weights do not fit this config's model ({str(e).splitlines()[0]})") from None


# ----------------------------------------------------------------------------- task
class StructureTask:
    """Secondary structure: backbone + a structure head of kind ``head.kind`` (see the module
    notes). ``encoder``: ``(encoder, scheme, source)`` of a ``task: joint`` run, whose backbone
    (and adapter) the head then shares; the task's model is then a
    :class:`resm.tasks.base.TaskModel` with the head named ``structure``."""

    name = head_name = "structure"
    sections = ("model", "head", "data", "loss", "start")
    output = MODEL_FILE

    def __init__(self, cfg: dict[str, Any], *, train_priors: bool = True, encoder=None):
        """Pair priors are computed lazily, for the records a batch or a validation uses, so
        ``train_priors`` (False: a task built only to validate or choose the decoding of a
        trained model) changes nothing now; it is kept for callers."""
        model_section = cfg.get("model")
        if encoder is not None and isinstance(model_section, dict):  # joint's own keys
            model_section = {k: v for k, v in model_section.items() if k not in ("encoder", "onehot")}
        self.model_cfg = ModelConfig.for_task(model_section, "structure")
        self.data_cfg = from_dict(StructureDataConfig, cfg.get("data"), "data")
        self.loss_cfg = from_dict(StructureLossConfig, cfg.get("loss"), "loss")
        self.start_cfg = from_dict(StructureStartConfig, cfg.get("start"), "start")
        self.scheme = get_scheme(self.model_cfg.scheme)
        m, d = self.model_cfg, self.data_cfg
        section = cfg.get("head")
        section = dict(section) if isinstance(section, dict) else ({} if section is None else section)
        if not isinstance(section, dict):
            raise ConfigError(f"head: expected a mapping of options, got {section!r}")
        kind = section.pop("kind", DEFAULT_KIND)
        if not isinstance(kind, str) or kind not in KINDS:  # a list or a mapping: unhashable
            raise ConfigError(f"head.kind must be one of {sorted(KINDS)}, not {kind!r}")
        self.kind = KINDS[kind](self)
        if encoder is None:
            backbone, self.arch, _ = load_model_backbone(m, self.scheme)
        else:
            enc, self.scheme, self.source = encoder
            backbone, self.arch = getattr(enc, "backbone", None), None
            if backbone is None:
                raise ConfigError(
                    "tasks.structure: the structure head needs a backbone encoder, not model.encoder onehot"
                )
            if section.get("use_attention") is True:
                raise ConfigError(
                    "tasks.structure.head.use_attention: a joint run's heads read the shared encoder's "
                    "embeddings, not attention maps"
                )
        self.head_cfg, self.prior_cfgs = self.kind.configure(section, backbone, d)
        from ..heads import HEADS

        head, apply = seeded_head(lambda: HEADS[HEAD_KINDS[kind]](self.head_cfg.to_dict(), backbone.embed_dim), d.seed)
        if self.start_cfg.model:
            _start_weights(self, self.start_cfg.model, backbone, head)
        if encoder is None:
            self.model = StructureModel(backbone, head, m.mode, adapter_config(m))
        else:
            self.model = TaskModel(encoder[0], {self.head_name: head}, {self.head_name: apply})
        self.joint = encoder is not None
        keep_train = keep_val = None
        if d.split:
            from ..structure.datasets import read_split

            folds = read_split(d.split)
            if d.fold not in folds:
                raise ConfigError(f"data.fold {d.fold!r} is not in {d.split} (folds: {sorted(folds)})")
            keep_train, keep_val = folds[d.fold]["train"], folds[d.fold]["valid"]
        self.family_records, self.family_ids, self.family_counts = [], [], {}
        if d.family_holdout:  # families drawn before max_train caps the training records
            split = split_training_records(d, self.scheme, keep_train)
            self.train_records, self.train_ids, held, held_ids, self.family_counts, self.n_skipped, weights = split
            self.family_records, self.family_ids = held[: d.max_val or None], held_ids[: d.max_val or None]
        else:
            loaded = load_training_records(d, self.scheme, keep_train)
            self.train_records, self.train_ids, self.n_skipped, weights = loaded
        # warnings the loop prints once every check has passed (a refused run says one line)
        self._notes = _what_training_lacks(d.train, self.train_records, self.n_skipped, self.scheme.name)
        # each training record's weight of the paired loss term (its data.train file's
        # pos_weight, else loss.pos_weight); None when every record takes loss.pos_weight
        pw = self.loss_cfg.pos_weight
        self.train_pos_weights = None if all(w is None for w in weights) else [pw if w is None else w for w in weights]
        self.val_records, self.val_ids = ([], [])
        val_path = d.val or (d.train if d.split else None)
        if val_path:
            self.val_records, self.val_ids, _ = load_records(
                val_path, self.scheme, d.max_val, d.seed, keep_val, d.pdb_pairs
            )
        self._notes += validation_is_training(
            d.val, self.val_records, self.train_records, _name_and_sequence, " and the decoding chosen on them"
        )
        self.extra_sets: dict[str, tuple[list, list]] = {  # data.val_sets: name -> (records, token ids)
            name: load_records(path, self.scheme, d.max_val, d.seed, None, d.pdb_pairs)[:2]
            for name, path in (d.val_sets or {}).items()
        }
        self.priors: dict[tuple[str, int], list] = {}  # filled as records are first used
        self._prior_of_seq: dict[str, list] = {}  # the same priors, by sequence
        self.threshold: float | None = None
        self.decoding: dict[str, Any] | None = None
        self.final_metrics: dict[str, Any] = {}

    # -------------------------------------------------------------- records and priors
    def records(self, split: str):
        if split in self.extra_sets:
            return self.extra_sets[split][0]
        return {"train": self.train_records, "val": self.val_records, "family": self.family_records}[split]

    def _ids(self, split: str):
        if split in self.extra_sets:
            return self.extra_sets[split][1]
        return {"val": self.val_ids, "family": self.family_ids, "train": self.train_ids}[split]

    def pos_weights(self, items: list[Item]) -> list[float] | None:
        """The paired term's weight of each item (its training file's ``pos_weight``), or None
        when every item takes ``loss.pos_weight`` (validation items always do)."""
        if self.train_pos_weights is None:
            return None
        pw = self.loss_cfg.pos_weight
        out = [self.train_pos_weights[k] if split == "train" else pw for split, k in (it.key for it in items)]
        return None if all(w == pw for w in out) else out

    def validation_splits(self) -> list[str]:
        """The validation sets that hold records: ``val``, ``family``, then ``data.val_sets``."""
        return [s for s in ("val", "family", *self.extra_sets) if self.records(s)]

    def ensure_priors(self, keys, progress: bool = False) -> None:
        """The pair priors of the records ``keys`` that have none yet, computed when a run first
        uses them (parallel over the records; cached on disk if asked): a short run computes
        the priors of the records it trains on, not of the whole training set."""
        import os

        from ..structure.priors import compute_priors

        missing = [k for k in dict.fromkeys(keys) if k not in self.priors]
        if not missing:
            return
        seqs = [self.records(s)[k].seq for s, k in missing]
        # a sequence met again (data.train's repeat, or the same RNA in another split) is folded once
        unique = [q for q in dict.fromkeys(seqs) if q not in self._prior_of_seq]
        if unique:
            workers = min(self.data_cfg.workers or (os.cpu_count() or 1), len(unique))
            computed = compute_priors(
                unique, self.prior_cfgs, self.data_cfg.bpp_cache, workers, progress=progress, desc="pair priors"
            )
            self._prior_of_seq.update(zip(unique, computed))
        self.priors.update({key: self._prior_of_seq[q] for key, q in zip(missing, seqs)})

    def eval_items(self, split: str, rank: int = 0, world: int = 1) -> list[list[Item]]:
        recs, ids = self.records(split), self._ids(split)
        items = []
        for k in range(rank, len(recs), world):
            r = recs[k]
            items.append(Item((split, k), r.name, r.seq, r.pairs, 0, ids[k], rna_codes(r.seq, r.name)))
        groups = token_batches([len(it.seq) for it in items], self.data_cfg.tokens_per_batch, extra=_EXTRA)
        return [[items[i] for i in g] for g in groups]

    def net(self, model):
        """``model`` as its head kind calls it, ``net(tokens, inputs) -> logits``: the
        :class:`StructureModel` itself, or this task's head of a joint run's model."""
        return HeadOfBundle(model, self.head_name) if self.joint else model

    # -------------------------------------------------------------- Task protocol
    def notes(self) -> list[str]:
        """Warnings on the training data, printed by the loop once every check has passed."""
        return self._notes

    def train_stream(self, rank: int, world_size: int) -> StructureStream:
        return StructureStream(self.train_records, self.train_ids, self.data_cfg, rank, world_size)

    def loss(self, model, batch: list[Item], generator, device):
        return self.kind.loss(self.net(model), batch, device)

    def validate(self, model, device) -> dict[str, float]:
        if not self.validation_splits():
            return {}
        import torch.distributed as dist

        rank = dist.get_rank() if dist.is_initialized() else 0
        world = dist.get_world_size() if dist.is_initialized() else 1
        return self.kind.validate(self.net(model), device, rank, world)

    def fingerprint(self) -> dict[str, Any]:
        out = {
            "task": "structure",
            "model": self.model_cfg.settings("structure"),
            "head": self.head_cfg.to_dict(),
            "data": asdict(self.data_cfg),
            # loss.f1_weight 0 (the default) leaves the fingerprint of earlier runs as it was
            "loss": {k: v for k, v in asdict(self.loss_cfg).items() if k != "f1_weight" or v},
            "scheme_hash": self.scheme.table_hash,
        }
        if not self.joint:
            out["architecture"] = self.model.backbone.cfg.to_dict()
        out.update(self.kind.fingerprint())
        if self.start_cfg.model:
            out["start"] = asdict(self.start_cfg)
        return out

    def _finish(self, settings: dict[str, Any]) -> None:
        self.final_metrics = settings.get("val_metrics", {})
        summary = self.kind.summary(settings)
        self.threshold, self.decoding = summary["threshold"], summary["decoding"]

    def outputs(self, out_dir: Path) -> list[tuple[Path, str, Any]]:
        return [(Path(out_dir) / MODEL_FILE, "file", None)]

    def save_final(self, module, out_dir: Path, state: dict[str, torch.Tensor]) -> None:
        """Write ``out_dir/structure_model.pt`` with the decoding chosen on validation."""
        m = self.model_cfg
        payload = structure_payload(
            self.model,
            state,
            self.head_cfg,
            self.scheme,
            self.arch,
            m.init or f"random:{m.arch}",
            m.mode,
            self.kind.settings(),
        )
        model, _ = model_from_payload(payload)  # exactly the model that the file holds
        device = next(iter(state.values())).device
        self.kind.choose(model.to(device), device, payload)
        self._finish(payload)
        save_structure_model(payload, Path(out_dir) / MODEL_FILE)

    def finish_head(self, module, device) -> None:
        """Joint runs, on every process before the bundle is written: the head's decoding
        chosen on validation (a structure run alone chooses it on the model its file holds,
        in :meth:`save_final`)."""
        settings = self.kind.settings()
        self.kind.choose(self.net(module), device, settings)
        self._finish(settings)
        self._head_settings = settings

    def bundle_head(self, module, device) -> dict[str, Any]:
        """Joint runs: the head's bundle entry (``task``, ``config``, ``extra``: the registry
        head it is rebuilt with, its settings and decoding chosen on validation by
        :meth:`finish_head`, run now when it has not run)."""
        if getattr(self, "_head_settings", None) is None:
            self.finish_head(module, device)
        extra = dict(self._head_settings, head=self.kind.head)
        return {"task": "structure", "config": bundle_config(self.head_cfg), "extra": extra}

    def summary(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "decoding": self.decoding, "final": self.final_metrics}


# the columns of the structure table of ``resm compare`` (resm.compare.structure)
COMPARE_COLUMNS = (
    *BACKEND_COLUMNS,
    ("zeroshot_f1", "zero-shot F1"),
    ("zeroshot_f1_shift", "zero-shot F1 ±1"),
    ("supervised_f1", "supervised F1"),
    ("supervised_f1_shift", "supervised F1 ±1"),
    ("mfe_f1", "classical fold F1"),
    ("mfe_f1_shift", "classical fold F1 ±1"),
    ("embed_s", "embed s (test)"),
    ("peak_mem_mb", "peak MB"),
    ("params_m", "params (M)"),
)

TASK = TaskSpec(
    "structure",
    StructureTask,
    ("init", "arch", "init_seed", "mode", "adapter", "scheme", "trust_checkpoint"),
    head=HEAD_KINDS[DEFAULT_KIND],
    config="structure",
    joint=True,
    compare=CompareSpec(
        run="resm.compare.structure:run_backend",
        load="resm.compare.structure:load",
        sections=(
            ("data", "resm.compare.structure:DataSection", True),
            ("probe", "resm.compare.structure:ProbeSection", False),
            ("head", "resm.compare.structure:parse_head", False),
            ("train", "resm.compare.structure:TrainSection", False),
        ),
        columns=COMPARE_COLUMNS,
        csv="results.csv",
        report="resm.compare.structure:report",
        write="resm.compare.structure:write",
    ),
    order=10,
)


def _what_training_lacks(train: Any, records: list, n_skipped: int, scheme: str) -> list[str]:
    """Warnings of training records dropped as unmappable, and of a training set with no base
    pair at all (legal, but the head then learns only 'unpaired')."""
    out = []
    if n_skipped:
        out.append(
            f"resm: warning: data.train ({train}): {n_skipped} record(s) skipped (no sequence, or a symbol "
            f"scheme {scheme!r} does not map); training on the other {len(records)}"
        )
    if not any(_has_pairs(r) for r in records):
        out.append(
            f"resm: warning: data.train ({train}): none of its {len(records)} training record(s) has a base pair, "
            "so the head learns only 'unpaired'"
        )
    return out


def _has_pairs(record) -> bool:
    ij = getattr(record.pairs, "ij", None)  # a PDB pair table's PairSet, else a partner array
    return bool(len(ij)) if ij is not None else bool((np.asarray(record.pairs) >= 0).any())


def _name_and_sequence(record) -> tuple[str, str]:
    """What makes a validation record a training record (:func:`validation_is_training`)."""
    return record.name, record.seq
