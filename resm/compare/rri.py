"""The RNA-RNA interaction task in ``resm compare`` (the ``compare`` part of the ``rri`` task's
:class:`resm.tasks.base.TaskSpec`): the config section ``rri`` (:class:`RRISection`), the pairs
(drawn once, :func:`load`), the protocol run for one backend (:func:`run_backend`) and its
section of ``results.md`` (:func:`report`). The task itself (its head, metrics and predictions)
is :mod:`resm.tasks.rri`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..config import ConfigError, PathText
from ..data.rri import read_pairs, split_pairs
from ..heads.rri import InteractionHead, InteractionHeadConfig, rri_apply
from ..tasks.base import on_device, subset
from ..tasks.rri import RRI_COLUMNS, collate_pairs, predict_rri, rri_metrics
from .backends import FolderBackend, ViennaBackend
from .config import TaskSection, file_key, number
from .data import TaskData, count_of, table_file
from .harness import cached_scheme, empty_row, sequence_task_model, task_details
from .report import EMBEDDINGS, NA, budget_text, section
from .training import CachedHeadTask, train_cached

__all__ = ["RRISection", "load", "run_backend", "report"]


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
            training budget (:class:`resm.compare.config.Budget`).
        seed: seed of the split, the subsets, the head's initialisation and the batch order.
    """

    task: ClassVar[str] = "rri"
    head_cls: ClassVar[type] = InteractionHeadConfig

    train: PathText = ""
    val_fraction: float = 0.1
    val: PathText | None = None
    test: PathText = ""

    def __post_init__(self) -> None:
        file_key("rri.train", self.train, "the training pairs file")
        file_key("rri.test", self.test, "the test pairs file")
        file_key("rri.val", self.val, "a validation pairs file", optional=True)
        if not self.val:
            number("rri.val_fraction", self.val_fraction, high=1.0)
        super().__post_init__()


def load(cfg, log):
    """Train / val / test pairs of the ``rri`` section of a compare config (:class:`RRISection`),
    drawn once for every backend: a :class:`resm.compare.data.TaskData`."""
    sec = cfg.rri
    n = sec.head_config(1).max_length
    pairs = read_pairs(table_file(sec.train, "rri.train"), max_length=n)
    if sec.val:
        tr, va = pairs, read_pairs(table_file(sec.val, "rri.val"), max_length=n)
        src_tr, src_va = f"`{sec.train}`", f"`{sec.val}`"
    else:
        tr, va = split_pairs(pairs, sec.val_fraction, sec.seed)
        src_tr = (
            f"the training part of `{sec.train}` (`split_pairs`, val_fraction {sec.val_fraction:g}, seed {sec.seed})"
        )
        src_va = "its validation part"
    te = read_pairs(table_file(sec.test, "rri.test"), max_length=n)
    sub = [subset(x, cap, sec.seed) for x, cap in ((tr, sec.max_train), (va, sec.max_val), (te, sec.max_test))]
    if len({p.label for p in sub[0]}) < 2:
        raise ConfigError("rri.train: the training pairs need both labels, 0 and 1")
    if len({p.label for p in sub[2]}) < 2:
        raise ConfigError("rri.test: AUROC and AUPRC need both labels, 0 and 1, among the test pairs")
    seen = {(p.a, p.b) for p in sub[0]}
    overlap = sum((p.a, p.b) in seen for p in sub[2])
    about = {
        "train": f"{count_of(len(sub[0]), len(tr))} pairs: {src_tr}",
        "val": f"{count_of(len(sub[1]), len(va))} pairs: {src_va}",
        "test": f"{count_of(len(sub[2]), len(te))} pairs from `{sec.test}` "
        f"({overlap} of them also among the training pairs)",
    }
    data = TaskData(*sub, about=about)
    for k, text in about.items():
        log(f"rri {k}: {text}")
    return data


