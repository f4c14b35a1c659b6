"""The secondary-structure task (``structure``): an ESM-2 backbone and a structure head trained
on labelled structures (e.g. bpRNA TR0, validated on VL0). Two heads (``head.kind``):

* ``pairs``: the sparse pair head (:mod:`resm.heads.pairs`) over the candidate pairs of one or
  more pair priors (``data.priors``, :mod:`resm.structure.priors`), binary cross-entropy over
  the candidates, decoded by maximum expected accuracy; the decoding (MEA gamma, the prior's
  weight, whether to add pseudoknots) is chosen on validation structures at the end, on VL0
  and/or on whole families held out of training (``data.families``); the default, as the
  shipped model's;
* ``conv`` (older models and configs): the dense 2-D
  :class:`resm.heads.pair_map.StructureHead` with an optional ViennaRNA channel
  (``data.use_bpp``), :func:`resm.heads.pair_map.pair_loss`, greedy decoding at a threshold
  chosen on validation.

Each head is built through :data:`resm.heads.HEADS` (:data:`resm.structure.model.HEAD_KINDS`
names it), and validation decodes through the model's predictor
(:mod:`resm.structure.predictor`), as ``resm fold`` does.

The config has these sections (every option is documented on its dataclass):

* ``task``: ``structure``;
* ``model`` (:class:`resm.tasks.base.ModelConfig`): backbone weights, training mode, mapping
  scheme;
* ``head``: ``kind`` and the fields of :class:`resm.heads.pairs.PairHeadConfig` or
  :class:`resm.heads.pair_map.StructureHeadConfig` (the backbone's sizes and the prior count
  are filled in);
* ``data`` (:class:`resm.data.labelled_structures.StructureDataConfig`): structure files, crops,
  batching, priors, family hold-out;
* ``loss`` (:class:`StructureLossConfig`): positive-pair weight;
* ``start`` (:class:`StructureStartConfig`, optional): a trained structure model to start from
  (fine-tuning it, e.g. the shipped model on PDB-derived TR1);
* ``optim`` / ``train``: :class:`resm.train.OptimConfig` / :class:`resm.train.TrainConfig`.

The loop is :class:`resm.train.Trainer` (checkpoints, exact resume, DDP / DeepSpeed); this
module supplies the task. The finished model is one file, ``out_dir/structure_model.pt``
(:mod:`resm.structure.model`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..backbone.esm2 import ESM2
from ..config import ConfigError, from_dict
from ..data.labelled_structures import (
    Item,
    StructureDataConfig,
    StructureStream,
    collate,
    load_records,
    load_training_records,
    split_training_records,
)
from ..fasta import token_batches
from ..heads.pair_map import StructureHeadConfig, pair_loss
from ..heads.pairs import PairHeadConfig, candidates, collate_candidates, prior_probability
from ..mapping import get_scheme
from ..nucleotides import rna_codes
from ..structure.model import (
    DEFAULT_KIND,
    HEAD_KINDS,
    MODEL_FILE,
    StructureModel,
    model_from_payload,
    save_structure_model,
    structure_payload,
)
from .base import ModelConfig, TaskSpec, adapter_config, load_model_backbone

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
    """

    pos_weight: float = 10.0

    def __post_init__(self):
        if not self.pos_weight > 0:
            raise ConfigError(f"loss.pos_weight must be > 0, got {self.pos_weight}")


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


