"""The Turner-corrected decoding (``Decoding.turner_scale``, ``resm fold --turner-scale``): off,
it is today's decoding bit for bit; on, it is ViennaRNA's ensemble under the model's soft
constraints, which tends to plain Turner at scale 0 and to the model's preference at large
scales; files without the new keys load as before; bad values are one-line errors."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import RNA

from resm.structure.decode import (
    Decoding,
    decode_sparse,
    turner_constraints,
    turner_ensemble,
)
from resm.structure.io import FoldError, parse_dotbracket
from tests.structure.decoding_cases import SHIPPED, canonical_candidates, todays_decoding

TRNA = "GCGGAUUUAGCUCAGUUGGGAGAGCGCCAGACUGAAGAUCUGGAGGUCCUGUGUUCGAUCCACAGAAUUCGCACCA"
FIVE_S = (  # E. coli 5S rRNA as README's demo folds it (116 nt), where the Turner step changes the fold
    "UGCCUGGCGGCCGUAGCGCGGUGGUCCCACCUGACCCCAUGCCGAACUCAGAAGUGAAAC"
    "GCCGUAGCGCCGAUGGUAGUGUGGGGUCUCCCCAUGCGAGAGUAGGGAACUGCCAG"
)
DEFAULT = {**SHIPPED, "length_shift": 0.25, "length_ref": 150}  # the shipped file's (v3.3)


# ----------------------------------------------------------------------------- the Decoding
def test_off_is_todays_decoding_bit_for_bit():
    rng = np.random.default_rng(1)
    seqs = [TRNA, "GGGGAAACCCCAUAGCGCGAAAGCGCU", "".join(rng.choice(list("ACGU"), 120))]
    for k, seq in enumerate(seqs):
        i, j, mp, pp = canonical_candidates(seq, k)
        for d in (Decoding.from_dict(SHIPPED), Decoding(gamma=1.5, prior_weight=0.3)):
            assert d.turner_scale is None
            assert np.array_equal(decode_sparse(seq, i, j, mp, d, pp), todays_decoding(seq, i, j, mp, pp, d))


def test_round_trip_and_old_files():
    d = Decoding(gamma=1.5, prior_weight=0.2, pseudoknot_threshold=0.4, auto_gamma=True, turner_scale=0.3)
    assert Decoding.from_dict(json.loads(json.dumps(d.to_dict()))) == d
    assert d.to_dict()["turner_scale"] == 0.3 and d.to_dict()["turner_penalty"] == 5.0
    assert Decoding.from_dict(replace(d, turner_penalty=2.0).to_dict()).turner_penalty == 2.0
    old = Decoding.from_dict(SHIPPED)  # a file written before the Turner mode
    assert (old.turner_scale, old.turner_penalty) == (None, 5.0)
    assert "Turner" not in old.describe() and "Turner-corrected (scale 0.3, penalty 5" in d.describe()


@pytest.mark.parametrize(
    "key, value", [("turner_scale", -1.0), ("turner_scale", float("nan")), ("turner_penalty", float("inf"))]
)
def test_a_bad_value_is_one_line_naming_the_key(key, value):
    with pytest.raises(ValueError) as e:
        Decoding.from_dict({**SHIPPED, key: value})
    assert str(e.value).startswith(f"decoding key {key}: must be a finite number in [0, 1000]") and "\n" not in str(
        e.value
    )


def test_the_command_line_and_the_decoding_keep_one_kcal_rule():
    """--turner-scale's option rule is Decoding's (resm.structure.kcal): the same values pass,
    refused ones are refused with the same words."""
    from resm.commands.common import OPTION_RULES
    from resm.structure.decode import DecodingError

    rule, ok = OPTION_RULES["turner_scale"]
    assert rule == "must be a finite number in [0, 1000] (kcal/mol)"
    for v in (-1.0, -1e-9, -0.0, 0.0, 0.3, 1000.0, 1000.1, 1e9, 1e300, float("inf"), float("nan")):
        for key in ("turner_scale", "turner_penalty"):
            try:
                Decoding(**{key: v})
                kept = True
            except DecodingError as e:
                kept = False
                assert e.rule == rule and e.key == key
            assert ok(v) == kept, (key, v)


# ----------------------------------------------------------------------------- the constrained fold
def test_scale_zero_without_penalty_is_plain_turner_and_viennas_mea():
    """No constraint energy: the ensemble is RNAfold -p's, the MFE structure RNAfold's, and the
    MEA structure at gamma 1 scores as ViennaRNA's own MEA under the library's objective."""
    seq = TRNA
    i, j, mp, _ = canonical_candidates(seq)
    mfe, (ci, cj, cp) = turner_ensemble(seq, turner_constraints(len(seq), i, j, mp, 0.0, 0.0))
    plain_mfe, (pi, pj, pp) = turner_ensemble(seq, None)
    assert np.array_equal(mfe, plain_mfe) and np.array_equal(mfe, parse_dotbracket(RNA.fold(seq)[0]))
    assert np.array_equal(ci, pi) and np.array_equal(cj, pj) and np.allclose(cp, pp, atol=1e-9)
    got = decode_sparse(seq, i, j, mp, Decoding(gamma=1.0, turner_scale=0.0, turner_penalty=0.0))
    fc = RNA.fold_compound(seq)
    _, e = fc.mfe()
    fc.exp_params_rescale(e)
    fc.pf()
    vienna = parse_dotbracket(fc.MEA(1.0)[0])

    def accuracy(pairs):  # the MEA objective at gamma 1 over the same probabilities
        on = pairs[ci] == cj
        q = np.clip(1 - np.bincount(np.r_[ci, cj], np.r_[cp, cp], len(seq)), 0, 1)
        return 2 * cp[on].sum() + q[pairs < 0].sum()

    assert accuracy(got) == pytest.approx(accuracy(vienna), abs=1e-6)
    assert (got >= 0).sum() > 30  # the cloverleaf's stems, not an empty structure


def test_a_large_scale_gives_the_models_preference_and_zero_gives_turners():
    """A helix the model is sure of (four GU pairs closing a 12-nt loop) against the GC hairpin
    Turner prefers on the same Gs: at a large scale the model's structure, whatever the Turner
    energies say; at scale 0 without penalty RNAfold's."""
    seq = "GGGGAAAACCCCAAAAUUUU"
    turner = parse_dotbracket(RNA.fold(seq)[0])
    helix = [(0, 19), (1, 18), (2, 17), (3, 16)]
    assert [seq[a] + seq[b] for a, b in helix] == ["GU"] * 4 and all(turner[a] != b for a, b in helix)
    i, j, mp, _ = canonical_candidates(seq)
    mp[:] = 0.01
    for a, b in helix:
        mp[(i == a) & (j == b)] = 0.99
    model_only = decode_sparse(seq, i, j, mp, Decoding(gamma=2.0))
    assert all(model_only[a] == b for a, b in helix) and (model_only >= 0).sum() == 2 * len(helix)
    for s in (2.0, 20.0):
        assert np.array_equal(decode_sparse(seq, i, j, mp, Decoding(gamma=2.0, turner_scale=s)), model_only)
    zero = decode_sparse(seq, i, j, mp, Decoding(gamma=1.0, turner_scale=0.0, turner_penalty=0.0))
    assert np.array_equal(zero, turner) and (turner >= 0).sum() == 8


