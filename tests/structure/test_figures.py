"""Publication figures: PNG/SVG/PDF at a chosen dpi, ViennaRNA's 2-D layout coloured by the
probability of the drawn state, integer ticks."""

import struct

import numpy as np
import pytest

pytest.importorskip("matplotlib")
RNA = pytest.importorskip("RNA")

from resm.structure.io import parse_dotbracket  # noqa: E402
from resm.structure.plot import (  # noqa: E402
    integer_ticks,
    layout_coordinates,
    plot_layout,
    plot_record,
    plot_structure,
    state_probability,
)

SEQ = "GCGGAUUUAGCUCAGUUGGGAGAGCGCCAGACUGAAGAUCUGGAGGUCCUGUGUUCGAUCCACAGAAUUCGCACCA"


def _fold(seq):
    fc = RNA.fold_compound(seq)
    db, mfe = fc.mfe()
    fc.exp_params_rescale(mfe)
    fc.pf()
    P = np.array(fc.bpp())[1:, 1:]
    return db, P + P.T


def _png_size(path):
    w, h = struct.unpack(">II", path.read_bytes()[16:24])
    return w, h


@pytest.mark.parametrize("fmt,magic", [("svg", b"<svg"), ("pdf", b"%PDF")])
def test_both_figures_in_vector_formats(tmp_path, fmt, magic):
    db, P = _fold(SEQ)
    pairs = parse_dotbracket(db)
    plot_record(tmp_path, "trna", SEQ, pairs, P, title="trna", reference=pairs, fmt=fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"trna.{fmt}", f"trna_ss.{fmt}"]
    for p in tmp_path.iterdir():
        assert magic in p.read_bytes()[:400]


def test_dpi_sets_the_pixel_size(tmp_path):
    db, P = _fold(SEQ)
    pairs = parse_dotbracket(db)
    plot_structure(tmp_path / "a.png", SEQ, pairs, P, dpi=100)
    plot_structure(tmp_path / "b.png", SEQ, pairs, P, dpi=200)
    (wa, ha), (wb, hb) = _png_size(tmp_path / "a.png"), _png_size(tmp_path / "b.png")
    assert abs(wb - 2 * wa) <= 2 and abs(hb - 2 * ha) <= 2
    with pytest.raises(ValueError, match="plot format 'gif'"):
        plot_layout(tmp_path / "c.gif", SEQ, pairs, P, fmt="gif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]


def test_layout_is_viennas_and_colours_are_the_drawn_states_probability():
    db, P = _fold(SEQ)
    pairs = parse_dotbracket(db)
    xy = layout_coordinates(pairs)
    c = RNA.naview_xy_coordinates(db)
    np.testing.assert_allclose(xy, [(c[k].X, c[k].Y) for k in range(len(SEQ))], rtol=1e-6)
    q = state_probability(pairs, P)
    i, j = 0, int(pairs[0])
    assert q[i] == q[j] == pytest.approx(P[i, j], abs=1e-6)
    k = int(np.flatnonzero(pairs < 0)[0])
    assert q[k] == pytest.approx(1 - P[k].sum(), abs=1e-6)
    # a pseudoknot is drawn from the nested part's layout, still finite
    pk = parse_dotbracket("((((....[[[[..))))....]]]]")
    assert np.isfinite(layout_coordinates(pk)).all()


def test_ticks_are_integers():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot(1, 1, 1)
    ax.set_xlim(0.5, 21.5)
    integer_ticks(ax.xaxis)
    ticks = [t for t in ax.get_xticks() if 0.5 <= t <= 21.5]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_a_structure_and_what_is_drawn_with_it_must_agree_in_length(tmp_path):
    """Both figures refuse a sequence of another length than the structure; the arc diagram
    also a reference or a compared structure of another length, each named in the message."""
    pairs = parse_dotbracket("((..))")
    for plot in (plot_structure, plot_layout):
        with pytest.raises(ValueError, match=r"^sequence length 5 != structure length 6$"):
            plot(tmp_path / "x.png", "ACGUA", pairs)
    with pytest.raises(ValueError, match=r"^reference length 4 != structure length 6$"):
        plot_structure(tmp_path / "x.png", "", pairs, reference=parse_dotbracket("().."))
    with pytest.raises(ValueError, match=r"^RNAfold structure length 7 != structure length 6$"):
        plot_structure(tmp_path / "x.png", "", pairs, compare=("RNAfold", parse_dotbracket("((...))")))
    assert not list(tmp_path.iterdir())
