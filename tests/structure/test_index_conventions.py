"""One rule for which pairs may form, held by every module that lists or makes pairs.

A pair (i, j), 0-based with i < j, may form when ``j - i > 3`` (at least three unpaired bases
close a hairpin) and its bases are A-U, G-C or G-U in either order (T read as U, either case);
the unknown base (N, IUPAC codes, gaps) never pairs. Written out here from that definition, the
rule is checked against the decoder's candidates (:func:`resm.structure.decode.candidate_pairs`),
the pair head's candidates and stacking flags (:func:`resm.heads.pairs.candidates`), the 2-D
head's valid cells and loss cells (:func:`resm.heads.pair_map.valid_pair_mask`), the probe's
sampled cells (:func:`resm.structure.probe.sample_pairs`), the Turner-corrected ensemble's pairs
(:func:`resm.structure.decode.turner_ensemble`), and the pairs of every classical folder and
every prior, on sequences that put pairs at the hairpin boundary (j - i = 3 and 4).
"""

from __future__ import annotations

import numpy as np
import pytest

from resm.structure.decode import candidate_pairs, turner_ensemble
from resm.structure.folders import FOLDERS, FolderUnavailable, fold_with

CANONICAL = {("A", "U"), ("U", "A"), ("G", "C"), ("C", "G"), ("G", "U"), ("U", "G")}


def may_pair(seq: str, i: int, j: int) -> bool:
    """The rule, from its definition."""
    a, b = (seq[i].upper().replace("T", "U"), seq[j].upper().replace("T", "U"))
    return j - i > 3 and (a, b) in CANONICAL


def allowed(seq: str) -> set[tuple[int, int]]:
    return {(i, j) for i in range(len(seq)) for j in range(i + 1, len(seq)) if may_pair(seq, i, j)}


def sequences(n: int = 40, seed: int = 0) -> list[str]:
    """Random sequences (with unknown bases, lower case and T) and hairpins whose loops are
    three and two nucleotides long, so that the boundary j - i = 4 / 3 is met."""
    rng = np.random.default_rng(seed)
    out = ["GGGGAAACCCC", "GGGGAACCCC", "GCGCUUUGCGC", "GGGAUCCC", "GGAAAUCC", "GAAAC", "GAAC", "G", ""]
    for _ in range(n):
        L = int(rng.integers(5, 45))
        out.append("".join(rng.choice(list("ACGUacgtNR-"), L, p=[0.2] * 4 + [0.2 / 7] * 7)))
    return out


def pairs_of(partners: np.ndarray) -> set[tuple[int, int]]:
    i = np.flatnonzero(partners > np.arange(len(partners)))
    return set(zip(i.tolist(), partners[i].tolist()))


def test_the_decoders_candidates_are_the_rule():
    for seq in sequences():
        L = len(seq)
        i, j, _ = candidate_pairs(np.ones((L, L)), seq, threshold=0.0)
        assert set(zip(i.tolist(), j.tolist())) == allowed(seq), seq
        # without the canonical filter only the hairpin rule is left
        i, j, _ = candidate_pairs(np.ones((L, L)), None, threshold=0.0, noncanonical=True)
        assert set(zip(i.tolist(), j.tolist())) == {(a, b) for a in range(L) for b in range(a + 4, L)}


