"""Training crops of labelled structures, index by index: each item of the structure stream is
the window [start, start + len) of its record in every field (sequence, token ids cut from the
whole record's mapping, nucleotide codes, pairs with both ends inside, renumbered), the window
is the whole record up to ``max_length`` and ``max_length`` long above it, and over epochs the
windows reach both ends (start 0 and start L - max_length). The windows of the pair head's
priors and of the 2-D head's probability channel are the same crops of the whole record's."""

from __future__ import annotations

import numpy as np

from resm.data.labelled_structures import StructureDataConfig, StructureStream
from resm.mapping import get_scheme
from resm.nucleotides import rna_codes
from resm.structure.io import Structure
from resm.structure.pairsets import PairRecord, PairSet
from resm.structure.priors import SparsePairs

M = 10  # max_length


def random_partners(rng, L: int) -> np.ndarray:
    p = np.full(L, -1, dtype=np.int64)
    for _ in range(L):
        i, j = sorted(rng.integers(0, L, 2).tolist())
        if j > i and p[i] < 0 and p[j] < 0:
            p[i], p[j] = j, i
    return p


def random_pair_set(rng, L: int) -> PairSet:
    """Pairs where a base may sit in several (multiplets)."""
    ij = {tuple(sorted(rng.choice(L, 2, replace=False).tolist())) for _ in range(L)}
    return PairSet(np.array(sorted(ij), dtype=np.int64).reshape(-1, 2), L)


def pairs_in(pairs, L: int) -> set[tuple[int, int]]:
    if isinstance(pairs, PairSet):
        return {tuple(x) for x in pairs.ij.tolist()}
    i = np.flatnonzero(pairs > np.arange(len(pairs)))
    return set(zip(i.tolist(), pairs[i].tolist()))


def test_every_field_of_a_crop_is_the_same_window_of_its_record():
    rng = np.random.default_rng(0)
    scheme = get_scheme("kdny")
    lengths = [M - 1, M, M + 1, M + 2, 2 * M, 3 * M + 1, M + 1, 2 * M + 3]
    records = []
    for k, L in enumerate(lengths):
        seq = "".join(rng.choice(list("ACGUN"), L))
        if k % 2:
            records.append(PairRecord(f"r{k}", seq, random_pair_set(rng, L)))
        else:
            records.append(Structure(f"r{k}", seq, random_partners(rng, L)))
    ids = [scheme.encode(r.seq) for r in records]
    stream = StructureStream(records, ids, StructureDataConfig(train="x.dbn", max_length=M, tokens_per_batch=64))
    starts: dict[str, set[int]] = {r.name: set() for r in records}
    for epoch in range(200):
        for batch in stream.iter_epoch(epoch):
            for it in batch:
                k = int(it.name[1:])
                rec, L, s = records[k], lengths[k], it.start
                n = len(it.seq)
                assert n == min(L, M) and 0 <= s <= L - n
                starts[it.name].add(s)
                assert it.seq == rec.seq[s : s + n]
                assert np.array_equal(it.tokens, ids[k][s : s + n])
                assert np.array_equal(it.nuc, rna_codes(rec.seq)[s : s + n])
                want = {(a - s, b - s) for a, b in pairs_in(rec.pairs, L) if s <= a and b < s + n}
                assert pairs_in(it.pairs, n) == want
                assert len(it.pairs) == n
    for k, L in enumerate(lengths):
        seen = starts[f"r{k}"]
        assert seen == {0} if L <= M else {0, L - M} <= seen, (L, sorted(seen))  # both ends are reached


def test_prior_and_pair_set_windows_are_the_dense_crops():
    rng = np.random.default_rng(1)
    for L in (1, 2, 9, 10, 11, 30):
        ij = np.array([(a, b) for a in range(L) for b in range(a + 1, L) if rng.random() < 0.3], dtype=np.int64)
        ij = ij.reshape(-1, 2)
        sp = SparsePairs(L, ij[:, 0], ij[:, 1], rng.random(len(ij)).astype(np.float32))
        ps = PairSet(ij, L)
        dense = sp.dense()
        for s in range(L):
            for e in range(s + 1, L + 1):
                w = sp.window(s, e)
                assert w.length == e - s
                np.testing.assert_array_equal(w.dense(), dense[s:e, s:e])
                cut = ps.window(s, e)
                assert cut.length == e - s
                assert {tuple(x) for x in cut.ij.tolist()} == {
                    (a - s, b - s) for a, b in ij.tolist() if a >= s and b < e
                }
