"""Supervised RNA secondary-structure head: a small 2-D residual CNN over pair features.

Inputs (per batch, residues only, BOS/EOS already stripped — see :func:`strip_special`):

* ``h`` (B, L, E): residue embeddings from the backbone;
* ``mask`` (B, L) bool: True at real residues;
* ``attn_feats`` (B, C_attn, L, L), optional: symmetrised + APC attention maps, e.g. from
  :func:`resm.backbone.attention.stacked_attention_maps` (``layers * heads`` channels);
* ``bpp`` (B, 1, L, L), optional: ViennaRNA base-pair probabilities, computed by the caller;
* ``nuc`` (B, L) int, optional (required when ``use_onehot_pairs``): 0..3 for A C G U and 4
  for an unknown base (:func:`resm.nucleotides.rna_codes` gives exactly these codes).

Pipeline: ``p = proj(LayerNorm(h))`` per residue, then a 1x1 "stem" convolution over the pair
features ``[p_i ; p_j ; attn ; bpp ; onehot(n_i) (x) onehot(n_j)]``, then ``blocks`` residual
blocks (per-pixel LayerNorm over channels, GELU, dilated kxk conv, LayerNorm, GELU, kxk conv),
then LayerNorm, GELU and a 1x1 conv to one logit, symmetrised as ``(x + x^T) / 2`` or, with
``symmetry: upper``, by mirroring the upper triangle (half the work at inference). Padding and
pairs with ``|i - j| <= min_loop`` are set to :data:`NEG_LOGIT`.

The stem is never materialised as a ``2 * proj_dim`` channel map: a 1x1 convolution over the
outer concatenation equals ``A p_i + B p_j + b``, computed as a row term plus a column term,
and the 16 one-hot pair channels through a 1x1 conv equal a lookup of one of 16 weight columns
(zero when either base is unknown).

Every layer is local (per-pixel norms, no batch or map statistics), and every convolution input
is multiplied by the pair mask, so positions outside the sequence act exactly like the zero
padding at the map border. Hence a padded batch gives the same logits as each sequence alone,
and :meth:`StructureHead.predict_tiled` can compute the L x L map tile by tile, each tile from
its own input window grown by the receptive field :func:`receptive_field`, and reproduce the
full computation (to float rounding) with memory that grows with the tile, not with L^2.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..backbone.attention import stacked_attention_maps
from ..config import StoredConfig, check_dropout, check_kernel, check_sizes
from ..nucleotides import UNKNOWN_BASE
from ..utils.memory import require_trainable

__all__ = [
    "NEG_LOGIT",
    "PairSource",
    "StructureHeadConfig",
    "StructureHead",
    "receptive_field",
    "valid_pair_mask",
    "pair_loss",
    "strip_special",
    "build_structure_head",
    "structure_apply",
]

NEG_LOGIT = -1e4
"""Logit written at padding and at pairs closer than ``min_loop``; exact in fp16 and fp32."""

DEFAULT_TILE = 512  # output tile of predict_tiled: (512 + 2R)^2 windows; fewer halo pixels than 256
SYMMETRIES = ("mean", "upper")

# A pair-channel input: a (B, C, L, L) tensor (any device) or a callable
# ``get(r0, r1, c0, c1) -> (B, C, r1 - r0, c1 - c0)`` that is only ever asked for in-range blocks.
PairSource = torch.Tensor | Callable[[int, int, int, int], torch.Tensor]


@dataclass
class StructureHeadConfig(StoredConfig):
    """Hyper-parameters of :class:`StructureHead`.

    Attributes:
        embed_dim: width E of the backbone embeddings fed to the head (input).
        proj_dim: per-residue projection width before the outer concatenation.
        channels: width of the 2-D residual trunk.
        blocks: number of residual blocks.
        kernel: spatial size of the trunk convolutions (odd).
        dilations: dilation of each block's first conv, cycled over the blocks.
        use_attention: add attention-map channels (sym + APC maps), via a 1x1 conv.
        attn_channels: number of attention channels, ``layers * heads`` (input).
        use_bpp: add one channel holding a base-pair probability matrix (caller supplied).
        use_onehot_pairs: add the 16 channels onehot(n_i) (x) onehot(n_j) over A C G U.
        dropout: dropout rate inside the residual blocks (training only).
        min_loop: pairs with ``|i - j| <= min_loop`` are impossible (hairpin loop >= 3).
        symmetry: how the trunk's unsymmetric output ``raw`` becomes a symmetric map. "mean":
            ``(raw + raw^T) / 2`` (every pair computed in both orientations); "upper": the
            upper triangle of ``raw`` mirrored, so tiled inference computes each pair once
            (half the work; what the loss reads in both cases is the upper triangle).
        bpp_local_above: with ``use_bpp``, sequences longer than this get ViennaRNA's local
            (sliding-window, RNAplfold-style) pair probabilities instead of the global
            partition function, whose cost grows as L^3 (None: always global). Read by the
            callers that compute the channel (:func:`resm.structure.priors.dense_prior`).
        bpp_window / bpp_span: window size and maximum base-pair span of the local read-out.
    """

    embed_dim: int = 320
    proj_dim: int = 32
    channels: int = 48
    blocks: int = 8
    kernel: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    use_attention: bool = False
    attn_channels: int = 0
    use_bpp: bool = False
    use_onehot_pairs: bool = True
    dropout: float = 0.1
    min_loop: int = 3
    symmetry: str = "mean"
    bpp_local_above: int | None = None
    bpp_window: int = 240
    bpp_span: int = 160

    def __post_init__(self) -> None:
        self.dilations = tuple(int(d) for d in self.dilations)
        if self.symmetry not in SYMMETRIES:
            raise ValueError(f"symmetry must be one of {SYMMETRIES}, got {self.symmetry!r}")
        if self.bpp_local_above is not None and self.bpp_local_above < 1:
            raise ValueError(f"bpp_local_above must be positive or None, got {self.bpp_local_above}")
        if not 1 <= self.bpp_span <= self.bpp_window:
            raise ValueError(f"need 1 <= bpp_span <= bpp_window, got {self.bpp_span}, {self.bpp_window}")
        check_kernel(self.kernel)
        check_sizes(self, ("proj_dim", "channels"))
        if self.min_loop < 0:
            raise ValueError(f"min_loop must be >= 0, got {self.min_loop}")
        if self.blocks < 0 or (self.blocks and not self.dilations):
            raise ValueError("blocks must be >= 0 and dilations non-empty")
        if any(d < 1 for d in self.dilations):
            raise ValueError(f"dilations must be >= 1, got {self.dilations}")
        if self.use_attention and self.attn_channels < 1:
            raise ValueError("use_attention needs attn_channels = layers * heads > 0")
        check_dropout(self.dropout)

    def require_trainable(self) -> None:
        """Before a head is built to train (not when a trained one is read): the training of a
        head of this config must fit the machine (:func:`resm.utils.memory.require_trainable`);
        tensors that each fit may not all fit together."""
        key = max(("proj_dim", "channels"), key=lambda k: getattr(self, k))
        require_trainable(self.n_parameters(), key, getattr(self, key), "the 2-D head")

    def n_parameters(self) -> int:
        """Parameters of :class:`StructureHead` with this config, counted from its sizes without
        building it (:meth:`StructureHead.num_parameters` of the built head)."""
        e, p, c, k = self.embed_dim, self.proj_dim, self.channels, self.kernel
        n = 2 * e + (e + 1) * p + (p + 1) * c + p * c  # in_norm, proj, stem_row, stem_col
        n += self.attn_channels * c if self.use_attention else 0
        n += c if self.use_bpp else 0
        n += 16 * c if self.use_onehot_pairs else 0
        n += self.blocks * 2 * (2 * c + c * c * k * k + c)  # ResidualBlock: two norms and convolutions
        return n + 2 * c + c + 1  # out_norm, out

    def block_dilations(self) -> list[int]:
        """The dilation of each block's first conv (``dilations`` cycled)."""
        return [self.dilations[b % len(self.dilations)] for b in range(self.blocks)]

    def to_dict(self) -> dict[str, object]:
        d = super().to_dict()
        d["dilations"] = list(self.dilations)
        return d


