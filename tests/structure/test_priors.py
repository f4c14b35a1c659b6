import multiprocessing
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from resm.structure import priors
from resm.structure.folders import rnafold
from resm.structure.io import to_dotbracket
from resm.structure.priors import (
    PRIOR_KINDS,
    PriorConfig,
    SparsePairs,
    cached_dense_prior,
    cached_prior,
    compute_priors,
    dense_prior,
    head_pair_prior,
    pair_prior,
    rnafold_bpp,
    rnafold_bpp_local,
)

HAIRPIN = "GGGGAAAACCCC"


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
    np.testing.assert_allclose(
        rnafold_bpp_local(sub, window=W, span=S, cutoff=0), total / np.maximum(count, 1), atol=0.03
    )
    # a short sequence (shorter than the window) is one window
    np.testing.assert_allclose(rnafold_bpp_local(HAIRPIN, window=240, span=240), rnafold_bpp(HAIRPIN), atol=1e-5)


def test_dense_prior_switches_to_local_above_the_threshold():
    rng = np.random.default_rng(4)
    seq = "".join(rng.choice(list("ACGU"), 150))
    np.testing.assert_array_equal(dense_prior(seq), rnafold_bpp(seq))
    np.testing.assert_array_equal(dense_prior(seq, local_above=150), rnafold_bpp(seq))
    np.testing.assert_array_equal(dense_prior(seq, local_above=149, window=50, span=40), rnafold_bpp_local(seq, 50, 40))


def test_cached_dense_prior_round_trips_and_keys_on_the_prior_setting(tmp_path):
    from resm.heads.pair_map import StructureHeadConfig

    seq = "GGGGAAACCCCAUAUGGCGCAAAGCGCCAUAUGGG"
    glob_cfg = StructureHeadConfig(use_bpp=True)
    local_cfg = StructureHeadConfig(use_bpp=True, bpp_local_above=20, bpp_window=30, bpp_span=20)
    a = cached_dense_prior(tmp_path, seq, glob_cfg)
    assert a.dtype == np.float16 and len(list(tmp_path.glob("*.npz"))) == 1
    np.testing.assert_array_equal(cached_dense_prior(tmp_path, seq, glob_cfg), a)  # read back
    np.testing.assert_allclose(a, head_pair_prior(seq, glob_cfg), atol=1e-3)
    b = cached_dense_prior(tmp_path, seq, local_cfg)  # another setting: another file, other values
    assert len(list(tmp_path.glob("*.npz"))) == 2
    np.testing.assert_allclose(b, rnafold_bpp_local(seq, 30, 20), atol=1e-3)
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("kind", ["eternafold", "vienna-lp", "vienna", "vienna-local"])
def test_sparse_priors_are_valid_probabilities(kind):
    seq = "GGGAAAUCCCGCGAAAGCGCAUAUGGGAUUUCCCAUAUGCnnGGGGAAAACCCC"
    sp = pair_prior(seq, PriorConfig(kind=kind, cutoff=1e-5))
    assert isinstance(sp, SparsePairs) and sp.length == len(seq) and len(sp) > 0
    assert np.all(sp.i < sp.j) and np.all((sp.p >= 1e-5) & (sp.p <= 1 + 1e-6))
    assert np.all(sp.unpaired() >= 0) and np.all(sp.unpaired() <= 1)
    assert not np.isin([40, 41], np.concatenate([sp.i, sp.j])).any()  # N never pairs
    dense = sp.dense()
    np.testing.assert_array_equal(dense, dense.T)
    back = SparsePairs.from_dense(dense)
    np.testing.assert_array_equal(back.i, sp.i[np.lexsort((sp.j, sp.i))])


