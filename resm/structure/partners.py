"""A structure's pairs: the partner array and its dot-bracket notation.

A structure is a numpy int array ``pairs`` of length L: ``pairs[i]`` is the 0-based partner of
base i, or -1 when i is unpaired. Each base has at most one partner, pairs are symmetric and no
base pairs with itself; pseudoknots (crossing pairs) are allowed. Dot-bracket: ``()`` ``[]``
``{}`` ``<>`` then ``Aa`` ``Bb`` ... (upper case opens, lower case closes); ``. - , : _ ~`` are
unpaired. A record (name, sequence, partner array) is :class:`resm.structure.record.Structure`;
structure files are :mod:`resm.structure.io`; base multiplets :mod:`resm.structure.pairsets`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "StructureError",
    "check_pairs",
    "pair_list",
    "pairs_from_list",
    "pairs_to_matrix",
    "matrix_to_pairs",
    "parse_dotbracket",
    "to_dotbracket",
    "UNPAIRED",
    "MAX_LEVELS",
]


UNPAIRED = ".-,:_~"
_OPEN = "([{<" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CLOSE = ")]}>" + "abcdefghijklmnopqrstuvwxyz"
_CLOSE_TO_OPEN = dict(zip(_CLOSE, _OPEN))
_OPEN_SET = frozenset(_OPEN)
MAX_LEVELS = len(_OPEN)


class StructureError(ValueError):
    """Invalid structure or malformed structure file."""


# ---------------------------------------------------------------- pair arrays


def check_pairs(pairs: Sequence[int] | np.ndarray) -> np.ndarray:
    """Return ``pairs`` as an int64 array after checking it is a valid pairing."""
    p = np.asarray(pairs)
    if p.ndim != 1:
        raise StructureError(f"pairs must be 1-D, got shape {p.shape}")
    if p.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(p.dtype, np.integer) and not np.all(np.equal(np.mod(p, 1), 0)):
        raise StructureError("pairs must be integers")
    p = p.astype(np.int64)
    L = len(p)
    bad = np.flatnonzero((p < -1) | (p >= L))
    if bad.size:
        i = int(bad[0])
        raise StructureError(f"partner {p[i]} of base {i} out of range for length {L}")
    idx = np.arange(L)
    bad = np.flatnonzero(p == idx)
    if bad.size:
        raise StructureError(f"base {int(bad[0])} paired with itself")
    paired = np.flatnonzero(p >= 0)
    bad = paired[p[p[paired]] != paired]
    if bad.size:
        i = int(bad[0])
        raise StructureError(f"asymmetric pairing: base {i} -> {p[i]} but {p[i]} -> {p[p[i]]}")
    return p


def pair_list(pairs: Sequence[int] | np.ndarray) -> list[tuple[int, int]]:
    """Sorted 0-based pairs ``(i, j)`` with i < j."""
    p = np.asarray(pairs, dtype=np.int64)
    i = np.flatnonzero(p > np.arange(len(p)))
    return list(zip(i.tolist(), p[i].tolist()))


def pairs_from_list(plist: Iterable[Sequence[int]], length: int, one_based: bool = False) -> np.ndarray:
    """Partner array of ``length`` from pairs ``(i, j)`` (either order) of integers; a
    fractional or non-numeric index (``1.5``, ``"1"``, ``null`` in a JSON list) is a
    StructureError, not truncated or converted."""
    raw = np.asarray(list(plist))
    if raw.size and not np.issubdtype(raw.dtype, np.integer):
        raise StructureError(f"pair indices must be integers, got {raw.ravel()[:4].tolist()}")
    arr = raw.astype(np.int64).reshape(-1, 2)
    if one_based:
        arr = arr - 1
    p = np.full(length, -1, dtype=np.int64)
    if arr.size == 0:
        return p
    if arr.min() < 0 or arr.max() >= length:
        raise StructureError(f"pair index out of range for length {length}")
    if np.any(arr[:, 0] == arr[:, 1]):
        raise StructureError("self pair in pair list")
    flat = arr.ravel()
    uniq, counts = np.unique(flat, return_counts=True)
    if np.any(counts > 1):
        raise StructureError(f"base {int(uniq[counts > 1][0])} appears in more than one pair")
    p[arr[:, 0]] = arr[:, 1]
    p[arr[:, 1]] = arr[:, 0]
    return p


def pairs_to_matrix(pairs: Sequence[int] | np.ndarray) -> np.ndarray:
    """Symmetric (L, L) bool contact matrix."""
    p = np.asarray(pairs, dtype=np.int64)
    m = np.zeros((len(p), len(p)), dtype=bool)
    i = np.flatnonzero(p >= 0)
    m[i, p[i]] = True
    return m


def matrix_to_pairs(mat: np.ndarray) -> np.ndarray:
    """Partner array from a square matrix (nonzero = paired; symmetrised).

    Raises StructureError if a base has several partners or pairs with itself.
    """
    m = np.asarray(mat)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise StructureError(f"pair matrix must be square, got shape {m.shape}")
    m = m.astype(bool)
    m = m | m.T
    if np.any(np.diagonal(m)):
        raise StructureError(f"base {int(np.flatnonzero(np.diagonal(m))[0])} paired with itself")
    deg = m.sum(axis=1)
    if np.any(deg > 1):
        raise StructureError(f"base {int(np.flatnonzero(deg > 1)[0])} has {int(deg.max())} partners")
    p = np.full(len(m), -1, dtype=np.int64)
    i, j = np.nonzero(m)
    p[i] = j
    return p


# ---------------------------------------------------------------- dot-bracket


def parse_dotbracket(db: str) -> np.ndarray:
    """Partner array from a dot-bracket string (positions in errors are 1-based)."""
    stacks: dict[str, list[int]] = {}
    p = np.full(len(db), -1, dtype=np.int64)
    for k, c in enumerate(db):
        if c in UNPAIRED:
            continue
        if c in _OPEN_SET:
            stacks.setdefault(c, []).append(k)
        elif c in _CLOSE_TO_OPEN:
            st = stacks.get(_CLOSE_TO_OPEN[c])
            if not st:
                raise StructureError(f"unmatched '{c}' at position {k + 1}")
            i = st.pop()
            p[i] = k
            p[k] = i
        else:
            raise StructureError(f"unknown character {c!r} at position {k + 1}")
    for o, st in stacks.items():
        if st:
            raise StructureError(f"unmatched '{o}' at position {st[-1] + 1}")
    return p


def _levels(pairs: np.ndarray) -> list[tuple[int, int, int]]:
    """Greedy pseudoknot levels: (i, j, level) for each pair, in order of i.

    Each level keeps a stack of the closing indices of its pairs still open at
    i; as a level is nested, (i, j) crosses one of them iff the innermost
    (top of stack) closes before j.
    """
    out = []
    stacks: list[list[int]] = []
    for i, j in pair_list(pairs):
        for lev, st in enumerate(stacks):  # noqa: B007 (lev is read after the break)
            while st and st[-1] < i:
                st.pop()
            if not st or st[-1] > j:
                break
        else:
            lev = len(stacks)
            stacks.append([])
        stacks[lev].append(j)
        out.append((i, j, lev))
    return out


def to_dotbracket(pairs: Sequence[int] | np.ndarray) -> str:
    """Dot-bracket string; crossing pairs go to greedily assigned higher levels."""
    p = check_pairs(pairs)
    chars = ["."] * len(p)
    for i, j, lev in _levels(p):
        if lev >= MAX_LEVELS:
            raise StructureError(f"more than {MAX_LEVELS} pseudoknot levels needed")
        chars[i] = _OPEN[lev]
        chars[j] = _CLOSE[lev]
    return "".join(chars)
