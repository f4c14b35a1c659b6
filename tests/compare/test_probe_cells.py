"""The compare harness's zero-shot probe reads the same cells in its fit and in its use: a probe
fitted on a backend's attention features (the sampled (i, j) cells, residues only, BOS and EOS
left out) gives, through the layer-by-layer weighted maps it folds with, exactly
``sigmoid(features(i, j) @ w + b)`` at every cell i < j, and for an ESM-2 backend the same map
as the backbone's contact head with the probe's weights in it (``resm probe``'s path)."""

from __future__ import annotations

import numpy as np
import torch

from resm.alphabet import pad_batch
from resm.compare.backends import BackendSpec, ResmBackend
from resm.compare.structure import ProbeSection, fit_attention_probe
from resm.structure.io import Structure


def test_the_fitted_probe_applies_to_the_cells_it_was_fitted_on():
    backend = ResmBackend(BackendSpec("tiny", "resm", "random:tiny")).load()
    rng = np.random.default_rng(0)
    recs = []
    for k in range(6):
        L = int(rng.integers(12, 30))
        seq = "".join(rng.choice(list("ACGU"), L))
        p = np.full(L, -1, dtype=np.int64)
        for a in range(3):  # a short stem at the ends
            p[a], p[L - 1 - a] = L - 1 - a, a
        recs.append(Structure(f"r{k}", seq, p))
    probe = fit_attention_probe(backend, recs, ProbeSection(max_pairs_per_seq=40), progress=False)
    seq = "GGGACUUCGGUCCCAUAUGCA"
    L = len(seq)
    P = probe.pair_probs(backend, seq)
    assert P.shape == (L, L)
    i, j = np.triu_indices(L, 1)
    X = backend.pair_features(seq, np.stack([i, j], 1))
    want = 1 / (1 + np.exp(-(X.astype(np.float64) @ probe.weight + probe.bias)))
    np.testing.assert_allclose(P[i, j], want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(P, P.T, rtol=0, atol=1e-5)
    model = backend.model
    with torch.no_grad():
        model.contact_head.regression.weight.copy_(torch.as_tensor(probe.weight).view(1, -1))
        model.contact_head.regression.bias.fill_(probe.bias)
        C = model.predict_contacts(pad_batch([backend.scheme.encode(seq)]).to(backend.device))[0].cpu().numpy()
    np.testing.assert_allclose(C, P, rtol=0, atol=1e-5)
