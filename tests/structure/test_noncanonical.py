"""Non-canonical pairs (resm.structure.noncanonical): candidates, the scorer learning on a
synthetic set, the added pairs, the scorer stored in a structure model's file (and refused in
one line naming the file when inconsistent), ``resm fold --non-canonical`` writing pair lists
only, and exact evaluation numbers per view on a hand-made example."""

import numpy as np
import pytest
import torch

from resm.structure.datasets import reference_views, restrict, view_class
from resm.structure.io import FoldError, StructureError
from resm.structure.noncanonical import (
    KEY,
    NonCanonical,
    NonCanonicalConfig,
    NonCanonicalError,
    NonCanonicalScorer,
    add_pairs,
    candidate_pairs,
    labelled_arrays,
    n_features,
    pair_features,
    score_candidates,
)
from resm.structure.pairsets import PairRecord, PairSet, format_pair_list, parse_pair_list
from resm.tasks.noncanonical_scorer import TrainOptions, train_scorer


def partners_of(pairs, L):
    p = np.full(L, -1, dtype=np.int64)
    for i, j in pairs:
        p[i], p[j] = j, i
    return p


def test_candidates_are_non_canonical_pairs_and_second_partners():
    # G0-C7 decoded; A1, A2, G3, U4 free
    seq = "GAAGUAAC"
    part = partners_of([(0, 7)], 8)
    i, j = candidate_pairs(seq, part, NonCanonicalConfig())
    got = set(zip(i.tolist(), j.tolist()))
    assert (0, 7) not in got  # the decoded pair itself
    assert (3, 4) not in got  # G-U between two free bases: the canonical decoder's to make
    assert (1, 2) in got and (2, 3) in got  # A-A, A-G: non-canonical, adjacent bases allowed
    assert (0, 4) in got  # G-U with G already paired: a second partner (a multiplet)
    assert all(b - a >= 1 for a, b in got)
    i2, j2 = candidate_pairs(seq, part, NonCanonicalConfig(min_span=3, max_span=4))
    assert len(i2) < len(i) and set(zip(i2.tolist(), j2.tolist())) == {(a, b) for a, b in got if 3 <= b - a <= 4}
    # features: one row per candidate, of the documented width, the same by blocks
    cfg = NonCanonicalConfig(block=5)
    probs = (np.array([0]), np.array([7]), np.array([0.9], np.float32))
    a, b, f = pair_features(seq, part, probs, cfg)
    _, _, g = pair_features(seq, part, probs, NonCanonicalConfig())
    assert f.shape == (len(i), n_features(cfg)) and np.array_equal(f, g)
    assert np.isfinite(f).all()


CANONICAL = {("A", "U"), ("U", "A"), ("G", "C"), ("C", "G"), ("G", "U"), ("U", "G")}


def _brute_candidates(seq, part, cfg):
    """Today's candidates and the ``tertiary_canonical`` extras, by enumeration of every pair."""
    today, extra = set(), set()
    for i in range(len(seq)):
        for j in range(i + cfg.min_span, min(i + cfg.max_span, len(seq) - 1) + 1):
            if part[i] == j:
                continue
            canonical = (seq[i], seq[j]) in CANONICAL
            if not canonical or part[i] >= 0 or part[j] >= 0:
                today.add((i, j))
            else:
                extra.add((i, j))
    return today, extra


