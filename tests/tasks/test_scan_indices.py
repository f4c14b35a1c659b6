"""`resm interact`'s long-partner scan, correct to the last index: the window starts (the last
window ends exactly at the partner's 3' end) for partners of W - 1, W, W + 1 and 2W - 1 nt under
--window/--stride, the --sites table (1-based, inclusive, in partner coordinates: the window
pair, ViennaRNA's duplex spans and the head's pair chain, i on the first partner and j on the
second) and the --maps arrays (shape (len(a), len(b)), a planted pair at its own cell).

The head is a stand-in whose answer is known: its pair logit is +10 where a G of the first
partner meets a C of the second and -10 elsewhere, and its interaction logit is the number of
such cells in the window pair (so the best window pair is the first one holding the whole
planted G x C block). The encoder is a tiny random ESM-2; the scan, the table and the map are
resm's own code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from resm.backbone.encoder import BackboneEncoder
from resm.heads.pair_map import NEG_LOGIT
from resm.heads.rri import rri_apply
from resm.mapping import get_scheme
from resm.predict import SITES_HEADER
from resm.tasks.base import TaskModel
from resm.tasks.rri_sites import ScanOptions, scan_pair, window_starts
from tests.conftest import random_backbone, resm_main

SCHEME = get_scheme("kdny")
G, C = 2, 1  # nucleotide codes of resm.nucleotides (A C G U -> 0 1 2 3)
MAX_LENGTH = 16  # the stand-in head's training length: the default window
HELIX = 5  # the planted G-run on a, C-run on b


class PlantedHead(nn.Module):
    """Pair logit +10 at every (G on a, C on b) cell, -10 elsewhere (NEG_LOGIT at padding);
    interaction logit: the number of such cells."""

    def forward(self, ha, ma, hb, mb, nuca=None, nucb=None):
        hit = (nuca == G)[:, :, None] & (nucb == C)[:, None, :]
        m2 = ma[:, :, None] & mb[:, None, :]
        pl = torch.where(hit, 10.0, -10.0).masked_fill(~m2, NEG_LOGIT)
        return {"logit": (hit & m2).flatten(1).sum(1).float(), "pair_logits": pl}


@pytest.fixture(scope="module")
def model():
    return TaskModel(BackboneEncoder(random_backbone(4), "frozen"), {"rri": PlantedHead()}, {"rri": rri_apply}).eval()


def planted(n: int, at: int, letter: str) -> str:
    """n nt of A with a run of HELIX ``letter`` starting at 0-based ``at``."""
    return "A" * at + letter * HELIX + "A" * (n - at - HELIX)


def test_window_starts_at_the_boundary_lengths():
    """Starts every stride from 0, the last one moved back to end at n exactly (never past it,
    never one short), and a partner no longer than the window is one window."""
    W = 16
    expected = {
        (W - 1, 8): [0],
        (W, 8): [0],
        (W + 1, 8): [0, 1],
        (2 * W - 1, 8): [0, 8, 15],
        (2 * W, 8): [0, 8, 16],  # n - W a multiple of the stride: no repeated last window
        (W + 1, 16): [0, 1],
        (2 * W - 1, 16): [0, 15],
        (2 * W, 16): [0, 16],
        (2 * W - 1, 5): [0, 5, 10, 15],
        (2 * W - 1, 1): list(range(16)),
        (W + 1, 1): [0, 1],
    }
    for (n, stride), starts in expected.items():
        got = window_starts(n, W, stride)
        assert got == starts, (n, stride)
        assert got[-1] + min(W, n) == n  # the last window ends at the 3' end


@pytest.mark.parametrize("stride", [0, 5, 16])
def test_planted_helix_at_the_3_ends_is_found_index_by_index(model, stride):
    """Partners of W - 1, W, W + 1 and 2W - 1 nt each way, the helix at both 3' ends: the scan's
    windows, the best site's coordinates, its head pair chain and the stitched map, cell by cell."""
    W = MAX_LENGTH
    opts = ScanOptions(window=W, stride=stride, max_sites=3, batch_size=5, with_maps=True)
    step = stride or W // 2
    for la in (W - 1, W, W + 1, 2 * W - 1):
        for lb in (W - 1, W, W + 1, 2 * W - 1):
            a, b = planted(la, la - HELIX, "G"), planted(lb, lb - HELIX, "C")
            r = scan_pair(model, "rri", SCHEME, a, b, MAX_LENGTH, opts)
            sa, sb = window_starts(la, W, step), window_starts(lb, W, step)
            assert r.starts == (sa, sb) and r.n_windows == (len(sa), len(sb))
            wa, wb = min(W, la), min(W, lb)
            # every window pair's logit: the G x C cells inside it, counted here from the strings
            cells = np.array([[a[x : x + wa].count("G") * b[y : y + wb].count("C") for y in sb] for x in sa])
            np.testing.assert_array_equal(r.logits, cells)
            # the best window pair is the first (in a-major order) holding all HELIX x HELIX cells:
            # only the last windows reach the 3' ends
            assert r.logits.max() == HELIX * HELIX
            top = r.sites[0]
            assert (top.a_start, top.a_end, top.b_start, top.b_end) == (la - wa + 1, la, lb - wb + 1, lb)
            # the head's chain: antiparallel, i on a (1-based), j on b, ending at both 3' ends' ...
            assert top.head_pairs == [(la - HELIX + 1 + k, lb - k) for k in range(HELIX)]
            # ... and the map: (len(a), len(b)), the planted block and nothing else above 0.5
            assert r.map.shape == (la, lb)
            hot = {(int(i), int(j)) for i, j in np.argwhere(r.map > 0.5)}
            assert hot == {(i, j) for i in range(la - HELIX, la) for j in range(lb - HELIX, lb)}
            assert (r.map > 0).all()  # every cell lies in some window
            # every site is a window pair: starts from the window starts, ends start + w - 1
            for s in r.sites:
                assert s.a_start - 1 in sa and s.a_end == s.a_start + wa - 1
                assert s.b_start - 1 in sb and s.b_end == s.b_start + wb - 1


