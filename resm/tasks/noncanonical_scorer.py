"""The fit of the non-canonical pair scorer (:class:`resm.structure.noncanonical.NonCanonicalScorer`)
through the one training loop: each member of the scorer is a small task (:class:`_MemberTask`:
batches of candidate rows, binary cross-entropy) that :class:`resm.train.Trainer` runs in
memory, on the CPU, with the settings of :class:`TrainOptions`. The candidates' features and
labels come from :func:`resm.structure.noncanonical.labelled_arrays`; the recipe that trains
the shipped scorer is ``experiments/noncanonical/train.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn

from ..data.stream import EpochStream
from ..structure.noncanonical import NonCanonicalConfig, NonCanonicalScorer, n_features

__all__ = ["TrainOptions", "train_scorer"]


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """How :func:`train_scorer` fits each member through the one training loop: ``epochs``
    over the candidates in shuffled batches of ``batch``, AdamW (betas 0.9 / 0.999) at a
    constant ``lr`` with ``weight_decay`` (on the weight matrices, not the biases: the loop's
    parameter groups, :func:`resm.engines.param_groups`), no warm-up and no gradient clipping,
    seeded by ``seed``."""

    epochs: int = 8
    batch: int = 4096
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0


class _RowBatches(EpochStream):
    """Endless ``(epoch, rows)`` batches of ``batch`` row indices out of ``n``: each epoch a
    permutation drawn from one generator seeded with ``seed`` (epoch e's is its (e+1)-th draw),
    cut in order; resumable (:class:`resm.data.stream.EpochStream`)."""

    def __init__(self, n: int, batch: int, seed: int):
        super().__init__(seed, 0, 1)
        self.n, self.batch = n, batch
        self._rng, self._drawn = np.random.default_rng(seed), 0  # the generator after _drawn draws

    def iter_epoch(self, epoch: int) -> Iterator[tuple[int, torch.Tensor]]:
        if self._drawn > epoch:  # an earlier epoch again (a resume): draw from the start
            self._rng, self._drawn = np.random.default_rng(self.seed), 0
        while self._drawn <= epoch:
            order = torch.from_numpy(self._rng.permutation(self.n))
            self._drawn += 1
        for s in range(0, self.n, self.batch):
            yield epoch, order[s : s + self.batch]


class _MemberTask:
    """One member of a :class:`NonCanonicalScorer` as a task of the training loop
    (:class:`resm.train.Trainer`, in memory): batches of candidate rows, binary cross-entropy.
    Keeps each epoch's summed loss (weighted by the batch sizes) in ``sums``."""

    name = "non-canonical-scorer"
    progress = False

    def __init__(self, member: nn.Module, X: torch.Tensor, y: torch.Tensor, opts: TrainOptions, seed: int):
        self.model, self.X, self.y, self.opts, self.seed = member, X, y, opts, seed
        self.sums = np.zeros(opts.epochs)

    def train_stream(self, rank: int, world_size: int) -> _RowBatches:
        if world_size != 1:
            raise ValueError("the non-canonical scorer is fitted in one process")
        return _RowBatches(len(self.X), self.opts.batch, self.seed)

    def loss(self, model, batch, generator, device):
        epoch, rows = batch
        out = model(self.X[rows].to(device))[:, 0]
        loss = nn.functional.binary_cross_entropy_with_logits(out, self.y[rows].to(device))
        self.sums[epoch] += loss.item() * len(rows)
        return loss, {"tokens": len(rows)}

    def validate(self, model, device) -> dict[str, float]:
        return {}

    def fingerprint(self) -> dict:
        return {"task": self.name, "rows": len(self.X), "seed": self.seed, **asdict(self.opts)}


def train_scorer(
    X: np.ndarray, y: np.ndarray, cfg: NonCanonicalConfig, opts: TrainOptions = TrainOptions(), progress: bool = False
) -> tuple[NonCanonicalScorer, list[float]]:
    """A scorer fitted on features ``X`` and labels ``y`` by binary cross-entropy, each member
    on its own by the one training loop (:class:`resm.train.Trainer`, in memory, on the CPU;
    the settings: :class:`TrainOptions`) with seed ``opts.seed + k``; the members' initial
    weights are drawn from ``opts.seed``. Returns it with the mean training loss of each epoch
    (averaged over the members)."""
    from ..train import Trainer
    from ..train_config import OptimConfig, TrainConfig

    if len(X) != len(y) or X.ndim != 2 or X.shape[1] != n_features(cfg):
        raise ValueError(f"expected features (n, {n_features(cfg)}) and n labels, got {X.shape} and {y.shape}")
    if not len(X):
        raise ValueError("no candidates to fit the scorer on")
    torch.manual_seed(opts.seed)
    scorer = NonCanonicalScorer(cfg)
    Xt, yt = torch.from_numpy(np.ascontiguousarray(X, np.float32)), torch.from_numpy(np.asarray(y, np.float32))
    optim = OptimConfig(
        lr=opts.lr,
        weight_decay=opts.weight_decay,
        betas=(0.9, 0.999),
        warmup_steps=0,
        schedule="constant",
        max_grad_norm=0.0,
    )
    steps = opts.epochs * math.ceil(len(X) / opts.batch)
    losses = np.zeros(opts.epochs)
    for k, member in enumerate(scorer.members):
        task = _MemberTask(member, Xt, yt, opts, opts.seed + k)
        train = TrainConfig(
            out_dir=None,
            max_steps=steps,
            log_every=0,
            val_every=0,
            ckpt_every=0,
            seed=opts.seed + k,
            device="cpu",
            progress=progress,
        )
        Trainer(task, optim, train).fit()
        losses += task.sums / len(X) / cfg.members
    return scorer.eval(), losses.tolist()
