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
prior settings for the pair head); a file may hold several pair heads of one configuration over
its backbone, whose probabilities are averaged (:data:`ENSEMBLE`, :mod:`resm.structure.ensemble`).
:func:`load_structure_model` reads it back;
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
from ..backbone.esm2 import ESM2
from ..config import ConfigError, format_version_problem
from ..heads.pair_map import DEFAULT_TILE
from ..heads.pairs import Candidates, collate_candidates
from ..mapping import Scheme, get_scheme
from ..nucleotides import rna_codes
from ..utils.io import atomic_path, torch_save

__all__ = [
    "MODEL_FILE",
    "HEAD_KINDS",
    "DEFAULT_KIND",
    "FORMAT",
    "VERSION",
    "check_version",
    "DEFAULT_MODEL",
    "shipped_model_path",
    "resolve_model",
    "load_backbone",
    "load_with_scheme",
    "StructureModel",
    "HeadOfBundle",
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
# the newest "version" entry this resm reads (1: the 2-D head's file; 2: the pair head's, with
# priors and decoding: resm.tasks.structure_heads.PairKind.settings)
VERSION = 2
ENSEMBLE = "head_ensemble"  # the entry of a file whose head is several pair heads averaged
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
    """ESM-2 backbone + a structure head (one of :data:`HEAD_KINDS`): tokens and the head's
    inputs -> its logits. Each head kind reads the backbone its own way (its ``run`` method).

    ``mode`` "frozen": the backbone gets no gradients, runs under ``torch.no_grad()`` and stays
    in eval mode even when the module is put in training mode (only the head trains).
    "adapters": the backbone's base weights stay frozen and a LoRA adapter (``adapter``, an
    :class:`resm.backbone.adapters.AdapterConfig`) trains with the head.
    "full": everything trains except the LM-head and contact-regression weights that a
    structure model never uses.
    """

    def __init__(self, backbone: ESM2, head: nn.Module, mode: str = "frozen", adapter=None):
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

    @property
    def kind(self) -> str:
        """The head's kind (``head.kind`` of its config, ``head_kind`` of its file): ``pairs``
        (:class:`resm.heads.pairs.PairHead`) or ``conv`` (:class:`resm.heads.pair_map.StructureHead`)."""
        return self.head.kind

    def frozen_now(self) -> bool:
        """No gradient reaches the backbone in this call (frozen mode, or no grad enabled)."""
        return self.mode == "frozen" or not torch.is_grad_enabled()

    def forward(self, tokens: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The head's logits for ``tokens`` (B, T) from ``pad_batch`` and its ``inputs``: the
        head's ``run`` (:meth:`resm.heads.pairs.PairHead.run`: candidate logits from the batch
        of :func:`resm.heads.pairs.collate_candidates`; :meth:`StructureHead.run`: (B, L, L)
        logits from ``nuc`` and, when it reads one, ``bpp``)."""
        return self.head.run(self.backbone, tokens, inputs, self.frozen_now())

    def features(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """A 2-D head's inputs from the backbone: residue embeddings, mask and attention
        features (:meth:`resm.heads.pair_map.StructureHead.backbone_features`)."""
        return self.head.backbone_features(self.backbone, tokens, self.frozen_now())


class HeadOfBundle(nn.Module):
    """The structure head ``name`` of a model with one encoder and several heads
    (:class:`resm.tasks.base.TaskModel`: a bundle, or a ``task: joint`` run), called as a
    :class:`StructureModel` is: ``(tokens, inputs) -> logits``, :meth:`features`, ``head`` and
    ``kind``, so that training, validation and the predictors serve both alike. A pair head's
    ``embed_window`` is set on the encoder for its call (as :meth:`PairHead.run` windows)."""

    def __init__(self, model: nn.Module, name: str):
        super().__init__()
        self.model = model
        self.name = name

    @property
    def inner(self) -> nn.Module:
        """The model itself, out of its data-parallel wrapper if training put it in one."""
        return getattr(self.model, "module", self.model)

    @property
    def head(self) -> nn.Module:
        return self.inner.heads[self.name]

    @property
    def kind(self) -> str:
        return self.head.kind

    @contextlib.contextmanager
    def _window(self):
        enc = self.inner.encoder
        old, want = getattr(enc, "window", None), getattr(self.head.cfg, "embed_window", 0)
        if old is not None:
            enc.window = want
        try:
            yield
        finally:
            if old is not None:
                enc.window = old

    def forward(self, tokens: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = dict(inputs, tokens=tokens)
        if batch.get("bpp") is not None and batch["bpp"].ndim == 3:
            batch["bpp"] = batch["bpp"][:, None]
        with self._window():
            return self.model(batch, [self.name])[self.name]

    def features(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        """The encoder's residue embeddings and mask (no attention maps: a bundle's heads read
        embeddings only)."""
        with self._window():
            h, mask = self.inner.encoder({"tokens": tokens})
        return h, mask, None


# ----------------------------------------------------------------------------- the file
def structure_payload(
    model: StructureModel,
    state: dict[str, torch.Tensor],
    head_cfg,
    scheme: Scheme,
    arch: str | None,
    source: str,
    mode: str,
    entries: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of ``structure_model.pt`` for ``model`` with the trained weights ``state``
    (its consolidated state dict); ``entries``: what its head kind adds or sets (file version,
    decoding, prior settings: :meth:`resm.tasks.structure_heads.HeadKind.file_entries`), until
    the trainer chooses the decoding on validation."""
    payload = {
        "format": FORMAT,
        "version": 1,
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
    payload.update(entries or {})
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
        torch_save(payload, tmp)
    return Path(path)


def _backbone_payload(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fp16 base backbone weights (fair-esm names) from the model's state dict; LoRA tensors
    and peft's ``.base_layer`` infix are dropped (the adapter is stored on its own)."""
    out = {}
    for k, v in state.items():
        if k.startswith("backbone.") and ".lora_" not in k:
            out[k[9:].replace(".base_layer.", ".")] = v.detach().cpu().half().clone()
    return out


def check_version(data: dict, where: str) -> None:
    """A :class:`resm.backbone.load.CheckpointError` naming ``where`` unless this resm reads the
    structure model file's format version (:func:`resm.config.format_version_problem`)."""
    from ..backbone.load import CheckpointError

    problem = format_version_problem(data.get("version"), VERSION)
    if problem:
        raise CheckpointError(f"{where}: {problem}")


def backbone_from_payload(data: dict, where: str = "structure model") -> ESM2:
    """The ESM-2 backbone held in a ``structure_model.pt`` payload (fp16 weights, made fp32),
    with its LoRA adapter active when it was trained with one."""
    from ..backbone.config import ESM2Config
    from ..backbone.load import CheckpointError, check_architecture, load_state

    check_version(data, where)
    try:
        cfg = ESM2Config(**data["backbone_config"])
        check_architecture(cfg, data["backbone"], where)
        model = ESM2(cfg)
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
            "contact_regression": isinstance(data.get("backbone"), dict)
            and "contact_head.regression.weight" in data["backbone"],
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


def ensemble_members(data: dict[str, Any]) -> int:
    """How many pair heads a file's content holds under :data:`ENSEMBLE` (0: one plain head).
    The count must be the number of ``members.K.`` prefixes its head weights carry, so that a
    damaged or hostile entry cannot make the loader build heads the file does not hold."""
    entry = data.get(ENSEMBLE)
    if entry is None:
        return 0
    n = entry.get("members") if isinstance(entry, dict) else None
    held = {k.split(".", 2)[1] for k in data.get("head", {}) if k.startswith("members.") and k.count(".") >= 2}
    if not isinstance(n, int) or isinstance(n, bool) or n < 1 or len(held) != n or held != {str(k) for k in range(n)}:
        raise ValueError(f"its {ENSEMBLE} entry names {n!r} heads but the head weights hold {len(held)}")
    return n


def model_from_payload(data: dict[str, Any], where: str = "structure model") -> tuple[StructureModel, dict[str, Any]]:
    """``(model, meta)`` of a structure model file's content (its head rebuilt through
    :data:`resm.heads.HEADS`, by the kind the file records; files without one hold the 2-D head);
    ``where`` (the file) is named by its errors."""
    from ..heads import HEADS, build_for_weights, check_finite_head

    backbone = backbone_from_payload(data, where)
    build = HEADS[HEAD_KINDS[data.get("head_kind", "conv")]]
    n = ensemble_members(data)
    if n:  # several heads of one configuration: their probabilities are averaged (PairHeadEnsemble)
        from ..heads.pairs import PairHeadEnsemble

        member = {k.split(".", 2)[2]: v for k, v in data["head"].items() if k.startswith("members.0.")}
        build_for_weights(build, data["head_config"], backbone.embed_dim, member)  # sizes checked once
        check_finite_head(data["head"])  # every member's weights
        head = PairHeadEnsemble([build(data["head_config"], backbone.embed_dim)[0] for _ in range(n)])
    else:
        head, _ = build_for_weights(build, data["head_config"], backbone.embed_dim, data["head"])
    head.load_state_dict(data["head"])
    model = StructureModel(backbone, head, "frozen").eval()
    meta = {k: v for k, v in data.items() if k not in ("head", "backbone", "adapter")}
    return model, meta


def backbone_given(path: str | Path) -> str:
    """The error for an ESM-2 backbone (a fair-esm ``.pt``, a Hugging Face folder) given where a
    structure model goes, with the two ways to fold with it."""
    return (
        f"{path}: an ESM-2 backbone, not a structure model: fold with a zero-shot probe fitted on it "
        f"(resm probe {path} TRAIN.dbn -o PROBE.pt, then resm fold --model {path} --probe PROBE.pt), "
        "or train a structure head on it (resm finetune --config structure)"
    )


def load_structure_model(path: str | Path) -> tuple[StructureModel, dict[str, Any]]:
    """``(model, meta)`` from a ``structure_model.pt`` (read with ``weights_only=True``);
    meta holds the configs, scheme name and hash, threshold and validation metrics."""
    from ..backbone.load import CheckpointError, reading, safe_load

    data = safe_load(path)  # weights_only; a fair-esm backbone file reads too, and is refused below
    if isinstance(data, dict) and {"model", "cfg"} <= set(data):  # fair-esm's layout: what to do with it
        raise CheckpointError(backbone_given(path))
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a resm structure model (written by `resm finetune`)")
    with reading(path, "structure model"):
        return model_from_payload(data, str(path))


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
    """The :class:`resm.structure.priors.PriorConfig` list a pair-head model was trained with,
    each entry read as ``data.priors``' are (:func:`resm.config.from_dict`): a value of the
    wrong type (``beam: true``, folded with a beam of 1) is a ConfigError naming it."""
    from ..config import ConfigError, from_dict
    from .priors import PriorConfig

    stored = meta.get("priors", [])
    if not isinstance(stored, list):
        raise ConfigError(f"priors: expected a list, got {type(stored).__name__}")
    return [from_dict(PriorConfig, p, f"priors[{k}]") for k, p in enumerate(stored)]


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
    probs = torch.sigmoid(model(tokens, batch)).cpu().numpy() if len(batch["i"]) else np.zeros(0)
    out, o = [], 0
    for c in cands:
        out.append((c, probs[o : o + len(c)].astype(np.float32)))
        o += len(c)
    return out