def run_backend(backend, cfg, data, log) -> tuple[dict[str, Any], dict[str, Any]]:
    """RNA-RNA interaction in ``resm compare`` for one loaded backend: (table row, details).

    The head (:class:`resm.heads.rri.InteractionHead`, created right after
    ``torch.manual_seed(seed)``) trains on frozen, cached embeddings of the two partners
    (:func:`resm.compare.harness.sequence_task_model`) by the one loop on the binary
    cross-entropy of the interaction logit; AUROC and AUPRC on test (:func:`resm.tasks.rri.rri_metrics`),
    validation AUROC alongside. ViennaRNA's row scores each pair by ``-dG`` of
    ``RNA.duplexfold`` (no training); another folder cannot score duplexes (n/a)."""

    sec, prog = cfg.rri, cfg.progress
    row = empty_row(backend.spec, "ok", RRI_COLUMNS)
    y_val = np.array([p.label for p in data.val])
    y_test = np.array([p.label for p in data.test])

    def metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float] | None:
        return rri_metrics(y, score) if len(y) else None

    if isinstance(backend, FolderBackend):
        row.update(status=f"{NA}: scores no duplexes")
        return row, {}
    if isinstance(backend, ViennaBackend):
        t0 = time.perf_counter()
        s_test = -np.array(
            [
                backend.duplex_energy(p.a, p.b)
                for p in tqdm(data.test, desc=f"{backend.name}: duplexfold", disable=not prog, leave=False)
            ]
        )
        secs = time.perf_counter() - t0
        s_val = -np.array([backend.duplex_energy(p.a, p.b) for p in data.val])
        m, mv = metrics(y_test, s_test), metrics(y_val, s_val)
        row.update(
            status="ok (duplexfold -dG, no training)",
            auroc=m["auroc"],
            auprc=m["auprc"],
            val_auroc=mv["auroc"] if mv else None,
            embed_s=secs,
        )
        log(f"{backend.name}: RRI duplexfold -dG test AUROC {m['auroc']:.3f}, AUPRC {m['auprc']:.3f}")
        return row, {"test": m, "val": mv, "score": "-dG of RNA.duplexfold"}
    if not backend.has_embeddings:
        row.update(status=f"{NA}: no embeddings")
        return row, {}
    model, head, cache, secs = sequence_task_model(backend, data, sec, InteractionHead, rri_apply, prog)
    scheme = cached_scheme()
    t0 = time.perf_counter()
    task = CachedHeadTask(
        model,
        "rri",
        data.train,
        lambda items: on_device(collate_pairs(items, scheme), backend.device),
        lambda out, b: F.binary_cross_entropy_with_logits(out["logit"].float(), b["label"]),
        sec.batch,
        sec.seed,
    )
    loss = train_cached(task, sec, backend.device, prog)
    train_s = time.perf_counter() - t0
    p_test = predict_rri(model, scheme, data.test, sec.batch, backend.device, "rri")[0]
    m = metrics(y_test, p_test)
    mv = metrics(y_val, predict_rri(model, scheme, data.val, sec.batch, backend.device, "rri")[0]) if data.val else None
    row.update(
        auroc=m["auroc"], auprc=m["auprc"], val_auroc=mv["auroc"] if mv else None, embed_s=secs[0], train_s=train_s
    )
    log(
        f"{backend.name}: RRI test AUROC {m['auroc']:.3f}, AUPRC {m['auprc']:.3f}"
        + (f", val AUROC {mv['auroc']:.3f}" if mv else "")
        + f", final loss {loss:.4f}, head {train_s:.0f} s"
    )
    return row, task_details(m, mv, loss, head, cache, secs, train_s)


def report(cfg, result, rows) -> list[str]:
    """The interaction section of ``results.md``."""
    sec, data = cfg.rri, result["task_data"]["rri"]
    intro = f"Pairs (each partner at most {sec.head_config(1).max_length} nt; seeded subsets, seed {sec.seed}):"
    notes = [
        (
            f"- head: InteractionHead {json.dumps(sec.head, sort_keys=True)} {EMBEDDINGS}the two partners embedded "
            f"apart; {budget_text(sec)}; binary cross-entropy on the interaction label; the head after the last step "
            "is scored."
        ),
        (
            "- AUROC / AUPRC on the test pairs (`resm.tasks.rri.rri_metrics`), val AUROC alongside; ViennaRNA: "
            "-dG of `RNA.duplexfold` as the score, no training."
        ),
        (
            "- embed s: seconds of the embedding passes over the test pairs' distinct sequences (ViennaRNA: "
            f"duplexfold over the test pairs); head train s: the head's training steps; device {cfg.device}."
        ),
    ]
    return section("RNA-RNA interaction", intro, data.about, notes, rows, RRI_COLUMNS)
