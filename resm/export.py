"""``resm export``: consolidate a training checkpoint (plain torch or ZeRO-sharded) into a
fair-esm ``.pt`` and, optionally, a Hugging Face folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from .mapping import get_scheme
from .model.config import ESM2Config
from .model.esm2 import ESM2
from .model.load import CheckpointError, resm_meta, save_fair_esm, save_hf
from .train import list_checkpoints


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint folder, or a run folder (its newest checkpoint)."""
    path = Path(path)
    if (path / "trainer_rank0.pt").exists():
        return path
    found = list_checkpoints(path)
    if not found:
        raise CheckpointError(f"{path}: neither a checkpoint folder nor a run folder with checkpoints/")
    return found[-1]


def consolidated_state(folder: Path) -> dict:
    if (folder / "engine.pt").exists():
        return torch.load(folder / "engine.pt", map_location="cpu", weights_only=True)["model"]
    if (folder / "ds").is_dir():
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        return get_fp32_state_dict_from_zero_checkpoint(str(folder), tag="ds")
    raise CheckpointError(f"{folder}: no engine.pt and no DeepSpeed 'ds' folder")


def export_checkpoint(path: Path, out: Path, hf: Optional[Path] = None) -> ESM2:
    folder = resolve_checkpoint(path)
    state = torch.load(folder / "trainer_rank0.pt", map_location="cpu", weights_only=False)
    fp = state["fingerprint"]
    if "architecture" not in fp:
        raise CheckpointError(f"{folder}: not a resm pretraining checkpoint (no architecture)")
    model = ESM2(ESM2Config(**fp["architecture"]))
    weights = {k: v.float() for k, v in consolidated_state(folder).items()}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.endswith("inv_freq")]
    if missing or unexpected:
        raise CheckpointError(f"{folder}: weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    scheme = get_scheme(fp["data"]["scheme"])
    meta = resm_meta(scheme, fp.get("arch"), exported_from=str(folder), step=state["step"])
    save_fair_esm(model, out, meta)
    if hf is not None:
        save_hf(model, hf, meta)
    return model
