"""The training loop's GPU-only settings, checked on CPU (this suite runs without a GPU):
what the engines hand DeepSpeed and torch for a run on a CUDA device."""

import json
from pathlib import Path

import pytest
import torch

from resm.engines import deepspeed_settings
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


def test_deepspeed_half_precision_autocasts_the_float_inputs_of_its_half_model(monkeypatch):
    """DeepSpeed bf16 casts the model, not a batch: a head that reads float inputs (the pair
    head's residue and pair features) met 'mat1 and mat2 must have the same dtype'. The engine
    now runs the loss under autocast of the config's half dtype. ``deepspeed.initialize`` is
    faked, and the engine built for a GPU then runs its autocast on CPU, which takes the same
    casts."""
    deepspeed = pytest.importorskip("deepspeed")
    import numpy as np

    from resm.engines import DeepSpeedEngine
    from resm.heads.pairs import PairHead, PairHeadConfig, candidates, collate_candidates
    from tests.heads.test_pairs import random_prior

    class Wrapped(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    def initialize(model, optimizer, lr_scheduler, config):
        half = torch.bfloat16 if config.get("bf16", {}).get("enabled") else None
        return Wrapped(model.to(half) if half else model), optimizer, None, lr_scheduler

    monkeypatch.setattr(deepspeed, "initialize", initialize)
    cfg = PairHeadConfig(embed_dim=6, width=16, pair_width=16, blocks=1, dilations=(1,), rounds=1, min_prob=0.01)
    rng = np.random.default_rng(3)
    seq = "".join(rng.choice(list("ACGU"), 40))
    batch = collate_candidates([candidates(seq, [random_prior(seq, rng)], cfg)])
    h = torch.randn(1, 40, 6)
    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", None)):
        train = TrainConfig(engine="deepspeed", deepspeed_config=str(CONFIGS / "zero2.json"), precision=precision)
        engine = DeepSpeedEngine(PairHead(cfg), OptimConfig(), train, torch.device("cuda", 0))
        assert next(engine.module.parameters()).dtype == (dtype or torch.float32)
        engine.device = torch.device("cpu")  # its autocast, run where this test runs
        with torch.no_grad(), engine.autocast():
            logits = engine.module(batch, h.to(dtype or torch.float32))
        assert logits.shape == (len(batch["i"]),) and torch.isfinite(logits).all()
        assert engine.autocast_dtype is dtype


def test_deepspeed_half_precision_run_ends_with_the_fp32_master_weights(monkeypatch):
    """In a DeepSpeed bf16 run the module's weights are bf16 copies of the optimiser's fp32
    master weights; the final model (full_state_dict) is made of the masters, as ``resm export``
    reads them, for every name of a tied weight too; frozen weights (no master) are the values
    the engine kept before DeepSpeed cast them (``engine.frozen``). DeepSpeed's
    ``safe_get_full_fp32_param`` is faked (it needs a GPU run's optimiser)."""
    deepspeed = pytest.importorskip("deepspeed")
    from resm.engines import DeepSpeedEngine

    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(5, 3)
            self.out = torch.nn.Linear(3, 5, bias=False)
            self.out.weight = self.embed.weight
            self.frozen = torch.nn.Linear(3, 1)
            self.frozen.requires_grad_(False)

    torch.manual_seed(0)
    fp32 = Tied()
    masters = {id(p): p.detach().clone() for p in fp32.parameters()}
    module = Tied().to(torch.bfloat16)
    module.load_state_dict({k: v.to(torch.bfloat16) for k, v in fp32.state_dict().items()})
    module.frozen.requires_grad_(False)
    by_id = dict(zip(map(id, module.parameters()), masters.values()))
    calls = []

    def safe_get_full_fp32_param(p):
        calls.append(id(p))
        return by_id[id(p)]

    monkeypatch.setattr(deepspeed.utils, "safe_get_full_fp32_param", safe_get_full_fp32_param)
    engine = DeepSpeedEngine.__new__(DeepSpeedEngine)
    engine.module, engine.autocast_dtype = module, torch.bfloat16
    engine.frozen = {k: v for k, v in fp32.state_dict().items() if k.startswith("frozen.")}
    engine.model = type("Wrapped", (), {"zero_optimization_partition_weights": lambda self: False})()
    state = engine.full_state_dict()
    want = fp32.state_dict()
    assert set(state) == set(want) == {"embed.weight", "out.weight", "frozen.weight", "frozen.bias"}
    for k in ("embed.weight", "out.weight"):  # trained: the masters, not their bf16 copies
        assert state[k].dtype == torch.float32 and torch.equal(state[k], want[k])
    assert not torch.equal(module.embed.weight.float(), want["embed.weight"])  # the copies differ
    assert torch.equal(state["frozen.weight"], want["frozen.weight"])
    assert not torch.equal(module.frozen.weight.float(), want["frozen.weight"])
    assert len(calls) == 1  # the tied weight's master is fetched once
    engine.autocast_dtype = None  # fp32: the module's own weights, as before
    assert {k: v.dtype for k, v in engine.full_state_dict().items()} == dict.fromkeys(want, torch.bfloat16)
