"""The fifth hostile-input audit: each case gave a wrong result with exit code 0, a message
naming nothing, or more than one line before its fix. Command-line cases keep the rule of
:func:`tests.robustness.cases.check_one_line` (one line naming the thing, the exit code, nothing
written)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.robustness.cases import Case, check_one_line

FOLD = ["fold", "{fa}", "--model", "{t}/s.pt", "-o", "{t}/o.dbn", "--threads", "1"]


def _shipped(edit):
    """A copy of the shipped structure model at ``s.pt``, changed by ``edit(data)``."""

    def setup(p: dict) -> None:
        from resm.structure.model import resolve_model

        data = torch.load(resolve_model("default"), weights_only=True)
        edit(data)
        torch.save(data, Path(p["t"]) / "s.pt")

    return setup


def _set(section: str, **changes):
    def edit(data):
        data[section].update(changes)

    return edit


def _put(key: str, value):
    def edit(data):
        data[key] = value

    return edit


def _bundle(head: str, **changes):
    """A copy of the workspace's ``head`` bundle at ``m/`` whose head config has ``changes``."""

    def setup(p: dict) -> None:
        dst = Path(p["t"]) / "m"
        shutil.copytree(p[f"{head}_model"], dst)
        manifest = json.loads((dst / "manifest.json").read_text())
        manifest["heads"][head]["config"].update(changes)
        (dst / "manifest.json").write_text(json.dumps(manifest))

    return setup


# ---------------------------------------------------------------- the settings a model file stores
# A head's stored config was read without its fields' types: `embed_window: true` folded with
# one-nucleotide windows, a prior's `beam: true` with a beam of 1, a bundle's `max_length: true`
# scanned partners in 1-nt windows, and a head config that is an empty list read as every
# setting at its default: each a different result with exit code 0. A prior's `cutoff: 'x'`
# was an "unexpected" TypeError, and a priors entry of another length than the head reads was
# found by the first batch, in a line naming no file.
CASES = [
    Case(
        "fold/model-head-config-bool-for-int",
        FOLD,
        1,
        ["{t}/s.pt", "embed_window: expected an integer, got True"],
        _shipped(_set("head_config", embed_window=True)),
    ),
    Case(
        "fold/model-head-config-float-for-int",
        FOLD,
        1,
        ["{t}/s.pt", "min_loop: expected an integer, got 3.0"],
        _shipped(_set("head_config", min_loop=3.0)),
    ),
    Case(
        "fold/model-head-config-a-list",
        FOLD,
        1,
        ["{t}/s.pt", "its head config is a list, not a mapping of settings"],
        _shipped(_put("head_config", [])),
    ),
    Case(
        "fold/model-prior-beam-bool",
        FOLD,
        1,
        ["{t}/s.pt", "priors[0].beam: expected an integer, got True"],
        _shipped(lambda d: d["priors"][0].update(beam=True)),
    ),
    Case(
        "fold/model-prior-cutoff-text",
        FOLD,
        1,
        ["{t}/s.pt", "priors[0].cutoff: expected a number, got 'x'"],
        _shipped(lambda d: d["priors"][0].update(cutoff="x")),
    ),
    Case(
        "fold/model-priors-of-another-count",
        FOLD,
        1,
        ["{t}/s.pt", "its head reads 1 prior(s), its priors entry holds 2"],
        _shipped(lambda d: d["priors"].append({"kind": "vienna"})),
    ),
    Case(
        "interact/bundle-head-config-bool-for-int",
        ["interact", "{pairs}", "--model", "{t}/m", "--backbone", "{tiny}", "-o", "{t}/s.tsv", "--threads", "1"],
        1,
        ["{t}/m/manifest.json", "max_length: expected an integer, got True"],
        _bundle("rri", max_length=True),
    ),
    Case(
        "predict/bundle-head-config-float-for-int",
        [
            "predict",
            "--task",
            "mrl",
            "{utrs}",
            "--model",
            "{t}/m",
            "--backbone",
            "{tiny}",
            "-o",
            "{t}/p.tsv",
            "--threads",
            "1",
        ],
        1,
        ["{t}/m/manifest.json", "kernel: expected an integer, got 5.0"],
        _bundle("mrl", kernel=5.0),
    ),
]