def _start_weights(path: str, backbone, head, kind: str, head_cfg, scheme, prior_cfgs) -> None:
    """Load the backbone and head weights of the structure model at ``path`` into ``backbone``
    and ``head``, after checking that it was built as this config builds them."""
    from ..backbone.load import safe_load

    where = f"start.model {path}"
    try:
        payload = safe_load(path)
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    if not isinstance(payload, dict) or payload.get("format") != "resm-structure":
        raise ConfigError(f"{where}: not a resm structure model (written by resm finetune)")
    if payload.get("head_kind", "conv") != kind:
        raise ConfigError(
            f"{where}: its head is {payload.get('head_kind', 'conv')!r}, this config's head.kind {kind!r}"
        )
    if payload.get("scheme") != scheme.name:
        raise ConfigError(
            f"{where}: trained with scheme {payload.get('scheme')!r}, this config's model.scheme {scheme.name!r}"
        )
    if kind == "pairs" and payload.get("priors") != [asdict(c) for c in prior_cfgs]:
        raise ConfigError(f"{where}: its priors {payload.get('priors')} differ from data.priors")
    mine, theirs = head_cfg.to_dict(), payload.get("head_config") or {}
    diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    if diff:
        raise ConfigError(f"{where}: head.{diff[0]} is {theirs.get(diff[0])!r} there, {mine.get(diff[0])!r} here")
    from ..structure.model import model_from_payload

    trained, _ = model_from_payload(payload)
    try:
        backbone.load_state_dict(trained.backbone.state_dict())
        head.load_state_dict(trained.head.state_dict())
    except RuntimeError as e:
        raise ConfigError(f"{where}: weights do not fit this config's model ({str(e).splitlines()[0]})") from None


# ----------------------------------------------------------------------------- task
def _pair_head_config(section: dict[str, Any], backbone: ESM2, n_priors: int) -> PairHeadConfig:
    extra = {"embed_dim": backbone.embed_dim, "priors": n_priors}
    if section.get("use_attention") is True:
        extra["attn_channels"] = backbone.num_layers * backbone.attention_heads
    fixed = {
        "embed_dim": "taken from the backbone",
        "attn_channels": "layers x heads of the backbone",
        "priors": "the number of data.priors",
    }
    return from_dict(PairHeadConfig, section, "head", fixed=fixed, extra=extra)


def _head_config(section: dict[str, Any] | None, backbone: ESM2, use_bpp: bool) -> StructureHeadConfig:
    extra = {"embed_dim": backbone.embed_dim, "use_bpp": use_bpp}
    if isinstance(section, dict) and section.get("use_attention") is True:
        extra["attn_channels"] = backbone.num_layers * backbone.attention_heads
    fixed = {
        "embed_dim": "taken from the backbone",
        "attn_channels": "layers x heads of the backbone",
        "use_bpp": "set data.use_bpp instead",
    }
    return from_dict(StructureHeadConfig, section, "head", fixed=fixed, extra=extra)


