"""Inference outside structure folding, checked index by index against brute-force
reimplementations on tiny randomly initialised models: the windowed scan of ``resm interact``
(every window pair scored on its own, the map stitched, the sites chosen and read), the
expression head on UTRs longer than the encoder window (windows anchored at the 3' end, next to
the start codon) and its variant-effect correlation, ``resm embed``'s arrays (nucleotide i is
token i + 1, layers as fair-esm numbers them, independent of batching), the scheme tables
``resm schemes --show`` prints, and one reading of unknown bases across fold, embed, interact and
predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resm.alphabet import pad_batch
from resm.nucleotides import rna_codes
from tests.conftest import random_backbone


def rand(rng, n, letters="ACGU"):
    return "".join(rng.choice(list(letters), n))


def _model(heads=("rri", "mrl"), rri_length=40):
    """A TaskModel (frozen tiny backbone) with an interaction and an expression head, and the
    manifest entries a bundle of it records."""
    from resm.backbone.encoder import BackboneEncoder
    from resm.heads.mrl import ExpressionHead, ExpressionHeadConfig, mrl_apply
    from resm.heads.rri import InteractionHead, InteractionHeadConfig, rri_apply
    from resm.tasks.base import TaskModel

    bb = random_backbone()
    torch.manual_seed(3)
    mods, apply, specs = {}, {}, {}
    if "rri" in heads:
        cfg = InteractionHeadConfig(
            embed_dim=bb.embed_dim, proj_dim=8, channels=8, blocks=1, dropout=0.0, max_length=rri_length
        )
        mods["rri"], apply["rri"] = InteractionHead(cfg), rri_apply
        with torch.no_grad():  # open the projections (they start at zero); pair logits of either sign
            for lin in (mods["rri"].proj_a, mods["rri"].proj_b):
                lin.weight.normal_(0, 0.5)
            mods["rri"].stem_pairs.normal_(0, 3.0)
            mods["rri"].pair_out.weight.normal_(0, 1.0)
            mods["rri"].pair_out.bias.fill_(3.0)
        specs["rri"] = {"task": "rri", "config": {k: v for k, v in cfg.to_dict().items() if k != "embed_dim"}}
    if "mrl" in heads:
        cfg = ExpressionHeadConfig(embed_dim=bb.embed_dim, hidden=8, anchor=4, dropout=0.0, max_length=30)
        mods["mrl"], apply["mrl"] = ExpressionHead(cfg), mrl_apply
        with torch.no_grad():
            mods["mrl"].anchor.normal_(0, 1.0)
        specs["mrl"] = {
            "task": "mrl",
            "config": {k: v for k, v in cfg.to_dict().items() if k != "embed_dim"},
            "extra": {"mean": 5.0, "std": 2.0},
        }
    for s in specs.values():
        s.setdefault("extra", {})
    return TaskModel(BackboneEncoder(bb, "frozen"), mods, apply).eval(), specs


# ------------------------------------------------------------------ resm interact: the scan
@torch.no_grad()
def _window(tm, scheme, seq, s, w):
    """seq[s:s+w]'s states, mask and nucleotide codes: the window's tokens cut from its partner
    mapped whole, run through the backbone alone (one window, no batch to share)."""
    n = min(w, len(seq))
    toks = pad_batch([scheme.encode(seq)[s : s + n]])
    h = tm.encoder.backbone(toks, return_logits=False)["last_hidden"][:, 1:-1]
    nuc = torch.from_numpy(rna_codes(seq)[s : s + n].astype(np.int64))[None]
    return h, torch.ones(1, n, dtype=torch.bool), nuc


@torch.no_grad()
def _window_pair(tm, a_window, b_window):
    """Logit and (wa, wb) pair logits of two windows (as _window gives them) through the head."""
    (ha, ma, na), (hb, mb, nb) = a_window, b_window
    r = tm.heads["rri"](ha, ma, hb, mb, na, nb)
    return float(r["logit"][0]), r["pair_logits"][0].numpy()


def _brute_scan(tm, scheme, a, b, w, stride, max_sites):
    """Score, stitched map and sites of the documented scan, written out plainly."""
    from resm.tasks.rri_sites import duplex_from_map

    def starts(n):  # every stride from 0 while the window stays inside, and one ending at the end
        if n <= w:
            return [0]
        s = [x for x in range(0, n, stride) if x + w < n]
        return s + [n - w]

    wa, wb = min(w, len(a)), min(w, len(b))
    # each window through the backbone once (it reads its window alone, whatever the partner)
    win_a = {x: _window(tm, scheme, a, x, w) for x in starts(len(a))}
    win_b = {y: _window(tm, scheme, b, y, w) for y in starts(len(b))}
    scored = [(*_window_pair(tm, win_a[x], win_b[y]), x, y) for x in win_a for y in win_b]
    full = np.zeros((len(a), len(b)))
    for _, pl, x, y in scored:
        for i in range(wa):
            for j in range(wb):
                full[x + i, y + j] = max(full[x + i, y + j], 1 / (1 + np.exp(-pl[i, j])))
    sites = []
    for _, pl, x, y in sorted(scored, key=lambda t: -t[0]):  # strongest first (a stable sort)
        site = (x + 1, x + wa, y + 1, y + wb)  # 1-based, inclusive
        if any(site[0] <= s[1] and s[0] <= site[1] and site[2] <= s[3] and s[2] <= site[3] for s, _ in sites):
            continue  # both windows overlap a stronger site's
        sites.append((site, [(x + i + 1, y + j + 1) for i, j in duplex_from_map(pl)]))
    best = max(t[0] for t in scored)
    return 1 / (1 + np.exp(-best)), full, sites[:max_sites], (len(starts(len(a))), len(starts(len(b))))


def test_head_pairs_are_the_best_antiparallel_chain_by_exhaustive_search():
    """duplex_from_map against every chain of pairs of logit > 0 with i increasing on a while j
    decreases on b (the antiparallel duplex), on random small maps, square and not."""
    from functools import cache

    from resm.tasks.rri_sites import duplex_from_map

    rng = np.random.default_rng(0)
    for _ in range(200):
        La, Lb = (int(x) for x in rng.integers(1, 7, 2))
        lg = rng.normal(-0.5, 1.5, (La, Lb))
        pos = [(i, j) for i in range(La) for j in range(Lb) if lg[i, j] > 0]

        @cache
        def best(i, j, lg=lg, pos=pos):  # the best chain of pairs (x, y) with x > i and y < j
            return max([lg[x, y] + best(x, y) for x, y in pos if x > i and y < j], default=0.0)

        chain = duplex_from_map(lg)
        assert all(lg[i, j] > 0 for i, j in chain)
        assert all(i1 < i2 and j1 > j2 for (i1, j1), (i2, j2) in zip(chain, chain[1:])), chain
        assert sum(lg[i, j] for i, j in chain) == pytest.approx(best(-1, Lb), abs=1e-9)


def _check_duplex(site, a, b):
    """The site's duplex, laid on a[duplex_a] and b[duplex_b] (1-based, inclusive), inside the
    site's windows: its brackets close in order, a's i (5' to 3') with b's j (3' to 5'), and every
    pair it makes is canonical."""
    if not site.duplex:
        return
    left, right = site.duplex.split("&")
    (a0, a1), (b0, b1) = site.duplex_a, site.duplex_b
    assert site.a_start <= a0 <= a1 <= site.a_end and site.b_start <= b0 <= b1 <= site.b_end
    assert (a1 - a0 + 1, b1 - b0 + 1) == (len(left), len(right))
    opened = [a0 + k for k, c in enumerate(left) if c == "("]
    closed = [b0 + k for k, c in enumerate(right) if c == ")"]
    assert len(opened) == len(closed) > 0 and set(left + right) <= set("().")
    for i, j in zip(opened, reversed(closed)):
        assert a[i - 1] + b[j - 1] in ("AU", "UA", "GC", "CG", "GU", "UG"), (site, i, j)


@pytest.mark.parametrize("scheme_name", ["kdny", "codon3"])
def test_scan_equals_a_brute_force_over_every_window_pair(scheme_name):
    """Score = best window pair's probability; the stitched map (i on a, j on b) = the largest
    window-pair probability covering (i, j); sites = the strongest window pairs not overlapping a
    stronger one on both partners, 1-based inclusive coordinates of the original partners, the
    head's pairs read from that window pair's map; the first, middle and last (tail) windows
    alike. Under codon3 a window's edge nucleotide keeps its triplet's letter: a window edge is
    no sequence end."""
    from resm.mapping import get_scheme
    from resm.tasks.rri_sites import ScanOptions, scan_pair

    tm, _ = _model(heads=("rri",))
    scheme = get_scheme(scheme_name)
    rng = np.random.default_rng(7)
    w = 12  # windows every stride from 0, and the tail's, ending at the partner's end
    # a in one window, b in several; the reverse; both in several; and (2 sites kept of 361 window
    # pairs, the strongest ones overlapping) a site whose map was let go of while the batches ran
    for la, lb, keep, stride in ((9, 31, 6, 5), (31, 9, 6, 5), (23, 28, 6, 5), (30, 30, 2, 1)):
        a, b = rand(rng, la), rand(rng, lb)
        opts = ScanOptions(window=w, stride=stride, max_sites=keep, batch_size=4, with_maps=True)
        r = scan_pair(tm, "rri", get_scheme(scheme_name), a, b, 40, opts)
        score, full, sites, n_windows = _brute_scan(tm, scheme, a, b, w, stride, keep)
        assert r.n_windows == n_windows and r.map.shape == (la, lb)
        assert r.score == pytest.approx(score, abs=1e-5)
        np.testing.assert_allclose(r.map, full, atol=1e-5)
        got = [((s.a_start, s.a_end, s.b_start, s.b_end), s.head_pairs) for s in r.sites]
        assert [g[0] for g in got] == [s[0] for s in sites]
        assert got == sites
        assert all(0 < len(hp) < min(w, la, lb) for _, hp in sites)  # chains, not every anti-diagonal
        for site in r.sites:  # the duplex's spans, read on the partners, pair as Watson-Crick or wobble
            _check_duplex(site, a, b)
        for n, st in zip((la, lb), r.starts):  # the tail's window ends at the partner's last nucleotide
            assert st[-1] + min(w, n) == n and all(y - x <= stride for x, y in zip(st, st[1:]))


# ------------------------------------------------------------------ resm predict --task mrl
@pytest.mark.parametrize("scheme_name", ["kdny", "codon3"])
@torch.no_grad()
def test_long_utrs_are_read_in_windows_anchored_at_the_3_end(monkeypatch, scheme_name):
    """A UTR longer than the encoder window: windows every half window from the 5' end and
    one ending at the 3' end, each nucleotide's state from the window whose centre is nearest,
    so the 3'-most nucleotides (next to the start codon, where the head's anchor reads) come
    from a window that ends where the UTR ends; a short UTR in the same batch reads whole. A
    window's tokens are cut from the UTR mapped whole (codon3: a window edge keeps its
    triplet's letter)."""
    import resm.tasks.mrl as M
    from resm.mapping import get_scheme

    tm, _ = _model(heads=("mrl",))
    scheme = get_scheme(scheme_name)
    W = 10
    monkeypatch.setattr(M, "ENCODER_WINDOW", W)
    rng = np.random.default_rng(11)
    seqs = [rand(rng, 27), rand(rng, 7), rand(rng, 10)]
    pred = M.predict_mrl(tm, scheme, seqs, 5.0, 2.0, batch_size=8)

    def states_of(ids):
        return tm.encoder.backbone(pad_batch([ids]), return_logits=False)["last_hidden"][0, 1:-1]

    n, ids = len(seqs[0]), scheme.encode(seqs[0])
    starts = [0, 5, 10, 15, n - W]  # the last one ends at the 3' end
    wins = [states_of(ids[s : s + W]) for s in starts]
    rows = []
    for p in range(n):
        k = int(np.argmin([abs(p - (s + (W - 1) / 2)) for s in starts]))  # the first on a tie
        rows.append(wins[k][p - starts[k]])
    states = [torch.stack(rows), states_of(scheme.encode(seqs[1])), states_of(scheme.encode(seqs[2]))]
    want = [float(tm.heads["mrl"](h[None], torch.ones(1, len(h), dtype=torch.bool))) * 2.0 + 5.0 for h in states]
    np.testing.assert_allclose(pred, want, atol=1e-5)