# ---------------------------------------------------------------- a head weight that is not finite
# A structure model whose head held a NaN scored every pair NaN, which decodes as no pair: every
# RNA folded unpaired with [eF1=1.000], exit code 0 (the backbone's weights were checked, the
# head's not).
def _nan_head(key: str):
    def edit(data):
        name = sorted(k for k, v in data["head"].items() if v.is_floating_point())[-1]
        data["head"][name] = data["head"][name].clone().fill_(float("nan"))

    def setup(p: dict) -> None:
        from resm.structure.model import resolve_model

        data = torch.load(resolve_model("default") if key == "shipped" else p[key], weights_only=True)
        edit(data)
        torch.save(data, Path(p["t"]) / "s.pt")

    return setup


CASES += [
    Case(f"fold/model-head-weight-nan-{key}", FOLD, 1, ["{t}/s.pt", "holds NaN or infinite values"], _nan_head(key))
    for key in ("shipped", "structure_model")
]


def test_an_ensemble_member_with_a_nan_weight_is_refused(tmp_path):
    """The second member of a head ensemble was never checked (the sizes are read from the first)."""
    from resm.backbone.load import CheckpointError, safe_load
    from resm.structure.ensemble import ensemble_payload
    from resm.structure.model import load_structure_model, resolve_model

    shipped = safe_load(resolve_model("default"))
    other = {**shipped, "head": {k: v.clone() for k, v in shipped["head"].items()}}
    name = sorted(k for k, v in other["head"].items() if v.is_floating_point())[-1]
    other["head"][name].view(-1)[0] = float("inf")
    path = tmp_path / "e.pt"
    torch.save(ensemble_payload([("a.pt", shipped), ("b.pt", other)]), path)
    with pytest.raises(CheckpointError) as e:
        load_structure_model(path)
    assert str(e.value) == (
        f"{path}: not a usable structure model (its head weight members.1.{name} holds NaN or infinite values)"
    )


# A structure model's backbone_config.token_dropout: 0 (or "no") was read as false (or true) in
# silence, and a decoding entry that is an empty list as no decoding at all: the stored MEA
# gamma, prior weight and pseudoknot step gave way to the defaults, a different structure with
# exit code 0.
CASES += [
    Case(
        "fold/model-token-dropout-not-a-bool",
        FOLD,
        1,
        ["{t}/s.pt", "token_dropout must be true or false, got 0"],
        _shipped(_set("backbone_config", token_dropout=0)),
    ),
    Case(
        "fold/model-decoding-an-empty-list",
        FOLD,
        1,
        ["{t}/s.pt", "its decoding entry is a list, not a mapping of settings"],
        _shipped(_put("decoding", [])),
    ),
]


