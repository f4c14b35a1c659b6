"""LoRA adapters (resm.backbone.adapters) on the tiny 2-layer ESM-2: injection, training,
switching, disabling, the on-disk bundle and its checks."""

import copy
import json
import time

import numpy as np
import pytest
import torch
import torch.nn as nn

from resm.backbone import adapters as A
from resm.backbone.adapters import AdapterConfig, AdapterError
from resm.backbone.load import init_model
from resm.mapping import get_scheme

CFG_A = AdapterConfig(r=4, alpha=8.0, targets=["q_proj", "v_proj"])
CFG_B = AdapterConfig(r=4, alpha=8.0, targets=["fc1", "fc2"], layers=[1])


def tokens(seed=0, b=3, t=12):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(4, 24, (b, t), generator=g)
    x[:, 0], x[:, -1] = 0, 2  # BOS, EOS
    x[-1, -3:] = 1  # some padding
    return x


def out(model, x):
    with torch.no_grad():
        return model(x)["logits"]


def train(model, name, steps=4, seed=1):
    """A few Adam steps of adapter `name` towards a random target."""
    A.set_active_adapter(model, name)
    x = tokens(seed)
    target = torch.randn(x.shape + (model.embed_dim,), generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(A.adapter_parameters(model, name), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = (model(x, return_logits=False)["last_hidden"] - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def cloned(state):
    return {k: v.detach().clone() for k, v in state.items()}


@pytest.fixture(scope="module")
def trained():
    """Backbone with adapters 'a' (q,v in all layers) and 'b' (fc1,fc2 of layer 1), trained apart."""
    torch.manual_seed(0)
    model = init_model("tiny", seed=0)
    x = tokens()
    base_out, base_state = out(model, x), cloned(model.state_dict())
    A.add_adapter(model, "a", CFG_A)
    train(model, "a")
    A.add_adapter(model, "b", CFG_B)
    a_before = A.adapter_state_dict(model, "a")
    train(model, "b", seed=2)
    return dict(model=model, x=x, base_out=base_out, base_state=base_state, a_before=a_before)


def test_injection_keeps_output_and_freezes_base():
    model = init_model("tiny", seed=0)
    x = tokens()
    ref = out(model, x)
    A.add_adapter(model, "x", AdapterConfig(r=4, alpha=8))
    assert torch.allclose(out(model, x), ref, atol=1e-6)
    assert A.adapter_names(model) == ["x"] and A.active_adapter(model) == "x"
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n for n in trainable)
    # 6 targets x 2 layers x (A, B)
    assert len(A.adapter_parameters(model, "x")) == 24
    assert {id(p) for p in A.adapter_parameters(model, "x")} == {
        id(p) for n, p in model.named_parameters() if p.requires_grad
    }
    with pytest.raises(AdapterError, match="already exists"):
        A.add_adapter(model, "x", AdapterConfig())
    with pytest.raises(AdapterError, match="must match"):
        A.add_adapter(model, "bad name", AdapterConfig())
    with pytest.raises(AdapterError, match="layer 5"):
        A.add_adapter(model, "y", AdapterConfig(layers=[5]))


def test_layers_and_targets_select_modules():
    model = init_model("tiny", seed=0)
    A.add_adapter(model, "b", CFG_B)
    keys = sorted(A.adapter_state_dict(model, "b"))
    assert keys == [
        "layers.1.fc1.lora_A.weight",
        "layers.1.fc1.lora_B.weight",
        "layers.1.fc2.lora_A.weight",
        "layers.1.fc2.lora_B.weight",
    ]
    assert A.adapter_state_dict(model, "b")["layers.1.fc1.lora_A.weight"].shape == (4, 64)


def test_training_changes_output_not_backbone(trained):
    model, x = trained["model"], trained["x"]
    for name in ("a", "b"):
        A.set_active_adapter(model, name)
        assert not torch.allclose(out(model, x), trained["base_out"], atol=1e-4)
    base = A.base_state_dict(model)
    assert list(base) == list(trained["base_state"])
    assert all(torch.equal(base[k], v) for k, v in trained["base_state"].items())
    fresh = init_model("tiny", seed=0)
    assert A.backbone_checksum(model) == A.backbone_checksum(fresh)
    # training 'b' left 'a' alone (its params were frozen while 'b' was active)
    a_now = A.adapter_state_dict(model, "a")
    assert all(torch.equal(a_now[k], v) for k, v in trained["a_before"].items())


def test_switch_and_disable(trained):
    model, x = trained["model"], trained["x"]
    A.set_active_adapter(model, "a")
    out_a = out(model, x)
    assert A.active_adapter(model) == "a"
    assert {id(p) for p in A.adapter_parameters(model, "a")} == {id(p) for p in model.parameters() if p.requires_grad}
    A.set_active_adapter(model, "b")
    out_b = out(model, x)
    assert not torch.allclose(out_a, out_b, atol=1e-4)
    A.set_active_adapter(model, None)
    assert A.active_adapter(model) is None
    assert torch.equal(out(model, x), trained["base_out"])
    assert not any(p.requires_grad for p in model.parameters())
    A.set_active_adapter(model, "a")
    assert torch.equal(out(model, x), out_a)
    with pytest.raises(AdapterError, match="no adapter 'zz'"):
        A.set_active_adapter(model, "zz")


def test_checksum():
    m = init_model("tiny", seed=0)
    c = A.backbone_checksum(m)
    assert len(c) == 64
    again = init_model("tiny", seed=3)
    again.load_state_dict(m.state_dict())
    assert A.backbone_checksum(again) == c
    A.add_adapter(again, "x", AdapterConfig(r=2))
    assert A.backbone_checksum(again) == c
    # same values stored in fp16 or fp32 -> same checksum
    r = init_model("tiny", seed=0).half().float()
    assert A.backbone_checksum(copy.deepcopy(r).half()) == A.backbone_checksum(r)
    with torch.no_grad():
        m.layers[1].fc2.weight[3, 7] += 1e-3
    assert A.backbone_checksum(m) != c


def test_checksum_fast_on_8m():
    m = init_model("esm2_t6_8M_UR50D", seed=0)
    t0 = time.perf_counter()
    A.backbone_checksum(m)
    assert time.perf_counter() - t0 < 3.0  # about 0.1 s unloaded; 1 s budget, slack for shared CPUs


def test_base_state_dict_matches_original():
    m = init_model("tiny", seed=0)
    ref = cloned(m.state_dict())
    A.add_adapter(m, "a", CFG_A)
    A.add_adapter(m, "b", CFG_B)
    base = A.base_state_dict(m)
    assert list(base) == list(ref)
    assert all(torch.equal(base[k], ref[k]) for k in ref)
    init_model("tiny", seed=5).load_state_dict(base)  # loads into a plain backbone


def test_adapter_state_dict_strict():
    m = init_model("tiny", seed=0)
    A.add_adapter(m, "a", CFG_A)
    sd = A.adapter_state_dict(m, "a")
    A.load_adapter_state_dict(m, "a", sd)
    k = next(iter(sd))
    with pytest.raises(AdapterError, match="missing"):
        A.load_adapter_state_dict(m, "a", {kk: v for kk, v in sd.items() if kk != k})
    with pytest.raises(AdapterError, match="unexpected"):
        A.load_adapter_state_dict(m, "a", {**sd, "layers.0.fc1.lora_A.weight": sd[k]})
    with pytest.raises(AdapterError, match="shape"):
        A.load_adapter_state_dict(m, "a", {**sd, k: torch.zeros(3, 3)})
    with pytest.raises(AdapterError, match="no adapter"):
        A.adapter_state_dict(m, "nope")


def test_config_validation():
    assert AdapterConfig.from_dict(CFG_B.to_dict()) == CFG_B
    assert json.loads(json.dumps(CFG_A.to_dict())) == CFG_A.to_dict()
    with pytest.raises(AdapterError, match="unknown field"):
        AdapterConfig.from_dict({"r": 4, "rank": 4})
    with pytest.raises(AdapterError, match="targets"):
        AdapterConfig(targets=["dense"])
    with pytest.raises(AdapterError, match="targets"):
        AdapterConfig(targets=[])
    with pytest.raises(AdapterError, match="'r'"):
        AdapterConfig(r=0)
    with pytest.raises(AdapterError, match="dropout"):
        AdapterConfig(dropout=1.0)
    with pytest.raises(AdapterError, match="layers"):
        AdapterConfig(layers=[-1])


def test_bundle_round_trip(trained, tmp_path):
    model, x = trained["model"], trained["x"]
    scheme = get_scheme("kdny")
    A.save_adapter(tmp_path, model, "a", CFG_A, scheme, backbone_source="tiny:seed0")
    A.save_adapter(tmp_path, model, "b", CFG_B, scheme)
    head = nn.Linear(64, 3)
    A.save_head(
        tmp_path,
        "cls",
        head,
        {"in": 64, "out": 3},
        "classification",
        "a",
        extra={"threshold": np.float32(0.5), "mean": torch.tensor([1.0, 2.0])},
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "adapter-a.safetensors",
        "adapter-b.safetensors",
        "head-cls.safetensors",
        "manifest.json",
    ]
    m = A.read_manifest(tmp_path)
    assert m["format"] == "resm-adapters" and m["version"] == 1
    assert m["backbone"]["sha256"] == A.backbone_checksum(model)
    assert m["backbone"]["source"] == "tiny:seed0" and m["backbone"]["config"]["embed_dim"] == 64
    assert m["scheme"] == {"name": "kdny", "sha256": scheme.table_hash}
    assert m["adapters"]["b"]["config"] == CFG_B.to_dict()
    assert m["heads"]["cls"]["extra"] == {"threshold": 0.5, "mean": [1.0, 2.0]}

    expected = {}
    for name in ("a", "b"):
        A.set_active_adapter(model, name)
        expected[name] = out(model, x)
    fresh = init_model("tiny", seed=0)
    assert A.load_adapter(tmp_path, fresh, "a", scheme) == CFG_A
    assert A.active_adapter(fresh) == "a"
    assert torch.allclose(out(fresh, x), expected["a"], atol=1e-6)
    A.load_adapter(tmp_path, fresh, "b", scheme)
    assert torch.allclose(out(fresh, x), expected["b"], atol=1e-6)
    A.set_active_adapter(fresh, "a")
    assert torch.allclose(out(fresh, x), expected["a"], atol=1e-6)
    A.set_active_adapter(fresh, None)
    assert torch.equal(out(fresh, x), trained["base_out"])

    state, entry = A.load_head_state(tmp_path, "cls", fresh, scheme)
    assert entry["task"] == "classification" and entry["adapter"] == "a"
    assert entry["config"] == {"in": 64, "out": 3}
    assert state.keys() == head.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in head.state_dict().items())


def test_bundle_refuses_mismatches(trained, tmp_path):
    model, scheme = trained["model"], get_scheme("kdny")
    A.save_adapter(tmp_path, model, "a", CFG_A, scheme)
    A.save_head(tmp_path, "reg", nn.Linear(64, 1), {}, "regression", None)
    other = init_model("tiny", seed=1)
    with pytest.raises(AdapterError, match="backbone"):
        A.load_adapter(tmp_path, other, "a", scheme)
    with pytest.raises(AdapterError, match="backbone"):
        A.load_head_state(tmp_path, "reg", model=other)
    A.add_adapter(other, "a", CFG_A)
    with pytest.raises(AdapterError, match="backbone"):  # one bundle serves one backbone
        A.save_adapter(tmp_path, other, "a", CFG_A, scheme)
    with pytest.raises(AdapterError, match="scheme"):
        A.load_adapter(tmp_path, init_model("tiny", seed=0), "a", get_scheme("kerd"))
    with pytest.raises(AdapterError, match="scheme"):
        A.save_adapter(tmp_path, model, "a", CFG_A, get_scheme("kerd"))
    with pytest.raises(AdapterError, match="no adapter 'zz'"):
        A.load_adapter(tmp_path, init_model("tiny", seed=0), "zz", scheme)
    with pytest.raises(AdapterError, match="does not match"):
        A.save_adapter(tmp_path, model, "a", CFG_B, scheme)

    f = tmp_path / "adapter-a.safetensors"
    data = bytearray(f.read_bytes())
    data[-5] ^= 0xFF
    f.write_bytes(bytes(data))
    fresh = init_model("tiny", seed=0)
    with pytest.raises(AdapterError, match="sha256"):
        A.load_adapter(tmp_path, fresh, "a", scheme)
    assert A.adapter_names(fresh) == []  # nothing injected on failure


def test_manifest_errors(tmp_path):
    with pytest.raises(AdapterError, match="missing"):
        A.read_manifest(tmp_path)
    with pytest.raises(AdapterError, match="model and scheme"):
        A.save_head(tmp_path, "h", nn.Linear(2, 2), {}, "t", None)
    (tmp_path / A.MANIFEST).write_text("{not json")
    with pytest.raises(AdapterError, match="invalid JSON"):
        A.read_manifest(tmp_path)
    (tmp_path / A.MANIFEST).write_text(json.dumps({"format": "other"}))
    with pytest.raises(AdapterError, match="format"):
        A.read_manifest(tmp_path)


def test_head_config_must_be_json(tmp_path):
    m = init_model("tiny", seed=0)
    with pytest.raises(AdapterError, match="JSON"):
        A.save_head(tmp_path, "h", nn.Linear(2, 2), {"f": object()}, "t", None, model=m, scheme=get_scheme("kdny"))
    assert not list(tmp_path.iterdir())


def test_adapter_file_is_small(tmp_path):
    m = init_model("tiny", seed=0)
    A.add_adapter(m, "x", AdapterConfig(r=4, alpha=8))
    path = A.save_adapter(tmp_path, m, "x", AdapterConfig(r=4, alpha=8), get_scheme("kdny"))
    backbone_bytes = sum(v.numel() * 4 for v in A.base_state_dict(m).values())
    assert path.stat().st_size < backbone_bytes / 8
