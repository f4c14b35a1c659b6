"""The files of a training checkpoint, and reading them without running code from them.

A checkpoint folder (``out_dir/checkpoints/step_XXXXXXXX/``) holds

* ``trainer_rank{r}.json`` for each process: the step, tokens seen, the training time so far
  (``elapsed_s``, which a resumed run's log goes on from), the data stream's
  position, the random states (Python's and numpy's as JSON numbers, torch's and the masking
  generator's as base64 bytes), the task's fingerprint and the ``optim``/``train`` settings
  the run was started with. Plain JSON: reading it cannot run code.
* ``engine.pt`` (plain torch engine): weights, optimiser and schedule, read with
  ``weights_only=True`` (:func:`load_engine_state`);
* ``ds/`` (DeepSpeed engine): DeepSpeed's own files. DeepSpeed unpickles them in full, so
  while it reads them (resume, and ``resm export`` through ``zero_to_fp32``)
  :func:`guarded_torch_load` makes every ``torch.load`` a ``weights_only`` one that allows,
  besides tensors and containers, only the few DeepSpeed classes those files hold
  (:data:`DEEPSPEED_GLOBALS`); anything else is refused unless the user trusts the folder.
* ``config.json``, the whole config of the run.

Checkpoints written before the JSON trainer state hold ``trainer_rank{r}.pt`` instead; it is
read with ``weights_only=True`` and numpy's array classes allowed, which is all it holds.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import pickle
import random
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .backbone.load import CheckpointError, load_failure, safe_load
from .config import ConfigError, format_version_problem
from .utils.jsontext import load_json
from .utils.paths import no_such

__all__ = [
    "STATE_FORMAT",
    "STATE_VERSION",
    "DEEPSPEED_GLOBALS",
    "TRAIN_HINT",
    "EXPORT_HINT",
    "rng_state",
    "set_rng_state",
    "save_trainer_state",
    "load_trainer_state",
    "checkpoint_problem",
    "load_engine_state",
    "guarded_torch_load",
    "jsonable",
    "changes",
]

STATE_FORMAT = "resm-trainer-state"
STATE_VERSION = 1  # the newest format version this resm writes and reads
DEEPSPEED_GLOBALS = (
    "deepspeed.runtime.fp16.loss_scaler.LossScaler",
    "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler",
    "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.utils.tensor_fragment.fragment_address",
)
TRAIN_HINT = "if you trust this run folder, set train.trust_checkpoint=true"
EXPORT_HINT = "if you trust this run folder, pass --trust-checkpoint"


# ----------------------------------------------------------------------------- random states
def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _bytes_tensor(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()


def rng_state() -> dict[str, Any]:
    """Python's, numpy's (legacy global), torch's and CUDA's random states, as JSON values; with
    CUDA, every visible GPU's state and the index of this process's own (``cuda_device``)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    gpu = torch.cuda.is_available()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": _b64(torch.get_rng_state()),
        "cuda": [_b64(s) for s in torch.cuda.get_rng_state_all()] if gpu else [],
        "cuda_device": torch.cuda.current_device() if gpu else None,
    }


def _rng_parts(s: Mapping[str, Any]) -> tuple:
    """Python's, numpy's and torch's states of :func:`rng_state`'s value ``s`` as their setters
    take them, and CUDA's list."""
    version, internal, gauss = s["python"]
    kind, keys, pos, has_gauss, cached = s["numpy"]
    t = s["torch"]
    return (
        (int(version), tuple(int(x) for x in internal), gauss),
        (kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)),
        _bytes_tensor(t) if isinstance(t, str) else t,
        [_bytes_tensor(c) if isinstance(c, str) else c for c in s.get("cuda") or ()],
    )


def set_rng_state(s: Mapping[str, Any]) -> None:
    """Restore :func:`rng_state` (or the tuples and tensors an old ``.pt`` state held). The GPUs'
    states go to the GPUs of the same index that this machine has (a run resumed with fewer
    visible GPUs than it was saved with failed: 'tuple index out of range'), and the state of the
    GPU the run used to this process's current GPU, whatever its index now."""
    py, npy, t, cuda = _rng_parts(s)
    random.setstate(py)
    np.random.set_state(npy)
    torch.set_rng_state(t)
    if cuda and torch.cuda.is_available():
        for i, state in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, i)
        used = s.get("cuda_device")
        if isinstance(used, int) and not isinstance(used, bool) and 0 <= used < len(cuda):
            torch.cuda.set_rng_state(cuda[used], torch.cuda.current_device())