@pytest.mark.parametrize("spans", [(1, 200), (3, 9)])
def test_tertiary_canonical_candidates_are_exactly_canonical_pairs_between_unpaired_bases(spans):
    rng = np.random.default_rng(3)
    seq = "".join(rng.choice(list("ACGU"), 30))
    helix = [(2, 27), (3, 26), (4, 25), (10, 18), (11, 17), (5, 21)]  # (5, 21) crosses (10, 18)
    part = partners_of(helix, len(seq))
    lo, hi = spans
    off = NonCanonicalConfig(min_span=lo, max_span=hi)
    on = NonCanonicalConfig(min_span=lo, max_span=hi, tertiary_canonical=True)
    today, extra = _brute_candidates(seq, part, off)
    assert extra  # the random sequence has such pairs, so the check below can fail
    got_off = set(zip(*(x.tolist() for x in candidate_pairs(seq, part, off))))
    got_on = set(zip(*(x.tolist() for x in candidate_pairs(seq, part, on))))
    assert got_off == today  # the option off: exactly today's rule
    assert got_on - got_off == extra and got_off <= got_on
    # the extra feature column (the last) flags exactly the added candidates; the others are
    # today's features
    probs = (np.array([a for a, _ in helix]), np.array([b for _, b in helix]), np.full(len(helix), 0.8, np.float32))
    i0, j0, f0 = pair_features(seq, part, probs, off)
    i1, j1, f1 = pair_features(seq, part, probs, on)
    assert f1.shape == (len(i1), n_features(off) + 1) == (len(i1), n_features(on))
    flagged = {(a, b) for a, b, x in zip(i1.tolist(), j1.tolist(), f1[:, -1]) if x == 1.0}
    assert flagged == extra and set(np.unique(f1[:, -1]).tolist()) <= {0.0, 1.0}
    pos = {k: n for n, k in enumerate(zip(i1.tolist(), j1.tolist()))}
    rows = [pos[k] for k in zip(i0.tolist(), j0.tolist())]
    assert np.array_equal(f1[rows, :-1], f0)


def test_tertiary_canonical_setting_is_stored_old_payloads_load_off_and_bad_values_are_one_line():
    torch.manual_seed(0)
    seq = "GGGAAAGAAACCCUUAGCAUAGC"
    part = partners_of([(0, 12), (1, 11), (2, 10)], len(seq))
    on = NonCanonical(NonCanonicalScorer(NonCanonicalConfig(hidden=8, layers=1, tertiary_canonical=True)), 0.4)
    back = NonCanonical.from_payload(on.to_payload(), "m.pt")
    assert back.cfg.tertiary_canonical is True
    assert all(np.array_equal(x, y) for x, y in zip(*(score_candidates(n.scorer, seq, part, None) for n in (on, back))))
    # a payload written before the setting existed: no key, loads with the option off, scores alike
    off = NonCanonical(NonCanonicalScorer(NonCanonicalConfig(hidden=8, layers=1)), 0.4)
    old = off.to_payload()
    del old["config"]["tertiary_canonical"]
    loaded = NonCanonical.from_payload(old, "old.pt")
    assert loaded.cfg.tertiary_canonical is False and loaded.cfg == off.cfg
    a, b = (score_candidates(n.scorer, seq, part, None) for n in (off, loaded))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    for bad in ("yes", 1, None):
        d = on.to_payload()
        d["config"]["tertiary_canonical"] = bad
        with pytest.raises(NonCanonicalError) as e:
            NonCanonical.from_payload(d, "runs/m.pt")
        msg = str(e.value)
        assert msg.startswith("runs/m.pt: its non-canonical scorer is unusable: config: tertiary_canonical ")
        assert repr(bad) in msg and "\n" not in msg


def test_add_pairs_threshold_order_and_partner_cap():
    part = partners_of([(0, 9)], 10)
    i = np.array([0, 1, 2, 1, 3])
    j = np.array([5, 8, 8, 7, 4])
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.2])
    got = add_pairs(part, i, j, s, 0.5, 2)
    # best first: (0, 5) (base 0 now in 2 pairs), (1, 8), (2, 8) (base 8 in 2), (1, 7) (base 1
    # in 2); (3, 4) is below the threshold
    assert got.ij.tolist() == [[0, 5], [0, 9], [1, 7], [1, 8], [2, 8]]
    capped = add_pairs(part, i, j, s, 0.5, 1)
    assert capped.ij.tolist() == [[0, 9], [1, 8]]  # base 0 is full; base 8 then is too
    assert add_pairs(part, i, j, s, 0.95, 3).ij.tolist() == [[0, 9]]