@torch.no_grad()
def test_the_expression_heads_read_the_3_end_of_each_utr():
    """The head's learnt weights for the last ``anchor`` positions meet each UTR's own 3'-most
    nucleotides (the last weight the last nucleotide), in a padded batch as alone, and a UTR
    shorter than the anchor fills its last weights only."""
    import torch.nn.functional as F

    tm, _ = _model(heads=("mrl",))
    head = tm.heads["mrl"]
    k, E = head.cfg.anchor, 32
    torch.manual_seed(0)
    lengths = [9, 2, 5, 4]
    h = torch.randn(len(lengths), max(lengths), E)
    mask = torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]
    got = head(h, mask)
    for b, n in enumerate(lengths):
        x = F.gelu(head.proj(head.norm(h[b, :n])))  # (n, hidden): the head's own layers, one UTR alone
        for conv in head.convs:
            x = x + F.gelu(conv(x.T[None])[0].T)
        tail = sum(head.anchor[k - 1 - j] * x[n - 1 - j] for j in range(min(k, n)))
        feats = torch.cat([x.mean(0), x.amax(0), tail])
        torch.testing.assert_close(got[b], head.out(feats)[0], atol=1e-5, rtol=0)
    # the Optimus baseline: a shorter UTR is right-aligned (zeros before its 5' end), so its 3'
    # end sits in the last columns, in a padded batch as alone
    from resm.heads.mrl import OptimusCNN, OptimusConfig

    cnn = OptimusCNN(OptimusConfig(length=12, filters=4, kernel=3, conv_layers=2, dense=5, dropout=0.0)).eval()
    rng = np.random.default_rng(4)
    seqs = [rand(rng, n, "ACGUN") for n in (12, 5, 9)]
    nuc = torch.full((3, 12), 4)
    for b, s in enumerate(seqs):
        nuc[b, : len(s)] = torch.from_numpy(rna_codes(s).astype(np.int64))
    got = cnn(nuc, nuc.new_tensor([[j < len(s) for j in range(12)] for s in seqs], dtype=torch.bool))
    for b, s in enumerate(seqs):
        onehot = torch.zeros(12, 4)
        for j, c in enumerate(s):
            if c != "N":
                onehot[12 - len(s) + j, "ACGU".index(c)] = 1.0
        torch.testing.assert_close(got[b], cnn.dense(cnn.convs(onehot.T[None]))[0, 0], atol=1e-6, rtol=0)