# ----------------------------------------------------------------------------- the options and the command line
def test_the_option_reaches_the_decoding_and_is_refused_where_it_means_nothing(tmp_path):
    from resm.structure.predictor_loading import PredictorOptions, check_decoding_overrides

    assert check_decoding_overrides({"turner_scale": None}) == {}
    for bad in (-1.0, float("nan")):
        with pytest.raises(
            FoldError, match=r"^--turner-scale .*: must be a finite number in \[0, 1000\] \(kcal/mol\)$"
        ):
            PredictorOptions(turner_scale=bad).check()
    with pytest.raises(FoldError, match=r"a zero-shot probe \(--probe\) has none"):
        PredictorOptions(model="x", zero_shot=tmp_path / "p.pt", turner_scale=0.3).check()


def test_resm_fold_turner_scale(tmp_path):
    """E. coli 5S rRNA (examples/known.dbn), where the shipped decoding leaves helices
    incomplete: with --turner-scale the fold changes, pairs more, and scores higher against the
    reference; --turner-scale -1 is one line, exit 2, nothing written."""
    from resm.structure.io import iter_dbn
    from resm.structure.metrics import f1_score
    from tests.conftest import REPO, resm_cli, resm_main

    ref = {r.name: r for r in iter_dbn((REPO / "examples" / "known.dbn").read_text().splitlines())}["5S_rRNA_Ecoli"]
    (tmp_path / "x.fa").write_text(f">5S\n{ref.seq}\n")
    base = ["fold", tmp_path / "x.fa", "--nogpu", "--threads", "1", "--no-score"]
    plain = parse_dotbracket(resm_main(*base).stdout.splitlines()[2])
    turner = parse_dotbracket(resm_main(*base, "--turner-scale", "0.3").stdout.splitlines()[2])
    assert len(plain) == len(turner) == len(ref.seq) and not np.array_equal(plain, turner)
    assert (turner >= 0).sum() > (plain >= 0).sum()
    assert f1_score(turner, ref.pairs) > f1_score(plain, ref.pairs)
    p = resm_cli(*base, "--turner-scale", "-1", "-o", tmp_path / "o.dbn", check=False)
    err = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(err) == 1 and "--turner-scale: must be a finite number in [0, 1000]" in err[0], (
        p.stderr
    )
    assert sorted(x.name for x in tmp_path.iterdir()) == ["x.fa"]


