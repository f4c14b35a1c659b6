"""Expression head: mean ribosome load (MRL) of a 5'UTR from residue embeddings, and the
Optimus 5-Prime-style one-hot CNN baseline.

:class:`ExpressionHead` reads residue embeddings (B, L, E) from any encoder (the ESM-2
backbone with or without adapters, or the one-hot encoder), applies a LayerNorm, a projection
and ``conv_layers`` masked 1-D convolutions (start codons and Kozak context are local motifs),
then pools the positions (masked mean and max, plus a learnt position-wise weighting of the
last ``anchor`` nucleotides, since the 3' end of a 5'UTR sits next to the start codon) and
regresses one value. Targets are standardised by the task (train mean/std), so the head
predicts z-scores.

:class:`OptimusCNN` is the baseline of Sample et al. (2019): three convolution layers of 120
filters of width 8 on one-hot nucleotides (no pooling), a dense layer of 40 units with dropout,
one linear output. It takes fixed-length input (``length``; 50 nt in the MRL libraries).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import StoredConfig, check_dropout, check_embed_dim, check_kernel, check_sizes

__all__ = [
    "MAX_UTR",
    "ExpressionHeadConfig",
    "ExpressionHead",
    "OptimusConfig",
    "OptimusCNN",
    "build_mrl_head",
    "mrl_apply",
    "optimus_apply",
]

MAX_UTR = 4000  # longest UTR (nt) a trained expression head predicts for (and its max_length's bound)


@dataclass
class ExpressionHeadConfig(StoredConfig):
    """Shape of the expression head.

    Attributes:
        embed_dim: encoder embedding size (filled in from the encoder).
        hidden: width after the projection.
        conv_layers: masked 1-D convolution layers over the projected embeddings.
        kernel: their width (odd).
        anchor: the last ``anchor`` positions get their own learnt pooling weights.
        dropout: dropout before the output layer.
        max_length: longest UTR (nt) of the training data (prediction reads any length up to
            :data:`MAX_UTR`, 4,000 nt: the head pools its positions).
    """

    embed_dim: int = 0
    hidden: int = 64
    conv_layers: int = 2
    kernel: int = 5
    anchor: int = 10
    dropout: float = 0.1
    max_length: int = 100

    def __post_init__(self):
        check_embed_dim(self.embed_dim)
        check_kernel(self.kernel)
        if self.hidden < 1 or self.conv_layers < 0 or self.anchor < 0 or self.max_length < 1:
            raise ValueError("hidden and max_length must be >= 1, conv_layers and anchor >= 0")
        if self.max_length > MAX_UTR:
            raise ValueError(f"max_length must be <= {MAX_UTR} (the longest UTR predicted for), got {self.max_length}")
        check_dropout(self.dropout)


class ExpressionHead(nn.Module):
    def __init__(self, cfg: ExpressionHeadConfig):
        super().__init__()
        self.cfg = cfg
        self.norm = nn.LayerNorm(cfg.embed_dim)
        self.proj = nn.Linear(cfg.embed_dim, cfg.hidden)
        self.convs = nn.ModuleList(
            nn.Conv1d(cfg.hidden, cfg.hidden, cfg.kernel, padding=cfg.kernel // 2) for _ in range(cfg.conv_layers)
        )
        self.anchor = nn.Parameter(torch.zeros(cfg.anchor, cfg.hidden)) if cfg.anchor else None
        self.drop = nn.Dropout(cfg.dropout)
        width = cfg.hidden * (3 if cfg.anchor else 2)
        self.out = nn.Sequential(nn.Linear(width, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, 1))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h (B, L, E), mask (B, L) -> (B,) standardised MRL prediction."""
        m = mask[..., None].float()
        x = F.gelu(self.proj(self.norm(h.float()))) * m
        for conv in self.convs:
            x = x + F.gelu(conv(x.transpose(1, 2))).transpose(1, 2) * m
        n = m.sum(1).clamp(min=1)
        feats = [x.sum(1) / n, x.masked_fill(m == 0, float("-inf")).amax(1)]
        if self.anchor is not None:
            # the last `anchor` real positions of each sequence, aligned at the 3' end
            lengths = mask.sum(1)
            k = self.cfg.anchor
            pos = lengths[:, None] - k + torch.arange(k, device=h.device)[None]  # (B, k)
            ok = (pos >= 0)[..., None].float()
            tail = torch.gather(x, 1, pos.clamp(min=0)[..., None].expand(-1, -1, x.shape[-1])) * ok
            feats.append((tail * self.anchor[None]).sum(1))
        return self.out(self.drop(torch.cat(feats, dim=1)))[:, 0]


