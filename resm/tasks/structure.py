"""The secondary-structure task (``structure``): an ESM-2 backbone and the 2-D
:class:`resm.heads.structure.StructureHead`, trained with
:func:`resm.heads.structure.pair_loss` on labelled structures (e.g. bpRNA TR0, validated on
VL0). The config has these sections (every option is documented on its dataclass):

* ``task``: ``structure``;
* ``model`` (:class:`resm.tasks.base.ModelConfig`): backbone weights, training mode, mapping
  scheme;
* ``head`` (fields of :class:`resm.heads.structure.StructureHeadConfig`; ``embed_dim``,
  ``attn_channels`` and ``use_bpp`` are filled in from the backbone and ``data.use_bpp``);
* ``data`` (:class:`StructureDataConfig`): structure files, crops, batching, RNAfold channel;
* ``loss`` (:class:`StructureLossConfig`): positive-pair weight;
* ``optim`` / ``train``: :class:`resm.train.OptimConfig` / :class:`resm.train.TrainConfig`.

The loop is :class:`resm.train.Trainer` (checkpoints, exact resume, DDP / DeepSpeed); this
module supplies the task. The finished model is one file, ``out_dir/structure_model.pt``
(:mod:`resm.structure.model`: read it back with
:func:`resm.structure.model.load_structure_model` and fold with
:func:`resm.structure.model.predict_pairs`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from ..alphabet import pad_batch
from ..config import ConfigError, from_dict
from ..data.fasta import token_batches
from ..data.stream import EpochStream
from ..heads.structure import StructureHead, StructureHeadConfig, pair_loss
from ..mapping import MappingError, Scheme, get_scheme, rna_codes
from ..model.esm2 import ESM2
from ..structure.io import Structure, read_structures
from ..structure.model import MODEL_FILE, StructureModel, model_from_payload, save_structure_model, structure_payload
from .base import ModelConfig, adapter_config, load_model_backbone

__all__ = [
    "StructureDataConfig",
    "StructureLossConfig",
    "StructureStream",
    "StructureTask",
]

UNKNOWN_BASE = 4
_EXTRA = 2  # BOS + EOS


# ----------------------------------------------------------------------------- configs
@dataclass
class StructureDataConfig:
    """Labelled structures for the ``structure`` task.

    Attributes:
        train: structure file of the training set (dbn, bpseq, ct, pairs or ArchiveII's CSV;
            ``.gz`` ok), e.g.
            ``{data_dir}/ss/bprna/TR0.dbn``. Held in memory.
        val: structure file of the validation set (e.g. ``VL0.dbn``); None: no validation
            (the decoding threshold then stays 0.5).
        max_length: training records longer than this are randomly cropped, each epoch anew,
            to a window [s, s + max_length); only pairs with both ends inside it are kept.
            Validation records are never cropped.
        max_train: use only the first N training records after a shuffle seeded by ``seed``
            (None: all).
        max_val: the same cap for validation records.
        tokens_per_batch: token budget of a batch: count x (longest + 2) stays within it
            (records sorted by length, so batches hold similar lengths). Also used for
            validation batches.
        use_bpp: give the head a ViennaRNA base-pair-probability channel (``rnafold_bpp`` of
            each whole record, computed the first time the record is used and then kept in
            memory, fp16; a crop reads the matching window). Above the head's
            ``bpp_local_above`` the channel is the local (RNAplfold-style) one.
        bpp_cache: optional folder where those matrices are also stored (fp16 ``.npy``, one per
            sequence and prior setting, written atomically) and read back by later runs, e.g.
            the nine family folds of ArchiveII, which share their records.
        seed: seed of the record subsets, crops and batch order.
        split: a fold table (``fold_name, fold_number, partition, id``; e.g. ArchiveII's
            ``split_famfold.csv``) selecting records of ``train`` by id; needs ``fold``.
        fold: the fold to train: its ``train`` partition is the training set and its
            ``valid`` partition the validation set (from ``val`` if given, else from
            ``train``). Its ``test`` partition is never read here (``resm evaluate structure
            --dataset archiveii-famfold``).
    """

    train: str = ""
    val: Optional[str] = None
    max_length: int = 200
    max_train: Optional[int] = None
    max_val: Optional[int] = 200
    tokens_per_batch: int = 2048
    use_bpp: bool = False
    bpp_cache: Optional[str] = None
    seed: int = 0
    split: Optional[str] = None
    fold: Optional[str] = None

    def __post_init__(self):
        if not self.train:
            raise ConfigError("data.train: give the training structure file")
        if bool(self.split) != bool(self.fold):
            raise ConfigError("data.split (fold table) and data.fold go together")
        if self.max_length < 8:
            raise ConfigError(f"data.max_length must be >= 8, got {self.max_length}")
        if self.tokens_per_batch < self.max_length + _EXTRA:
            raise ConfigError(
                f"data.tokens_per_batch {self.tokens_per_batch} cannot hold one crop of "
                f"max_length {self.max_length} (+2 for BOS/EOS)"
            )
        for k in ("max_train", "max_val"):
            v = getattr(self, k)
            if v is not None and v < 1:
                raise ConfigError(f"data.{k} must be >= 1 or null, got {v}")


@dataclass
class StructureLossConfig:
    """Loss of the ``structure`` task.

    Attributes:
        pos_weight: weight of the positive (paired) term of the binary cross-entropy; pairs
            are rare (about 1 in L/2 cells), so it is well above 1.
    """

    pos_weight: float = 10.0


# ----------------------------------------------------------------------------- data
@dataclass
class Item:
    """One (possibly cropped) training or validation example."""

    key: Tuple[str, int]  # (split, record index): the bpp cache key
    name: str
    seq: str  # the window's sequence
    pairs: np.ndarray  # partners inside the window (-1: unpaired or partner outside)
    start: int  # window start in the full record
    tokens: np.ndarray  # mapped token ids of the window
    nuc: np.ndarray  # codes 0..4 of the window


def crop(rec: Structure, start: int, stop: int) -> Tuple[str, np.ndarray]:
    """Sequence and partner array of the window [start, stop); pairs leaving it are dropped."""
    p = rec.pairs[start:stop] - start
    p[(p < 0) | (p >= stop - start)] = -1
    return rec.seq[start:stop], p


def load_records(path: str, scheme: Scheme, cap: Optional[int], seed: int,
                 keep: Optional[set] = None) -> Tuple[List[Structure], List[np.ndarray], int]:
    """Records of ``path`` that map under ``scheme`` (only ids in ``keep`` when given; first
    ``cap`` after a seeded shuffle), their token ids, and the number skipped."""
    if str(path).lower().endswith(".csv"):  # ArchiveII's id,sequence,len,structure,base_pairs
        from ..structure.io import read_archiveii_csv

        recs = list(read_archiveii_csv(path))
    else:
        recs = list(read_structures(path))
    if keep is not None:
        recs = [r for r in recs if r.name in keep]
        if not recs:
            raise ConfigError(f"{path}: no record is in the selected fold partition")
    if cap is not None and cap < len(recs):
        order = np.random.default_rng([seed, 7]).permutation(len(recs))[:cap]
        recs = [recs[i] for i in sorted(order)]
    kept, ids, skipped = [], [], 0
    for r in recs:
        try:
            if not r.seq:
                raise MappingError(f"record {r.name!r}: no sequence")
            ids.append(scheme.encode(r.seq, r.name))
            kept.append(r)
        except MappingError:
            skipped += 1
    if not kept:
        raise ConfigError(f"{path}: no usable structure records ({skipped} skipped)")
    return kept, ids, skipped


class StructureStream(EpochStream):
    """Deterministic, resumable, sharded batches of structure crops held in memory.

    Record k goes to rank ``k % world_size``. An epoch's batches are a pure function of
    ``(seed, epoch, rank)``: records are cropped (windows drawn from that seed), shuffled,
    sorted by length (stable, so ties stay shuffled), cut into token-budget batches and the
    batch order is shuffled. ``state_dict()`` holds the epoch and the batches already yielded;
    after ``load_state_dict`` iteration continues exactly where the saved stream was.
    Iteration is endless (epoch after epoch). A batch is a list of :class:`Item`.
    """

    def __init__(self, records: List[Structure], ids: List[np.ndarray], cfg: StructureDataConfig,
                 rank: int = 0, world_size: int = 1):
        super().__init__(cfg.seed, rank, world_size)
        self.cfg = cfg
        self.index = [k for k in range(len(records)) if k % world_size == rank]
        if not self.index:
            raise ConfigError(f"rank {rank}/{world_size}: no training records")
        self.records, self.ids = records, ids
        self.codes = {k: rna_codes(records[k].seq, records[k].name) for k in self.index}

    def iter_epoch(self, epoch: int) -> Iterator[List[Item]]:
        rng = np.random.default_rng([self.cfg.seed, epoch, self.rank, 11])
        items: List[Item] = []
        for k in self.index:
            rec, n, m = self.records[k], len(self.records[k]), self.cfg.max_length
            s = int(rng.integers(0, n - m + 1)) if n > m else 0
            e = min(n, s + m)
            seq, pairs = crop(rec, s, e) if (s, e) != (0, n) else (rec.seq, rec.pairs)
            items.append(Item(("train", k), rec.name, seq, pairs, s, self.ids[k][s:e], self.codes[k][s:e]))
        items = [items[i] for i in rng.permutation(len(items))]
        groups = token_batches([len(it.seq) for it in items], self.cfg.tokens_per_batch, extra=_EXTRA)
        for g in rng.permutation(len(groups)):
            yield [items[i] for i in groups[g]]


def collate(items: List[Item], bpp_of=None) -> Dict[str, torch.Tensor]:
    """Padded tensors of a batch: tokens (B, T), nuc (B, L), target (B, L, L), mask (B, L),
    and bpp (B, 1, L, L) when ``bpp_of(item)`` is given."""
    B, L = len(items), max(len(it.seq) for it in items)
    tokens = pad_batch([it.tokens for it in items])
    nuc = torch.full((B, L), UNKNOWN_BASE, dtype=torch.long)
    target = torch.zeros(B, L, L)
    mask = torch.zeros(B, L, dtype=torch.bool)
    bpp = torch.zeros(B, 1, L, L) if bpp_of is not None else None
    for b, it in enumerate(items):
        n = len(it.seq)
        nuc[b, :n] = torch.as_tensor(it.nuc.astype(np.int64))
        mask[b, :n] = True
        i = np.flatnonzero(it.pairs >= 0)
        target[b, i, it.pairs[i]] = 1.0
        if bpp is not None:
            bpp[b, 0, :n, :n] = torch.from_numpy(bpp_of(it).astype(np.float32))
    out = {"tokens": tokens, "nuc": nuc, "target": target, "mask": mask}
    if bpp is not None:
        out["bpp"] = bpp
    return out


# ----------------------------------------------------------------------------- task
def _head_config(section: Optional[Dict[str, Any]], backbone: ESM2, use_bpp: bool) -> StructureHeadConfig:
    extra = {"embed_dim": backbone.embed_dim, "use_bpp": use_bpp}
    if isinstance(section, dict) and section.get("use_attention") is True:
        extra["attn_channels"] = backbone.num_layers * backbone.attention_heads
    fixed = {"embed_dim": "taken from the backbone", "attn_channels": "layers x heads of the backbone",
             "use_bpp": "set data.use_bpp instead"}
    return from_dict(StructureHeadConfig, section, "head", fixed=fixed, extra=extra)


class StructureTask:
    """Secondary structure: backbone + StructureHead, pair BCE, F1 on validation."""

    name = "structure"
    sections = ("model", "head", "data", "loss")
    output = MODEL_FILE

    def __init__(self, cfg: Dict[str, Any]):
        self.model_cfg = ModelConfig.for_task(cfg.get("model"), "structure")
        self.data_cfg = from_dict(StructureDataConfig, cfg.get("data"), "data")
        self.loss_cfg = from_dict(StructureLossConfig, cfg.get("loss"), "loss")
        self.scheme = get_scheme(self.model_cfg.scheme)
        m = self.model_cfg
        backbone, self.arch, _ = load_model_backbone(m, self.scheme)
        self.head_cfg = _head_config(cfg.get("head"), backbone, self.data_cfg.use_bpp)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.data_cfg.seed)  # head initialisation, reproducible
            head = StructureHead(self.head_cfg)
        self.model = StructureModel(backbone, head, m.mode, adapter_config(m))
        d = self.data_cfg
        keep_train = keep_val = None
        if d.split:
            from ..structure.datasets import read_split

            folds = read_split(d.split)
            if d.fold not in folds:
                raise ConfigError(f"data.fold {d.fold!r} is not in {d.split} (folds: {sorted(folds)})")
            keep_train, keep_val = folds[d.fold]["train"], folds[d.fold]["valid"]
        self.train_records, self.train_ids, self.n_skipped = load_records(d.train, self.scheme, d.max_train, d.seed, keep_train)
        self.val_records, self.val_ids = ([], [])
        val_path = d.val or (d.train if d.split else None)
        if val_path:
            self.val_records, self.val_ids, _ = load_records(val_path, self.scheme, d.max_val, d.seed, keep_val)
        self._bpp: Dict[Tuple[str, int], np.ndarray] = {}
        self.threshold: Optional[float] = None
        self.final_metrics: Dict[str, float] = {}

    # -------------------------------------------------------------- helpers
    def bpp_of(self, it: Item) -> np.ndarray:
        """RNAfold pair probabilities of the item's window (whole record folded once, cached)."""
        full = self._bpp.get(it.key)
        if full is None:
            from ..structure.priors import head_pair_prior

            split, k = it.key
            rec = (self.train_records if split == "train" else self.val_records)[k]
            cache = self.data_cfg.bpp_cache
            if cache:
                from ..structure.priors import cached_dense_prior

                full = cached_dense_prior(cache, rec.seq, self.head_cfg)
            else:
                full = head_pair_prior(rec.seq, self.head_cfg).astype(np.float16)
            self._bpp[it.key] = full
        n = len(it.seq)
        return full[it.start : it.start + n, it.start : it.start + n]

    def _forward(self, model, batch: Dict[str, torch.Tensor], device) -> torch.Tensor:
        bpp = batch.get("bpp")
        return model(batch["tokens"].to(device), batch["nuc"].to(device), None if bpp is None else bpp.to(device))

    def _val_items(self, rank: int = 0, world: int = 1) -> List[List[Item]]:
        items = []
        for k in range(rank, len(self.val_records), world):
            r = self.val_records[k]
            items.append(Item(("val", k), r.name, r.seq, r.pairs, 0, self.val_ids[k], rna_codes(r.seq, r.name)))
        groups = token_batches([len(it.seq) for it in items], self.data_cfg.tokens_per_batch, extra=_EXTRA)
        return [[items[i] for i in g] for g in groups]

    def predict_val(self, model, device, rank: int = 0, world: int = 1):
        """Validation probability maps (one (L, L) float32 array per record), the items and
        the pooled validation loss."""
        maps, items, total, n = [], [], 0.0, 0
        bpp_of = self.bpp_of if self.head_cfg.use_bpp else None
        with torch.no_grad():
            for batch_items in self._val_items(rank, world):
                batch = collate(batch_items, bpp_of)
                logits = self._forward(model, batch, device).float()
                mask, target = batch["mask"].to(device), batch["target"].to(device)
                k = int(torch.triu(mask[:, :, None] & mask[:, None, :], self.head_cfg.min_loop + 1).sum())
                total += float(pair_loss(logits, target, mask, self.loss_cfg.pos_weight, self.head_cfg.min_loop)) * k
                n += k
                probs = torch.sigmoid(logits).cpu().numpy()
                for b, it in enumerate(batch_items):
                    L = len(it.seq)
                    maps.append(probs[b, :L, :L])
                    items.append(it)
        return maps, items, total / max(n, 1)

    # -------------------------------------------------------------- Task protocol
    def train_stream(self, rank: int, world_size: int) -> StructureStream:
        return StructureStream(self.train_records, self.train_ids, self.data_cfg, rank, world_size)

    def loss(self, model, batch: List[Item], generator, device):
        b = collate(batch, self.bpp_of if self.head_cfg.use_bpp else None)
        logits = self._forward(model, b, device)
        loss = pair_loss(logits, b["target"].to(device), b["mask"].to(device), self.loss_cfg.pos_weight, self.head_cfg.min_loop)
        return loss, {"tokens": int(b["mask"].sum())}

    def validate(self, model, device) -> Dict[str, float]:
        if not self.val_records:
            return {}
        import torch.distributed as dist

        rank = dist.get_rank() if dist.is_initialized() else 0
        world = dist.get_world_size() if dist.is_initialized() else 1
        from ..structure.decode import decode
        from ..structure.metrics import evaluate

        maps, items, val_loss = self.predict_val(model, device, rank, world)
        preds = [decode(P, it.seq, 0.5, "greedy") for P, it in zip(maps, items)]
        r = evaluate(preds, [it.pairs for it in items])
        return {"val_loss": val_loss, "val_f1": r.get("f1_mean", float("nan")),
                "val_f1_shift": r.get("f1_shift_mean", float("nan")), "n_val": len(items)}

    def fingerprint(self) -> Dict[str, Any]:
        return {
            "task": "structure",
            "model": self.model_cfg.settings("structure"),
            "head": self.head_cfg.to_dict(),
            "data": asdict(self.data_cfg),
            "loss": asdict(self.loss_cfg),
            "scheme_hash": self.scheme.table_hash,
            "architecture": self.model.backbone.cfg.to_dict(),
        }

    def save_final(self, module, out_dir: Path, state: Dict[str, torch.Tensor]) -> None:
        """Write ``out_dir/structure_model.pt`` with the threshold chosen on validation."""
        m = self.model_cfg
        payload = structure_payload(self.model, state, self.head_cfg, self.scheme, self.arch,
                                    m.init or f"random:{m.arch}", m.mode)
        if self.val_records:
            from ..structure.decode import choose_threshold, decode
            from ..structure.metrics import evaluate

            model, _ = model_from_payload(payload)  # exactly the model that the file holds
            device = next(iter(state.values())).device
            maps, items, val_loss = self.predict_val(model.to(device), device)
            seqs, trues = [it.seq for it in items], [it.pairs for it in items]
            t = float(choose_threshold(maps, seqs, trues))
            r = evaluate([decode(P, s, t, "greedy") for P, s in zip(maps, seqs)], trues)
            payload["threshold"] = t
            payload["val_metrics"] = {"f1_mean": r["f1_mean"], "f1_shift_mean": r["f1_shift_mean"],
                                      "val_loss": val_loss, "n": len(items)}
        self.threshold, self.final_metrics = payload["threshold"], payload["val_metrics"]
        save_structure_model(payload, Path(out_dir) / MODEL_FILE)

    def summary(self) -> Dict[str, Any]:
        return {"threshold": self.threshold, "final": self.final_metrics}
