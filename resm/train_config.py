"""The ``optim`` and ``train`` config sections of every training run: :class:`OptimConfig` (AdamW,
warm-up and decay) and :class:`TrainConfig` (the loop's steps, intervals, engine, precision,
device and checkpoints), read by :func:`resm.config.from_dict` and used by the one training
loop, :class:`resm.train.Trainer`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import ConfigError, PathText, check_device, find_config
from .utils.seeds import SEED_RULE, seed_ok

__all__ = ["OptimConfig", "TrainConfig"]


def _check(key: str, value, rule: str, ok: bool) -> None:
    """A ConfigError naming ``key`` unless ``ok`` and the number is finite (inf passes "> 0")."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number {rule}, got {value!r}")
    if not ok:
        raise ConfigError(f"{key} must be {rule}, got {value!r}")


@dataclass
class OptimConfig:
    """AdamW with warm-up and decay.

    Attributes:
        lr: peak learning rate.
        weight_decay: AdamW weight decay (not applied to biases and norms).
        betas, eps: AdamW moments.
        warmup_steps: linear warm-up from 0 to ``lr``: step s (1, 2, ...) uses ``lr * s /
            warmup_steps``, so step ``warmup_steps`` is the first at ``lr``.
        schedule: "cosine", "linear" or "constant" decay after warm-up, down to
            ``lr * min_lr_ratio``, which the last step (``TrainConfig.max_steps``) uses.
        min_lr_ratio: final learning rate as a fraction of ``lr``.
        max_grad_norm: clip the global gradient norm to this (0: no clipping).
    """

    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.98)
    eps: float = 1e-8
    warmup_steps: int = 100
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    max_grad_norm: float = 1.0

    def __post_init__(self):
        if self.schedule not in ("cosine", "linear", "constant"):
            raise ConfigError(f"optim.schedule must be cosine, linear or constant, not {self.schedule!r}")
        self.betas = tuple(self.betas)
        _check("optim.lr", self.lr, "> 0", self.lr > 0)
        _check("optim.weight_decay", self.weight_decay, ">= 0", self.weight_decay >= 0)
        _check("optim.eps", self.eps, "> 0", self.eps > 0)
        _check("optim.warmup_steps", self.warmup_steps, ">= 0", self.warmup_steps >= 0)
        _check("optim.min_lr_ratio", self.min_lr_ratio, "in [0, 1]", 0 <= self.min_lr_ratio <= 1)
        _check("optim.max_grad_norm", self.max_grad_norm, ">= 0 (0: no clipping)", self.max_grad_norm >= 0)
        if len(self.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas):
            raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {list(self.betas)}")


@dataclass
class TrainConfig:
    """Loop settings.

    Attributes:
        out_dir: run folder (log.jsonl, checkpoints/, final model). None (from Python, not a
            training command): an in-memory run, engine torch, that writes nothing and leaves
            the trained weights in the task's model (:meth:`resm.train.Trainer.fit`).
        max_steps: optimiser steps to run.
        max_minutes: optional wall-clock budget; the run stops (and checkpoints) when spent.
        grad_accum: micro-batches per optimiser step. Each micro-batch's loss is its own mean
            (for MLM: over its masked positions), and the step's gradient is the mean of the
            micro-batches' gradients (over processes too), so every micro-batch weighs the same
            whatever the number of its targets: k accumulated micro-batches equal one batch of
            all their sequences only when they hold as many targets each. The logged train
            loss is the mean over the micro-batches since the last log line.
        log_every / val_every / ckpt_every: intervals in optimiser steps (0: never).
        keep_last: number of checkpoints kept.
        seed: seeds torch, numpy and Python (and the masking generator).
        engine: "torch" (one process, or DDP under torchrun) or "deepspeed".
        deepspeed_config: DeepSpeed JSON (ZeRO stage, offload, bf16) for engine "deepspeed": a
            path, or the name of a shipped one (``zero2``: ``configs/deepspeed/zero2.json``).
        precision: "fp32", "bf16" (autocast; on GPU) or "fp16" (DeepSpeed only).
        activation_checkpointing: recompute each layer in the backward pass.
        device: "auto" (cuda when available), "cpu" or "cuda".
        progress: show a progress bar.
        trust_checkpoint: allow unpickling arbitrary objects from this run folder's checkpoint
            files (DeepSpeed's, or a trainer state of the old ``.pt`` format) beyond the
            allow-list; only for run folders you trust.
        resume_changed: resume even though ``optim`` or ``train`` settings differ from the
            checkpoint's (the new values apply, and what changed is logged); without it such a
            resume is refused. Changes to the task's own sections are always refused.
    """

    out_dir: PathText | None = "runs/train"
    max_steps: int = 1000
    max_minutes: float | None = None
    grad_accum: int = 1
    log_every: int = 10
    val_every: int = 200
    ckpt_every: int = 200
    keep_last: int = 3
    seed: int = 0
    engine: str = "torch"
    deepspeed_config: PathText | None = None
    precision: str = "fp32"
    activation_checkpointing: bool = False
    device: str = "auto"
    progress: bool = True
    trust_checkpoint: bool = False
    resume_changed: bool = False

    def __post_init__(self):
        if self.engine not in ("torch", "deepspeed"):
            raise ConfigError(f"train.engine must be torch or deepspeed, not {self.engine!r}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"train.precision must be fp32, bf16 or fp16, not {self.precision!r}")
        _check("train.max_steps", self.max_steps, ">= 1", self.max_steps >= 1)
        # each micro-batch's loss is divided by it in torch, which takes no integer past 2**63
        # (10**30 was an OverflowError at the first step, said as unexpected)
        _check("train.grad_accum", self.grad_accum, "in [1, 2**31 - 1]", 1 <= self.grad_accum < 2**31)
        _check("train.keep_last", self.keep_last, ">= 1", self.keep_last >= 1)
        if not seed_ok(self.seed):
            raise ConfigError(f"train.seed {SEED_RULE}, got {self.seed!r}")
        for key in ("log_every", "val_every", "ckpt_every"):
            _check(f"train.{key}", getattr(self, key), ">= 0 (0: never)", getattr(self, key) >= 0)
        if self.max_minutes is not None:
            _check("train.max_minutes", self.max_minutes, "> 0", self.max_minutes > 0)
        if self.out_dir is not None and not self.out_dir:
            raise ConfigError("train.out_dir must be a folder path, got an empty string")
        if self.out_dir is None and self.engine != "torch":  # ZeRO-3 leaves the module partitioned
            raise ConfigError("train.out_dir: an in-memory run (no run folder) needs engine torch")
        self.device = check_device(self.device, "train.device")
        if self.engine == "deepspeed":  # checked here, before any model is built or op compiled
            if not self.deepspeed_config:
                raise ConfigError(
                    "engine deepspeed needs train.deepspeed_config "
                    "(a file, or a shipped name: zero0..zero3, zero2_offload)"
                )
            try:
                self.deepspeed_config = str(find_config(self.deepspeed_config, "deepspeed"))
            except ConfigError as e:
                raise ConfigError(f"train.deepspeed_config: {e}") from None
