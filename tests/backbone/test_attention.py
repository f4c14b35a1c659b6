"""The one attention hook and its consumers agree with each other and with the contact head."""

import numpy as np
import torch

from resm.alphabet import pad_batch
from resm.backbone.attention import (
    LinearMap,
    PairCells,
    StackedMaps,
    pair_attention_features,
    run_attention,
    stacked_attention_maps,
)
from resm.backbone.load import init_model
from resm.mapping import get_scheme

SCHEME = get_scheme("kdny")


def test_consumers_read_the_same_maps():
    model = init_model("tiny", seed=3).eval()
    seq = "GGGCAUCGAAAGAUGCCCAUAGCUAGC"
    tokens = pad_batch([SCHEME.encode(seq)])
    L, C, H = len(seq), model.num_layers * model.attention_heads, model.attention_heads
    with torch.no_grad():
        maps, reps = stacked_attention_maps(model, tokens)
    assert maps.shape == (1, C, L, L) and set(reps) == {model.num_layers}

    idx = np.array([[0, 5], [3, 20], [7, 26]])
    cells = pair_attention_features(model, tokens, idx)
    np.testing.assert_allclose(cells, maps[0][:, idx[:, 0], idx[:, 1]].T.numpy(), atol=1e-6)

    # the probe's logit map, accumulated layer by layer, is the contact head's own regression
    w = model.contact_head.regression.weight[0].detach()
    acc = LinearMap(w, H)
    with torch.no_grad():
        run_attention(model, tokens, acc)
        contacts = model.predict_contacts(tokens)[0]
    torch.testing.assert_close(
        torch.sigmoid(acc.result()[0] + model.contact_head.regression.bias), contacts, atol=1e-5, rtol=1e-5
    )

    # one-sequence (H, L, L) maps, as the compare backends hand them, stack and pick the same way
    stack, picks = StackedMaps(cpu=True), PairCells(idx[:, 0], idx[:, 1], model.num_layers, H)

    def both(layer, m):
        stack(layer, m[0])
        picks(layer, m[0])

    with torch.no_grad():
        run_attention(model, tokens, both)
    torch.testing.assert_close(stack.result(), maps[0])
    np.testing.assert_allclose(picks.out, cells, atol=1e-6)
