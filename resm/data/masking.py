"""BERT-style masking of mapped RNA batches and the masked-LM loss.

Only positions that hold one of the scheme's letters are ever selected: BOS, EOS, PAD and
the scheme's "unknown" letter (ambiguous nucleotides) are never targets. Random replacements
are drawn from the scheme's letters only, so the model never sees protein letters the mapping
cannot produce.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..alphabet import MASK

IGNORE_INDEX = -100
LetterIds = Sequence[int] | torch.Tensor


@dataclass
class MaskingConfig:
    """Masking settings.

    Attributes:
        mask_prob: expected fraction of eligible positions selected as targets.
        mask_token_frac: fraction of selected positions replaced by <mask>.
        random_token_frac: fraction replaced by a random scheme letter (the rest keep
            their token).
        span: with k > 1, selected positions come in contiguous runs of k (shorter only
            where a run meets the sequence end or an ineligible position); run starts are
            drawn so that the expected selected fraction is still ``mask_prob``.
        restrict_logits: compute the loss over the scheme's letters only (used by the
            trainer through ``mlm_loss(..., letter_ids)``).
    """

    mask_prob: float = 0.15
    mask_token_frac: float = 0.8
    random_token_frac: float = 0.1
    span: int = 1
    restrict_logits: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"mask_prob must lie in (0, 1), got {self.mask_prob}")
        if self.mask_token_frac < 0 or self.random_token_frac < 0:
            raise ValueError("mask_token_frac and random_token_frac must be >= 0")
        if self.mask_token_frac + self.random_token_frac > 1.0 + 1e-9:
            raise ValueError(
                f"mask_token_frac + random_token_frac = {self.mask_token_frac + self.random_token_frac} exceeds 1"
            )
        if self.span < 1:
            raise ValueError(f"span must be >= 1, got {self.span}")


def _letters(letter_ids: LetterIds, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(letter_ids, dtype=torch.long).flatten().to(device)
    if t.numel() == 0:
        raise ValueError("letter_ids is empty")
    return t


def _rand(shape, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    # Draw on the generator's device (a CPU generator cannot feed CUDA kernels), then move.
    gdev = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=gdev).to(device)


def _select_exact(eligible: torch.Tensor, p: float, u: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Per row, select round_stochastic(p * n) (at least 1) of its n eligible positions."""
    n = eligible.sum(dim=1)
    k = torch.floor(n.to(torch.float64) * p + r.to(torch.float64)).long()
    k = torch.minimum(torch.clamp(k, min=1), n)
    scores = torch.where(eligible, u, torch.full_like(u, 2.0))
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return ranks < k[:, None]


def _select_spans(
    eligible: torch.Tensor, p: float, span: int, starts_u: torch.Tensor, fix_u: torch.Tensor
) -> torch.Tensor:
    """Bernoulli run starts with q = 1 - (1 - p)^(1/span); each covers ``span`` positions.

    Starts may also fall in the span-1 positions before the row, so every position is
    covered with probability exactly p. Rows with eligible positions but no selection get
    one run starting at a random eligible position.
    """
    B, T = eligible.shape
    q = 1.0 - (1.0 - p) ** (1.0 / span)
    starts = (starts_u < q).to(torch.float32)  # (B, T + span - 1), index j = position j - span + 1
    covered = F.max_pool1d(starts[:, None, :], kernel_size=span, stride=1)[:, 0, :T] > 0
    sel = covered & eligible
    missing = eligible.any(dim=1) & ~sel.any(dim=1)
    if bool(missing.any()):
        scores = torch.where(eligible, fix_u, torch.full_like(fix_u, -1.0))
        first = scores.argmax(dim=1)
        pos = torch.arange(T, device=eligible.device)[None, :]
        run = (pos >= first[:, None]) & (pos < first[:, None] + span) & eligible
        sel = sel | (run & missing[:, None])
    return sel


def mask_batch(
    tokens: torch.Tensor,
    letter_ids: LetterIds,
    cfg: MaskingConfig | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask a padded (B, T) batch for MLM training.

    Eligible positions are those holding a token of ``letter_ids`` (so never BOS, EOS, PAD
    or the scheme's unknown letter). About ``cfg.mask_prob`` of them are selected (at least
    one per sequence that has any); of those, ``mask_token_frac`` become <mask>,
    ``random_token_frac`` a letter drawn uniformly from ``letter_ids`` and the rest are
    kept. Returns ``(inputs, labels)`` where labels hold the original token at selected
    positions and -100 elsewhere. Reproducible for a seeded ``generator``.
    """
    cfg = cfg or MaskingConfig()
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be (B, T), got shape {tuple(tokens.shape)}")
    tokens = tokens.long()
    device = tokens.device
    letters = _letters(letter_ids, device)
    B, T = tokens.shape
    eligible = torch.isin(tokens, letters)

    if cfg.span == 1:
        u = _rand((B, T), generator, device)
        sel = _select_exact(eligible, cfg.mask_prob, u, _rand((B,), generator, device))
    else:
        sel = _select_spans(
            eligible,
            cfg.mask_prob,
            cfg.span,
            _rand((B, T + cfg.span - 1), generator, device),
            _rand((B, T), generator, device),
        )

    action = _rand((B, T), generator, device)
    gdev = generator.device if generator is not None else torch.device("cpu")
    pick = torch.randint(0, letters.numel(), (B, T), generator=generator, device=gdev).to(device)
    to_mask = sel & (action < cfg.mask_token_frac)
    to_random = sel & ~to_mask & (action < cfg.mask_token_frac + cfg.random_token_frac)

    inputs = tokens.clone()
    inputs[to_mask] = MASK
    inputs[to_random] = letters[pick[to_random]]
    labels = torch.where(sel, tokens, torch.full_like(tokens, IGNORE_INDEX))
    return inputs, labels


def restricted_logits(logits: torch.Tensor, letter_ids: LetterIds) -> torch.Tensor:
    """``logits`` (..., V) with every vocabulary entry outside ``letter_ids`` set to -inf."""
    letters = _letters(letter_ids, logits.device)
    allowed = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    allowed[letters] = True
    return logits.masked_fill(~allowed, -math.inf)


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor, letter_ids: LetterIds | None = None) -> torch.Tensor:
    """Mean cross-entropy over labelled positions (labels != -100).

    ``logits`` is (B, T, V) and ``labels`` (B, T). With ``letter_ids`` the softmax runs over
    those tokens only (labels must then be letters, as ``mask_batch`` guarantees). Computed
    in float32; a batch without labelled positions gives a zero that still has a gradient.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} do not match")
    picked = labels != IGNORE_INDEX
    flat = logits[picked].float()
    target = labels[picked].long()
    if target.numel() == 0:
        return logits.sum() * 0.0
    if letter_ids is not None:
        flat = restricted_logits(flat, letter_ids)
    return F.cross_entropy(flat, target)
