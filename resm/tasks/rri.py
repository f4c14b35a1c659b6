"""RNA–RNA interaction (``task: rri``): miRNA–target pairs -> interaction probability + pair map.

Config sections: ``model`` (:class:`resm.tasks.base.ModelConfig`), ``head`` (fields of
:class:`resm.heads.rri.InteractionHeadConfig` except ``embed_dim``), ``data``
(:class:`RRIDataConfig`), ``optim`` / ``train`` (the shared loop).

Both partners of every pair go through the encoder in one batch (2B sequences, one pass); the
head sees their embeddings side by side. Metrics: accuracy and F1 at probability 0.5, AUROC,
AUPRC (scikit-learn). The finished model is a bundle folder ``out_dir/model`` (head file,
adapter file in mode adapters, manifest) read back by :func:`load_rri_model`.

Also here: :func:`zero_shot_scores`, an interaction score that needs no RRI training: the two
sequences are joined (with an optional linker) and run through the backbone's contact head
(ESM's attention-map logistic regression, e.g. a probe fitted by ``resm probe`` on RNA
structures); the score is the mean, over the first partner's bases, of its strongest contact
probability into the second partner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ConfigError, from_dict
from ..data.rri import Pair, read_pairs, split_pairs
from ..heads.rri import InteractionHead, InteractionHeadConfig, rri_apply
from ..records import validation_is_training
from .base import (
    BACKEND_COLUMNS,
    BUNDLE_DIR,
    SEQUENCE_KEYS,
    BundleHeadTask,
    CompareSpec,
    ItemStream,
    ModelConfig,
    TaskModel,
    TaskSpec,
    bundle_config,
    check_item_data,
    counted_once,
    encode_batch,
    head_for,
    no_validation,
    on_device,
    one_label,
    open_bundle,
    seeded_head,
    subset,
)

__all__ = [
    "RRIDataConfig",
    "RRITask",
    "collate_pairs",
    "rri_metrics",
    "predict_rri",
    "load_rri_model",
    "zero_shot_scores",
]


VAL_FRACTION = 0.1  # data.val_fraction's default


@dataclass
class RRIDataConfig:
    """Pairs for the ``rri`` task.

    Attributes:
        train: pairs file (CSV/TSV: a_name, a_seq, b_name, b_seq, label), e.g.
            ``{data_dir}/rri/MirTarRAW.csv``; split into train/validation by ``val_fraction``.
        val_fraction: share of ``train`` held out for validation (fixed seeded split).
        val: optional separate validation file (then ``train`` is used whole, and a
            ``val_fraction`` other than the default 0.1 is refused: it would be ignored).
        max_train / max_val: optional caps (a seeded random subset) for quick runs.
        batch_size: pairs per batch.
        seed: seed of the split and the batch order.
    """

    train: str = ""
    val_fraction: float = VAL_FRACTION
    val: str | None = None
    max_train: int | None = None
    max_val: int | None = None
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self):
        check_item_data(self, "pairs")
        if self.val and self.val_fraction != VAL_FRACTION:
            raise ConfigError(
                f"data.val and data.val_fraction {self.val_fraction}: give one of them (with data.val the whole of "
                "data.train trains, and no share of it is held out)"
            )
        if not 0.0 < self.val_fraction < 1.0 and not self.val:
            raise ConfigError(f"data.val_fraction must lie in (0, 1), got {self.val_fraction}")


def _names_and_sequences(p: Pair) -> tuple[str, str, str, str]:
    """What makes a validation pair a training pair (:func:`validation_is_training`)."""
    return p.a_name, p.a, p.b_name, p.b


def collate_pairs(pairs: Sequence[Pair], scheme) -> dict[str, Any]:
    seqs = [p.a for p in pairs] + [p.b for p in pairs]
    names = [f"{p.a_name} (line {p.line})" for p in pairs] + [f"{p.b_name} (line {p.line})" for p in pairs]
    batch = encode_batch(seqs, scheme, names)
    batch.update(n_pairs=len(pairs), la=max(len(p.a) for p in pairs), lb=max(len(p.b) for p in pairs))
    if all(p.label is not None for p in pairs):
        batch["label"] = torch.tensor([float(p.label) for p in pairs])
    return batch


def rri_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """accuracy and F1 at ``threshold``, AUROC and AUPRC (scikit-learn)."""
    from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score

    y, p = np.asarray(labels).astype(int), np.asarray(probs, dtype=np.float64)
    pred = (p >= threshold).astype(int)
    out = {
        "accuracy": float(accuracy_score(y, pred)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "n": int(len(y)),
    }
    both = len(set(y.tolist())) == 2
    out["auroc"] = float(roc_auc_score(y, p)) if both else float("nan")
    out["auprc"] = float(average_precision_score(y, p)) if both else float("nan")
    return out


class RRITask(BundleHeadTask):
    """Interaction classification through the shared loop."""

    name = head_name = "rri"
    sections = ("model", "head", "data")
    output = BUNDLE_DIR

    def __init__(self, cfg: dict[str, Any], encoder=None):
        self.model_cfg = ModelConfig.for_task(cfg.get("model"), "rri")
        self.data_cfg = d = from_dict(RRIDataConfig, cfg.get("data"), "data")
        encoder = self._encoder(encoder)
        self.head_cfg = self._head_config(InteractionHeadConfig, cfg.get("head"), encoder)
        head = seeded_head(lambda: InteractionHead(self.head_cfg), d.seed)
        self.model = TaskModel(encoder, {self.head_name: head}, {self.head_name: rri_apply})
        n = self.head_cfg.max_length
        if d.val:
            self.train_pairs, self.val_pairs = read_pairs(d.train, max_length=n), read_pairs(d.val, max_length=n)
        else:
            self.train_pairs, self.val_pairs = split_pairs(read_pairs(d.train, max_length=n), d.val_fraction, d.seed)
        read = len(self.train_pairs) + len(self.val_pairs)
        self.train_pairs = subset(self.train_pairs, d.max_train, d.seed)
        self.val_pairs = subset(self.val_pairs, d.max_val, d.seed)
        split = f"data.val_fraction {d.val_fraction} of the {read} pair(s) of {d.train}"
        self._notes = no_validation(self.val_pairs, split)
        self._notes += one_label([p.label for p in self.train_pairs], f"data.train ({d.train})", "pair(s)", "val_auroc")
        self._notes += validation_is_training(d.val, self.val_pairs, self.train_pairs, _names_and_sequences)
        self.final_metrics: dict[str, float] = {}

    # ---- Task protocol
    def train_stream(self, rank: int, world_size: int) -> ItemStream:
        return ItemStream(self.train_pairs, self.data_cfg.batch_size, self.data_cfg.seed, rank, world_size)

    def loss(self, model, batch: list[Pair], generator, device):
        b = on_device(collate_pairs(batch, self.scheme), device)
        out = model(b, [self.head_name])[self.head_name]
        return F.binary_cross_entropy_with_logits(out["logit"].float(), b["label"]), {"tokens": int(b["mask"].sum())}

    def predict(self, model, pairs: Sequence[Pair], device) -> np.ndarray:
        return predict_rri(model, self.scheme, pairs, self.data_cfg.batch_size, device, self.head_name)[0]

    def validate(self, model, device) -> dict[str, float]:
        if not self.val_pairs:
            return {}
        probs = self.predict(model, self.val_pairs, device)
        y = np.array([p.label for p in self.val_pairs])
        eps = 1e-7
        loss = float(-np.mean(y * np.log(probs + eps) + (1 - y) * np.log(1 - probs + eps)))
        m = rri_metrics(y, probs)
        return {
            "val_loss": loss,
            "val_auroc": m["auroc"],
            "val_accuracy": m["accuracy"],
            "val_f1": m["f1"],
            "n_val": counted_once(m["n"]),
        }

    def head_spec(self) -> dict[str, Any]:
        extra = {"threshold": 0.5, "val_metrics": self.final_metrics}
        return {"task": "rri", "config": bundle_config(self.head_cfg), "extra": extra}


@torch.no_grad()
def predict_rri(
    model: TaskModel,
    scheme,
    pairs: Sequence[Pair],
    batch_size: int = 64,
    device="cpu",
    head: str = "rri",
    with_maps: bool = False,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Interaction probabilities (N,) and, with ``with_maps``, one (La, Lb) pair-probability map
    per pair."""
    was = model.training
    model.eval()
    probs, maps = [], []
    try:
        for s in range(0, len(pairs), batch_size):
            chunk = list(pairs[s : s + batch_size])
            out = model(on_device(collate_pairs(chunk, scheme), device), [head])[head]
            probs.append(torch.sigmoid(out["logit"].float()).cpu().numpy())
            if with_maps:
                pm = torch.sigmoid(out["pair_logits"].float()).cpu().numpy()
                maps += [pm[i, : len(p.a), : len(p.b)] for i, p in enumerate(chunk)]
    finally:
        model.train(was)
    return np.concatenate(probs) if probs else np.zeros(0, np.float32), maps


