"""The one rule for a random seed (``--seed``, ``train.seed``, ``data.seed``, compare's
``train.seed``): an integer in ``[0, MAX_SEED]``. Seeds are spread (``seed * 1000 + rank``)
before ``torch.manual_seed``, which overflows past ``2**64 - 1`` ("Overflow when unpacking long
long", naming no key), and are written to JSON run records; ``2**53 - 1`` keeps both exact. It
imports nothing heavy: the command line's parser reads it."""

from __future__ import annotations

MAX_SEED = 2**53 - 1
SEED_RULE = "must be >= 0 and <= 2**53 - 1 (an integer)"
"""What a seed must be, as errors say it (``..., got VALUE`` follows)."""


def seed_ok(v) -> bool:
    """``v`` keeps :data:`SEED_RULE`."""
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SEED
