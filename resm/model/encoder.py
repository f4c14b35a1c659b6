"""Per-nucleotide encoders shared by the fine-tuning heads.

Every supervised head (structure, RNA–RNA interaction, expression) reads the same thing:
residue embeddings ``h`` (B, L, E) and a residue mask (B, L), BOS/EOS stripped. Two encoders
produce it from a batch dict (``tokens`` from :func:`resm.alphabet.pad_batch`, ``nuc`` codes
0..4 from :func:`resm.mapping.rna_codes`, 4 at padding):

* :class:`BackboneEncoder`: an ESM-2 backbone in one of three modes, ``frozen`` (no
  gradients, eval mode always), ``adapters`` (frozen base weights + a trainable LoRA adapter,
  see :mod:`resm.model.adapters`) or ``full`` (everything trains except the LM head and the
  contact regression, which no head uses);
* :class:`OneHotEncoder`: one-hot nucleotides and a small 1-D CNN. It has no pretrained
  weights: it is the in-project baseline ("one-hot CNN") that any language-model encoder must
  beat with the very same head on top.

One ``encoder(batch)`` call is one backbone pass; a :class:`resm.tasks.base.TaskModel` feeds
its output to every head that shares the encoder (and adapter).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .esm2 import ESM2, bos_eos_positions

__all__ = ["MODES", "prepare_backbone", "BackboneEncoder", "OneHotEncoder", "OneHotConfig", "EncoderError"]

MODES = ("frozen", "adapters", "full")
SHARED_ADAPTER = "shared"


class EncoderError(ValueError):
    """A bad encoder setting (one line)."""


def prepare_backbone(backbone: ESM2, mode: str, adapter: Optional[Any] = None, adapter_name: str = SHARED_ADAPTER,
                     seed: int = 0) -> None:
    """Set which backbone weights train, in place: ``frozen`` none; ``adapters`` a new LoRA
    adapter (``adapter``, an :class:`resm.model.adapters.AdapterConfig`, initialised from
    ``seed``) and nothing else; ``full`` everything except the LM head and the contact
    regression, which no fine-tuning head uses."""
    if mode not in MODES:
        raise EncoderError(f"model.mode must be one of {list(MODES)}, not {mode!r}")
    if (mode == "adapters") != (adapter is not None):
        raise EncoderError("model.adapter (r, alpha, ...) goes with model.mode adapters, and only with it")
    if mode == "frozen":
        backbone.requires_grad_(False)
    elif mode == "adapters":
        from .adapters import add_adapter

        with torch.random.fork_rng(devices=[]):  # the LoRA initialisation is reproducible
            torch.manual_seed(seed)
            add_adapter(backbone, adapter_name, adapter)  # freezes the base, adapter trainable
    else:
        backbone.requires_grad_(True)
        backbone.contact_head.requires_grad_(False)
        tied = backbone.embed_tokens.weight
        for p in backbone.lm_head.parameters():
            if p is not tied:
                p.requires_grad_(False)


class BackboneEncoder(nn.Module):
    """ESM-2 backbone -> residue embeddings (last layer), in mode frozen / adapters / full."""

    def __init__(self, backbone: ESM2, mode: str = "frozen", adapter: Optional[Any] = None,
                 adapter_name: str = SHARED_ADAPTER, seed: int = 0):
        super().__init__()
        prepare_backbone(backbone, mode, adapter, adapter_name, seed)
        self.backbone, self.mode = backbone, mode
        self.adapter_cfg, self.adapter_name = adapter, adapter_name if adapter is not None else None
        self.train(self.training)

    @property
    def embed_dim(self) -> int:
        return self.backbone.embed_dim

    def train(self, mode: bool = True):
        super().train(mode)
        if self.mode == "frozen":
            self.backbone.eval()
        return self

    def forward(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        tokens = batch["tokens"]
        frozen = self.mode == "frozen" or not torch.is_grad_enabled()
        with torch.no_grad() if frozen else contextlib.nullcontext():
            h = self.backbone(tokens, return_logits=False)["last_hidden"]
        return h[:, 1:-1], bos_eos_positions(tokens)[:, 1:-1]


@dataclass
class OneHotConfig:
    """The one-hot CNN baseline encoder.

    Attributes:
        channels: width of the convolutional stack (the embedding size E the heads see).
        layers: number of residual 1-D convolution layers (0: plain one-hot, E = 5).
        kernel: convolution width (odd).
        dropout: dropout inside the stack.
    """

    channels: int = 64
    layers: int = 2
    kernel: int = 7
    dropout: float = 0.1

    def __post_init__(self):
        if self.kernel % 2 == 0 or self.kernel < 1:
            raise EncoderError(f"onehot.kernel must be odd and positive, got {self.kernel}")
        if self.layers < 0 or self.channels < 1:
            raise EncoderError("onehot.layers must be >= 0 and onehot.channels >= 1")


class OneHotEncoder(nn.Module):
    """One-hot nucleotides (A C G U, unknown = all zero) -> masked residual 1-D CNN."""

    mode = "full"

    def __init__(self, cfg: Optional[OneHotConfig] = None):
        super().__init__()
        self.cfg = cfg = cfg or OneHotConfig()
        self.stem = nn.Conv1d(4, cfg.channels, cfg.kernel, padding=cfg.kernel // 2) if cfg.layers else None
        self.convs = nn.ModuleList(
            nn.Conv1d(cfg.channels, cfg.channels, cfg.kernel, padding=cfg.kernel // 2) for _ in range(cfg.layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.channels) for _ in range(cfg.layers))
        self.drop = nn.Dropout(cfg.dropout)

    @property
    def embed_dim(self) -> int:
        return self.cfg.channels if self.cfg.layers else 4

    def forward(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        nuc = batch["nuc"]
        mask = batch["mask"] if "mask" in batch else nuc < 4
        x = F.one_hot(nuc.clamp(max=4), 5)[..., :4].float() * mask[..., None]
        if self.stem is None:
            return x, mask
        m = mask[:, None, :].float()
        y = self.stem(x.transpose(1, 2)) * m
        for conv, norm in zip(self.convs, self.norms):
            z = F.gelu(norm(y.transpose(1, 2))).transpose(1, 2) * m
            y = y + self.drop(conv(z)) * m
        return y.transpose(1, 2), mask