def test_planted_helix_in_the_middle_lands_in_its_cells(model):
    """A helix off the windows' edges: the best site is the first window pair holding it, its
    duplex spans (ViennaRNA) and head chain sit on the planted nucleotides, and the map's hot
    cells are exactly the planted block."""
    W, la, lb, pa, pb = MAX_LENGTH, 2 * MAX_LENGTH - 1, 2 * MAX_LENGTH + 3, 9, 20  # 0-based helix starts
    a, b = planted(la, pa, "G"), planted(lb, pb, "C")
    r = scan_pair(model, "rri", SCHEME, a, b, MAX_LENGTH, ScanOptions(window=W, stride=4, with_maps=True))
    sa, sb = window_starts(la, W, 4), window_starts(lb, W, 4)
    first_a = next(x for x in sa if x <= pa and pa + HELIX <= x + W)
    first_b = next(y for y in sb if y <= pb and pb + HELIX <= y + W)
    top = r.sites[0]
    assert (top.a_start, top.a_end, top.b_start, top.b_end) == (first_a + 1, first_a + W, first_b + 1, first_b + W)
    assert top.head_pairs == [(pa + 1 + k, pb + HELIX - k) for k in range(HELIX)]
    left, right = top.duplex.split("&")
    assert left.strip(".") == "(" * HELIX and right.strip(".") == ")" * HELIX
    assert top.duplex_a[0] + left.index("(") == pa + 1 and top.duplex_a[0] + left.rindex("(") == pa + HELIX
    assert top.duplex_b[0] + right.index(")") == pb + 1 and top.duplex_b[0] + right.rindex(")") == pb + HELIX
    assert top.duplex_a[1] - top.duplex_a[0] + 1 == len(left) and top.duplex_b[1] - top.duplex_b[0] + 1 == len(right)
    hot = {(int(i), int(j)) for i, j in np.argwhere(r.map > 0.5)}
    assert hot == {(i, j) for i in range(pa, pa + HELIX) for j in range(pb, pb + HELIX)}


