"""The seventh hostile-input audit: each case was said naming what the user never wrote (an empty
argument as the current folder ``.``), said as Python's own error (a damaged bundle manifest or
probe record, a trainer state of another architecture), wrote no file for a value the API itself
made (NumPy layers), or refused a model the command's help offers (``resm probe default``).
Command-line cases keep the rule of :func:`tests.robustness.cases.check_one_line` (one line
naming the thing, the exit code, nothing written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import resm
from tests.robustness.cases import PROBE_FOLD, Case, check_one_line, write

EMPTY = "is empty ('' names no file, folder or value)"


# ---------------------------------------------------------------- an empty argument
# `resm fold ""` said '.: is a directory, not a sequence file', `-o ""` '.: is a folder; a file is
# to be written here', `resm embed "" ...` and `resm compare --config ""` "PosixPath('.') has an
# empty name" (Path("") is the current folder): now a usage error naming the argument.
CASES = [
    Case("fold/input-empty", ["fold", "", "-o", "{t}/o.dbn", "--threads", "1"], 2, [f"argument INPUT: {EMPTY}"]),
    Case("fold/out-empty", ["fold", "{fa}", "-o", "", "--threads", "1"], 2, [f"argument -o/--out: {EMPTY}"]),
    Case("embed/model-empty", ["embed", "", "{fa}", "{t}/e.npz"], 2, [f"argument MODEL: {EMPTY}"]),
    Case("embed/input-empty", ["embed", "{tiny}", "", "{t}/e.npz"], 2, [f"argument INPUT: {EMPTY}"]),
    Case("compare/config-empty", ["compare", "--config", ""], 2, [f"argument --config: {EMPTY}"]),
    Case("export/out-empty", ["export", "{run}", "--out", ""], 2, [f"argument -o/--out: {EMPTY}"]),
    Case(
        "pretrain/override-empty", ["pretrain", "--config", "{pretrain_cfg}", ""], 2, [f"argument key=value: {EMPTY}"]
    ),
]


def test_an_option_empty_by_default_may_be_given_empty(ws, tmp_path, capfd):
    """`--linker ""` is its default, no linker; `--scheme ""` keeps its rule's own words."""
    from resm.cli import main as cli_main

    argv = ["interact", str(ws["pairs"]), "--zero-shot", "--backbone", str(ws["tiny"]), "--threads", "1"]
    assert cli_main([*argv, "--linker", "", "-o", str(tmp_path / "i.tsv")]) == 0
    with pytest.raises(SystemExit) as e:
        cli_main(["fold", str(ws["fa"]), "--scheme", ""])
    assert e.value.code == 2
    assert "argument --scheme: must name a mapping scheme" in capfd.readouterr().err


@pytest.mark.parametrize(
    "call",
    [
        lambda ws: resm.load_predictor(""),
        lambda ws: resm.load_backbone(""),
        lambda ws: resm.load_bundle(""),
        lambda ws: resm.load_predictor(ws["tiny"], zero_shot=""),
        lambda ws: resm.embed_sequences("", ["ACGU"], device="cpu"),
        lambda ws: resm.embed_sequences(ws["tiny"], "", device="cpu"),
    ],
    ids=["load_predictor", "load_backbone", "load_bundle", "zero_shot", "embed-model", "embed-sequences"],
)
def test_api_names_an_empty_path(call, ws):
    """The API said '.: is a folder, not a checkpoint file' or '.: is a directory'."""
    with pytest.raises(ValueError, match=r"^(model|zero_shot|sequences): is empty \('' names nothing to read\)$"):
        call(ws)


# ---------------------------------------------------------------- a damaged bundle manifest
# A head entry that is no object was said "no head 'rri' (has: rri)"; its 'extra' null "not a
# usable model bundle (head 'rri') ('NoneType' object has no attribute 'get')".
def _head_entry(edit):
    def setup(p: dict) -> None:
        dst = Path(p["t"]) / "m"
        shutil.copytree(p["rri_model"], dst)
        manifest = json.loads((dst / "manifest.json").read_text())
        edit(manifest["heads"])
        (dst / "manifest.json").write_text(json.dumps(manifest))

    return setup


