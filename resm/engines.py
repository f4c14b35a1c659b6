"""The engines of the training loop (:class:`resm.train.Trainer`): what owns the optimiser,
the learning-rate schedule, the precision and the engine's checkpoint files. :class:`TorchEngine`
(plain torch, DistributedDataParallel over several processes) and :class:`DeepSpeedEngine`
(ZeRO stages 0-3 from a DeepSpeed JSON, with :func:`deepspeed_settings` putting the loop's
settings into it, and :func:`refuse_stale_build_locks` run before DeepSpeed starts), the
schedule (:func:`lr_lambda`: linear warm-up, then cosine or linear decay), AdamW's parameter
groups (:func:`param_groups`) and :func:`trained_weights`, the one home of a run's trained
weights as its final files hold them."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .backbone.load import CheckpointError, non_finite
from .config import ConfigError
from .train_config import OptimConfig, TrainConfig
from .train_state import guarded_torch_load, load_engine_state
from .utils.device import launch
from .utils.jsontext import load_json

HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}  # train.precision -> its dtype


# ----------------------------------------------------------------------------- schedule
def lr_lambda(cfg: OptimConfig, max_steps: int):
    """The factor of ``optim.lr`` that optimiser step ``step + 1`` uses (``step``: the steps
    already taken, as ``LambdaLR`` counts them). Steps 1 .. W (W = ``warmup_steps``) rise
    linearly to the peak, ``s / W``; steps W + 1 .. ``max_steps`` decay with ``t = (s - W) /
    (max_steps - W)``, so the peak is used once, by step W, and the last step uses exactly
    ``min_lr_ratio``."""

    def f(step: int) -> float:
        s = step + 1  # the 1-based number of the step this factor is for
        if cfg.warmup_steps and s <= cfg.warmup_steps:
            return s / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        span = max(1, max_steps - cfg.warmup_steps)
        t = min(1.0, (s - cfg.warmup_steps) / span)
        decay = 0.5 * (1 + math.cos(math.pi * t)) if cfg.schedule == "cosine" else 1 - t
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * decay

    return f


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    seen = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


# ----------------------------------------------------------------------------- engines
class TorchEngine:
    """Plain torch: one process, or DistributedDataParallel under torchrun."""

    name = "torch"

    def __init__(self, model, optim: OptimConfig, train: TrainConfig, device, unused: bool = False):
        self.device = device
        self.module = model.to(device)
        self.model = model
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [device.index] if device.type == "cuda" else None
            self.model = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)
        self.optimizer = torch.optim.AdamW(
            param_groups(model, optim.weight_decay), lr=optim.lr, betas=optim.betas, eps=optim.eps
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(optim, train.max_steps))
        self.max_grad_norm = optim.max_grad_norm
        self.grad_accum = train.grad_accum
        self.autocast_dtype = HALF.get(train.precision)
        if self.autocast_dtype is torch.float16:
            raise ConfigError("precision fp16 needs engine deepspeed (loss scaling); use bf16")

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def backward(self, loss: torch.Tensor) -> None:
        (loss / self.grad_accum).backward()

    def step(self) -> float:
        params = [p for p in self.module.parameters() if p.grad is not None]
        if self.max_grad_norm:
            norm = torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        else:
            norm = torch.norm(torch.stack([p.grad.norm() for p in params])) if params else torch.tensor(0.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def save(self, folder: Path, client: dict) -> None:
        if launch().rank == 0:
            torch.save(
                {
                    "model": self.module.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                },
                folder / "engine.pt",
            )

    def load(self, folder: Path) -> None:
        """Restore ``engine.pt``. What does not fit this run's model, optimiser or schedule (a
        file of another run, or edited) is one line naming the file, found before the first
        step: torch's own errors named neither, and an optimiser state of other shapes failed
        only at the first step, after the run folder's log had been rewritten."""
        path = folder / "engine.pt"
        state = load_engine_state(path, self.device)
        problem = _engine_state_problem(state, self.module, self.optimizer)
        if problem:
            raise CheckpointError(f"{path}: {problem}")
        try:
            self.module.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (AttributeError, KeyError, RuntimeError, TypeError, ValueError) as e:
            why = " ".join(str(e).split())
            raise CheckpointError(
                f"{path}: does not fit this run's model, optimiser or schedule ({why[:200] or type(e).__name__})"
            ) from None

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def whole(self):
        """A block in which the module holds its whole weights (they always do here)."""
        return contextlib.nullcontext()