def test_variant_effects_correlate_each_variant_with_its_own_wild_type(tmp_path):
    """resm predict --task mrl --variants: the correlation of predicted with observed changes,
    each change a variant row minus the wild-type row its ``mother`` names."""
    from scipy.stats import pearsonr, spearmanr

    from resm.backbone.load import save_fair_esm
    from resm.mapping import get_scheme
    from resm.predict import predict_expression
    from resm.tasks.base import save_bundle
    from resm.tasks.mrl import predict_mrl

    tm, specs = _model(heads=("mrl",))
    save_fair_esm(tm.encoder.backbone, tmp_path / "tiny.pt")
    bundle = save_bundle(tmp_path / "model", tm, get_scheme("kdny"), str(tmp_path / "tiny.pt"), specs)
    rng = np.random.default_rng(5)
    wts = [rand(rng, 20) for _ in range(3)]
    rows, pairs = [], []  # (utr, hrl, id, kind, mother); the wild types come after some variants
    for k in range(7):
        m = k % 3
        var = wts[m][:k] + ("A" if wts[m][k] != "A" else "C") + wts[m][k + 1 :]
        rows.append((var, float(rng.normal(5, 1)), f"v{k}", "variant", wts[m]))
        pairs.append((len(rows) - 1, m))
    wt_rows = {}
    for m, s in enumerate(wts):
        rows.append((s, float(rng.normal(5, 1)), f"wt{m}", "normal", s))
        wt_rows[m] = len(rows) - 1
    rows.append((rand(rng, 20), 4.0, "orphan", "variant", rand(rng, 20)))  # no wild type: not a pair
    path = tmp_path / "snv.csv"
    path.write_text(
        ",utr,hrl,id,info4,mother\n" + "".join(f"{i},{','.join(map(str, r))}\n" for i, r in enumerate(rows))
    )
    r = predict_expression(path, bundle, variants=True)
    pred = predict_mrl(tm, get_scheme("kdny"), [s for s, *_ in rows], 5.0, 2.0)
    np.testing.assert_allclose(r["pred"], pred, atol=1e-5)
    obs = [rows[v][1] - rows[wt_rows[m]][1] for v, m in pairs]
    dp = [pred[v] - pred[wt_rows[m]] for v, m in pairs]
    assert r["variants"]["n_pairs"] == 7
    assert r["variants"]["spearman"] == pytest.approx(spearmanr(obs, dp).statistic, abs=1e-6)
    assert r["variants"]["pearson"] == pytest.approx(pearsonr(obs, dp).statistic, abs=1e-6)


