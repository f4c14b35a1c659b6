"""The zero-shot interaction score (`resm interact --zero-shot`) index by index: for each pair,
``a + linker + b`` run alone through the backbone's contact head, the mean over a's bases of
each one's largest contact probability into b's bases, written here from the contact map
(rows 0..len(a) - 1, columns len(a) + len(linker) .. + len(b) - 1); the same in batches of
pairs of different lengths (padding) and batch sizes."""

from __future__ import annotations

import numpy as np
import torch

from resm.alphabet import pad_batch
from resm.data.rri import Pair
from resm.mapping import get_scheme
from resm.tasks.rri import zero_shot_scores
from tests.conftest import random_backbone


def reference(bb, scheme, a: str, b: str, linker: str) -> float:
    seq = a + linker + b
    C = bb.predict_contacts(pad_batch([scheme.encode(seq)]))[0].numpy()
    assert C.shape == (len(seq), len(seq))
    off = len(a) + len(linker)
    return float(np.mean([max(C[i, off + j] for j in range(len(b))) for i in range(len(a))]))


@torch.no_grad()
def test_each_score_is_its_pairs_contact_block_alone():
    bb = random_backbone(3)
    with torch.no_grad():  # a contact head that reads every layer and head, so every cell moves
        bb.contact_head.regression.weight.normal_(0, 1.0)
    scheme = get_scheme("kdny")
    rng = np.random.default_rng(4)

    def rand(n: int) -> str:
        return "".join(rng.choice(list("ACGU"), n))

    pairs = [
        Pair(f"a{k}", rand(la), f"b{k}", rand(lb), None, k + 1)
        for k, (la, lb) in enumerate([(1, 1), (5, 20), (22, 3), (9, 9), (1, 30), (14, 2)])
    ]
    for linker in ("", "NNN", "A"):
        want = np.array([reference(bb, scheme, p.a, p.b, linker) for p in pairs], np.float32)
        for batch_size in (1, 4, len(pairs)):
            got = zero_shot_scores(bb, scheme, pairs, linker=linker, batch_size=batch_size)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        assert len(set(want.round(4).tolist())) > 3  # the scores differ: the test reads real cells