def test_the_override_reaches_a_pair_head_predictor_and_refuses_a_map(tmp_path):
    from resm.structure.predictor import MapPredictor
    from resm.structure.predictor_loading import PredictorOptions, load_predictor, override_decoding
    from tests.conftest import resm_main

    pred = load_predictor(PredictorOptions(threads=1, turner_scale=0.5))
    assert pred.decoding == replace(Decoding.from_dict(DEFAULT), turner_scale=0.5)
    assert load_predictor(PredictorOptions(threads=1)).decoding == Decoding.from_dict(DEFAULT)
    with pytest.raises(FoldError, match=r"^--turner-scale: probe p.pt decodes a dense pair map at a threshold; "):
        override_decoding(MapPredictor(None, None, 0.5, "greedy", None, "probe p.pt"), {"turner_scale": 0.3})
    p = resm_main("evaluate", "structure", "--model", "default", "--dataset", "vl1", "--turner-scale", "nan",
                  "--out", tmp_path / "t.md", check=False)  # fmt: skip
    err = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(err) == 1 and "--turner-scale: must be a finite number in [0, 1000]" in err[0], (
        p.stderr
    )
    assert not (tmp_path / "t.md").exists()


def test_evaluate_predicts_with_the_override():
    """resm evaluate's predictor (benchmark._model_predictor) folds as resm fold does with the
    same --turner-scale, and differently without it."""
    from resm.structure.benchmark import EvaluateOptions, _model_predictor
    from resm.structure.io import Structure
    from resm.structure.model import load_structure_model, resolve_model
    from resm.structure.predictor_loading import PredictorOptions, load_predictor

    seq = FIVE_S
    rec = [Structure("5S", seq, np.full(len(seq), -1))]
    model, meta = load_structure_model(resolve_model("default"))
    opts = EvaluateOptions(workers=1, tile=512)
    (predict_on, turner_on), (predict_off, turner_off) = (
        _model_predictor(model, meta, replace(opts, decoding={"turner_scale": 0.3})),
        _model_predictor(model, meta, opts),
    )
    assert turner_on and not turner_off  # what the memory check counts
    on, off = predict_on(rec, "t", False)[0], predict_off(rec, "t", False)[0]
    folded, _ = load_predictor(PredictorOptions(threads=1, turner_scale=0.3)).fold_one(seq)
    assert np.array_equal(on, folded.pairs) and not np.array_equal(on, off)


def test_a_file_with_a_bad_stored_value_is_one_line_naming_it():
    from resm.structure.predictor import PairPredictor

    with pytest.raises(FoldError) as e:
        PairPredictor.from_meta(
            None, {"decoding": {**SHIPPED, "turner_scale": -0.5}}, None, source="structure model m.pt"
        )
    assert (
        str(e.value)
        == "structure model m.pt: decoding key turner_scale: must be a finite number in [0, 1000] (kcal/mol), got -0.5"
    )


