"""`resm predict --task mrl` on UTRs around and past the 512-nt encoder window, correct to the
last index: the backbone reads a UTR over 512 nt in windows of 512 nt every 256, the last one
ending at the 3' end, each nucleotide taking the state of the window whose centre is nearest
(the first on a tie); the expression head pools exactly the UTR's positions, and its anchor
reads the last ``anchor`` of them (aligned at the 3' end, next to the start codon).

The expected prediction is built here from that definition alone (each window run by itself,
the head's pooling written out for one unpadded UTR) and compared with ``predict_mrl`` on one
padded batch of UTRs of 511, 512, 513 and more nucleotides (and one shorter than the anchor)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resm.alphabet import pad_batch
from resm.backbone.encoder import BackboneEncoder
from resm.heads.mrl import ExpressionHead, ExpressionHeadConfig, mrl_apply
from resm.mapping import get_scheme
from resm.tasks.base import TaskModel
from resm.tasks.mrl import ENCODER_WINDOW, predict_mrl
from tests.conftest import random_backbone

SCHEME = get_scheme("kdny")
ANCHOR = 10
W = 512  # the encoder window of `resm predict --task mrl`


@pytest.fixture(scope="module")
def model():
    bb = random_backbone(6)
    torch.manual_seed(6)
    head = ExpressionHead(ExpressionHeadConfig(embed_dim=bb.embed_dim, hidden=8, conv_layers=1, anchor=ANCHOR))
    with torch.no_grad():  # the anchor weights start at zero: give every anchor slot its own weight
        head.anchor.normal_(0, 1.0)
    return TaskModel(BackboneEncoder(bb, "frozen"), {"mrl": head}, {"mrl": mrl_apply}).eval()


def starts_of(n: int, w: int = W) -> list[int]:
    """Windows every w // 2 from 0, the last moved back to end at n; one window when n <= w."""
    if n <= w:
        return [0]
    out, s = [], 0
    while s + w < n:
        out.append(s)
        s += w // 2
    return out + [n - w]


@torch.no_grad()
def states(bb, seq: str) -> torch.Tensor:
    """(L, E): each nucleotide's state from the window (run alone) whose centre is nearest."""
    w, n = W, len(seq)
    starts = starts_of(n)
    runs = [
        bb(pad_batch([SCHEME.encode(seq[s : s + min(w, n)])]), return_logits=False)["last_hidden"][0] for s in starts
    ]
    rows = []
    for p in range(n):
        d = [abs(p - (s + (min(w, n) - 1) / 2)) for s in starts]
        k = int(np.argmin(d))  # the first on a tie
        rows.append(runs[k][1 + p - starts[k]])
    return torch.stack(rows)


@torch.no_grad()
def head_alone(head: ExpressionHead, h: torch.Tensor) -> float:
    """The expression head on one UTR's states (L, E), written out without padding or masks."""
    x = F.gelu(head.proj(head.norm(h)))
    for conv in head.convs:
        x = x + F.gelu(conv(x.T[None]))[0].T
    k = head.anchor.shape[0]
    tail = torch.cat([x.new_zeros(max(0, k - len(x)), x.shape[1]), x[-k:]])  # the 3'-most k, right-aligned
    feats = torch.cat([x.mean(0), x.amax(0), (tail * head.anchor).sum(0)])
    return float(head.out(feats[None])[0, 0])


def rand(rng, n: int) -> str:
    return "".join(rng.choice(list("ACGU"), n))


def test_window_starts_of_the_definition():
    assert ENCODER_WINDOW == W
    assert starts_of(511) == [0] and starts_of(512) == [0]
    assert starts_of(513) == [0, 1] and starts_of(768) == [0, 256] and starts_of(769) == [0, 256, 257]


def test_utrs_around_the_window_are_predicted_as_defined(model):
    """UTRs of 511, 512, 513, 769 and 3 nt in one batch (padding beside every one): each
    prediction equals the one built from the windows and the head written out by hand."""
    rng = np.random.default_rng(11)
    seqs = [rand(rng, n) for n in (511, 512, 513, 769, 3)]
    seen = []  # what the head reads: the encoder's states and mask during predict_mrl
    hook = model.encoder.register_forward_hook(lambda mod, args, out: seen.append(out))
    try:
        got = predict_mrl(model, SCHEME, seqs, mean=0.0, std=1.0, batch_size=8)
    finally:
        hook.remove()
    bb, head = model.encoder.backbone, model.heads["mrl"]
    ((h, mask),) = seen
    expected = [states(bb, s) for s in seqs]
    for row, (seq, st) in enumerate(zip(seqs, expected)):
        assert mask[row].tolist() == [True] * len(seq) + [False] * (mask.shape[1] - len(seq))
        torch.testing.assert_close(h[row, : len(seq)], st, rtol=0, atol=1e-5)
    want = [head_alone(head, st) for st in expected]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    assert model.encoder.window == 0  # the inference window does not outlive the call


@torch.no_grad()
def test_the_head_pools_exactly_the_utr_and_anchors_at_its_3_end(model):
    """The head on a padded batch whose padding holds large values: each row's output is the
    head written out on its own positions (mean, max and the 3'-most ANCHOR, right-aligned),
    for lengths below, at and above the anchor."""
    head = model.heads["mrl"]
    torch.manual_seed(13)
    lengths = [3, ANCHOR - 1, ANCHOR, ANCHOR + 1, 17, 30]
    T = max(lengths) + 4
    h = torch.randn(len(lengths), T, head.cfg.embed_dim)
    mask = torch.arange(T)[None] < torch.tensor(lengths)[:, None]
    h[~mask] = 50.0  # padding that would show in a mean, a max or a misplaced anchor
    got = head(h, mask)
    want = [head_alone(head, h[b, :n]) for b, n in enumerate(lengths)]
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-5)


@torch.no_grad()
def test_the_optimus_baseline_right_aligns_each_utr_at_its_3_end():
    """The Optimus CNN's input columns for UTRs of length, length - 1 and 1 nt in one padded
    batch: the last len(u) columns hold u's one-hot nucleotides, in order; the others are zero
    (padding never reaches a column), and each row's output equals the row alone."""
    from resm.heads.mrl import OptimusCNN, OptimusConfig
    from resm.tasks.base import encode_batch

    cfg = OptimusConfig(length=12, filters=4, kernel=3, conv_layers=1, dense=4, dropout=0.0)
    torch.manual_seed(14)
    head = OptimusCNN(cfg).eval()
    seen = []
    hook = head.convs.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    try:
        rng = np.random.default_rng(14)
        seqs = [rand(rng, n) for n in (12, 11, 1)]
        b = encode_batch(seqs, SCHEME)
        together = head(b["nuc"], b["mask"])
        (x,) = seen
        for row, s in enumerate(seqs):
            onehot = torch.zeros(4, 12)
            for p, c in enumerate(s):
                onehot["ACGU".index(c), 12 - len(s) + p] = 1.0
            assert torch.equal(x[row], onehot)
            one = encode_batch([s], SCHEME)
            torch.testing.assert_close(head(one["nuc"], one["mask"])[0], together[row], rtol=0, atol=1e-6)
    finally:
        hook.remove()
