"""Per-nucleotide encoders shared by the fine-tuning heads.

Every supervised head (structure, RNA–RNA interaction, expression) reads the same thing:
residue embeddings ``h`` (B, L, E) and a residue mask (B, L), BOS/EOS stripped. Two encoders
produce it from a batch dict (``tokens`` from :func:`resm.alphabet.pad_batch`, ``nuc`` codes
0..4 from :func:`resm.nucleotides.rna_codes`, 4 at padding):

* :class:`BackboneEncoder`: an ESM-2 backbone in one of three modes, ``frozen`` (no
  gradients, eval mode always), ``adapters`` (frozen base weights + a trainable LoRA adapter,
  see :mod:`resm.backbone.adapters`) or ``full`` (everything trains except the LM head and the
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
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .esm2 import ESM2, bos_eos_positions

__all__ = [
    "MODES",
    "prepare_backbone",
    "window_hidden",
    "BackboneEncoder",
    "OneHotEncoder",
    "OneHotConfig",
    "EncoderError",
]

MODES = ("frozen", "adapters", "full")
SHARED_ADAPTER = "shared"


class EncoderError(ValueError):
    """A bad encoder setting (one line)."""


def prepare_backbone(
    backbone: ESM2, mode: str, adapter: Any | None = None, adapter_name: str = SHARED_ADAPTER, seed: int = 0
) -> None:
    """Set which backbone weights train, in place: ``frozen`` none; ``adapters`` a new LoRA
    adapter (``adapter``, an :class:`resm.backbone.adapters.AdapterConfig`, initialised from
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


def window_hidden(backbone: ESM2, tokens: torch.Tensor, window: int, max_windows: int = 64) -> torch.Tensor:
    """The backbone's last hidden states (B, T, E) for ``tokens`` (:func:`resm.alphabet.pad_batch`),
    with every sequence longer than ``window`` nucleotides read through overlapping windows.

    A backbone trained on crops of a few hundred nucleotides has never attended over thousands
    of positions; its states there drift. Here a long sequence is cut into windows of
    ``window`` nucleotides every ``window // 2``, the last one ending at the sequence's end;
    each window runs as a sequence of its own (with BOS and EOS), and each position takes its
    state from the window whose centre is nearest (the first on a tie). BOS comes from the
    first window, EOS from the last. When ``window`` is 0 or no sequence is longer, this is
    ``backbone(tokens)`` itself; otherwise the shorter sequences run whole in a batch of their
    own (the same states up to float rounding). Cost and memory
    grow as L x window instead of L^2. Windows run ``max_windows`` at a time; gradients flow
    as through an ordinary pass."""
    from ..alphabet import BOS, EOS, PAD

    lengths = (tokens != PAD).sum(1) - 2
    window = int(window)
    if window <= 0 or int(lengths.max()) <= window:
        return backbone(tokens, return_logits=False)["last_hidden"]
    B, T = tokens.shape
    long_rows = [b for b in range(B) if int(lengths[b]) > window]
    short_rows = [b for b in range(B) if int(lengths[b]) <= window]
    parts: dict[int, torch.Tensor] = {}
    if short_rows:
        width = int(lengths[short_rows].max()) + 2
        h = backbone(tokens[short_rows, :width], return_logits=False)["last_hidden"]
        for k, b in enumerate(short_rows):
            parts[b] = h[k]
    step = max(1, window // 2)
    for b in long_rows:
        n = int(lengths[b])
        starts = list(range(0, n - window, step)) + [n - window]
        res = tokens[b, 1 : 1 + n]
        wins = torch.stack(
            [torch.cat([tokens.new_tensor([BOS]), res[s : s + window], tokens.new_tensor([EOS])]) for s in starts]
        )
        hs = torch.cat(
            [
                backbone(wins[k : k + max_windows], return_logits=False)["last_hidden"]
                for k in range(0, len(starts), max_windows)
            ]
        )
        centres = torch.tensor([s + (window - 1) / 2 for s in starts], dtype=torch.float64)
        pos = torch.arange(n, dtype=torch.float64)
        mids = (centres[1:] + centres[:-1]) / 2  # a position on a midpoint stays with the first window
        owner = torch.searchsorted(mids, pos, right=False)
        offset = pos.long() - torch.tensor(starts)[owner]
        body = hs[owner.to(hs.device), (1 + offset).to(hs.device)]
        parts[b] = torch.cat([hs[0, :1], body, hs[-1, window + 1 : window + 2]])
    E = parts[0].shape[-1]
    return torch.stack([torch.cat([parts[b], parts[b].new_zeros(T - parts[b].shape[0], E)]) for b in range(B)])


class BackboneEncoder(nn.Module):
    """ESM-2 backbone -> residue embeddings (last layer), in mode frozen / adapters / full."""

    def __init__(
        self,
        backbone: ESM2,
        mode: str = "frozen",
        adapter: Any | None = None,
        adapter_name: str = SHARED_ADAPTER,
        seed: int = 0,
    ):
        super().__init__()
        prepare_backbone(backbone, mode, adapter, adapter_name, seed)
        self.backbone, self.mode = backbone, mode
        self.adapter_cfg, self.adapter_name = adapter, adapter_name if adapter is not None else None
        # 0: one pass over the whole sequence; > 0: sequences longer than this many nt read
        # through overlapping windows (window_hidden), as inference on long inputs sets it
        self.window = 0
        self.train(self.training)

    @property
    def embed_dim(self) -> int:
        return self.backbone.embed_dim

    def train(self, mode: bool = True):
        super().train(mode)
        if self.mode == "frozen":
            self.backbone.eval()
        return self

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = batch["tokens"]
        frozen = self.mode == "frozen" or not torch.is_grad_enabled()
        with torch.no_grad() if frozen else contextlib.nullcontext():
            if self.window > 0:
                h = window_hidden(self.backbone, tokens, self.window)
            else:
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

    def __init__(self, cfg: OneHotConfig | None = None):
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

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        nuc = batch["nuc"]
        mask = batch.get("mask", nuc < 4)
        x = F.one_hot(nuc.clamp(max=4), 5)[..., :4].float() * mask[..., None]
        if self.stem is None:
            return x, mask
        m = mask[:, None, :].float()
        y = self.stem(x.transpose(1, 2)) * m
        for conv, norm in zip(self.convs, self.norms):
            z = F.gelu(norm(y.transpose(1, 2))).transpose(1, 2) * m
            y = y + self.drop(conv(z)) * m
        return y.transpose(1, 2), mask
