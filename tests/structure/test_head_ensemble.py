"""Several pair heads in one structure model file (resm.structure.ensemble.ensemble_payload,
resm.heads.pairs.PairHeadEnsemble): one head reads exactly as that head; two give the mean of
their pair probabilities through the predictor; files that are not two trainings of one head
over one backbone are refused in one line naming the file; the file round-trips."""

from pathlib import Path

import numpy as np
import pytest
import torch

from resm.backbone.load import CheckpointError, safe_load
from resm.heads.pairs import mean_probability_logits
from resm.structure.ensemble import ensemble_payload
from resm.structure.model import (
    ENSEMBLE,
    load_structure_model,
    model_from_payload,
    save_structure_model,
)
from resm.structure.predictor_loading import model_predictor
from resm.structure.priors import PriorConfig, pair_prior
from tests.conftest import experiment_script

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "resm" / "models" / "structure_default.pt"
SEQS = ["GGGCGCAAGCCUUCGGGCGCCAUAGCGGAAACCGCU", "GCGCAAAGCGCAUAUGGGAAACCCAUCGAUGCAUCGAAAGCGA"]


@pytest.fixture(scope="module")
def shipped():
    return safe_load(SHIPPED)


@pytest.fixture(scope="module")
def priors():
    # any prior gives candidates; RNAfold's is quick (the shipped model's own is EternaFold)
    return [[pair_prior(s, PriorConfig(kind="vienna"))] for s in SEQS]


def _other(payload: dict, seed: int = 0) -> dict:
    """A second training's stand-in: the head's float weights moved at random."""
    g = torch.Generator().manual_seed(seed)
    head = {
        k: v + 0.3 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
        for k, v in payload["head"].items()
    }
    return {**payload, "head": head}


def _probabilities(payload: dict, priors) -> list[tuple]:
    """Per sequence ``(candidates, model probabilities, prior probabilities)`` through the
    predictor the file's meta builds (the path `resm fold` decodes from)."""
    model, meta = model_from_payload(payload)
    return model_predictor(model, meta).probabilities(SEQS, priors)


def test_an_ensemble_of_one_head_is_that_head_bit_for_bit(shipped, priors):
    one = ensemble_payload([("shipped.pt", shipped)])
    assert one[ENSEMBLE]["members"] == 1 and "decoding" not in one
    got, want = _probabilities(one, priors), _probabilities(shipped, priors)
    pred = model_predictor(*model_from_payload(shipped))
    for (c1, q1, p1), (c2, q2, p2) in zip(got, want, strict=True):
        np.testing.assert_array_equal(c1.i, c2.i)
        np.testing.assert_array_equal(q1, q2)  # bit for bit
        np.testing.assert_array_equal(p1, p2)
    assert len(want[1][1]) > 10
    # so the decoded structure is the same under the same decoding
    for seq, (c1, q1, p1), (c2, q2, p2) in zip(SEQS, got, want, strict=True):
        np.testing.assert_array_equal(pred.decode(seq, c1.i, c1.j, q1, p1), pred.decode(seq, c2.i, c2.j, q2, p2))


def test_an_ensemble_of_two_averages_their_probabilities_candidate_by_candidate(shipped, priors):
    other = _other(shipped)
    both = ensemble_payload([("a.pt", shipped), ("b.pt", other)])
    assert both[ENSEMBLE] == {"members": 2, "sources": ["a.pt", "b.pt"]}
    got = _probabilities(both, priors)
    a, b = _probabilities(shipped, priors), _probabilities(other, priors)
    for (c, q, _), (ca, qa, _), (cb, qb, _) in zip(got, a, b, strict=True):
        np.testing.assert_array_equal(c.i, ca.i)
        np.testing.assert_array_equal(c.j, cb.j)
        assert np.abs(qa - qb).max() > 0.05  # the two heads really differ
        np.testing.assert_allclose(q, (qa + qb) / 2, rtol=0, atol=1e-6)  # float32 rounding
    # a member that is an ensemble brings its heads: three heads, their mean
    third = _other(shipped, seed=1)
    three = ensemble_payload([("ab.pt", both), ("c.pt", third)])
    assert three[ENSEMBLE] == {"members": 3, "sources": ["a.pt", "b.pt", "c.pt"]}
    c3 = _probabilities(third, priors)
    for (_, q, _), (_, qa, _), (_, qb, _), (_, qc, _) in zip(_probabilities(three, priors), a, b, c3, strict=True):
        np.testing.assert_allclose(q, (qa + qb + qc) / 3, rtol=0, atol=1e-6)