# ------------------------------------------------------------------ resm embed
@torch.no_grad()
def test_embeddings_are_each_records_own_whatever_it_is_batched_with():
    """Nucleotide i is token i + 1 (BOS first, EOS dropped): at layer 0 its row is the
    embedding of the scheme's letter of nucleotide i; ``mean`` averages the nucleotides alone;
    layers -1 / -2 are fair-esm's (the last after the final LayerNorm); contacts are L x L; and
    a record's arrays do not depend on the records batched with it nor on the batch order."""
    from resm.embed import embed_records, map_records
    from resm.mapping import get_scheme

    bb = random_backbone(1)
    rng = np.random.default_rng(3)
    for name in ("kdny", "codon3"):
        scheme = get_scheme(name)
        seqs = [("r0", rand(rng, 9, "ACGUN")), ("r1", rand(rng, 30)), ("r2", "G"), ("r3", rand(rng, 17, "ACGUNR"))]
        recs = map_records(seqs, scheme)
        inc = ("mean", "per_tok", "bos", "contacts")
        together = embed_records(bb, recs, [-1, -2, 0], inc, 10_000, progress=False)  # one padded batch
        apart = embed_records(bb, recs[::-1], [2, 1, 0], inc, 1, progress=False)  # one record a batch
        assert set(together) == set(apart)
        for rid, seq in seqs:
            ids = scheme.encode(seq)
            n = len(seq)
            res = bb(pad_batch([ids]), repr_layers=[0, 1, 2], return_contacts=True, return_logits=False)
            for layer in (0, 1, 2):
                h = res["representations"][layer][0].numpy()
                for arrays in (together, apart):
                    np.testing.assert_allclose(arrays[f"{rid}/per_tok/{layer}"], h[1 : n + 1], atol=1e-5)
                    np.testing.assert_allclose(arrays[f"{rid}/mean/{layer}"], h[1 : n + 1].mean(0), atol=1e-5)
                    np.testing.assert_allclose(arrays[f"{rid}/bos/{layer}"], h[0], atol=1e-5)
            np.testing.assert_allclose(together[f"{rid}/per_tok/2"], res["last_hidden"][0, 1 : n + 1], atol=1e-5)
            emb = bb.embed_tokens.weight[torch.as_tensor(ids)].numpy() * (0.88 if bb.cfg.token_dropout else 1.0)
            np.testing.assert_allclose(together[f"{rid}/per_tok/0"], emb, atol=1e-5)  # row i: nucleotide i's letter
            for arrays in (together, apart):
                assert arrays[f"{rid}/contacts"].shape == (n, n)
                np.testing.assert_allclose(arrays[f"{rid}/contacts"], res["contacts"][0].numpy(), atol=1e-5)


