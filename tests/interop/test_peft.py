"""PEFT interoperability: a bundle's adapter loads with ``peft.PeftModel.from_pretrained`` on the
Hugging Face export of its backbone (same logits to 1e-4), and an adapter trained with PEFT
takes the place of a bundle's adapter in resm (same logits; ``resm interact --adapter``)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from resm.alphabet import pad_batch
from resm.backbone.load import load_backbone, resm_meta, save_hf
from resm.mapping import get_scheme
from tests.conftest import resm_cli, resm_main
from tests.tasks.test_rri_mrl import rri_config, rri_pairs, write_pairs

TOL = 1e-4
peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from resm.tasks import run

    d = tmp_path_factory.mktemp("peft")
    ckpt = d / "tiny.pt"
    resm_main("init-checkpoint", "--arch", "tiny", "--scheme", "kdny", "--seed", "1", "--out", ckpt)
    cfg = rri_config(d, ckpt, steps=20)
    cfg["optim"]["lr"] = 1e-2  # 20 steps that move the adapter well away from its zero start
    bundle = Path(run(cfg)["model_file"])
    hf = d / "hf"
    save_hf(load_backbone(ckpt).model, hf, resm_meta(get_scheme("kdny"), "tiny"))  # as `resm export --hf` writes it
    return {"ckpt": ckpt, "bundle": bundle, "hf": hf, "dir": d}


def _toks():
    s = get_scheme("kdny")
    return pad_batch([s.encode("GGGAAACCCUUAGCUAGGA"), s.encode("ACGUACGU")])


def _peft_logits(pm, toks):
    with torch.no_grad():
        return pm(input_ids=toks, attention_mask=(toks != 1).long()).logits


def test_bundle_adapter_loads_with_peft_on_the_hf_export(setup):
    from peft import PeftModel
    from transformers import EsmForMaskedLM

    from resm.tasks.rri import load_rri_model

    folder = setup["bundle"] / "peft-shared"
    assert json.loads((folder / "adapter_config.json").read_text())["peft_type"] == "LORA"
    pm = PeftModel.from_pretrained(EsmForMaskedLM.from_pretrained(setup["hf"]), folder).eval()
    tm = load_rri_model(setup["bundle"])[0]
    toks = _toks()
    with torch.no_grad():
        ours = tm.encoder.backbone(toks)["logits"]
    theirs = _peft_logits(pm, toks)
    real = toks != 1
    assert (ours - theirs)[real].abs().max() < TOL
    with pm.disable_adapter():
        base = _peft_logits(pm, toks)
    assert (theirs - base)[real].abs().max() > 100 * TOL  # the adapter is really there


def test_a_peft_trained_adapter_takes_the_bundles_place(setup):
    from peft import LoraConfig, get_peft_model
    from transformers import EsmForMaskedLM

    from resm.backbone.peft_format import load_peft_adapter

    torch.manual_seed(0)
    pm = get_peft_model(
        EsmForMaskedLM.from_pretrained(setup["hf"]),
        LoraConfig(r=2, lora_alpha=4, target_modules=["query", "value", "intermediate.dense"]),
    )
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    out = setup["dir"] / "peft_trained"
    pm.save_pretrained(out)
    bb = load_backbone(setup["ckpt"]).model
    cfg = load_peft_adapter(out, bb, "x")
    assert cfg.targets == ["q_proj", "v_proj", "fc1"] and cfg.r == 2 and cfg.layers == [0, 1]
    toks = _toks()
    with torch.no_grad():
        ours = bb(toks)["logits"]
    real = toks != 1
    assert (ours - _peft_logits(pm.eval(), toks))[real].abs().max() < TOL

    # on the command line: the bundle's own PEFT copy scores as the bundle; another adapter does not
    test = write_pairs(setup["dir"] / "test.tsv", rri_pairs(20, 9))
    from resm.predict import InteractOptions, interact

    runs = {
        label: interact(test, setup["bundle"], InteractOptions(adapter=a))["scores"]
        for label, a in (("own", None), ("copy", setup["bundle"] / "peft-shared"))
    }
    o = setup["dir"] / "scores_other.tsv"
    resm_cli("interact", test, "--model", setup["bundle"], "-o", o, "--adapter", out)
    runs["other"] = np.array([float(x.split("\t")[3]) for x in o.read_text().splitlines()[1:]])
    np.testing.assert_allclose(runs["copy"], runs["own"], atol=1e-5)
    assert np.abs(runs["other"] - runs["own"]).max() > 1e-3


def test_a_peft_folder_resm_cannot_honour_is_one_line(setup, tmp_path):
    import shutil

    bad = tmp_path / "dora"
    shutil.copytree(setup["bundle"] / "peft-shared", bad)
    c = json.loads((bad / "adapter_config.json").read_text())
    (bad / "adapter_config.json").write_text(json.dumps(dict(c, use_dora=True)))
    test = write_pairs(tmp_path / "t.tsv", rri_pairs(3, 1))
    p = resm_main("interact", test, "--model", setup["bundle"], "--adapter", bad, "-o", tmp_path / "o.tsv", check=False)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1
    assert "adapter_config.json: field 'use_dora' is True" in p.stderr and not (tmp_path / "o.tsv").exists()
    p = resm_main("interact", test, "--model", setup["bundle"], "--adapter", tmp_path / "none", check=False)
    assert p.returncode == 1 and "no such PEFT adapter folder" in p.stderr