# ----------------------------------------------------------------------------- help, sharded runs, stored penalty
def option_help(text: str, flag: str) -> str:
    """The help of ``flag`` in an argparse help text, all whitespace removed (argparse wraps
    lines at the terminal's width, and may break a line after a hyphen)."""
    import re

    m = re.search(rf"^  {flag} \S+\s+(.*?)(?=^  -|^\S|\Z)", text, flags=re.M | re.S)
    assert m, f"{flag} is not in this help"
    return "".join(m.group(1).split())


def test_help_is_one_text_on_both_commands_and_says_what_it_must():
    """resm fold --help and resm evaluate structure --help show the same --turner-scale help,
    TURNER_HELP; it states the unit, the default, what the option does and where S=0.3 was
    chosen, and README's command table lists the option on both commands."""
    from resm.commands.common import TURNER_HELP
    from tests.conftest import REPO, resm_main

    fold = option_help(resm_main("fold", "--help").stdout, "--turner-scale")
    evaluate = option_help(resm_main("evaluate", "structure", "--help").stdout, "--turner-scale")
    assert fold == evaluate == "".join(TURNER_HELP.split())
    words = " ".join(TURNER_HELP.split())
    for said in (
        "S in kcal/mol",  # the unit
        "(default: off",  # the default
        "fold with ViennaRNA's Turner energies corrected by the model's pair probabilities",  # what it does
        "S=0.3 was chosen on PDB TR1",  # where the value comes from
        "the file's turner_penalty",  # the penalty is the model file's
    ):
        assert said in words, said
    rows = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| `resm ")]
    fold_row = next(r for r in rows if r.startswith("| `resm fold "))
    evaluate_row = next(r for r in rows if r.startswith("| `resm evaluate structure "))
    assert "[--turner-scale S]" in fold_row and "[--turner-scale S]" in evaluate_row


def test_a_sharded_fold_records_the_scale_and_a_resume_with_another_is_refused(tmp_path):
    """A sharded resm fold (two shards, stopped before its merge as a killed job would be)
    records --turner-scale in its job.json; resumed without it or with another scale it is
    refused in one line naming the work folder and the option, nothing written; resumed with
    the same scale it merges what a one-process run with the scale writes."""
    from unittest import mock

    from resm.utils.shards import ShardRun
    from tests.conftest import resm_main

    fa = tmp_path / "x.fa"
    fa.write_text(f">tRNA\n{TRNA}\n>5S\n{FIVE_S}\n")
    out, work = tmp_path / "o.dbn", tmp_path / "o.dbn.shards"
    base = ["fold", fa, "-o", out, "--shard-size", "1", "--nogpu", "--threads", "1"]
    with mock.patch.object(ShardRun, "merge", lambda self, combine: False):
        resm_main(*base, "--turner-scale", "0.3")
    assert json.loads((work / "job.json").read_text())["turner_scale"] == 0.3
    left = {p.name: p.read_bytes() for p in work.iterdir()}
    assert len(left) == 5 and not out.exists()  # job.json, two shards and their manifests
    for other in ([], ["--turner-scale", "0.5"]):
        p = resm_main(*base, *other, check=False)
        err = p.stderr.strip().splitlines()
        assert p.returncode == 1 and len(err) == 1, p.stderr
        assert err[0] == (
            f"resm fold: error: {work} holds the shards of another job (other input or options: turner_scale "
            "differs); remove it, or re-run the command that made it"
        )
        assert not out.exists() and {p.name: p.read_bytes() for p in work.iterdir()} == left
    assert "(2 finished shards reused)" in resm_main(*base, "--turner-scale", "0.3").stdout
    resm_main("fold", fa, "-o", tmp_path / "one.dbn", "--nogpu", "--threads", "1", "--turner-scale", "0.3")
    resm_main("fold", fa, "-o", tmp_path / "plain.dbn", "--nogpu", "--threads", "1")
    assert out.read_text() == (tmp_path / "one.dbn").read_text() != (tmp_path / "plain.dbn").read_text()
    assert not work.exists()