def _synthetic(n, rng):
    """Random sequences with a decoded 5-pair helix and, in the reference, a G-A pair stacked
    inside it (the scorer must learn: G-A, stacked on a decoded pair)."""
    items = []
    comp = {"G": "C", "C": "G", "A": "U", "U": "A"}
    for _ in range(n):
        L = 40
        s = list(rng.choice(list("ACGU"), L))
        i0 = int(rng.integers(0, 8))
        j0 = L - 1 - int(rng.integers(0, 8))
        helix = [(i0 + d, j0 - d) for d in range(5)]
        for a, b in helix:
            s[b] = comp[s[a]]
        s[i0 + 5], s[j0 - 5] = "G", "A"
        seq = "".join(s)
        part = partners_of(helix, L)
        probs = (np.array([a for a, _ in helix]), np.array([b for _, b in helix]), np.full(5, 0.9, np.float32))
        ref = PairSet(np.array(helix + [(i0 + 5, j0 - 5)]), L)
        items.append((seq, part, probs, ref))
    return items


def test_scorer_learns_a_planted_pair():
    torch.set_num_threads(1)  # tiny matrices: more threads only wait for each other
    rng = np.random.default_rng(0)
    cfg = NonCanonicalConfig(hidden=16, members=2)
    train, held = _synthetic(30, rng), _synthetic(10, rng)
    X, y = labelled_arrays(train, cfg)
    assert y.sum() == 30  # each planted G-A is a candidate
    scorer, losses = train_scorer(X, y, cfg, TrainOptions(epochs=5, batch=1024, lr=5e-3))
    assert losses[-1] < 0.3 * losses[0]
    a, b = (m[0].weight for m in scorer.members)
    assert not torch.equal(a, b)  # each member trained on its own seed
    nc = NonCanonical(scorer, 0.5)
    found = 0
    for seq, part, probs, ref in held:
        got = nc.add(seq, part, probs)
        found += len(set(map(tuple, ref.ij.tolist())) & set(map(tuple, got.ij.tolist()))) - 5
        assert got.n_pairs <= 5 + 3  # few additions beyond the planted one
    assert found >= 8


def test_a_scorer_scores_on_its_own_device_and_in_its_own_dtype():
    """score_candidates hands the features to the scorer where its weights are: on their device
    (a scorer on the GPU was given CPU features, then .numpy() of a GPU tensor; the meta device
    stands in for the GPU here) and in their dtype (a bf16 scorer got float32 features:
    'mat1 and mat2 must have the same dtype')."""
    seq = "GGGAAAGAAACCCGAUAGCA"
    part = partners_of([(0, 12), (1, 11), (2, 10)], len(seq))
    cfg = NonCanonicalConfig(hidden=8, layers=1)
    torch.manual_seed(0)
    scorer = NonCanonicalScorer(cfg)
    i, j, s = score_candidates(scorer, seq, part, None)
    assert len(s) > 0
    half = NonCanonicalScorer(cfg)
    half.load_state_dict(scorer.state_dict())
    hi, hj, hs = score_candidates(half.to(torch.bfloat16), seq, part, None)
    assert np.array_equal(hi, i) and np.array_equal(hj, j) and hs.dtype == np.float32
    np.testing.assert_allclose(hs, s, atol=0.02)

    seen = []

    class Recording(NonCanonicalScorer):
        def forward(self, feats):
            seen.append((feats.device.type, feats.dtype))
            return torch.zeros(len(feats))

    score_candidates(Recording(cfg).to("meta"), seq, part, None)
    assert seen and set(seen) == {("meta", torch.float32)}