def _engine_state_problem(state: dict[str, Any], module: torch.nn.Module, optimizer: Any) -> str | None:
    """Why the plain engine's saved ``state`` cannot be restored into ``module`` and
    ``optimizer``, or None: weights that are not finite (a diverged run), an optimiser or
    schedule state that is no mapping, or a per-parameter optimiser tensor of another shape
    than its parameter."""
    model, opt, sched = state["model"], state["optimizer"], state["scheduler"]
    if not isinstance(model, dict) or not isinstance(opt, dict) or not isinstance(sched, dict):
        return "the model, optimizer and scheduler entries are not all mappings"
    bad = non_finite(model)
    if bad is not None:
        return f"weight {bad} holds NaN or infinite values (did the training diverge?)"
    groups, saved = opt.get("param_groups"), opt.get("state")
    if not isinstance(groups, list) or not isinstance(saved, dict):
        return "not an optimiser state (param_groups, state)"
    params = [p for g in optimizer.param_groups for p in g["params"]]
    ids = [i for g in groups if isinstance(g, dict) for i in g.get("params", ())]
    if len(ids) != len(params):
        return f"its optimiser state holds {len(ids)} parameters, this run's model {len(params)}"
    for i, p in zip(ids, params, strict=True):
        for k, v in (saved.get(i) or {}).items():
            if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != p.shape:
                return (
                    f"optimiser state {k} of parameter {i} has shape {tuple(v.shape)}, the parameter {tuple(p.shape)}"
                )
    return None


def read_deepspeed_config(train: TrainConfig) -> dict[str, Any]:
    """The DeepSpeed JSON of ``train.deepspeed_config``; a one-line ConfigError naming it."""
    if not train.deepspeed_config:
        raise ConfigError("engine deepspeed needs train.deepspeed_config (see configs/deepspeed/)")
    try:
        ds_cfg = load_json(Path(train.deepspeed_config).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as e:
        why = getattr(e, "strerror", None) or " ".join(str(e).split())
        raise ConfigError(f"train.deepspeed_config {train.deepspeed_config}: unreadable JSON ({why})") from None
    if not isinstance(ds_cfg, dict):
        raise ConfigError(f"train.deepspeed_config {train.deepspeed_config}: not a JSON object")
    zero = ds_cfg.get("zero_optimization", {})
    if not isinstance(zero, dict):
        raise ConfigError(
            f"train.deepspeed_config {train.deepspeed_config}: zero_optimization must be a JSON object, "
            f"got {json.dumps(zero)}"
        )
    import pydantic
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig

    try:  # DeepSpeed's own rules for the section (stage 0-3, offload devices), before any model is built
        DeepSpeedZeroConfig(**zero)
    except pydantic.ValidationError as e:
        raise deepspeed_refusal(train, e, "zero_optimization") from None
    return ds_cfg


def deepspeed_refusal(train: TrainConfig, error: Any, section: str = "") -> ConfigError:
    """DeepSpeed's refusal of its config (a pydantic ValidationError: a traceback of several
    lines naming neither the file nor the section) as one line naming both and the key."""
    first = error.errors()[0]
    key = ".".join([section] * bool(section) + [str(k) for k in first["loc"]])
    return ConfigError(
        f"train.deepspeed_config {train.deepspeed_config}: {key or 'the config'}: {first['msg']} "
        f"(got {json.dumps(first.get('input'), default=str)})"
    )


def deepspeed_settings(ds_cfg: dict[str, Any], optim: OptimConfig, train: TrainConfig, device) -> dict[str, Any]:
    """The DeepSpeed config a run uses: ``ds_cfg`` (the JSON) with the loop's settings put in
    (gradient accumulation and clipping, micro-batches of one token budget) and the precision
    that ``train.precision`` names. On a GPU ``precision`` alone decides: the shipped JSONs
    enable bf16, which must not survive a ``precision: fp32`` run, nor sit beside fp16 (DeepSpeed
    refuses both at once). CPU runs get neither."""
    ds_cfg = dict(ds_cfg)
    ds_cfg.setdefault("train_micro_batch_size_per_gpu", 1)  # batches are token budgets
    ds_cfg["gradient_accumulation_steps"] = train.grad_accum
    ds_cfg.pop("train_batch_size", None)
    ds_cfg["gradient_clipping"] = optim.max_grad_norm
    ds_cfg.setdefault("steps_per_print", 10**9)
    for key in ("bf16", "fp16"):
        section = ds_cfg.pop(key, None)
        if torch.device(device).type == "cuda" and train.precision == key:  # CPU: no half precision
            ds_cfg[key] = {**(section if isinstance(section, dict) else {}), "enabled": True}
    return ds_cfg


class StaleBuildLock(ValueError):
    """A DeepSpeed op's build lock that no process holds (one line naming the file)."""


def _extensions_root() -> Path:
    """Where torch builds C++ extensions, DeepSpeed's ops among them, as
    ``torch.utils.cpp_extension`` chooses it: ``$TORCH_EXTENSIONS_DIR``, else
    ``~/.cache/torch_extensions/py<version>_<cpu|cuXY|rocmXY>``."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root is not None:
        return Path(root)
    from torch.utils.cpp_extension import get_default_build_root

    hip, cuda = torch.version.hip, torch.version.cuda
    accel = f"rocm{hip.replace('.', '')}" if hip else f"cu{cuda.replace('.', '')}" if cuda else "cpu"
    py = f"py{sys.version_info.major}{sys.version_info.minor}{getattr(sys, 'abiflags', '')}"
    return Path(get_default_build_root()) / f"{py}_{accel}"


def _held_open(path: Path) -> bool | None:
    """Whether a process of this machine (one this user may look into) has ``path`` open, from
    ``/proc/<pid>/fd``; None where there is no ``/proc`` to tell."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    target = os.path.realpath(path)
    for fds in proc.glob("[0-9]*/fd"):
        try:
            entries = list(fds.iterdir())
        except OSError:  # another user's process, or one that ended
            continue
        for fd in entries:
            with contextlib.suppress(OSError):  # a descriptor closed since (the listing's own)
                if os.readlink(fd) == target:
                    return True
    return False


STALE_LOCK_GRACE_S = 3.0
"""How long a lock no process holds must stay before it is judged stale: a build ending closes
its lock and then removes it, and a start that looked in between saw a lock nobody held."""


def _stale(lock: Path) -> bool:
    """Whether ``lock`` stays, held by no process, for :data:`STALE_LOCK_GRACE_S`."""
    deadline = time.monotonic() + STALE_LOCK_GRACE_S
    while os.path.lexists(lock) and _held_open(lock) is False:
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.1)
    return False


