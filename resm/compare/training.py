"""Heads trained on cached, frozen embeddings, through the one training loop.

Every backend's embeddings are computed once per sequence and cached in memory; the heads are
then trained by :class:`resm.train.Trainer`, as ``resm finetune`` trains them, on two tasks
that read the cache instead of running a backbone:

* :class:`CachedStructureTask`: a :class:`resm.heads.pair_map.StructureHead` on windows of
  ``crop`` residues cut from the cached embeddings of the training structures
  (:class:`WindowStream`: records drawn with replacement and cropped at random, from the
  section's seed), :func:`resm.heads.pair_map.pair_loss`;
* :class:`CachedHeadTask`: a task's own head (interaction or expression) in a
  :class:`resm.tasks.base.TaskModel` over a :class:`CachedEncoder`, batches from
  :class:`resm.tasks.base.ItemStream`, the task's own loss.

Both make their head right after ``torch.manual_seed(seed)`` and draw their batches from the
seed alone, so every backend gets the same initial weights and the same batches.
:func:`train_cached` runs a section's budget (:class:`resm.compare.config.Budget`: AdamW with
betas 0.9/0.999 and no weight decay on norms and biases, constant learning rate after an
optional linear warm-up, gradient clipping) through the loop in memory (no run folder), with
no validation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..heads.pair_map import StructureHead, StructureHeadConfig, pair_loss
from ..nucleotides import letters_of, rna_codes
from ..structure.io import Structure
from ..tasks.base import ItemStream, TaskModel
from ..train import Trainer
from ..train_config import TrainConfig
from .config import Budget

__all__ = ["CachedEncoder", "WindowStream", "CachedStructureTask", "CachedHeadTask", "train_cached", "head_probs"]


class CachedEncoder(torch.nn.Module):
    """A frozen encoder that reads embeddings computed beforehand.

    ``forward(batch) -> (h, mask)`` like the tasks' encoders: ``batch`` is what
    :func:`resm.tasks.base.encode_batch` builds (``collate_pairs`` for RRI); its ``nuc`` codes
    and ``mask`` spell each row's normalised sequence, whose cached (L, E) embedding is copied
    into a zero-padded (B, Lmax, E) tensor. A :class:`resm.tasks.base.TaskModel` over it runs
    the tasks' own ``apply`` and ``predict`` functions unchanged. No parameters.
    """

    mode = "frozen"

    def __init__(self, cache: dict[str, torch.Tensor], embed_dim: int):
        super().__init__()
        self.cache = cache
        self.embed_dim = int(embed_dim)

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        nuc, mask = batch["nuc"], batch["mask"]
        codes = nuc.cpu().numpy().astype(np.intp)
        lengths = mask.sum(1).tolist()
        h = torch.zeros(nuc.shape[0], nuc.shape[1], self.embed_dim)
        for b, n in enumerate(lengths):
            seq = letters_of(codes[b, :n])
            e = self.cache.get(seq)
            if e is None:
                raise KeyError(f"no cached embedding for the {n}-nt sequence {seq[:40]}")
            h[b, :n] = e
        return h.to(nuc.device), mask


class WindowStream:
    """Endless batches of ``batch`` windows ``(record, start, stop)``: records drawn with
    replacement, each cropped to ``crop`` residues at a random start (used whole when shorter),
    all from one generator seeded with ``seed``. Resumable: the state is the number of batches
    drawn, replayed on load."""

    def __init__(self, lengths: Sequence[int], batch: int, crop: int, seed: int):
        self.lengths, self.batch, self.crop, self.seed = list(lengths), batch, crop, seed
        self._reset(0)

    def _reset(self, drawn: int) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.drawn = 0
        for _ in range(drawn):
            self._next()

    def _next(self) -> list[tuple[int, int, int]]:
        picks = []
        for k in self.rng.integers(0, len(self.lengths), size=self.batch).tolist():
            L = self.lengths[k]
            s = int(self.rng.integers(0, L - self.crop + 1)) if self.crop < L else 0
            picks.append((k, s, min(L, s + self.crop)))
        self.drawn += 1
        return picks

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        while True:
            yield self._next()

    def state_dict(self) -> dict[str, int]:
        return {"drawn": self.drawn}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._reset(int(state["drawn"]))


def window_batch(embs: Sequence[torch.Tensor], recs: Sequence[Structure], picks: list[tuple[int, int, int]]):
    """Padded (h, mask, nuc, target) of windows ``(record, start, stop)``."""
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


class _CachedTask:
    """What both cached tasks share: the loss of every step, no validation, nothing saved
    (an in-memory run: the caller keeps the trained head)."""

    name = "compare"
    model: torch.nn.Module

    def __init__(self, seed: int):
        self.seed = seed
        self.losses: list[float] = []

    def validate(self, model, device) -> dict[str, float]:
        return {}

    def fingerprint(self) -> dict[str, Any]:
        return {"task": self.name, "seed": self.seed}

    def final_loss(self) -> float:
        """Mean loss of the last 10% of steps."""
        return float(np.mean(self.losses[-max(1, len(self.losses) // 10) :]))


class CachedStructureTask(_CachedTask):
    """A :class:`StructureHead` on windows of cached embeddings (see the module notes)."""

    name = "compare-structure"

    def __init__(
        self,
        embs: Sequence[torch.Tensor],
        recs: Sequence[Structure],
        head_cfg: StructureHeadConfig,
        batch: int,
        crop: int,
        pos_weight: float,
        seed: int,
    ):
        super().__init__(seed)
        torch.manual_seed(seed)
        self.model = StructureHead(head_cfg)
        self.embs, self.recs, self.head_cfg = embs, recs, head_cfg
        self.batch, self.crop, self.pos_weight = batch, crop, pos_weight

    def train_stream(self, rank: int, world_size: int) -> WindowStream:
        return WindowStream([len(r) for r in self.recs], self.batch, self.crop, self.seed)

    def loss(self, model, picks, generator, device):
        h, mask, nuc, target = (x.to(device) for x in window_batch(self.embs, self.recs, picks))
        loss = pair_loss(model(h, mask, nuc=nuc), target, mask, self.pos_weight, self.head_cfg.min_loop)
        self.losses.append(float(loss.detach()))
        return loss, {"tokens": int(mask.sum())}


class CachedHeadTask(_CachedTask):
    """Head ``name`` of ``model`` (a :class:`TaskModel` over a :class:`CachedEncoder`) trained
    on ``items``: ``collate(items)`` makes a batch, ``loss_fn(output, batch)`` the loss."""

    def __init__(
        self,
        model: TaskModel,
        name: str,
        items: Sequence[Any],
        collate: Callable,
        loss_fn: Callable,
        batch: int,
        seed: int,
    ):
        super().__init__(seed)
        self.model, self.head, self.items = model, name, list(items)
        self.name = f"compare-{name}"
        self.collate, self.loss_fn, self.batch = collate, loss_fn, batch

    def train_stream(self, rank: int, world_size: int) -> ItemStream:
        return ItemStream(self.items, self.batch, self.seed, rank, world_size)

    def loss(self, model, items, generator, device):
        batch = self.collate(items)
        loss = self.loss_fn(model(batch, [self.head])[self.head], batch)
        self.losses.append(float(loss.detach()))
        return loss, {"tokens": int(batch["mask"].sum())}


def train_cached(task: _CachedTask, budget: Budget, device: torch.device | str, progress: bool = False) -> float:
    """Train ``task`` with a compare section's budget (:meth:`resm.compare.config.Budget.optim`,
    ``steps``, ``seed``) through :class:`resm.train.Trainer` in memory (no run folder); leaves
    the model in eval mode and returns the mean loss of the last 10% of steps."""
    train = TrainConfig(
        out_dir=None,
        max_steps=budget.steps,
        log_every=0,
        val_every=0,
        ckpt_every=0,
        seed=budget.seed,
        device=str(device),
        progress=progress,
    )
    Trainer(task, budget.optim(), train).fit()
    task.model.eval()
    return task.final_loss()


def head_probs(
    head: StructureHead,
    embs: Sequence[torch.Tensor],
    recs: Sequence[Structure],
    tile: int,
    progress: bool = False,
    desc: str = "head",
) -> list[np.ndarray]:
    """(L, L) pair probabilities of each record from the head (tiled inference)."""
    from tqdm.auto import tqdm

    device = next(head.parameters()).device
    out = []
    for h, r in tqdm(list(zip(embs, recs)), desc=desc, disable=not progress, leave=False):
        mask = torch.ones(1, len(r), dtype=torch.bool)
        nuc = torch.as_tensor(rna_codes(r.seq).astype(np.int64))[None]
        logits = head.predict_tiled(h[None].to(device), mask, nuc=nuc, tile=tile)
        out.append(torch.sigmoid(logits[0].float()).cpu().numpy())
    return out
