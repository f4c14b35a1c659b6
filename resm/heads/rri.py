"""RNA–RNA interaction head: two sequences -> interaction probability + intermolecular pair map.

Inputs are the residue embeddings of both partners from one shared encoder (``ha`` (B, La, E),
``hb`` (B, Lb, E), masks and nucleotide codes). The head builds an La x Lb map of pair
features, ``[p_i ; q_j ; onehot(a_i) (x) onehot(b_j)]`` through a 1x1 stem (computed as row +
column terms, as in :class:`resm.heads.pair_map.StructureHead`), runs ``blocks`` masked 2-D
residual blocks over it and reads out

* ``pair_logits`` (B, La, Lb): one logit per intermolecular base pair (the predicted duplex;
  padding is :data:`NEG_LOGIT`);
* ``logit`` (B,): the interaction logit, a linear read-out of the masked max and mean of the
  final feature map and of the strongest pair logit. The pair map is therefore learnt from the
  interaction label alone (weak supervision): it shows where the head puts the duplex.

The head reads partners of at most ``max_length`` nucleotides each (its training length);
longer partners, up to 4,000 nt, are scanned in windows of that length by
:mod:`resm.tasks.rri_sites`, never truncated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import StoredConfig, check_dropout, check_embed_dim, check_kernel
from .pair_map import NEG_LOGIT, ChannelLayerNorm, ResidualBlock

__all__ = ["MAX_PARTNER", "InteractionHeadConfig", "InteractionHead", "build_rri_head", "rri_apply"]

MAX_PARTNER = 4000  # longest partner (nt) a scan accepts (resm.tasks.rri_sites), and max_length's bound


@dataclass
class InteractionHeadConfig(StoredConfig):
    """Shape of the interaction head.

    Attributes:
        embed_dim: encoder embedding size (filled in from the encoder).
        proj_dim: per-residue projection before the pair features.
        channels: width of the 2-D residual stack.
        blocks: number of residual blocks (dilations 1, 2, 1, 2, ...).
        kernel: 2-D convolution size (odd).
        dropout: dropout inside the blocks and before the read-out.
        use_onehot_pairs: add the 16 one-hot base-pair channels (AU, GC, GU ... identities).
        max_length: longest partner (nt) of the training data; longer partners (to 4,000 nt) are
            scanned in windows of at most this length (resm.tasks.rri_sites).
    """

    embed_dim: int = 0
    proj_dim: int = 32
    channels: int = 32
    blocks: int = 2
    kernel: int = 3
    dropout: float = 0.1
    use_onehot_pairs: bool = True
    max_length: int = 64

    def __post_init__(self):
        check_embed_dim(self.embed_dim)
        check_kernel(self.kernel)
        if min(self.proj_dim, self.channels, self.max_length) < 1 or self.blocks < 0:
            raise ValueError("proj_dim, channels and max_length must be >= 1, blocks >= 0")
        if self.max_length > MAX_PARTNER:  # a scan's window: no partner is longer
            raise ValueError(
                f"max_length must be <= {MAX_PARTNER} (the longest partner scanned), got {self.max_length}"
            )
        check_dropout(self.dropout)


class InteractionHead(nn.Module):
    def __init__(self, cfg: InteractionHeadConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.norm_a, self.norm_b = nn.LayerNorm(cfg.embed_dim), nn.LayerNorm(cfg.embed_dim)
        self.proj_a, self.proj_b = nn.Linear(cfg.embed_dim, cfg.proj_dim), nn.Linear(cfg.embed_dim, cfg.proj_dim)
        if cfg.use_onehot_pairs:
            # Start from the base-pair identities alone: the embedding path opens up as it
            # becomes useful instead of drowning the complementarity signal at initialisation.
            for lin in (self.proj_a, self.proj_b):
                nn.init.zeros_(lin.weight)
        self.stem_row = nn.Linear(cfg.proj_dim, c)
        self.stem_col = nn.Linear(cfg.proj_dim, c, bias=False)
        self.stem_pairs = nn.Parameter(torch.empty(16, c).uniform_(-0.25, 0.25)) if cfg.use_onehot_pairs else None
        self.blocks = nn.ModuleList(ResidualBlock(c, cfg.kernel, 1 + (k % 2), cfg.dropout) for k in range(cfg.blocks))
        self.out_norm = ChannelLayerNorm(c)
        self.pair_out = nn.Conv2d(c, 1, 1)
        self.drop = nn.Dropout(cfg.dropout)
        self.readout = nn.Linear(2 * c + 1, 1)

    def forward(
        self,
        ha: torch.Tensor,
        ma: torch.Tensor,
        hb: torch.Tensor,
        mb: torch.Tensor,
        nuca: torch.Tensor = None,
        nucb: torch.Tensor = None,
    ) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        if cfg.use_onehot_pairs and (nuca is None or nucb is None):
            raise ValueError("this head uses one-hot pair channels: pass nuca and nucb (codes 0..4)")
        ha, hb = ha.float(), hb.float()
        p = self.proj_a(self.norm_a(ha)) * ma[..., None]
        q = self.proj_b(self.norm_b(hb)) * mb[..., None]
        x = self.stem_row(p)[:, :, None, :] + self.stem_col(q)[:, None, :, :]  # (B, La, Lb, C)
        if self.stem_pairs is not None:
            idx = nuca.clamp(max=4)[:, :, None] * 4 + nucb.clamp(max=4)[:, None, :]
            known = (nuca < 4)[:, :, None] & (nucb < 4)[:, None, :]
            x = x + self.stem_pairs[idx.clamp(max=15)] * known[..., None]
        m2 = ma[:, :, None] & mb[:, None, :]  # (B, La, Lb)
        m = m2[:, None].float()
        x = x.permute(0, 3, 1, 2) * m
        for blk in self.blocks:
            x = blk(x, m)
        x = F.gelu(self.out_norm(x)) * m
        pair_logits = self.pair_out(x)[:, 0].masked_fill(~m2, NEG_LOGIT)
        n = m.sum(dim=(2, 3)).clamp(min=1)
        mean = x.sum(dim=(2, 3)) / n
        mx = x.masked_fill(m == 0, float("-inf")).amax(dim=(2, 3))
        best = pair_logits.flatten(1).amax(dim=1, keepdim=True)
        logit = self.readout(self.drop(torch.cat([mean, mx, best], dim=1)))[:, 0]
        return {"logit": logit, "pair_logits": pair_logits}


def rri_apply(
    head: InteractionHead, h: torch.Tensor, mask: torch.Tensor, batch: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """Split the encoder output of ``[a_1..a_B, b_1..b_B]`` (``resm.tasks.rri.collate_pairs``)
    and run the head."""
    B, la, lb = batch["n_pairs"], batch["la"], batch["lb"]
    nuc = batch["nuc"]
    return head(h[:B, :la], mask[:B, :la], h[B:, :lb], mask[B:, :lb], nuc[:B, :la], nuc[B:, :lb])


def build_rri_head(config: dict, embed_dim: int):
    """``(InteractionHead, rri_apply)`` from a saved head config (the registry's builder)."""
    cfg = InteractionHeadConfig.from_saved(config, embed_dim)
    return InteractionHead(cfg), rri_apply


HEADS = {"rri": build_rri_head}  # this module's entries of resm.heads.HEADS
