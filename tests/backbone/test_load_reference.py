"""References for checkpoint formats, written from the definitions: ESM-2's token ids and
alphabet order, the scheme letters' ids, the fair-esm <-> resm <-> Hugging Face key maps (every
weight once, shapes kept), contact heads through each format, and a trained checkpoint exported
by ``resm export`` read back by fair-esm's and transformers' own loaders with the same outputs."""

from __future__ import annotations

import argparse

import esm
import numpy as np
import pytest
import torch

from resm.alphabet import ALPHABET, BOS, EOS, MASK, PAD, VOCAB_SIZE, pad_batch
from resm.backbone.convert import fair_to_hf, hf_config, hf_to_fair, hf_tokenizer_files
from resm.backbone.load import init_model, load_backbone, resm_meta, save_fair_esm, save_hf
from resm.mapping import get_scheme

# ESM-2's alphabet as fair-esm's ``Alphabet.from_architecture("ESM-1b")`` builds it: the
# prepended specials, the 25 protein letters of esm.constants.proteinseq_toks, '.', '-', padding
# to a multiple of 8, then <mask>.
ESM2_TOKENS = (
    ["<cls>", "<pad>", "<eos>", "<unk>"] + list("LAGVSERTIDPKQNFYMHWCXBUZO") + [".", "-", "<null_1>", "<mask>"]
)


def test_alphabet_order_and_special_ids():
    assert ALPHABET.all_toks == ESM2_TOKENS and VOCAB_SIZE == 33
    assert (BOS, PAD, EOS, ALPHABET.unk_idx, MASK) == (0, 1, 2, 3, 32)
    fair = esm.data.Alphabet.from_architecture("ESM-1b")
    assert fair.all_toks == ESM2_TOKENS and fair.prepend_bos and fair.append_eos
    # fair-esm's batch converter and resm's padding give the same tokens for the same letters
    _, _, toks = fair.get_batch_converter()([("a", "KNYDX"), ("b", "KN")])
    ours = pad_batch([np.array([ESM2_TOKENS.index(c) for c in s]) for s in ("KNYDX", "KN")])
    assert torch.equal(toks, ours)


@pytest.mark.parametrize(
    "scheme,letters", [("kdny", "KNYD"), ("kerd", "KDRE"), ("nt", "ACGU")]
)  # the letters of A, C, G, U
def test_scheme_letter_ids(scheme, letters):
    s = get_scheme(scheme)
    ids = s.encode("ACGUN")
    assert ids.tolist() == [ESM2_TOKENS.index(c) for c in letters + "X"]
    assert sorted(s.letter_ids) == sorted(ESM2_TOKENS.index(c) for c in letters)
    assert s.unknown_id == ESM2_TOKENS.index("X")


def test_hugging_face_vocabulary_and_config_ids(tmp_path):
    files = hf_tokenizer_files()
    assert files["vocab.txt"].splitlines() == ESM2_TOKENS
    cfg = hf_config(init_model("tiny").cfg)
    assert (cfg["pad_token_id"], cfg["mask_token_id"], cfg["vocab_size"]) == (1, 32, 33)
    transformers = pytest.importorskip("transformers")
    save_hf(init_model("tiny"), tmp_path / "hf", resm_meta(get_scheme("kdny")))
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    ids = [ESM2_TOKENS.index(c) for c in "KNYD"]
    assert tok("ACGU")["input_ids"] == [BOS, *ids, EOS]  # raw RNA, mapped by the tokenizer
    assert tok("KNYD")["input_ids"] == [BOS, *ids, EOS]  # already mapped
    assert tok("AC<mask>U")["input_ids"] == [BOS, ids[0], ids[1], MASK, ids[3], EOS]
    assert (tok.pad_token_id, tok.mask_token_id, tok.cls_token_id, tok.eos_token_id) == (PAD, MASK, BOS, EOS)