def stored_turner_model(tmp_path, penalty: float):
    """The shipped model with a stored Turner decoding (scale 0.3, ``penalty``) and few
    candidates (the pairs of prior probability >= 0.5: three on the tRNA), so that the pairs
    the model does not list, which the penalty is about, decide the fold."""
    from resm.backbone.load import safe_load
    from resm.structure.model import save_structure_model, shipped_model_path

    data = safe_load(shipped_model_path())
    data["head_config"]["min_prob"] = 0.5
    data["decoding"] = {**data["decoding"], "turner_scale": 0.3, "turner_penalty": penalty}
    return save_structure_model(data, tmp_path / f"penalty{penalty:g}.pt")


def test_a_model_file_decodes_with_its_stored_scale_and_penalty_and_the_option_keeps_the_penalty(tmp_path):
    """A model file storing turner_scale and turner_penalty folds with both (resm fold equals
    decode_sparse with those values on the model's probabilities); penalty 0 lets the Turner
    model add pairs the model never lists (the cloverleaf), penalty 5 does not; --turner-scale
    replaces the stored scale and keeps the stored penalty."""
    from resm.structure.predictor_loading import PredictorOptions, load_predictor
    from resm.structure.priors import compute_priors
    from tests.conftest import resm_main

    zero, five = stored_turner_model(tmp_path, 0.0), stored_turner_model(tmp_path, 5.0)
    pred = load_predictor(PredictorOptions(model=zero, threads=1))
    assert pred.decoding == replace(Decoding.from_dict(DEFAULT), turner_scale=0.3, turner_penalty=0.0)
    assert load_predictor(PredictorOptions(model=zero, threads=1, turner_scale=0.8)).decoding == replace(
        pred.decoding, turner_scale=0.8
    )
    ((c, q, prior_p),) = pred.probabilities([TRNA], [compute_priors([TRNA], pred.priors, None, 1, progress=False)[0]])
    listed = set(zip(c.i.tolist(), c.j.tolist()))
    assert len(listed) == 3

    def expected(**kw):
        return decode_sparse(TRNA, c.i, c.j, q, replace(pred.decoding, **kw), prior_p)

    (tmp_path / "t.fa").write_text(f">tRNA\n{TRNA}\n")

    def fold(model, *extra):
        p = resm_main("fold", tmp_path / "t.fa", "--model", model, "--nogpu", "--threads", "1", "--no-score", *extra)
        return parse_dotbracket(p.stdout.splitlines()[2])

    def pairs(partners):
        return {(a, int(b)) for a, b in enumerate(partners) if b > a}

    with_zero, with_five = fold(zero), fold(five)
    assert np.array_equal(with_zero, expected()) and np.array_equal(with_five, expected(turner_penalty=5.0))
    assert len(pairs(with_zero)) >= 20 and len(pairs(with_zero) - listed) >= 18  # the Turner model's stems
    assert pairs(with_five) <= listed and len(pairs(with_five)) == 2
    scaled = fold(zero, "--turner-scale", "0.8")
    assert np.array_equal(scaled, expected(turner_scale=0.8))
    assert not np.array_equal(scaled, expected(turner_scale=0.8, turner_penalty=5.0))


def test_a_setting_that_is_no_decoding_key_or_a_stored_entry_that_is_no_mapping_is_one_line():
    """check_decoding_overrides names an unknown key as such (it said the kcal/mol rule), and a
    file whose decoding entry is not a mapping is one line naming the file."""
    from resm.structure.predictor import PairPredictor
    from resm.structure.predictor_loading import check_decoding_overrides

    with pytest.raises(FoldError) as e:
        check_decoding_overrides({"turner_scal": 0.3})
    assert str(e.value) == (
        "--turner-scal: not a setting of a model's decoding (those are gamma, prior_weight, "
        "pseudoknot_threshold, auto_gamma, turner_scale, turner_penalty, length_shift, length_ref)"
    )
    for stored in ("gamma", [1.0]):
        with pytest.raises(FoldError) as e:
            PairPredictor.from_meta(None, {"decoding": stored}, None, source="structure model m.pt")
        assert str(e.value) == (
            f"structure model m.pt: its decoding entry is a {type(stored).__name__}, not a mapping of settings"
        )


