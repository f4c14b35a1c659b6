"""The per-layer attention hook: every layer's symmetrised, APC-corrected attention maps.

ESM's contact head reads attention maps as features: each head's map over the residues,
symmetrised and APC-corrected (:meth:`resm.backbone.esm2.ContactHead.features`), channel
``layer * heads + head`` (the order of ``contact_head.regression``). :func:`run_attention`
runs a backbone once and hands those maps to a *consumer* one layer at a time, so only one
layer's raw maps are alive at once; what the consumer keeps decides the memory:

* :class:`StackedMaps` keeps everything: (B, layers * heads, L, L), the input of a structure
  head with attention channels (:func:`stacked_attention_maps`);
* :class:`PairCells` keeps the features of chosen (i, j) cells only, (n, layers * heads), the
  examples of the zero-shot probe (:func:`pair_attention_features`);
* :class:`BatchCells` keeps the features of chosen cells of a batch, the attention input of the
  sparse pair head;
* :class:`LinearMap` keeps a weighted sum over the channels, (L, L): a probe's logit map.

The consumers take one layer's maps as (B, H, L, L) or, for one sequence, (H, L, L), so other
backbones (:mod:`resm.compare.backends`, which hand (H, L, L) maps of their own attention
through :func:`sym_apc`) use the same ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from .esm2 import ESM2, ContactHead, apc

__all__ = [
    "LayerMaps",
    "sym_apc",
    "run_attention",
    "StackedMaps",
    "PairCells",
    "BatchCells",
    "LinearMap",
    "pair_index",
    "stacked_attention_maps",
    "pair_attention_features",
]

LayerMaps = Callable[[int, torch.Tensor], None]
"""``consume(layer, maps)``: one layer's sym+APC maps, (B, H, L, L) or (H, L, L) fp32."""


def sym_apc(attn: torch.Tensor) -> torch.Tensor:
    """Residue-only attention (..., L, L) -> ``apc(a + a^T)``, as ``ContactHead.features``."""
    a = attn.float()
    return apc(a + a.transpose(-1, -2))


def run_attention(
    model: ESM2, tokens: torch.Tensor, consume: LayerMaps, repr_layers: Iterable[int] = (), return_logits: bool = False
) -> dict[str, torch.Tensor]:
    """Run ``model`` once on ``tokens`` (B, T) and hand each layer's (B, H, L, L) sym+APC maps
    (residues only, L = T - 2) to ``consume``; returns the model's output dict."""

    def grab(layer: int, attn: torch.Tensor) -> None:
        consume(layer, ContactHead.features(attn.float(), tokens))

    return model(tokens, repr_layers=list(repr_layers), attention_callback=grab, return_logits=return_logits)


class StackedMaps:
    """Keeps every layer's maps; :meth:`result` stacks them, channel ``layer * heads + head``."""

    def __init__(self, cpu: bool = False):
        self.cpu = cpu
        self.layers: dict[int, torch.Tensor] = {}

    def __call__(self, layer: int, maps: torch.Tensor) -> None:
        self.layers[layer] = maps.detach().float().cpu() if self.cpu else maps

    def result(self) -> torch.Tensor:
        """(B, layers * heads, L, L), or (layers * heads, L, L) for (H, L, L) maps."""
        return torch.cat([self.layers[k] for k in sorted(self.layers)], dim=-3)


class PairCells:
    """Keeps the features of cells ``(i[k], j[k])`` of one sequence: :attr:`out` is float32
    (n, layers * heads); memory O(n x layers x heads) besides one layer's maps."""

    def __init__(
        self,
        i: np.ndarray,
        j: np.ndarray,
        num_layers: int,
        heads: int,
        device: torch.device | str = "cpu",
        name: str = "model",
    ):
        self.heads, self.name = heads, name
        self.out = np.zeros((len(i), num_layers * heads), dtype=np.float32)
        self.ti = torch.as_tensor(i, device=device)
        self.tj = torch.as_tensor(j, device=device)

    def __call__(self, layer: int, maps: torch.Tensor) -> None:
        if maps.ndim == 4:
            if maps.shape[0] != 1:
                raise ValueError(
                    f"{self.name}: pair features are read from one sequence, got a batch of {maps.shape[0]}"
                )
            maps = maps[0]
        H = self.heads
        if maps.shape[0] != H:
            raise ValueError(f"{self.name}: layer {layer} has {maps.shape[0]} heads, expected {H}")
        self.out[:, layer * H : (layer + 1) * H] = maps[:, self.ti, self.tj].T.float().cpu().numpy()


