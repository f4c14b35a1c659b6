"""A structure model whose pair-head weights lie between two trainings of the same head: the
weights of ``start`` moved a fraction ``alpha`` of the way to those of ``tuned`` (a model
fine-tuned from ``start``), tensor by tensor; alpha 0 is ``start``, 1 is ``tuned``. Weight
interpolation between a model and its fine-tuned version keeps much of what the fine-tune
gained while losing less of what the start knew (Wortsman et al., "Robust fine-tuning of
zero-shot models", CVPR 2022). The two files must hold the same backbone, head configuration,
priors and scheme; the result takes ``start``'s decoding (choose it again with
``rechoose_decoding.py``). ``tuned`` may also be a training checkpoint's ``engine.pt`` of a
``resm finetune`` run from ``start`` (its ``head.*`` weights; the backbone is ``start``'s).

    python experiments/structure_cpu/interpolate_heads.py resm/models/structure_default.pt \\
        runs/finetune_structure_mix/structure_model.pt --alpha 0.5 --out runs/wise_05.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's resm, not an installed one

from resm.backbone.load import safe_load
from resm.structure.model import save_structure_model


def read_tuned(path: str, start: dict) -> dict:
    """A structure model file, or a checkpoint's ``engine.pt`` read as ``start`` with the
    checkpoint's head weights."""
    data = safe_load(path)
    if "head" in data:
        return data
    model = data.get("model") if isinstance(data, dict) else None
    head = {k[len("head.") :]: v for k, v in (model or {}).items() if k.startswith("head.")}
    if not head or head.keys() != start["head"].keys():
        raise SystemExit(f"{path}: neither a structure model file nor a checkpoint of this head")
    return {**start, "head": head}


def interpolate(start: dict, tuned: dict, alpha: float) -> dict:
    """``start``'s payload with its head moved ``alpha`` of the way to ``tuned``'s."""
    for key in ("head_kind", "head_config", "priors", "scheme_hash", "backbone_config"):
        if start.get(key) != tuned.get(key):
            raise SystemExit(f"the two models differ in {key}: not two trainings of one head")
    if start["backbone"].keys() != tuned["backbone"].keys() or any(
        not torch.equal(start["backbone"][k], tuned["backbone"][k]) for k in start["backbone"]
    ):
        raise SystemExit("the two models hold different backbones")
    out = dict(start)
    out["head"] = {
        k: torch.lerp(v, tuned["head"][k], alpha) if v.is_floating_point() else tuned["head"][k].clone()
        for k, v in start["head"].items()
    }
    out["head_interpolation"] = {"alpha": float(alpha)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("start")
    ap.add_argument("tuned")
    ap.add_argument("--alpha", type=float, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if not 0.0 <= a.alpha <= 1.0:
        raise SystemExit(f"--alpha must be in [0, 1], got {a.alpha}")
    start = safe_load(a.start)
    save_structure_model(interpolate(start, read_tuned(a.tuned, start), a.alpha), a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