def refuse_stale_build_locks() -> None:
    """Refuse (:class:`StaleBuildLock`) to start DeepSpeed while one of its ops' build folders
    holds a ``lock`` no process holds. DeepSpeed builds an op it lacks (on a CPU,
    ``deepspeed_shm_comm`` when it starts, ``cpu_adam`` for an offloaded optimiser) through
    torch's ``cpp_extension``, whose lock (``torch.utils.file_baton.FileBaton``) is a file
    created exclusively and held open by the building process, removed when the build ends;
    another process waits while it exists, with no time limit. A build killed (SIGKILL, the
    OOM killer) leaves it behind, and every later start waited forever. The file holds no
    process id, but a build in progress has it open: one that no process of this machine has
    open for a few seconds (:data:`STALE_LOCK_GRACE_S`; a build ending closes it just before
    removing it) is stale. It is not removed here: a build on another machine sharing the folder (a
    network home) cannot be seen from this one, so the user, told the file, removes it. Without
    ``/proc`` nothing is judged."""
    root = _extensions_root()
    try:
        from deepspeed.git_version_info import installed_ops  # every op DeepSpeed may build
    except ImportError:
        return
    for op in sorted(installed_ops):
        lock = root / op / "lock"
        if os.path.lexists(lock) and _stale(lock):
            raise StaleBuildLock(
                f"{lock}: a lock left by a build of DeepSpeed's {op} op that was stopped (no process holds it); "
                "DeepSpeed would wait for it forever: delete it (if no build runs on another machine sharing "
                "this folder) and start again"
            )