# ---------------------------------------------------------------- an option its mode does not read
# resm interact --zero-shot --model M scored zero-shot and passed the trained model over (so did
# --adapter, even one that does not exist); --probe, --linker and --scheme without --zero-shot,
# and resm fold --scheme with a structure model (and resm.load_predictor(scheme=) without
# zero_shot), were passed over too: each a result of another model than the one asked for, exit 0.
# resm evaluate --folds without archiveii-famfold scored every set whole.
INTERACT = ["interact", "{pairs}", "-o", "{t}/s.tsv", "--threads", "1"]
TRAINED = [*INTERACT, "--model", "{rri_model}", "--backbone", "{tiny}"]
CASES += [
    Case(
        "interact/zero-shot-and-a-model",
        [*INTERACT, "--zero-shot", "--backbone", "{tiny}", "--model", "{rri_model}"],
        2,
        ["--model and --zero-shot"],
    ),
    Case(
        "interact/zero-shot-and-an-adapter",
        [*INTERACT, "--zero-shot", "--backbone", "{tiny}", "--adapter", "{t}/none"],
        2,
        ["--adapter and --zero-shot"],
    ),
    Case("interact/probe-without-zero-shot", [*TRAINED, "--probe", "{probe}"], 2, ["--probe comes with --zero-shot"]),
    Case("interact/linker-without-zero-shot", [*TRAINED, "--linker", "AAA"], 2, ["--linker comes with --zero-shot"]),
    Case("interact/scheme-without-zero-shot", [*TRAINED, "--scheme", "nt"], 2, ["--scheme comes with --zero-shot"]),
    Case(
        "fold/scheme-without-zero-shot",
        ["fold", "{fa}", "-o", "{t}/o.dbn", "--threads", "1", "--scheme", "nt"],
        2,
        ["--scheme comes with --probe; a structure model reads its own scheme"],
    ),
    # resm evaluate --dataset vl1 --folds 3 scored the whole set (--folds is archiveii-famfold's)
    Case(
        "evaluate/folds-without-famfold",
        ["evaluate", "structure", "--model", "default", "--dataset", "vl1", "--folds", "3", "--out", "{t}/t.md"],
        2,
        ["--folds picks folds of archiveii-famfold"],
    ),
]


# ---------------------------------------------------------------- a name written into tables
# A compare backend named "a\tb" (or with a line break) was written into results.csv,
# per_sequence.csv, results.md and the figures (matplotlib's warning a second line on stderr),
# exit 0; backend names are held to the record ids' rule (resm.fasta.id_problem).
CASES += [
    Case(
        f"compare/backend-name-with-{what}",
        ["compare", "--config", "{compare_cfg}", "out_dir={t}/cmp", f"backends=[{{name: {name}, kind: viennarna}}]"],
        1,
        ["backends[0]: name", f"holds the control character {code}"],
    )
    for what, name, code in (("a-tab", '"a\\tb"', "U+0009"), ("a-line-break", '"a\\nb"', "U+000A"))
]


# resm pretrain data.train=[] said 'no training files given (PretrainDataConfig.train is empty)',
# naming a class of the code, not the config key.
CASES += [
    Case(
        "pretrain/data-train-empty",
        ["pretrain", "--config", "{pretrain_cfg}", "train.out_dir={t}/run", "data.train=[]"],
        1,
        ["data.train: no training files given"],
    )
]


# ---------------------------------------------------------------- '..' after a folder that is not there
# resm fold -o zz/../o.dbn created the folder zz to reach ./o.dbn (an empty folder left behind);
# with -o o.dbn --bpp-cache o.dbn/.. the cache made o.dbn a folder (no other output's check saw
# it coming), the fold failed in two lines putting o.dbn in place, and the cache entries and the
# folder o.dbn stayed.
CASES += [
    Case(
        "fold/out-through-a-missing-folder",
        ["fold", "{fa}", "-o", "{t}/zz/../o.dbn", "--threads", "1"],
        1,
        ["--out {t}/zz/../o.dbn: no such folder {t}/zz before its '..'"],
    ),
    Case(
        "fold/bpp-cache-through-the-output",
        ["fold", "{fa}", "-o", "{t}/o.dbn", "--bpp-cache", "{t}/o.dbn/..", "--threads", "1"],
        1,
        ["--bpp-cache {t}/o.dbn/..: no such folder {t}/o.dbn before its '..'"],
    ),
]


# A probe record naming an unknown scheme (3, 'bogus') said 'unknown mapping scheme 3; known: ...',
# naming no file.
def _probe_scheme(value):
    def setup(p: dict) -> None:
        t = Path(p["t"])
        shutil.copy2(p["probe"], t / "p.pt")
        record = json.loads(Path(p["probe"] + ".json").read_text())
        (t / "p.pt.json").write_text(json.dumps({**record, "scheme": value}))

    return setup


