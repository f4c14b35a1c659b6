import numpy as np
import pytest

from resm.structure.folders import (
    fold_many,
    normalise_rna,
    cached_prior,
    head_pair_prior,
    pair_prior,
    rnafold,
    rnafold_bpp,
    rnafold_bpp_local,
    rnafold_duplex_energy,
)
from resm.structure.io import parse_dotbracket, to_dotbracket

HAIRPIN = "GGGGAAAACCCC"


def test_normalise():
    assert normalise_rna("acgtuNRX-i") == "ACGUUNNNNN"
    assert normalise_rna("") == ""


def test_rnafold_hairpin():
    pairs, mfe = rnafold(HAIRPIN)
    assert to_dotbracket(pairs) == "((((....))))"
    assert mfe == pytest.approx(-5.4, abs=0.05)
    assert pairs.dtype == np.int64


def test_rnafold_normalises_input():
    ref, mfe = rnafold(HAIRPIN)
    for variant in ("ggggaaaacccc", "GgGgAaAaCcCc"):
        p, e = rnafold(variant)
        np.testing.assert_array_equal(p, ref)
        assert e == pytest.approx(mfe)
    # T is U: a T-loop hairpin folds like the U one
    np.testing.assert_array_equal(rnafold("GGGGTTTTCCCC")[0], rnafold("GGGGUUUUCCCC")[0])
    # unknown letters become N and never pair
    p, _ = rnafold("NNNNAAAANNNN")
    assert (p == -1).all()
    p, _ = rnafold("GGGGAAAACCCX")
    assert p[11] == -1
    assert rnafold("")[0].size == 0


def test_bpp_properties():
    seq = "GGGAAAUCCCGCGAAAGCGCAUAUGGGAUUUCCCAUAUGC"
    b = rnafold_bpp(seq)
    assert b.shape == (len(seq), len(seq)) and b.dtype == np.float32
    np.testing.assert_array_equal(b, b.T)
    assert np.all(np.diagonal(b) == 0)
    assert np.all(b >= 0)
    assert np.all(b.sum(1) <= 1 + 1e-5)


def test_bpp_high_on_mfe_pairs_of_strong_hairpin():
    seq = "GGGCGCGCAAAAGCGCGCCC"
    pairs, _ = rnafold(seq)
    assert to_dotbracket(pairs) == "((((((((....))))))))"
    b = rnafold_bpp(seq)
    i = np.flatnonzero(pairs >= 0)
    assert b[i, pairs[i]].min() > 0.9
    assert b[i, pairs[i]].mean() > 0.95


def test_bpp_sparse_path_matches_dense():
    seq = "GGGAAAUCCCGCGAAAGCGCAUAUGGGAUUUCCCAUAUGC"
    dense = rnafold_bpp(seq)
    sparse = rnafold_bpp(seq, dense_max=0, cutoff=1e-7)
    np.testing.assert_allclose(sparse, dense, atol=1e-6)
    np.testing.assert_array_equal(sparse, sparse.T)


def test_bpp_normalises_and_handles_n():
    b = rnafold_bpp("ggggaaaaccccN")
    assert b.shape == (13, 13)
    assert np.all(b[12] == 0)
    np.testing.assert_allclose(rnafold_bpp("GGGGTTTTCCCC"), rnafold_bpp("GGGGUUUUCCCC"))


def test_max_bp_span():
    pairs, _ = rnafold(HAIRPIN, max_bp_span=5)
    assert np.all(np.abs(pairs[pairs >= 0] - np.flatnonzero(pairs >= 0)) <= 5)
    b = rnafold_bpp(HAIRPIN, max_bp_span=5)
    i, j = np.nonzero(b)
    assert np.all(np.abs(i - j) <= 5)


def test_fold_many():
    seqs = [HAIRPIN, "ACGUACGU"]
    out = fold_many(seqs, progress=False)
    assert len(out) == 2
    np.testing.assert_array_equal(out[0][0], parse_dotbracket("((((....))))"))
    bpps = fold_many(seqs, rnafold_bpp, progress=False)
    assert [b.shape for b in bpps] == [(12, 12), (8, 8)]