@dataclass
class OptimusConfig(StoredConfig):
    """Optimus 5-Prime (Sample et al. 2019): conv 120x8 three times, dense 40, dropout.

    Attributes:
        length: input length (shorter UTRs are left-padded with zeros, so the 3' end, next to
            the start codon, stays aligned).
        filters: filters per convolution layer.
        kernel: filter width.
        conv_layers: number of convolution layers.
        dense: units of the dense layer.
        dropout: dropout after the convolutions and the dense layer.
    """

    length: int = 50
    filters: int = 120
    kernel: int = 8
    conv_layers: int = 3
    dense: int = 40
    dropout: float = 0.2

    def __post_init__(self):
        check_sizes(self, ("length", "filters", "kernel", "conv_layers", "dense"))
        check_dropout(self.dropout)


class OptimusCNN(nn.Module):
    """One-hot (B, length) codes -> (B,) standardised MRL."""

    def __init__(self, cfg: OptimusConfig):
        super().__init__()
        self.cfg = cfg
        layers = []
        c = 4
        for _ in range(cfg.conv_layers):
            k = cfg.kernel  # "same" padding, the extra column on the right for even widths
            layers += [nn.ConstantPad1d(((k - 1) // 2, k // 2), 0.0), nn.Conv1d(c, cfg.filters, k), nn.ReLU()]
            c = cfg.filters
        self.convs = nn.Sequential(*layers)
        self.dense = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.filters * cfg.length, cfg.dense),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.dense, 1),
        )

    def forward(self, nuc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """nuc (B, L) codes 0..4, mask (B, L); right-aligned into ``length`` columns."""
        B, L = nuc.shape
        n = self.cfg.length
        if n < L:
            raise ValueError(f"OptimusCNN takes at most {n} nt, got {L}")
        x = F.one_hot(nuc.clamp(max=4), 5)[..., :4].float() * mask[..., None]
        lengths = mask.sum(1)
        out = x.new_zeros(B, n, 4)
        for b in range(B):  # right-align (UTR 3' end next to the CDS)
            k = int(lengths[b])
            out[b, n - k :] = x[b, :k]
        return self.dense(self.convs(out.transpose(1, 2)))[:, 0]


def mrl_apply(head: ExpressionHead, h: torch.Tensor, mask: torch.Tensor, batch) -> torch.Tensor:
    return head(h, mask)


def optimus_apply(head: OptimusCNN, h, mask, batch) -> torch.Tensor:
    """The Optimus baseline reads the batch's nucleotide codes, not an encoder's output."""
    return head(batch["nuc"], batch["mask"])


def build_mrl_head(config: dict, embed_dim: int):
    """``(head, apply)`` from a saved head config: the Optimus CNN when ``kind`` is optimus, else
    the expression head (the registry's builder)."""
    if config.get("kind") == "optimus":  # the bundle entry's mark of the baseline, no setting
        return OptimusCNN(OptimusConfig.from_saved({k: v for k, v in config.items() if k != "kind"})), optimus_apply
    return ExpressionHead(ExpressionHeadConfig.from_saved(config, embed_dim)), mrl_apply


HEADS = {"mrl": build_mrl_head}  # this module's entries of resm.heads.HEADS