class DeepSpeedEngine:
    """DeepSpeed ZeRO (stage from the JSON config), our AdamW and schedule as client objects."""

    name = "deepspeed"

    def __init__(self, model, optim: OptimConfig, train: TrainConfig, device, unused: bool = False):
        ds_cfg = deepspeed_settings(read_deepspeed_config(train), optim, train, device)
        self.trust = train.trust_checkpoint
        import deepspeed

        self.device = device
        offload = (ds_cfg.get("zero_optimization", {}).get("offload_optimizer") or {}).get("device") == "cpu"
        if offload:
            from deepspeed.ops.adam import DeepSpeedCPUAdam

            opt = DeepSpeedCPUAdam(
                param_groups(model, optim.weight_decay), lr=optim.lr, betas=optim.betas, eps=optim.eps, adamw_mode=True
            )
        else:
            opt = torch.optim.AdamW(
                param_groups(model, optim.weight_decay), lr=optim.lr, betas=optim.betas, eps=optim.eps
            )
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(optim, train.max_steps))
        # DeepSpeed casts the model to bf16/fp16 itself, but not a batch's float inputs (a
        # head's pair features, priors): autocast casts them where a layer meets them
        self.autocast_dtype = next((HALF[k] for k in HALF if ds_cfg.get(k, {}).get("enabled")), None)
        # frozen weights and buffers have no fp32 master and the cast rounds them: kept (host)
        half = self.autocast_dtype is not None
        named = [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
        self.frozen = {n: t.detach().to("cpu", copy=True) for n, t in named if half and not t.requires_grad}
        import pydantic

        try:
            self.model, self.optimizer, _, self.scheduler = deepspeed.initialize(
                model=model, optimizer=opt, lr_scheduler=sched, config=ds_cfg
            )
        except pydantic.ValidationError as e:  # a section other than zero_optimization
            raise deepspeed_refusal(train, e) from None
        self.module = self.model.module

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def backward(self, loss: torch.Tensor) -> None:
        """One micro-batch's backward pass. DeepSpeed counts micro-batches in its ``step``,
        which it expects after each of them (it updates the weights at the last of
        ``grad_accum``): called once a step, it updated them every ``grad_accum`` steps only,
        and the schedule moved as slowly. So it is called here for every micro-batch but the
        last, and by :meth:`step` for the last."""
        self.model.backward(loss)
        if not self.model.is_gradient_accumulation_boundary():
            self.model.step()

    def step(self) -> float:
        self.model.step()
        # ZeRO-3 keeps each parameter's gradient partition in one flat buffer that it
        # overwrites (first micro-batch) or adds to (the others) only for the parameters that
        # had a gradient: one without (a joint run's head that a step does not train) kept the
        # last one it had, and the next step used it again (a resumed run, its buffer new, did
        # not). Emptied after each step, such a parameter's gradient is zero, as under ZeRO 0-2.
        flat = getattr(self.model.optimizer, "grad_partitions_flat_buffer", None)
        if torch.is_tensor(flat):
            flat.zero_()
        norm = self.model.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def save(self, folder: Path, client: dict) -> None:
        self.model.save_checkpoint(str(folder), tag="ds", save_latest=False)

    def load(self, folder: Path) -> None:
        with guarded_torch_load(self.trust):
            path, _ = self.model.load_checkpoint(str(folder), tag="ds")
        if path is None:
            raise ConfigError(f"{folder}: DeepSpeed could not load its checkpoint")

    def whole(self):
        """A block in which the module holds its whole weights: under ZeRO-3 each process holds
        a partition only (empty tensors in the module), so they are gathered (every process
        enters the block; what it changes is not kept)."""
        if not self.model.zero_optimization_partition_weights():
            return contextlib.nullcontext()
        import deepspeed

        return deepspeed.zero.GatheredParameters(list(self.module.parameters()), modifier_rank=None)

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """Consolidated fp32 weights (gathers ZeRO-3 partitions). In a bf16/fp16 run the
        module's own weights are rounded copies: every trained parameter is taken from the
        optimiser's fp32 master weights instead, as ``resm export`` (``zero_to_fp32``) reads them
        (a collective under ZeRO: every process calls this), and every frozen one and every
        buffer is the value it had before DeepSpeed cast it (a bundle's backbone checksum is
        that of its backbone)."""
        import deepspeed

        if self.model.zero_optimization_partition_weights():
            with self.whole():
                state = {k: v.detach().clone().float() for k, v in self.module.state_dict().items()}
        else:
            state = self.module.state_dict()
        if self.autocast_dtype is None:  # fp32: the module's weights are the master weights
            return state
        state = {k: self.frozen.get(k, v).float().to(v.device) for k, v in state.items()}
        masters: dict[int, torch.Tensor | None] = {}
        for name, p in self.module.named_parameters(remove_duplicate=False):  # tied names too
            if id(p) not in masters:
                masters[id(p)] = deepspeed.utils.safe_get_full_fp32_param(p) if p.requires_grad else None
            master = masters[id(p)]
            if master is not None and name in state:
                state[name] = master.detach().float().reshape(state[name].shape).to(state[name].device)
        return state


@contextlib.contextmanager
def trained_weights(engine) -> Iterator[dict[str, torch.Tensor]]:
    """The weights a run trained (a collective: every process enters): yields the engine's
    full_state_dict (a DeepSpeed bf16/fp16 run's fp32 master weights) while its module holds
    them in place of its own (under ZeRO-3 gathered), put back after. A run's final files read
    them from either: model.pt, a structure model, a bundle's adapter, heads, backbone checksum
    and the last validation that goes into it (in fp32, as the weights written)."""
    state, module, own = engine.full_state_dict(), engine.module, {}
    with engine.whole():
        try:
            for name, t in [*module.named_parameters(remove_duplicate=False), *module.named_buffers()]:
                if name in state and id(t) not in own:  # a tied weight once
                    own[id(t)] = (t, t.data)
                    t.data = state[name].detach().to(t.device).reshape(t.shape)
            yield state
        finally:
            for t, data in own.values():
                t.data = data
