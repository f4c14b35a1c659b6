"""The resumable epoch stream that the in-memory training data paths share.

A subclass yields one epoch's batches from ``iter_epoch(epoch)``, a pure function of its seed,
the epoch and the rank. :class:`EpochStream` turns that into the endless, resumable iterator
the training loop wants: ``state_dict()`` holds the epoch and the batches already yielded in
it, and after ``load_state_dict`` iteration continues with exactly the batch the uninterrupted
stream would have yielded next.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Iterator
from typing import Any


def digest_of(parts: Iterable[bytes]) -> str:
    """blake2b of a sequence of byte strings (each length-prefixed, so none runs into the next)."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def item_bytes(item: Any) -> bytes:
    """The bytes a training example is known by: its repr, its file line left out (a record
    that moved within its file is the same record)."""
    if dataclasses.is_dataclass(item) and not isinstance(item, type) and hasattr(item, "line"):
        item = dataclasses.replace(item, line=0)
    return repr(item).encode()


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

    def records_digest(self) -> str | None:
        """A digest of the training records this rank holds (None: not kept), so a resume on
        changed data is refused instead of continuing on other records."""
        return None

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "epoch": self.epoch,
            "batches": self.batches_done,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
        }
        digest = self.records_digest()
        if digest is not None:
            state["records"] = digest
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (
            int(state.get("seed", self.seed)) != self.seed
            or int(state.get("world_size", self.world_size)) != self.world_size
        ):
            raise ValueError(f"stream state {state} was saved with another seed or world size")
        saved = state.get("records")  # absent in states written before the digest was kept
        if saved is not None and saved != self.records_digest():
            raise ValueError(
                "cannot resume: the training records (data.train) differ from those the checkpoint was "
                "written with; the batches would differ (use a new train.out_dir)"
            )
        self.epoch, self.batches_done = int(state["epoch"]), int(state["batches"])