def test_vienna_sparse_prior_is_the_dense_one_and_lp_vienna_agrees_closely():
    seq = "GGGAAAUCCCGCGAAAGCGCAUAUGGGAUUUCCCAUAUGC"
    exact = pair_prior(seq, PriorConfig(kind="vienna", cutoff=1e-6)).dense()
    # fp16 probabilities (the caches' precision): relative error <= 2^-11, absolute 2^-25 below 2^-14
    np.testing.assert_allclose(
        exact, rnafold_bpp(seq, cutoff=1e-6) * (rnafold_bpp(seq) >= 1e-6), rtol=2**-11, atol=2**-25
    )
    beam = pair_prior(seq, PriorConfig(kind="vienna-lp", beam=0, cutoff=1e-6)).dense()  # exhaustive beam
    assert np.abs(beam - exact).max() < 0.05  # the same model; LinearPartition's energy details differ slightly


def test_eternafold_prior_differs_from_vienna_and_finds_a_strong_hairpin():
    seq = "GGGCGCGCAAAAGCGCGCCC"
    e = pair_prior(seq, PriorConfig(kind="eternafold")).dense()
    v = pair_prior(seq, PriorConfig(kind="vienna")).dense()
    pairs, _ = rnafold(seq)
    i = np.flatnonzero(pairs >= 0)
    assert e[i, pairs[i]].mean() > 0.5 and np.abs(e - v).max() > 1e-3


def test_prior_config_checks_and_window():
    # ValueError: a user's error (resm.cli reports it in one line, exit 1), the value named
    kinds = re.escape(str(list(PRIOR_KINDS)))
    with pytest.raises(ValueError, match=rf"^kind must be one of {kinds}, not 'contrafold'$"):
        PriorConfig(kind="contrafold")
    with pytest.raises(ValueError, match=r"^beam must be >= 0, got -1$"):
        PriorConfig(beam=-1)
    sp = SparsePairs(10, [0, 2, 5], [9, 6, 8], [0.5, 0.25, 0.75])
    w = sp.window(2, 9)
    assert (w.length, w.i.tolist(), w.j.tolist(), w.p.tolist()) == (7, [0, 3], [4, 6], [0.25, 0.75])
    with pytest.raises(ValueError, match="0 <= i < j < 10"):
        SparsePairs(10, [3], [3], [0.1])
    assert len(pair_prior("")) == 0


def test_cached_sparse_prior_round_trips(tmp_path):
    seq = "GGGGAAACCCCAUAUGGCGCAAAGCGCCAUAUGGG"
    cfg = PriorConfig(kind="eternafold", beam=50)
    a = cached_prior(tmp_path, seq, cfg)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    b = cached_prior(tmp_path, seq, cfg)
    np.testing.assert_array_equal(a.i, b.i)
    np.testing.assert_array_equal(a.p, b.p)  # fp16 both when computed and when read back
    assert a.p.dtype == np.float32 and np.array_equal(a.p, a.p.astype(np.float16).astype(np.float32))
    fresh = pair_prior(seq, cfg)
    np.testing.assert_array_equal(fresh.p, b.p)
    cached_prior(tmp_path, seq, PriorConfig(kind="vienna"))
    assert len(list(tmp_path.glob("*.npz"))) == 2 and not list(tmp_path.glob("*.tmp"))


def test_prior_cache_fills_at_once_inside_a_command_and_from_workers(tmp_path):
    # the CLI runs every command inside a transaction; the cache's entries are not its outputs:
    # they are in place at once (workers included, which inherit the transaction but never
    # commit it), and they stay when the command fails
    from resm.utils.io import transaction

    seqs = ["GGGGAAACCCCAUAUGGCGCAAAGCGCC", "GCGCGAAAAGCGCGUUUUUCCCAAAGGG", "ACGUACGUAGGGAAACCCUUU"]
    with pytest.raises(RuntimeError, match="the command failed"), transaction():
        compute_priors(seqs, [PriorConfig(kind="eternafold", beam=50)], tmp_path / "c", workers=2, progress=False)
        names = sorted(p.name for p in (tmp_path / "c").iterdir())
        assert len(names) == 3 and all(n.endswith(".npz") and not n.startswith(".") for n in names)
        raise RuntimeError("the command failed")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == names


