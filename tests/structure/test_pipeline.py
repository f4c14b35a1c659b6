"""``resm probe`` and ``resm fold``: real subprocesses on a tiny random checkpoint, plus the
library functions they are built on."""

import json
import re

import numpy as np
import pytest

from resm.backbone.load import init_model, load_backbone
from resm.mapping import get_scheme
from resm.nucleotides import CANONICAL_PAIRS
from resm.structure.decode import decode
from resm.structure.io import FoldError, iter_dbn, pair_list, read_structures
from resm.structure.plot import plot_structure, require_matplotlib
from resm.structure.predictor import MapPredictor
from resm.structure.probe import ProbeFile, load_probe, predict_pair_probs, sidecar_path
from tests.conftest import REPO, resm_cli, resm_main

TRAIN = """>h1
GGGGAAACCCCAUAGCGCGAAAGCGCU
((((...))))...((((...))))..
>h2
GCGCUUCGGCGCAAAGGAUCCGAAAGGAUCC
((((....))))...((((.......)))).
>h3
ACGGCAUUCGUGCCGUAAAGGGCUAAAGCCCA
.(((((....))))).....((((...)))).
"""
VAL = """>v1
GGACUUCGGUCCAAAGCAGCGAAAGCUGCA
((((....))))...((((.....))))..
"""
FASTA = (
    ">s1 first\nGGGGAAACCCCAUAGCGCGAAAGCGCU\n>s/2\nacggcauucgugccgtaaagggcuaaagccca\n"
    ">s3\nGCGCUUCGGCGCAAAGGAUCCGAAAGGAUCC\n"
)
LENGTHS = {"s1": 27, "s/2": 32, "s3": 31}


resm = resm_cli


