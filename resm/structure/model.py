"""The supervised structure model and its file, ``structure_model.pt``.

:class:`StructureModel` is an ESM-2 backbone with a structure head (backbone frozen, with a
LoRA adapter, or fully trained): either the sparse pair head
(:class:`resm.heads.pairs.PairHead`, which scores the candidate pairs of one or more pair
priors, :mod:`resm.structure.priors`, and is decoded by maximum expected accuracy) or the
dense 2-D :class:`resm.heads.pair_map.StructureHead` (the first two shipped models).
``resm finetune`` (:mod:`resm.tasks.structure_task`) trains it and writes one file
(:func:`structure_payload`, :func:`save_structure_model`): plain dicts and tensors, loadable
with ``weights_only=True``, holding the head, the fp16 backbone weights (and the adapter), the
configs, the mapping scheme (name and table hash) and the decoding threshold chosen on
validation (a threshold for the dense head; a :class:`resm.structure.decode.Decoding` and the
prior settings for the pair head). :func:`load_structure_model` reads it back;
:func:`predict_pairs` gives one sequence's dense pair probabilities through the 2-D head's
memory-bounded tiled inference and :func:`predict_candidates` the candidate probabilities of a
batch of sequences through the pair head: the inference paths of the predictors
(:mod:`resm.structure.predictor`), where decoding happens.

The name ``default`` means the model shipped in the package (:func:`shipped_model_path`);
:func:`resolve_model` is the one place it is resolved. :func:`load_backbone` and
:func:`load_with_scheme` read a backbone from any spec :mod:`resm.backbone.load` reads, and also
from a structure model (its backbone) or ``default`` (the shipped model's backbone).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..alphabet import pad_batch
from ..backbone.attention import BatchCells, run_attention, stacked_attention_maps
from ..backbone.encoder import window_hidden
from ..backbone.esm2 import ESM2
from ..config import ConfigError
from ..heads.pair_map import DEFAULT_TILE, StructureHead, strip_special
from ..heads.pairs import Candidates, PairHead, collate_candidates
from ..mapping import Scheme, get_scheme
from ..nucleotides import rna_codes
from ..utils.io import atomic_path

__all__ = [
    "MODEL_FILE",
    "HEAD_KINDS",
    "DEFAULT_KIND",
    "FORMAT",
    "DEFAULT_MODEL",
    "shipped_model_path",
    "resolve_model",
    "load_backbone",
    "load_with_scheme",
    "StructureModel",
    "structure_payload",
    "save_structure_model",
    "model_from_payload",
    "load_structure_model",
    "predict_pairs",
    "predict_candidates",
]

MODEL_FILE = "structure_model.pt"
# head.kind -> the head's name in resm.heads.HEADS; a file records its kind ("conv" when it has none)
HEAD_KINDS = {"pairs": "pairs", "conv": "structure"}
DEFAULT_KIND = "pairs"  # the shipped model's
FORMAT = "resm-structure"  # the "format" entry of a structure model's file
DEFAULT_MODEL = "default"  # the name of the shipped structure model (its backbone, where a backbone is asked for)


def shipped_model_path() -> Path:
    """The structure model that ships inside the package (``default``)."""
    return Path(__file__).resolve().parents[1] / "models" / "structure_default.pt"


def resolve_model(spec):
    """``spec``, or the shipped model's path when ``spec`` is None or ``"default"`` (and no file
    or folder of that name exists)."""
    if spec is None or (str(spec) == DEFAULT_MODEL and not Path(spec).exists()):
        return shipped_model_path()
    return spec


class StructureModel(nn.Module):
    """ESM-2 backbone + :class:`StructureHead`: tokens -> base-pair logits (B, L, L).

    ``mode`` "frozen": the backbone gets no gradients, runs under ``torch.no_grad()`` and stays
    in eval mode even when the module is put in training mode (only the head trains).
    "adapters": the backbone's base weights stay frozen and a LoRA adapter (``adapter``, an
    :class:`resm.backbone.adapters.AdapterConfig`) trains with the head.
    "full": everything trains except the LM-head and contact-regression weights that a
    structure model never uses.
    """

    def __init__(self, backbone: ESM2, head: StructureHead, mode: str = "frozen", adapter=None):
        super().__init__()
        from ..backbone.encoder import EncoderError, prepare_backbone

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

    def features(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
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

    @property
    def kind(self) -> str:
        """ "pairs" (the sparse pair head) or "conv" (the dense 2-D head)."""
        return "pairs" if isinstance(self.head, PairHead) else "conv"

    def pair_logits(self, tokens: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pair head: logits of the candidates of ``batch`` (:func:`collate_candidates` of the
        same sequences, in the same order, as the rows of ``tokens``)."""
        cfg = self.head.cfg
        h = attn = None
        if cfg.use_embeddings or cfg.use_attention:
            frozen = self.mode == "frozen" or not torch.is_grad_enabled()
            Lm = batch["mask"].shape[1]
            if cfg.use_attention:
                # maps are an input without gradient (as for the 2-D head); the residue states
                # come from the same pass when the backbone is frozen
                b = batch["seq"]
                cells = BatchCells(b, batch["i"] - b * Lm, batch["j"] - b * Lm)
                with torch.no_grad():
                    reps = run_attention(self.backbone, tokens, cells, repr_layers=[self.backbone.num_layers])
                attn = cells.result()
                if frozen:
                    h = reps["representations"][self.backbone.num_layers]
            if cfg.use_embeddings and (h is None or 0 < cfg.embed_window < Lm):
                with torch.no_grad() if frozen else contextlib.nullcontext():
                    h = window_hidden(self.backbone, tokens, cfg.embed_window)
            if h is not None:
                h = h[:, 1 : 1 + Lm]
        return self.head(batch, h, attn)

    def forward(self, tokens: torch.Tensor, nuc: torch.Tensor, bpp: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, T) from ``pad_batch``; nuc (B, T-2) codes 0..4 (4 at padding); bpp
        (B, T-2, T-2) or (B, 1, T-2, T-2) when the head uses it. Returns fp32 logits (B, L, L)
        over residues, NEG_LOGIT at padding and at ``|i - j| <= min_loop``."""
        h, mask, attn = self.features(tokens)
        if bpp is not None and bpp.ndim == 3:
            bpp = bpp[:, None]
        return self.head(h, mask, attn_feats=attn, bpp=bpp if self.head.cfg.use_bpp else None, nuc=nuc)


# ----------------------------------------------------------------------------- the file
def structure_payload(
    model: StructureModel,
    state: dict[str, torch.Tensor],
    head_cfg,
    scheme: Scheme,
    arch: str | None,
    source: str,
    mode: str,
    priors: Sequence = (),
) -> dict[str, Any]:
    """The content of ``structure_model.pt`` for ``model`` with the trained weights ``state``
    (its consolidated state dict): threshold 0.5 (dense head) or the default decoding (pair
    head, with its ``priors``' settings) until the trainer chooses them on validation."""
    payload = {
        "format": FORMAT,
        "version": 2 if model.kind == "pairs" else 1,
        "head_kind": model.kind,
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
    if model.kind == "pairs":
        from .decode import Decoding

        payload.update(priors=[p.to_dict() for p in priors], decoding=Decoding().to_dict(), method="mea")
    if mode == "adapters":
        from ..backbone.adapters import adapter_state_dict

        payload["adapter"] = {
            "config": model.adapter_cfg.to_dict(),
            "state": {
                k: v.detach().float().cpu().clone() for k, v in adapter_state_dict(model.backbone, "shared").items()
            },
        }
    return payload


def save_structure_model(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` (:func:`structure_payload`) to ``path`` atomically."""
    from .._version import __version__

    payload["resm_version"] = __version__
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _backbone_payload(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fp16 base backbone weights (fair-esm names) from the model's state dict; LoRA tensors
    and peft's ``.base_layer`` infix are dropped (the adapter is stored on its own)."""
    out = {}
    for k, v in state.items():
        if k.startswith("backbone.") and ".lora_" not in k:
            out[k[9:].replace(".base_layer.", ".")] = v.detach().cpu().half().clone()
    return out


def backbone_from_payload(data: dict, where: str = "structure model") -> ESM2:
    """The ESM-2 backbone held in a ``structure_model.pt`` payload (fp16 weights, made fp32),
    with its LoRA adapter active when it was trained with one."""
    from ..backbone.config import ESM2Config
    from ..backbone.load import CheckpointError, load_state

    try:
        model = ESM2(ESM2Config(**data["backbone_config"]))
        load_state(model, {k: v.float() for k, v in data["backbone"].items()}, where)
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"{where}: a structure model without a readable backbone ({e})") from None
    if data.get("adapter"):
        from ..backbone.adapters import AdapterConfig, add_adapter, load_adapter_state_dict, set_active_adapter

        add_adapter(model, "shared", AdapterConfig.from_dict(data["adapter"]["config"]))
        load_adapter_state_dict(model, "shared", data["adapter"]["state"])
        set_active_adapter(model, "shared")
    return model


def load_backbone(spec, scheme: Scheme | None = None, regression=None, trust: bool = False):
    """:func:`resm.backbone.load.load_backbone` (a :class:`resm.backbone.load.Loaded`), where ``spec``
    may also be a structure model (its backbone) or ``default`` (the shipped model's backbone,
    its source recorded as ``default``)."""
    from ..backbone import load as L

    path = resolve_model(spec)
    if not Path(path).is_file():
        return L.load_backbone(spec, scheme, regression, trust)
    data = L.safe_load(path, trust)
    if isinstance(data, dict) and data.get("format") == FORMAT:
        meta = {
            "scheme": data.get("scheme"),
            "scheme_hash": data.get("scheme_hash"),
            "arch": data.get("arch"),
            "source": str(path),
            "format": FORMAT,
            "contact_regression": False,
        }
        loaded = L.Loaded(backbone_from_payload(data, str(path)).eval(), meta)
    else:
        loaded = L.load_fair_esm(path, regression, trust, data=data)
    if path is not spec:
        loaded.meta["source"] = DEFAULT_MODEL
    if scheme is not None:
        scheme.check(loaded.meta, where=str(spec))
    return loaded


def load_with_scheme(spec, scheme_name: str | None = None, regression=None, trust: bool = False):
    """:func:`load_backbone`, with the scheme chosen (:func:`resm.backbone.load.choose_scheme`):
    ``(Loaded, Scheme)``."""
    from ..backbone.load import choose_scheme

    loaded = load_backbone(spec, None, regression, trust)
    return loaded, choose_scheme(loaded, scheme_name, spec)


def model_from_payload(data: dict[str, Any]) -> tuple[StructureModel, dict[str, Any]]:
    """``(model, meta)`` of a structure model file's content (its head rebuilt through
    :data:`resm.heads.HEADS`, by the kind the file records; files without one hold the 2-D head)."""
    from ..heads import HEADS

    backbone = backbone_from_payload(data)
    head, _ = HEADS[HEAD_KINDS[data.get("head_kind", "conv")]](data["head_config"], backbone.embed_dim)
    head.load_state_dict(data["head"])
    model = StructureModel(backbone, head, "frozen").eval()
    meta = {k: v for k, v in data.items() if k not in ("head", "backbone", "adapter")}
    return model, meta


def load_structure_model(path: str | Path) -> tuple[StructureModel, dict[str, Any]]:
    """``(model, meta)`` from a ``structure_model.pt`` (read with ``weights_only=True``);
    meta holds the configs, scheme name and hash, threshold and validation metrics."""
    from ..backbone.load import CheckpointError, reading, safe_load

    data = safe_load(path)  # weights_only; a fair-esm backbone file reads too, and is refused below
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a resm structure model (written by `resm finetune`)")
    with reading(path, "structure model"):
        return model_from_payload(data)


@torch.no_grad()
def predict_pairs(
    model: StructureModel, scheme: str | Scheme, seq: str, tile: int = DEFAULT_TILE, bpp_cache=None
) -> np.ndarray:
    """Pair probabilities (L, L) float32 of one sequence, through the head's memory-bounded
    :meth:`StructureHead.predict_tiled` (sigmoid of its logits). Needs RNAfold when the head
    has a bpp channel (read from / stored in the folder ``bpp_cache`` when given:
    :func:`resm.structure.priors.cached_dense_prior`). The backbone itself still runs on the whole sequence."""
    scheme = get_scheme(scheme) if isinstance(scheme, str) else scheme
    model.eval()
    device = next(model.parameters()).device
    tokens = pad_batch([scheme.encode(seq)]).to(device)
    h, mask, attn = model.features(tokens)
    nuc = torch.as_tensor(rna_codes(seq).astype(np.int64))[None].to(device)
    bpp = None
    if model.head.cfg.use_bpp:
        from .priors import cached_dense_prior, head_pair_prior

        cfg = model.head.cfg
        # fp16, as the cache holds it and training read it (resm.tasks.structure_task.StructureTask.bpp_of)
        prior = cached_dense_prior(bpp_cache, seq, cfg) if bpp_cache else head_pair_prior(seq, cfg).astype(np.float16)
        bpp = torch.from_numpy(prior.astype(np.float32))[None, None]
    logits = model.head.predict_tiled(h, mask, attn_feats=attn, bpp=bpp, nuc=nuc, tile=tile)
    return torch.sigmoid(logits[0].float()).cpu().numpy().astype(np.float32)


def model_priors(meta: dict[str, Any]) -> list:
    """The :class:`resm.structure.priors.PriorConfig` list a pair-head model was trained with."""
    from .priors import PriorConfig

    return [PriorConfig(**p) for p in meta.get("priors", [])]


@torch.no_grad()
def predict_candidates(
    model: StructureModel, scheme: str | Scheme, seqs: Sequence[str], priors: Sequence[Sequence], progress=None
) -> list[tuple[Candidates, np.ndarray]]:
    """Pair head: ``(candidates, probabilities)`` of each sequence, run as one batch.
    ``priors[k]`` holds sequence k's :class:`resm.structure.priors.SparsePairs`, one per prior
    of the model, in its order (:func:`model_priors`)."""
    from ..heads.pairs import candidates as make_candidates

    scheme = get_scheme(scheme) if isinstance(scheme, str) else scheme
    model.eval()
    device = next(model.parameters()).device
    cands = [make_candidates(s, p, model.head.cfg) for s, p in zip(seqs, priors)]
    if not cands:
        return []
    batch = {k: v.to(device) for k, v in collate_candidates(cands).items()}
    tokens = pad_batch([scheme.encode(s) for s in seqs]).to(device)
    probs = torch.sigmoid(model.pair_logits(tokens, batch)).cpu().numpy() if len(batch["i"]) else np.zeros(0)
    out, o = [], 0
    for c in cands:
        out.append((c, probs[o : o + len(c)].astype(np.float32)))
        o += len(c)
    return out
