"""The supervised structure model and its file, ``structure_model.pt``.

:class:`StructureModel` is an ESM-2 backbone with the 2-D
:class:`resm.heads.structure.StructureHead` (backbone frozen, with a LoRA adapter, or fully
trained). ``resm finetune`` (:mod:`resm.tasks.structure`) trains it and writes one file
(:func:`structure_payload`, :func:`save_structure_model`): plain dicts and tensors, loadable
with ``weights_only=True``, holding the head, the fp16 backbone weights (and the adapter), the
configs, the mapping scheme (name and table hash) and the decoding threshold chosen on
validation. :func:`load_structure_model` reads it back and :func:`predict_pairs` gives one
sequence's pair probabilities through the head's memory-bounded tiled inference: the main
inference path of ``resm fold``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from ..alphabet import pad_batch
from ..config import ConfigError
from ..heads.structure import DEFAULT_TILE, StructureHead, StructureHeadConfig, strip_special
from ..mapping import Scheme, get_scheme, rna_codes
from ..model.attention import stacked_attention_maps
from ..model.config import ESM2Config
from ..model.esm2 import ESM2
from ..utils.io import atomic_path

__all__ = [
    "MODEL_FILE",
    "StructureModel",
    "structure_payload",
    "save_structure_model",
    "model_from_payload",
    "load_structure_model",
    "predict_pairs",
]

MODEL_FILE = "structure_model.pt"
FORMAT = "resm-structure"


class StructureModel(nn.Module):
    """ESM-2 backbone + :class:`StructureHead`: tokens -> base-pair logits (B, L, L).

    ``mode`` "frozen": the backbone gets no gradients, runs under ``torch.no_grad()`` and stays
    in eval mode even when the module is put in training mode (only the head trains).
    "adapters": the backbone's base weights stay frozen and a LoRA adapter (``adapter``, an
    :class:`resm.model.adapters.AdapterConfig`) trains with the head.
    "full": everything trains except the LM-head and contact-regression weights that a
    structure model never uses.
    """

    def __init__(self, backbone: ESM2, head: StructureHead, mode: str = "frozen", adapter=None):
        super().__init__()
        from ..model.encoder import EncoderError, prepare_backbone

        try:
            prepare_backbone(backbone, mode, adapter)
        except EncoderError as e:
            raise ConfigError(str(e)) from None
        self.backbone = backbone
        self.head = head
        self.mode = mode
        self.adapter_cfg = adapter
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.mode == "frozen":
            self.backbone.eval()
        return self

    def features(self, tokens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Residue embeddings (B, L, E), residue mask (B, L) and, if the head uses them,
        attention features (B, layers * heads, L, L); L = T - 2."""
        frozen = self.mode == "frozen" or not torch.is_grad_enabled()
        attn = None
        if self.head.cfg.use_attention:
            # ESM2's attention-map path is inference-only: the maps are an input without
            # gradient; with a trainable backbone the hidden states come from a second pass.
            with torch.no_grad():
                attn, reps = stacked_attention_maps(self.backbone, tokens)
            h = reps[self.backbone.num_layers] if frozen else None
        if attn is None or not frozen:
            with torch.no_grad() if frozen else contextlib.nullcontext():
                h = self.backbone(tokens, return_logits=False)["last_hidden"]
        h, mask = strip_special(h, tokens)
        return h, mask, attn

    def forward(self, tokens: torch.Tensor, nuc: torch.Tensor, bpp: Optional[torch.Tensor] = None) -> torch.Tensor:
        """tokens (B, T) from ``pad_batch``; nuc (B, T-2) codes 0..4 (4 at padding); bpp
        (B, T-2, T-2) or (B, 1, T-2, T-2) when the head uses it. Returns fp32 logits (B, L, L)
        over residues, NEG_LOGIT at padding and at ``|i - j| <= min_loop``."""
        h, mask, attn = self.features(tokens)
        if bpp is not None and bpp.ndim == 3:
            bpp = bpp[:, None]
        return self.head(h, mask, attn_feats=attn, bpp=bpp if self.head.cfg.use_bpp else None, nuc=nuc)