def _rng_problem(s: Any, generator: Any) -> str | None:
    """Why ``s`` (``rng``) or ``generator`` (``mask_rng``) cannot be restored, or None: both are
    tried on fresh generators, so a damaged state is found before anything is restored."""
    try:
        py, npy, t, _ = _rng_parts(s)
        random.Random().setstate(py)
        np.random.RandomState().set_state(npy)
        torch.Generator().set_state(t)
    except Exception as e:  # of any kind: the values are whatever the file held
        return f"'rng' ({_first_line(e)})"
    try:
        torch.Generator().set_state(_bytes_tensor(generator) if isinstance(generator, str) else generator)
    except Exception as e:
        return f"'mask_rng' ({_first_line(e)})"
    return None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def generator_state(g: torch.Generator) -> str:
    return _b64(g.get_state())


def set_generator_state(g: torch.Generator, s) -> None:
    g.set_state(_bytes_tensor(s) if isinstance(s, str) else s)


# ----------------------------------------------------------------------------- trainer state
def jsonable(x: Any) -> Any:
    """``x`` as it reads back from JSON (tuples become lists, ...)."""
    return json.loads(json.dumps(x, default=str))


def save_trainer_state(folder: Path, rank: int, state: dict[str, Any]) -> Path:
    path = Path(folder) / f"trainer_rank{rank}.json"
    path.write_text(
        json.dumps({"format": STATE_FORMAT, "version": STATE_VERSION, **state}, default=str), encoding="utf-8"
    )
    return path


_NEEDED = ("step", "tokens_seen", "data", "rng", "mask_rng", "fingerprint", "world_size", "engine")