def one_line_error(p, expected: str) -> None:
    assert p.returncode == 1, p.stderr
    lines = [x for x in p.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert expected in lines[0], lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Checkpoint, labelled structures and a probe fitted with ``resm probe``."""
    d = tmp_path_factory.mktemp("fold")
    resm_main("init-checkpoint", "--arch", "tiny", "--out", d / "tiny.pt", "--seed", "0")
    (d / "train.dbn").write_text(TRAIN)
    (d / "val.dbn").write_text(VAL)
    (d / "in.fa").write_text(FASTA)
    p = resm(
        "probe", d / "tiny.pt", d / "train.dbn", "--out", d / "probe.pt", "--val", d / "val.dbn", "--max-train", "3"
    )
    return d, p.stdout


def fold_with_probe(d, *args, fasta=None, run=resm_main, **kw):
    """``resm fold`` of ``fasta`` (else the work folder's in.fa) with the tiny backbone and the
    probe of :func:`work`; ``args``: the options of the case. In this process (resm.cli.main, the
    same code without an interpreter's start-up) unless ``run`` is :func:`resm_cli`: the probe's
    fitting and the fold to standard output run the real entry point."""
    return run("fold", fasta or d / "in.fa", "--model", d / "tiny.pt", "--probe", d / "probe.pt", *args, **kw)


def assert_valid(rec) -> None:
    """|i - j| > 3, canonical pairs, one partner per base (read_structures checks symmetry)."""
    seq = rec.seq.upper().replace("T", "U")
    for i, j in pair_list(rec.pairs):
        assert j - i > 3
        assert seq[i] + seq[j] in CANONICAL_PAIRS
    paired = rec.pairs[rec.pairs >= 0]
    assert len(np.unique(paired)) == len(paired)


def test_probe_writes_weights_and_record(work):
    d, out = work
    assert "threshold" in out and "n_pos" in out and "AUROC" in out and "+-1 shift" in out
    assert "validation" in out
    info = json.loads(sidecar_path(d / "probe.pt").read_text())
    assert info["scheme"] == "kdny" and len(info["backbone_sha256"]) == 64
    assert 0 < info["threshold"] < 1 and info["n_train"] == 3 and info["method"] == "greedy"
    assert info["stats"]["threshold_on"] == "val" and info["stats"]["n_val"] == 1
    assert not [f for f in d.iterdir() if f.name.startswith(".")]  # no temporary files left


def test_fold_dbn_with_plots(work, tmp_path):
    d, _ = work
    out, plots = tmp_path / "pred.dbn", tmp_path / "plots"
    fold_with_probe(d, "-o", out, "--threshold", "0", *(["--plot", plots] if _has_matplotlib() else []))
    recs = list(read_structures(out))
    assert {r.name: len(r) for r in recs} == LENGTHS
    assert recs[1].seq == "ACGGCAUUCGUGCCGUAAAGGGCUAAAGCCCA"  # normalised
    for r in recs:
        assert_valid(r)
    assert sum(int((r.pairs >= 0).sum()) for r in recs) > 0  # threshold 0: the check is not vacuous
    if _has_matplotlib():
        pngs = sorted(p.name for p in plots.iterdir())
        assert pngs == ["s1.png", "s1_ss.png", "s3.png", "s3_ss.png", "s_2.png", "s_2_ss.png"]
        assert all((plots / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_fold_dbn_to_stdout_uses_the_probe_threshold(work):
    d, _ = work
    p = fold_with_probe(d, run=resm_cli)
    recs = list(iter_dbn(p.stdout.splitlines()))
    assert [r.name for r in recs] == list(LENGTHS)
    # the same as the library with the probe's own threshold and method
    model = load_backbone(d / "tiny.pt").model
    load_probe(model, d / "probe.pt")
    info = ProbeFile.read(d / "probe.pt")
    for r in recs:
        P = predict_pair_probs(model, get_scheme("kdny"), r.seq)
        np.testing.assert_array_equal(r.pairs, decode(P, r.seq, info.threshold, info.method))


@pytest.mark.parametrize("fmt", ["bpseq", "ct"])
def test_fold_bpseq_ct_one_file_per_record(work, tmp_path, fmt):
    d, _ = work
    out = tmp_path / "pred"
    fold_with_probe(d, "--format", fmt, "--split-dir", out, "--threshold", "0.0", "--method", "matching")
    files = sorted(out.iterdir())
    assert [f.name for f in files] == sorted(f"{n}.{fmt}" for n in ("s1", "s_2", "s3"))
    for f in files:
        (rec,) = read_structures(f)
        assert rec.name in LENGTHS and len(rec) == LENGTHS[rec.name]
        assert_valid(rec)


def test_fold_reference_prints_a_report(work, tmp_path):
    d, _ = work
    ref = tmp_path / "ref.dbn"
    ref.write_text(TRAIN.replace(">h1", ">s1").replace(">h2", ">s3").replace(">h3", ">s/2"))
    p = fold_with_probe(d, "--reference", ref)
    lines = p.stdout.strip().splitlines()
    assert lines[0].split("\t")[:7] == ["id", "length", "n_ref", "n_pred", "f1", "f1_shift", "mcc"]
    assert [ln.split("\t")[0] for ln in lines[1:]] == ["s1", "s/2", "s3"]
    assert "F1 over 3 sequences (mean)" in p.stderr and "RNAfold" in p.stderr
    assert sorted(f.name for f in tmp_path.iterdir()) == ["ref.dbn"]
    (tmp_path / "part.dbn").write_text(TRAIN.replace(">h1", ">s1"))
    p = fold_with_probe(d, "--reference", tmp_path / "part.dbn", check=False)
    one_line_error(p, "no reference structure for 's/2', 's3'")


def test_reference_sequences_are_compared_after_normalising(tmp_path):
    from resm.structure.io import FoldError
    from resm.structure.pipeline import read_reference

    ref = tmp_path / "r.dbn"
    ref.write_text(">a\nggggaaaTcNcc\n((((....))))\n>b\nGGGAAACCC\n(((...)))\n")
    got = read_reference(ref, [("a", 12)], {"a": "GGGGAAAUCCCC"})  # case, T, N: the same sequence
    assert got["a"].tolist()[:4] == [11, 10, 9, 8]
    with pytest.raises(
        FoldError,
        match=rf"^{re.escape(str(ref))}: record 'b': the reference's sequence differs from "
        r"the input's at position 4 \(A against G\)$",
    ):
        read_reference(ref, [("a", 12), ("b", 9)], {"a": "GGGGAAAUCCCC", "b": "GGGGAACCC"})


def test_probe_for_another_backbone_is_refused(work, tmp_path):
    d, _ = work
    other = tmp_path / "other.pt"
    resm_main("init-checkpoint", "--arch", "tiny", "--out", other, "--seed", "1")
    out = tmp_path / "pred.dbn"
    p = resm_main("fold", d / "in.fa", "--model", other, "--probe", d / "probe.pt", "-o", out, check=False)
    one_line_error(p, "probe was fitted on another backbone")
    assert not out.exists()


def test_fold_without_zero_shot_needs_a_structure_model(work, tmp_path):
    d, _ = work
    p = resm_main("fold", d / "in.fa", "--model", d / "tiny.pt", "-o", tmp_path / "x.dbn", check=False)
    one_line_error(p, "an ESM-2 backbone, not a structure model")  # and how to fold with it: a probe
    assert "--probe PROBE.pt" in p.stderr
    assert not list(tmp_path.iterdir())


def test_bad_fasta_leaves_no_output(work, tmp_path):
    d, _ = work
    fa = tmp_path / "bad.fa"
    fa.write_text(">a\nGGGGAAACCCC\n>b\nGGG9AAACCC\n")
    p = fold_with_probe(d, "-o", tmp_path / "o.dbn", "--plot", tmp_path / "plots", fasta=fa, check=False)
    one_line_error(p, "record 'b': digit '9' at position 4")
    assert [f.name for f in tmp_path.iterdir()] == ["bad.fa"]


# --------------------------------------------------------------------------- library level
def _has_matplotlib() -> bool:
    try:
        require_matplotlib()
        return True
    except ImportError:
        return False


def test_map_predictor_fold_matches_predict_and_decode():
    model = init_model("tiny", seed=2)
    scheme = get_scheme("kdny")
    rng = np.random.default_rng(0)
    seqs = {f"r{k}": "".join(rng.choice(list("ACGU"), n)) for k, n in enumerate([25, 40, 33])}
    P0 = predict_pair_probs(model, scheme, seqs["r0"])
    t = float(np.quantile(P0, 0.6))  # a threshold that leaves candidates
    for method in ("greedy", "matching"):
        got = list(MapPredictor(model, scheme, t, method).fold(list(seqs.items()), progress=False))
        assert [s.name for s, _ in got] == list(seqs)
        for (s, P), (_name, seq) in zip(got, seqs.items()):
            want_P = predict_pair_probs(model, scheme, seq)
            np.testing.assert_array_equal(P, want_P)
            np.testing.assert_array_equal(s.pairs, decode(want_P, seq, t, method))
    assert any((s.pairs >= 0).any() for s, _ in got)


def test_probe_record_checks_scheme(work):
    d, _ = work
    probe = ProbeFile.read(d / "probe.pt")
    probe.verify(d / "probe.pt", get_scheme("kdny"), d / "tiny.pt")
    with pytest.raises(FoldError, match="mapping scheme 'kdny'"):
        probe.verify(d / "probe.pt", get_scheme("kerd"), d / "tiny.pt")
    with pytest.raises(FoldError, match="tiny.pt.json is missing"):
        ProbeFile.read(d / "tiny.pt")


def test_plot_structure_writes_png(tmp_path):
    if not _has_matplotlib():
        pytest.skip("matplotlib not installed")
    pairs = np.full(12, -1)
    pairs[[0, 11, 1, 10]] = [11, 0, 10, 1]
    plot_structure(tmp_path / "a.png", "GGAAAAAAAACC", pairs)
    plot_structure(tmp_path / "b.png", "GGAAAAAAAACC", pairs, prob=np.eye(12, dtype=np.float32))
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["a.png", "b.png"]
    with pytest.raises(ValueError, match="shape"):
        plot_structure(tmp_path / "c.png", "GGAAAAAAAACC", pairs, prob=np.eye(5))
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("fmt,mode", [("dbn", "file"), ("ct", "file"), ("ct", "dir")])
def test_failure_midway_leaves_nothing(tmp_path, fmt, mode):
    """An error after some records were folded: no output file, directory or temporary."""
    from resm.structure.io import Structure
    from resm.structure.writers import StructureSink, staged_dir, structure_output_mode

    out = tmp_path / f"o.{fmt}"
    recs = [Structure(f"r{k}", "GGGAAAACCC", [9, 8, -1, -1, -1, -1, -1, -1, 1, 0]) for k in range(3)]
    names = [r.name for r in recs]
    assert (
        structure_output_mode(fmt, None, names, split_dir=out)
        if mode == "dir"
        else structure_output_mode(fmt, out, names)
    ) == mode
    plots_dir = tmp_path / "plots"
    with (
        pytest.raises(RuntimeError, match="^model failed$"),
        staged_dir(plots_dir) as plots,
        StructureSink(fmt, out, mode) as sink,
    ):
        for k, r in enumerate(recs):
            sink.add(r)
            (plots / f"{r.name}.png").write_bytes(b"x")
            if k == 1:
                raise RuntimeError("model failed")
    assert list(tmp_path.iterdir()) == []
    with staged_dir(tmp_path / "plots") as plots, StructureSink(fmt, out, mode) as sink:
        for r in recs:
            sink.add(r)
            (plots / f"{r.name}.png").write_bytes(b"x")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["o." + fmt, "plots"]
    assert len(list((tmp_path / "plots").iterdir())) == 3


def test_shipped_model_folds_the_trna_as_a_cloverleaf():
    """The shipped pair-head model on the README's examples (a smoke test: nothing was tuned on
    them): yeast tRNA-Phe comes out as its cloverleaf (acceptor, D, anticodon and T arms, no
    pseudoknot), and the batch of examples decodes as it does one record at a time."""
    from resm.structure.io import read_structures
    from resm.structure.metrics import f1_score
    from resm.structure.model import shipped_model_path
    from resm.structure.predictor_loading import supervised_predictor

    pytest.importorskip("linearpartition")
    known = {r.name: r for r in read_structures(REPO / "examples" / "known.dbn")}
    pred = supervised_predictor(shipped_model_path(), workers=1)
    got = {s.name: s.pairs for s, _ in pred.fold([(r.name, r.seq) for r in known.values()], progress=False)}
    trna = got["tRNA-Phe_yeast"]
    stems = [(0, 71), (9, 24), (26, 42), (48, 64)]  # 0-based outermost pair of each arm
    assert all(trna[i] == j for i, j in stems), trna
    assert f1_score(trna, known["tRNA-Phe_yeast"].pairs) > 0.95
    alone, _ = pred.fold_one(known["5S_rRNA_Ecoli"].seq, "5S")
    assert np.array_equal(alone.pairs, got["5S_rRNA_Ecoli"])


def test_shipped_model_reads_long_sequences_through_backbone_windows():
    """The shipped model's backbone was pretrained on 256-nt crops, so sequences over 512 nt
    reach it in windows (head.embed_window; experiments/results/length_proxy_cpu.md). A long
    record folds the same in a batch with a short one as alone, and the windows change it."""
    from resm.structure.model import shipped_model_path
    from resm.structure.predictor_loading import supervised_predictor

    pytest.importorskip("linearpartition")
    pred = supervised_predictor(shipped_model_path(), workers=1)
    assert pred.model.head.cfg.embed_window == 512
    rng = np.random.default_rng(3)
    long_seq = "".join(rng.choice(list("ACGU"), 700))
    short_seq = "GCGGAUUUAGCUCAGUUGGGAGAGCGCCAGACUGAAGAUCUGGAGGUCCUGUGUUCGAUCCACAGAAUUCGCACCA"
    both = [s for s, _ in pred.fold([("long", long_seq), ("short", short_seq)], progress=False)]
    alone = pred.fold_one(long_seq, "long")
    P = alone.dense()
    assert np.array_equal(both[0].pairs, alone.pairs) and (alone.pairs >= 0).sum() > 50
    pred.model.head.cfg.embed_window = 0  # the whole sequence at once
    try:
        P0 = pred.fold_one(long_seq, "long").dense()
    finally:
        pred.model.head.cfg.embed_window = 512
    assert np.array_equal(P > 0, P0 > 0) and np.abs(P - P0).max() > 1e-3


def test_fold_bpp_cache_gives_the_same_structures_and_fills_once(tmp_path):
    """``resm fold --bpp-cache``: the priors are stored on the first run (2 prior workers, from
    inside the command's transaction) and read back on the next; the structures and
    probabilities are byte for byte those of a run without a cache."""
    pytest.importorskip("linearpartition")
    fa = tmp_path / "in.fa"
    fa.write_text(FASTA + ">t4\nGCGGAUUUAGCUCAGUUGGGAGAGCGCCAGACUGAAGAUCUGGAGGUCCUGUGUUCGAUCCACAGAAUUCGCACCA\n")
    resm("fold", fa, "-o", tmp_path / "plain.dbn", "--bpp", tmp_path / "plain.bpp", "--threads", "2")
    assert not (tmp_path / "cache").exists()
    for run in ("first", "second"):
        resm(
            "fold",
            fa,
            "-o",
            tmp_path / f"{run}.dbn",
            "--bpp",
            tmp_path / f"{run}.bpp",
            "--threads",
            "2",
            "--bpp-cache",
            tmp_path / "cache",
        )
        assert (tmp_path / f"{run}.dbn").read_bytes() == (tmp_path / "plain.dbn").read_bytes()
        assert (tmp_path / f"{run}.bpp").read_bytes() == (tmp_path / "plain.bpp").read_bytes()
        names = sorted(p.name for p in (tmp_path / "cache").iterdir())
        assert len(names) == 4 and all(n.endswith(".npz") and not n.startswith(".") for n in names)


def test_a_bundle_is_opened_by_the_reader_handed_in(tmp_path):
    """The structure library opens no bundle itself (the tasks stand above it): a bundle folder
    goes to the ``open_bundle`` the caller hands in, and without one it is a one-line error
    naming the folder, before anything is read."""
    from resm.backbone.adapters import MANIFEST, BundleError
    from resm.structure.predictor_loading import supervised_predictor

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / MANIFEST).write_text("{}")
    with pytest.raises(BundleError, match=f"^{folder}: a model bundle") as e:
        supervised_predictor(folder)
    assert "\n" not in str(e.value)
    opened = []

    def reader(path):
        opened.append(path)
        raise BundleError(f"{path}: opened")

    with pytest.raises(BundleError, match="opened"):
        supervised_predictor(folder, open_bundle=reader)
    assert opened == [folder]