def test_evaluate_names_the_override_in_its_table_and_scores_the_turner_folds(tmp_path):
    """resm evaluate structure --turner-scale on a hand-made VL1 (E. coli 5S rRNA with its
    reference): the table's model line says which stored setting was replaced, and resm's row
    scores the Turner-corrected fold (denser and closer to the reference here) where the run
    without the option scores the stored decoding's."""
    from resm.structure.io import iter_dbn
    from tests.conftest import REPO, resm_main

    ref = {r.name: r for r in iter_dbn((REPO / "examples" / "known.dbn").read_text().splitlines())}["5S_rRNA_Ecoli"]
    pairs = " ".join(f"{a + 1}:{b + 1}" for a, b in enumerate(ref.pairs) if b > a)
    (tmp_path / "ss" / "pdb").mkdir(parents=True)
    (tmp_path / "ss" / "pdb" / "VL1.tsv").write_text(f"id\tsequence\tpairs\n5S\t{ref.seq}\t{pairs}\n")

    def resm_row(*extra):
        out = tmp_path / "t.md"
        argv = ["evaluate", "structure", "--model", "default", "--dataset", "vl1", "--data-dir", tmp_path]
        resm_main(*argv, "--folders", "rnafold", "--threads", "1", "--out", out, *extra)
        text = out.read_text()
        row = next(r for r in text.splitlines() if r.startswith("| vl1, canonical pairs | 1 | **resm** |"))
        model_line = next(line for line in text.splitlines() if line.startswith("Model: "))
        return [float(x) for x in row.split(" | ")[3:8]], model_line  # F1, F1 +-1, precision, recall, pred/ref

    plain, plain_model = resm_row()
    turner, turner_model = resm_row("--turner-scale", "0.3")
    assert "its stored decoding with" not in plain_model
    assert turner_model.startswith(
        "Model: `default (resm/models/structure_default.pt, the shipped model), its stored decoding with "
        "--turner-scale 0.3`."
    )
    assert turner[0] > plain[0] and turner[4] > plain[4]


def test_the_memory_check_counts_the_turner_step(tmp_path, monkeypatch):
    """resm fold --turner-scale checks a larger estimate (fold_estimate(..., turner=True)): with
    just the plain estimate available, the plain fold runs and the Turner fold is refused in one
    line before any work, naming the decoding; a model file that stores a scale counts too."""
    import re

    from resm.utils.memory import fold_estimate
    from tests.conftest import REPO, resm_main

    table = (REPO / "experiments/results/memory_fold_turner_cpu.md").read_text()
    rows = re.findall(r"^\| ([\d,]+) \| ([\d.]+) \| \d+ \| ([\d.]+) \| \d+ \|", table, re.M)
    assert len(rows) >= 3
    for length, plain_peak, turner_peak in rows:  # experiments/memory_fold_turner.py's peaks
        n = int(length.replace(",", ""))
        estimate = fold_estimate([n], 1, turner=True) / 2**30
        assert float(turner_peak) <= estimate <= 1.6 * float(turner_peak) + 0.3, (n, turner_peak, estimate)
        assert fold_estimate([n], 1) / 2**30 >= float(plain_peak)
    L = len(FIVE_S)
    plain, turner = fold_estimate([L], 1), fold_estimate([L], 1, turner=True)
    assert turner > plain
    fa = tmp_path / "x.fa"
    fa.write_text(f">5S\n{FIVE_S}\n")
    monkeypatch.setenv("RESM_AVAILABLE_MEMORY", str(plain))
    base = ["fold", fa, "--nogpu", "--threads", "1"]
    resm_main(*base, "-o", tmp_path / "plain.dbn")
    stored = stored_turner_model(tmp_path, 5.0)
    for extra in (["--turner-scale", "0.3"], ["--model", stored]):
        p = resm_main(*base, *extra, "-o", tmp_path / "t.dbn", check=False)
        err = p.stderr.strip().splitlines()
        assert p.returncode == 1 and len(err) == 1, p.stderr
        assert err[0].startswith(
            f"resm fold: error: folding 1 record (the longest {L} nt, 1 prior worker, Turner-corrected decoding) "
            f"needs about {turner / 2**30:.1f} GiB"
        ), err[0]
        assert not (tmp_path / "t.dbn").exists()


