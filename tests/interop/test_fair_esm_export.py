"""`resm export` -> fair-esm's own loader: a tiny run is trained for two steps, exported, and
read back with ``esm.pretrained.load_model_and_alphabet_local``; logits and contacts must match
resm's own to 1e-4."""

import argparse
import pickle

import esm
import pytest
import torch

from resm.alphabet import pad_batch
from resm.backbone.load import load_backbone
from resm.mapping import get_scheme
from tests.conftest import resm_cli, resm_main
from tests.tasks.test_mlm import write_cfg

TOL = 1e-4


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fair")
    cfg = write_cfg(tmp, max_steps=2, val_every=0, ckpt_every=2)
    resm_cli("pretrain", "--config", cfg)
    return tmp / "run"


def test_exported_file_loads_in_fair_esm_with_its_contact_regression(run_dir, tmp_path):
    out = tmp_path / "esm2_rna_model.pt"
    p = resm_cli("export", run_dir, "--out", out)
    reg = tmp_path / "esm2_rna_model-contact-regression.pt"
    assert reg.is_file() and "esm2_rna_model-contact-regression.pt" in p.stdout
    # fair-esm's loader calls torch.load without weights_only; torch>=2.6 then refuses the
    # argparse.Namespace config: the README's one-line fix
    with pytest.raises(pickle.UnpicklingError, match=r"argparse\.Namespace"):
        esm.pretrained.load_model_and_alphabet_local(str(out))
    before = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([argparse.Namespace])
    try:
        ref, alphabet = esm.pretrained.load_model_and_alphabet_local(str(out))
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)
    assert type(ref).__name__ == "ESM2" and alphabet.mask_idx == 32
    ours = load_backbone(out).model
    s = get_scheme()
    toks = pad_batch([s.encode("ACGUAGCUAGCUAGCUAGG"), s.encode("GGGAAACCC")])
    ref.eval()
    with torch.no_grad():
        a, b = ref(toks, return_contacts=True), ours(toks, return_contacts=True)
    real = toks != alphabet.padding_idx
    assert (a["logits"] - b["logits"])[real].abs().max() < TOL
    assert (a["contacts"][1, :9, :9] - b["contacts"][1, :9, :9]).abs().max() < TOL
    assert (a["contacts"][0] - b["contacts"][0]).abs().max() < TOL


def test_a_name_fair_esm_would_misread_is_refused_unless_asked(run_dir, tmp_path):
    p = resm_main("export", run_dir, "--out", tmp_path / "rna_model.pt", check=False)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1  # a usage error: --any-name decides
    assert "starts with 'esm2'" in p.stderr and "--any-name" in p.stderr and "esm2_rna_model.pt" in p.stderr
    assert list(tmp_path.iterdir()) == []
    resm_main("export", run_dir, "--out", tmp_path / "rna_model.pt", "--any-name")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["rna_model.pt"]  # fair-esm would not read it: no companion