# ----------------------------------------------------------------------------- worker processes
def _seqs(n, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGU"), int(rng.integers(20, 90)))) for _ in range(n)]


def test_compute_priors_in_workers_equals_one_process_in_input_order():
    seqs = _seqs(12)
    cfgs = [PriorConfig("eternafold"), PriorConfig("vienna")]
    one = priors.compute_priors(seqs, cfgs, workers=1, progress=False)
    two = priors.compute_priors(seqs, cfgs, workers=3, progress=False)
    assert len(one) == len(two) == len(seqs)
    for a, b, s in zip(one, two, seqs):
        for x, y in zip(a, b):
            assert x.length == y.length == len(s)
            np.testing.assert_array_equal(x.i, y.i)
            np.testing.assert_array_equal(x.j, y.j)
            np.testing.assert_allclose(x.p, y.p, atol=0)
    assert multiprocessing.active_children() == []  # every worker reaped


def test_compute_priors_raises_a_worker_error_and_reaps_the_workers(monkeypatch):
    def boom(job):
        if len(job[0]) == 55:
            raise ValueError("record of 55 nt: cannot fold")
        return priors.pair_prior(job[0], job[1][0])

    monkeypatch.setattr(priors, "_prior_job", boom)  # the forked workers inherit it
    seqs = _seqs(10) + ["A" * 55]
    with pytest.raises(ValueError, match="record of 55 nt"):
        priors.compute_priors(seqs, [PriorConfig("vienna")], workers=2, progress=False)
    assert multiprocessing.active_children() == []


def test_compute_priors_stops_at_once_on_an_error_in_the_parent_and_kills_the_workers(monkeypatch):
    """An exception in the parent while the workers are busy (30 s jobs) ends the run at once;
    no worker is left."""
    import multiprocessing.connection as mpc

    class Stop(Exception):
        pass

    real_wait, calls = mpc.wait, []

    def wait(conns, timeout=None):
        calls.append(1)
        if len(calls) == 2:
            raise Stop()
        return real_wait(conns, 0.2)

    monkeypatch.setattr(priors, "_prior_job", lambda job: time.sleep(30))
    monkeypatch.setattr(mpc, "wait", wait)
    t = time.perf_counter()
    with pytest.raises(Stop):
        priors.compute_priors(_seqs(8), [PriorConfig("vienna")], workers=2, progress=False)
    assert time.perf_counter() - t < 5.0
    assert multiprocessing.active_children() == []


def test_compute_priors_names_a_worker_that_died(monkeypatch):
    def die(job):
        os._exit(3)

    monkeypatch.setattr(priors, "_prior_job", die)
    from resm.structure.folders import FolderFailed

    said = r"^record 'sequence \d' \(\d+ nt\): the pair prior \(vienna\) cannot fold it "
    with pytest.raises(FolderFailed, match=said + r"\(RuntimeError: its worker process stopped, exit code 3\)$"):
        priors.compute_priors(_seqs(4), [PriorConfig("vienna")], workers=2, progress=False)
    assert multiprocessing.active_children() == []


def test_workers_stop_when_their_parent_is_killed(tmp_path):
    """SIGKILL cannot be caught: the workers see their parent's pipe close and stop (no worker
    holds another's pipe open)."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "parent.py"
    script.write_text(
        "import time\n"
        "from resm.structure import priors\n"
        "priors._prior_job = lambda job: time.sleep(0.5)\n"
        "priors.compute_priors(['ACGU'] * 200, [priors.PriorConfig('vienna')], workers=3, progress=False)\n"
    )
    p = subprocess.Popen([sys.executable, str(script)], cwd=str(Path(__file__).resolve().parents[2]))
    deadline = time.time() + 60
    while len(_children(p.pid)) < 3:
        assert p.poll() is None and time.time() < deadline
        time.sleep(0.05)
    workers = _children(p.pid)
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.time() + 10
    while any(Path(f"/proc/{w}").exists() and "zombie" not in Path(f"/proc/{w}/status").read_text() for w in workers):
        assert time.time() < deadline, "workers outlived their parent"
        time.sleep(0.1)


def _children(pid):
    import subprocess

    return subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
