"""Memory estimates before long work: ``resm fold``, ``resm evaluate structure`` and ``resm
embed`` refuse, in one line and before any model runs, a job whose estimated peak exceeds the
memory the machine has available, rather than be killed by the kernel half way
(``--ignore-memory-check`` runs it anyway).

* :func:`available_memory`: what the machine can still give, in bytes (``RESM_AVAILABLE_MEMORY``
  where set, in bytes, for tests and for jobs that must leave room to others): ``MemAvailable`` of
  ``/proc/meminfo`` (or psutil's, where there is no ``/proc``), capped by a cgroup's
  ``memory.max`` (a container's limit) less what the cgroup uses; None where none is known
  (then nothing is refused).
* :func:`fold_estimate`: the peak of folding, fitted to measured peaks of ``resm fold`` with
  the shipped model (``experiments/memory_fold.py``, table in
  ``experiments/results/memory_fold_cpu.md``): dominated by LinearPartition's pair prior, which
  grows about quadratically with length at the shipped beam (2.8 GiB of 3.1 at 10,000 nt).
  Each prior worker holds one sequence, so ``workers`` long records count together.
* :func:`embed_estimate`: the peak of ``resm embed`` from the model's size and the longest
  batch: weights, the activations of a batch, and, with contacts, the (heads, L, L) attention
  maps of a layer.
* :func:`require_fold_memory`: the check of folding (``resm fold`` and ``resm evaluate
  structure``, which fold records through the same predictor).
* :func:`require_trainable`: a head (or model) of ``n`` parameters, estimated from its config
  before it is built, must fit the machine's total memory to train (:func:`train_bytes`,
  :func:`total_memory`): a pair head 10**9 wide had tensors that each fit but together got
  the process killed by the kernel's OOM killer while it was being built.
* :func:`require_memory`: the check itself; :func:`memory_check` (a context manager) is how a
  command line turns it off.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator, Sequence

__all__ = [
    "MemoryCheckError",
    "available_memory",
    "fold_estimate",
    "embed_estimate",
    "require_memory",
    "require_fold_memory",
    "memory_check",
    "allocation_failed",
    "total_memory",
    "train_bytes",
    "require_trainable",
    "TOTAL_MEMORY_CAP",
    "TRAIN_BYTES_PER_PARAMETER",
    "WEIGHT_BYTES_PER_PARAMETER",
    "GIB",
]

GIB = 2**30

# Fitted to measured peaks of resm fold (shipped model, one record, --threads 1; 5,000 and
# 10,000 nt in experiments/results/memory_fold_cpu.md, 20,000 nt from issue 28's 9.5 GiB, since measured as 9.54 GiB):
# peak GiB = BASE + LINEAR * kb + QUADRATIC * kb^2, kb the length in thousands of nucleotides;
# the fit is raised by MARGIN so that the estimate stays above what was measured.
FOLD_BASE_GIB = 0.21
FOLD_LINEAR_GIB_PER_KB = 0.103
FOLD_QUADRATIC_GIB_PER_KB2 = 0.0181
FOLD_MARGIN = 1.15
FOLD_PRIOR_BASE_GIB = 0.2  # what one more prior worker process adds before its sequence
# What the Turner-corrected decoding (resm fold --turner-scale) adds, for its longest record:
# QUADRATIC * kb^2 (before the margin), the largest increment per kb^2 over plain resm fold's peak
# measured at 1,000-3,000 nt in experiments/results/memory_fold_turner_cpu.md (0.68 GiB at 3,000 nt).
FOLD_TURNER_QUADRATIC_GIB_PER_KB2 = 0.076


class MemoryCheckError(ValueError):
    """A job estimated to need more memory than is available (one line, with the override)."""


def allocation_failed(e: BaseException) -> bool:
    """Whether ``e`` is a failure to allocate memory: Python's MemoryError, torch's CUDA
    out-of-memory error, or its CPU allocator's RuntimeError (``can't allocate memory``)."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    return isinstance(e, (MemoryError, oom)) or (isinstance(e, RuntimeError) and "can't allocate memory" in str(e))


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """What a cgroup v2 memory limit still allows (None: no limit)."""
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as fh:
            used = int(fh.read().strip())
        return max(0, int(limit) - used)
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes the machine can still give this process (see the module notes); None if unknown."""
    forced = os.environ.get("RESM_AVAILABLE_MEMORY")
    if forced:  # bytes: the memory the check assumes (for tests, or a job that must leave room to others)
        return int(forced)
    avail = _meminfo_available()
    if avail is None:
        try:
            import psutil

            avail = int(psutil.virtual_memory().available)
        except Exception:  # noqa: BLE001 -- psutil is optional
            avail = None
    room = _cgroup_room()
    if room is not None:
        avail = room if avail is None else min(avail, room)
    return avail


TOTAL_MEMORY_CAP = 2**40  # bytes a model may take to train where the machine's memory is unknown (1 TiB)
TRAIN_BYTES_PER_PARAMETER = 16  # fp32 weights, their gradients and Adam's two moments
WEIGHT_BYTES_PER_PARAMETER = 4  # fp32 weights alone (a model built only to be written)


def total_memory() -> int | None:
    """Bytes of memory the machine has in all (``MemTotal``: ``os.sysconf``'s physical pages,
    else psutil's total), capped by a cgroup's ``memory.max`` (a container's limit); None if
    unknown."""
    total = None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        try:
            import psutil

            total = int(psutil.virtual_memory().total)
        except Exception:  # noqa: BLE001 -- psutil is optional
            total = None
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        if limit != "max":
            total = int(limit) if total is None else min(total, int(limit))
    except (OSError, ValueError):
        pass
    return total if total and total > 0 else None


def train_bytes(n_parameters: int, bytes_per_parameter: int = TRAIN_BYTES_PER_PARAMETER) -> int:
    """Least bytes training ``n_parameters`` takes: :data:`TRAIN_BYTES_PER_PARAMETER` each
    (activations and the backbone come on top, so this bound only refuses the hopeless);
    ``bytes_per_parameter``: another count (:data:`WEIGHT_BYTES_PER_PARAMETER`: the weights alone)."""
    return int(n_parameters) * int(bytes_per_parameter)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def require_trainable(
    n_parameters: int, key: str, value: int | str, what: str, bytes_per_parameter: int | None = None
) -> None:
    """Refuse (ValueError, one line naming ``key`` and its ``value``) ``what`` of
    ``n_parameters`` parameters, estimated from its config before it is built, when training
    it needs more than the machine's total memory (:func:`total_memory`;
    :data:`TOTAL_MEMORY_CAP` where that is unknown): it could never train, and building it got
    the process killed by the kernel's OOM killer rather than a one-line error.
    ``bytes_per_parameter``: :data:`WEIGHT_BYTES_PER_PARAMETER` for a model built only to be
    written (``resm init-checkpoint``), whose weights alone must fit; None: to train, on a
    machine with a GPU counted as the weights alone too (the model is built in this memory,
    its gradients and optimiser states live on the GPU), so that only a model that cannot be
    built at all is refused there."""
    train = bytes_per_parameter is None
    if train and _cuda_available():  # Adam's moments and the gradients go to the GPU: the CPU builds the weights
        train, bytes_per_parameter = False, WEIGHT_BYTES_PER_PARAMETER
    need = train_bytes(n_parameters, TRAIN_BYTES_PER_PARAMETER if train else bytes_per_parameter)
    total = total_memory()
    bound, where = (total, "the machine's memory") if total else (TOTAL_MEMORY_CAP, "the cap where memory is unknown")
    if need > bound:
        use = "to train (weights, gradients, Adam's moments)" if train else "for its weights"
        raise ValueError(
            f"{key} {value} gives {what} about {n_parameters:.3g} parameters, which need about "
            f"{need / GIB:.3g} GiB {use}, more than {bound / GIB:.1f} GiB ({where}); give a smaller {key}"
        )


def fold_estimate(lengths: Sequence[int], workers: int = 1, turner: bool = False) -> int:
    """Estimated peak bytes of folding records of these lengths with the shipped kind of model
    (the pair head over a LinearPartition prior): the base process plus the prior of the
    ``workers`` longest records, which are computed at the same time; ``turner``: the decoding
    is Turner-corrected (``resm fold --turner-scale``), whose ViennaRNA fold of the longest
    record adds its own O(L^2)."""
    if not len(lengths):
        return 0
    longest = sorted(lengths, reverse=True)[: max(1, int(workers))]

    def grows(n: int) -> float:
        kb = n / 1000
        return FOLD_LINEAR_GIB_PER_KB * kb + FOLD_QUADRATIC_GIB_PER_KB2 * kb * kb

    gib = FOLD_BASE_GIB + sum(grows(n) for n in longest) + FOLD_PRIOR_BASE_GIB * (len(longest) - 1)
    if turner:
        gib += FOLD_TURNER_QUADRATIC_GIB_PER_KB2 * (longest[0] / 1000) ** 2
    return int(gib * FOLD_MARGIN * GIB)


EMBED_MAPS_WITH_CONTACTS = 4.5  # (heads, L, L) fp32 maps alive at once when contacts are computed


def embed_estimate(
    n_params: int,
    embed_dim: int,
    layers: int,
    heads: int,
    lengths: Sequence[int],
    toks_per_batch: int,
    contacts: bool = False,
    bytes_per_value: int = 4,
) -> int:
    """Estimated peak bytes of ``resm embed``: Python and torch themselves (0.4 GiB), the weights
    (fp32), about 12 activations of ``embed_dim`` values per token of a batch, and, with
    contacts, the attention maps of one layer at a time (the contact head accumulates layer by
    layer; without contacts the fused attention keeps no (L, L) map). Measured with ESM-2 t6 at
    2,000 and 5,000 nt (``experiments/memory_fold.py --embed``): the estimate lies above every
    peak, by up to 2.7 times with contacts at 5,000 nt."""
    if not len(lengths):
        return 0
    L = max(lengths) + 2  # BOS and EOS
    # a batch never holds more tokens than the records have (--toks-per-batch 1e20 asked for 1e14 GiB)
    total = sum(n + 2 for n in lengths)
    batch = max(min(int(toks_per_batch), total), L)
    maps = heads * L * L * bytes_per_value * EMBED_MAPS_WITH_CONTACTS if contacts else 0
    acts = 12 * batch * embed_dim * bytes_per_value
    return int(n_params * 4 + acts + maps + 0.4 * GIB)


_CHECK: contextvars.ContextVar[bool] = contextvars.ContextVar("resm_memory_check", default=True)


@contextlib.contextmanager
def memory_check(enabled: bool) -> Iterator[None]:
    """Turn :func:`require_memory` on or off inside the block (``--ignore-memory-check``)."""
    token = _CHECK.set(bool(enabled))
    try:
        yield
    finally:
        _CHECK.reset(token)


OVERRIDE_FLAG = "give --ignore-memory-check"
OVERRIDE_API = "call inside resm.utils.memory.memory_check(False)"  # the Python API's way


def require_memory(need: int, what: str, available: int | None = None, override: str = OVERRIDE_FLAG) -> None:
    """Raise :class:`MemoryCheckError` (one line) when ``need`` bytes exceed the available
    memory; nothing when the check is off or the available memory is unknown. ``override``:
    how the caller turns the check off (the command line's flag, or :data:`OVERRIDE_API`)."""
    if not _CHECK.get():
        return
    avail = available_memory() if available is None else available
    if avail is None or need <= avail:
        return
    raise MemoryCheckError(
        f"{what} needs about {need / GIB:.1f} GiB of memory and {avail / GIB:.1f} GiB are "
        f"available; free memory, fold or embed fewer or shorter sequences at a time, or {override} "
        "to run anyway"
    )


def require_fold_memory(
    lengths: Sequence[int], workers: int = 0, turner: bool = False, override: str = OVERRIDE_FLAG
) -> None:
    """Refuse, before any work, records whose folding (``resm fold``, ``resm evaluate
    structure``, the Python API's ``Predictor.fold``) is estimated to need more memory than is
    available (:func:`fold_estimate` with ``workers`` prior workers, 0: one per core;
    ``--ignore-memory-check`` turns it off); ``turner``: the decoding is Turner-corrected,
    which needs more."""
    if not len(lengths):
        return
    workers = min(workers or os.cpu_count() or 1, len(lengths))
    require_memory(
        fold_estimate(lengths, workers, turner),
        f"folding {len(lengths)} record{'' if len(lengths) == 1 else 's'} (the longest {max(lengths)} nt, "
        f"{workers} prior worker{'' if workers == 1 else 's'}{', Turner-corrected decoding' if turner else ''})",
        override=override,
    )
