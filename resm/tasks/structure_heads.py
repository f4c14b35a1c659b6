"""The head kinds of the ``structure`` task: what the task asks of its head, one class per kind.

:class:`HeadKind` is the interface; :data:`KINDS` maps ``head.kind`` (a config's, and a model
file's ``head_kind``) to its class. A kind, bound to its task (the records, the pair priors
computed so far), gives:

* the head's config from the ``head`` section and the pair priors it reads
  (:meth:`HeadKind.configure`), the data options it refuses, and the kind-specific checks of a
  start model (:meth:`HeadKind.check_start`);
* the loss on a batch of items (:meth:`HeadKind.loss`);
* validation metrics, decoded through the kind's predictor
  (:data:`resm.structure.predictor.PREDICTORS`), and the decoding chosen on validation at the
  end (:meth:`HeadKind.choose`);
* what it stores: the model file's entries (version, priors, decoding, method) or a bundle
  head's settings (:meth:`HeadKind.settings`), read back by its predictor's ``for_model``.

The model side, how a head reads the backbone, is the head class's ``run``
(:meth:`resm.heads.pairs.PairHead.run`, :meth:`resm.heads.pair_map.StructureHead.run`). Every
method receives ``net``: a :class:`resm.structure.model.StructureModel`, or a head of a model
with one shared encoder (:class:`resm.structure.model.HeadOfBundle`, ``task: joint``), called
the same way: ``net(tokens, inputs) -> logits``.

The kinds:

* ``pairs`` (:class:`PairKind`): the sparse pair head over the candidates of one or more pair
  priors (``data.priors``), binary cross-entropy over the candidates (plus
  ``loss.f1_weight`` times the expected-F1 term :func:`soft_f1_loss`, when above 0), decoded by
  maximum expected accuracy (a ``data.train`` file's ``pos_weight`` weighs the paired term on its
  records); MEA gamma, prior weight and pseudoknots chosen on the validation sets
  (VL0, held-out families, ``data.val_sets``);
* ``conv`` (:class:`MapKind`): the dense 2-D head with an optional ViennaRNA channel
  (``data.use_bpp``), :func:`resm.heads.pair_map.pair_loss` (``loss.f1_weight`` above 0 is
  refused), greedy decoding at a threshold chosen on validation.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ConfigError, from_dict
from ..heads.pair_map import StructureHeadConfig, pair_loss
from ..heads.pairs import PairHeadConfig, candidates, collate_candidates, prior_probability
from ..structure.model import HEAD_KINDS
from .base import on_device

__all__ = ["HeadKind", "PairKind", "MapKind", "KINDS", "soft_f1_loss"]

FIXED = {
    "embed_dim": "taken from the backbone",
    "attn_channels": "layers x heads of the backbone",
}


def soft_f1_loss(logits: torch.Tensor, target: torch.Tensor, seq: torch.Tensor, n_true: torch.Tensor) -> torch.Tensor:
    """``mean_s (1 - softF1_s)`` of ``loss.f1_weight``: ``softF1_s = 2 sum(p y) / (sum(p) + n_s)``
    over the candidates of sequence s (``seq``: each candidate's batch index, as
    :func:`resm.heads.pairs.collate_candidates` gives it; ``p = sigmoid(logits)``, ``y`` the
    ``target``), with ``n_true[s]`` the sequence's reference pairs, those that are no candidate
    included: the per-sequence F1 of the metrics (a reference pair outside the candidates is
    one no decoding can recover). Sequences without a reference pair are left out (their F1
    does not depend on p: 0 whatever it is, or 1 with no pair predicted, the metrics' rule),
    and a batch of such sequences gives 0 (still on the graph)."""
    p = torch.sigmoid(logits)
    B = len(n_true)
    tp = torch.zeros(B, dtype=p.dtype, device=p.device).index_add(0, seq, p * target)
    mass = torch.zeros(B, dtype=p.dtype, device=p.device).index_add(0, seq, p)
    n = n_true.to(p.dtype)
    keep = n_true > 0
    if not bool(keep.any()):
        return logits.sum() * 0.0
    f1 = 2 * tp[keep] / (mass[keep] + n[keep])
    return (1 - f1).mean()


def split_figures(split: str, decoded: list, trues: list, loss_total: float, loss_n: int) -> dict[str, float]:
    """The validation figures of ``split`` over every process, from this process's share
    (``decoded`` structures, their ``trues``, the loss summed over ``loss_n`` candidates or
    cells): ``<split>_f1`` and ``<split>_f1_shift``, the mean over the split's sequences of
    their F1, and ``<split>_loss``, the mean over its candidates, each summed over the processes
    (:func:`resm.train.all_sum`) before it is divided, so that every process returns what one
    process scoring the whole split does (up to the order of the sums), however unequal the
    shares; the mean of each share's mean was not that. ``n_<split>`` is this process's count
    (the loop sums counts)."""
    from ..structure.metrics import f1_score
    from ..train import all_sum

    f1 = sum(f1_score(p, t) for p, t in zip(decoded, trues))
    shift = sum(f1_score(p, t, shift=True) for p, t in zip(decoded, trues))
    f1, shift, n, total, k = all_sum([f1, shift, len(trues), loss_total, loss_n])
    nan = float("nan")
    return {
        f"{split}_loss": total / max(k, 1),
        f"{split}_f1": f1 / n if n else nan,
        f"{split}_f1_shift": shift / n if n else nan,
        f"n_{split}": len(trues),
    }


class HeadKind:
    """What the structure task asks of its head (see the module notes). ``task``: the
    :class:`resm.tasks.structure_task.StructureTask` whose records and priors it reads."""

    name: ClassVar[str] = ""

    def __init__(self, task):
        self.task = task

    @property
    def head(self) -> str:
        """The head's name in :data:`resm.heads.HEADS`."""
        return HEAD_KINDS[self.name]

    def configure(self, section: dict[str, Any], backbone, data_cfg) -> tuple[Any, list]:
        """``(head config, pair prior configs)`` from the ``head`` section (without ``kind``),
        the backbone's sizes filled in; a ConfigError for data options this head does not read."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """What a new model file holds for this kind (beside the common entries), and what a
        bundle stores with the head, before the decoding is chosen on validation."""
        raise NotImplementedError

    def check_start(self, payload: dict[str, Any], where: str) -> None:
        """Kind-specific checks that the start model ``payload`` was built as this config builds."""

    def fingerprint(self) -> dict[str, Any]:
        """Entries of the run's fingerprint (what a resumed run must not change)."""
        return {}

    def loss(self, net, items: list, device) -> tuple[torch.Tensor, dict[str, Any]]:
        raise NotImplementedError

    def validate(self, net, device, rank: int = 0, world: int = 1) -> dict[str, float]:
        raise NotImplementedError

    def choose(self, net, device, settings: dict[str, Any]) -> None:
        """Choose the decoding on validation and put it, with the validation metrics
        (``val_metrics``), into ``settings`` (:meth:`settings`' dict, or a model file's payload)."""
        raise NotImplementedError

    def summary(self, settings: dict[str, Any]) -> dict[str, Any]:
        """``threshold`` and ``decoding`` of chosen ``settings``, for the run's summary."""
        return {"threshold": None, "decoding": settings.get("decoding")}


def _attention_extra(section: dict[str, Any], backbone) -> dict[str, Any]:
    if section.get("use_attention") is True:
        return {"attn_channels": backbone.num_layers * backbone.attention_heads}
    return {}


def _trainable(cfg):
    """``cfg``, a head config about to be built for training, when its training fits the
    machine (its ``require_trainable``); else the one-line ConfigError naming the head's key.
    A trained head read to predict is not held to it: it needs a quarter of that."""
    try:
        cfg.require_trainable()
    except ValueError as e:
        raise ConfigError(f"head: {e}") from None
    return cfg


class PairKind(HeadKind):
    """The sparse pair head (:class:`resm.heads.pairs.PairHead`; see the module notes)."""

    name = "pairs"

    def configure(self, section, backbone, data_cfg):
        from ..structure.priors import PriorConfig

        d = data_cfg
        if d.use_bpp:
            raise ConfigError("data.use_bpp is the 2-D head's channel; the pair head reads data.priors")
        priors = [from_dict(PriorConfig, p, f"data.priors[{k}]") for k, p in enumerate(d.priors or [{}])]
        extra = {"embed_dim": backbone.embed_dim, "priors": len(priors), **_attention_extra(section, backbone)}
        fixed = dict(FIXED, priors="the number of data.priors")
        cfg = _trainable(from_dict(PairHeadConfig, section, "head", fixed=fixed, extra=extra))
        return cfg, priors

    def settings(self):
        from ..structure.decode import Decoding

        priors = [p.to_dict() for p in self.task.prior_cfgs]
        return {"version": 2, "priors": priors, "decoding": Decoding().to_dict(), "method": "mea"}

    def check_start(self, payload, where):
        if payload.get("priors") != [asdict(c) for c in self.task.prior_cfgs]:
            raise ConfigError(f"{where}: its priors {payload.get('priors')} differ from data.priors")

    def fingerprint(self):
        return {"head_kind": "pairs"}

    def batch(self, items: list):
        """Token ids, the candidate batch and the candidates of ``items``."""
        from ..alphabet import pad_batch

        t = self.task
        t.ensure_priors([it.key for it in items])
        cands = []
        for it in items:
            pri = [
                p.window(it.start, it.start + len(it.seq)) if (it.start or p.length != len(it.seq)) else p
                for p in t.priors[it.key]
            ]
            cands.append(candidates(it.seq, pri, t.head_cfg, it.pairs))
        return pad_batch([it.tokens for it in items]), collate_candidates(cands), cands

    def loss(self, net, items, device):
        tokens, b, _ = self.batch(items)
        logits = net(tokens.to(device), on_device(b, device))
        info = {"tokens": sum(len(it.seq) for it in items)}
        if not len(logits):
            return logits.sum() * 0.0, info
        weights = self.task.pos_weights(items)  # data.train's per-file pos_weight, if any differs
        if weights is None:
            pw = torch.tensor(self.task.loss_cfg.pos_weight, device=device)
        else:  # each candidate takes its record's weight
            pw = torch.tensor(weights, dtype=logits.dtype, device=device)[b["seq"].to(device)]
        target = b["target"].to(device)
        loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw)
        f1_weight = self.task.loss_cfg.f1_weight
        if f1_weight > 0:  # 0: the binary cross-entropy alone, bit for bit
            from ..structure.metrics import n_pairs

            n_true = torch.tensor([n_pairs(it.pairs) for it in items], device=device)
            soft = soft_f1_loss(logits, target, b["seq"].to(device), n_true)
            info["loss_soft_f1"] = float(soft.detach())  # logged beside the loss (its window mean)
            loss = loss + f1_weight * soft
        return loss, info

    def predictions(self, net, device, split: str = "val", rank: int = 0, world: int = 1):
        """``[(seq, i, j, model_p, prior_p, true_pairs)]`` of a validation split (this process's
        share: every ``world``-th record from ``rank``), the candidate loss summed over them
        and the number of candidates."""
        from ..train import Lockstep

        t = self.task
        out, total, n = [], 0.0, 0
        groups = t.eval_items(split, rank, world)
        t.ensure_priors([it.key for g in groups for it in g], progress=True)  # the whole split, in parallel
        lockstep, last = Lockstep(world), None
        with torch.no_grad():
            for batch_items in groups:
                tokens, batch, cands = self.batch(batch_items)
                if not len(batch["i"]):
                    out += [
                        (it.seq, c.i, c.j, np.zeros(0, np.float32), np.zeros(0, np.float32), it.pairs)
                        for it, c in zip(batch_items, cands)
                    ]
                    continue
                lockstep.step()
                last = (tokens, batch)
                logits = net(tokens.to(device), on_device(batch, device))
                target = batch["target"].to(device)
                pw = torch.tensor(t.loss_cfg.pos_weight, device=device)
                total += float(F.binary_cross_entropy_with_logits(logits, target, reduction="sum", pos_weight=pw))
                n += len(target)
                probs = torch.sigmoid(logits).cpu().numpy()
                o = 0
                for it, c in zip(batch_items, cands):
                    out.append((it.seq, c.i, c.j, probs[o : o + len(c)], prior_probability(c, t.head_cfg), it.pairs))
                    o += len(c)
            if lockstep.multi:

                def spare():  # built only when a round needs one (no process may have any batch)
                    tokens, batch = last or self._spare_batch(split)
                    net(tokens.to(device), on_device(batch, device))

                lockstep.finish(spare)
        return out, total, n

    def _spare_batch(self, split: str):
        """A batch with candidate pairs from the whole of ``split``, for the spare forward passes
        of a process whose share has none (:class:`resm.train.Lockstep`)."""
        for batch_items in self.task.eval_items(split):
            self.task.ensure_priors([it.key for it in batch_items])
            tokens, batch, _ = self.batch(batch_items)
            if len(batch["i"]):
                return tokens, batch
        raise RuntimeError(f"{split}: no validation record has a candidate pair; nothing to run in step")

    def predictor(self, net, decoding=None):
        """The pair predictor of ``net`` (:class:`resm.structure.predictor.PairPredictor`) with
        ``decoding`` (default: the untuned :class:`resm.structure.decode.Decoding`)."""
        from ..structure.decode import Decoding
        from ..structure.predictor import PairPredictor

        return PairPredictor(net, self.task.scheme, self.task.prior_cfgs, decoding or Decoding())

    def validate(self, net, device, rank=0, world=1):
        pred = self.predictor(net)
        out: dict[str, float] = {}
        for split in self.task.validation_splits():
            items, total, n = self.predictions(net, device, split, rank, world)
            decoded = [pred.decode(s, i, j, q, None) for s, i, j, q, _, _ in items]
            out.update(split_figures(split, decoded, [x[5] for x in items], total, n))
        return out

    def validation_predictions(self, net, device) -> dict[str, list]:
        """``{split: [(seq, i, j, model_p, prior_p, true_pairs)]}`` of every validation set
        (:meth:`resm.tasks.structure_task.StructureTask.validation_splits`)."""
        return {s: self.predictions(net, device, s)[0] for s in self.task.validation_splits()}  # every record

    def decoding_metrics(self, net, items: list, decoding) -> dict[str, Any]:
        """F1 (strict, ±1), precision, recall and predicted/reference pair ratio of one
        validation set's predictions decoded with ``decoding`` (through the predictor)."""
        from ..structure.metrics import evaluate

        pred = self.predictor(net, decoding)
        r = evaluate([pred.decode(q[0], q[1], q[2], q[3], q[4]) for q in items], [q[5] for q in items])
        keys = ("f1_mean", "f1_shift_mean", "precision_mean", "recall_mean", "pair_ratio")
        return {**{k: r[k] for k in keys}, "n": len(items)}

    def choose(self, net, device, settings, sets: dict[str, list] | None = None):
        """MEA gamma, prior weight and pseudoknot threshold chosen on the validation set(s)
        named by ``data.select_on`` (the mean of their F1, so that no single annotation source
        decides); every set's scores, pair density included, go into ``settings``.
        ``sets``: :meth:`validation_predictions`, when already computed."""
        from ..structure.decode import choose_decoding

        sets = self.validation_predictions(net, device) if sets is None else sets
        if not sets:
            return
        want = [s for s in self.task.data_cfg.selection() if s in sets] or list(sets)
        weights, tol = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5), self.task.data_cfg.density_tolerance
        best = choose_decoding([sets[s] for s in want], prior_weights=weights, density_tolerance=tol)
        settings["decoding"] = best.to_dict()
        metrics: dict[str, Any] = {"selected_on": want}
        for s, items in sets.items():
            metrics[s] = self.decoding_metrics(net, items, best)
        if self.task.family_counts:
            metrics["family_split"] = dict(self.task.family_counts)
        settings["val_metrics"] = metrics


