"""Masked-LM pretraining's masking, correct to the last index: over a padded batch of rows of
1 to 13 nucleotides (unknown letters at a row's first and last nucleotide), BOS (column 0), EOS
(column n + 1), padding and unknown letters are never selected nor changed; every change is at
a selected position; random replacements are the scheme's letters only (resm.data.masking's
design: "a letter drawn uniformly from letter_ids"); and the MLM task's loss (train and
validation) is the cross-entropy over exactly the positions the model saw masked, counted once
each."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resm.alphabet import MASK, PAD, pad_batch
from resm.data.masking import IGNORE_INDEX, MaskingConfig, mask_batch
from resm.mapping import get_scheme
from resm.tasks.mlm import MLMTask, ValidationConfig

SCHEME = get_scheme("kdny")
LETTERS = list(SCHEME.letter_ids)
UNKNOWN = SCHEME.unknown_id
LENGTHS = [1, 2, 5, 13, 4, 13]


def rows(seed: int) -> list[np.ndarray]:
    """Token ids (no BOS/EOS) of rows of LENGTHS; rows 3 and 4 have an unknown letter at both
    ends (row 4 is unknown but for its two middle nucleotides)."""
    rng = np.random.default_rng(seed)
    out = [np.array(rng.choice(LETTERS, n), dtype=np.int64) for n in LENGTHS]
    out[3][[0, -1]] = UNKNOWN
    out[4][[0, -1]] = UNKNOWN
    return out


def where_letters(tokens: torch.Tensor) -> torch.Tensor:
    """Eligible positions from the layout alone: columns 1..n of row b holding a letter."""
    ok = torch.zeros_like(tokens, dtype=torch.bool)
    for b, n in enumerate(LENGTHS):
        ok[b, 1 : n + 1] = torch.isin(tokens[b, 1 : n + 1], torch.tensor(LETTERS))
    return ok


@pytest.mark.parametrize("span", [1, 3])
def test_masking_touches_only_the_nucleotides(span):
    cfg = MaskingConfig(mask_prob=0.3, span=span)
    seen_random = set()
    for seed in range(150):
        tokens = pad_batch(list(rows(seed)))
        assert tokens.shape == (len(LENGTHS), max(LENGTHS) + 2)
        ok = where_letters(tokens)
        inputs, labels = mask_batch(tokens, LETTERS, cfg, torch.Generator().manual_seed(seed))
        sel = labels != IGNORE_INDEX
        assert not (sel & ~ok).any()  # never BOS, EOS, PAD or an unknown letter
        assert torch.equal(labels[sel], tokens[sel])  # the label is the original token
        assert torch.equal(inputs[~sel], tokens[~sel])  # nothing else changes
        assert (sel.sum(1) >= 1).all()  # every row has a letter: at least one target
        changed = sel & (inputs != tokens) & (inputs != MASK)
        assert torch.isin(inputs[changed], torch.tensor(LETTERS)).all()
        seen_random |= set(inputs[changed].tolist())
        for b, n in enumerate(LENGTHS):  # the layout itself is intact at BOS, EOS and padding
            assert inputs[b, 0] == tokens[b, 0] and inputs[b, n + 1] == tokens[b, n + 1]
            assert (inputs[b, n + 2 :] == PAD).all()
    assert seen_random == set(LETTERS)


def test_all_selected_positions_become_mask_or_a_letter():
    """mask_token_frac 1: exactly the selected positions are <mask>; random_token_frac 1:
    every selected position holds a letter (the original one a quarter of the time)."""
    for seed in range(40):
        tokens = pad_batch(list(rows(seed)))
        g = torch.Generator().manual_seed(seed)
        inputs, labels = mask_batch(tokens, LETTERS, MaskingConfig(0.3, 1.0, 0.0), g)
        assert torch.equal(inputs == MASK, labels != IGNORE_INDEX)
        inputs, labels = mask_batch(tokens, LETTERS, MaskingConfig(0.3, 0.0, 1.0), g)
        sel = labels != IGNORE_INDEX
        assert torch.isin(inputs[sel], torch.tensor(LETTERS)).all() and not (inputs == MASK).any()


class PositionLogits(torch.nn.Module):
    """A stand-in model: logits that differ by row, column and token, and a record of what it
    was shown."""

    def __init__(self, vocab: int = 33):
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.table = torch.randn(8, 32, vocab, generator=g) * 2
        self.shown: list[torch.Tensor] = []

    def forward(self, tokens):
        self.shown.append(tokens.clone())
        B, T = tokens.shape
        return {"logits": self.table[:B, :T] + 0.0 * tokens[..., None]}


def task(restrict: bool) -> MLMTask:
    """The MLM task's loss and validation without data or a backbone (their own code)."""
    t = object.__new__(MLMTask)
    t.letter_ids = LETTERS
    t.mask_cfg = MaskingConfig(mask_prob=0.3, mask_token_frac=1.0, random_token_frac=0.0, restrict_logits=restrict)
    t.val_cfg = ValidationConfig(mask_seed=3)
    return t


def loss_over(model: PositionLogits, shown: torch.Tensor, tokens: torch.Tensor, restrict: bool):
    """Cross-entropy summed over the positions shown as <mask>, and their number."""
    logits = model.table[: shown.shape[0], : shown.shape[1]]
    pos = shown == MASK
    x = logits[pos]
    if restrict:
        x = torch.full_like(x, float("-inf")).index_copy(1, torch.tensor(LETTERS), x[:, LETTERS])
    return float(F.cross_entropy(x, tokens[pos], reduction="sum")), int(pos.sum())


@pytest.mark.parametrize("restrict", [False, True])
def test_the_loss_counts_exactly_the_masked_positions(restrict):
    t = task(restrict)
    for seed in range(10):
        model = PositionLogits()
        batch = list(rows(seed))
        tokens = pad_batch(batch)
        loss, stats = t.loss(model, batch, torch.Generator().manual_seed(seed), "cpu")
        (shown,) = model.shown
        assert not (shown[~where_letters(tokens)] == MASK).any()
        total, k = loss_over(model, shown, tokens, restrict)
        assert stats == {"tokens": sum(LENGTHS) + 2 * len(LENGTHS), "masked": k}
        assert float(loss) == pytest.approx(total / k, rel=1e-6)


@pytest.mark.parametrize("restrict", [False, True])
def test_the_validation_loss_is_the_mean_over_every_masked_position(restrict):
    """Two validation batches of different sizes: the mean over all their masked positions
    (token-weighted), not the mean of the two batch means."""
    t = task(restrict)
    t._val = [list(rows(1)), list(rows(2))[:2]]
    t.baseline = 0.0
    model = PositionLogits()
    r = t.validate(model, "cpu")
    sums = [loss_over(model, shown, pad_batch(b), restrict) for shown, b in zip(model.shown, t._val)]
    assert r["n_masked"] == sum(k for _, k in sums)
    assert sums[0][1] != sums[1][1]
    assert r["val_loss"] == pytest.approx(sum(s for s, _ in sums) / r["n_masked"], rel=1e-6)
