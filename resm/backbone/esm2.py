"""The ESM-2 backbone, re-implemented for long sequences and mixed precision.

Parameter names are exactly fair-esm's ``esm.model.esm2.ESM2`` (so fair-esm state dicts load
without renaming), and the maths is the same, with three differences in how it is computed:

* attention runs through ``torch.nn.functional.scaled_dot_product_attention`` (flash or
  memory-efficient kernels) unless attention maps are asked for, so no (heads x L x L) matrix
  is ever built on the fast path;
* the rotary embedding is computed and applied in fp32 whatever the autocast or parameter
  dtype, so bf16 runs work and positions stay exact far beyond 10,000 tokens;
* attention maps, when wanted, are handed to a callback layer by layer, so a caller never holds
  layers x heads x L x L at once (fair-esm stacks them all).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..alphabet import BOS, EOS, MASK, PAD
from .config import ESM2Config

# callback(layer_index (0-based), attention probabilities (B, H, T, T)) -> None
AttentionCallback = Callable[[int, torch.Tensor], None]

# Attention maps and contact features are processed in slices of about this many elements
# (64M floats = 256 MB), which bounds the temporaries at long lengths.
_HEAD_CHUNK_ELEMS = 1 << 26


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoFormer), always evaluated in fp32."""

    def __init__(self, dim: int):
        super().__init__()
        inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        self.register_buffer("inv_freq", inv_freq)  # persistent: fair-esm checkpoints hold it
        self._cache: tuple[int, torch.device, torch.Tensor, torch.Tensor] | None = None

    def cos_sin(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        c = self._cache
        if c is None or c[0] < length or c[1] != device:
            with torch.autocast(device_type=device.type, enabled=False):
                t = torch.arange(length, device=device, dtype=torch.float32)
                freqs = torch.outer(t, self.inv_freq.to(device=device, dtype=torch.float32))
                emb = torch.cat((freqs, freqs), dim=-1)
                c = (length, device, emb.cos(), emb.sin())
            self._cache = c
        return c[2][:length], c[3][:length]

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        x1, x2 = xf.chunk(2, dim=-1)
        rotated = torch.cat((-x2, x1), dim=-1)
        return (xf * cos + rotated * sin).to(x.dtype)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q, k: (..., T, head_dim)."""
        cos, sin = self.cos_sin(k.shape[-2], k.device)
        return self._rotate(q, cos, sin), self._rotate(k, cos, sin)


class SelfAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scaling = self.head_dim**-0.5
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.rot_emb = RotaryEmbedding(self.head_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, E); key_padding_mask: (B, T), True at padding, or None."""
        b, t, e = x.shape
        q = self._heads(self.q_proj(x) * self.scaling)
        k = self._heads(self.k_proj(x))
        v = self._heads(self.v_proj(x))
        q, k = self.rot_emb(q, k)
        weights = None
        if need_weights:
            # Maps are built a few heads at a time into one (B, H, T, T) buffer, so the peak is
            # one layer's maps plus a small slice, not several full-size temporaries.
            weights = q.new_empty((b, self.num_heads, t, t), dtype=torch.float32)
            out = torch.empty_like(q)
            step = max(1, _HEAD_CHUNK_ELEMS // max(1, b * t * t))
            for h0 in range(0, self.num_heads, step):
                sl = slice(h0, h0 + step)
                scores = torch.matmul(q[:, sl], k[:, sl].transpose(-1, -2)).float()
                if key_padding_mask is not None:
                    scores.masked_fill_(key_padding_mask[:, None, None, :], float("-inf"))
                torch.softmax(scores, dim=-1, out=weights[:, sl])
                del scores
                out[:, sl] = torch.matmul(weights[:, sl].to(v.dtype), v[:, sl])
        else:
            mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
        out = out.transpose(1, 2).reshape(b, t, e)
        return self.out_proj(out), weights


class TransformerLayer(nn.Module):
    """Pre-LayerNorm transformer block with fair-esm's parameter names."""

    def __init__(self, cfg: ESM2Config):
        super().__init__()
        self.self_attn = SelfAttention(cfg.embed_dim, cfg.attention_heads)
        self.self_attn_layer_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)
        self.fc1 = nn.Linear(cfg.embed_dim, cfg.ffn_dim)
        self.fc2 = nn.Linear(cfg.ffn_dim, cfg.embed_dim)
        self.final_layer_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)

    def forward(self, x, key_padding_mask=None, need_weights: bool = False):
        h, attn = self.self_attn(self.self_attn_layer_norm(x), key_padding_mask, need_weights)
        x = x + h
        x = x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))
        return x, attn


class RobertaLMHead(nn.Module):
    def __init__(self, cfg: ESM2Config, weight: nn.Parameter):
        super().__init__()
        self.dense = nn.Linear(cfg.embed_dim, cfg.embed_dim)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)
        self.weight = weight  # tied to the token embedding
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.layer_norm(F.gelu(self.dense(x))), self.weight) + self.bias


