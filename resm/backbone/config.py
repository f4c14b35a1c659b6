"""Architecture presets of ESM-2 (fair-esm names) and the config object of the backbone."""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass

from ..alphabet import VOCAB_SIZE


@dataclass(frozen=True)
class ESM2Config:
    num_layers: int
    embed_dim: int
    attention_heads: int
    token_dropout: bool = True
    vocab_size: int = VOCAB_SIZE
    layer_norm_eps: float = 1e-5

    @property
    def ffn_dim(self) -> int:
        return 4 * self.embed_dim

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.attention_heads

    @property
    def n_parameters(self) -> int:
        """Parameters of the ESM-2 this config builds (:class:`resm.backbone.esm2.ESM2`), from the
        config alone: the token embedding (tied to the LM head's output), per layer the attention's
        four projections, the feed-forward pair and two layer norms, the final layer norm, the LM
        head's dense, layer norm and bias, and the contact head's regression."""
        d, v, n = self.embed_dim, self.vocab_size, self.num_layers
        layer = 4 * (d * d + d) + (d * self.ffn_dim + self.ffn_dim) + (self.ffn_dim * d + d) + 4 * d
        lm_head = d * d + d + 2 * d + v
        return v * d + n * layer + 2 * d + lm_head + n * self.attention_heads + 1

    def require_buildable(self, key: str, value: str, train: bool = True) -> None:
        """Refuse (one line naming ``key`` and its ``value``) an ESM-2 too big for this machine,
        before it is built: to train (``train``: weights, gradients, Adam's moments) or only to
        hold its weights (:func:`resm.utils.memory.require_trainable`)."""
        from ..utils.memory import WEIGHT_BYTES_PER_PARAMETER, require_trainable

        per = None if train else WEIGHT_BYTES_PER_PARAMETER
        require_trainable(self.n_parameters, key, value, "the ESM-2", bytes_per_parameter=per)

    def to_dict(self) -> dict:
        return asdict(self)

    def __post_init__(self):
        for name in ("num_layers", "embed_dim", "attention_heads", "vocab_size"):
            positive_int(getattr(self, name), name)
        flag(self.token_dropout, "token_dropout")  # a file's "no" or 0 read as true or false in silence
        layer_norm_eps(self.layer_norm_eps)
        if self.embed_dim % self.attention_heads:
            raise ValueError(f"embed_dim {self.embed_dim} must be divisible by attention_heads {self.attention_heads}")


def positive_int(v, key: str) -> int:
    """``v`` when it is an integer >= 1 (not a bool), else a ValueError naming ``key``: an
    architecture value read from a model's file (a fair-esm ``cfg.model``, a Hugging Face
    ``config.json``), which a wrong type or value would otherwise turn into a crash deep in
    building the model."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{key} must be a positive integer, got {v!r}")
    return int(v)


def flag(v, key: str) -> bool:
    """``v`` when it is a bool, else a ValueError naming ``key``."""
    if not isinstance(v, bool):
        raise ValueError(f"{key} must be true or false, got {v!r}")
    return v


# The layer norm's epsilon a model may have: ESM-2 uses 1e-5; one far above the variance of a
# hidden state (0.1 and up) makes every layer norm a scaling by a constant, and the embeddings
# meaningless, with no error.
LAYER_NORM_EPS_MAX = 0.1


def layer_norm_eps(v, key: str = "layer_norm_eps") -> float:
    """``v`` when it is a number in (0, :data:`LAYER_NORM_EPS_MAX`] (not a bool), else a
    ValueError naming ``key``."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (0 < v <= LAYER_NORM_EPS_MAX):
        raise ValueError(f"{key} must be a number in (0, {LAYER_NORM_EPS_MAX}] (ESM-2 uses 1e-05), got {v!r}")
    return float(v)


# The released ESM-2 family (fair-esm's esm.pretrained names), plus tiny presets for tests.
ARCHS = {
    "esm2_t6_8M_UR50D": ESM2Config(6, 320, 20),
    "esm2_t12_35M_UR50D": ESM2Config(12, 480, 20),
    "esm2_t30_150M_UR50D": ESM2Config(30, 640, 20),
    "esm2_t33_650M_UR50D": ESM2Config(33, 1280, 20),
    "esm2_t36_3B_UR50D": ESM2Config(36, 2560, 40),
    "esm2_t48_15B_UR50D": ESM2Config(48, 5120, 40),
    "tiny": ESM2Config(2, 64, 4),
    "small": ESM2Config(4, 128, 8),
}
