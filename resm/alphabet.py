"""ESM-2's 33-token alphabet, taken from fair-esm so that ids always agree with it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from esm.data import Alphabet

ALPHABET = Alphabet.from_architecture("ESM-1b")  # the alphabet every ESM-2 model uses
PAD = ALPHABET.padding_idx
BOS = ALPHABET.cls_idx
EOS = ALPHABET.eos_idx
MASK = ALPHABET.mask_idx
VOCAB_SIZE = len(ALPHABET.all_toks)


def tok(letter: str) -> int:
    """Token id of a single alphabet letter; KeyError for letters ESM does not know."""
    if letter not in ALPHABET.tok_to_idx:
        raise KeyError(f"{letter!r} is not in the ESM-2 alphabet")
    return ALPHABET.tok_to_idx[letter]


def pad_batch(ids: Sequence[np.ndarray], bos: bool = True, eos: bool = True) -> torch.Tensor:
    """Stack token-id arrays into a (B, T) LongTensor with BOS/EOS and right padding."""
    extra = int(bos) + int(eos)
    width = max(len(x) for x in ids) + extra
    out = torch.full((len(ids), width), PAD, dtype=torch.long)
    for b, x in enumerate(ids):
        n = len(x)
        if bos:
            out[b, 0] = BOS
        out[b, int(bos) : int(bos) + n] = torch.as_tensor(np.asarray(x), dtype=torch.long)
        if eos:
            out[b, int(bos) + n] = EOS
    return out
