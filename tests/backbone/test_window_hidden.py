"""Backbone states of long sequences read through overlapping windows (`window_hidden`)."""

import numpy as np
import pytest
import torch

from resm.alphabet import pad_batch
from resm.backbone.encoder import window_hidden
from resm.mapping import get_scheme
from tests.conftest import random_backbone


def _seqs(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGU"), n)) for n in lengths]


def _alone(bb, seq):
    """States of one sequence run on its own, BOS and EOS included (n + 2, E)."""
    return bb(pad_batch([get_scheme().encode(seq)]), return_logits=False)["last_hidden"][0]


@torch.no_grad()
def test_short_sequences_and_window_zero_are_the_whole_pass():
    bb = random_backbone()
    toks = pad_batch([get_scheme().encode(s) for s in _seqs([40, 25, 33])])
    whole = bb(toks, return_logits=False)["last_hidden"]
    assert torch.equal(window_hidden(bb, toks, 0), whole)
    assert torch.equal(window_hidden(bb, toks, 40), whole)  # no sequence longer than the window


@torch.no_grad()
def test_each_position_comes_from_the_window_whose_centre_is_nearest():
    bb = random_backbone()
    seqs = _seqs([70, 12, 30])
    W = 20  # windows start at 0, 10, ..., 40 and the last at 50; centres 9.5, 19.5, ..., 59.5
    toks = pad_batch([get_scheme().encode(s) for s in seqs])
    out = window_hidden(bb, toks, W, max_windows=2)  # windows in several calls
    assert out.shape == (3, 72, 32)
    starts = [0, 10, 20, 30, 40, 50]
    wins = [_alone(bb, seqs[0][s : s + W]) for s in starts]
    for p in range(70):
        d = [abs(p - (s + (W - 1) / 2)) for s in starts]
        k = int(np.argmin(d))  # the first on a tie
        torch.testing.assert_close(out[0, 1 + p], wins[k][1 + p - starts[k]], rtol=0, atol=1e-6)
    torch.testing.assert_close(out[0, 0], wins[0][0], rtol=0, atol=1e-6)  # BOS from the first window
    torch.testing.assert_close(out[0, 71], wins[-1][W + 1], rtol=0, atol=1e-6)  # EOS from the last
    # a row no longer than the window (12 nt) runs whole, beside the windowed ones
    torch.testing.assert_close(out[1, :14], _alone(bb, seqs[1]), rtol=0, atol=1e-5)
    assert torch.count_nonzero(out[1, 14:]) == 0  # padding stays zero
    # and the windowed states differ from the whole pass where the context was cut
    whole = bb(toks, return_logits=False)["last_hidden"]
    assert (out[0, 1:71] - whole[0, 1:71]).abs().max() > 1e-3


def test_gradients_flow_through_the_windows():
    bb = random_backbone().train()
    toks = pad_batch([get_scheme().encode(s) for s in _seqs([50])])
    window_hidden(bb, toks, 16).sum().backward()
    grads = [p.grad for p in bb.parameters() if p.requires_grad and p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_the_pair_head_setting_is_checked_and_old_files_read_as_whole():
    from resm.heads.pairs import PairHeadConfig

    cfg = PairHeadConfig(embed_window=512)
    assert PairHeadConfig.from_dict(cfg.to_dict()).embed_window == 512
    old = cfg.to_dict()
    del old["embed_window"]
    assert PairHeadConfig.from_dict(old).embed_window == 0
    with pytest.raises(ValueError, match="embed_window"):
        PairHeadConfig(embed_window=-1)