def test_interact_writes_the_planted_answer(model, tmp_path, monkeypatch):
    """`resm interact --window --stride --sites --maps` (in process, the rri bundle's loader
    handing out the stand-in model): the sites table's columns and the .npz maps, per pair, for
    partners of W - 1, W, W + 1 and 2W - 1 nt (short pairs go through the batched path)."""
    import resm.tasks.rri as rri

    W = MAX_LENGTH
    monkeypatch.setattr(
        rri, "load_rri_model", lambda *a, **k: (model, "rri", {"config": {"max_length": MAX_LENGTH}}, SCHEME)
    )
    cases = [(W - 1, W), (W, W - 1), (W + 1, 2 * W - 1), (2 * W - 1, W + 1), (W - 1, 2 * W - 1)]
    rows, plants = [], []
    for k, (la, lb) in enumerate(cases):
        pa, pb = (3 * k) % (la - HELIX + 1), (5 * k + 2) % (lb - HELIX + 1)
        plants.append((la, lb, pa, pb))
        rows.append(f"a{k}\t{planted(la, pa, 'G')}\tb{k}\t{planted(lb, pb, 'C')}")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("a_name\ta_seq\tb_name\tb_seq\n" + "\n".join(rows) + "\n")
    sites, maps, out = tmp_path / "sites.tsv", tmp_path / "maps.npz", tmp_path / "scores.tsv"
    resm_main(
        "interact", pairs, "--model", tmp_path, "-o", out, "--sites", sites, "--maps", maps,
        "--window", W, "--stride", 5, "--max-sites", 2,
    )  # fmt: skip
    table = [r.split("\t") for r in sites.read_text().splitlines()]
    assert table[0] == SITES_HEADER
    col = {name: i for i, name in enumerate(SITES_HEADER)}
    z = np.load(maps)
    assert sorted(z.files) == [f"pair{k + 1}" for k in range(len(cases))]
    for k, (la, lb, pa, pb) in enumerate(plants):
        sa, sb = window_starts(la, W, 5), window_starts(lb, W, 5)
        wa, wb = min(W, la), min(W, lb)
        first_a = next(x for x in sa if x <= pa and pa + HELIX <= x + wa)
        first_b = next(y for y in sb if y <= pb and pb + HELIX <= y + wb)
        mine = [r for r in table[1:] if r[col["index"]] == str(k + 1)]
        top = mine[0]
        assert (top[col["a_name"]], top[col["b_name"]], top[col["rank"]]) == (f"a{k}", f"b{k}", "1")
        got = [int(top[col[c]]) for c in ("a_start", "a_end", "b_start", "b_end")]
        assert got == [first_a + 1, first_a + wa, first_b + 1, first_b + wb], (la, lb)
        chain = [tuple(map(int, p.split("-"))) for p in top[col["head_pairs"]].split(";")]
        assert chain == [(pa + 1 + t, pb + HELIX - t) for t in range(HELIX)]
        left, right = top[col["duplex"]].split("&")
        da, db = int(top[col["duplex_a_start"]]), int(top[col["duplex_b_start"]])
        assert da + left.index("(") == pa + 1 and da + left.rindex("(") == pa + HELIX
        assert db + right.index(")") == pb + 1 and db + right.rindex(")") == pb + HELIX
        assert int(top[col["duplex_a_end"]]) == da + len(left) - 1
        assert int(top[col["duplex_b_end"]]) == db + len(right) - 1
        m = z[f"pair{k + 1}"]
        assert m.shape == (la, lb)
        hot = {(int(i), int(j)) for i, j in np.argwhere(m > 0.5)}
        assert hot == {(i, j) for i in range(pa, pa + HELIX) for j in range(pb, pb + HELIX)}


@torch.no_grad()
def test_each_window_is_encoded_as_a_sequence_of_its_own(model):
    """The encoder states, mask and nucleotide codes the head reads for window k are those of
    partner[start_k : start_k + w] run alone (BOS, its nucleotides, EOS), position by position,
    for the boundary lengths (W - 1: one window, shorter than W)."""
    from resm.alphabet import pad_batch
    from resm.nucleotides import rna_codes
    from resm.tasks.rri_sites import _embed_windows

    W, bb = MAX_LENGTH, model.encoder.backbone
    rng = np.random.default_rng(7)
    for n in (W - 1, W, W + 1, 2 * W - 1):
        seq = "".join(rng.choice(list("ACGU"), n))
        starts = window_starts(n, W, 5)
        h, m, nuc = _embed_windows(model, SCHEME, seq, starts, W, "p", 3, "cpu")
        w = min(W, n)
        assert h.shape[:2] == m.shape == nuc.shape == (len(starts), w) and bool(m.all())
        for k, s in enumerate(starts):
            alone = bb(pad_batch([SCHEME.encode(seq[s : s + w])]), return_logits=False)["last_hidden"][0]
            torch.testing.assert_close(h[k], alone[1 : w + 1], rtol=0, atol=1e-5)
            assert nuc[k].tolist() == rna_codes(seq[s : s + w], "p").tolist()


def test_sites_sharing_one_nucleotide_overlap_and_touching_ones_do_not(model):
    """Window pairs overlap (and the weaker is skipped) when both windows share a nucleotide:
    a of 2W - 1 nt under stride W has windows 1..W and W..2W-1, which share nucleotide W;
    a of 2W nt has windows 1..W and W+1..2W, which share none."""
    W = MAX_LENGTH
    opts = ScanOptions(window=W, stride=W, max_sites=5)
    r = scan_pair(model, "rri", SCHEME, "G" * (2 * W - 1), "C" * W, MAX_LENGTH, opts)
    assert r.starts == ([0, W - 1], [0]) and [(s.a_start, s.a_end) for s in r.sites] == [(1, W)]
    r = scan_pair(model, "rri", SCHEME, "G" * (2 * W), "C" * W, MAX_LENGTH, opts)
    assert r.starts == ([0, W], [0]) and [(s.a_start, s.a_end) for s in r.sites] == [(1, W), (W + 1, 2 * W)]
