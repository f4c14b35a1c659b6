"""The mean-ribosome-load task in ``resm compare`` (the ``compare`` part of the ``mrl`` task's
:class:`resm.tasks.base.TaskSpec`): the config section ``mrl`` (:class:`MRLSection`), the UTRs
(drawn once, :func:`load`), the protocol run for one backend (:func:`run_backend`) and its
section of ``results.md`` (:func:`report`). The task itself (its head, metrics and predictions)
is :mod:`resm.tasks.mrl`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ConfigError, PathText
from ..data.mrl import read_mrl, split_utrs
from ..heads.mrl import ExpressionHead, ExpressionHeadConfig, mrl_apply
from ..tasks.base import encode_batch, on_device, subset
from ..tasks.mrl import MRL_COLUMNS, mrl_metrics, predict_mrl
from .backends import ViennaBackend
from .config import TaskSection, file_key
from .data import TaskData, count_of, table_file
from .harness import cached_scheme, empty_row, sequence_task_model, task_details
from .report import EMBEDDINGS, NA, budget_text, section
from .training import CachedHeadTask, train_cached

__all__ = ["MRLSection", "load", "run_backend", "report"]


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
        steps, lr, warmup_steps, weight_decay, batch, max_grad_norm: as in :class:`resm.compare.rri.RRISection`.
        seed: seed of the split, the subsets, the head's initialisation and the batch order.
    """

    task: ClassVar[str] = "mrl"
    head_cls: ClassVar[type] = ExpressionHeadConfig

    train: PathText = ""
    fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    target: str | None = None
    test: PathText | None = None
    batch: int = 64

    def __post_init__(self) -> None:
        file_key("mrl.train", self.train, "the UTR file")
        file_key("mrl.test", self.test, "a test UTR file", optional=True)
        file_key("mrl.target", self.target, "a column name", optional=True)
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


def load(cfg, log):
    """Train / val / test UTRs of the ``mrl`` section of a compare config (:class:`MRLSection`),
    drawn once for every backend: a :class:`resm.compare.data.TaskData` (``mean`` / ``std``
    standardise the target, from the training UTRs)."""
    sec = cfg.mrl
    utrs = read_mrl(table_file(sec.train, "mrl.train"), target_column=sec.target)
    tr, va, te = split_utrs(utrs, tuple(sec.fractions), sec.seed)
    split = f"`split_utrs` of `{sec.train}` (fractions {'/'.join(f'{f:g}' for f in sec.fractions)}, seed {sec.seed})"
    src_te = "its test part"
    if sec.test:
        te = read_mrl(table_file(sec.test, "mrl.test"))
        src_te = f"`{sec.test}`"
    limit = sec.head_config(1).max_length
    for u in (*tr, *va, *te):
        if len(u.seq) > limit:
            raise ConfigError(
                f"mrl: UTR {u.name!r} (line {u.line}) has {len(u.seq)} nt, longer than mrl.head.max_length {limit}"
            )
    sub = [subset(x, cap, sec.seed) for x, cap in ((tr, sec.max_train), (va, sec.max_val), (te, sec.max_test))]
    if len(sub[0]) < 2:
        raise ConfigError(f"mrl.train: {len(sub[0])} training UTRs; the head needs at least 2")
    if len(sub[2]) < 2:
        raise ConfigError("mrl: fewer than 2 test UTRs (mrl.fractions gives the test share none; or give mrl.test)")
    y = np.array([u.mrl for u in sub[0]])
    about = {
        "train": f"{count_of(len(sub[0]), len(tr))} UTRs: the training part of {split}",
        "val": f"{count_of(len(sub[1]), len(va))} UTRs: its validation part",
        "test": f"{count_of(len(sub[2]), len(te))} UTRs: {src_te}",
    }
    data = TaskData(*sub, about=about, mean=float(y.mean()), std=float(y.std() or 1.0))
    for k, text in about.items():
        log(f"mrl {k}: {text}")
    return data


def run_backend(backend, cfg, data, log) -> tuple[dict[str, Any], dict[str, Any]]:
    """Mean ribosome load in ``resm compare`` for one loaded backend: (table row, details).

    The head (:class:`resm.heads.mrl.ExpressionHead`, created right after
    ``torch.manual_seed(seed)``) trains on frozen, cached embeddings
    (:func:`resm.compare.harness.sequence_task_model`) by the one loop on the mean squared error
    of the standardised MRL; R^2 and Spearman's rho on test (:func:`resm.tasks.mrl.mrl_metrics`), validation R^2
    alongside. ViennaRNA has no MRL model (n/a)."""
    sec, prog = cfg.mrl, cfg.progress
    row = empty_row(backend.spec, "ok", MRL_COLUMNS)
    if not backend.has_embeddings:
        row.update(status=f"{NA}: no MRL model" if isinstance(backend, ViennaBackend) else f"{NA}: no embeddings")
        return row, {}
    model, head, cache, secs = sequence_task_model(backend, data, sec, ExpressionHead, mrl_apply, prog)
    scheme = cached_scheme()
    mean, std = data.mean, data.std

    def collate(items):
        b = encode_batch([u.seq for u in items], scheme, [f"{u.name} (line {u.line})" for u in items])
        b["y"] = torch.tensor([(u.mrl - mean) / std for u in items], dtype=torch.float32)
        return on_device(b, backend.device)

    t0 = time.perf_counter()
    task = CachedHeadTask(
        model, "mrl", data.train, collate, lambda out, b: F.mse_loss(out.float(), b["y"]), sec.batch, sec.seed
    )
    loss = train_cached(task, sec, backend.device, prog)
    train_s = time.perf_counter() - t0

    def metrics(utrs) -> dict[str, float] | None:
        if not utrs:
            return None
        pred = predict_mrl(model, scheme, [u.seq for u in utrs], mean, std, sec.batch, backend.device, "mrl")
        return mrl_metrics(np.array([u.mrl for u in utrs]), pred)

    m, mv = metrics(data.test), metrics(data.val)
    row.update(r2=m["r2"], spearman=m["spearman"], val_r2=mv["r2"] if mv else None, embed_s=secs[0], train_s=train_s)
    log(
        f"{backend.name}: MRL test R² {m['r2']:.3f}, Spearman {m['spearman']:.3f}"
        + (f", val R² {mv['r2']:.3f}" if mv else "")
        + f", final loss {loss:.4f}, head {train_s:.0f} s"
    )
    return row, {**task_details(m, mv, loss, head, cache, secs, train_s), "target_mean": mean, "target_std": std}


def report(cfg, result, rows) -> list[str]:
    """The mean-ribosome-load section of ``results.md``."""
    sec, data = cfg.mrl, result["task_data"]["mrl"]
    intro = (
        f"5'UTRs (at most {sec.head_config(1).max_length} nt; seeded subsets, seed {sec.seed}; "
        f"target mean {data.mean:.3f}, sd {data.std:.3f} on train):"
    )
    notes = [
        (
            f"- head: ExpressionHead {json.dumps(sec.head, sort_keys=True)} {EMBEDDINGS}{budget_text(sec)}; mean "
            "squared error on the standardised MRL; the head after the last step is scored."
        ),
        (
            "- R² and Spearman's rho on the test UTRs (`resm.tasks.mrl.mrl_metrics`), val R² alongside; "
            "ViennaRNA has no MRL model (n/a)."
        ),
        (
            "- embed s: seconds of the embedding passes over the test UTRs' distinct sequences; head train s: "
            f"the head's training steps; device {cfg.device}."
        ),
    ]
    return section("Mean ribosome load", intro, data.about, notes, rows, MRL_COLUMNS)