def test_the_pair_heads_candidates_and_stacking_flags_follow_the_rule():
    from resm.heads.pairs import PairHeadConfig, candidates
    from resm.structure.priors import SparsePairs

    cfg = PairHeadConfig(min_prob=0.1)
    for seq in sequences():
        L = len(seq)
        if L < 2:
            continue
        every = np.array([(a, b) for a in range(L) for b in range(a + 1, L)], dtype=np.int64).reshape(-1, 2)
        prior = SparsePairs(L, every[:, 0], every[:, 1], np.full(len(every), 0.5, np.float32))
        c = candidates(seq, [prior], cfg)
        got = list(zip(c.i.tolist(), c.j.tolist()))
        assert set(got) == allowed(seq), seq
        # the head's stacking neighbours: (i - d, j + d) outside and (i + d, j - d) inside, d = 1..3,
        # flagged 1 exactly when they may pair (columns after the prior's patch and row features)
        flags = c.feats[:, -9:-3]
        for k, (a, b) in enumerate(got):
            want = [float(a - d >= 0 and b + d < L and may_pair(seq, a - d, b + d)) for d in (1, 2, 3)]
            want_in = [float(a + d < b - d and may_pair(seq, a + d, b - d)) for d in (1, 2, 3)]
            assert flags[k].tolist() == [x for pair in zip(want, want_in) for x in pair], (seq, a, b)
            # and the indices of the stacked candidates point at them
            for idx, (x, y) in ((c.outer[k], (a - 1, b + 1)), (c.inner[k], (a + 1, b - 1))):
                assert (idx >= 0) == ((x, y) in set(got)) and (idx < 0 or got[idx] == (x, y))


def test_the_2d_heads_cells_and_the_probes_samples_follow_the_hairpin_rule():
    import torch

    from resm.heads.pair_map import valid_pair_mask
    from resm.structure.probe import sample_pairs

    L = 12
    mask = torch.ones(1, L, dtype=torch.bool)
    mask_short = mask.clone()
    mask_short[0, 9:] = False  # a sequence of 9 in a batch padded to 12
    for m, n in ((mask, L), (mask_short, 9)):
        upper = valid_pair_mask(m, 3, upper=True)[0]
        both = valid_pair_mask(m, 3)[0]
        want = {(a, b) for a in range(n) for b in range(a + 4, n)}
        assert set(map(tuple, torch.nonzero(upper).tolist())) == want
        assert set(map(tuple, torch.nonzero(both).tolist())) == want | {(b, a) for a, b in want}
        # a tile's offsets give the same cells as the whole map
        tile = valid_pair_mask(m[:, 2:7], 3, row_offset=2, col_offset=5, col_mask=m[:, 5:12])[0]
        assert torch.equal(tile, both[2:7, 5:12])
    partners = np.full(L, -1)
    for a, b in ((0, 3), (1, 5), (6, 11)):  # j - i = 3 is no sample, 4 and 5 are positives
        partners[a], partners[b] = b, a
    index, label = sample_pairs(partners, 10_000, np.random.default_rng(0), min_sep=3)
    cells = list(map(tuple, index.tolist()))
    assert len(set(cells)) == len(cells) and set(cells) == {(a, b) for a in range(L) for b in range(a + 4, L)}
    assert {c for c, y in zip(cells, label) if y} == {(1, 5), (6, 11)}


def test_the_turner_ensemble_pairs_follow_the_rule():
    for seq in sequences(12, seed=1):
        if not seq:
            continue
        mfe, (i, j, p) = turner_ensemble(seq, None)
        assert set(zip(i.tolist(), j.tolist())) <= allowed(seq), seq
        assert pairs_of(mfe) <= allowed(seq)
        assert np.all((p > 1e-3) & (p <= 1 + 1e-9))


@pytest.mark.parametrize("name", list(FOLDERS))
def test_every_classical_folders_pairs_follow_the_rule(name):
    try:
        FOLDERS[name].check()
    except FolderUnavailable as e:
        pytest.skip(str(e))
    for seq in sequences():
        assert pairs_of(fold_with(name, seq)) <= allowed(seq), (name, seq)