def test_duplex_energy():
    e = rnafold_duplex_energy("GGGGAAAA", "uuuuCCCC")
    assert e < -5
    weak = rnafold_duplex_energy("AAAAAAAA", "AAAAAAAA")
    assert weak > e
    assert rnafold_duplex_energy("GGGGACGU", "ACGTCCCC") == pytest.approx(rnafold_duplex_energy("GGGGACGU", "ACGUCCCC"))
    assert rnafold_duplex_energy("", "ACGU") == 0.0


def test_local_bpp_is_global_with_a_whole_window_and_respects_span():
    rng = np.random.default_rng(3)
    seq = "".join(rng.choice(list("ACGU"), 120)) + HAIRPIN
    L = len(seq)
    np.testing.assert_allclose(rnafold_bpp_local(seq, window=L, span=L), rnafold_bpp(seq), atol=1e-5)
    local = rnafold_bpp_local(seq, window=60, span=30)
    assert local.shape == (L, L) and local.dtype == np.float32
    np.testing.assert_array_equal(local, local.T)
    i, j = np.nonzero(local)
    assert len(i) > 0 and np.abs(i - j).max() <= 30
    assert local.max() <= 1 + 1e-6  # per pair; row sums may pass 1 (pairs average over different windows)
    # the definition: each pair's probability averaged over the windows that contain it, each
    # window folded on its own (global partition function, span-limited); ViennaRNA's
    # sliding-window recursions differ from this brute force by ~0.02 at most, while taking
    # any single window's values instead of the average is off by up to ~1
    sub = seq[:70]
    W, S = 40, 25
    total, count = np.zeros((70, 70)), np.zeros((70, 70))
    for k in range(70 - W + 1):
        total[k : k + W, k : k + W] += rnafold_bpp(sub[k : k + W], max_bp_span=S)
        count[k : k + W, k : k + W] += 1
    np.testing.assert_allclose(rnafold_bpp_local(sub, window=W, span=S, cutoff=0),
                               total / np.maximum(count, 1), atol=0.03)
    # a short sequence (shorter than the window) is one window
    np.testing.assert_allclose(rnafold_bpp_local(HAIRPIN, window=240, span=240), rnafold_bpp(HAIRPIN), atol=1e-5)


def test_pair_prior_switches_to_local_above_the_threshold():
    rng = np.random.default_rng(4)
    seq = "".join(rng.choice(list("ACGU"), 150))
    np.testing.assert_array_equal(pair_prior(seq), rnafold_bpp(seq))
    np.testing.assert_array_equal(pair_prior(seq, local_above=150), rnafold_bpp(seq))
    np.testing.assert_array_equal(pair_prior(seq, local_above=149, window=50, span=40),
                                  rnafold_bpp_local(seq, 50, 40))


def test_cached_prior_round_trips_and_keys_on_the_prior_setting(tmp_path):
    from resm.heads.structure import StructureHeadConfig

    seq = "GGGGAAACCCCAUAUGGCGCAAAGCGCCAUAUGGG"
    glob_cfg = StructureHeadConfig(use_bpp=True)
    local_cfg = StructureHeadConfig(use_bpp=True, bpp_local_above=20, bpp_window=30, bpp_span=20)
    a = cached_prior(tmp_path, seq, glob_cfg)
    assert a.dtype == np.float16 and len(list(tmp_path.glob("*.npy"))) == 1
    np.testing.assert_array_equal(cached_prior(tmp_path, seq, glob_cfg), a)  # read back
    np.testing.assert_allclose(a, head_pair_prior(seq, glob_cfg), atol=1e-3)
    b = cached_prior(tmp_path, seq, local_cfg)  # another setting: another file, other values
    assert len(list(tmp_path.glob("*.npy"))) == 2
    np.testing.assert_allclose(b, rnafold_bpp_local(seq, 30, 20), atol=1e-3)
    assert not list(tmp_path.glob("*.tmp"))