INTERACT = ["interact", "{pairs}", "--model", "{t}/m", "--backbone", "{tiny}", "-o", "{t}/s.tsv", "--threads", "1"]
CASES += [
    Case(
        "interact/bundle-head-a-string",
        INTERACT,
        1,
        ["{t}/m/manifest.json: head 'rri' must be an object, got str"],
        _head_entry(lambda heads: heads.update(rri="x")),
    ),
    Case(
        "interact/bundle-head-extra-null",
        INTERACT,
        1,
        ["{t}/m/manifest.json: head 'rri': field 'extra' must be an object"],
        _head_entry(lambda heads: heads["rri"].update(extra=None)),
    ),
    Case(
        "interact/bundle-head-task-a-number",
        INTERACT,
        1,
        ["{t}/m/manifest.json: head 'rri': field 'task' must be a string, got 1"],
        _head_entry(lambda heads: heads["rri"].update(task=1)),
    ),
]


# ---------------------------------------------------------------- a checkpoint of two runs
# A trainer state recording another architecture than its engine.pt's weights (files of two runs
# put together) was torch's RuntimeError, said as 'unexpected; rerun with --debug'.
def _architecture(**changes):
    def setup(p: dict) -> None:
        shutil.copytree(p["run"], Path(p["t"]) / "run")
        state = Path(p["t"]) / "run" / "checkpoints" / "step_00000002" / "trainer_rank0.json"
        data = json.loads(state.read_text())
        data["fingerprint"]["architecture"].update(changes)
        state.write_text(json.dumps(data))

    return setup


EXPORT = ["export", "{t}/run", "--out", "{t}/esm2_x.pt"]
FIT = "{t}/run/checkpoints/step_00000002: weights do not fit the architecture trainer_rank0.json records: "
CASES += [
    Case("export/more-layers-than-weights", EXPORT, 1, [FIT + "missing weights"], _architecture(num_layers=3)),
    Case(
        "export/another-width", EXPORT, 1, [FIT + "embed_tokens.weight has shape (33, 64)"], _architecture(embed_dim=32)
    ),
]


# ---------------------------------------------------------------- a damaged probe record
# A checksum that is no string was "TypeError: 'int' object is not subscriptable (unexpected ...)".
def _probe_record(**changes):
    def setup(p: dict) -> None:
        t = Path(p["t"])
        shutil.copy2(p["probe"], t / "p.pt")
        record = json.loads(Path(p["probe"] + ".json").read_text())
        (t / "p.pt.json").write_text(json.dumps({**record, **changes}))

    return setup


CASES += [
    Case(
        f"fold/probe-record-{key}-{value}",
        PROBE_FOLD,
        1,
        [f"{{t}}/p.pt.json: {key} must be a string, got {value}"],
        _probe_record(**{key: value}),
    )
    for key, value in (("backbone_sha256", 0), ("scheme_hash", None), ("probe_sha256", 1))
]


# ---------------------------------------------------------------- the default backbone's probe
def test_a_probe_fits_and_folds_on_the_default_backbone(ws, tmp_path, capfd):
    """`resm probe default` (the help offers 'default') fitted its probe, then said
    'default: backbone file not found (cannot check the probe against it)'."""
    from resm.cli import main as cli_main

    probe = tmp_path / "p.pt"
    argv = ["probe", "default", str(ws["dbn"]), "--out", str(probe), "--max-train", "2", "--max-val", "2"]
    assert cli_main([*argv, "--threads", "1"]) == 0, capfd.readouterr().err
    assert json.loads((tmp_path / "p.pt.json").read_text())["backbone"] == "default"
    out = tmp_path / "o.dbn"
    fold = ["fold", str(ws["fa"]), "--model", "default", "--probe", str(probe), "-o", str(out)]
    assert cli_main([*fold, "--threads", "1"]) == 0, capfd.readouterr().err
    assert out.read_text().count(">") == 2
    assert cli_main([*fold[:3], str(ws["tiny"]), *fold[4:], "--threads", "1"]) == 1  # another backbone
    assert "probe was fitted on another backbone (default, sha256" in capfd.readouterr().err