def receptive_field(cfg: StructureHeadConfig) -> int:
    """One-sided reach R of the trunk: logit (i, j) depends on pair features (a, b) only with
    ``|a - i| <= R`` and ``|b - j| <= R`` (before symmetrisation). Each block's convs reach
    ``(k - 1) / 2 * d`` and ``(k - 1) / 2``, so a block adds ``(k - 1) / 2 * (d + 1)``; the full
    window is ``2R + 1`` wide. Defaults: ``(1+1)+(2+1)+(4+1)+(8+1)`` twice = 38."""
    half = (cfg.kernel - 1) // 2
    return sum(half * (d + 1) for d in cfg.block_dilations())


# ----------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------
class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel dimension of (B, C, H, W), independently at each pixel."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ResidualBlock(nn.Module):
    """Pre-activation block: x + conv(GELU(LN(conv_d(GELU(LN(x)))))), masked."""

    def __init__(self, channels: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        half = (kernel - 1) // 2
        self.norm1 = ChannelLayerNorm(channels)
        self.conv1 = nn.Conv2d(channels, channels, kernel, padding=half * dilation, dilation=dilation)
        self.drop = nn.Dropout(dropout)
        self.norm2 = ChannelLayerNorm(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel, padding=half)

    def forward(self, x: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        """x: (B, C, H, W), zero where m == 0; m: (B, 1, H, W) 0/1 pair mask, or None when
        every pixel is inside the sequence (the products would be no-ops)."""
        y = F.gelu(self.norm1(x))
        y = self.conv1(y if m is None else y * m)
        y = self.drop(y)
        y = F.gelu(self.norm2(y))
        y = self.conv2(y if m is None else y * m)
        return x + (y if m is None else y * m)


# ----------------------------------------------------------------------------------------
# Helpers for windows that may reach past the sequence
# ----------------------------------------------------------------------------------------
def _window1d(x: torch.Tensor, start: int, stop: int, fill: float = 0) -> torch.Tensor:
    """x[:, start:stop] along dim 1, filled with ``fill`` where the range leaves [0, L)."""
    n = x.shape[1]
    a, b = max(start, 0), min(stop, n)
    part = x[:, a:b]
    if a == start and b == stop:
        return part
    shape = list(x.shape)
    shape[1] = stop - start
    out = x.new_full(shape, fill)
    if b > a:
        out[:, a - start : b - start] = part
    return out


def _window2d(src: PairSource, n: int, r0: int, r1: int, c0: int, c1: int, device: torch.device) -> torch.Tensor:
    """Block [r0:r1, c0:c1] of a (B, C, n, n) pair source, zero outside [0, n)^2, as fp32."""
    a0, a1, b0, b1 = max(r0, 0), min(r1, n), max(c0, 0), min(c1, n)
    if a1 <= a0 or b1 <= b0:
        raise ValueError("empty window")  # never happens: windows always contain their tile
    part = src(a0, a1, b0, b1) if callable(src) else src[:, :, a0:a1, b0:b1]
    part = part.to(device=device, dtype=torch.float32)
    pad = (b0 - c0, c1 - b1, a0 - r0, r1 - a1)
    return F.pad(part, pad) if any(pad) else part


def valid_pair_mask(
    mask: torch.Tensor,
    min_loop: int = 3,
    upper: bool = False,
    row_offset: int = 0,
    col_offset: int = 0,
    col_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, Lr, Lc) bool: both residues real and ``|i - j| > min_loop`` (``j - i > min_loop``
    when ``upper``). Offsets give the global index of the first row / column (for tiles)."""
    cm = mask if col_mask is None else col_mask
    i = torch.arange(mask.shape[1], device=mask.device) + row_offset
    j = torch.arange(cm.shape[1], device=mask.device) + col_offset
    sep = j[None, :] - i[:, None]
    far = sep > min_loop if upper else sep.abs() > min_loop
    return mask[:, :, None] & cm[:, None, :] & far[None]


# ----------------------------------------------------------------------------------------
# The head
# ----------------------------------------------------------------------------------------
class StructureHead(nn.Module):
    """Base-pair logits (B, L, L) from residue embeddings (and optional pair channels)."""

    kind = "conv"  # head.kind of a structure config, head_kind of a structure model file

    def __init__(self, cfg: StructureHeadConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.in_norm = nn.LayerNorm(cfg.embed_dim)
        self.proj = nn.Linear(cfg.embed_dim, cfg.proj_dim)
        # 1x1 stem over [p_i ; p_j ; extras], split by input group (same maths, less memory)
        self.stem_row = nn.Linear(cfg.proj_dim, c)
        self.stem_col = nn.Linear(cfg.proj_dim, c, bias=False)
        self.stem_attn = nn.Conv2d(cfg.attn_channels, c, 1, bias=False) if cfg.use_attention else None
        self.stem_bpp = nn.Conv2d(1, c, 1, bias=False) if cfg.use_bpp else None
        if cfg.use_onehot_pairs:
            bound = 1.0 / 4.0  # nn.Conv2d's default init for 16 inputs
            self.stem_pairs = nn.Parameter(torch.empty(16, c).uniform_(-bound, bound))
        else:
            self.register_parameter("stem_pairs", None)
        self.blocks = nn.ModuleList(ResidualBlock(c, cfg.kernel, d, cfg.dropout) for d in cfg.block_dilations())
        self.out_norm = ChannelLayerNorm(c)
        self.out = nn.Conv2d(c, 1, 1)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.cfg)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- on a backbone ----------------------------------------------------------------------
    def backbone_features(
        self, backbone, tokens: torch.Tensor, frozen: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """What this head reads from ``backbone`` for ``tokens`` (B, T): residue embeddings
        (B, L, E), residue mask (B, L) and, with ``use_attention``, attention features
        (B, layers * heads, L, L); L = T - 2. ``frozen``: no gradient reaches the backbone."""
        attn = None
        if self.cfg.use_attention:
            # ESM2's attention-map path is inference-only: the maps are an input without
            # gradient; with a trainable backbone the hidden states come from a second pass.
            with torch.no_grad():
                attn, reps = stacked_attention_maps(backbone, tokens)
            h = reps[backbone.num_layers] if frozen else None
        if attn is None or not frozen:
            with torch.no_grad() if frozen else contextlib.nullcontext():
                h = backbone(tokens, return_logits=False)["last_hidden"]
        h, mask = strip_special(h, tokens)
        return h, mask, attn

    def run(self, backbone, tokens: torch.Tensor, inputs: dict[str, torch.Tensor], frozen: bool) -> torch.Tensor:
        """Logits (B, L, L) of ``tokens`` (B, T) from ``pad_batch`` on ``backbone``; ``inputs``:
        ``nuc`` (B, L) codes 0..4 (4 at padding) and, when the head reads it, ``bpp`` (B, L, L)
        or (B, 1, L, L). NEG_LOGIT at padding and at ``|i - j| <= min_loop``."""
        h, mask, attn = self.backbone_features(backbone, tokens, frozen)
        bpp = inputs.get("bpp") if self.cfg.use_bpp else None
        if bpp is not None and bpp.ndim == 3:
            bpp = bpp[:, None]
        return self(h, mask, attn_feats=attn, bpp=bpp, nuc=inputs.get("nuc"))

    # ---- pieces ---------------------------------------------------------------------------
    def project(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L, E) -> (B, L, proj_dim), zero at padding."""
        h = torch.where(mask[..., None], h, torch.zeros((), dtype=h.dtype, device=h.device))
        return self.proj(self.in_norm(h)) * mask[..., None].to(h.dtype)

    def _check(self, attn_feats, bpp, nuc) -> None:
        cfg = self.cfg
        if cfg.use_attention and attn_feats is None:
            raise ValueError("this head uses attention channels: pass attn_feats")
        if cfg.use_bpp and bpp is None:
            raise ValueError("this head uses a base-pair probability channel: pass bpp")
        if cfg.use_onehot_pairs and nuc is None:
            raise ValueError("this head uses one-hot pair channels: pass nuc (codes 0..4)")

    def trunk(
        self,
        p_rows: torch.Tensor,
        p_cols: torch.Tensor,
        m_rows: torch.Tensor,
        m_cols: torch.Tensor,
        attn: torch.Tensor | None = None,
        bpp: torch.Tensor | None = None,
        nuc_rows: torch.Tensor | None = None,
        nuc_cols: torch.Tensor | None = None,
        channels_last: bool = False,
    ) -> torch.Tensor:
        """Unsymmetrised logits (B, Lr, Lc) over a rectangle of pairs (rows x columns).

        ``channels_last`` stores the trunk's activations as NHWC (same values): about 1.3x
        faster inference on CPU, used by :meth:`predict_tiled`; training keeps NCHW (with the
        backward pass, channels-last was not measurably faster).

        p_*: projected embeddings (B, L*, proj_dim); m_*: (B, L*) bool; attn (B, C_attn, Lr, Lc);
        bpp (B, 1, Lr, Lc); nuc_* (B, L*) codes 0..4. Extras the config does not use are ignored.
        """
        x = self.stem_row(p_rows).permute(0, 2, 1)[:, :, :, None]
        x = x + self.stem_col(p_cols).permute(0, 2, 1)[:, :, None, :]
        if self.stem_attn is not None:
            x = x + self.stem_attn(attn.to(self.stem_attn.weight.dtype))
        if self.stem_bpp is not None:
            x = x + self.stem_bpp(bpp.to(self.stem_bpp.weight.dtype))
        if self.stem_pairs is not None:
            x = x + self._onehot_pairs(nuc_rows, nuc_cols).to(x.dtype)
        if channels_last:  # per-pixel LayerNorms then touch contiguous memory, not strided copies
            x = x.contiguous(memory_format=torch.channels_last)
        if bool(m_rows.all()) and bool(m_cols.all()):
            m = None  # a window wholly inside the sequence: masking would multiply by ones
        else:
            m = (m_rows[:, None, :, None] & m_cols[:, None, None, :]).to(x.dtype)
            x = x * m
        for block in self.blocks:
            x = block(x, m)
        return self.out(F.gelu(self.out_norm(x)))[:, 0]

    def _onehot_pairs(self, nuc_rows: torch.Tensor, nuc_cols: torch.Tensor) -> torch.Tensor:
        """1x1 conv over the 16 one-hot pair channels, as a table lookup: (B, C, Lr, Lc)."""
        a = nuc_rows.long().clamp(0, UNKNOWN_BASE)
        b = nuc_cols.long().clamp(0, UNKNOWN_BASE)
        idx = a[:, :, None] * 4 + b[:, None, :]
        idx = torch.where((a[:, :, None] < 4) & (b[:, None, :] < 4), idx, torch.full_like(idx, 16))
        table = torch.cat([self.stem_pairs, self.stem_pairs.new_zeros(1, self.stem_pairs.shape[1])])
        return F.embedding(idx, table).permute(0, 3, 1, 2)

    # ---- full path ----------------------------------------------------------------------
    def forward(
        self,
        h: torch.Tensor,
        mask: torch.Tensor,
        attn_feats: torch.Tensor | None = None,
        bpp: torch.Tensor | None = None,
        nuc: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Symmetric fp32 logits (B, L, L); :data:`NEG_LOGIT` at padding and ``|i-j| <= min_loop``.

        Memory is O(B * channels * L^2); for long sequences at inference use
        :meth:`predict_tiled`.
        """
        self._check(attn_feats, bpp, nuc)
        mask = mask.bool()
        p = self.project(h, mask)
        raw = self.trunk(p, p, mask, mask, attn_feats, bpp, nuc, nuc).float()
        return self._symmetrise(raw, raw).masked_fill(~valid_pair_mask(mask, self.cfg.min_loop), NEG_LOGIT)

    # ---- tiled inference ---------------------------------------------------------------
    @torch.no_grad()
    def predict_tiled(
        self,
        h: torch.Tensor,
        mask: torch.Tensor,
        attn_feats: PairSource | None = None,
        bpp: PairSource | None = None,
        nuc: torch.Tensor | None = None,
        tile: int = DEFAULT_TILE,
        dtype: torch.dtype | None = None,
        out_dtype: torch.dtype = torch.float32,
        out_device: str | torch.device | None = None,
    ) -> torch.Tensor:
        """Same logits as ``forward`` (in eval mode), computed ``tile x tile`` at a time.

        Each output tile [r0, r1) x [c0, c1) is computed from the input window grown by the
        receptive field R on every side (pair features are built for that window only; rows
        or columns past the sequence are masked, i.e. zero, exactly like the full path's
        padding), then the halo is cropped. Tiles (a, b) and (b, a) are computed together and
        symmetrised (with ``symmetry: upper`` only tile (a, b) is computed), so only
        upper-triangle tile pairs are visited. Peak working memory grows
        with ``(tile + 2R)^2``, not L^2: a handful of ``channels x (tile + 2R)^2`` activations
        plus, on CPU, the im2col buffer of the dilated convs (``channels * k^2`` per pixel).
        Measured (default config, E = 320, CPU fp32, L = 2000): tile 256 -> +0.46 GB peak RSS
        in 47 s, against +3.0 GB in 45 s for ``forward`` (whose memory grows as L^2). The
        output is a (B, L, L) ``out_dtype`` tensor on ``out_device`` (default: h's device) —
        at L = 4000 a float32 map is 64 MB.

        Args:
            h, mask, nuc: as for ``forward``; moved to the head's device.
            attn_feats, bpp: (B, C, L, L) tensors (e.g. on CPU; sliced per tile and moved) or
                callables ``get(r0, r1, c0, c1) -> (B, C, r1-r0, c1-c0)`` so that the caller
                never materialises them; only in-range blocks are requested.
            tile: output tile size.
            dtype: compute precision via autocast. None: bf16 on CUDA (fp16 where bf16 is not
                supported), fp32 on CPU — CPU fp16/bf16 convolutions run but, without native
                bf16 instructions (AVX2 machines), about 30x slower than fp32.
            out_dtype: dtype of the returned map (fp32 or fp16/bf16 to halve its size).
        """
        self._check(attn_feats, bpp, nuc)
        if tile < 1:
            raise ValueError(f"tile must be positive, got {tile}")
        device = next(self.parameters()).device
        dtype = _default_dtype(device) if dtype is None else dtype
        B, L = mask.shape
        out_device = h.device if out_device is None else out_device
        mask = mask.to(device).bool()
        h = h.to(device)
        nuc = None if nuc is None else nuc.to(device)
        out = torch.full((B, L, L), NEG_LOGIT, dtype=out_dtype, device=out_device)
        starts = list(range(0, L, tile))
        present = [bool(mask[:, s : s + tile].any()) for s in starts]
        was_training = self.training
        self.eval()
        try:
            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                p = self.project(h, mask)
                for ai, r0 in enumerate(starts):
                    for bi in range(ai, len(starts)):
                        c0 = starts[bi]
                        if not (present[ai] and present[bi]):
                            continue
                        r1, c1 = min(r0 + tile, L), min(c0 + tile, L)
                        t = self._tile(p, mask, attn_feats, bpp, nuc, r0, r1, c0, c1)
                        out[:, r0:r1, c0:c1] = t.to(out.device, out.dtype)
                        if bi != ai:
                            out[:, c0:c1, r0:r1] = t.transpose(1, 2).to(out.device, out.dtype)
        finally:
            self.train(was_training)
        return out

    def _window_logits(self, p, mask, attn_feats, bpp, nuc, r0, r1, c0, c1) -> torch.Tensor:
        """Unsymmetrised fp32 logits of rows [r0, r1) x cols [c0, c1), from a window grown by the
        receptive field on every side."""
        dev, R, L = p.device, self.receptive_field, mask.shape[1]
        wr0, wr1, wc0, wc1 = r0 - R, r1 + R, c0 - R, c1 + R
        raw = self.trunk(
            _window1d(p, wr0, wr1),
            _window1d(p, wc0, wc1),
            _window1d(mask, wr0, wr1, False),
            _window1d(mask, wc0, wc1, False),
            None if self.stem_attn is None else _window2d(attn_feats, L, wr0, wr1, wc0, wc1, dev),
            None if self.stem_bpp is None else _window2d(bpp, L, wr0, wr1, wc0, wc1, dev),
            None if nuc is None else _window1d(nuc, wr0, wr1, UNKNOWN_BASE),
            None if nuc is None else _window1d(nuc, wc0, wc1, UNKNOWN_BASE),
            channels_last=True,
        )
        return raw[:, R : R + (r1 - r0), R : R + (c1 - c0)].float()

    def _symmetrise(self, ab: torch.Tensor, ba: torch.Tensor) -> torch.Tensor:
        """Symmetric logits of a square block whose unsymmetrised logits are ``ab`` and whose
        transposed block's are ``ba`` (the same tensor for a block on the diagonal)."""
        if self.cfg.symmetry == "mean":
            return (ab + ba.transpose(1, 2)) / 2
        upper = torch.triu(ab, 1)  # only reached for diagonal blocks or the full map
        return upper + upper.transpose(1, 2)

    def _tile(self, p, mask, attn_feats, bpp, nuc, r0, r1, c0, c1) -> torch.Tensor:
        """Final (symmetrised, masked) fp32 logits of output tile [r0, r1) x [c0, c1), with
        ``r0 <= c0`` (an upper-triangle tile pair)."""
        ab = self._window_logits(p, mask, attn_feats, bpp, nuc, r0, r1, c0, c1)
        if (r0, r1) == (c0, c1):
            sym = self._symmetrise(ab, ab)
        elif self.cfg.symmetry == "upper":
            sym = ab  # every pair of an off-diagonal upper tile has i < j
        else:
            ba = self._window_logits(p, mask, attn_feats, bpp, nuc, c0, c1, r0, r1)
            sym = self._symmetrise(ab, ba)
        valid = valid_pair_mask(
            mask[:, r0:r1], self.cfg.min_loop, row_offset=r0, col_offset=c0, col_mask=mask[:, c0:c1]
        )
        return sym.masked_fill(~valid, NEG_LOGIT)


def _default_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


# ----------------------------------------------------------------------------------------
# Loss and backbone glue
# ----------------------------------------------------------------------------------------
def pair_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    pos_weight: float | torch.Tensor | None = None,
    min_loop: int = 3,
) -> torch.Tensor:
    """Binary cross-entropy over the valid upper-triangle pairs of a batch.

    A pair (i, j) counts when ``j - i > min_loop`` and both residues are real (``mask``); the
    loss is the mean over all such pairs of the batch (pooled, so long sequences weigh more).
    ``target`` (B, L, L) holds 0/1 (symmetric; only its upper triangle is read); ``pos_weight``
    multiplies the positive term, as in ``F.binary_cross_entropy_with_logits``. Computed in
    fp32. A batch without valid pairs gives a zero that still carries a gradient.
    """
    valid = valid_pair_mask(mask.bool(), min_loop, upper=True)
    x = logits[valid].float()
    if x.numel() == 0:
        return logits.sum().float() * 0.0
    y = target[valid].float()
    pw = None
    if pos_weight is not None:
        pw = torch.as_tensor(pos_weight, dtype=torch.float32, device=x.device)
    return F.binary_cross_entropy_with_logits(x, y, pos_weight=pw)


def strip_special(x: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone output (B, T, E) + tokens (B, T) -> residues (B, T-2, E) and mask (B, T-2).

    Tokens as made by ``resm.alphabet.pad_batch`` (BOS, residues, EOS, PAD...); the residue
    grid matches ``ContactHead.features`` (which also drops BOS and the last column).
    """
    from ..backbone.esm2 import bos_eos_positions

    return x[:, 1:-1], bos_eos_positions(tokens)[:, 1:-1]


def structure_apply(
    head: StructureHead, h: torch.Tensor, mask: torch.Tensor, batch: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Pair logits from residue embeddings and the batch's ``nuc`` (and ``bpp`` / ``attn``
    channels when the head reads them)."""
    return head(h, mask, attn_feats=batch.get("attn"), bpp=batch.get("bpp"), nuc=batch.get("nuc"))


def build_structure_head(config: dict, embed_dim: int):
    """``(StructureHead, structure_apply)`` from a head config (the registry's builder)."""
    return StructureHead(StructureHeadConfig.from_saved(config, embed_dim)), structure_apply


HEADS = {"structure": build_structure_head}  # this module's entries of resm.heads.HEADS
