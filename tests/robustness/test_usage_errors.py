"""Options that do not go together, whatever the files: a usage error, as argparse's own (exit
code 2, one line ending in '(see resm CMD --help)', nothing written). Several of these were
said with exit code 1, as a bad file is (resm.config.UsageError says the rule)."""

from __future__ import annotations

import pytest

from tests.robustness.cases import Case, check_one_line

FOLD = ["fold", "{fa}", "-o", "{t}/o.dbn", "--threads", "1"]
INTERACT = ["interact", "{pairs}", "-o", "{t}/s.tsv", "--threads", "1"]
ZERO_SHOT = [*INTERACT, "--zero-shot", "--backbone", "{tiny}"]
TRAINED = [*INTERACT, "--model", "{rri_model}", "--backbone", "{tiny}"]
PREDICT = ["predict", "-o", "{t}/p.tsv", "--threads", "1"]
RRI = [*PREDICT, "--task", "rri", "--model", "{rri_model}", "{pairs}"]
MRL = [*PREDICT, "--task", "mrl", "--model", "{mrl_model}", "{utrs}"]
EVALUATE = ["evaluate", "structure", "--out", "{t}/t.md"]

CASES = [
    # resm fold
    Case("fold/scheme-without-probe", [*FOLD, "--scheme", "nt"], 2, ["--scheme comes with --probe"]),
    Case("fold/zero-shot-without-model", [*FOLD, "--probe", "{probe}"], 2, ["--probe needs --model"]),
    Case(
        "fold/zero-shot-and-bpp-cache",
        [*FOLD, "--probe", "{probe}", "--model", "{tiny}", "--bpp-cache", "{t}/c"],
        2,
        ["--bpp-cache stores a structure model's pair priors"],
    ),
    Case(
        "fold/zero-shot-and-turner-scale",
        [*FOLD, "--probe", "{probe}", "--model", "{tiny}", "--turner-scale", "0.3"],
        2,
        ["--turner-scale sets a pair-head model's decoding"],
    ),
    Case("fold/dpi-without-plot", [*FOLD, "--dpi", "300"], 2, ["--dpi comes with --plot"]),
    Case("fold/plot-format-without-plot", [*FOLD, "--plot-format", "svg"], 2, ["--plot-format comes with --plot"]),
    Case("fold/bpp-min-without-bpp", [*FOLD, "--bpp-min", "0.1"], 2, ["--bpp-min comes with --bpp"]),
    Case(
        "fold/reference-format-without-reference",
        [*FOLD, "--reference-format", "dbn"],
        2,
        ["--reference-format comes with --reference"],
    ),
    Case("fold/report-without-reference", [*FOLD, "--report", "{t}/r.tsv"], 2, ["--report writes the --reference"]),
    Case("fold/out-and-split-dir", [*FOLD, "--split-dir", "{t}/d"], 2, ["-o writes one file and --split-dir"]),
    Case("fold/mfe-into-ct", ["fold", "{fa}", "-o", "{t}/o.ct", "--mfe"], 2, ["--mfe: ct has no room"]),
    Case(
        "fold/compare-into-ct",
        ["fold", "{fa}", "-o", "{t}/o.ct", "--compare", "rnafold"],
        2,
        ["--compare rnafold: ct has no room"],
    ),
    Case("fold/rnafold-p", [*FOLD, "-p"], 2, ["-p: resm writes base-pair probabilities with --bpp FILE"]),
    Case("fold/jobs-and-threads-disagree", ["fold", "{fa}", "-j", "2", "--threads", "3"], 2, ["-j 2 and --threads 3"]),
    Case("fold/input-twice", ["fold", "{fa}", "-i", "{fa}"], 2, ["give the input once"]),
    # resm interact
    Case("interact/neither-model-nor-zero-shot", INTERACT, 2, ["give --model"]),
    Case("interact/zero-shot-without-backbone", [*INTERACT, "--zero-shot"], 2, ["--zero-shot needs --backbone"]),
    Case("interact/zero-shot-and-a-model", [*ZERO_SHOT, "--model", "{rri_model}"], 2, ["--model and --zero-shot"]),
    Case("interact/zero-shot-and-an-adapter", [*ZERO_SHOT, "--adapter", "{t}/a"], 2, ["--adapter and --zero-shot"]),
    Case("interact/zero-shot-and-sites", [*ZERO_SHOT, "--sites", "{t}/s.txt"], 2, ["--maps and --sites come with"]),
    Case("interact/zero-shot-and-stride", [*ZERO_SHOT, "--stride", "10"], 2, ["--window and --stride scan"]),
    Case("interact/probe-without-zero-shot", [*TRAINED, "--probe", "{probe}"], 2, ["--probe comes with --zero-shot"]),
    Case("interact/linker-without-zero-shot", [*TRAINED, "--linker", "AAA"], 2, ["--linker comes with --zero-shot"]),
    Case("interact/scheme-without-zero-shot", [*TRAINED, "--scheme", "nt"], 2, ["--scheme comes with --zero-shot"]),
    Case("interact/maps-not-npz", [*TRAINED, "--maps", "{t}/m.txt"], 2, ["--maps writes one .npz file"]),
    Case("interact/pairs-from-stdin", ["interact", "-", "--zero-shot"], 2, ["PAIRS -: standard input is not read"]),
    # resm predict
    Case("predict/variants-with-rri", [*RRI, "--variants"], 2, ["--variants is for --task mrl"]),
    Case("predict/maps-with-mrl", [*MRL, "--maps", "{t}/m.npz"], 2, ["--maps and --sites are for --task rri"]),
    Case("predict/window-with-mrl", [*MRL, "--window", "20"], 2, ["--window and --stride are for --task rri"]),
    Case("predict/input-from-stdin", [*PREDICT, "--task", "mrl", "--model", "{mrl_model}", "-"], 2, ["INPUT -"]),
    # resm evaluate structure
    Case(
        "evaluate/folds-without-famfold",
        [*EVALUATE, "--model", "default", "--dataset", "vl1", "--folds", "3"],
        2,
        ["--folds picks folds of archiveii-famfold"],
    ),
    Case(
        "evaluate/famfold-without-fold-in-model",
        [*EVALUATE, "--model", "default", "--dataset", "archiveii-famfold"],
        2,
        ["archiveii-famfold needs one model per fold"],
    ),
    Case(
        "evaluate/fold-in-model-without-famfold",
        [*EVALUATE, "--model", "{t}/m_{fold}.pt", "--dataset", "vl1"],
        2,
        ["a --model path with {fold} goes with --dataset archiveii-famfold only"],
    ),
    Case(
        "evaluate/unknown-folder",
        [*EVALUATE, "--model", "default", "--dataset", "vl1", "--folders", "mfold"],
        2,
        ["unknown folder 'mfold'"],
    ),
    # resm embed
    Case("embed/out-not-npz", ["embed", "{tiny}", "{fa}", "{t}/e.txt"], 2, ["output must end in .safetensors or .npz"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_options_that_do_not_go_together_are_a_usage_error(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


def test_a_usage_error_ends_with_the_help_hint(ws, tmp_path, capfd):
    """The usage line says where the options are explained, as argparse's own errors do."""
    from resm.cli import main

    assert main(["fold", str(ws["fa"]), "-o", str(tmp_path / "o.dbn"), "--dpi", "300"]) == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("resm fold: error: --dpi comes with --plot") and err.endswith("(see resm fold --help)")


def test_fold_zero_shot_is_the_deprecated_spelling_of_probe(ws, tmp_path, capfd):
    """``resm fold --probe PROBE.pt`` names the probe file, as ``resm interact --zero-shot --probe``
    does; ``--zero-shot PROBE.pt``, its old spelling, folds the same and says so in one line."""
    from resm.cli import main

    base = ["fold", str(ws["fa"]), "--model", str(ws["tiny"]), "--threads", "1"]
    assert main([*base, "--probe", str(ws["probe"]), "-o", str(tmp_path / "new.dbn")]) == 0
    assert "deprecated" not in capfd.readouterr().err
    assert main([*base, "--zero-shot", str(ws["probe"]), "-o", str(tmp_path / "old.dbn")]) == 0
    err = [ln for ln in capfd.readouterr().err.splitlines() if "warning" in ln]
    assert err == ["resm fold: warning: --zero-shot is deprecated; use --probe"]
    assert (tmp_path / "old.dbn").read_text() == (tmp_path / "new.dbn").read_text()