class ContactHead(nn.Module):
    """ESM's contact head: logistic regression over symmetrised, APC-corrected attention maps.

    Unlike fair-esm it consumes maps one layer at a time (``accumulate``), so memory stays
    O(B x L^2) whatever the number of layers and heads.
    """

    def __init__(self, num_layers: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.regression = nn.Linear(num_layers * num_heads, 1)

    @staticmethod
    def features(attn: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(B, H, T, T) attention -> (B, H, L, L) sym+APC features over residues only."""
        keep = (tokens != EOS).to(attn.dtype)
        attn = attn * (keep[:, None, :, None] * keep[:, None, None, :])
        attn = attn[..., 1:-1, 1:-1]  # drop BOS and the last column (EOS or padding)
        return apc(attn + attn.transpose(-1, -2))

    def accumulate(self, acc: torch.Tensor | None, layer: int, attn, tokens) -> torch.Tensor:
        """Add this layer's weighted features to ``acc``, a few heads at a time."""
        b, h, t, _ = attn.shape
        w = self.regression.weight[0, layer * self.num_heads : (layer + 1) * self.num_heads].float()
        step = max(1, _HEAD_CHUNK_ELEMS // max(1, b * t * t))
        for h0 in range(0, h, step):
            feats = self.features(attn[:, h0 : h0 + step].float(), tokens)
            part = torch.einsum("bhij,h->bij", feats, w[h0 : h0 + step])
            del feats
            acc = part if acc is None else acc.add_(part)
        return acc

    def finish(self, acc: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(acc + self.regression.bias.float())


def apc(x: torch.Tensor) -> torch.Tensor:
    """Average product correction over the last two dimensions."""
    a1 = x.sum(-1, keepdim=True)
    a2 = x.sum(-2, keepdim=True)
    a12 = x.sum((-1, -2), keepdim=True)
    return x - a1 * a2 / a12


class ESM2(nn.Module):
    """ESM-2 masked language model. ``forward`` returns a dict like fair-esm's."""

    def __init__(self, cfg: ESM2Config):
        super().__init__()
        self.cfg = cfg
        self.num_layers = cfg.num_layers
        self.embed_dim = cfg.embed_dim
        self.attention_heads = cfg.attention_heads
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=PAD)
        self.layers = nn.ModuleList([TransformerLayer(cfg) for _ in range(cfg.num_layers)])
        self.contact_head = ContactHead(cfg.num_layers, cfg.attention_heads)
        self.emb_layer_norm_after = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)
        self.lm_head = RobertaLMHead(cfg, self.embed_tokens.weight)
        self.gradient_checkpointing = False

    # ------------------------------------------------------------------------------
    def embed(self, tokens: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(tokens)
        if self.cfg.token_dropout:
            is_mask = tokens == MASK
            x = x.masked_fill(is_mask.unsqueeze(-1), 0.0)
            mask_ratio_train = 0.15 * 0.8
            src_lengths = (~padding_mask).sum(-1)
            observed = is_mask.sum(-1).to(x.dtype) / src_lengths
            x = x * (1 - mask_ratio_train) / (1 - observed)[:, None, None]
        return x * (~padding_mask).unsqueeze(-1).to(x.dtype)

    def forward(
        self,
        tokens: torch.Tensor,
        repr_layers: Iterable[int] = (),
        need_head_weights: bool = False,
        return_contacts: bool = False,
        attention_callback: AttentionCallback | None = None,
        return_logits: bool = True,
    ) -> dict[str, torch.Tensor]:
        """tokens: (B, T) with BOS/EOS and PAD, as made by ``resm.alphabet.pad_batch``.

        * repr_layers: layers whose hidden states to return (0 = embeddings; the last layer is
          returned after the final LayerNorm, as in fair-esm).
        * need_head_weights: also return all maps stacked, (B, layers, H, T, T) — memory heavy,
          kept for fair-esm compatibility; prefer ``attention_callback``.
        * return_contacts: contact probabilities (B, L, L) computed layer by layer.
        * attention_callback(layer, attn): receives each layer's (B, H, T, T) maps, with padding
          rows and columns zeroed, then lets go of them.
        """
        assert tokens.ndim == 2
        padding_mask = tokens.eq(PAD)
        x = self.embed(tokens, padding_mask)
        repr_layers = set(repr_layers)
        reps: dict[int, torch.Tensor] = {}
        if 0 in repr_layers:
            reps[0] = x
        kpm = padding_mask if padding_mask.any() else None
        want_maps = need_head_weights or return_contacts or attention_callback is not None
        pair_keep = None
        if want_maps and kpm is not None:
            keep = (~padding_mask).float()
            pair_keep = (keep[:, :, None] * keep[:, None, :])[:, None]
        stacked, contact_acc = [], None

        for i, layer in enumerate(self.layers):
            if self.gradient_checkpointing and self.training and not want_maps:
                x, attn = checkpoint(layer, x, kpm, False, use_reentrant=False)
            else:
                x, attn = layer(x, kpm, want_maps)
            if attn is not None:
                if pair_keep is not None:
                    attn = attn * pair_keep
                if attention_callback is not None:
                    attention_callback(i, attn)
                if return_contacts:
                    contact_acc = self.contact_head.accumulate(contact_acc, i, attn, tokens)
                if need_head_weights:
                    stacked.append(attn)
                del attn
            if (i + 1) in repr_layers:
                reps[i + 1] = x

        x = self.emb_layer_norm_after(x)
        if self.num_layers in repr_layers:
            reps[self.num_layers] = x
        out: dict[str, torch.Tensor] = {"representations": reps, "last_hidden": x}
        if return_logits:
            out["logits"] = self.lm_head(x)
        if need_head_weights:
            out["attentions"] = torch.stack(stacked, 1)
        if return_contacts:
            out["contacts"] = self.contact_head.finish(contact_acc)
        return out

    def predict_contacts(self, tokens: torch.Tensor) -> torch.Tensor:
        return self(tokens, return_contacts=True, return_logits=False)["contacts"]

    @property
    def device(self) -> torch.device:
        return self.embed_tokens.weight.device


def bos_eos_positions(tokens: torch.Tensor) -> torch.Tensor:
    """Boolean (B, T) mask of residue positions (not BOS, EOS or PAD)."""
    return (tokens != BOS) & (tokens != EOS) & (tokens != PAD)
