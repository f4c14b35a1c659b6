"""Interaction and expression heads on inputs to 4,000 nt: the windowed scan of
resm.tasks.rri_sites (parity with the windows scored as ordinary pairs, the duplex read from
the pair map), `resm interact` on a miRNA x 4,000-nt target and on two long partners, the
expression head on 4,000-nt UTRs, and the one-line errors for too-long or bad records."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resm.predict import SITES_HEADER
from tests.conftest import resm_cli, resm_main


def rand(rng, n):
    return "".join(rng.choice(list("ACGU"), n))


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    resm_main("init-checkpoint", "--arch", "tiny", "--scheme", "kdny", "--seed", "1", "--out", d / "tiny.pt")
    return d / "tiny.pt"


def _model(ckpt, heads=("rri", "mrl"), max_length=40):
    from resm.backbone.encoder import BackboneEncoder
    from resm.backbone.load import load_backbone
    from resm.heads.mrl import ExpressionHead, ExpressionHeadConfig, mrl_apply
    from resm.heads.rri import InteractionHead, InteractionHeadConfig, rri_apply
    from resm.mapping import get_scheme
    from resm.tasks.base import TaskModel

    scheme = get_scheme("kdny")
    bb = load_backbone(str(ckpt), scheme).model
    torch.manual_seed(3)
    mods, apply, specs = {}, {}, {}
    if "rri" in heads:
        cfg = InteractionHeadConfig(
            embed_dim=bb.embed_dim, proj_dim=16, channels=16, blocks=2, dropout=0.0, max_length=max_length
        )
        mods["rri"], apply["rri"] = InteractionHead(cfg), rri_apply
        specs["rri"] = {
            "task": "rri",
            "config": {k: v for k, v in cfg.to_dict().items() if k != "embed_dim"},
            "extra": {},
        }
    if "mrl" in heads:
        cfg = ExpressionHeadConfig(embed_dim=bb.embed_dim, hidden=16, dropout=0.0, max_length=60)
        mods["mrl"], apply["mrl"] = ExpressionHead(cfg), mrl_apply
        specs["mrl"] = {
            "task": "mrl",
            "config": {k: v for k, v in cfg.to_dict().items() if k != "embed_dim"},
            "extra": {"mean": 5.0, "std": 2.0},
        }
    return TaskModel(BackboneEncoder(bb, "frozen"), mods, apply).eval(), scheme, specs


@pytest.fixture(scope="module")
def bundle(tiny_ckpt, tmp_path_factory):
    from resm.tasks.base import save_bundle

    tm, scheme, specs = _model(tiny_ckpt)
    return save_bundle(tmp_path_factory.mktemp("bundle") / "model", tm, scheme, str(tiny_ckpt), specs)


def test_duplex_is_the_best_antiparallel_chain():
    from resm.tasks.rri_sites import duplex_from_map

    lg = np.full((8, 14), -4.0)
    for i, j in [(1, 12), (2, 11), (4, 9), (5, 8)]:
        lg[i, j] = 3.0
    lg[3, 13] = 2.0  # crosses the chain (j must decrease as i increases): left out
    lg[6, 2] = 0.5  # continues the chain: kept
    assert duplex_from_map(lg) == [(1, 12), (2, 11), (4, 9), (5, 8), (6, 2)]
    lg[3, 13] = 20.0  # now worth more than the pairs it excludes
    assert duplex_from_map(lg) == [(3, 13), (4, 9), (5, 8), (6, 2)]
    assert duplex_from_map(np.full((5, 5), -1.0)) == []


def test_windows_cover_every_nucleotide():
    from resm.tasks.rri_sites import window_starts

    assert window_starts(30, 64, 32) == [0]
    for n in (65, 100, 129, 4000):
        s = window_starts(n, 64, 32)
        covered = np.zeros(n, bool)
        for x in s:
            covered[x : x + 64] = True
        assert covered.all() and s[-1] == n - 64 and all(b - a <= 32 for a, b in zip(s, s[1:]))


def test_scan_equals_the_windows_scored_as_pairs(tiny_ckpt):
    """The scan's score is the best window pair's probability, each window pair scored
    exactly as an ordinary pair (predict_rri); two partners within the window are one pair."""
    from resm.data.rri import Pair
    from resm.tasks.rri import predict_rri
    from resm.tasks.rri_sites import ScanOptions, _site_from_map, scan_pair, scan_pairs, window_starts

    tm, scheme, _ = _model(tiny_ckpt, heads=("rri",))
    rng = np.random.default_rng(0)
    opts = ScanOptions(window=32, stride=16, max_sites=3, batch_size=7)
    for la, lb in ((22, 150), (70, 90)):
        a, b = rand(rng, la), rand(rng, lb)
        r = scan_pair(tm, "rri", scheme, a, b, 40, opts)
        sa, sb = window_starts(la, 32, 16), window_starts(lb, 32, 16)
        wins = [Pair("a", a[x : x + 32], "b", b[y : y + 32], None, 1) for x in sa for y in sb]
        probs = predict_rri(tm, scheme, wins, 16)[0]
        assert r.n_windows == (len(sa), len(sb))
        np.testing.assert_allclose(r.score, probs.max(), atol=1e-5)
        best = wins[int(probs.argmax())]
        top = r.sites[0]
        assert (a[top.a_start - 1 : top.a_end], b[top.b_start - 1 : top.b_end]) == (best.a, best.b)
        assert len(r.sites) == 3 and r.sites[0].prob >= r.sites[1].prob >= r.sites[2].prob
        for s in r.sites:  # sites kept do not share both windows
            for t in r.sites:
                if s is not t:
                    assert s.a_end < t.a_start or t.a_end < s.a_start or s.b_end < t.b_start or t.b_end < s.b_start
        for i, j in top.head_pairs:  # the pairs read from the head's map lie in the site's windows
            assert top.a_start <= i <= top.a_end and top.b_start <= j <= top.b_end
        for s in r.sites:  # the duplex is ViennaRNA's of the two windows, in full-sequence coordinates
            if s.duplex:
                left, right = s.duplex.split("&")
                assert (
                    s.a_start <= s.duplex_a[0] <= s.duplex_a[1] <= s.a_end
                    and len(left) == s.duplex_a[1] - s.duplex_a[0] + 1
                )
                assert (
                    s.b_start <= s.duplex_b[0] <= s.duplex_b[1] <= s.b_end
                    and len(right) == s.duplex_b[1] - s.duplex_b[0] + 1
                )
                assert s.duplex_energy < 0
    # a perfect complement planted in b: the site covering it reports exactly that duplex
    mir = rand(rng, 22)
    comp = "".join({"A": "U", "C": "G", "G": "C", "U": "A"}[c] for c in reversed(mir))
    b = rand(rng, 70) + comp + rand(rng, 60)
    s = _site_from_map(mir, b, 0.0, np.zeros((22, 32)), 0, 64, 22, 32)  # the window b[64:96]
    assert (s.b_start, s.b_end) == (65, 96) and s.duplex_energy < -20
    left, right = s.duplex.split("&")  # ViennaRNA's spans include dangling unpaired ends
    assert left.strip(".") == "(" * 22 and right.strip(".") == ")" * 22
    assert s.duplex_a[0] + left.index("(") == 1 and s.duplex_b[0] + right.index(")") == 71  # the planted complement
    assert s.duplex_b[1] - s.duplex_b[0] + 1 == len(right) and s.duplex_a[1] - s.duplex_a[0] + 1 == len(left)
    # partners within the window: the scan and the batched path give the pair's own probability
    pairs = [Pair("a", rand(rng, 20), "b", rand(rng, 30), None, k) for k in range(5)]
    direct = predict_rri(tm, scheme, pairs, 4)[0]
    batched = [s.score for s in scan_pairs(tm, "rri", scheme, pairs, 40, ScanOptions(batch_size=3))]
    single = [scan_pair(tm, "rri", scheme, p.a, p.b, 40, ScanOptions()).score for p in pairs]
    np.testing.assert_allclose(batched, direct, atol=1e-5)
    np.testing.assert_allclose(single, direct, atol=1e-5)
    with pytest.raises(ValueError, match=r"window must lie in \[8, 40\]"):
        scan_pair(tm, "rri", scheme, "ACGU", "ACGU", 40, ScanOptions(window=41))


@pytest.mark.slow
def test_interact_scans_long_partners(tmp_path, bundle):
    rng = np.random.default_rng(1)
    mir, utr = rand(rng, 22), rand(rng, 4000)
    srna, mrna = rand(rng, 300), rand(rng, 1200)
    pairs = tmp_path / "long.tsv"
    pairs.write_text(f"a_name\ta_seq\tb_name\tb_seq\nmiR-x\t{mir}\tutr\t{utr}\nsrna\t{srna}\tmrna\t{mrna}\n")
    out, sites, maps = tmp_path / "s.tsv", tmp_path / "sites.tsv", tmp_path / "m.npz"
    p = resm_cli("interact", pairs, "--model", bundle, "-o", out, "--sites", sites, "--maps", maps, "--max-sites", "4")
    assert "sites in" in p.stdout
    rows = [r.split("\t") for r in out.read_text().splitlines()]
    assert rows[0] == ["index", "a_name", "b_name", "score"] and len(rows) == 3
    srows = [r.split("\t") for r in sites.read_text().splitlines()]
    assert srows[0] == SITES_HEADER
    first = [r for r in srows[1:] if r[0] == "1"]
    second = [r for r in srows[1:] if r[0] == "2"]
    assert len(first) == 4 and len(second) == 4
    assert max(float(r[8]) for r in first) == pytest.approx(float(rows[1][3]), abs=1e-5)  # score = best site
    for r in first:  # the miRNA is one window; target windows of 40 nt inside the 4,000 nt
        assert (int(r[4]), int(r[5])) == (1, 22) and 1 <= int(r[6]) <= int(r[7]) <= 4000 and int(r[7]) - int(r[6]) == 39
    assert {int(r[4]) for r in second} <= set(range(1, 262))  # both long partners are scanned
    z = np.load(maps)
    assert z["pair1"].shape == (22, 4000) and z["pair2"].shape == (300, 1200)

    # a partner over 4,000 nt, or with a symbol that is no nucleotide: one line naming the record
    too_long = tmp_path / "too_long.tsv"
    too_long.write_text(f"m1\t{mir}\tt1\tACGUACGU\nm2\t{mir}\tlongutr\t{utr}A\n")
    p = resm_main("interact", too_long, "--model", bundle, "-o", tmp_path / "never.tsv", check=False)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "too_long.tsv line 2: b_seq of 'longutr' has 4001 nt, longer than the 4000 nt supported" in p.stderr
    bad = tmp_path / "bad.tsv"
    bad.write_text(f"m1\t{mir}\tt1\tACGUACGU\nm2\tACGU1ACG\tt2\t{utr[:500]}\n")
    p = resm_main("interact", bad, "--model", bundle, "-o", tmp_path / "never.tsv", check=False)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and "bad.tsv line 2" in p.stderr
    assert "m2" in p.stderr and not (tmp_path / "never.tsv").exists()


def test_expression_head_reads_utrs_to_4000_nt(tmp_path, tiny_ckpt, bundle):
    from resm.predict import predict_expression
    from resm.tasks.mrl import load_mrl_model, predict_mrl

    rng = np.random.default_rng(2)
    seqs = {"short": rand(rng, 50), "mid": rand(rng, 700), "long": rand(rng, 4000)}
    fa = tmp_path / "utrs.fa"
    fa.write_text("".join(f">{k}\n{v}\n" for k, v in seqs.items()))
    r = predict_expression(fa, bundle)
    assert r["names"] == list(seqs) and np.isfinite(r["pred"]).all()
    tm, head, entry, scheme = load_mrl_model(bundle)
    # one at a time = in a batch (the token cap splits batches; short UTRs read as before)
    alone = [predict_mrl(tm, scheme, [s], 5.0, 2.0, head=head)[0] for s in seqs.values()]
    np.testing.assert_allclose(r["pred"], alone, atol=1e-4)
    with torch.no_grad():
        from resm.tasks.base import encode_batch

        b = encode_batch([seqs["short"]], scheme)
        h = tm.encoder.backbone(b["tokens"], return_logits=False)["last_hidden"][:, 1:-1]
        ref = tm.heads[head](h, b["mask"]).item() * 2.0 + 5.0
    assert r["pred"][0] == pytest.approx(ref, abs=1e-4) and tm.encoder.window == 0
    fa.write_text(f">ok\n{seqs['short']}\n>huge\n{seqs['long']}AC\n")
    p = resm_main("predict", "--task", "mrl", fa, "--model", bundle, "-o", tmp_path / "never.tsv", check=False)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1
    assert "record 'huge' has 4002 nt, longer than the 4000 nt supported" in p.stderr
