"""The fourth hostile-input audit: each case hung, was blamed on the wrong thing in more than
one line, or gave a silent wrong result before its fix. Command-line cases keep the rule of
:mod:`tests.robustness.cases` (one line naming the thing, the exit code, nothing
written)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resm.cli import main as cli_main
from tests.conftest import ENV
from tests.robustness.cases import Case, check_one_line, write
from tests.robustness.conftest import said

FOLD = ["fold", "{fa}", "-o", "{t}/o.dbn", "--threads", "1"]


# ---------------------------------------------------------------- a prior cache folder
# A cache folder that cannot hold entries was found out when the first prior was stored, and
# said as 'record 'r1' (13 nt): the pair prior (eternafold) cannot fold it (OutputError: ...)'
# after a progress bar; resm evaluate did not even refuse a cache folder that is a file.
def _link_loop(p: dict) -> None:
    os.symlink("loop", Path(p["t"]) / "loop")


CASES = [
    Case(
        "fold/bpp-cache-under-a-file",
        [*FOLD, "--bpp-cache", "{t}/f/c"],
        1,
        ["{t}/f/c: cannot be created, {t}/f is not a folder"],
        write("f", "a file\n"),
    ),
    Case(
        "fold/bpp-cache-a-link-that-loops",
        [*FOLD, "--bpp-cache", "{t}/loop"],
        1,
        ["{t}/loop: a symbolic link that loops"],
        _link_loop,
    ),
    Case("fold/bpp-cache-read-only", [*FOLD, "--bpp-cache", "/proc/c"], 1, ["/proc/c: cannot write in"]),
    Case(
        "evaluate/bpp-cache-a-file",
        ["evaluate", "structure", "--model", "default", "--dataset", "vl1", "--bpp-cache", "{t}/f", "--threads", "1"],
        1,
        ["{t}/f: is a file; a folder is to be written here"],
        write("f", "a file\n"),
    ),
    Case(
        "finetune/data-bpp-cache-under-a-file",
        ["finetune", "--config", "{structure_cfg}", "train.out_dir={t}/run", "data.bpp_cache={t}/f/c"],
        1,
        ["data.bpp_cache {t}/f/c: cannot be created, {t}/f is not a folder"],
        write("f", "a file\n"),
    ),
]


# A prior cache folder inside the run folder, and a run refused after the cache check: neither
# folder is left (the cache folder is made when its first entry is stored; the run undoes its start).
CASES += [
    Case(
        f"finetune/bpp-cache-in-the-run-then-{what}",
        [
            "finetune",
            "--config",
            "{structure_cfg}",
            "train.out_dir={t}/run",
            "data.bpp_cache={t}/run/c",
            "data.use_bpp=true",
            *extra,
        ],
        1,
        [said_],
    )
    for what, extra, said_ in [
        (
            "a-start-model-of-another-kind",
            ["head={kind: pairs}", "data.use_bpp=false", "start.model={structure_model}"],
            "start.model",
        ),
        ("max-minutes-negative", ["train.max_minutes=-1"], "train.max_minutes"),
    ]
]


# The cache folder is an output of resm fold and resm evaluate, held to the outputs' rules: with
# -o o.dbn --bpp-cache o.dbn the fold ran, the cache made o.dbn a folder, and the output then
# failed ('o.dbn: cannot be put in place (Is a directory)') after a progress bar, the folder left.
CASES += [
    Case("fold/bpp-cache-is-the-output", [*FOLD, "--bpp-cache", "{t}/o.dbn"], 1, ["--out and --bpp-cache both name"]),
    Case(
        "fold/bpp-cache-is-the-split-dir",
        ["fold", "{fa}", "--split-dir", "{t}/d", "--bpp-cache", "{t}/d", "--threads", "1"],
        1,
        ["--split-dir and --bpp-cache both name"],
    ),
    Case(
        "evaluate/bpp-cache-is-the-table",
        [
            "evaluate",
            "structure",
            "--model",
            "default",
            "--dataset",
            "vl1",
            "--out",
            "{t}/t.md",
            "--bpp-cache",
            "{t}/t.md",
        ],
        1,
        ["--out and --bpp-cache both name"],
    ),
]


def test_api_refuses_a_cache_folder_under_a_file(tmp_path):
    import resm

    (tmp_path / "f").write_text("a file\n")
    with pytest.raises(ValueError) as e:
        resm.load_predictor("default", bpp_cache=tmp_path / "f" / "c", device="cpu")
    assert str(e.value) == f"bpp_cache {tmp_path}/f/c: cannot be created, {tmp_path}/f is not a folder"
    assert os.listdir(tmp_path) == ["f"]


# ---------------------------------------------------------------- a cache entry that is no file
# An entry that is a named pipe hung resm fold for ever (np.load blocked opening it, and
# SIGTERM did not end the wait); an entry that is a folder failed the fold in two lines.
@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_cache_entry_that_is_no_file_is_passed_over(kind, ws, tmp_path):
    cache = tmp_path / "c"
    argv = ["fold", str(ws["fa"]), "-o", str(tmp_path / "a.dbn"), "--threads", "1", "--bpp-cache", str(cache)]
    assert cli_main(argv) == 0
    entries = sorted(cache.iterdir())
    assert len(entries) == 2  # one per record
    for e in entries:
        e.unlink()
        os.mkfifo(e) if kind == "fifo" else e.mkdir()
    argv[3] = str(tmp_path / "b.dbn")
    # a process of its own, so that a read that blocks on the pipe fails the test (timeout)
    p = subprocess.run([sys.executable, "-m", "resm", *argv], capture_output=True, text=True, env=ENV, timeout=120)
    assert p.returncode == 0, p.stderr
    err = said(p.stderr)
    why = "is a folder" if kind == "folder" else "is not a regular file"
    assert sorted(err[:2]) == [
        f"resm: warning: {e}: prior cache entry not used ({why}); computed again, not stored" for e in entries
    ], err
    assert (tmp_path / "a.dbn").read_bytes() == (tmp_path / "b.dbn").read_bytes()
    assert sorted(cache.iterdir()) == entries  # left in place, nothing written into the pipe
    assert all(e.is_fifo() if kind == "fifo" else e.is_dir() for e in entries)


# ---------------------------------------------------------------- a dense cache entry of another sequence
# The 2-D head's dense prior cache held no sequence digest: the entry of another sequence of the
# same length (a copied or renamed file) was read as this sequence's prior, with no warning.
def test_a_dense_cache_entry_of_another_sequence_is_never_used(tmp_path, capfd):
    from resm.heads.pair_map import StructureHeadConfig
    from resm.structure.priors import cached_dense_prior, head_pair_prior

    cfg, a, b = StructureHeadConfig(), "GGGGAAAACCCCAUGCAUGC", "AUAUAUAUGGGGCCCCGCGC"
    assert len(a) == len(b)
    first_a = cached_dense_prior(tmp_path / "a", a, cfg)
    cached_dense_prior(tmp_path / "b", b, cfg)
    (entry_a,), (entry_b,) = (tmp_path / "a").iterdir(), (tmp_path / "b").iterdir()
    shutil.copy(entry_b, entry_a)  # b's prior under a's name
    capfd.readouterr()
    got = cached_dense_prior(tmp_path / "a", a, cfg)
    assert np.array_equal(got, first_a) and np.array_equal(got, head_pair_prior(a, cfg).astype(np.float16))
    err = capfd.readouterr().err.strip().splitlines()
    said_ = "stored for another sequence"
    assert err == [f"resm: warning: {entry_a}: prior cache entry not used ({said_}); computed again"]
    assert np.array_equal(cached_dense_prior(tmp_path / "a", a, cfg), first_a)  # stored again, good this time
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------- a data set named twice
# resm evaluate structure --dataset vl1 vl1 folded the set twice and printed every row of its
# table twice, the margins too, as if there were two sets.
def test_evaluate_scores_a_set_named_twice_once(tmp_path, capfd):
    d = tmp_path / "data" / "ss" / "pdb"
    d.mkdir(parents=True)
    (d / "VL1.tsv").write_text("id\tsequence\tpairs\nhp\tGGGGAAAACCCCAUGGGAAACCCAU\t1:12 2:11 3:10 4:9\n")
    argv = ["evaluate", "structure", "--model", "default", "--dataset", "vl1", "vl1", "--data-dir", str(d.parents[1])]
    assert cli_main([*argv, "--folders", "rnafold", "--threads", "1"]) == 0
    rows = [ln for ln in capfd.readouterr().out.splitlines() if ln.startswith("| vl1, canonical pairs | 1 | rnafold")]
    assert len(rows) == 1, rows


# ---------------------------------------------------------------- a setting that is no finite number
# A NaN or an infinity passed every check written as 'x <= 0' or 'x > 0': loss.pos_weight=.inf
# trained a structure model on a NaN loss and wrote it, exit 0; compare's probe.C=.nan was
# accepted. One rule now, where a config value becomes a float (resm.config.coerce).
COMPARE = ["compare", "--config", "{compare_cfg}", "out_dir={t}/cmp"]
CASES += [
    Case(
        "finetune/structure-pos-weight-inf",
        ["finetune", "--config", "{structure_cfg}", "train.out_dir={t}/run", "loss.pos_weight=.inf"],
        1,
        ["loss.pos_weight: expected a finite number, got inf"],
    ),
    Case("compare/probe-c-nan", [*COMPARE, "probe.C=.nan"], 1, ["probe.C: expected a finite number, got nan"]),
    Case("compare/probe-c-inf", [*COMPARE, "probe.C=.inf"], 1, ["probe.C: expected a finite number, got inf"]),
]


# ---------------------------------------------------------------- a path that is a number
# data_dir: 3 ran resm compare (and every other config) with the data folder '3'; out_dir: 3 wrote
# a folder '3', a backend's checkpoint: 3 looked for a file '3': str() wrote the number out. A
# key naming a file or a folder takes a string only (resm.config.PathText).
CASES += [
    Case("compare/data-dir-a-number", [*COMPARE, "data_dir=3"], 1, ["data_dir: expected a path, got 3"]),
    Case("compare/data-train-a-number", [*COMPARE, "data.train=3"], 1, ["data.train: expected a path, got 3"]),
    Case(
        "compare/backend-checkpoint-a-number",
        [*COMPARE, "backends=[{name: b, kind: resm, checkpoint: 3}]"],
        1,
        ["backends[0] (b).checkpoint: expected a path, got 3"],
    ),
    Case(
        "finetune/out-dir-a-number",
        ["finetune", "--config", "{structure_cfg}", "train.out_dir=3"],
        1,
        ["train.out_dir: expected a path, got 3"],
    ),
    Case(
        "finetune/bpp-cache-a-number",
        ["finetune", "--config", "{structure_cfg}", "train.out_dir={t}/run", "data.bpp_cache=3"],
        1,
        ["data.bpp_cache: expected a path, got 3"],
    ),
    Case(
        "finetune/data-dir-a-list",
        ["finetune", "--config", "{structure_cfg}", "train.out_dir={t}/run", "data_dir=[1]"],
        1,
        ["data_dir: expected a path, got [1]"],
    ),
]


@pytest.mark.parametrize(
    ("key", "value", "said_"),
    [
        ("out_dir", 3, "out_dir: expected a path, got 3"),
        ("data_dir", 3, "data_dir: expected a path, got 3"),
        ("backends", [{"name": "m", "kind": "multimolecule", "model": 7}], "backends[0] (m).model: expected a path"),
        ("rri", {"train": 1, "test": "t.tsv"}, "rri.train: expected a path, got 1"),
        ("mrl", {"train": "u.csv", "test": 2.5}, "mrl.test: expected a path, got 2.5"),
    ],
)
def test_compare_config_paths_are_strings(key, value, said_):
    """parse_config (the compare config as a dict, past load_config) holds every key naming a
    file or a folder to the same rule."""
    from resm.compare.config import parse_config
    from resm.config import ConfigError

    cfg = {"backends": [{"name": "v", "kind": "viennarna"}], "data": {"train": "a", "val": "b", "test": "c"}}
    cfg[key] = value
    with pytest.raises(ConfigError) as e:
        parse_config(cfg)
    assert str(e.value).startswith(said_), str(e.value)


# ---------------------------------------------------------------- an interrupted sharded run
# Ctrl-C during a sharded resm embed left the work folder (hundreds of MB of finished shards, or
# only job.json when no shard had finished) and said only 'resm embed: interrupted'.
@pytest.mark.parametrize("finished", [0, 1])
def test_an_interrupted_sharded_run_says_what_it_keeps(finished, ws, tmp_path, capfd, monkeypatch):
    from resm.utils.shards import ShardRun

    fa = tmp_path / "in.fa"
    fa.write_text("".join(f">r{k}\nGGGAAACCC{'A' * k}\n" for k in range(5)))
    out = tmp_path / "e.npz"
    argv = ["embed", str(ws["tiny"]), str(fa), str(out), "--shard-size", "2", "--device", "cpu"]
    seal = ShardRun.seal

    def sealed(self, s):  # Ctrl-C once shard 0 is in place
        seal(self, s)
        raise KeyboardInterrupt

    def nothing_done(self, work):  # Ctrl-C before any shard is done
        raise KeyboardInterrupt

    monkeypatch.setattr(ShardRun, "seal", sealed) if finished else monkeypatch.setattr(
        ShardRun, "process", nothing_done
    )
    capfd.readouterr()
    assert cli_main(argv) == 130
    err = said(capfd.readouterr().err)
    work = tmp_path / "e.npz.shards"
    if finished:
        assert err[-1] == (
            f"resm embed: interrupted; 1 of 3 shards are kept in {work} (run the same command again to resume)"
        ), err
        assert (work / "job.json").exists() and not out.exists()
        monkeypatch.setattr(ShardRun, "seal", seal)
        assert cli_main(argv) == 0 and out.exists() and not work.exists()  # resumed, then merged
    else:
        assert err[-1] == "resm embed: interrupted", err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fa"]  # no work folder left


# ---------------------------------------------------------------- a damaged ZeRO folder
# DeepSpeed printed 'Processing zero checkpoint ...' (and its accelerator, when first imported)
# on standard output, before the one error line: three lines for one error.
def test_a_damaged_zero_folder_is_one_line_and_nothing_else(ws, tmp_path, capfd):
    pytest.importorskip("deepspeed")
    import torch

    run = tmp_path / "run"
    shutil.copytree(ws["run"], run)
    ck = run / "checkpoints" / "step_00000002"
    (ck / "engine.pt").unlink()
    (ck / "ds").mkdir()
    states = {"module": {"w": torch.ones(2)}, "buffer_names": [], "param_shapes": [{"w": torch.Size([2])}]}
    torch.save({**states, "shared_params": [], "ds_version": "0.14.0"}, ck / "ds" / "mp_rank_00_model_states.pt")
    capfd.readouterr()
    assert cli_main(["export", str(run), "--out", str(tmp_path / "esm2_m.pt")]) == 1
    out, err = capfd.readouterr()
    assert out == "", out
    lines = said(err)  # the reason in the brackets is DeepSpeed's own words
    assert len(lines) == 1 and lines[0].startswith(
        f"resm export: error: {ck / 'ds'}: not a readable DeepSpeed checkpoint ("
    )
    assert not list(tmp_path.glob("esm2_m*"))


# ---------------------------------------------------------------- the Python API
# Predictor.fold / fold_one made no memory check: fold_one('A' * 100000) had the process killed
# for its memory (resm fold refuses such input in one line before any work).
@pytest.fixture(scope="module")
def predictor():
    import resm

    return resm.load_predictor(device="cpu", threads=1)


def test_api_fold_checks_the_memory_first(predictor, monkeypatch):
    from resm.utils import memory

    monkeypatch.setattr(memory, "available_memory", lambda: memory.GIB // 2)
    for call in (lambda: predictor.fold_one("GGGAAACCCA" * 300), lambda: list(predictor.fold({"x": "ACGU" * 750}))):
        with pytest.raises(memory.MemoryCheckError) as e:
            call()
        said_ = str(e.value)
        assert said_.startswith("folding 1 record (the longest 3000 nt, 1 prior worker) needs about 0.8 GiB"), said_
        assert said_.endswith("or call inside resm.utils.memory.memory_check(False) to run anyway")
    with memory.memory_check(False):  # the way round it, as --ignore-memory-check
        assert len(predictor.fold_one("GGGGAAAACCCC")[0].seq) == 12


# A whole number given as a sequence was read as that many NUL bytes ('record utr1: symbol
# '\x00' at position 1 is not a nucleotide'); a container that is none said "'NoneType' object
# is not iterable", naming no keyword.
def _bundles(ws):
    import resm

    return resm.load_bundle(ws["rri_model"], device="cpu"), resm.load_bundle(ws["mrl_model"], device="cpu")


def test_api_names_a_sequence_or_a_container_of_the_wrong_type(ws, predictor):
    import resm

    rri, mrl = _bundles(ws)
    calls = [
        (lambda: mrl.predict_mrl([3]), "record 'utr1': the sequence must be a str, got int"),
        (lambda: mrl.predict_mrl({"u": 7}), "record 'u': the sequence must be a str, got int"),
        (lambda: rri.interact([("ACGUACGU", 3)]), "record 'b1': the sequence must be a str, got int"),
        (lambda: predictor.fold_one(5), "record 'seq': the sequence must be a str, got int"),
        (
            lambda: list(predictor.fold(None)),
            "records: expected sequences, (id, sequence) pairs or a mapping of id to sequence, got NoneType",
        ),
        (lambda: rri.interact(None), "pairs: expected (a, b) or (a_name, a, b_name, b) pairs, got NoneType"),
        (lambda: mrl.predict_mrl(3), "seqs: expected UTR sequences, or a mapping of id to UTR, got int"),
        (
            lambda: resm.embed_sequences(ws["tiny"], None, device="cpu"),
            "sequences: expected sequences, (id, sequence) pairs or a mapping of id to sequence, or a file, "
            "got NoneType",
        ),
    ]
    for call, message in calls:
        with pytest.raises(TypeError) as e:
            call()
        assert str(e.value) == message


# A path keyword of the wrong type said 'expected str, bytes or os.PathLike object, not int'.
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda resm, ws: resm.load_predictor(3), "model: expected a path or a model name, got int"),
        (
            lambda resm, ws: resm.load_predictor(ws["tiny"], zero_shot=1.5),
            "zero_shot: expected a path or a model name, got float",
        ),
        (lambda resm, ws: resm.load_bundle(None), "model: expected a path or a model name, got NoneType"),
        (
            lambda resm, ws: resm.load_bundle(ws["rri_model"], backbone=7),
            "backbone: expected a path or a model name, got int",
        ),
        (lambda resm, ws: resm.load_backbone(3), "model: expected a path or a model name, got int"),
        (lambda resm, ws: resm.embed_sequences(None, ["ACGU"]), "model: expected a path or a model name, got NoneType"),
    ],
)
def test_api_names_a_path_keyword_of_the_wrong_type(call, message, ws):
    import resm

    with pytest.raises(TypeError) as e:
        call(resm, ws)
    assert str(e.value) == message


# ---------------------------------------------------------------- a layer out of range
# 'layer 99 does not exist (model has 2 layers)' named neither --repr-layers nor the API's layers.
LAYERS = "layer {v} does not exist (the model has 2 layers: give 0, the embedding layer, to 2, or -3 to -1)"
CASES += [
    Case(
        f"embed/repr-layers-{v}",
        ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--repr-layers", "-1", str(v)],
        1,
        ["--repr-layers: " + LAYERS.format(v=v)],
    )
    for v in (3, -4)
]


def test_api_refuses_to_embed_nothing(ws):
    """embed_sequences(include=[]) or (layers=[]) returned empty arrays without a word, where
    resm embed --include / --repr-layers want at least one value."""
    import resm

    for kw, said_ in [
        ({"include": []}, "include: give at least one of mean, per_tok, bos, contacts, got an empty list"),
        ({"layers": ()}, "layers: give at least one layer, got an empty list"),
    ]:
        with pytest.raises(ValueError) as e:
            resm.embed_sequences(ws["tiny"], ["ACGUACGU"], device="cpu", **kw)
        assert str(e.value) == said_ + " (nothing would be embedded)"


def test_api_names_a_layer_out_of_range(ws):
    import resm

    with pytest.raises(ValueError) as e:
        resm.embed_sequences(ws["tiny"], ["ACGUACGU"], layers=[0, 7], device="cpu")
    assert str(e.value) == "layers: " + LAYERS.format(v=7)


# ---------------------------------------------------------------- every command-line case above
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)