# ---------------------------------------------------------------- NumPy layers
@pytest.mark.parametrize("layers", [np.array([0, 2]), (np.int64(0), 2), np.int64(-1)], ids=["array", "tuple", "one"])
@pytest.mark.parametrize("name", ["e.npz", "e.safetensors"])
def test_api_layers_given_as_numpy_integers_are_written(layers, name, ws, tmp_path):
    """The index kept NumPy integers, and writing it failed with 'Object of type int64 is not
    JSON serializable' (no file)."""
    arrays, index = resm.embed_sequences(ws["tiny"], {"a": "GGGAAACCC"}, layers=layers, device="cpu")
    assert all(type(layer) is int for layer in index["layers"])
    resm.write_embeddings(tmp_path / name, arrays, index)
    back, back_index = resm.read_embeddings(tmp_path / name)
    assert back_index["layers"] == index["layers"] and sorted(back) == sorted(arrays)


def test_write_embeddings_names_an_index_or_arrays_of_the_wrong_type(tmp_path):
    """An index of None or a list of arrays was "'NoneType' object has no attribute 'get'"; an
    index holding an object JSON cannot write was json's TypeError, naming no file."""
    good = {"a/mean/1": np.zeros(3, dtype=np.float32)}
    path = tmp_path / "e.npz"
    with pytest.raises(TypeError, match=r"e\.npz: index: expected a mapping .* got NoneType$"):
        resm.write_embeddings(path, good, None)
    wrong_arrays = r"e\.npz: arrays: expected a mapping of array name \(str\) to array, got list$"
    with pytest.raises(TypeError, match=wrong_arrays):
        resm.write_embeddings(path, list(good.values()), {"ids": ["a"]})
    with pytest.raises(ValueError, match=r"e\.npz: index: not JSON-able \(object is not JSON-able\)$"):
        resm.write_embeddings(path, good, {"ids": ["a"], "note": object()})
    resm.write_embeddings(path, good, {"ids": ["a"], "lengths": [np.int32(3)]})  # NumPy numbers are numbers
    assert resm.read_embeddings(path)[1]["lengths"] == [3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npz"]


# ---------------------------------------------------------------- bytes, NumPy numbers
def test_one_bytes_object_is_one_utr_and_names_the_keyword_elsewhere(ws):
    """`predict_mrl(b"ACGU...")` predicted per byte ("record 'utr1': the sequence must be a str,
    got int"), as `embed_sequences(model, b"ACGU")` read it ('a record must be ..., got int'):
    one bytes object is one UTR, as `fold_one(b"...")` is one sequence; embed names `sequences`."""
    mrl = resm.load_bundle(ws["mrl_model"], device="cpu")
    utr = "ACGUACGUAAGG"
    assert mrl.predict_mrl(utr.encode()).tolist() == mrl.predict_mrl([utr]).tolist()
    with pytest.raises(TypeError, match=r"^sequences: got one bytes object; give sequences in a list"):
        resm.embed_sequences(ws["tiny"], utr.encode(), device="cpu")


def test_api_threads_may_be_a_numpy_integer():
    """`load_predictor(threads=np.int64(2))` was refused as 'threads: must be an integer in
    [0, 1024] (0: every core), got 2'."""
    predictor = resm.load_predictor(device="cpu", threads=np.int64(2))
    assert len(predictor.fold_one("GGGGAAACCCC").dotbracket) == 11


CASES.append(
    Case(  # was "symbol '\ufffd' (U+FFFD) at position 3", a symbol the file does not hold
        "fold/a-latin-1-byte-in-a-sequence",
        ["fold", "{t}/l.fa", "-o", "{t}/o.dbn", "--threads", "1"],
        1,
        ["{t}/l.fa: record 'a': a byte that is not UTF-8 text (read as U+FFFD) at position 3 is not a nucleotide"],
        write("l.fa", b">a\nAC\xe9GU\n"),
    )
)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)
