import itertools

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from resm.alphabet import pad_batch
from resm.backbone.attention import pair_attention_features
from resm.backbone.load import init_model
from resm.mapping import get_scheme
from resm.structure.decode import decode
from resm.structure.io import Structure, check_pairs, read_structures
from resm.structure.probe import ProbeFitOptions, fit_probe, load_probe, predict_pair_probs, sample_pairs, save_probe

SCHEME = get_scheme("kdny")


def _random_seq(rng: np.random.Generator, L: int) -> str:
    return "".join(rng.choice(list("ACGU"), L))


def _set_regression(model, w: torch.Tensor, b: float) -> None:
    with torch.no_grad():
        model.contact_head.regression.weight.copy_(w.view_as(model.contact_head.regression.weight))
        model.contact_head.regression.bias.fill_(b)


@pytest.mark.parametrize("arch", ["tiny", "small"])
def test_features_match_contact_head(arch):
    model = init_model(arch, seed=3)
    n_ch = model.num_layers * model.attention_heads
    g = torch.Generator().manual_seed(0)
    w = torch.randn(n_ch, generator=g) * 300  # features are O(1e-3): make logits O(1)
    _set_regression(model, w, -0.2)
    rng = np.random.default_rng(0)
    seq = _random_seq(rng, 57)
    tokens = pad_batch([SCHEME.encode(seq)])
    L = len(seq)
    idx = rng.integers(0, L, size=(300, 2))
    X = pair_attention_features(model, tokens, idx)
    assert X.shape == (300, n_ch) and X.dtype == np.float32
    logits = X.astype(np.float64) @ w.double().numpy() - 0.2
    p_feat = 1 / (1 + np.exp(-logits))
    with torch.inference_mode():
        P = model.predict_contacts(tokens)[0].numpy()
    assert P.shape == (L, L)
    assert np.ptp(p_feat) > 0.05  # the check is not trivially about a constant
    np.testing.assert_allclose(p_feat, P[idx[:, 0], idx[:, 1]], atol=1e-5)
    np.testing.assert_allclose(predict_pair_probs(model, SCHEME, seq), P, atol=1e-6)


def test_feature_pair_selections_agree():
    model = init_model("tiny", seed=0)
    rng = np.random.default_rng(1)
    seq = _random_seq(rng, 30)
    tokens = pad_batch([SCHEME.encode(seq)])
    full = pair_attention_features(model, tokens[0])  # (T,) tokens and all i < j
    i, j = np.triu_indices(30, 1)
    assert full.shape == (len(i), model.num_layers * model.attention_heads)
    mask = np.zeros((30, 30), dtype=bool)
    mask[i[::7], j[::7]] = True
    np.testing.assert_allclose(pair_attention_features(model, tokens, mask), full[::7], atol=1e-7)
    np.testing.assert_allclose(
        pair_attention_features(model, tokens, np.stack([j[::5], i[::5]], 1)), full[::5], atol=1e-6
    )  # features are symmetric
    with pytest.raises(ValueError, match=r"^pair index out of range for L = 30$"):
        pair_attention_features(model, tokens, np.array([[0, 30]]))
    with pytest.raises(ValueError, match=r"^expected the tokens of one sequence, \(T,\) or \(1, T\); got \(2, 32\)$"):
        pair_attention_features(model, pad_batch([SCHEME.encode(seq)] * 2))


def test_sample_pairs():
    rng = np.random.default_rng(0)
    pairs = check_pairs(decode(np.ones((60, 60)), "GC" * 30, noncanonical=False))
    for n_neg in (50, 10_000):  # rejection sampling, then the dense path capped by the cells
        index, label = sample_pairs(pairs, n_neg, rng)
        i, j = index.T
        assert np.all(j - i > 3)
        assert len({(a, b) for a, b in index.tolist()}) == len(index)
        np.testing.assert_array_equal(label, pairs[i] == j)
        assert label.sum() == (pairs > np.arange(60)).sum()
    n_cells = 56 * 57 // 2
    assert len(index) == n_cells
    idx_long, lab_long = sample_pairs(np.full(5000, -1), 200, rng)
    assert len(idx_long) == 200 and lab_long.sum() == 0
    assert np.all(idx_long[:, 1] - idx_long[:, 0] > 3)