def test_the_python_api_takes_the_scale(tmp_path):
    """resm.load_predictor(turner_scale=S) folds as resm fold --turner-scale S does (the 5S
    rRNA, where it changes the fold); a bad value breaks the command line's rule, said in one
    line naming the keyword."""
    import resm
    from tests.conftest import resm_main

    api = resm.load_predictor(device="cpu", threads=1, turner_scale=0.3)
    assert api.decoding == replace(Decoding.from_dict(DEFAULT), turner_scale=0.3)
    folded, _ = api.fold_one(FIVE_S, "5S")
    plain, _ = resm.load_predictor(device="cpu", threads=1).fold_one(FIVE_S, "5S")
    (tmp_path / "x.fa").write_text(f">5S\n{FIVE_S}\n")
    cli = resm_main("fold", tmp_path / "x.fa", "--nogpu", "--threads", "1", "--no-score", "--turner-scale", "0.3")
    assert cli.stdout.splitlines()[2] == folded.dotbracket != plain.dotbracket
    with pytest.raises(
        FoldError, match=r"^turner_scale: must be a finite number in \[0, 1000\] \(kcal/mol\), got -1.0$"
    ):
        resm.load_predictor(device="cpu", turner_scale=-1.0)


def test_a_bundle_folds_with_the_scale_as_the_predictor_does(tmp_path):
    """Bundle.fold(turner_scale=S) (resm.load_bundle) folds as resm.load_predictor(model=DIR,
    turner_scale=S) and resm fold --model DIR --turner-scale S do, on a bundle with a pair head
    (untrained, frozen tiny backbone) and the 5S rRNA, where the scale changes the fold; a bad
    value is the same one-line error naming the keyword."""
    import torch

    import resm
    from resm.backbone.encoder import BackboneEncoder
    from resm.backbone.load import load_backbone
    from resm.heads import HEADS
    from resm.mapping import get_scheme
    from resm.tasks.base import TaskModel, save_bundle
    from tests.conftest import resm_main

    ckpt = tmp_path / "tiny.pt"
    resm_main("init-checkpoint", "--arch", "tiny", "--scheme", "kdny", "--seed", "1", "--out", ckpt)
    scheme = get_scheme("kdny")
    bb = load_backbone(str(ckpt), scheme).model
    cfg = {"width": 8, "pair_width": 8, "blocks": 1, "dilations": [1], "rounds": 1}
    torch.manual_seed(0)
    head, apply = HEADS["pairs"](cfg, bb.embed_dim)
    tm = TaskModel(BackboneEncoder(bb, "frozen"), {"structure": head}, {"structure": apply}).eval()
    extra = {"head": "pairs", "priors": [{"kind": "vienna"}], "decoding": DEFAULT}
    folder = save_bundle(
        tmp_path / "model", tm, scheme, str(ckpt), {"structure": {"task": "structure", "config": cfg, "extra": extra}}
    )
    b = resm.load_bundle(folder, device="cpu")
    ((plain, _),) = b.fold({"5S": FIVE_S})
    ((scaled, probs),) = b.fold({"5S": FIVE_S}, turner_scale=0.3)
    assert b.predictor(0.3).decoding == replace(b.predictor().decoding, turner_scale=0.3)
    api = resm.load_predictor(folder, device="cpu", threads=1, turner_scale=0.3)
    want, want_probs = api.fold_one(FIVE_S, "5S")
    assert scaled.dotbracket == want.dotbracket != plain.dotbracket
    np.testing.assert_array_equal(probs, want_probs)
    (tmp_path / "x.fa").write_text(f">5S\n{FIVE_S}\n")
    cli = resm_main(
        "fold", tmp_path / "x.fa", "--model", folder, "--nogpu", "--threads", "1", "--no-score", "--turner-scale", "0.3"
    )
    assert cli.stdout.splitlines()[2] == scaled.dotbracket
    with pytest.raises(
        FoldError, match=r"^turner_scale: must be a finite number in \[0, 1000\] \(kcal/mol\), got -1.0$"
    ):
        b.fold(FIVE_S, turner_scale=-1.0)