def test_scorer_round_trips_through_its_payload_and_refuses_inconsistent_ones():
    torch.manual_seed(0)
    cfg = NonCanonicalConfig(hidden=8, layers=1)
    nc = NonCanonical(NonCanonicalScorer(cfg), 0.4, {"note": "test"})
    seq = "GGGAAAGAAACCC"
    part = partners_of([(0, 12), (1, 11), (2, 10)], len(seq))
    back = NonCanonical.from_payload(nc.to_payload(), "m.pt")
    a = score_candidates(nc.scorer, seq, part, None)
    b = score_candidates(back.scorer, seq, part, None)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and back.threshold == 0.4

    def broken(**change):
        d = nc.to_payload()
        for k, v in change.items():
            if v is None:
                d.pop(k)
            else:
                d[k] = v
        return d

    state = nc.to_payload()["state"]
    cases = [
        ("not a dict", "is not a resm-non-canonical scorer"),
        (broken(format="x"), "is not a resm-non-canonical scorer"),
        (broken(version=9), "version 9"),
        (broken(state=None), "no state"),
        (broken(threshold=1.5), "threshold 1.5"),
        (broken(config={"hidden": 0, "layers": 1}), "hidden must be a positive integer"),
        (broken(config={**cfg.to_dict(), "colour": 1}), "unknown setting"),
        (broken(n_features=3), "trained on 3 features"),
        (broken(state={**state, "members.0.0.weight": torch.zeros(8, 2)}), "has shape (8, 2)"),
        (broken(state={k: v for k, v in state.items() if k != "members.0.0.bias"}), "do not match its config"),
        (broken(state={**state, "members.0.0.bias": torch.full((8,), float("nan"))}), "not finite"),
    ]
    for data, what in cases:
        with pytest.raises(NonCanonicalError) as e:
            NonCanonical.from_payload(data, "runs/m.pt")
        msg = str(e.value)
        assert msg.startswith("runs/m.pt: its non-canonical scorer is unusable: ") and what in msg, msg
        assert "\n" not in msg


def test_pair_list_round_trip_keeps_multiplets_and_bad_lines_name_the_line():
    rec = PairRecord("r1", "GGAAAAAAAACC", PairSet(np.array([[0, 11], [1, 10], [1, 5], [2, 9]]), 12))
    text = format_pair_list(rec)
    assert text.splitlines()[:3] == ["#Name: r1", "#Length: 12", "#Sequence: GGAAAAAAAACC"]
    back = parse_pair_list(text, "x.pairs")
    assert back.name == "r1" and back.seq == rec.seq and back.pairs == rec.pairs
    for bad, what in [("1 13", "outside the sequence"), ("4 4", "with itself"), ("1 2 3", "expected 2 columns")]:
        with pytest.raises(StructureError, match=r"^x.pairs line 4: ") as e:
            parse_pair_list("#Name: r\n#Length: 12\n1 12\n" + bad + "\n", "x.pairs")
        assert what in str(e.value)


def test_evaluation_per_view_is_exact_on_a_hand_made_example():
    from resm.structure.benchmark import _result

    # reference: G0-C11 and G1-C10 canonical; A2-A9, A3-A8 and G1-A5 (base 1 in two pairs) not
    seq = "GGAAAAAAAACC"
    rec = PairRecord("r", seq, PairSet(np.array([[0, 11], [1, 10], [2, 9], [3, 8], [1, 5]]), 12))
    resm = PairSet(np.array([[0, 11], [1, 10], [2, 9], [4, 7]]), 12)  # one right, one wrong A-A
    folder = partners_of([(0, 11)], 12)  # a classical folder: canonical pairs only
    views = reference_views("vl1", [rec], non_canonical=True)
    assert list(views) == ["vl1, canonical pairs", "vl1, all pairs", "vl1, non-canonical pairs"]
    assert [view_class(v) for v in views] == ["canonical", None, "non-canonical"]
    assert list(reference_views("vl1", [rec])) == ["vl1, canonical pairs", "vl1, all pairs"]
    assert restrict(folder, rec, "non-canonical").n_pairs == 0
    got = {
        label: _result(label, {"resm": [resm], "rnafold": [folder]}, true, {}, [rec])["methods"]
        for label, true in views.items()
    }
    expect = {  # (precision, recall, F1, pair ratio)
        "vl1, canonical pairs": {"resm": (1, 1, 1, 1), "rnafold": (1, 0.5, 2 / 3, 0.5)},
        "vl1, all pairs": {"resm": (3 / 4, 3 / 5, 2 / 3, 4 / 5), "rnafold": (1, 1 / 5, 1 / 3, 1 / 5)},
        "vl1, non-canonical pairs": {"resm": (1 / 2, 1 / 3, 2 / 5, 2 / 3), "rnafold": (0, 0, 0, 0)},
    }
    for label, methods in expect.items():
        for name, (p, r, f, ratio) in methods.items():
            m = got[label][name]
            assert (m["precision_mean"], m["recall_mean"], m["f1_mean"], m["pair_ratio"]) == pytest.approx(
                (p, r, f, ratio), abs=1e-12
            ), (label, name)


