"""Masking statistics, invariants and the MLM loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from resm.alphabet import BOS, EOS, MASK, PAD, VOCAB_SIZE, pad_batch
from resm.data.masking import (
    IGNORE_INDEX,
    MaskingConfig,
    mask_batch,
    mlm_loss,
    restricted_logits,
)
from resm.mapping import get_scheme

SCHEME = get_scheme("kdny")
LETTERS = SCHEME.letter_ids
UNKNOWN = SCHEME.unknown_id


def random_batch(n: int, lo: int, hi: int, seed: int = 0, unknown_frac: float = 0.0):
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(n):
        ids = np.asarray(LETTERS)[rng.integers(0, 4, rng.integers(lo, hi + 1))]
        if unknown_frac:
            ids[rng.random(len(ids)) < unknown_frac] = UNKNOWN
        seqs.append(ids)
    return pad_batch(seqs)


def eligible_of(tokens: torch.Tensor, letters=LETTERS) -> torch.Tensor:
    return torch.isin(tokens, torch.tensor(letters))


def runs(row: torch.Tensor):
    """(start, end) of maximal runs of True in a 1-D bool tensor (end exclusive)."""
    x = np.concatenate([[False], row.numpy(), [False]]).astype(np.int8)
    d = np.diff(x)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


@pytest.fixture(scope="module")
def big_batch() -> torch.Tensor:
    return random_batch(256, 50, 400, seed=1, unknown_frac=0.02)


@pytest.mark.parametrize("span", [1, 3])
def test_masked_fraction_close_to_mask_prob(big_batch, span):
    g = torch.Generator().manual_seed(0)
    _, labels = mask_batch(big_batch, LETTERS, MaskingConfig(span=span), g)
    eligible = eligible_of(big_batch)
    frac = (labels != IGNORE_INDEX).sum().item() / eligible.sum().item()
    assert abs(frac - 0.15) < 0.01


def test_80_10_10_split(big_batch):
    g = torch.Generator().manual_seed(1)
    inputs, labels = mask_batch(big_batch, LETTERS, MaskingConfig(), g)
    sel = labels != IGNORE_INDEX
    n = sel.sum().item()
    masked = (inputs[sel] == MASK).sum().item() / n
    changed = ((inputs[sel] != MASK) & (inputs[sel] != big_batch[sel])).sum().item() / n
    kept = (inputs[sel] == big_batch[sel]).sum().item() / n
    assert abs(masked - 0.8) < 0.02
    # a random letter equals the original 1 time in 4
    assert abs(changed - 0.1 * 3 / 4) < 0.015
    assert abs(kept - (0.1 + 0.1 / 4)) < 0.015


def test_random_replacements_only_from_letter_ids(big_batch):
    g = torch.Generator().manual_seed(2)
    cfg = MaskingConfig(mask_token_frac=0.0, random_token_frac=1.0)
    inputs, labels = mask_batch(big_batch, LETTERS, cfg, g)
    sel = labels != IGNORE_INDEX
    assert torch.isin(inputs[sel], torch.tensor(LETTERS)).all()
    # every letter is drawn, and no other token ever appears anywhere new
    assert set(inputs[sel].tolist()) == set(LETTERS)
    assert (inputs[~sel] == big_batch[~sel]).all()


def test_never_selects_special_or_unknown_positions(big_batch):
    g = torch.Generator().manual_seed(3)
    for span in (1, 4):
        inputs, labels = mask_batch(big_batch, LETTERS, MaskingConfig(span=span), g)
        special = torch.isin(big_batch, torch.tensor([BOS, EOS, PAD, UNKNOWN]))
        assert (labels[special] == IGNORE_INDEX).all()
        assert (inputs[special] == big_batch[special]).all()
        sel = labels != IGNORE_INDEX
        assert (labels[sel] == big_batch[sel]).all()


def test_input_not_modified_and_reproducible(big_batch):
    before = big_batch.clone()
    a = mask_batch(big_batch, LETTERS, MaskingConfig(), torch.Generator().manual_seed(7))
    b = mask_batch(big_batch, LETTERS, MaskingConfig(), torch.Generator().manual_seed(7))
    c = mask_batch(big_batch, LETTERS, MaskingConfig(), torch.Generator().manual_seed(8))
    assert torch.equal(big_batch, before)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


@pytest.mark.parametrize("span", [3, 5])
def test_span_masking_yields_runs(big_batch, span):
    g = torch.Generator().manual_seed(4)
    _, labels = mask_batch(big_batch, LETTERS, MaskingConfig(span=span), g)
    sel = labels != IGNORE_INDEX
    eligible = eligible_of(big_batch)
    lengths = []
    for b in range(big_batch.shape[0]):
        for s, e in runs(sel[b]):
            lengths.append(e - s)
            if e - s < span:  # only cut short by a sequence end or an unknown letter
                left_blocked = not eligible[b, s - 1]
                right_blocked = e >= big_batch.shape[1] or not eligible[b, e]
                assert left_blocked or right_blocked
    assert np.mean(lengths) >= span
    _, labels1 = mask_batch(big_batch, LETTERS, MaskingConfig(span=1), g)
    mean1 = np.mean([e - s for b in range(16) for s, e in runs(labels1[b] != IGNORE_INDEX)])
    assert mean1 < 1.5


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=8),
    span=st.integers(1, 4),
    prob=st.floats(0.01, 0.5),
    seed=st.integers(0, 2**31 - 1),
)
def test_invariants_and_at_least_one_target(lengths, span, prob, seed):
    rng = np.random.default_rng(seed)
    tokens = pad_batch([np.asarray(LETTERS)[rng.integers(0, 4, n)] for n in lengths])
    g = torch.Generator().manual_seed(seed)
    inputs, labels = mask_batch(tokens, LETTERS, MaskingConfig(mask_prob=prob, span=span), g)
    sel = labels != IGNORE_INDEX
    assert (sel.sum(dim=1) >= 1).all()
    assert not sel[tokens == PAD].any() and not sel[:, 0].any() and not sel[tokens == EOS].any()
    assert (inputs[~sel] == tokens[~sel]).all()
    assert torch.isin(inputs[sel], torch.tensor(list(LETTERS) + [MASK])).all()


def test_all_unknown_sequence_gets_no_target():
    tokens = pad_batch([np.full(5, UNKNOWN), np.asarray(LETTERS * 3)])
    _, labels = mask_batch(tokens, LETTERS, MaskingConfig(), torch.Generator().manual_seed(0))
    assert (labels[0] == IGNORE_INDEX).all()
    assert (labels[1] != IGNORE_INDEX).sum() >= 1


def test_config_validation():
    with pytest.raises(ValueError, match=r"^mask_prob must lie in \(0, 1\), got 0.0$"):
        MaskingConfig(mask_prob=0.0)
    with pytest.raises(ValueError, match=r"^mask_token_frac \+ random_token_frac = 1.1 exceeds 1$"):
        MaskingConfig(mask_token_frac=0.9, random_token_frac=0.2)
    with pytest.raises(ValueError, match=r"^span must be >= 1, got 0$"):
        MaskingConfig(span=0)


def _logits_and_labels(seed: int = 0):
    tokens = random_batch(6, 5, 30, seed=seed)
    g = torch.Generator().manual_seed(seed)
    _, labels = mask_batch(tokens, LETTERS, MaskingConfig(mask_prob=0.3), g)
    logits = torch.randn(*tokens.shape, VOCAB_SIZE, generator=g)
    return logits, labels


def test_mlm_loss_equals_cross_entropy_on_selected_positions():
    logits, labels = _logits_and_labels()
    flat = logits.reshape(-1, VOCAB_SIZE)
    expected = F.cross_entropy(flat, labels.reshape(-1), ignore_index=-100)
    sel = labels != IGNORE_INDEX
    manual = -torch.log_softmax(logits[sel], dim=-1).gather(1, labels[sel][:, None]).mean()
    loss = mlm_loss(logits, labels)
    assert torch.allclose(loss, expected, atol=1e-6)
    assert torch.allclose(loss, manual, atol=1e-6)


def test_restricted_logits():
    logits = torch.randn(2, 3, VOCAB_SIZE)
    r = restricted_logits(logits, LETTERS)
    others = [i for i in range(VOCAB_SIZE) if i not in LETTERS]
    assert torch.isneginf(r[..., others]).all()
    assert torch.equal(r[..., list(LETTERS)], logits[..., list(LETTERS)])


def test_restricted_loss_ignores_other_tokens():
    logits, labels = _logits_and_labels(1)
    letters = list(LETTERS)
    loss = mlm_loss(logits, labels, LETTERS)
    # equals a 4-way cross-entropy over the letter columns
    remap = {t: i for i, t in enumerate(letters)}
    sel = labels != IGNORE_INDEX
    target = torch.tensor([remap[t] for t in labels[sel].tolist()])
    expected = F.cross_entropy(logits[sel][:, letters], target)
    assert torch.allclose(loss, expected, atol=1e-6)
    # changing the logits of any other token changes nothing
    others = [i for i in range(VOCAB_SIZE) if i not in letters]
    bumped = logits.clone()
    bumped[..., others] += 50.0 * torch.randn(*logits.shape[:-1], len(others))
    assert torch.allclose(mlm_loss(bumped, labels, LETTERS), loss, atol=1e-6)
    assert not torch.allclose(mlm_loss(bumped, labels), mlm_loss(logits, labels))
    # gradients are finite and vanish outside the letters
    x = logits.clone().requires_grad_(True)
    mlm_loss(x, labels, LETTERS).backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[..., others] == 0).all()


def test_mlm_loss_without_targets_is_zero_with_grad():
    logits = torch.randn(2, 4, VOCAB_SIZE, requires_grad=True)
    labels = torch.full((2, 4), IGNORE_INDEX)
    loss = mlm_loss(logits, labels)
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and not math.isnan(logits.grad.sum().item())