CASES += [
    Case(
        f"fold/probe-record-scheme-{what}",
        ["fold", "{fa}", "--model", "{tiny}", "--probe", "{t}/p.pt", "-o", "{t}/o.dbn"],
        1,
        ["{t}/p.pt.json: records the unknown mapping scheme"],
        _probe_scheme(value),
    )
    for what, value in (("a-number", 3), ("unknown", "bogus"))
]


def test_api_load_predictor_refuses_a_scheme_without_a_probe():
    import resm
    from resm.structure.io import FoldError

    with pytest.raises(FoldError) as e:
        resm.load_predictor("default", scheme="nt", device="cpu")
    assert str(e.value) == "scheme comes with zero_shot; a structure model reads its own scheme"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


# ---------------------------------------------------------------- the embeddings' layers and include
@pytest.mark.parametrize(
    "kw, said_",
    [
        ({"layers": 1.0}, "layers: expected a layer (an integer) or a list of layers, got float"),
        ({"layers": None}, "layers: expected a layer (an integer) or a list of layers, got NoneType"),
        ({"include": None}, "include: expected one or a list of mean, per_tok, bos, contacts, got NoneType"),
    ],
)
def test_api_embed_names_layers_or_include_of_the_wrong_type(kw, said_, ws):
    """`embed_sequences(m, s, layers=1.0)` (or None, or include=None) said "'float' object is not
    iterable", naming nothing."""
    import resm

    with pytest.raises(TypeError) as e:
        resm.embed_sequences(ws["tiny"], {"a": "GGGAAACCC"}, device="cpu", **kw)
    assert str(e.value) == said_


def test_an_include_named_twice_is_listed_once(ws, tmp_path):
    """`resm embed --include mean mean` (and the API's include=["mean", "mean"]) wrote an index
    listing mean twice, beside one mean array per record (a layer named twice was listed once)."""
    import resm
    from resm.cli import main as cli_main

    out = tmp_path / "e.safetensors"
    assert cli_main(["embed", str(ws["tiny"]), str(ws["fa"]), str(out), "--include", "mean", "mean", "per_tok"]) == 0
    assert resm.read_embeddings(out)[1]["include"] == ["mean", "per_tok"]
    _, index = resm.embed_sequences(ws["tiny"], {"a": "GGGAAACCC"}, include=["mean", "mean"], device="cpu")
    assert index["include"] == ["mean"]


# ---------------------------------------------------------------- two outputs to one stream
def test_two_outputs_named_dash_are_both_written(ws, tmp_path, capfd, monkeypatch):
    """`resm fold x.fa -o - --bpp -` printed the pair probabilities alone, and `--report - -o -`
    the report alone: a stream's output staged under the same name replaced the first, lost
    with exit code 0 (`-o - --bpp /dev/stdout` wrote both). Both are written now, in the order
    `-o - --bpp /dev/stdout` writes them."""
    from resm.cli import main as cli_main

    monkeypatch.chdir(tmp_path)
    fold = ["fold", str(ws["fa"]), "--threads", "1"]
    capfd.readouterr()
    assert cli_main([*fold, "-o", "-", "--bpp", "/dev/stdout"]) == 0
    both = capfd.readouterr().out
    assert cli_main([*fold, "-o", "-", "--bpp", "-"]) == 0
    assert capfd.readouterr().out == both and ">r1\nGGGAAACCCAUGC\n" in both and "base-pair probabilities" in both
    report = ["fold", str(ws["dbn"]), "--reference", str(ws["dbn"]), "--threads", "1", "--report", "-", "-o", "-"]
    assert cli_main(report) == 0
    out = capfd.readouterr().out
    assert ">hp0\n" in out and "\nhp0\t20\t" in out
    assert os.listdir(tmp_path) == []