def load_trainer_state(folder: Path, rank: int, trust: bool = False, hint: str = TRAIN_HINT) -> dict[str, Any]:
    """The trainer state of ``rank`` in checkpoint ``folder`` (JSON; an old ``.pt`` state is
    read with ``weights_only=True``). One-line errors name the file."""
    folder = Path(folder)
    path = folder / f"trainer_rank{rank}.json"
    if path.exists():
        try:
            state = load_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{path}: unreadable trainer state ({str(e).splitlines()[0]})") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise CheckpointError(f"{path}: not a resm trainer state")
        problem = format_version_problem(state.get("version"), STATE_VERSION)
        if problem:
            raise CheckpointError(f"{path}: {problem}")
    elif (folder / f"trainer_rank{rank}.pt").exists():
        path = folder / f"trainer_rank{rank}.pt"
        reconstruct = np._core.multiarray._reconstruct if hasattr(np, "_core") else np.core.multiarray._reconstruct
        allow = [
            np.ndarray,
            np.dtype,
            type(np.dtype(np.uint32)),
            reconstruct,
            (reconstruct, "numpy.core.multiarray._reconstruct"),
        ]  # written by numpy 1 or 2
        state = safe_load(path, trust, allow=allow, hint=hint)
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: not a resm trainer state")
    else:
        raise ConfigError(f"{folder}: no state for rank {rank} (was it written with another world size?)")
    missing = [k for k in _NEEDED if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a complete trainer state (no {missing[0]!r})")
    problem = _state_problem(state, folder)
    if problem:
        raise CheckpointError(f"{path}: not a usable trainer state: {problem}")
    state["file"] = str(path)
    return state


_COUNTERS = ("epoch", "batches", "turn", "seed", "rank", "world_size")  # of the data streams' positions


def _whole(v: Any, least: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= least


def _counter_problem(x: Any, where: str) -> str | None:
    """The first of a data position's counters (at any depth: a joint run nests one stream per
    task) that is no whole number >= 0, or None."""
    if not isinstance(x, dict):
        return f"{where!r} is {_short(x)}, not a mapping"
    for k, v in x.items():
        if isinstance(v, dict):
            problem = _counter_problem(v, f"{where}.{k}")
            if problem:
                return problem
        elif k in _COUNTERS and not _whole(v):
            return f"'{where}.{k}' is {_short(v)}, not a whole number >= 0"
    return None


def _state_problem(state: dict[str, Any], folder: Path) -> str | None:
    """What in a trainer state holding every needed key cannot be resumed from, or None. Its
    step must be the one its folder is named after: a resume carries on from it, and the next
    checkpoint is named after it."""
    named = re.fullmatch(r"step_(\d+)", folder.name)
    step = state["step"]
    if not _whole(step) or (named and step != int(named.group(1))):
        return f"'step' is {_short(step)}, not the step its folder {folder.name} is named after"
    for key, least in (("tokens_seen", 0), ("world_size", 1)):
        if not _whole(state[key], least):
            return f"{key!r} is {_short(state[key])}, not a whole number >= {least}"
    elapsed = state.get("elapsed_s", 0.0)
    if isinstance(elapsed, bool) or not isinstance(elapsed, (int, float)) or not 0 <= elapsed < math.inf:
        return f"'elapsed_s' is {_short(elapsed)}, not a number of seconds >= 0"
    if not isinstance(state["engine"], str):
        return f"'engine' is {_short(state['engine'])}, not a name"
    for key in ("fingerprint", "settings"):
        if key in state and not isinstance(state[key], dict):
            return f"{key!r} is {_short(state[key])}, not a mapping"
    return _counter_problem(state["data"], "data") or _rng_problem(state["rng"], state["mask_rng"])


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` is no complete checkpoint, or None. The training loop writes a checkpoint
    in a temporary folder and renames it whole, so a ``step_*`` entry lacking what every
    checkpoint holds was damaged or made by hand."""
    folder = Path(folder)
    if not folder.is_dir():
        return "a file, not a checkpoint folder" if folder.exists() else no_such(folder, "folder")
    if not any((folder / f"trainer_rank0.{ext}").is_file() for ext in ("json", "pt")):
        return "no trainer_rank0.json"
    if not (folder / "engine.pt").is_file() and not (folder / "ds").is_dir():
        return "no engine.pt and no DeepSpeed 'ds' folder"
    if not (folder / "config.json").is_file():
        return "no config.json"
    return None


def load_engine_state(path: Path, map_location) -> dict[str, Any]:
    """``engine.pt`` of the plain torch engine, read with ``weights_only=True`` (it holds only
    tensors and numbers; a file that names anything else was not written by resm, and is never
    unpickled in full)."""
    state = safe_load(path, map_location=map_location, hint="")
    if not isinstance(state, dict) or not {"model", "optimizer", "scheduler"} <= set(state):
        raise CheckpointError(f"{path}: not an engine state (model, optimizer, scheduler)")
    return state


# ----------------------------------------------------------------------------- DeepSpeed files
def _deepspeed_globals() -> list[object]:
    import importlib

    out = []
    for name in DEEPSPEED_GLOBALS:
        module, _, attr = name.rpartition(".")
        with contextlib.suppress(ImportError, AttributeError):
            out.append(getattr(importlib.import_module(module), attr))
    return out


@contextlib.contextmanager
def guarded_torch_load(trust: bool = False, hint: str = TRAIN_HINT) -> Iterator[None]:
    """Inside the block every ``torch.load`` (DeepSpeed's included) is ``weights_only=True``
    with :data:`DEEPSPEED_GLOBALS` allowed; a file naming anything else is a
    :class:`CheckpointError` naming the file and the global, unless ``trust``."""
    original = torch.load
    allow = _deepspeed_globals()

    def load(f, *args, **kwargs):
        kwargs.pop("weights_only", None)
        try:
            with warnings.catch_warnings(), torch.serialization.safe_globals(allow):
                warnings.simplefilter("ignore")
                return original(f, *args, weights_only=True, **kwargs)
        except pickle.UnpicklingError as e:
            named = re.search(r"GLOBAL ([\w.]+\w)", str(e))
            if trust:  # only what the safe load refused is unpickled in full, and it is said
                from .backbone.load import warn_unpickling

                if hasattr(f, "seek"):
                    f.seek(0)
                warn_unpickling(f, named.group(1) if named else "objects outside the allow-list")
                return original(f, *args, weights_only=False, **kwargs)
            what = f"it names {named.group(1)}, which is not allowed" if named else "corrupt pickle"
            raise CheckpointError(f"{f}: refusing to unpickle it: {what}; {hint}") from None
        except (FileNotFoundError, CheckpointError):
            raise
        except Exception as e:  # a truncated or foreign file
            raise CheckpointError(f"{f}: not a readable torch checkpoint ({load_failure(Path(f), e)})") from None

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


# ----------------------------------------------------------------------------- resume checks
def _flat(x: Any, prefix: str) -> dict[str, Any]:
    if isinstance(x, dict):
        out: dict[str, Any] = {}
        for k, v in x.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: x}


def _short(v: Any) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def changes(before: Mapping[str, Any], now: Mapping[str, Any], ignore: tuple = ()) -> list[str]:
    """``["key old → new", ...]`` for the dotted keys whose values differ (JSON-compared);
    keys whose last part is in ``ignore`` are left out."""
    a, b = _flat(jsonable(dict(before)), ""), _flat(jsonable(dict(now)), "")
    out = []
    for k in sorted(set(a) | set(b)):
        if k.rsplit(".", 1)[-1] in ignore or a.get(k) == b.get(k):
            continue
        old = _short(a[k]) if k in a else "(absent)"
        new = _short(b[k]) if k in b else "(absent)"
        out.append(f"{k} {old} → {new}")
    return out
