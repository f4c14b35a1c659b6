"""Measurement for ``resm compare``: embedding passes timed one sequence at a time and their
peak memory: the allocator's peak above the start on CUDA and, on CPU, the resident set size
sampled every 2 ms by a thread, above the start (approximate: freed memory the allocator keeps,
or a pass shorter than the sampling interval, read as little). Weights are not counted."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..structure.io import Structure
from .backends import Backend

__all__ = ["PeakMemory", "Timed", "embed_all", "embed_unique"]


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            import psutil

            return int(psutil.Process().memory_info().rss)
        except Exception:  # psutil missing or failing: no CPU memory figure
            return None


class PeakMemory:
    """Context manager: ``.mb`` is the peak extra memory of the block (see the module notes)."""

    def __init__(self, device: torch.device, interval: float = 0.002):
        self.device = torch.device(device)
        self.interval = interval
        self.mb = float("nan")

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        self._base = _rss_bytes()
        self._peak = self._base
        self._stop = threading.Event()
        if self._base is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            v = _rss_bytes()
            if v is not None and v > self._peak:
                self._peak = v

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
            return
        if self._base is None:
            return
        self._stop.set()
        self._thread.join()
        end = _rss_bytes() or 0
        self.mb = max(self._peak, end, self._base) / 2**20 - self._base / 2**20


@dataclass
class Timed:
    seconds: list[float]
    peak_mb: list[float]


def embed_all(
    backend: Backend, recs: Sequence[Structure], progress: bool, desc: str
) -> tuple[list[torch.Tensor], Timed]:
    """Embeddings (cached, CPU float32) of ``recs``, each pass timed and its memory measured
    (after one untimed warm-up pass, so first-call set-up is not charged to a sequence)."""
    out, secs, mems = [], [], []
    if recs:
        backend.embed(recs[0].seq)
    for r in tqdm(recs, desc=desc, disable=not progress, leave=False):
        with PeakMemory(backend.device) as pm:
            t0 = time.perf_counter()
            h = backend.embed(r.seq)
            secs.append(time.perf_counter() - t0)
        if h.shape[0] != len(r):
            raise ValueError(f"{backend.name}: {h.shape[0]} embeddings for {len(r)} nt in {r.name}")
        mems.append(pm.mb)
        out.append(h)
    return out, Timed(secs, mems)


def embed_unique(
    backend: Backend, groups: Sequence[Sequence[str]], progress: bool = False, desc: str = "embed"
) -> tuple[dict[str, torch.Tensor], list[float]]:
    """Embed every distinct sequence of ``groups`` once (after one untimed warm-up pass).

    Returns the cache (sequence -> (L, E) CPU float32) and, per group, the seconds spent on the
    sequences it added (the first group's figure is its full embedding time)."""
    cache: dict[str, torch.Tensor] = {}
    secs: list[float] = []
    first = next((s for g in groups for s in g), None)
    if first is not None:
        backend.embed(first)
    for k, g in enumerate(groups):
        new = [s for s in dict.fromkeys(g) if s not in cache]
        t = 0.0
        for s in tqdm(new, desc=f"{desc} ({k + 1}/{len(groups)})", disable=not progress, leave=False):
            t0 = time.perf_counter()
            e = backend.embed(s)
            t += time.perf_counter() - t0
            if e.shape[0] != len(s):
                raise ValueError(f"{backend.name}: {e.shape[0]} embeddings for a {len(s)}-nt sequence")
            cache[s] = e
        secs.append(t)
    return cache, secs
