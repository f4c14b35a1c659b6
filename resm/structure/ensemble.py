"""Several pair heads in one structure model file: an ensemble of independent trainings of one
recipe over their shared backbone.

:func:`ensemble_payload` makes one file's content from several ``structure_model.pt`` payloads
(:mod:`resm.structure.model`): the heads' weights under ``head`` as ``members.K.*`` and the
entry :data:`resm.structure.model.ENSEMBLE` (``{"members": n, "sources": [...]}``), from which
:func:`resm.structure.model.model_from_payload` rebuilds the head as a
:class:`resm.heads.pairs.PairHeadEnsemble`. That head averages the members' pair probabilities
candidate by candidate (:func:`resm.heads.pairs.mean_probability_logits`), so the predictor
decodes the mean, by the decoding stored in the file, which must be the ensemble's own
(``experiments/structure_cpu/ensemble_heads.py`` chooses it on validation). The one home of the
averaging is the head; ``experiments/structure_cpu/decoding_density.py --ensemble`` uses it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..heads.pairs import PairHeadEnsemble
from .model import ENSEMBLE, FORMAT, check_version

__all__ = ["ensemble_payload"]

# what a file holds of one training's head alone: an ensemble's decoding is chosen again for it
_ONE_HEAD_ENTRIES = ("decoding", "val_metrics", "head_interpolation", "non_canonical")
_SHARED_ENTRIES = ("head_kind", "head_config", "priors", "scheme", "scheme_hash", "backbone_config", "mode")


def ensemble_payload(payloads: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One structure model file's content holding the pair heads of several files
    ``[(name, payload)]`` over their shared backbone (a member that is itself an ensemble
    brings its heads): its head is a :class:`resm.heads.pairs.PairHeadEnsemble`, which averages
    the heads' pair probabilities candidate by candidate before decoding. The files must hold
    pair heads of one configuration, the same priors, scheme, backbone (tensor for tensor) and
    no adapter; otherwise a one-line :class:`resm.backbone.load.CheckpointError` naming the
    file. The result has no decoding: what belonged to one training (decoding, validation
    metrics, a non-canonical scorer) is left out, and the ensemble's decoding must be chosen on
    validation before it is written (``experiments/structure_cpu/ensemble_heads.py``)."""
    from ..backbone.load import CheckpointError

    if not payloads:
        raise CheckpointError("an ensemble needs at least one structure model file")
    first_name, first = payloads[0]
    heads: list[dict[str, torch.Tensor]] = []
    sources: list[str] = []
    for name, data in payloads:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CheckpointError(f"{name}: not a resm structure model (written by `resm finetune`)")
        check_version(data, name)
        if data.get("head_kind", "conv") != PairHeadEnsemble.kind:
            raise CheckpointError(
                f"{name}: its head is {data.get('head_kind', 'conv')!r}; an ensemble holds pair heads"
            )
        if data.get("adapter"):
            raise CheckpointError(f"{name}: its backbone carries a trained adapter; an ensemble shares one backbone")
        for key in _SHARED_ENTRIES:
            if data.get(key) != first.get(key):
                raise CheckpointError(
                    f"{name}: its {key} differs from {first_name}'s; an ensemble holds heads of one "
                    "configuration over one backbone"
                )
        a, b = data["backbone"], first["backbone"]
        if a.keys() != b.keys() or any(not torch.equal(a[k], b[k]) for k in a):
            raise CheckpointError(f"{name}: its backbone differs from {first_name}'s; an ensemble shares one backbone")
        n = int((data.get(ENSEMBLE) or {}).get("members", 0))
        if n:
            for k in range(n):
                p = f"members.{k}."
                heads.append({key[len(p) :]: v for key, v in data["head"].items() if key.startswith(p)})
            sources += list(data[ENSEMBLE].get("sources", [name] * n))
        else:
            heads.append(data["head"])
            sources.append(name)
    out = {k: v for k, v in first.items() if k not in _ONE_HEAD_ENTRIES}
    out["head"] = {f"members.{k}.{key}": v.clone() for k, h in enumerate(heads) for key, v in h.items()}
    out[ENSEMBLE] = {"members": len(heads), "sources": [str(s) for s in sources]}
    return out