def test_mean_probability_logits_stay_finite_and_exact_at_saturation():
    x = torch.tensor([[-100.0, 40.0, 0.3, -3.0, 60.0], [100.0, 60.0, -1.2, -3.0, -60.0]])
    got = torch.sigmoid(mean_probability_logits(x))
    want = torch.sigmoid(x.double()).mean(0).float()
    assert torch.isfinite(mean_probability_logits(x)).all()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda p: {**p, "head_config": {**p["head_config"], "width": 32}}, "its head_config differs from a.pt's"),
        (lambda p: {**p, "backbone": {k: v + 1 for k, v in p["backbone"].items()}}, "its backbone differs from a.pt's"),
        (lambda p: {**p, "scheme_hash": "0" * 16}, "its scheme_hash differs from a.pt's"),
        (lambda p: {**p, "priors": [{"kind": "vienna"}]}, "its priors differs from a.pt's"),
        (lambda p: {**p, "head_kind": "conv"}, "its head is 'conv'; an ensemble holds pair heads"),
        (lambda p: {**p, "adapter": {"config": {}, "state": {}}}, "carries a trained adapter"),
        (lambda p: {"format": "something else"}, "not a resm structure model"),
    ],
)
def test_other_heads_backbones_or_schemes_are_refused_in_one_line(shipped, change, words):
    with pytest.raises(CheckpointError) as e:
        ensemble_payload([("a.pt", shipped), ("b.pt", change(shipped))])
    msg = str(e.value)
    assert msg.startswith("b.pt: ") and words in msg and "\n" not in msg


def test_the_ensemble_file_round_trips_and_the_tool_refuses_in_one_line(shipped, priors, tmp_path, monkeypatch):
    both = ensemble_payload([("a.pt", shipped), ("b.pt", _other(shipped))])
    both["decoding"] = dict(shipped["decoding"], prior_weight=0.3)
    path = save_structure_model(both, tmp_path / "ensemble.pt")
    model, meta = load_structure_model(path)  # weights_only, the project's loader
    assert meta[ENSEMBLE]["members"] == 2 and meta["decoding"]["prior_weight"] == 0.3
    assert model.kind == "pairs" and len(model.head.members) == 2
    pred = model_predictor(model, meta)
    assert pred.decoding.prior_weight == 0.3  # the stored decoding is the ensemble's
    for (c1, q1, _), (c2, q2, _) in zip(pred.probabilities(SEQS, priors), _probabilities(both, priors), strict=True):
        np.testing.assert_array_equal(c1.i, c2.i)
        np.testing.assert_array_equal(q1, q2)
    saved = safe_load(path)
    assert saved["head"].keys() == both["head"].keys()
    assert all(torch.equal(saved["head"][k], v) for k, v in both["head"].items())

    mod = experiment_script("structure_cpu/ensemble_heads.py")
    bad = tmp_path / "bad.pt"
    torch.save({**shipped, "head_config": {**shipped["head_config"], "blocks": 2}}, bad)
    with pytest.raises(SystemExit) as e:
        mod.build([str(SHIPPED), str(bad)])
    assert str(e.value).startswith(f"{bad}: its head_config differs") and "\n" not in str(e.value)
    # the command line: key=value overrides are not model files; a bad file stops it before anything is written
    argv = ["ensemble_heads.py", str(SHIPPED), "model.init=null", str(bad), "--config", "x.yaml", "--out", "o.pt"]
    monkeypatch.setattr("sys.argv", argv[:-1] + [str(tmp_path / "o.pt")])
    with pytest.raises(SystemExit) as e:
        mod.main()
    assert str(e.value).startswith(f"{bad}: its head_config differs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt", "ensemble.pt"]


@pytest.mark.parametrize("members", [3, 10**9, 0, "2", True, None])
def test_an_ensemble_entry_that_does_not_match_its_heads_is_refused_in_one_line(shipped, tmp_path, members):
    both = ensemble_payload([("a.pt", shipped), ("b.pt", _other(shipped))])
    path = tmp_path / "damaged.pt"
    torch.save({**both, ENSEMBLE: {**both[ENSEMBLE], "members": members}}, path)
    with pytest.raises(CheckpointError) as e:
        load_structure_model(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: not a usable structure model (its {ENSEMBLE} entry names") and "\n" not in msg
    assert "hold 2" in msg