class MapKind(HeadKind):
    """The dense 2-D head (:class:`resm.heads.pair_map.StructureHead`; see the module notes)."""

    name = "conv"

    def __init__(self, task):
        super().__init__(task)
        self._bpp: dict[tuple[str, int], np.ndarray] = {}

    def configure(self, section, backbone, data_cfg):
        d = data_cfg
        if d.priors is not None or d.family_holdout or d.val_sets:
            raise ConfigError("data.priors, data.family_holdout and data.val_sets are for head.kind pairs")
        for k, (_, _, w) in enumerate(d.train_files()):
            if w is not None:
                raise ConfigError(f"data.train[{k}].pos_weight is for head.kind pairs; conv reads loss.pos_weight")
        if self.task.loss_cfg.f1_weight > 0:
            raise ConfigError("loss.f1_weight is for head.kind pairs; conv's loss is the cross-entropy alone")
        extra = {"embed_dim": backbone.embed_dim, "use_bpp": d.use_bpp, **_attention_extra(section, backbone)}
        fixed = dict(FIXED, use_bpp="set data.use_bpp instead")
        return _trainable(from_dict(StructureHeadConfig, section, "head", fixed=fixed, extra=extra)), []

    def settings(self):
        return {"threshold": 0.5}

    def summary(self, settings):
        return {"threshold": settings.get("threshold"), "decoding": None}

    def bpp_of(self, it) -> np.ndarray:
        """RNAfold pair probabilities of the item's window (whole record folded once, cached)."""
        t = self.task
        full = self._bpp.get(it.key)
        if full is None:
            from ..structure.priors import cached_dense_prior, head_pair_prior

            split, k = it.key
            rec = t.records(split)[k]
            cache = t.data_cfg.bpp_cache
            if cache:
                full = cached_dense_prior(cache, rec.seq, t.head_cfg)
            else:
                full = head_pair_prior(rec.seq, t.head_cfg).astype(np.float16)
            self._bpp[it.key] = full
        n = len(it.seq)
        return full[it.start : it.start + n, it.start : it.start + n]

    def _logits(self, net, items: list, device):
        from ..data.labelled_structures import collate

        b = collate(items, self.bpp_of if self.task.head_cfg.use_bpp else None)
        inputs = {k: b[k].to(device) for k in ("nuc", "bpp") if k in b}
        return net(b["tokens"].to(device), inputs), b

    def loss(self, net, items, device):
        t = self.task
        logits, b = self._logits(net, items, device)
        mask, target = b["mask"].to(device), b["target"].to(device)
        loss = pair_loss(logits, target, mask, t.loss_cfg.pos_weight, t.head_cfg.min_loop)
        return loss, {"tokens": int(b["mask"].sum())}

    def predictions(self, net, device, rank: int = 0, world: int = 1, split: str = "val"):
        """Validation probability maps (one (L, L) float32 array per record of this process's
        share: every ``world``-th from ``rank``), the items, the loss summed over their cells and
        the number of cells."""
        from ..train import Lockstep

        t = self.task
        maps, items, total, n = [], [], 0.0, 0
        lockstep, groups = Lockstep(world), t.eval_items(split, rank, world)
        with torch.no_grad():
            for batch_items in groups:
                lockstep.step()
                logits, b = self._logits(net, batch_items, device)
                logits = logits.float()
                mask, target = b["mask"].to(device), b["target"].to(device)
                k = int(torch.triu(mask[:, :, None] & mask[:, None, :], t.head_cfg.min_loop + 1).sum())
                total += float(pair_loss(logits, target, mask, t.loss_cfg.pos_weight, t.head_cfg.min_loop)) * k
                n += k
                probs = torch.sigmoid(logits).cpu().numpy()
                for row, it in enumerate(batch_items):
                    L = len(it.seq)
                    maps.append(probs[row, :L, :L])
                    items.append(it)
            if lockstep.multi:
                spare = groups[-1] if groups else t.eval_items(split)[0]
                lockstep.finish(lambda: self._logits(net, spare, device))
        return maps, items, total, n

    def predictor(self, net, threshold: float = 0.5):
        """The map predictor of ``net`` (:class:`resm.structure.predictor.MapPredictor`) at
        ``threshold``, greedy, over the pairs the head scores (its ``min_loop``)."""
        from ..structure.predictor import MapPredictor

        return MapPredictor(net, self.task.scheme, threshold, "greedy", min_loop=self.task.head_cfg.min_loop)

    def validate(self, net, device, rank=0, world=1):
        if not self.task.val_records:
            return {}
        maps, items, total, n = self.predictions(net, device, rank, world)
        pred = self.predictor(net)
        decoded = [pred.decode(P, it.seq) for P, it in zip(maps, items)]
        return split_figures("val", decoded, [it.pairs for it in items], total, n)

    def choose(self, net, device, settings):
        """The greedy threshold that scores best on the validation set."""
        if not self.task.val_records:
            return
        from ..structure.decode import choose_threshold
        from ..structure.metrics import evaluate

        maps, items, total, n = self.predictions(net, device)  # every record, on every process
        val_loss = total / max(n, 1)
        seqs, trues = [it.seq for it in items], [it.pairs for it in items]
        threshold = float(choose_threshold(maps, seqs, trues, min_loop=self.task.head_cfg.min_loop))
        pred = self.predictor(net, threshold)
        r = evaluate([pred.decode(P, s) for P, s in zip(maps, seqs)], trues)
        settings["threshold"] = threshold
        settings["val_metrics"] = {
            "f1_mean": r["f1_mean"],
            "f1_shift_mean": r["f1_shift_mean"],
            "val_loss": val_loss,
            "n": len(items),
        }


KINDS: dict[str, type[HeadKind]] = {k.name: k for k in (PairKind, MapKind)}