class BatchCells:
    """Keeps the features of cells ``(b[k], i[k], j[k])`` of a batch (sequence, row, column):
    :meth:`result` is (n, layers * heads) float32 on the maps' device, the attention input of
    the sparse pair head (:mod:`resm.heads.pairs`)."""

    def __init__(self, b: torch.Tensor, i: torch.Tensor, j: torch.Tensor):
        self.b, self.i, self.j = b, i, j
        self.layers: dict[int, torch.Tensor] = {}

    def __call__(self, layer: int, maps: torch.Tensor) -> None:
        if maps.ndim == 3:
            maps = maps[None]
        b, i, j = (t.to(maps.device) for t in (self.b, self.i, self.j))
        self.layers[layer] = maps[b, :, i, j].float()  # (n, H)

    def result(self) -> torch.Tensor:
        return torch.cat([self.layers[k] for k in sorted(self.layers)], dim=1)


class LinearMap:
    """Accumulates ``sum_c weight[c] * maps[c]`` over the channels, layer by layer (O(H L^2)
    memory): a probe's logits before its bias. :meth:`result` is (L, L) (or (B, L, L))."""

    def __init__(self, weight: np.ndarray | torch.Tensor, heads: int, device: torch.device | str = "cpu"):
        self.w = torch.as_tensor(weight, dtype=torch.float32, device=device).reshape(-1)
        self.heads = heads
        self.acc: torch.Tensor | None = None

    def __call__(self, layer: int, maps: torch.Tensor) -> None:
        H = self.heads
        part = torch.einsum("...hij,h->...ij", maps.float(), self.w[layer * H : (layer + 1) * H])
        self.acc = part if self.acc is None else self.acc.add_(part)

    def result(self) -> torch.Tensor:
        if self.acc is None:
            raise ValueError("no attention maps were seen")
        return self.acc


# ----------------------------------------------------------------------------- ESM-2 helpers
def pair_index(pairs_mask, L: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``i`` and columns ``j`` of an (L, L) bool mask (``np.nonzero`` order), of an (n, 2)
    integer array (in its order), or of all i < j (``np.triu_indices(L, 1)`` order) for None."""
    if pairs_mask is None:
        i, j = np.triu_indices(L, 1)
        return i.astype(np.int64), j.astype(np.int64)
    m = np.asarray(pairs_mask.detach().cpu() if hasattr(pairs_mask, "detach") else pairs_mask)
    if m.ndim == 2 and m.shape == (L, L) and m.dtype == bool:
        i, j = np.nonzero(m)
    elif m.ndim == 2 and m.shape[1] == 2 and np.issubdtype(m.dtype, np.integer):
        i, j = m[:, 0].astype(np.int64), m[:, 1].astype(np.int64)
    else:
        raise ValueError(
            f"pairs_mask must be an (L, L) bool mask or an (n, 2) integer index array; got "
            f"shape {m.shape}, dtype {m.dtype} for L = {L}"
        )
    if i.size and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= L):
        raise ValueError(f"pair index out of range for L = {L}")
    return i.astype(np.int64), j.astype(np.int64)


def stacked_attention_maps(
    model: ESM2, tokens: torch.Tensor, layers: Sequence[int] | None = None
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Run the backbone once: ``(maps, representations)``.

    maps: (B, layers * heads, L, L) fp32 sym+APC maps. The result itself is
    ``layers * heads * L^2`` floats (esm2_t6_8M at L = 1000: 120 channels, 480 MB), so for long
    RNAs prefer no attention channels. representations: hidden states of ``layers`` (default:
    the last layer)."""
    stack = StackedMaps()
    want = [model.num_layers] if layers is None else list(layers)
    out = run_attention(model, tokens, stack, repr_layers=want)
    return stack.result(), out["representations"]


def pair_attention_features(model: ESM2, tokens_1seq: torch.Tensor, pairs_mask=None) -> np.ndarray:
    """Contact-head features of one sequence at chosen residue pairs.

    ``tokens_1seq``: (T,) or (1, T) token ids with BOS/EOS and no padding (``pad_batch`` of
    one sequence); residues are 0..L-1 with L = T - 2. ``pairs_mask``: see :func:`pair_index`.

    Returns float32 (n_pairs, layers * heads), channel ``layer * heads + head`` (the order of
    ``model.contact_head.regression.weight``), so
    ``sigmoid(X @ w + b) == model.predict_contacts(tokens)[0, i, j]``.
    """
    tokens = torch.as_tensor(tokens_1seq)
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2 or tokens.shape[0] != 1:
        raise ValueError(f"expected the tokens of one sequence, (T,) or (1, T); got {tuple(tokens.shape)}")
    tokens = tokens.long().to(model.device)
    i, j = pair_index(pairs_mask, tokens.shape[1] - 2)
    cells = PairCells(i, j, model.num_layers, model.attention_heads, model.device)
    with torch.inference_mode():
        run_attention(model, tokens, cells)
    return cells.out