def test_every_priors_pairs_that_become_candidates_follow_the_rule():
    """A prior may list any pair (the pair head keeps the allowed ones), but its indices are
    0-based: every strong prior pair of a hairpin is a pair of the hairpin itself."""
    from resm.structure.priors import PRIOR_KINDS, PriorConfig, pair_prior

    seq = "GGGGCGCAAAAGCGCCCC"  # a stem of 7 closing a 4-nt loop (j - i = 5 for the innermost pair)
    stem = {(k, len(seq) - 1 - k) for k in range(7)}
    for kind in PRIOR_KINDS:
        try:
            sp = pair_prior(seq, PriorConfig(kind=kind))
        except FolderUnavailable as e:
            pytest.skip(str(e))
        strong = {(a, b) for a, b, q in zip(sp.i.tolist(), sp.j.tolist(), sp.p.tolist()) if q > 0.5}
        assert strong and strong <= stem and strong <= allowed(seq), (kind, sorted(strong))


@pytest.mark.parametrize("min_loop", [1, 2, 3, 5])
def test_a_2d_heads_model_decodes_with_its_own_min_loop(min_loop):
    """A 2-D head masks the pairs with j - i <= its ``min_loop`` and learns the others; its
    predictor decodes exactly those (the greedy decoding at the stored threshold, ``fold`` and
    ``decode`` alike), not the default 3."""
    from resm.heads.pair_map import StructureHead, StructureHeadConfig
    from resm.mapping import get_scheme
    from resm.structure.model import StructureModel
    from resm.structure.predictor import MapPredictor
    from tests.conftest import random_backbone

    head = StructureHead(StructureHeadConfig(embed_dim=32, channels=8, blocks=1, min_loop=min_loop))
    model = StructureModel(random_backbone(), head)
    pred = MapPredictor.for_model(model, {"threshold": 0.5}, get_scheme("kdny"))
    seq = "GCGAUAUCGCAAAAAAAA"  # G-C at j - i = 9, 7, 5, 3 and A-U at j - i = 1 (0-based: (0, 9), (1, 8)...)
    P = np.zeros((len(seq), len(seq)))
    for a, b in ((0, 9), (1, 8), (2, 7), (3, 6), (4, 5)):
        P[a, b] = P[b, a] = 0.9
    want = {(a, b) for a, b in ((0, 9), (1, 8), (2, 7), (3, 6), (4, 5)) if b - a > min_loop}
    assert pairs_of(pred.decode(P, seq)) == want
    pred.pair_probs = lambda s: P
    assert pairs_of(pred.fold_one(seq).pairs) == want


def test_a_2d_heads_validation_and_threshold_choice_score_its_own_pairs():
    """The conv kind's validation figures and its threshold choice decode the pairs the head
    scores (j - i above its ``min_loop``): a head of min_loop 2, sure of its true pair 3 apart
    (0.9) and less sure of a false one (0.62), scores F1 1 from the threshold that drops the
    false pair (0.65: the lowest of the grid's best); of min_loop 3, the true pair cannot form."""
    from types import SimpleNamespace

    from resm.heads.pair_map import StructureHeadConfig
    from resm.mapping import get_scheme
    from resm.tasks.structure_heads import MapKind

    seq = "GAACGAAAAC"
    true = np.full(len(seq), -1)
    true[0], true[3] = 3, 0
    P = np.full((len(seq), len(seq)), 0.01)
    P[0, 3] = P[3, 0] = 0.9
    P[4, 9] = P[9, 4] = 0.62  # G-C, 5 apart: false
    item = SimpleNamespace(seq=seq, pairs=true)
    for min_loop, f1, threshold in ((2, 1.0, 0.65), (3, 0.0, 0.05)):
        task = SimpleNamespace(
            val_records=[item], scheme=get_scheme("kdny"), head_cfg=StructureHeadConfig(embed_dim=32, min_loop=min_loop)
        )
        kind = MapKind(task)
        kind.predictions = lambda net, device, rank=0, world=1: ([P], [item], 0.0, 1)
        assert kind.validate(None, "cpu")["val_f1"] == pytest.approx(2 / 3 if min_loop == 2 else 0.0)  # at 0.5
        settings: dict = {}
        kind.choose(None, "cpu", settings)
        assert settings["threshold"] == pytest.approx(threshold) and settings["val_metrics"]["f1_mean"] == f1
