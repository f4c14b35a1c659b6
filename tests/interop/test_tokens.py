"""Tokens both ways: RNA -> protein letters after a plain ``import resm``, the exported Hugging
Face tokenizer on raw RNA, and predicted protein letters (fill-mask) back to nucleotides."""

import subprocess
import sys

import pytest
import torch

from resm.alphabet import pad_batch
from resm.backbone.load import init_model, resm_meta, save_hf
from resm.mapping import get_scheme
from tests.conftest import ENV, REPO


def test_readme_mapping_line_works_after_a_plain_import():
    code = "import resm; print(resm.mapping.get_scheme('kdny').to_protein('ACGUN'))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=REPO)
    assert p.returncode == 0 and p.stdout.strip() == "KNYDX", p.stderr
    p = subprocess.run(
        [sys.executable, "-c", "import resm; resm.nothing_here"], capture_output=True, text=True, env=ENV, cwd=REPO
    )
    assert "AttributeError: module 'resm' has no attribute 'nothing_here'" in p.stderr


@pytest.mark.parametrize("name", ["kdny", "kerd", "nt"])
def test_protein_letters_map_back_to_nucleotides(name):
    s = get_scheme(name)
    rna = "GGACUUCGGUCCANA"
    assert s.to_rna(s.to_protein(rna)) == rna
    assert s.to_rna(" ".join(s.to_protein(rna))) == rna  # fill-mask's spaced 'sequence'


def test_a_letter_the_scheme_never_emits_is_named():
    with pytest.raises(ValueError, match=r"letter 'L' at position 3 is not one scheme 'kdny' emits \(DKNXY\)"):
        get_scheme("kdny").to_rna("KNLD")
    with pytest.raises(ValueError, match="no per-letter inverse"):
        get_scheme("codon3").to_rna("KNYD")


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf") / "model"
    model = init_model("tiny", seed=4)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    save_hf(model, folder, resm_meta(get_scheme("kdny"), "tiny"))
    return folder, model


def test_exported_tokenizer_maps_raw_rna_to_the_schemes_letters(hf_folder):
    from transformers import AutoTokenizer

    folder, _ = hf_folder
    tok = AutoTokenizer.from_pretrained(folder)
    s = get_scheme("kdny")
    want = [0, *s.encode("ACGUUACG").tolist(), 2]
    for text in ("ACGUUACG", "acgttacg", "KNYDDKNY"):  # raw RNA, DNA letters, already mapped
        assert tok(text)["input_ids"] == want, text
    assert tok("AC<mask>U")["input_ids"] == [0, *s.encode("AC").tolist(), 32, s.encode("U")[0], 2]
    assert tok.mask_token_id == 32 and tok.pad_token_id == 1


def test_a_protein_checkpoint_keeps_esm_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    save_hf(init_model("tiny"), tmp_path / "p", resm_meta(get_scheme("protein"), "tiny"))
    tok = AutoTokenizer.from_pretrained(tmp_path / "p")
    assert type(tok).__name__ == "EsmTokenizer" and tok("ACGU")["input_ids"] == [0, 5, 23, 6, 26, 2]


def test_fill_mask_output_maps_back_to_rna(hf_folder):
    from transformers import pipeline

    folder, model = hf_folder
    s = get_scheme("kdny")
    fill = pipeline("fill-mask", model=str(folder), device="cpu")
    results = fill("GGAC<mask>UCGG", targets=list(s.letters), top_k=4)
    assert sorted(s.to_rna(r["token_str"]) for r in results) == list("ACGU")
    # the best letter is the one resm's own model ranks first among the scheme's four
    toks = pad_batch([s.encode("GGACAUCGG")])
    toks[0, 5] = 32
    with torch.no_grad():
        logits = model(toks)["logits"][0, 5, list(s.letter_ids)]
    assert s.to_rna(results[0]["token_str"]) == "ACGU"[int(logits.argmax())]
    assert s.to_rna(results[0]["sequence"]) == "GGAC" + "ACGU"[int(logits.argmax())] + "UCGG"