class StructureTask:
    """Secondary structure: backbone + a structure head (``head.kind``: ``pairs`` or ``conv``)."""

    name = "structure"
    sections = ("model", "head", "data", "loss", "start")
    output = MODEL_FILE

    def __init__(self, cfg: dict[str, Any], *, train_priors: bool = True):
        """Pair priors are computed lazily, for the records a batch or a validation uses, so
        ``train_priors`` (False: a task built only to validate or choose the decoding of a
        trained model) changes nothing now; it is kept for callers."""
        self.model_cfg = ModelConfig.for_task(cfg.get("model"), "structure")
        self.data_cfg = from_dict(StructureDataConfig, cfg.get("data"), "data")
        self.loss_cfg = from_dict(StructureLossConfig, cfg.get("loss"), "loss")
        self.start_cfg = from_dict(StructureStartConfig, cfg.get("start"), "start")
        self.scheme = get_scheme(self.model_cfg.scheme)
        m, d = self.model_cfg, self.data_cfg
        section = dict(cfg.get("head") or {}) if isinstance(cfg.get("head"), dict) else cfg.get("head")
        self.kind = section.pop("kind", DEFAULT_KIND) if isinstance(section, dict) else DEFAULT_KIND
        if self.kind not in HEAD_KINDS:
            raise ConfigError(f"head.kind must be one of {sorted(HEAD_KINDS)}, not {self.kind!r}")
        backbone, self.arch, _ = load_model_backbone(m, self.scheme)
        self.prior_cfgs: list = []
        if self.kind == "pairs":
            from ..structure.priors import PriorConfig

            if d.use_bpp:
                raise ConfigError("data.use_bpp is the 2-D head's channel; the pair head reads data.priors")
            self.prior_cfgs = [from_dict(PriorConfig, p, f"data.priors[{k}]") for k, p in enumerate(d.priors or [{}])]
            self.head_cfg = _pair_head_config(section or {}, backbone, len(self.prior_cfgs))
        else:
            if d.priors is not None or d.family_holdout or d.val_sets:
                raise ConfigError("data.priors, data.family_holdout and data.val_sets are for head.kind pairs")
            self.head_cfg = _head_config(section, backbone, d.use_bpp)
        from ..heads import HEADS

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(d.seed)  # head initialisation, reproducible
            head, _ = HEADS[HEAD_KINDS[self.kind]](self.head_cfg.to_dict(), backbone.embed_dim)
        if self.start_cfg.model:
            _start_weights(self.start_cfg.model, backbone, head, self.kind, self.head_cfg, self.scheme, self.prior_cfgs)
        self.model = StructureModel(backbone, head, m.mode, adapter_config(m))
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
            self.train_records, self.train_ids, held, held_ids, self.family_counts, self.n_skipped = split
            self.family_records, self.family_ids = held[: d.max_val or None], held_ids[: d.max_val or None]
        else:
            self.train_records, self.train_ids, self.n_skipped = load_training_records(d, self.scheme, keep_train)
        self.val_records, self.val_ids = ([], [])
        val_path = d.val or (d.train if d.split else None)
        if val_path:
            self.val_records, self.val_ids, _ = load_records(
                val_path, self.scheme, d.max_val, d.seed, keep_val, d.pdb_pairs
            )
        self.extra_sets: dict[str, tuple[list, list]] = {  # data.val_sets: name -> (records, token ids)
            name: load_records(path, self.scheme, d.max_val, d.seed, None, d.pdb_pairs)[:2]
            for name, path in (d.val_sets or {}).items()
        }
        self._bpp: dict[tuple[str, int], np.ndarray] = {}
        self._priors: dict[tuple[str, int], list] = {}  # filled as records are first used
        self._prior_of_seq: dict[str, list] = {}  # the same priors, by sequence
        self.threshold: float | None = None
        self.decoding: dict[str, Any] | None = None
        self.final_metrics: dict[str, float] = {}

    # -------------------------------------------------------------- records and priors
    def _records(self, split: str):
        if split in self.extra_sets:
            return self.extra_sets[split][0]
        return {"train": self.train_records, "val": self.val_records, "family": self.family_records}[split]

    def _ids(self, split: str):
        if split in self.extra_sets:
            return self.extra_sets[split][1]
        return {"val": self.val_ids, "family": self.family_ids, "train": self.train_ids}[split]

    def validation_splits(self) -> list[str]:
        """The validation sets that hold records: ``val``, ``family``, then ``data.val_sets``."""
        return [s for s in ("val", "family", *self.extra_sets) if self._records(s)]

    def _ensure_priors(self, keys, progress: bool = False) -> None:
        """The pair priors of the records ``keys`` that have none yet, computed when a run first
        uses them (parallel over the records; cached on disk if asked): a short run computes
        the priors of the records it trains on, not of the whole training set."""
        import os

        from ..structure.priors import compute_priors

        missing = [k for k in dict.fromkeys(keys) if k not in self._priors]
        if not missing:
            return
        seqs = [self._records(s)[k].seq for s, k in missing]
        # a sequence met again (data.train's repeat, or the same RNA in another split) is folded once
        unique = [q for q in dict.fromkeys(seqs) if q not in self._prior_of_seq]
        if unique:
            workers = min(self.data_cfg.workers or (os.cpu_count() or 1), len(unique))
            computed = compute_priors(
                unique, self.prior_cfgs, self.data_cfg.bpp_cache, workers, progress=progress, desc="pair priors"
            )
            self._prior_of_seq.update(zip(unique, computed))
        self._priors.update({key: self._prior_of_seq[q] for key, q in zip(missing, seqs)})

    def bpp_of(self, it: Item) -> np.ndarray:
        """2-D head: RNAfold pair probabilities of the item's window (whole record folded once, cached)."""
        full = self._bpp.get(it.key)
        if full is None:
            from ..structure.priors import head_pair_prior

            split, k = it.key
            rec = self._records(split)[k]
            cache = self.data_cfg.bpp_cache
            if cache:
                from ..structure.priors import cached_dense_prior

                full = cached_dense_prior(cache, rec.seq, self.head_cfg)
            else:
                full = head_pair_prior(rec.seq, self.head_cfg).astype(np.float16)
            self._bpp[it.key] = full
        n = len(it.seq)
        return full[it.start : it.start + n, it.start : it.start + n]

    def _pair_batch(self, items: list[Item]):
        """Pair head: token ids and the candidate batch of ``items``."""
        from ..alphabet import pad_batch

        self._ensure_priors([it.key for it in items])
        cands = []
        for it in items:
            pri = [
                p.window(it.start, it.start + len(it.seq)) if (it.start or p.length != len(it.seq)) else p
                for p in self._priors[it.key]
            ]
            cands.append(candidates(it.seq, pri, self.head_cfg, it.pairs))
        return pad_batch([it.tokens for it in items]), collate_candidates(cands), cands

    def _forward(self, model, batch: dict[str, torch.Tensor], device) -> torch.Tensor:
        bpp = batch.get("bpp")
        return model(batch["tokens"].to(device), batch["nuc"].to(device), None if bpp is None else bpp.to(device))

    def _eval_items(self, split: str, rank: int = 0, world: int = 1) -> list[list[Item]]:
        recs, ids = self._records(split), self._ids(split)
        items = []
        for k in range(rank, len(recs), world):
            r = recs[k]
            items.append(Item((split, k), r.name, r.seq, r.pairs, 0, ids[k], rna_codes(r.seq, r.name)))
        groups = token_batches([len(it.seq) for it in items], self.data_cfg.tokens_per_batch, extra=_EXTRA)
        return [[items[i] for i in g] for g in groups]

    def predict_val(self, model, device, rank: int = 0, world: int = 1, split: str = "val"):
        """2-D head: validation probability maps (one (L, L) float32 array per record), the
        items and the pooled validation loss."""
        maps, items, total, n = [], [], 0.0, 0
        bpp_of = self.bpp_of if self.head_cfg.use_bpp else None
        with torch.no_grad():
            for batch_items in self._eval_items(split, rank, world):
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

    def predict_pairs_val(self, model, device, split: str = "val", rank: int = 0, world: int = 1):
        """Pair head: ``[(seq, i, j, model_p, prior_p, true_pairs)]`` of a validation split and
        the pooled candidate loss."""
        out, total, n = [], 0.0, 0
        groups = self._eval_items(split, rank, world)
        self._ensure_priors([it.key for g in groups for it in g], progress=True)  # the whole split, in parallel
        with torch.no_grad():
            for batch_items in groups:
                tokens, batch, cands = self._pair_batch(batch_items)
                if not len(batch["i"]):
                    out += [
                        (it.seq, c.i, c.j, np.zeros(0, np.float32), np.zeros(0, np.float32), it.pairs)
                        for it, c in zip(batch_items, cands)
                    ]
                    continue
                logits = model.pair_logits(tokens.to(device), {k: v.to(device) for k, v in batch.items()})
                target = batch["target"].to(device)
                total += float(
                    F.binary_cross_entropy_with_logits(
                        logits,
                        target,
                        reduction="sum",
                        pos_weight=torch.tensor(self.loss_cfg.pos_weight, device=device),
                    )
                )
                n += len(target)
                probs = torch.sigmoid(logits).cpu().numpy()
                o = 0
                for it, c in zip(batch_items, cands):
                    out.append((it.seq, c.i, c.j, probs[o : o + len(c)], prior_probability(c, self.head_cfg), it.pairs))
                    o += len(c)
        return out, total / max(n, 1)

    def predictor(self, model, threshold: float = 0.5, decoding=None):
        """The predictor of ``model`` (:mod:`resm.structure.predictor`), through which
        validation decodes: the pair head's with ``decoding`` (default: the untuned
        :class:`resm.structure.decode.Decoding`), the 2-D head's at ``threshold``."""
        from ..structure.decode import Decoding
        from ..structure.predictor import MapPredictor, PairPredictor

        if self.kind == "pairs":
            return PairPredictor(model, self.scheme, self.prior_cfgs, decoding or Decoding())
        return MapPredictor(model, self.scheme, threshold, "greedy")

    # -------------------------------------------------------------- Task protocol
    def train_stream(self, rank: int, world_size: int) -> StructureStream:
        return StructureStream(self.train_records, self.train_ids, self.data_cfg, rank, world_size)

    def loss(self, model, batch: list[Item], generator, device):
        if self.kind == "pairs":
            tokens, b, _ = self._pair_batch(batch)
            logits = model.pair_logits(tokens.to(device), {k: v.to(device) for k, v in b.items()})
            if not len(logits):
                return logits.sum() * 0.0, {"tokens": sum(len(it.seq) for it in batch)}
            pw = torch.tensor(self.loss_cfg.pos_weight, device=device)
            loss = F.binary_cross_entropy_with_logits(logits, b["target"].to(device), pos_weight=pw)
            return loss, {"tokens": sum(len(it.seq) for it in batch)}
        b = collate(batch, self.bpp_of if self.head_cfg.use_bpp else None)
        logits = self._forward(model, b, device)
        loss = pair_loss(
            logits, b["target"].to(device), b["mask"].to(device), self.loss_cfg.pos_weight, self.head_cfg.min_loop
        )
        return loss, {"tokens": int(b["mask"].sum())}

    def validate(self, model, device) -> dict[str, float]:
        if not self.validation_splits():
            return {}
        import torch.distributed as dist

        from ..structure.metrics import evaluate

        rank = dist.get_rank() if dist.is_initialized() else 0
        world = dist.get_world_size() if dist.is_initialized() else 1
        pred = self.predictor(model)
        if self.kind == "pairs":
            out: dict[str, float] = {}
            for split in self.validation_splits():
                tag = split
                items, loss = self.predict_pairs_val(model, device, split, rank, world)
                r = evaluate([pred.decode(s, i, j, q, None) for s, i, j, q, _, _ in items], [t for *_, t in items])
                out.update(
                    {
                        f"{tag}_loss": loss,
                        f"{tag}_f1": r.get("f1_mean", float("nan")),
                        f"{tag}_f1_shift": r.get("f1_shift_mean", float("nan")),
                        f"n_{tag}": len(items),
                    }
                )
            return out
        maps, items, val_loss = self.predict_val(model, device, rank, world)
        preds = [pred.decode(P, it.seq) for P, it in zip(maps, items)]
        r = evaluate(preds, [it.pairs for it in items])
        return {
            "val_loss": val_loss,
            "val_f1": r.get("f1_mean", float("nan")),
            "val_f1_shift": r.get("f1_shift_mean", float("nan")),
            "n_val": len(items),
        }

    def fingerprint(self) -> dict[str, Any]:
        out = {
            "task": "structure",
            "model": self.model_cfg.settings("structure"),
            "head": self.head_cfg.to_dict(),
            "data": asdict(self.data_cfg),
            "loss": asdict(self.loss_cfg),
            "scheme_hash": self.scheme.table_hash,
            "architecture": self.model.backbone.cfg.to_dict(),
        }
        if self.kind == "pairs":
            out["head_kind"] = "pairs"
        if self.start_cfg.model:
            out["start"] = asdict(self.start_cfg)
        return out

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
            self.prior_cfgs,
        )
        model, _ = model_from_payload(payload)  # exactly the model that the file holds
        device = next(iter(state.values())).device
        model = model.to(device)
        if self.kind == "pairs":
            self.choose_decoding(model, device, payload)
        elif self.val_records:
            from ..structure.decode import choose_threshold
            from ..structure.metrics import evaluate

            maps, items, val_loss = self.predict_val(model, device)
            seqs, trues = [it.seq for it in items], [it.pairs for it in items]
            t = float(choose_threshold(maps, seqs, trues))
            pred = self.predictor(model, threshold=t)
            r = evaluate([pred.decode(P, s) for P, s in zip(maps, seqs)], trues)
            payload["threshold"] = t
            payload["val_metrics"] = {
                "f1_mean": r["f1_mean"],
                "f1_shift_mean": r["f1_shift_mean"],
                "val_loss": val_loss,
                "n": len(items),
            }
        self.threshold = payload["threshold"] if self.kind == "conv" else None
        self.final_metrics, self.decoding = payload["val_metrics"], payload.get("decoding")
        save_structure_model(payload, Path(out_dir) / MODEL_FILE)

    def validation_predictions(self, model, device) -> dict[str, list]:
        """Pair head: ``{split: [(seq, i, j, model_p, prior_p, true_pairs)]}`` of every validation
        set (:meth:`validation_splits`)."""
        return {s: self.predict_pairs_val(model, device, s)[0] for s in self.validation_splits()}

    def decoding_metrics(self, model, items: list, decoding) -> dict[str, Any]:
        """F1 (strict, ±1), precision, recall and predicted/reference pair ratio of one
        validation set's predictions decoded with ``decoding`` (through the model's predictor)."""
        from ..structure.metrics import evaluate

        pred = self.predictor(model, decoding=decoding)
        r = evaluate([pred.decode(q[0], q[1], q[2], q[3], q[4]) for q in items], [q[5] for q in items])
        return {
            "f1_mean": r["f1_mean"],
            "f1_shift_mean": r["f1_shift_mean"],
            "precision_mean": r["precision_mean"],
            "recall_mean": r["recall_mean"],
            "pair_ratio": r["pair_ratio"],
            "n": len(items),
        }

    def choose_decoding(self, model, device, payload: dict[str, Any], sets: dict[str, list] | None = None) -> None:
        """Pair head: MEA gamma, prior weight and pseudoknot threshold chosen on the validation
        set(s) named by ``data.select_on`` (the mean of their F1, so that no single annotation
        source decides); every set's scores, pair density included, go into the file.
        ``sets``: :meth:`validation_predictions`, when already computed."""
        from ..structure.decode import choose_decoding

        sets = self.validation_predictions(model, device) if sets is None else sets
        if not sets:
            return
        want = [s for s in self.data_cfg.selection() if s in sets] or list(sets)
        weights = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
        tol = self.data_cfg.density_tolerance
        best = choose_decoding([sets[s] for s in want], prior_weights=weights, density_tolerance=tol)
        payload["decoding"] = best.to_dict()
        metrics: dict[str, Any] = {"selected_on": want}
        for s, items in sets.items():
            metrics[s] = self.decoding_metrics(model, items, best)
        if self.family_counts:
            metrics["family_split"] = dict(self.family_counts)
        payload["val_metrics"] = metrics

    def summary(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "decoding": self.decoding, "final": self.final_metrics}


TASK = TaskSpec(
    "structure",
    StructureTask,
    ("init", "arch", "init_seed", "mode", "adapter", "scheme", "trust_checkpoint"),
    head=HEAD_KINDS[DEFAULT_KIND],
    config="structure",
    compare="resm.compare.harness:run_backend",
    order=10,
)
