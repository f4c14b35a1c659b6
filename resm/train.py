"""The one training loop of resm, shared by pretraining, every fine-tuning task and the heads
of the comparison harness (:mod:`resm.tasks`, :mod:`resm.compare.training`).

A *task* supplies the trainable module, a resumable stream of batches, a loss and a validation
function; an *engine* (:mod:`resm.engines`: plain torch, optionally DDP, or DeepSpeed ZeRO 0-3)
owns the optimiser, schedule, precision and checkpoint files. ``Trainer.fit`` runs the loop:

* optimiser AdamW, linear warm-up then cosine or linear decay
  (:class:`resm.train_config.OptimConfig`; the loop's settings: :class:`resm.train_config.TrainConfig`);
* logs loss, perplexity, tokens/s, learning rate and gradient norm to the console (tqdm), to
  ``log.jsonl`` and, when ``tensorboard`` is installed, to TensorBoard; ``elapsed_s``, the wall
  time of training, goes on after a resume from the checkpoint's;
* periodic validation, periodic atomic checkpoints (write a temporary folder, then rename;
  the last N kept) holding weights, optimiser, scheduler, RNG states and the data position, so
  a killed run resumes where its last checkpoint left it;
* or, with no run folder (``train.out_dir`` None, engine torch), an in-memory run: the same
  steps, nothing written (no checkpoint, log file or final model; the log lines are returned),
  the trained weights left in the task's model (the non-canonical scorer's members, the heads
  of the comparison harness).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .backbone.load import CheckpointError, non_finite
from .config import ConfigError, check_inputs_outside, config_sections, from_dict
from .engines import (
    DeepSpeedEngine,
    TorchEngine,
    lr_lambda,
    read_deepspeed_config,
    refuse_stale_build_locks,
    trained_weights,
)
from .train_config import OptimConfig, TrainConfig
from .train_state import (
    changes,
    checkpoint_problem,
    generator_state,
    jsonable,
    load_trainer_state,
    rng_state,
    save_trainer_state,
    set_generator_state,
    set_rng_state,
)
from .utils.device import launch, resolve_device
from .utils.io import atomic_write_text, check_output, on_abort, suspended
from .utils.jsontext import load_json
from .utils.memory import allocation_failed
from .utils.paths import OutputError

CKPT_RE = re.compile(r"^step_(\d{8})$")


class Task(Protocol):
    """What a training job provides to the loop."""

    model: torch.nn.Module  # the module whose trainable parameters are optimised
    # optional: unused_parameters = True when a step may leave trained parameters without a
    # gradient (DistributedDataParallel then looks for them)
    progress: bool  # set by the loop before train_stream: show the task's own bars (train.progress, rank 0)

    def train_stream(self, rank: int, world_size: int) -> Any:
        """An iterator of batches with ``state_dict()``/``load_state_dict()``."""

    def loss(self, model: torch.nn.Module, batch: Any, generator: torch.Generator, device) -> tuple:
        """(scalar loss, {"tokens": n, ...}) for one micro-batch."""

    def validate(self, model: torch.nn.Module, device) -> dict[str, float]:
        """Validation metrics, run on every rank. Each figure is the whole split's on every
        rank: a task that splits the split over the processes sums its shares itself
        (:func:`all_sum`; mlm, structure), one that does not scores it all (rri, mrl); the
        caller averages these equal figures and sums the counts (``n_*``, :func:`_all_mean`)."""

    def fingerprint(self) -> dict[str, Any]:
        """Settings that must not change across a resume."""

    def save_final(self, model: torch.nn.Module, out_dir: Path, state: dict[str, torch.Tensor]) -> None:
        """Write the finished model (consolidated ``state``) in its user-facing format (rank 0).
        Not called in an in-memory run (no ``train.out_dir``): the caller keeps ``model``."""

    # optional: finish(model, device), run on every process just before save_final with the
    # same weights: the forward passes the final files need (a bundle's last validation, a
    # decoding chosen on validation). Under ZeRO-3 a forward pass is a collective (DeepSpeed's
    # hooks gather weights and check that the processes are in step): in save_final, on rank 0
    # alone, it waited for the others forever.

    # optional: outputs(out_dir) -> [(path, kind, earlier)], what save_final writes ("file" or
    # "dir"; earlier(folder): whether an existing folder is an earlier output it may replace),
    # checked with the run folder's own entries before the run starts (RUN_ENTRIES)


# the entries of a run folder the loop writes, and their kinds
RUN_ENTRIES = (("checkpoints", "dir"), ("log.jsonl", "file"), ("config.json", "file"))


# ----------------------------------------------------------------------------- distributed
def init_distributed(engine: str, device: torch.device) -> None:
    """Start the process group. One-process DeepSpeed runs need the rendezvous variables too,
    so they are filled in for a single local process."""
    rank, world, _ = launch()
    if world == 1 and engine != "deepspeed":
        return
    for k, v in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "127.0.0.1")):
        os.environ.setdefault(k, v)
    if "MASTER_PORT" not in os.environ:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])
    backend = "nccl" if device.type == "cuda" else "gloo"
    if engine == "deepspeed":
        import deepspeed

        refuse_stale_build_locks()  # else DeepSpeed would wait for a killed build's lock forever
        deepspeed.init_distributed(dist_backend=backend)
    elif not dist.is_initialized():
        dist.init_process_group(backend=backend)


def shutdown_distributed() -> None:
    """An orderly shutdown (ZeRO-3 otherwise sometimes aborts at exit)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _collective_device() -> torch.device:
    """Where the tensor of a collective must live: on the GPU when the process group has no
    CPU backend (NCCL alone, as :func:`init_distributed` starts it on GPUs, reduces CUDA
    tensors only: a CPU tensor is 'No backend type associated with device type cpu')."""
    config = dist.get_backend_config()
    if "cpu" in config or "cuda" not in config:
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def all_sum(values: list[float]) -> list[float]:
    """``values`` summed over the processes (themselves in a one-process run), in float64."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return t.tolist()


class Lockstep:
    """Forward passes in step over the processes: a validation's shares differ in size (every
    ``world``-th record), and under DeepSpeed ZeRO-3 each forward pass gathers the partitioned
    weights with every process, so a process whose share is done runs spare passes while another
    still has work (their outputs thrown away); otherwise the others wait for it for ever. Call
    :meth:`step` before each of this process's forward passes, then :meth:`finish` with a spare
    pass. ``world``: the number of shares (1, no collective and no spare pass: one process, or
    a caller that runs every record on its own, as the decoding choice of rank 0's save_final)."""

    def __init__(self, world: int):
        self.multi = world > 1 and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

    def step(self, mine: bool = True) -> bool:
        """Whether a process runs a forward pass in this round (this one when ``mine``)."""
        return bool(mine) if not self.multi else all_sum([float(bool(mine))])[0] > 0

    def finish(self, spare: Callable[[], Any]) -> None:
        """``spare()`` (a forward pass whose output is not used) once for each round in which
        another process still runs one of its own."""
        while self.step(False):
            spare()


def _all_mean(values: dict[str, float]) -> dict[str, float]:
    """``values`` averaged over the processes, counts (``n_*``, ``tokens``) summed. A figure
    that is a mean over items split unequally between the processes is no mean of the shares'
    means: the task sums the shares itself (:meth:`Task.validate`), so that validation figures
    arrive here equal on every process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    keys = sorted(values)
    out = {k: v / dist.get_world_size() for k, v in zip(keys, all_sum([values[k] for k in keys]))}
    for k in keys:  # counts are summed, not averaged (a joint run's too: rri_n_val)
        if k.startswith("n_") or "_n_" in k or k == "tokens":
            out[k] = out[k] * dist.get_world_size()
    return out


# ----------------------------------------------------------------------------- checkpoints
def list_checkpoints(out_dir: Path) -> list[Path]:
    d = Path(out_dir) / "checkpoints"
    if not d.is_dir():
        return []
    return sorted((p for p in d.iterdir() if CKPT_RE.match(p.name)), key=lambda p: p.name)


def newest_checkpoint(out_dir: Path) -> Path | None:
    """The newest checkpoint of a run folder, or None. A damaged newest one is refused, naming
    it, rather than passed over: checkpoints appear whole (see :meth:`Trainer._save`), so it was
    spoilt after the fact, and a run resumed from the one before would fail anyway when it came
    to write that step."""
    found = list_checkpoints(out_dir)
    if not found:
        return None
    problem = checkpoint_problem(found[-1])
    if problem:
        before = f"the one before, {found[-2].name}" if len(found) > 1 else "none before it"
        raise CheckpointError(f"{found[-1]}: not a complete checkpoint ({problem}); remove it to use {before}")
    return found[-1]


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _broadcast_str(s: str) -> str:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        obj = [s]
        dist.broadcast_object_list(obj, src=0)
        return obj[0]
    return s


_INTERRUPTED: list[str] = []  # what a training run stopped by an error or a signal left (interrupted_note)


def interrupted_note() -> str:
    """What an interrupted training command says of its run folder (and forgets): the
    checkpoint the same command resumes from, or that none had been written, so that what the
    run wrote was removed and the same command starts afresh. Empty when no run was stopped."""
    notes, _INTERRUPTED[:] = list(_INTERRUPTED), []
    return "".join(f"; {n}" for n in notes)


# ----------------------------------------------------------------------------- trainer
@dataclass
class Trainer:
    task: Any
    optim: OptimConfig
    train: TrainConfig
    config_dump: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        # None: an in-memory run (see the module notes)
        self.out_dir = None if self.train.out_dir is None else Path(self.train.out_dir)
        self.history: list[dict[str, Any]] = []  # an in-memory run's log lines
        self.rank, self.world_size, _ = launch()
        self.device = torch.device(resolve_device(self.train.device))
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        init_distributed(self.train.engine, self.device)
        self.rank, self.world_size, _ = launch()
        self.step = 0
        self.tokens_seen = 0
        self.elapsed_before = 0.0  # training seconds of the runs a resume continues (log's elapsed_s)
        self.started = time.time()
        self.resumed_validation: dict[str, Any] | None = None  # logged at the step resumed from

    # ---------------------------------------------------------------- checkpointing
    def _save(self) -> None:
        """Write a checkpoint into ``step_N.tmp`` (one name for every rank) and rename it whole.
        A save stopped part-way (an error, Ctrl-C, SIGTERM: :func:`resm.utils.io.on_abort`)
        removes its folder; one left by a killed run goes at the next save."""
        final = self.out_dir / "checkpoints" / f"step_{self.step:08d}"
        tmp = final.with_name(final.name + ".tmp")

        def drop() -> None:
            if self.rank == 0:
                shutil.rmtree(tmp, ignore_errors=True)

        try:
            with on_abort(drop):
                self._save_into(tmp, final)
        except BaseException:
            drop()
            raise

    def _save_into(self, tmp: Path, final: Path) -> None:
        if self.rank == 0:
            for stale in final.parent.glob("*.tmp") if final.parent.exists() else ():
                shutil.rmtree(stale, ignore_errors=True)  # left by a run killed mid-save
            tmp.mkdir(parents=True)
        _barrier()
        self.engine.save(tmp, {})
        save_trainer_state(
            tmp,
            self.rank,
            {
                "step": self.step,
                "tokens_seen": self.tokens_seen,
                "elapsed_s": self._elapsed(),
                "data": self.stream.state_dict(),
                "rng": rng_state(),
                "mask_rng": generator_state(self.generator),
                "window": {k: v for k, v in self.window.items() if k not in ("t0", "timed")},
                "fingerprint": self.task.fingerprint(),
                "settings": self._settings(),
                "world_size": self.world_size,
                "engine": self.engine.name,
            },
        )
        _barrier()
        if self.rank == 0:
            (tmp / "config.json").write_text(json.dumps(self.config_dump, indent=2, default=str))
            os.replace(tmp, final)  # the checkpoint appears whole or not at all
            for old in list_checkpoints(self.out_dir)[: -self.train.keep_last]:
                shutil.rmtree(old, ignore_errors=True)
        _barrier()

    def _elapsed(self) -> float:
        """Wall seconds of training: this run's, and those of the runs it resumes (a resumed run's
        ``elapsed_s`` goes on from its checkpoint's, where it started again from 0)."""
        return self.elapsed_before + (time.time() - self.started)

    # settings of optim/train that a resume may not change silently (the rest is bookkeeping)
    BOOKKEEPING = (
        "out_dir",
        "max_minutes",
        "log_every",
        "val_every",
        "ckpt_every",
        "keep_last",
        "device",
        "progress",
        "activation_checkpointing",
        "trust_checkpoint",
        "resume_changed",
    )

    def _settings(self) -> dict[str, Any]:
        train = {k: v for k, v in asdict(self.train).items() if k not in self.BOOKKEEPING}
        return jsonable({"optim": asdict(self.optim), "train": train})

    def _resume(self) -> bool:
        """Continue from the newest checkpoint, if any. Everything is checked before anything
        is written: the trainer state, the engine, the task's fingerprint (a change there is
        refused) and the optim/train settings (a change is refused unless
        ``train.resume_changed``; then the new values apply and the change is logged)."""
        newest = newest_checkpoint(self.out_dir)
        path = _broadcast_str(str(newest) if newest else "")
        if not path:
            return False
        folder = Path(path)
        state = load_trainer_state(folder, self.rank, self.train.trust_checkpoint)
        if state["engine"] != self.engine.name or state["world_size"] != self.world_size:
            raise ConfigError(
                f"{folder}: written by engine {state['engine']} with {state['world_size']} process(es), "
                f"cannot resume with {self.engine.name} and {self.world_size}"
            )
        fixed = changes(state["fingerprint"], self.task.fingerprint(), ignore=("trust_checkpoint",))
        if fixed:
            raise ConfigError(
                f"cannot resume {self.out_dir}: {', '.join(fixed)} differ{'s' if len(fixed) == 1 else ''} "
                f"from its checkpoint {folder.name} (use a new train.out_dir)"
            )
        changed = changes(state["settings"], self._settings()) if "settings" in state else []
        if changed and not self.train.resume_changed:
            raise ConfigError(
                f"cannot resume {self.out_dir}: {', '.join(changed)} differ{'s' if len(changed) == 1 else ''} "
                f"from its checkpoint {folder.name} (use a new train.out_dir, or "
                "train.resume_changed=true to accept)"
            )
        if int(state["step"]) > self.train.max_steps:  # only train.resume_changed lets it differ
            raise ConfigError(
                f"cannot resume {self.out_dir}: train.max_steps {self.train.max_steps} is below the step "
                f"{state['step']} of its checkpoint {folder.name} (use a new train.out_dir)"
            )
        self.engine.load(folder)
        if changed:
            self._apply_optim(int(state["step"]))
        self.step = int(state["step"])
        self.tokens_seen = int(state["tokens_seen"])
        self.elapsed_before = float(state.get("elapsed_s", 0.0))  # absent in states written before it was kept
        self.stream.load_state_dict(state["data"])
        set_rng_state(state["rng"])
        set_generator_state(self.generator, state["mask_rng"])
        if "window" in state:  # absent in states written before it was kept
            self.window = self._restored_window(state["window"], state["file"])
        done = None
        if self.rank == 0:
            import sys

            print(f"resm: resumed from step {self.step} ({folder})", file=sys.stderr)
            done = self._truncate_log(self.step)
            if changed:
                print(f"resm: resuming from {folder} with changed settings: {', '.join(changed)}", file=sys.stderr)
                self._log({"split": "resume", "step": self.step, "changed": changed})
                atomic_write_text(self.out_dir / "config.json", json.dumps(self.config_dump, indent=2, default=str))
        # the validation the checkpoint's step already logged (a finished run re-run): not run and
        # logged again; every process agrees, as validation is collective
        done = json.loads(_broadcast_str(json.dumps(done) if self.rank == 0 else ""))
        self.resumed_validation = done
        return True

    def _apply_optim(self, step: int) -> None:
        """After a resume with changed settings: the new optimiser settings replace the ones
        the checkpoint restored (the schedule is rebuilt from the config already)."""
        o, sched = self.optim, self.engine.scheduler
        groups = self.engine.optimizer.param_groups
        for k, g in enumerate(groups):
            g["initial_lr"] = o.lr
            g["betas"], g["eps"] = tuple(o.betas), o.eps
            if k == 0:  # param_groups(): the decayed group first, then norms and biases
                g["weight_decay"] = o.weight_decay
        sched.base_lrs = [o.lr] * len(groups)
        factor = lr_lambda(o, self.train.max_steps)(step)
        for g in groups:
            g["lr"] = o.lr * factor
        sched._last_lr = [g["lr"] for g in groups]
        self.engine.max_grad_norm = o.max_grad_norm

    # ---------------------------------------------------------------- logging
    @staticmethod
    def _new_window(loss: float = 0.0, n: int = 0, tokens: int = 0, parts: dict | None = None) -> dict[str, Any]:
        """The micro-batches since the last train log line: their summed losses, count and
        tokens (and a joint run's per-task sums). A checkpoint keeps it, so the first line
        after a resume, and ``tokens_seen``, are those of the run that was not stopped."""
        w: dict[str, Any] = {"loss": loss, "n": n, "tokens": tokens, "t0": time.time(), "timed": 0}
        if parts:
            w["parts"] = parts
        return w

    def _restored_window(self, w: Any, where: str) -> dict[str, Any]:
        """The window a checkpoint kept (tokens per second then count from the resume on)."""
        try:
            parts = {str(k): (float(t), int(n)) for k, (t, n) in w.get("parts", {}).items()}
            return self._new_window(float(w["loss"]), int(w["n"]), int(w["tokens"]), parts)
        except (AttributeError, KeyError, TypeError, ValueError):
            raise CheckpointError(f"{where}: not a complete trainer state (unusable 'window')") from None

    def _truncate_log(self, step: int) -> dict[str, Any] | None:
        """Drop log lines past the checkpoint being resumed: they are about to be redone. A
        line that is not JSON (cut off by a crash mid-write) is dropped with a warning. Returns
        the metrics of the validation logged at ``step``, if one was."""
        log = self.out_dir / "log.jsonl"
        if not log.exists():
            return None
        keep, bad, done = [], [], None
        for n, ln in enumerate(log.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not ln.strip():
                continue
            try:
                rec = load_json(ln)
                past = int(rec["step"]) > step
            except (ValueError, KeyError, TypeError):
                bad.append(n)
                continue
            if not past:
                keep.append(ln)
            if not past and int(rec["step"]) == step and rec.get("split") == "validation":
                done = {k: v for k, v in rec.items() if k not in ("split", "step")}
        if bad:
            import sys

            print(
                f"resm: warning: {log}: dropped line{'s' if len(bad) > 1 else ''} "
                f"{', '.join(map(str, bad))}, not complete JSON (cut off by a crash?)",
                file=sys.stderr,
            )
        atomic_write_text(log, "".join(k + "\n" for k in keep))
        return done

    def _log(self, record: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        if self.out_dir is None:
            self.history.append(record)
            return
        with open(self.out_dir / "log.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.tb.add_scalar(f"{record.get('split', 'train')}/{k}", v, record["step"])

    @staticmethod
    def _shown(record: dict[str, Any]) -> dict[str, str]:
        """A train log line as the progress bar shows it: loss, perplexity, tokens/s, learning
        rate and gradient norm."""
        return {
            "loss": f"{record['loss']:.3f}",
            "ppl": f"{record['ppl']:.2f}",
            "tok/s": f"{record['tokens_per_s']:.0f}",
            "lr": f"{record['lr']:.2e}",
            "gnorm": f"{record['grad_norm']:.2f}",
        }

    def _validate(self) -> dict[str, float]:
        model = self.engine.module
        model.eval()
        with torch.no_grad(), self.engine.autocast():
            metrics = self.task.validate(model, self.device)
        model.train()
        metrics = _all_mean(metrics)
        self._log({"split": "validation", "step": self.step, **metrics})
        return metrics

    # ---------------------------------------------------------------- loop
    def fit(self) -> dict[str, Any]:
        """Train (resuming from the newest checkpoint, if any) and write the final model.

        The run folder is written as the run goes (checkpoints, log, final model), even inside
        a :func:`resm.utils.io.transaction`. A run that fails before its first checkpoint
        removes what it wrote, and the folder itself if it created it. The folder is locked for
        the run (:meth:`_lock`): a second run into it at once is refused.

        With no run folder (``train.out_dir`` None) the run is in memory: it starts afresh,
        writes nothing, leaves the trained weights in the task's model and returns its log lines
        as ``log``."""
        if self.out_dir is None:
            result = {**self._fit(), "log": self.history}
        else:
            if os.path.lexists(self.out_dir) and not self.out_dir.is_dir():
                raise ConfigError(f"train.out_dir {self.out_dir}: is a file, not a folder")
            self._check_run_folder()
            existed = self._lock()
            try:
                result = self._fit_locked(existed)
            finally:
                if self._lock_fd is not None:
                    os.close(self._lock_fd)  # the lock goes with it (and with the process, however it ends)
        o = self.optim
        if self.rank == 0 and o.warmup_steps and o.warmup_steps >= self.train.max_steps:  # said once the run is through
            print(
                f"resm: warning: optim.warmup_steps {o.warmup_steps} >= train.max_steps {self.train.max_steps}: "
                f"the warm-up never ended, so the learning rate never reached optim.lr {o.lr} (it stopped at "
                f"{float(o.lr) * self.train.max_steps / o.warmup_steps:.3g})",
                file=sys.stderr,
                flush=True,
            )
        return result

    def _lock(self) -> bool:
        """Hold an exclusive lock on the run folder (rank 0; the folder is created here when
        absent); return whether it existed. A run writing into the folder already holds it: two
        runs at once resumed from each other's checkpoints, interleaved their logs and failed on
        a checkpoint both wrote ('Directory not empty'). The lock is on the folder itself, so
        nothing is written for it, and it is released when the process ends, killed or not."""
        self._lock_fd = None
        if self.rank != 0:
            return self.out_dir.is_dir()
        import fcntl

        try:
            self.out_dir.mkdir(parents=True)
            existed = False
        except FileExistsError:
            existed = True
        fd = os.open(self.out_dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # the folder is the other run's: nothing of it is removed
            raise ConfigError(
                f"train.out_dir {self.out_dir}: another run is writing into it (wait for it to end, "
                "or give another train.out_dir)"
            ) from None
        self._lock_fd = fd
        return existed

    def _fit_locked(self, existed: bool) -> dict[str, Any]:
        before = set(self.out_dir.iterdir()) if existed else set()

        def undo_start() -> None:  # on an error, and on SIGTERM at the command line (on_abort)
            if self.rank == 0:
                kept = list_checkpoints(self.out_dir)
                _INTERRUPTED[:] = [
                    f"run the same command again to resume from {kept[-1]}"
                    if kept
                    else f"no checkpoint had been written, so what the run wrote in {self.out_dir} was removed "
                    "(the same command starts it afresh)"
                ]
            if self.rank == 0 and not list_checkpoints(self.out_dir):
                if not existed:
                    shutil.rmtree(self.out_dir, ignore_errors=True)
                elif self.out_dir.is_dir():
                    for p in set(self.out_dir.iterdir()) - before:
                        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)

        _INTERRUPTED.clear()
        try:
            with suspended(), on_abort(undo_start):
                return self._fit()
        except BaseException:
            undo_start()
            raise

    def _refuse_diverged(self) -> None:
        """Before the final model is written: a weight holding NaN or an infinity (a run that
        diverged) is refused, naming it. Such a model gave NaN everywhere, yet the run ended
        with exit 0 and wrote it; the checkpoints stay, as after any stopped run."""
        with trained_weights(self.engine) as state:  # a collective: every process checks
            bad = _broadcast_str(non_finite(state) or "")
        if bad:
            raise ConfigError(
                f"training diverged: weight {bad} holds NaN or infinite values at step {self.step}, so the "
                f"final model was not written (see the loss in {self.out_dir / 'log.jsonl'}; lower optim.lr)"
            )

    def _check_run_folder(self) -> None:
        """Every entry of the run folder the run writes (the loop's, :data:`RUN_ENTRIES`, and
        the task's final model, ``Task.outputs``) can be written: one of the wrong kind (a file
        where the checkpoints folder goes, a folder of other files where the bundle goes) is
        refused before the first step, not after the last."""
        outputs = getattr(self.task, "outputs", None)
        entries = [(self.out_dir / name, kind, None) for name, kind in RUN_ENTRIES]
        for path, kind, earlier in entries + (list(outputs(self.out_dir)) if outputs else []):
            check_output(path, kind, earlier=earlier)

    def _fit(self) -> dict[str, Any]:
        t = self.train
        torch.manual_seed(t.seed)
        np.random.seed(t.seed)
        random.seed(t.seed)
        self.generator = torch.Generator().manual_seed(t.seed * 1000 + self.rank)
        model = self.task.model
        if t.activation_checkpointing:
            for m in model.modules():
                if hasattr(m, "gradient_checkpointing"):
                    m.gradient_checkpointing = True
        cls = DeepSpeedEngine if t.engine == "deepspeed" else TorchEngine
        # a task whose steps leave some trained parameters out (a joint run: one head a batch)
        self.engine = cls(
            model, self.optim, t, self.device, unused=bool(getattr(self.task, "unused_parameters", False))
        )
        self.task.progress = bool(t.progress and self.rank == 0)  # the task's own bars (its data) follow train.progress
        self.stream = self.task.train_stream(self.rank, self.world_size)
        self.tb = None
        self.window = self._new_window()
        disk = self.out_dir is not None  # not an in-memory run
        resumed = disk and self._resume()  # reads and checks everything before the first write
        if self.rank == 0:  # the task's warnings on its data, once nothing is refused
            for line in getattr(self.task, "notes", list)():
                print(line, file=sys.stderr, flush=True)
        if disk:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.rank == 0 and disk and not resumed:
            atomic_write_text(self.out_dir / "config.json", json.dumps(self.config_dump, indent=2, default=str))
        if self.rank == 0 and disk:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.out_dir / "tensorboard"))
            except ImportError:
                pass
        self.engine.module.train()
        batches: Iterator = iter(self.stream)
        start = self.started = time.time()
        window = self.window
        window["t0"] = time.time()
        bar = tqdm(
            total=t.max_steps, initial=self.step, desc="train", unit="step", disable=not (t.progress and self.rank == 0)
        )
        last: dict[str, Any] = {}
        shown: dict[str, str] = {}
        last_val: dict[str, Any] = {}
        last_val_step = -1
        if resumed and self.resumed_validation is not None:
            last_val, last_val_step = self.resumed_validation, self.step
        stop_for_time = False
        while self.step < t.max_steps:
            for _ in range(t.grad_accum):
                batch = next(batches)
                with self.engine.autocast():
                    loss, info = self.task.loss(self.engine.model, batch, self.generator, self.device)
                self.engine.backward(loss)
                window["loss"] += float(loss.detach())
                window["n"] += 1
                window["tokens"] += int(info.get("tokens", 0))
                window["timed"] += int(info.get("tokens", 0))
                for k, v in info.items():  # a joint run's per-task losses (loss_<task>)
                    if k.startswith("loss_"):
                        parts = window.setdefault("parts", {})
                        parts[k] = (parts.get(k, (0.0, 0))[0] + float(v), parts.get(k, (0.0, 0))[1] + 1)
            lr = self.engine.lr  # the rate this step uses
            gnorm = self.engine.step()
            self.step += 1
            bar.update(1)
            if t.log_every and self.step % t.log_every == 0:
                stats = _all_mean(
                    {"loss": window["loss"] / window["n"], "tokens": window["tokens"], "n_timed": window["timed"]}
                )
                dt = time.time() - window["t0"]
                self.tokens_seen += int(stats["tokens"])
                last = {
                    "split": "train",
                    "step": self.step,
                    "loss": stats["loss"],
                    "ppl": math.exp(min(stats["loss"], 50)),
                    "tokens_per_s": stats["n_timed"] / max(dt, 1e-9),
                    "lr": lr,
                    "grad_norm": gnorm,
                    "tokens_seen": self.tokens_seen,
                    "elapsed_s": self._elapsed(),
                }
                # this rank's mean of each sub-task's loss over the window (joint runs)
                last.update({k: total / n for k, (total, n) in sorted(window.get("parts", {}).items())})
                self._log(last)
                shown.update(self._shown(last))  # what log.jsonl gets, on the console too
                bar.set_postfix(shown)
                window = self.window = self._new_window()
            if t.val_every and self.step % t.val_every == 0:
                last_val, last_val_step = self._validate(), self.step
                if last_val.get("val_loss") is not None:  # the last validation's, until the next
                    shown["val_loss"] = f"{float(last_val['val_loss']):.3f}"
                    bar.set_postfix(shown)
            if t.max_minutes is not None:
                over = (time.time() - start) / 60 > t.max_minutes
                stop_for_time = bool(_broadcast_str("1" if over else ""))
            if disk and ((t.ckpt_every and self.step % t.ckpt_every == 0) or stop_for_time):
                self._save()
            if stop_for_time:
                break
        bar.close()
        final_val = self._validate() if t.val_every and self.step != last_val_step else last_val
        # short of max_steps: train.max_minutes ran out (the same command resumes)
        end = {"step": self.step, "max_steps": t.max_steps, "out_of_time": self.step < t.max_steps}
        if not disk:  # in memory: the weights stay in the task's model
            return {**end, "train": last, "validation": final_val}
        if not list_checkpoints(self.out_dir) or list_checkpoints(self.out_dir)[-1].name != f"step_{self.step:08d}":
            self._save()
        self._refuse_diverged()
        if hasattr(self.task, "finish"):
            with trained_weights(self.engine):
                self.task.finish(self.engine.module, self.device)
        # gathered again: under ZeRO-3 the forward passes of finish may have partitioned weights
        with trained_weights(self.engine) as state:  # every process enters; rank 0 writes
            if self.rank == 0:
                self.task.save_final(self.engine.module, self.out_dir, state)
        if self.tb is not None:
            self.tb.close()
        return {**end, "train": last, "validation": final_val}


def run_task(make_task, cfg: dict[str, Any], sections: set, config_file: str | os.PathLike | None = None) -> tuple:
    """The entry point every training command shares: check the config's sections and that
    no input (``config_file`` included) lies in the run folder, build the task
    (``make_task(cfg)``) and the loop, train, and shut the process group down in order.
    Returns ``(fit result, task)``."""
    known = set(sections) | {"optim", "train", "data_dir"}
    unknown = sorted(set(config_sections(cfg)) - known)
    if unknown:
        raise ConfigError(f"unknown config section(s) {unknown}; known: {sorted(known)}")
    optim = from_dict(OptimConfig, cfg.get("optim"), "optim")
    train = from_dict(TrainConfig, cfg.get("train"), "train")
    if train.out_dir is None:
        raise ConfigError(
            "train.out_dir: a training command needs a run folder (null is for in-memory runs from Python)"
        )
    if train.engine == "deepspeed":
        read_deepspeed_config(train)
    try:  # before any work: a run folder that cannot be written fails now, not after loading
        check_output(train.out_dir, "dir")
    except OutputError as e:
        raise ConfigError(f"train.out_dir: {e}") from None
    check_inputs_outside(cfg, train.out_dir, "train.out_dir", {"--config": config_file})
    try:
        task = make_task(cfg)
    except (MemoryError, RuntimeError) as e:  # a head or model 10**9 wide was torch's error, said as unexpected
        if not allocation_failed(e):
            raise
        asked = re.search(r"allocate (\d+) bytes", str(e))
        why = f"one of its tensors needs {int(asked.group(1)) / 2**30:.1f} GiB" if asked else type(e).__name__
        raise ConfigError(
            f"the model and head the config describes do not fit in memory ({why}); check the sizes in model and head"
        ) from None
    try:
        return Trainer(task, optim, train, config_dump=config_sections(cfg)).fit(), task
    finally:
        shutdown_distributed()
