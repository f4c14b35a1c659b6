"""The one rule for a decoding setting in kcal/mol (:class:`resm.structure.decode.Decoding`'s
``turner_scale`` and ``turner_penalty``; ``resm fold`` and ``resm evaluate structure``'s
``--turner-scale``): a finite number >= 0. ``Decoding`` checks its values with it and the command
line's option rules (``resm.commands.common.OPTION_RULES``) use it, so both say the same words.
It imports nothing heavy: the command line's parser reads it without numpy or torch."""

from __future__ import annotations

import math

KCAL_RULE = "must be a finite number >= 0 (kcal/mol)"
"""What a setting in kcal/mol must be, as errors say it (``..., got VALUE`` follows)."""


def finite(v) -> bool:
    """A real number (not a bool) that is finite."""
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def kcal_ok(v) -> bool:
    """``v`` keeps :data:`KCAL_RULE`: a finite number >= 0."""
    return finite(v) and v >= 0
