"""What the decoding tests share: a v3.2 file's stored decoding, random canonical candidates,
and the pre-option decoding written out step by step (the reference the options must equal
when they are off)."""

from __future__ import annotations

import numpy as np

from resm.nucleotides import PAIR_TYPE, lenient_codes
from resm.structure.decode import Decoding, add_pseudoknots, blend, mea_auto, mea_pairs

SHIPPED = {"gamma": 2.0, "prior_weight": 0.1, "pseudoknot_threshold": 0.5, "auto_gamma": True}  # a v3.2 file's


def canonical_candidates(
    seq: str, seed: int = 0, beta: tuple[float, float] = (0.3, 3.0)
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every canonical pair (i < j, loop >= 3) with random model and prior probabilities
    (Beta(*beta) draws, seeded)."""
    codes = lenient_codes(seq)
    i, j = np.nonzero(np.triu(PAIR_TYPE[codes[:, None], codes[None, :]] >= 0, 4))
    rng = np.random.default_rng(seed)
    return i, j, rng.beta(*beta, len(i)).astype(np.float32), rng.beta(*beta, len(i)).astype(np.float32)


def todays_decoding(seq, i, j, mp, pp, d: Decoding) -> np.ndarray:
    """The decoding as it was before the Turner and length options (written out here, not
    called): blend, MEA (per-sequence gamma or fixed), pseudoknots."""
    p = blend(mp, pp, d.prior_weight)
    pairs = mea_auto(seq, i, j, p) if d.auto_gamma else mea_pairs(seq, i, j, p, d.gamma)
    return add_pseudoknots(pairs, i, j, p, d.pseudoknot_threshold) if d.pseudoknot_threshold is not None else pairs