# ----------------------------------------------------------------------------- resm fold
@pytest.fixture(scope="module")
def nc_model(tmp_path_factory):
    """The shipped model with an (untrained, seeded) scorer stored in it at threshold 0.5."""
    from resm.structure.model import shipped_model_path
    from resm.structure.noncanonical import attach

    torch.manual_seed(1)
    nc = NonCanonical(NonCanonicalScorer(NonCanonicalConfig(hidden=16, layers=1)), 0.5)
    out = tmp_path_factory.mktemp("nc") / "structure_model.pt"
    attach(shipped_model_path(), nc, out)
    return out


@pytest.fixture
def plain(tmp_path):
    """The shipped model without its non-canonical scorer, as ``tmp_path/plain.pt``."""
    from resm.backbone.load import safe_load
    from resm.structure.model import save_structure_model, shipped_model_path

    data = safe_load(shipped_model_path())
    data.pop(KEY)
    return save_structure_model(data, tmp_path / "plain.pt")


SEQ = "GGGCGCAAGCCUAAGAGGCGGAAACGCCUGAGCGCCC"
TRNA = "GCGGAUUUAGCUCAGUUGGGAGAGCGCCAGACUGAAGAUCUGGAGGUCCUGUGUUCGAUCCACAGAAUUCGCACCA"


def test_fold_non_canonical_writes_added_pairs_as_a_pair_list(nc_model, tmp_path):
    from resm.structure.pipeline import FoldOptions, fold_fasta
    from resm.structure.predictor_loading import supervised_predictor

    fa = tmp_path / "in.fa"
    fa.write_text(f">s1\n{SEQ}\n")
    out = tmp_path / "s1.pairs"
    fold_fasta(fa, FoldOptions(model=nc_model, fmt="pairs", out=out, noncanonical=True, threads=1, progress=False))
    got = parse_pair_list(out.read_text(), "s1.pairs")
    pred = supervised_predictor(nc_model, workers=1)
    ((rec, P),) = list(pred.fold([("s1", SEQ)], progress=False))
    canonical = {(i, int(rec.pairs[i])) for i in range(len(SEQ)) if rec.pairs[i] > i}
    expect = pred.non_canonical_scorer().add(rec.seq, rec.pairs, P)
    assert got.pairs == expect and got.name == "s1"
    have = set(map(tuple, got.pairs.ij.tolist()))
    assert canonical < have  # the canonical structure is kept, pairs are added
    # without the switch the same model folds as before (its canonical structure)
    plain = tmp_path / "plain.pairs"
    fold_fasta(fa, FoldOptions(model=nc_model, fmt="pairs", out=plain, threads=1, progress=False))
    assert set(map(tuple, parse_pair_list(plain.read_text()).pairs.ij.tolist())) == canonical