def load_rri_model(folder, backbone: str | None = None, trust: bool = False, adapter: Path | None = None):
    """``(TaskModel, head name, manifest entry of the rri head, scheme)`` from ``out_dir/model``
    (a jointly trained bundle also holds other heads); ``adapter``: a PEFT folder in place of the
    bundle's adapter."""
    model, entries, scheme = open_bundle(Path(folder), backbone=backbone, trust=trust, adapter=adapter)
    name = head_for(folder, entries, "rri")
    return model, name, entries[name], scheme


@torch.no_grad()
def zero_shot_scores(
    backbone, scheme, pairs: Sequence[Pair], linker: str = "", batch_size: int = 32, progress: bool = False
) -> np.ndarray:
    """Training-free interaction score of each pair from the backbone's contact head.

    ``a + linker + b`` is mapped and run through ``backbone.predict_contacts``; the score is
    the mean over a's bases of the largest contact probability into b's bases. With
    ``progress``, a bar on stderr counts pairs against their total."""
    from tqdm.auto import tqdm

    backbone.eval()
    out = np.zeros(len(pairs), np.float32)
    bar = tqdm(total=len(pairs), desc="interact (zero-shot)", unit="pair", disable=not progress)
    for s in range(0, len(pairs), batch_size):
        chunk = list(pairs[s : s + batch_size])
        seqs = [p.a + linker + p.b for p in chunk]
        batch = encode_batch(seqs, scheme, [p.name for p in chunk])
        contacts = backbone.predict_contacts(batch["tokens"].to(backbone.device)).float().cpu()
        for i, p in enumerate(chunk):
            off = len(p.a) + len(linker)
            block = contacts[i, : len(p.a), off : off + len(p.b)]
            out[s + i] = float(block.amax(dim=1).mean())
        bar.update(len(chunk))
    bar.close()
    return out


# the columns of the rri table of ``resm compare`` (resm.compare.rri)
RRI_COLUMNS = (
    *BACKEND_COLUMNS,
    ("auroc", "test AUROC"),
    ("auprc", "test AUPRC"),
    ("val_auroc", "val AUROC"),
    ("embed_s", "embed s (test)"),
    ("train_s", "head train s"),
)


TASK = TaskSpec(
    "rri",
    RRITask,
    SEQUENCE_KEYS,
    head="rri",
    config="rri",
    joint=True,
    predict="resm.predict:predict_rri",
    compare=CompareSpec(
        run="resm.compare.rri:run_backend",
        load="resm.compare.rri:load",
        sections=(("rri", "resm.compare.rri:RRISection", True),),
        columns=RRI_COLUMNS,
        csv="results_rri.csv",
        report="resm.compare.rri:report",
    ),
    order=20,
)