def _numbered(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state with every tensor filled with its own index, so a swapped pair shows."""
    out = {}
    for i, (k, v) in enumerate(model.state_dict().items()):
        out[k] = torch.full_like(v, float(i)) if not k.endswith("inv_freq") else v.clone()
    out["lm_head.weight"] = out["embed_tokens.weight"]  # one tensor under two names (tied)
    return out


def test_key_maps_cover_every_weight_once():
    transformers = pytest.importorskip("transformers")
    model = init_model("tiny")
    L = model.cfg.num_layers
    state = _numbered(model)
    # resm's module names are fair-esm's own
    fair = esm.model.esm2.ESM2(
        num_layers=L,
        embed_dim=model.cfg.embed_dim,
        attention_heads=model.cfg.attention_heads,
        alphabet=esm.data.Alphabet.from_architecture("ESM-1b"),
    )
    assert set(fair.state_dict()) == set(state)
    assert all(fair.state_dict()[k].shape == v.shape for k, v in state.items())
    # resm -> Hugging Face: exactly EsmForMaskedLM's weights, shapes equal
    hf_model = transformers.EsmForMaskedLM(transformers.EsmConfig(**hf_config(model.cfg)))
    hf_state = hf_model.state_dict()
    hf = fair_to_hf(state, L)
    rotary = {k for k in set(hf) | set(hf_state) if k.endswith("inv_freq")}
    assert set(hf) - rotary == set(hf_state) - rotary
    assert all(hf[k].shape == hf_state[k].shape for k in set(hf) - rotary)
    # one weight each: distinct values (the tied LM-head decoder is the embedding)
    values = {k: float(v.flatten()[0]) for k, v in hf.items() if k not in rotary}
    assert values.pop("lm_head.decoder.weight") == values["esm.embeddings.word_embeddings.weight"]
    assert len(set(values.values())) == len(values)
    # and back: every weight where it was
    back = hf_to_fair({k: v for k, v in hf.items() if k not in rotary}, L)
    weights = {k for k in state if not k.endswith("inv_freq")}
    assert set(back) == weights
    assert all(torch.equal(back[k], state[k]) for k in weights)


def test_contacts_agree_through_hugging_face(tmp_path):
    transformers = pytest.importorskip("transformers")
    model = init_model("tiny", seed=3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    save_hf(model, tmp_path / "hf")
    s = get_scheme()
    toks = pad_batch([s.encode("ACGUAGCUAGCUAGG"), s.encode("GGGAAACCCU")])
    hf = transformers.EsmForMaskedLM.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    with torch.no_grad():
        ours = model.eval().predict_contacts(toks)
        theirs = hf.predict_contacts(toks, attention_mask=(toks != PAD).long())
        again = load_backbone(tmp_path / "hf").model.predict_contacts(toks)
    assert torch.equal(ours, again)
    for b, n in enumerate((15, 10)):  # residues of each sequence (padding rows differ in meaning)
        assert (ours[b, :n, :n] - theirs[b, :n, :n]).abs().max() < 1e-5


def _trained_run(tmp_path):
    from resm.tasks.mlm import MLMTask
    from resm.train import run_task

    rng = np.random.default_rng(0)
    fa = tmp_path / "c.fa"
    fa.write_text("".join(f">s{i}\n{''.join(rng.choice(list('ACGU'), 30))}\n" for i in range(12)))
    cfg = {
        "model": {"arch": "tiny", "init_seed": 5},
        "data": {"train": [str(fa)], "max_length": 32, "min_length": 5, "tokens_per_batch": 200, "val_fraction": 0.0},
        "optim": {"lr": 1e-2, "warmup_steps": 1},
        "train": {"out_dir": str(tmp_path / "run"), "max_steps": 3, "val_every": 0, "progress": False},
    }
    run_task(MLMTask, cfg, set(MLMTask.sections))
    return tmp_path / "run"


def test_exported_model_reads_back_with_the_same_outputs_everywhere(tmp_path):
    from resm.export import export_checkpoint
    from resm.train_state import load_engine_state

    run = _trained_run(tmp_path)
    out, hf_dir = tmp_path / "esm2_export.pt", tmp_path / "export_hf"
    exported, meta = export_checkpoint(run, out, hf=hf_dir)
    assert meta["step"] == 3 and meta["exported_from"] == str(run / "checkpoints" / "step_00000003")
    s = get_scheme()
    toks = pad_batch([s.encode("ACGUAGCUAGCUAGGAC"), s.encode("GGGAAACCC")])
    real = toks != PAD
    engine = load_engine_state(run / "checkpoints" / "step_00000003" / "engine.pt", "cpu")["model"]
    trained = init_model("tiny")
    trained.load_state_dict(engine)
    with torch.no_grad():
        want = trained(toks, return_contacts=True)  # logits through the attention-map path
        fast = trained(toks)["logits"]  # and through the fused one (other rounding)
        for m in (exported, load_backbone(run / "model.pt").model, load_backbone(out).model):
            got = m.eval()(toks, return_contacts=True)
            assert torch.equal(got["logits"], want["logits"]) and torch.equal(got["contacts"], want["contacts"])
            assert torch.equal(m(toks)["logits"], fast)
        hf_back = load_backbone(hf_dir).model
        assert torch.equal(hf_back(toks)["logits"], fast)
        assert torch.equal(hf_back.predict_contacts(toks), want["contacts"])
        # fair-esm's own loader (the file name starts with esm2; the regression file beside it)
        with torch.serialization.safe_globals([argparse.Namespace]):
            fair, alphabet = esm.pretrained.load_model_and_alphabet_local(str(out))
        ref = fair.eval()(toks, return_contacts=True)
        assert (ref["logits"] - want["logits"])[real].abs().max() < 1e-4
        assert (ref["contacts"] - want["contacts"]).abs().max() < 1e-5
        assert alphabet.all_toks == ESM2_TOKENS
    transformers = pytest.importorskip("transformers")
    hf = transformers.EsmForMaskedLM.from_pretrained(hf_dir).eval()
    with torch.no_grad():
        logits = hf(input_ids=toks, attention_mask=real.long()).logits
    assert (logits - want["logits"])[real].abs().max() < 1e-4


def test_fair_esm_round_trip_keeps_every_tensor_bit_for_bit(tmp_path):
    model = init_model("tiny", seed=7)
    state = _numbered(model)
    model.load_state_dict(state)
    save_fair_esm(model, tmp_path / "m.pt")
    with torch.serialization.safe_globals([argparse.Namespace]):
        raw = torch.load(tmp_path / "m.pt", weights_only=True)["model"]
    # the released files' key layout: encoder.sentence_encoder.* and encoder.lm_head / contact_head
    for k in state:
        prefix = "encoder." if k.startswith(("lm_head.", "contact_head.")) else "encoder.sentence_encoder."
        assert torch.equal(raw[prefix + k], state[k]), k
    assert len(raw) == len(state)
    back = load_backbone(tmp_path / "m.pt").model.state_dict()
    assert all(torch.equal(back[k], state[k]) for k in state)