def test_fit_probe_recovers_planted_probe():
    """Labels made by decoding a planted contact head's map are learnable from the features."""
    model = init_model("tiny", seed=1)
    n_ch = model.num_layers * model.attention_heads
    w_true = torch.randn(n_ch, generator=torch.Generator().manual_seed(0))
    _set_regression(model, w_true * 1000, 0.0)
    rng = np.random.default_rng(0)
    recs = []
    for k in range(6):
        seq = _random_seq(rng, int(rng.integers(40, 80)))
        P = predict_pair_probs(model, SCHEME, seq)
        L = len(seq)
        thr = float(np.quantile(P[np.triu_indices(L, 4)], 0.99))
        recs.append(Structure(f"s{k}", seq, decode(P, None, threshold=thr, noncanonical=True)))
    _set_regression(model, torch.zeros(n_ch), 0.0)  # forget the planted probe
    report = fit_probe(model, SCHEME, recs[:4], ProbeFitOptions(max_pairs_per_seq=300, seed=0))
    assert report["n_seqs"] == 4 and report["n_neg"] == 1200 and report["n_pos"] > 20
    assert report["train_auroc"] > 0.95
    w_fit = model.contact_head.regression.weight.detach()[0]
    assert torch.nn.functional.cosine_similarity(w_fit, w_true, dim=0) > 0.8
    ys, ps = [], []
    for rec in recs[4:]:  # held out
        P = predict_pair_probs(model, SCHEME, rec.seq)
        i, j = np.triu_indices(len(rec), 4)
        ys.append(rec.pairs[i] == j)
        ps.append(P[i, j])
    assert roc_auc_score(np.concatenate(ys), np.concatenate(ps)) > 0.95


def test_save_load_probe(tmp_path):
    model = init_model("tiny", seed=0)
    n_ch = model.num_layers * model.attention_heads
    _set_regression(model, torch.arange(n_ch, dtype=torch.float32), 1.5)
    path = tmp_path / "probe.pt"
    save_probe(model, path)
    assert path.stat().st_size < 10_000
    other = init_model("tiny", seed=1)
    load_probe(other, path)
    torch.testing.assert_close(other.contact_head.regression.weight, model.contact_head.regression.weight)
    torch.testing.assert_close(other.contact_head.regression.bias, model.contact_head.regression.bias)
    with pytest.raises(ValueError, match="layers"):
        load_probe(init_model("small"), path)
    torch.save({"weight": torch.zeros(3)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a probe"):
        load_probe(other, tmp_path / "bad.pt")


@pytest.mark.data
def test_fit_probe_real_data_end_to_end(data, tmp_path):
    path = data / "ss" / "bprna" / "VL0.dbn"
    if not path.exists():
        pytest.skip(f"{path} missing")
    recs = list(itertools.islice((r for r in read_structures(path) if 30 <= len(r) <= 120), 5))
    assert len(recs) == 5
    model = init_model("tiny", seed=0)
    report = fit_probe(model, SCHEME, recs[:4], ProbeFitOptions(max_pairs_per_seq=200, seed=0))
    assert report["n_pos"] > 0 and report["n_neg"] > 0
    assert 0.0 <= report["train_auroc"] <= 1.0
    # the contact head now computes exactly the sklearn classifier's probabilities
    rec = recs[4]
    index, _ = sample_pairs(rec.pairs, 100, np.random.default_rng(1))
    X = pair_attention_features(model, pad_batch([SCHEME.encode(rec.seq)]), index)
    p_sk = report["classifier"].predict_proba(X.astype(np.float64))[:, 1]
    P = predict_pair_probs(model, SCHEME, rec.seq)
    np.testing.assert_allclose(P[index[:, 0], index[:, 1]], p_sk, atol=1e-5)
    pred = decode(P, rec.seq, threshold=float(np.quantile(P, 0.99)))
    check_pairs(pred)
    save_probe(model, tmp_path / "p.pt")
    fresh = load_probe(init_model("tiny", seed=0), tmp_path / "p.pt")
    np.testing.assert_allclose(predict_pair_probs(fresh, SCHEME, rec.seq), P, atol=1e-6)
