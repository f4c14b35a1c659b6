"""Architecture presets of ESM-2 (fair-esm names) and the config object of the backbone."""

from __future__ import annotations

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

    def to_dict(self) -> dict:
        return asdict(self)

    def __post_init__(self):
        if self.embed_dim % self.attention_heads:
            raise ValueError("embed_dim must be divisible by attention_heads")


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
