"""The one rule for a decoding setting in kcal/mol (:class:`resm.structure.decode.Decoding`'s
``turner_scale`` and ``turner_penalty``; ``resm fold`` and ``resm evaluate structure``'s
``--turner-scale``): a finite number in [0, 1000]. ``Decoding`` checks its values with it and the command
line's option rules (``resm.commands.common.OPTION_RULES``) use it, so both say the same words.
It imports nothing heavy: the command line's parser reads it without numpy or torch."""

from __future__ import annotations

import math

KCAL_MAX = 1000.0
"""The largest: ViennaRNA keeps soft-constraint energies as integers in dcal/mol, which a scale
of 1e9 (times a log-odds of up to 9.2) overflowed, and 1e308 overflowed numpy itself (a
RuntimeWarning on stderr); 1,000 kcal/mol is already far past any energy of a structure."""

KCAL_RULE = f"must be a finite number in [0, {KCAL_MAX:g}] (kcal/mol)"
"""What a setting in kcal/mol must be, as errors say it (``..., got VALUE`` follows)."""


def finite(v) -> bool:
    """A real number (not a bool) that is finite."""
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def kcal_ok(v) -> bool:
    """``v`` keeps :data:`KCAL_RULE`: a finite number in [0, :data:`KCAL_MAX`]."""
    return finite(v) and 0 <= v <= KCAL_MAX