# ------------------------------------------------------------------ the scheme tables
# NCBI translation table 1, codons in TCAG order (first base slowest): the reference the
# codon3 table is held to.
NCBI_TABLE_1 = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"


def test_scheme_tables_as_shown_are_the_mapping():
    """Every table ``resm schemes --show`` prints is what the mapping does (read back from the
    printed text); the listed hashes are the schemes'; codon3 is the standard genetic code
    (stop -> Z) on the centred triplet, with the fallback letter at both ends and next to an
    unknown base, and the unknown letter for an unknown centre."""
    import itertools
    import re

    from resm.alphabet import ALPHABET
    from resm.mapping import get_scheme, list_schemes
    from resm.nucleotides import normalise as resm_normalise
    from tests.conftest import resm_main

    header, *rows = resm_main("schemes").stdout.splitlines()
    assert header.split() == ["scheme", "kind", "table", "hash", "description"]  # its columns named
    listed = {ln.split()[0]: ln.split()[2] for ln in rows}
    assert set(listed) == set(list_schemes())
    for name in list_schemes():
        s = get_scheme(name)
        assert s.table_hash.startswith(listed[name])
        shown = resm_main("schemes", "--show", name).stdout
        if s.kind == "letter":
            table = dict(re.findall(r"^  ([ACGU]) -> (\S)$", shown, re.M))
            assert len(table) == 4 and s.to_protein("ACGU") == "".join(table[n] for n in "ACGU")
            unknown = re.search(r"any unknown base .* -> (\S)$", shown, re.M).group(1)
            assert s.to_protein("NRYIPXnrykmsw") == unknown * 13
            rng = np.random.default_rng(1)
            for _ in range(20):  # and back: letters -> RNA, the unknown letter -> N
                seq = rand(rng, 15, "ACGUTNRYacgut")
                assert s.to_rna(s.to_protein(seq)) == s.decode(s.encode(seq)) == resm_normalise(seq)
        elif s.kind == "context":
            table = shown.split("Triplet -> letter")[1].split("Example")[0]
            triplets = dict(re.findall(r"([ACGU]{3}) ([A-Z])\b", table))
            assert len(triplets) == 64
            for k, (x, y, z) in enumerate(itertools.product("UCAG", repeat=3)):
                assert triplets[x + y + z] == NCBI_TABLE_1[k].replace("*", "Z")
                assert s.to_protein(x + y + z)[1] == triplets[x + y + z]  # the centre base's letter
    c, fb = get_scheme("codon3"), get_scheme("kdny")
    rng = np.random.default_rng(0)
    for _ in range(50):
        seq = rand(rng, int(rng.integers(1, 12)), "ACGUN")
        want = []
        for i, base in enumerate(seq):
            left, right = seq[i - 1 : i], seq[i + 1 : i + 2]
            if base == "N":
                want.append("X")
            elif len(left + right) < 2 or "N" in left + right:  # an end, or an unknown neighbour
                want.append(fb.to_protein(base))
            else:
                k = 16 * "UCAG".index(left) + 4 * "UCAG".index(base) + "UCAG".index(right)
                want.append(NCBI_TABLE_1[k].replace("*", "Z"))
        assert c.to_protein(seq) == "".join(want), seq
    assert ALPHABET.all_toks[c.unknown_id] == "X"