# ----------------------------------------------------------------------------- the file
def structure_payload(model: StructureModel, state: Dict[str, torch.Tensor], head_cfg: StructureHeadConfig,
                      scheme: Scheme, arch: Optional[str], source: str, mode: str) -> Dict[str, Any]:
    """The content of ``structure_model.pt`` for ``model`` with the trained weights ``state``
    (its consolidated state dict), threshold 0.5 until the trainer chooses one."""
    payload = {
        "format": FORMAT,
        "version": 1,
        "task": "structure",
        "head": {k[5:]: v.detach().float().cpu().clone() for k, v in state.items() if k.startswith("head.")},
        "head_config": head_cfg.to_dict(),
        "backbone": _backbone_payload(state),
        "backbone_config": model.backbone.cfg.to_dict(),
        "arch": arch,
        "backbone_source": source,
        "mode": mode,
        "scheme": scheme.name,
        "scheme_hash": scheme.table_hash,
        "threshold": 0.5,
        "method": "greedy",
        "val_metrics": {},
    }
    if mode == "adapters":
        from ..model.adapters import adapter_state_dict

        payload["adapter"] = {"config": model.adapter_cfg.to_dict(),
                              "state": {k: v.detach().float().cpu().clone()
                                        for k, v in adapter_state_dict(model.backbone, "shared").items()}}
    return payload


def save_structure_model(payload: Dict[str, Any], path: Union[str, Path]) -> Path:
    """Write ``payload`` (:func:`structure_payload`) to ``path`` atomically."""
    from .. import __version__

    payload["resm_version"] = __version__
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _backbone_payload(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """fp16 base backbone weights (fair-esm names) from the model's state dict; LoRA tensors
    and peft's ``.base_layer`` infix are dropped (the adapter is stored on its own)."""
    out = {}
    for k, v in state.items():
        if k.startswith("backbone.") and ".lora_" not in k:
            out[k[9:].replace(".base_layer.", ".")] = v.detach().cpu().half().clone()
    return out


def model_from_payload(data: Dict[str, Any]) -> Tuple[StructureModel, Dict[str, Any]]:
    backbone = ESM2(ESM2Config(**data["backbone_config"]))
    backbone.load_state_dict({k: v.float() for k, v in data["backbone"].items()})
    if data.get("adapter"):
        from ..model.adapters import AdapterConfig, add_adapter, load_adapter_state_dict

        add_adapter(backbone, "shared", AdapterConfig.from_dict(data["adapter"]["config"]))
        load_adapter_state_dict(backbone, "shared", data["adapter"]["state"])
    head = StructureHead(StructureHeadConfig.from_dict(data["head_config"]))
    head.load_state_dict(data["head"])
    model = StructureModel(backbone, head, "frozen").eval()
    meta = {k: v for k, v in data.items() if k not in ("head", "backbone", "adapter")}
    return model, meta


def load_structure_model(path: Union[str, Path]) -> Tuple[StructureModel, Dict[str, Any]]:
    """``(model, meta)`` from a ``structure_model.pt`` (read with ``weights_only=True``);
    meta holds the configs, scheme name and hash, threshold and validation metrics."""
    from ..model.load import CheckpointError, reading, safe_load

    data = safe_load(path)  # weights_only; a fair-esm backbone file reads too, and is refused below
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a resm structure model (written by `resm finetune`)")
    with reading(path, "structure model"):
        return model_from_payload(data)


@torch.no_grad()
def predict_pairs(model: StructureModel, scheme: Union[str, Scheme], seq: str, tile: int = DEFAULT_TILE,
                  bpp_cache=None) -> np.ndarray:
    """Pair probabilities (L, L) float32 of one sequence, through the head's memory-bounded
    :meth:`StructureHead.predict_tiled` (sigmoid of its logits). Needs RNAfold when the head
    has a bpp channel (read from / stored in the folder ``bpp_cache`` when given:
    :func:`resm.structure.folders.cached_prior`). The backbone itself still runs on the whole sequence."""
    scheme = get_scheme(scheme) if isinstance(scheme, str) else scheme
    model.eval()
    device = next(model.parameters()).device
    tokens = pad_batch([scheme.encode(seq)]).to(device)
    h, mask, attn = model.features(tokens)
    nuc = torch.as_tensor(rna_codes(seq).astype(np.int64))[None].to(device)
    bpp = None
    if model.head.cfg.use_bpp:
        from .folders import cached_prior, head_pair_prior

        cfg = model.head.cfg
        prior = cached_prior(bpp_cache, seq, cfg) if bpp_cache else head_pair_prior(seq, cfg)
        bpp = torch.from_numpy(prior.astype(np.float32))[None, None]
    logits = model.head.predict_tiled(h, mask, attn_feats=attn, bpp=bpp, nuc=nuc, tile=tile)
    return torch.sigmoid(logits[0].float()).cpu().numpy().astype(np.float32)
