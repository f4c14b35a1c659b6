"""The training loop's GPU-only settings, checked on CPU (this suite runs without a GPU):
what the engines hand DeepSpeed and torch for a run on a CUDA device."""

import json
from pathlib import Path

import pytest
import torch

from resm.train import deepspeed_settings
from resm.train_config import OptimConfig, TrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "deepspeed"


def shipped(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text(encoding="utf-8"))


def settings(precision: str, device: str = "cuda:0", cfg: dict | None = None, **train) -> dict:
    t = TrainConfig(engine="deepspeed", deepspeed_config="zero2", precision=precision, **train)
    return deepspeed_settings(shipped("zero2") if cfg is None else cfg, OptimConfig(max_grad_norm=0.5), t, device)


def enabled(cfg: dict) -> set:
    return {k for k in ("bf16", "fp16") if cfg.get(k, {}).get("enabled")}


@pytest.mark.parametrize("name", ["zero0", "zero1", "zero2", "zero2_offload", "zero3"])
def test_train_precision_alone_decides_deepspeed_half_precision_on_a_gpu(name):
    """Every shipped JSON enables bf16; on a GPU train.precision decides: fp32 trains in fp32
    (the JSON's bf16 used to stay on), fp16 enables fp16 alone (bf16 beside it used to stay on,
    which DeepSpeed refuses), bf16 enables bf16. CPU runs get neither."""
    cfg = shipped(name)
    t = lambda p: TrainConfig(engine="deepspeed", deepspeed_config=name, precision=p)  # noqa: E731
    for precision, want in (("fp32", set()), ("bf16", {"bf16"}), ("fp16", {"fp16"})):
        assert enabled(deepspeed_settings(cfg, OptimConfig(), t(precision), torch.device("cuda", 1))) == want
        assert enabled(deepspeed_settings(cfg, OptimConfig(), t(precision), "cpu")) == set()
    assert enabled(cfg) == {"bf16"}  # the caller's dict is left as it was


def test_deepspeed_settings_keep_the_json_options_and_put_in_the_loops():
    """A half-precision section's own options (loss scaling) are kept; accumulation, clipping
    and the micro-batch come from the loop."""
    cfg = {"fp16": {"enabled": False, "initial_scale_power": 12}, "train_batch_size": 64, "zero_optimization": {}}
    out = settings("fp16", cfg=cfg, grad_accum=4)
    assert out["fp16"] == {"enabled": True, "initial_scale_power": 12} and "bf16" not in out
    assert out["gradient_accumulation_steps"] == 4 and out["gradient_clipping"] == 0.5
    assert out["train_micro_batch_size_per_gpu"] == 1 and "train_batch_size" not in out
