import numpy as np
import pytest

from resm.nucleotides import normalise_lenient
from resm.structure.folders import FOLDERS, FolderUnavailable, fold_many, fold_with, rnafold, rnafold_duplex_energy
from resm.structure.io import parse_dotbracket, to_dotbracket
from resm.structure.priors import rnafold_bpp

HAIRPIN = "GGGGAAAACCCC"


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


SEQS = [HAIRPIN, "GGGCGCGCAAAAGCGCGCCC", "GGGAAAUCCCGCGAAAGCGCAUAUGGGAUUUCCCAUAUGC", "acguNNRY", "A", ""]


@pytest.mark.parametrize("name", list(FOLDERS))
def test_every_folder_gives_a_valid_structure_and_normalises(name):
    for seq in SEQS:
        p = fold_with(name, seq)
        assert p.shape == (len(seq),) and p.dtype == np.int64
        paired = np.flatnonzero(p >= 0)
        np.testing.assert_array_equal(p[p[paired]], paired)  # symmetric partner array
        s = normalise_lenient(seq)
        assert all(s[i] != "N" for i in paired)  # unknown bases never pair
    # a strong hairpin folds as one by every folder; lower case and T read as U. The T pairs, in
    # the stem (a T in the loop folds the same read as U or as N: LinearFold and LinearPartition
    # given a raw T leave it unpaired, which only a T in a pair shows)
    assert to_dotbracket(fold_with(name, "GGGCGCGCAAAAGCGCGCCC")) == "((((((((....))))))))"
    for seq in ("GGGCGCGUAAAAACGCGCCC", "gggcgcgtaaaaacgcgccc", "GGGCGCGTAAAAACGCGCCC"):
        assert to_dotbracket(fold_with(name, seq)) == "((((((((....))))))))", seq


def test_mea_differs_from_mfe_where_the_ensemble_says_so():
    # a sequence whose ensemble is spread: MEA (gamma 1) leaves unpaired what MFE pairs weakly
    rng = np.random.default_rng(11)
    seqs = ["".join(rng.choice(list("ACGU"), 80)) for _ in range(20)]
    mfe = [fold_with("rnafold", s) for s in seqs]
    mea = [fold_with("rnafold-mea", s) for s in seqs]
    assert sum((a >= 0).sum() for a in mea) < sum((a >= 0).sum() for a in mfe)


def test_unknown_folder_and_missing_package_are_one_line_errors(monkeypatch):
    import sys

    with pytest.raises(ValueError, match="unknown folder 'contrafold'; known: rnafold"):
        fold_with("contrafold", HAIRPIN)
    monkeypatch.setitem(sys.modules, "linearpartition", None)  # as if not installed
    with pytest.raises(FolderUnavailable) as e:
        fold_with("eternafold", HAIRPIN)
    assert str(e.value) == (
        "this needs the package linearpartition-unofficial, which is not installed: "
        "pip install linearpartition-unofficial"
    )
    assert not FOLDERS["eternafold"].available() and FOLDERS["rnafold"].available()


def test_evaluate_names_a_missing_folder_package(monkeypatch):
    """resm evaluate's folder list: an unknown name lists the known ones; a folder whose package
    is missing is one line naming the package, before any work."""
    import resm.structure.folders as F
    from resm.structure.benchmark import check_folders

    assert check_folders(["rnafold"]) == ["rnafold"] and check_folders(None) == list(FOLDERS)
    with pytest.raises(ValueError, match="unknown folder 'mfold'; known: rnafold, rnafold-mea"):
        check_folders(["mfold"])
    gone = F.Folder("gone", lambda s: F.optional_package("resm_no_such_module", "no-such-pkg"), "no-such-pkg", "-", "-")
    monkeypatch.setitem(F.FOLDERS, "gone", gone)
    with pytest.raises(FolderUnavailable) as e:
        check_folders(["rnafold", "gone"])
    assert str(e.value) == "this needs the package no-such-pkg, which is not installed: pip install no-such-pkg"


def test_evaluate_defaults_to_the_installed_folders_and_names_the_others(monkeypatch, tmp_path, capsys):
    """Without --folders, a folder whose package is missing is left out with a line naming it;
    a model that does not exist is the first error, before any folder or data set."""
    import resm.structure.benchmark as B
    import resm.structure.folders as F
    from resm.cli import main as cli_main

    gone = F.Folder("gone", lambda s: F.optional_package("resm_no_such_module", "no-such-pkg"), "no-such-pkg", "-", "-")
    monkeypatch.setattr(B, "DEFAULT_FOLDERS", ("rnafold", "gone"))
    monkeypatch.setitem(F.FOLDERS, "gone", gone)
    said = []
    assert B.check_folders(None, said.append) == ["rnafold"]
    assert said == [
        "skipped folder gone: this needs the package no-such-pkg, which is not installed: "
        "pip install no-such-pkg (--folders gone makes it required)"
    ]
    code = cli_main(
        [
            "evaluate",
            "structure",
            "--model",
            str(tmp_path / "nope.pt"),
            "--dataset",
            "ts0",
            "--folders",
            "gone",
            "--data-dir",
            str(tmp_path / "no_data"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "nope.pt: no such structure model" in err[0]
