"""Windowed backbone states (`window_hidden`) at the edges: every length from 1 to a few windows,
windows of 1, 2 and odd sizes, lengths equal to, one more and one less than the window, beside
shorter rows in one padded batch. Each position's state is the one its window gives it when run
alone, the window chosen from the definition (windows every ``window // 2`` nucleotides, the
last ending at the sequence's end, the nearest centre, the first on a tie), and the stitched
row has exactly L + 2 states (BOS from the first window, EOS from the last) and zero padding
(when no row is longer than the window the batch is the plain pass, padding rows included)."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from resm.alphabet import pad_batch
from resm.backbone.encoder import window_hidden
from resm.mapping import get_scheme
from tests.conftest import random_backbone

SCHEME = get_scheme("kdny")
BB = random_backbone(2)


def alone(seq: str) -> torch.Tensor:
    return BB(pad_batch([SCHEME.encode(seq)]), return_logits=False)["last_hidden"][0]


def windows(n: int, w: int) -> list[int]:
    """Starts of the windows over n nt: k * step, the last moved back to end at n."""
    step = max(1, w // 2)
    return sorted({min(k * step, n - w) for k in range(math.ceil((n - w) / step) + 1)})


@torch.no_grad()
@settings(max_examples=40, deadline=None)
@given(w=st.integers(1, 9), n=st.integers(1, 26), other=st.integers(1, 26), seed=st.integers(0, 2**16))
def test_every_position_is_its_nearest_windows_state(w, n, other, seed):
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list("ACGU"), k)) for k in (n, other)]
    toks = pad_batch([SCHEME.encode(s) for s in seqs])
    out = window_hidden(BB, toks, w, max_windows=3)
    assert out.shape == (2, max(n, other) + 2, BB.embed_dim)
    for row, seq in enumerate(seqs):
        size = len(seq)
        if max(n, other) > w:  # windows were cut: padding is zero (else it is the plain pass's)
            assert torch.count_nonzero(out[row, size + 2 :]) == 0
        if size <= w:  # a row no longer than the window runs whole
            torch.testing.assert_close(out[row, : size + 2], alone(seq), rtol=0, atol=1e-5)
            continue
        starts = windows(size, w)
        assert starts[0] == 0 and starts[-1] + w == size  # the first starts at 0, the last ends at L
        states = [alone(seq[s : s + w]) for s in starts]
        for p in range(size):
            d = [abs(p - (s + (w - 1) / 2)) for s in starts]
            k = int(np.argmin(d))  # the first on a tie
            assert 0 <= p - starts[k] < w
            torch.testing.assert_close(out[row, 1 + p], states[k][1 + p - starts[k]], rtol=0, atol=1e-5)
        torch.testing.assert_close(out[row, 0], states[0][0], rtol=0, atol=1e-5)
        torch.testing.assert_close(out[row, size + 1], states[-1][w + 1], rtol=0, atol=1e-5)


@torch.no_grad()
def test_the_window_boundary_lengths():
    """L = window - 1 and window: the whole pass; window + 1: two windows, at 0 and 1."""
    w = 8
    rng = np.random.default_rng(5)
    for n, starts in ((w - 1, None), (w, None), (w + 1, [0, 1]), (w + w // 2, [0, 4]), (w + w // 2 + 1, [0, 4, 5])):
        seq = "".join(rng.choice(list("ACGU"), n))
        toks = pad_batch([SCHEME.encode(seq)])
        out = window_hidden(BB, toks, w)[0]
        if starts is None:
            assert torch.equal(out, BB(toks, return_logits=False)["last_hidden"][0])
            continue
        assert windows(n, w) == starts
        assert (out[1:-1] - alone(seq)[1:-1]).abs().max() > 1e-4  # the windows were used