# ------------------------------------------------------------------ unknown bases, every command
def test_every_command_reads_a_sequence_as_its_normal_form(tmp_path):
    """Case, T for U, the IUPAC ambiguity codes and the modified-base letters (all the unknown
    base N): fold, embed, interact (score, map, sites) and predict (mrl) give the same numbers
    for a raw sequence as for its normal form, and write the normal form."""
    import resm
    from resm.backbone.load import save_fair_esm
    from resm.mapping import get_scheme
    from resm.predict import interact, predict_expression
    from resm.tasks.base import save_bundle
    from resm.tasks.rri_sites import ScanOptions

    raw_a = "acgtRYSWKMBDHVNIPXggcaUUT"
    raw_b = "GGACUUCGGUCCacgtnnAGCUAGCUAGGCUAGCAUCGAUCGAUUAGCyr"
    norm_a, norm_b = resm.nucleotides.normalise(raw_a), resm.nucleotides.normalise(raw_b)
    assert norm_a == "ACGUNNNNNNNNNNNNNNGGCAUUU" and norm_b.endswith("UUAGCNN")

    folder = resm.load_predictor("default", device="cpu")
    (s_raw, p_raw), (s_norm, p_norm) = folder.fold({"r": raw_b, "n": norm_b}, progress=False)
    assert s_raw.seq == norm_b and np.array_equal(s_raw.pairs, s_norm.pairs)
    np.testing.assert_allclose(np.asarray(p_raw), np.asarray(p_norm), atol=1e-6)

    tm, specs = _model()
    save_fair_esm(tm.encoder.backbone, tmp_path / "tiny.pt")
    for name in ("kdny", "codon3"):
        arrays, _ = resm.embed_sequences(
            tm.encoder.backbone, {"raw": raw_a, "norm": norm_a}, include=["per_tok", "contacts"], scheme=name
        )
        np.testing.assert_allclose(arrays["raw/per_tok/2"], arrays["norm/per_tok/2"], atol=1e-6)
        np.testing.assert_allclose(arrays["raw/contacts"], arrays["norm/contacts"], atol=1e-6)

    bundle = save_bundle(tmp_path / "model", tm, get_scheme("kdny"), str(tmp_path / "tiny.pt"), specs)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(f"a_name\ta_seq\tb_name\tb_seq\nx\t{raw_a}\ty\t{raw_b}\nx\t{norm_a}\ty\t{norm_b}\n")
    scan = ScanOptions(window=16, stride=7)
    r = interact(pairs, bundle, maps=tmp_path / "m.npz", sites=tmp_path / "s.tsv", scan=scan)
    assert r["scores"][0] == pytest.approx(r["scores"][1], abs=1e-6) and [p.b for p in r["pairs"]] == [norm_b] * 2
    z = np.load(tmp_path / "m.npz")
    np.testing.assert_allclose(z["pair1"], z["pair2"], atol=1e-3)  # float16
    rows = [ln.split("\t") for ln in (tmp_path / "s.tsv").read_text().splitlines()[1:]]
    sites = [[x[3:8] + x[9:] for x in rows if x[0] == k] for k in "12"]  # all but the probability
    assert sites[0] == sites[1] and len(sites[0]) > 1
    for rank, (row, site) in enumerate(zip([x for x in rows if x[0] == "2"], r["scans"][1].sites, strict=True), 1):
        assert row[:8] == ["2", "x", "y", str(rank), *map(str, (site.a_start, site.a_end, site.b_start, site.b_end))]
        assert float(row[8]) == pytest.approx(site.prob, rel=1e-5) and row[13] == (site.duplex or "-")
        assert row[9:13] == [str(v) if v else "" for v in (*site.duplex_a, *site.duplex_b)]
        assert row[15] == (";".join(f"{i}-{j}" for i, j in site.head_pairs) or "-")

    fa = tmp_path / "utrs.fa"
    fa.write_text(f">raw\n{raw_b}\n>norm\n{norm_b}\n")
    pred = predict_expression(fa, bundle)["pred"]
    assert pred[0] == pytest.approx(pred[1], abs=1e-6)
