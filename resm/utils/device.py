"""Where a process runs: its rank among the processes a launcher started, and its device.

``torchrun``, ``accelerate launch`` and the ``deepspeed`` launcher all describe a process by
the environment variables ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; a plain run has none.
"""

from __future__ import annotations

import numbers
import os
from typing import NamedTuple

__all__ = [
    "Launch",
    "launch",
    "resolve_device",
    "use_device",
    "DEVICE_HELP",
    "MAX_THREADS",
    "THREADS_RULE",
    "threads_ok",
]

# CPU threads (--threads, compare's threads:, the API's threads=): torch (OpenMP) dies with a
# segmentation fault when asked for tens of thousands, so a count past this is refused up front.
MAX_THREADS = 1024
THREADS_RULE = f"must be an integer in [0, {MAX_THREADS}] (0: every core)"
"""What a thread count must be, as errors say it (``..., got VALUE`` follows)."""


def threads_ok(v) -> bool:
    """``v`` keeps :data:`THREADS_RULE`."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and 0 <= v <= MAX_THREADS  # numpy's too


DEVICE_HELP = "auto: the GPU when CUDA is available (cuda:LOCAL_RANK under a launcher), else cpu; or cpu, cuda, cuda:N"


class Launch(NamedTuple):
    rank: int
    world: int
    local_rank: int


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def launch() -> Launch:
    """This process's rank, the number of processes and its rank on this machine (0, 1, 0
    without a launcher)."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world} do not describe a process of a launched job")
    return Launch(rank, world, _env_int("LOCAL_RANK", rank))


def resolve_device(name: str | None = "auto") -> str:
    """``auto`` (or None): ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; ``cuda``
    under a launcher: this process's own GPU; anything else is returned as given."""
    name = (name or "auto").strip()
    if name in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            n = torch.cuda.device_count()
            return f"cuda:{launch().local_rank % max(n, 1)}"
        if name == "cuda":
            raise ValueError("--device cuda: no CUDA device is available (use --device cpu or auto)")
        return "cpu"
    return name


def use_device(name: str | None = "auto") -> str:
    """:func:`resolve_device`, made this process's current CUDA device when it is a GPU. Under a
    launcher every process would otherwise keep GPU 0 as its current device, and the work
    torch does there implicitly (a CUDA context, the current stream, device queries such as
    ``torch.cuda.is_bf16_supported``) would land on GPU 0 for every process."""
    device = resolve_device(name)
    if device.startswith("cuda"):
        import torch

        torch.cuda.set_device(torch.device(device))
    return device
