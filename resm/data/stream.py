"""The resumable epoch stream that the in-memory training data paths share.

A subclass yields one epoch's batches from ``iter_epoch(epoch)``, a pure function of its seed,
the epoch and the rank. :class:`EpochStream` turns that into the endless, resumable iterator
the training loop wants: ``state_dict()`` holds the epoch and the batches already yielded in
it, and after ``load_state_dict`` iteration continues with exactly the batch the uninterrupted
stream would have yielded next.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class EpochStream:
    seed: int = 0
    rank: int = 0
    world_size: int = 1

    def __init__(self, seed: int, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self.batches_done = 0

    def iter_epoch(self, epoch: int) -> Iterator[Any]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Any]:
        while True:
            skip = self.batches_done
            for i, batch in enumerate(self.iter_epoch(self.epoch)):
                if i < skip:
                    continue
                self.batches_done = i + 1
                yield batch
            self.epoch, self.batches_done = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        return {
            "epoch": self.epoch,
            "batches": self.batches_done,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        if (
            int(state.get("seed", self.seed)) != self.seed
            or int(state.get("world_size", self.world_size)) != self.world_size
        ):
            raise ValueError(f"stream state {state} was saved with another seed or world size")
        self.epoch, self.batches_done = int(state["epoch"]), int(state["batches"])