def test_fold_non_canonical_split_dir_writes_one_pair_list_per_record(nc_model, tmp_path):
    from resm.structure.pipeline import FoldOptions, fold_fasta

    fa = tmp_path / "in.fa"
    fa.write_text(f">s1\n{SEQ}\n>s2\n{SEQ[::-1]}\n")
    out = tmp_path / "out"
    opts = FoldOptions(model=nc_model, fmt="pairs", split_dir=out, noncanonical=True, threads=1, progress=False)
    fold_fasta(fa, opts)
    assert sorted(p.name for p in out.iterdir()) == ["s1.pairs", "s2.pairs"]
    recs = [parse_pair_list((out / f"s{k}.pairs").read_text()) for k in (1, 2)]
    assert [r.name for r in recs] == ["s1", "s2"] and recs[1].seq == SEQ[::-1]


@pytest.mark.parametrize("fmt", ["dbn", "ct", "bpseq"])
def test_fold_non_canonical_refuses_formats_that_cannot_hold_it(nc_model, tmp_path, fmt):
    from resm.structure.pipeline import FoldOptions, fold_fasta

    fa = tmp_path / "in.fa"
    fa.write_text(f">s1\n{SEQ}\n")
    out = tmp_path / f"s1.{fmt}"
    with pytest.raises(FoldError) as e:
        fold_fasta(fa, FoldOptions(model=nc_model, fmt=fmt, out=out, noncanonical=True, threads=1, progress=False))
    assert str(e.value).startswith(f"--format {fmt} cannot hold") and "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fa"]


@pytest.mark.parametrize(
    "extra, flag",
    [({"mfe": True}, "--mfe"), ({"compare": "rnafold"}, "--compare"), ({"plot": "plots"}, "--plot")],
)
def test_fold_non_canonical_refuses_what_reads_one_partner_per_base(nc_model, tmp_path, extra, flag):
    from resm.structure.pipeline import FoldOptions, fold_fasta

    fa = tmp_path / "in.fa"
    fa.write_text(f">s1\n{SEQ}\n")
    extra = {k: (tmp_path / v if k == "plot" else v) for k, v in extra.items()}
    opts = FoldOptions(model=nc_model, fmt="pairs", out=tmp_path / "o.pairs", noncanonical=True, threads=1, **extra)
    with pytest.raises(FoldError, match=f"^{flag} reads one partner per base"):
        fold_fasta(fa, opts)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fa"]


def test_fold_non_canonical_needs_a_scorer_in_the_model_file(plain, tmp_path):
    from resm.structure.pipeline import FoldOptions, fold_fasta

    fa = tmp_path / "in.fa"
    fa.write_text(f">s1\n{SEQ}\n")
    with pytest.raises(FoldError) as e:
        fold_fasta(fa, FoldOptions(model=plain, fmt="pairs", out=tmp_path / "o.pairs", noncanonical=True, threads=1))
    assert str(e.value).startswith(f"structure model {plain}: has no non-canonical scorer") and "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fa", "plain.pt"]


def test_shipped_scorer_adds_pairs_to_the_trna_from_the_command_line(tmp_path):
    """The shipped model holds a scorer: ``resm fold --non-canonical --format pairs`` writes the
    canonical structure plus added pairs; dbn is refused in one line naming the format, with
    nothing written; ``--noncanonical`` is the same switch."""
    from tests.conftest import resm_cli, resm_main

    fa = tmp_path / "t.fa"
    fa.write_text(f">tRNA\n{TRNA}\n")
    out = tmp_path / "t.pairs"
    resm_cli("fold", fa, "--non-canonical", "--format", "pairs", "-o", out, "--threads", "1")
    got = parse_pair_list(out.read_text(), "t.pairs")
    resm_cli("fold", fa, "--format", "pairs", "-o", tmp_path / "c.pairs", "--threads", "1")
    canonical = parse_pair_list((tmp_path / "c.pairs").read_text(), "c.pairs")
    have, base = (set(map(tuple, r.pairs.ij.tolist())) for r in (got, canonical))
    assert base < have and got.pairs.multiplet_bases() + got.non_canonical().pairs.n_pairs > 0
    p = resm_main("fold", fa, "--noncanonical", "-o", tmp_path / "t.dbn", check=False)
    err = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(err) == 1 and "--format dbn cannot hold" in err[0]
    assert not (tmp_path / "t.dbn").exists()


