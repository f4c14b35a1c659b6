"""experiments/structure_cpu/interpolate_heads.py: a head between a model and its fine-tune,
tensor by tensor; models of different backbones or head configurations are refused."""

from pathlib import Path

import pytest
import torch

from resm.backbone.load import safe_load
from tests.conftest import experiment_script

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "resm" / "models" / "structure_default.pt"


def _script():
    return experiment_script("structure_cpu/interpolate_heads.py")


def test_interpolation_is_a_lerp_of_the_heads_and_refuses_other_models(tmp_path):
    mod = _script()
    start = safe_load(SHIPPED)
    g = torch.Generator().manual_seed(0)
    moved_head = {
        k: v + torch.randn(v.shape, generator=g) if v.is_floating_point() else v for k, v in start["head"].items()
    }
    tuned = {**start, "head": moved_head}
    half = mod.interpolate(start, tuned, 0.25)
    for k, v in start["head"].items():
        if v.is_floating_point():
            assert torch.allclose(half["head"][k], 0.75 * v + 0.25 * tuned["head"][k], atol=1e-6)
    assert all(torch.equal(mod.interpolate(start, tuned, 0.0)["head"][k], v) for k, v in start["head"].items())
    assert half["backbone"] is start["backbone"] and half["decoding"] == start["decoding"]
    # the checkpoint form: a finetune engine.pt's head.* weights
    ckpt = {"model": {f"head.{k}": v for k, v in tuned["head"].items()}}
    torch.save(ckpt, tmp_path / "engine.pt")
    read = mod.read_tuned(str(tmp_path / "engine.pt"), start)
    assert all(torch.equal(read["head"][k], tuned["head"][k]) for k in tuned["head"])
    other = {**tuned, "head_config": {**start["head_config"], "width": 32}}
    with pytest.raises(SystemExit, match="head_config"):
        mod.interpolate(start, other, 0.5)
    moved = {**tuned, "backbone": {k: v + 1 for k, v in start["backbone"].items()}}
    with pytest.raises(SystemExit, match="different backbones"):
        mod.interpolate(start, moved, 0.5)
