"""Parity of resm's backbone with fair-esm's ESM2 on the same weights."""

import esm
import pytest
import torch

from resm.alphabet import MASK, pad_batch
from resm.backbone.config import ESM2Config
from resm.backbone.esm2 import ESM2
from resm.mapping import get_scheme

TOL = 1e-4  # the bound; observed differences are ~1e-6 in fp32

SEQS = [
    "GCGGAUUUAGCUCAGUUGGGAGAGCGCCAGACUGAAGAUCUGGAGGUCCUGUGUUCGAUCCACAGAAUUCGCACCA",
    "GGGAAACCC",
    "ACGUNACGUAGCAUCGAUCGAUCGAUUGCAUGCAUCG",
]


def _pair(layers=3, dim=64, heads=4, seed=0):
    torch.manual_seed(seed)
    ref = esm.model.esm2.ESM2(num_layers=layers, embed_dim=dim, attention_heads=heads, alphabet="ESM-1b")
    with torch.no_grad():  # non-trivial weights everywhere (norms and biases too)
        for p in ref.parameters():
            p.normal_(0, 0.3)
    ours = ESM2(ESM2Config(layers, dim, heads))
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref.eval(), ours.eval()


def _tokens(mask_some=True):
    s = get_scheme()
    toks = pad_batch([s.encode(x) for x in SEQS])
    if mask_some:
        toks[0, 5] = MASK  # exercises token dropout scaling
        toks[2, 9] = MASK
    return toks


@pytest.mark.parametrize("maps", [False, True], ids=["sdpa", "explicit-maps"])
def test_parity_with_fair_esm_padded_batch(maps):
    ref, ours = _pair()
    toks = _tokens()
    real = toks != 1
    with torch.no_grad():
        r = ref(toks, repr_layers=[0, 1, 2, 3])
        o = ours(toks, repr_layers=[0, 1, 2, 3], need_head_weights=maps)
    assert set(o["representations"]) == {0, 1, 2, 3}
    for k in range(4):
        diff = (r["representations"][k] - o["representations"][k])[real].abs().max()
        assert diff < TOL, (k, diff)
    assert (r["logits"] - o["logits"])[real].abs().max() < TOL


def test_parity_unpadded_single_sequence():
    ref, ours = _pair(layers=2, dim=40, heads=5, seed=3)
    toks = pad_batch([get_scheme().encode(SEQS[0])])
    with torch.no_grad():
        assert (ref(toks)["logits"] - ours(toks)["logits"]).abs().max() < TOL


def test_attention_maps_and_contacts_match_fair_esm():
    ref, ours = _pair()
    toks = _tokens(mask_some=False)
    with torch.no_grad():
        r = ref(toks, return_contacts=True)
        o = ours(toks, return_contacts=True, need_head_weights=True)
    assert (r["attentions"] - o["attentions"]).abs().max() < TOL
    assert (r["contacts"] - o["contacts"]).abs().max() < TOL


def test_attention_callback_sees_one_layer_at_a_time():
    ref, ours = _pair()
    toks = _tokens(mask_some=False)
    seen = []
    with torch.no_grad():
        r = ref(toks, need_head_weights=True)
        ours(toks, attention_callback=lambda i, a: seen.append((i, a.clone())))
    assert [i for i, _ in seen] == [0, 1, 2]
    for i, a in seen:
        assert a.shape == (3, 4, toks.shape[1], toks.shape[1])
        assert (a - r["attentions"][:, i]).abs().max() < TOL


def test_bf16_autocast_runs_and_rotary_stays_fp32():
    _, ours = _pair()
    toks = _tokens()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = ours(toks)
    full = ours(toks)["logits"]
    real = toks != 1
    assert torch.isfinite(out["logits"]).all()
    # bf16 has ~3 significant digits; the result must still track the fp32 logits closely
    corr = torch.corrcoef(torch.stack([out["logits"][real].float().flatten(), full[real].detach().flatten()]))[0, 1]
    assert corr > 0.99
    cos, sin = ours.layers[0].self_attn.rot_emb.cos_sin(10_001, torch.device("cpu"))
    assert cos.dtype == torch.float32
    # positions are exact integers: angle of the first frequency at position 10,000 is 10,000 rad
    assert torch.allclose(cos[10_000, 0].double(), torch.tensor(10_000.0, dtype=torch.float64).cos(), atol=1e-3)


def test_rotary_is_relative_far_out():
    """Scores depend only on the offset, also past 4,000 positions (no drift from fp error)."""
    from resm.backbone.esm2 import RotaryEmbedding

    q = torch.randn(1, 1, 1, 16).expand(1, 1, 9000, 16)
    k = torch.randn(1, 1, 1, 16).expand(1, 1, 9000, 16)
    r = RotaryEmbedding(16)
    qr, kr = r(q.contiguous(), k.contiguous())
    near = (qr[0, 0, 10] * kr[0, 0, 3]).sum()
    far = (qr[0, 0, 8007] * kr[0, 0, 8000]).sum()
    assert torch.allclose(near, far, atol=1e-3)


def test_gradient_checkpointing_gives_same_gradients():
    _, ours = _pair()
    toks = _tokens()
    ours.train()
    loss = ours(toks)["logits"].square().mean()
    loss.backward()
    g0 = ours.layers[0].fc1.weight.grad.clone()
    ours.zero_grad()
    ours.gradient_checkpointing = True
    ours(toks)["logits"].square().mean().backward()
    assert torch.allclose(g0, ours.layers[0].fc1.weight.grad, atol=1e-6)