def test_inconsistent_scorer_in_a_model_file_is_one_line_naming_it(nc_model, tmp_path):
    from resm.backbone.load import safe_load
    from resm.structure.model import save_structure_model
    from resm.structure.pipeline import FoldOptions, fold_fasta

    data = safe_load(nc_model)
    data[KEY]["n_features"] = 5
    bad = tmp_path / "bad.pt"
    save_structure_model(data, bad)
    fa = tmp_path / "in.fa"
    fa.write_text(f">s1\n{SEQ}\n")
    with pytest.raises(NonCanonicalError) as e:
        fold_fasta(fa, FoldOptions(model=bad, fmt="pairs", out=tmp_path / "o.pairs", noncanonical=True, threads=1))
    assert str(e.value).startswith(f"structure model {bad}: its non-canonical scorer is unusable: ")
    assert not (tmp_path / "o.pairs").exists()
    # the command line: one line naming the file, exit 1, nothing written
    from tests.conftest import resm_main

    p = resm_main("fold", fa, "--model", bad, "--non-canonical", "-o", tmp_path / "o.pairs", check=False)
    err = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(err) == 1 and str(bad) in err[0] and "trained on 5 features" in err[0]
    assert not (tmp_path / "o.pairs").exists()


def test_evaluate_non_canonical_adds_the_view_with_the_folders_rows(tmp_path):
    """``resm evaluate structure --non-canonical`` on a hand-made VL1: three views; RNAfold
    predicts no non-canonical pair (pair ratio 0.00 there)."""
    from tests.conftest import resm_cli, resm_main

    data = tmp_path / "data"
    (data / "ss" / "pdb").mkdir(parents=True)
    # r1: a tRNA-like hairpin with G-A and A-A pairs and a base triple; r2: no pairs at all
    (data / "ss" / "pdb" / "VL1.tsv").write_text(
        "id\tsequence\tpairs\n"
        "r1\tGGGCGCAAGCCUAAGAGGCGGAAACGCCUGAGCGCCC\t1:37 2:36 3:35 4:34 5:33 6:32 7:24 8:23 9:22 7:29\n"
        "r2\tACGUACGU\t\n"
    )
    out = tmp_path / "t.md"
    args = ["evaluate", "structure", "--model", "default", "--dataset", "vl1", "--data-dir", data]
    resm_cli(*args, "--folders", "rnafold", "--non-canonical", "--threads", "1", "--out", out)
    rows = [r.split(" | ") for r in out.read_text().splitlines() if r.startswith("| vl1, ") and " | 2 | " in r]
    views = [r[0][2:] for r in rows]
    assert views == ["vl1, canonical pairs"] * 2 + ["vl1, all pairs"] * 2 + ["vl1, non-canonical pairs"] * 2
    rnafold_nc = next(r for r in rows if r[0] == "| vl1, non-canonical pairs" and r[2] == "rnafold")
    assert rnafold_nc[7] == "0.00"  # pred/ref pairs
    # without the switch: the two views of before (in process: the first call ran the real entry point)
    resm_main(*args, "--folders", "rnafold", "--threads", "1", "--out", out)
    assert "non-canonical pairs" not in out.read_text()


def test_evaluate_non_canonical_without_a_scorer_is_one_line_before_any_work(plain, tmp_path):
    from tests.conftest import resm_main

    out = tmp_path / "t.md"
    p = resm_main(
        "evaluate", "structure", "--model", plain, "--dataset", "vl1", "--non-canonical", "--out", out, check=False
    )
    err = p.stderr.strip().splitlines()
    # (a classical folder that is not installed adds its own 'skipped folder' line first)
    assert p.returncode == 1 and f"{plain}: has no non-canonical scorer" in err[-1] and "Traceback" not in p.stderr
    assert not out.exists()
