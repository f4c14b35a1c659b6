"""Every loading path, on checkpoints made here in the real formats."""

import argparse
import os
import re

import esm
import pytest
import torch

from resm.alphabet import pad_batch
from resm.backbone.load import (
    CheckpointError,
    init_model,
    load_backbone,
    resm_meta,
    safe_load,
    save_fair_esm,
    save_hf,
)
from resm.mapping import MappingError, get_scheme

TOL = 1e-4


@pytest.fixture
def model():
    m = init_model("tiny", seed=1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m


@pytest.fixture
def toks():
    s = get_scheme()
    return pad_batch([s.encode("ACGUAGCUAGCUAGCUAGG"), s.encode("GGGAAACCC")])


def _logits(m, toks):
    with torch.no_grad():
        return m(toks)["logits"]


def test_fair_esm_file_under_any_name_loads_in_both(tmp_path, model, toks):
    path = tmp_path / "my weights.bin"  # any file name
    save_fair_esm(model, path, resm_meta(get_scheme(), "tiny"))
    loaded = load_backbone(path, get_scheme("kdny"))
    assert (_logits(loaded.model, toks) - _logits(model, toks)).abs().max() == 0
    assert loaded.meta["scheme"] == "kdny" and loaded.meta["contact_regression"]
    # fair-esm's own loader reads the same file (argparse.Namespace allow-listed for torch>=2.6)
    with torch.serialization.safe_globals([argparse.Namespace]):
        data = torch.load(path)
    ref, _ = esm.pretrained.load_model_and_alphabet_core("esm2_t2_tiny", data, None)
    real = toks != 1
    assert (_logits(ref.eval(), toks) - _logits(model, toks))[real].abs().max() < TOL


def test_separate_contact_regression_file(tmp_path, model, toks):
    path = tmp_path / "esm2_tiny.pt"
    save_fair_esm(model, path, regression=False)
    assert not load_backbone(path).meta["contact_regression"]
    reg = {"model": {k: v for k, v in model.state_dict().items() if k.startswith("contact_head.")}}
    torch.save(reg, tmp_path / "esm2_tiny-contact-regression.pt")  # fair-esm's naming
    loaded = load_backbone(path)
    assert loaded.meta["contact_regression"]
    with torch.no_grad():
        a = loaded.model.predict_contacts(toks)
        b = model.predict_contacts(toks)
    assert torch.equal(a, b)
    other = tmp_path / "elsewhere.pt"
    os.rename(tmp_path / "esm2_tiny-contact-regression.pt", other)
    assert load_backbone(path, regression=other).meta["contact_regression"]


@pytest.mark.parametrize("weights", ["safetensors", "bin"])
def test_hugging_face_folder(tmp_path, model, toks, weights):
    folder = tmp_path / "hf"
    save_hf(model, folder, resm_meta(get_scheme("kerd")))
    if weights == "bin":  # the older pytorch_model.bin layout
        from safetensors.torch import load_file

        torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
        (folder / "model.safetensors").unlink()
    loaded = load_backbone(folder, get_scheme("kerd"))
    assert (_logits(loaded.model, toks) - _logits(model, toks)).abs().max() == 0
    with pytest.raises(
        MappingError, match=rf"^{re.escape(str(folder))} was trained with mapping scheme 'kerd', not 'kdny'$"
    ):
        load_backbone(folder, get_scheme("kdny"))


def test_folder_written_by_transformers_loads_with_parity(tmp_path, toks):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.EsmConfig(
        vocab_size=33,
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=192,
        position_embedding_type="rotary",
        token_dropout=True,
        mask_token_id=32,
        pad_token_id=1,
        emb_layer_norm_before=False,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    hf = transformers.EsmForMaskedLM(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    hf.save_pretrained(tmp_path / "hf")
    loaded = load_backbone(tmp_path / "hf")
    with torch.no_grad():
        ref = hf(input_ids=toks, attention_mask=(toks != 1).long()).logits
    real = toks != 1
    assert (ref - _logits(loaded.model, toks))[real].abs().max() < TOL
    # and the reverse: a folder resm writes is read by transformers
    save_hf(loaded.model, tmp_path / "back")
    again = transformers.EsmForMaskedLM.from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        out = again(input_ids=toks, attention_mask=(toks != 1).long()).logits
    assert (out - ref)[real].abs().max() < TOL


def test_unsafe_pickle_is_refused_unless_trusted(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": argparse.ArgumentParser}, path)  # a non-allow-listed global
    with pytest.raises(CheckpointError, match="refusing to unpickle.*trust-checkpoint"):
        safe_load(path)
    assert "payload" in safe_load(path, trust=True)


@pytest.mark.parametrize(
    "content,match",
    [(b"not a checkpoint", "not a readable"), (b"", "not a readable")],
)
def test_corrupt_files(tmp_path, content, match):
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_backbone(path)


def test_wrong_content_and_missing_paths(tmp_path, model):
    p = tmp_path / "state.pt"
    torch.save({"weights": model.state_dict()}, p)
    with pytest.raises(CheckpointError, match="not a fair-esm checkpoint"):
        load_backbone(p)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_backbone(tmp_path / "missing.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        load_backbone(tmp_path / "empty")


def test_truncated_state_is_reported(tmp_path, model):
    path = tmp_path / "t.pt"
    save_fair_esm(model, path)
    data = safe_load(path)
    del data["model"]["encoder.sentence_encoder.layers.1.fc1.weight"]
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="missing weights.*fc1"):
        load_backbone(path)


def test_init_checkpoint_is_deterministic_and_atomic(tmp_path):
    a, b = init_model("tiny", seed=5), init_model("tiny", seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(init_model("tiny", seed=6).layers[0].fc1.weight, a.layers[0].fc1.weight)
    save_fair_esm(a, tmp_path / "c.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary left behind
