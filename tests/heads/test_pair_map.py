"""Tests of the supervised secondary-structure head (resm.heads.pair_map)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resm.backbone.attention import stacked_attention_maps
from resm.heads.pair_map import (
    NEG_LOGIT,
    StructureHead,
    StructureHeadConfig,
    pair_loss,
    receptive_field,
    strip_special,
    valid_pair_mask,
)


def small_cfg(**kw) -> StructureHeadConfig:
    base = dict(embed_dim=24, proj_dim=8, channels=16, blocks=4, dilations=(1, 2, 4, 8), dropout=0.0)
    base.update(kw)
    return StructureHeadConfig(**base)


def batch(L: int = 70, lengths=(70, 55), E: int = 24, C_attn: int = 0, seed: int = 0):
    """Random inputs for a padded batch: h, mask, nuc, attn, bpp (pair channels symmetric)."""
    g = torch.Generator().manual_seed(seed)
    B = len(lengths)
    h = torch.randn(B, L, E, generator=g)
    mask = torch.zeros(B, L, dtype=torch.bool)
    for b, n in enumerate(lengths):
        mask[b, :n] = True
    nuc = torch.randint(0, 5, (B, L), generator=g)
    attn = torch.randn(B, max(C_attn, 1), L, L, generator=g)
    attn = (attn + attn.transpose(-1, -2)) / 2
    bpp = torch.rand(B, 1, L, L, generator=g)
    bpp = (bpp + bpp.transpose(-1, -2)) / 2 * mask[:, None, :, None] * mask[:, None, None, :]
    return h, mask, nuc, attn, bpp


def make_head(cfg: StructureHeadConfig, seed: int = 0) -> StructureHead:
    torch.manual_seed(seed)
    return StructureHead(cfg).eval()


# --------------------------------------------------------------------------------------------
def test_defaults_are_small_and_config_round_trips():
    cfg = StructureHeadConfig(embed_dim=320)
    head = StructureHead(cfg)
    assert head.num_parameters() < 1_000_000
    assert receptive_field(cfg) == 38 == head.receptive_field
    assert StructureHeadConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"^kernel must be odd and positive, got 4$"):
        StructureHeadConfig(kernel=4)
    with pytest.raises(ValueError, match=r"^use_attention needs attn_channels = layers \* heads > 0$"):
        StructureHeadConfig(use_attention=True, attn_channels=0)
    with pytest.raises(ValueError, match="symmetry"):
        StructureHeadConfig(symmetry="lower")
    with pytest.raises(ValueError, match="bpp_span"):
        StructureHeadConfig(bpp_window=100, bpp_span=200)


def test_output_symmetric_masked_and_batch_invariant():
    cfg = small_cfg(use_bpp=True)
    head = make_head(cfg)
    h, mask, nuc, _, bpp = batch(L=40, lengths=(40, 29))
    with torch.no_grad():
        out = head(h, mask, bpp=bpp, nuc=nuc)
    assert out.shape == (2, 40, 40) and out.dtype == torch.float32
    assert torch.equal(out, out.transpose(1, 2))
    valid = valid_pair_mask(mask, 3)
    assert (out[~valid] == NEG_LOGIT).all()
    assert out[valid].abs().max() < 100 and out[valid].std() > 0
    i = torch.arange(40)
    near = (i[:, None] - i[None, :]).abs() <= 3
    assert (out[:, near] == NEG_LOGIT).all()
    # the padded second sequence gives the same logits as when run alone
    with torch.no_grad():
        alone = head(h[1:, :29], mask[1:, :29], bpp=bpp[1:, :, :29, :29], nuc=nuc[1:, :29])
    torch.testing.assert_close(out[1, :29, :29], alone[0], atol=1e-5, rtol=1e-5)


def test_missing_inputs_raise():
    head = make_head(small_cfg(use_attention=True, attn_channels=3))
    h, mask, nuc, attn, _ = batch(L=12, lengths=(12,), C_attn=3)
    with pytest.raises(ValueError, match="attn_feats"):
        head(h, mask, nuc=nuc)
    with pytest.raises(ValueError, match="nuc"):
        head(h, mask, attn_feats=attn)


@pytest.mark.parametrize(
    "opts",
    [
        dict(use_onehot_pairs=False),
        dict(use_onehot_pairs=True, use_bpp=True, use_attention=True, attn_channels=5),
        dict(default=True),  # the default trunk (8 blocks, 48 channels, R = 38)
        dict(symmetry="upper", use_bpp=True),
    ],
    ids=["plain", "all-channels", "default-trunk", "upper"],
)
def test_tiled_equals_full_fp32(opts):
    cfg = StructureHeadConfig(embed_dim=24, use_bpp=True) if opts.pop("default", False) else small_cfg(**opts)
    head = make_head(cfg)
    h, mask, nuc, attn, bpp = batch(L=70, lengths=(70, 55), C_attn=cfg.attn_channels)
    kw = dict(
        attn_feats=attn if cfg.use_attention else None,
        bpp=bpp if cfg.use_bpp else None,
        nuc=nuc if cfg.use_onehot_pairs else None,
    )
    with torch.no_grad():
        full = head(h, mask, **kw)
    tiled = head.predict_tiled(h, mask, tile=16, dtype=torch.float32, **kw)  # 70 = 4*16 + 6
    assert tiled.shape == full.shape and tiled.dtype == torch.float32
    torch.testing.assert_close(tiled, full, atol=1e-4, rtol=0)
    assert not head.training  # predict_tiled leaves the mode as it found it


@pytest.mark.parametrize("symmetry", ["mean", "upper"])
def test_tiled_equals_full_with_interior_windows(symmetry, monkeypatch):
    """One unpadded sequence long enough for windows wholly inside it (the unmasked fast path);
    with symmetry upper every tile pair is computed once, with mean off-diagonal ones twice."""
    cfg = small_cfg(use_bpp=True, symmetry=symmetry)  # R = 38
    head = make_head(cfg)
    h, mask, nuc, _, bpp = batch(L=200, lengths=(200,))
    with torch.no_grad():
        full = head(h, mask, bpp=bpp, nuc=nuc)
    calls = []
    window = StructureHead._window_logits
    monkeypatch.setattr(StructureHead, "_window_logits", lambda self, *a: calls.append(a[5:9]) or window(self, *a))
    tiled = head.predict_tiled(h, mask, bpp=bpp, nuc=nuc, tile=40, dtype=torch.float32)
    torch.testing.assert_close(tiled, full, atol=1e-4, rtol=0)
    n_tiles = 5
    diagonal, off = n_tiles, n_tiles * (n_tiles - 1) // 2
    assert len(calls) == diagonal + off * (1 if symmetry == "upper" else 2)
    if symmetry == "upper":  # the map is the trunk's upper triangle, mirrored
        with torch.no_grad():
            p = head.project(h, mask)
            raw = head.trunk(p, p, mask, mask, None, bpp, nuc, nuc)
        i, j = torch.triu_indices(200, 200, 4)
        torch.testing.assert_close(full[0, i, j], raw[0, i, j], atol=1e-5, rtol=0)
        torch.testing.assert_close(full[0, j, i], raw[0, i, j], atol=1e-5, rtol=0)


def test_tiled_accepts_callable_channels_and_restores_mode():
    cfg = small_cfg(use_bpp=True, use_attention=True, attn_channels=2, blocks=2)
    head = make_head(cfg)
    L = 37
    h, mask, nuc, attn, bpp = batch(L=L, lengths=(L,), C_attn=2)
    asked = []

    def get_attn(r0, r1, c0, c1):
        asked.append((r0, r1, c0, c1))
        assert 0 <= r0 < r1 <= L and 0 <= c0 < c1 <= L
        return attn[:, :, r0:r1, c0:c1]

    ref = head.predict_tiled(h, mask, attn_feats=attn, bpp=bpp, nuc=nuc, tile=10, dtype=torch.float32)
    head.train()
    out = head.predict_tiled(
        h, mask, attn_feats=get_attn, bpp=bpp, nuc=nuc, tile=10, dtype=torch.float32, out_dtype=torch.float16
    )
    assert head.training
    assert out.dtype == torch.float16 and asked
    torch.testing.assert_close(out.float(), ref, atol=2e-3, rtol=1e-3)


def test_bf16_tiled_runs_and_correlates():
    cfg = small_cfg(blocks=2, use_bpp=True)
    head = make_head(cfg)
    h, mask, nuc, _, bpp = batch(L=33, lengths=(33,))
    ref = head.predict_tiled(h, mask, bpp=bpp, nuc=nuc, tile=16, dtype=torch.float32)
    low = head.predict_tiled(h, mask, bpp=bpp, nuc=nuc, tile=16, dtype=torch.bfloat16)
    valid = valid_pair_mask(mask, 3)
    assert torch.isfinite(low).all() and (low[~valid] == NEG_LOGIT).all()
    a, b = ref[valid], low[valid]
    corr = torch.corrcoef(torch.stack([a, b]))[0, 1]
    assert corr > 0.99, corr


@pytest.mark.parametrize(
    "cfg",
    [small_cfg(blocks=2, dilations=(1, 3)), small_cfg(blocks=1, kernel=5, dilations=(2,))],
    ids=["k3-d1-3", "k5-d2"],
)
def test_receptive_field_matches_perturbation(cfg):
    R = receptive_field(cfg)
    assert sum((cfg.kernel - 1) // 2 * (d + 1) for d in cfg.block_dilations()) == R
    head = make_head(cfg)
    L, i = 40, 20
    h, mask, nuc, _, _ = batch(L=L, lengths=(L,))
    h2 = h.clone()
    h2[0, i] += 3.0 * torch.randn(h.shape[-1], generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        changed = (head(h2, mask, nuc=nuc) - head(h, mask, nuc=nuc)).abs()[0] > 1e-6
    a = torch.arange(L)
    band = ((a - i).abs() <= R)[:, None] | ((a - i).abs() <= R)[None, :]
    assert not (changed & ~band).any(), "a pair outside the receptive field changed"
    far_cols = (a - i).abs() > R + 3
    for d in range(-R, R + 1):  # every row within reach changes somewhere, even at distance R
        assert changed[i + d, far_cols].any(), d


def test_pair_loss_equals_manual_bce():
    g = torch.Generator().manual_seed(1)
    B, L = 2, 11
    logits = torch.randn(B, L, L, generator=g, requires_grad=True)
    target = (torch.rand(B, L, L, generator=g) < 0.2).float()
    target = torch.maximum(target, target.transpose(1, 2))
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[1, 8:] = False
    for pw in (None, 3.0):
        terms = []
        for b in range(B):
            for i in range(L):
                for j in range(i + 4, L):
                    if mask[b, i] and mask[b, j]:
                        x, y = logits[b, i, j].item(), target[b, i, j].item()
                        p = 1 / (1 + np.exp(-x))
                        w = 1.0 if pw is None else pw
                        terms.append(-(w * y * np.log(p) + (1 - y) * np.log(1 - p)))
        got = pair_loss(logits, target, mask, pos_weight=pw)
        assert abs(got.item() - np.mean(terms)) < 1e-5
    got.backward()
    invalid = ~valid_pair_mask(mask, 3, upper=True)
    assert (logits.grad[invalid] == 0).all()
    empty = pair_loss(logits, target, torch.zeros(B, L, dtype=torch.bool))
    assert empty.item() == 0 and empty.requires_grad


def hairpins(n: int = 8, L: int = 32, stem: int = 6, E: int = 16, seed: int = 0):
    """Random sequences, each with one Watson-Crick hairpin stem; targets are its pairs."""
    g = torch.Generator().manual_seed(seed)
    nuc = torch.randint(0, 4, (n, L), generator=g)
    target = torch.zeros(n, L, L)
    comp = torch.tensor([3, 2, 1, 0])  # A-U, C-G
    for b in range(n):
        loop = int(torch.randint(4, 9, (1,), generator=g))
        i0 = int(torch.randint(0, L - 2 * stem - loop + 1, (1,), generator=g))
        j_last = i0 + 2 * stem + loop - 1
        for k in range(stem):
            nuc[b, j_last - k] = comp[nuc[b, i0 + k]]
            target[b, i0 + k, j_last - k] = target[b, j_last - k, i0 + k] = 1
    emb = torch.randn(4, E, generator=g)
    h = F.one_hot(nuc, 4).float() @ emb + 0.1 * torch.randn(n, L, E, generator=g)
    return h, nuc, target


def test_overfits_synthetic_hairpins():
    h, nuc, target = hairpins()
    mask = torch.ones(h.shape[:2], dtype=torch.bool)
    torch.manual_seed(0)
    head = StructureHead(
        StructureHeadConfig(embed_dim=16, proj_dim=8, channels=16, blocks=4, dilations=(1, 2), dropout=0.0)
    )
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = pair_loss(head(h, mask, nuc=nuc), target, mask, pos_weight=10.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 20, (losses[0], losses[-1])
    head.eval()
    with torch.no_grad():
        logits = head(h, mask, nuc=nuc)
    up = valid_pair_mask(mask, 3, upper=True)
    precision = [target[b][up[b]][logits[b][up[b]].topk(6).indices].mean().item() for b in range(8)]
    assert np.mean(precision) >= 0.85, precision


def test_backbone_glue_with_tiny_model():
    from resm.alphabet import pad_batch
    from resm.backbone.load import init_model
    from resm.mapping import get_scheme
    from resm.nucleotides import rna_codes

    model = init_model("tiny", seed=0)
    seqs = ["GGGAAACCCAUGC", "ACGUACGUAC"]
    tokens = pad_batch([get_scheme().encode(s) for s in seqs])
    with torch.no_grad():
        attn, reps = stacked_attention_maps(model, tokens)
    h, mask = strip_special(reps[model.num_layers], tokens)
    n_attn = model.num_layers * model.attention_heads
    assert attn.shape == (2, n_attn, 13, 13) and h.shape == (2, 13, 64)
    assert mask.sum(1).tolist() == [13, 10]
    nuc = torch.full(mask.shape, 4, dtype=torch.long)
    for b, s in enumerate(seqs):
        nuc[b, : len(s)] = torch.as_tensor(rna_codes(s).astype(np.int64))
    head = make_head(small_cfg(embed_dim=64, use_attention=True, attn_channels=n_attn, blocks=2))
    with torch.no_grad():
        full = head(h, mask, attn_feats=attn, nuc=nuc)
    tiled = head.predict_tiled(h, mask, attn_feats=attn, nuc=nuc, tile=5, dtype=torch.float32)
    torch.testing.assert_close(tiled, full, atol=1e-4, rtol=0)
