"""The tenth hostile-input audit: each case was an input resm took silently or said wrongly: a
link that loops or points at nothing, given as ``resm evaluate``'s model, a compare config's
data file, a probe's or fold's structures, an export's checkpoint (or a step of its run) or a
training config's file, was said not to exist ('No such file or directory', 'not found') of a path that is there, now
said through :func:`resm.utils.paths.no_such` (or, for what Python's ``open`` raises, the one
line of every OSError); ``resm fold --model BUNDLE -o BACKBONE`` wrote over the backbone the
bundle records; ``resm interact --adapter`` on a bundle with no adapter (frozen backbone, or the
one-hot baseline) put the adapter in front of heads trained without it, or ignored it; and a
table field over the ``csv`` module's limit was said in its words ('field larger than field
limit (131072)'). Command-line cases keep the rule of
:func:`tests.robustness.cases.check_one_line` (one line naming the thing, the exit code,
nothing written)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.robustness.cases import Case, check_one_line
from tests.robustness.test_hostile_audit9 import _peft


# ---------------------------------------------------------------- a link to nothing
def _links(p: dict) -> None:
    t = Path(p["t"])
    (t / "loop_a").symlink_to("loop_b")
    (t / "loop_b").symlink_to("loop_a")
    (t / "dangling.pt").symlink_to("gone.pt")
    (t / "dangling.dbn").symlink_to("gone.dbn")


def _config_naming(key: str, src: str, target: str):
    """``{t}/c.yaml``: a copy of the workspace config ``src`` whose ``key`` (a.b) names ``target``."""

    def setup(p: dict) -> None:
        _links(p)
        cfg = yaml.safe_load(Path(p[src]).read_text())
        *path, last = key.split(".")
        node = cfg
        for k in path:
            node = node[k]
        node[last] = target.replace("{t}", p["t"])
        if "out_dir" in cfg:
            cfg["out_dir"] = f"{p['t']}/cmp"
        if "train" in cfg and isinstance(cfg["train"], dict) and "out_dir" in cfg["train"]:
            cfg["train"]["out_dir"] = f"{p['t']}/run"
        (Path(p["t"]) / "c.yaml").write_text(yaml.safe_dump(cfg))

    return setup


LOOP = "{t}/loop_a: is a link that loops ("
DANGLING = "{t}/dangling.pt: is a link to gone.pt, which is not there"
DANGLING_DBN = "{t}/dangling.dbn: is a link to gone.dbn, which is not there"
EVALUATE = ["evaluate", "structure", "--dataset", "vl1", "--folders", "--model"]
CASES = [
    Case("evaluate/link-dangling-model", [*EVALUATE, "{t}/dangling.pt"], 1, [DANGLING], _links),
    Case("evaluate/link-loop-model", [*EVALUATE, "{t}/loop_a"], 1, [LOOP], _links),
    Case(
        "fold/link-dangling-reference", ["fold", "{fa}", "--reference", "{t}/dangling.dbn"], 1, [DANGLING_DBN], _links
    ),
    Case(
        "probe/link-dangling-train",
        ["probe", "{tiny}", "{t}/dangling.dbn", "--out", "{t}/p.pt"],
        1,
        [DANGLING_DBN],
        _links,
    ),
    Case(
        "probe/link-dangling-val",
        ["probe", "{tiny}", "{dbn}", "--val", "{t}/dangling.dbn", "--out", "{t}/p.pt"],
        1,
        [DANGLING_DBN],
        _links,
    ),
    Case(
        "export/link-dangling-checkpoint",
        ["export", "{t}/dangling.pt", "--out", "{t}/esm2_e.pt"],
        1,
        [DANGLING],
        _links,
    ),
    Case(
        "compare/link-dangling-train",
        ["compare", "--config", "{t}/c.yaml"],
        1,
        ["data.train: " + DANGLING_DBN],
        _config_naming("data.train", "compare_cfg", "{t}/dangling.dbn"),
    ),
    Case(
        "finetune/link-dangling-init",
        ["finetune", "--config", "{t}/c.yaml"],
        1,
        ["model.init: {t}/dangling.pt: is a link to gone.pt, which is not there"],
        _config_naming("model.init", "structure_cfg", "{t}/dangling.pt"),
    ),
    Case(
        "interact/link-dangling-model",
        ["interact", "{pairs}", "--model", "{t}/dangling.pt", "-o", "{t}/s.tsv"],
        1,
        [DANGLING],
        _links,
    ),
]


def _run_with_a_dangling_step(p: dict) -> None:
    shutil.copytree(Path(p["run"]), Path(p["t"]) / "run")
    (Path(p["t"]) / "run" / "checkpoints" / "step_00000009").symlink_to("gone")


CASES += [
    Case(
        "export/link-dangling-checkpoint-step",
        ["export", "{t}/run", "--out", "{t}/esm2_x.pt"],
        1,
        ["{t}/run/checkpoints/step_00000009: not a complete checkpoint (is a link to gone, which is not there)"],
        _run_with_a_dangling_step,
    ),
]


# ---------------------------------------------------------------- the backbone a structure bundle records
def _structure_bundle(p: dict) -> None:
    """``{t}/model``: a bundle holding one structure head (untrained) on ``{t}/bb.pt``, a copy of
    the tiny backbone (an output must not replace it)."""
    import torch

    from resm.backbone.encoder import BackboneEncoder
    from resm.backbone.load import load_backbone
    from resm.heads.pair_map import StructureHead, StructureHeadConfig, structure_apply
    from resm.mapping import get_scheme
    from resm.tasks.base import TaskModel, save_bundle

    t = Path(p["t"])
    shutil.copy2(p["tiny"], t / "bb.pt")
    scheme = get_scheme("kdny")
    bb = load_backbone(str(t / "bb.pt"), scheme).model
    torch.manual_seed(0)
    cfg = StructureHeadConfig(embed_dim=bb.embed_dim, proj_dim=8, channels=8, blocks=1, dilations=[1])
    tm = TaskModel(BackboneEncoder(bb, "frozen"), {"structure": StructureHead(cfg)}, {"structure": structure_apply})
    config = {k: v for k, v in cfg.to_dict().items() if k != "embed_dim"}
    head = {"task": "structure", "config": config, "extra": {"threshold": 0.3}}
    save_bundle(t / "model", tm, scheme, str(t / "bb.pt"), {"structure": head})


CASES += [
    Case(
        "fold/out-over-the-bundles-backbone",
        ["fold", "{fa}", "--model", "{t}/model", "-o", "{t}/bb.pt"],
        1,
        ["{t}/bb.pt", "the backbone of --model"],
        _structure_bundle,
    ),
]


def test_fold_reads_the_structure_bundle_the_case_builds(ws, tmp_path):
    """The bundle of the case above folds (so the refusal is of the output, not of the bundle)."""
    from resm.cli import main

    _structure_bundle({"t": str(tmp_path), "tiny": str(ws["tiny"])})
    assert main(["fold", str(ws["fa"]), "--model", str(tmp_path / "model"), "-o", str(tmp_path / "o.dbn")]) == 0
    assert (tmp_path / "o.dbn").read_text().startswith(">r1")


# ---------------------------------------------------------------- an adapter on a bundle that has none
def _onehot_bundle_and_peft(p: dict) -> None:
    from resm.backbone.encoder import OneHotConfig, OneHotEncoder
    from resm.heads.rri import InteractionHead, InteractionHeadConfig, rri_apply
    from resm.mapping import get_scheme
    from resm.tasks.base import TaskModel, save_bundle

    _peft({"r": 4})(p)
    enc = OneHotEncoder(OneHotConfig(channels=8, layers=1, kernel=3, dropout=0.0))
    cfg = InteractionHeadConfig(embed_dim=enc.embed_dim, proj_dim=8, channels=8, max_length=40)
    tm = TaskModel(enc, {"rri": InteractionHead(cfg)}, {"rri": rri_apply})
    config = {k: v for k, v in cfg.to_dict().items() if k != "embed_dim"}
    save_bundle(Path(p["t"]) / "onehot", tm, get_scheme("kdny"), "", {"rri": {"task": "rri", "config": config}})


ADAPTER = ["interact", "{pairs}", "-o", "{t}/s.tsv", "--adapter", "{t}/peft", "--model"]
CASES += [
    Case(
        "interact/adapter-on-a-frozen-bundle",
        [*ADAPTER, "{rri_model}"],
        1,
        ["{t}/peft: the bundle {rri_model} holds no adapter for it to replace (trained in mode frozen"],
        _peft({"r": 4}),
    ),
    Case(
        "predict/adapter-on-a-frozen-bundle",
        ["predict", "--task", "mrl", "{utrs}", "-o", "{t}/m.tsv", "--adapter", "{t}/peft", "--model", "{mrl_model}"],
        1,
        ["{t}/peft: the bundle {mrl_model} holds no adapter for it to replace"],
        _peft({"r": 4}),
    ),
    Case(
        "interact/adapter-on-a-one-hot-bundle",
        [*ADAPTER, "{t}/onehot"],
        1,
        ["{t}/peft: the bundle {t}/onehot is a one-hot baseline: no backbone for an adapter"],
        _onehot_bundle_and_peft,
    ),
]


# ---------------------------------------------------------------- a field over the csv module's limit
def _open_quote(name: str, header: str, row: str):
    def setup(p: dict) -> None:
        tail = "A" * 140_000
        (Path(p["t"]) / name).write_text(f"{header}\n{row}\n{tail}\n")

    return setup


FIELD = "line 3: a field of more than 131,072 characters (no field resm reads is that long; a quote left open"
CASES += [
    Case(
        "interact/pairs-field-over-the-csv-limit",
        ["interact", "{t}/p.tsv", "--model", "{rri_model}", "-o", "{t}/s.tsv"],
        1,
        ["{t}/p.tsv " + FIELD],
        _open_quote("p.tsv", "a_name\ta_seq\tb_name\tb_seq\nm\tACGU\tu\tACGU", 'm2\t"ACGU\tu\tACGU'),
    ),
    Case(
        "predict/utrs-field-over-the-csv-limit",
        ["predict", "--task", "mrl", "{t}/u.csv", "--model", "{mrl_model}", "-o", "{t}/m.tsv"],
        1,
        ["{t}/u.csv " + FIELD],
        _open_quote("u.csv", "id,utr\nu1,ACGUACGU", 'u2,"ACGU'),
    ),
]


def _archiveii(table: str, split: str = ""):
    """``{t}/data``: a data folder whose ArchiveII table (and fold table) have a quote left open."""

    def setup(p: dict) -> None:
        d = Path(p["t"]) / "data" / "ss" / "archiveII"
        d.mkdir(parents=True)
        (d / "ArchiveII.csv").write_text(table)
        (d / "split_famfold.csv").write_text(split)
        shutil.copy2(p["structure_model"], Path(p["t"]) / "m_f1.pt")  # the model of fold f1

    return setup


GOOD_ARCHIVE = 'id,sequence,len,structure,base_pairs\na,GGGGAAACCCC,11,((((...)))),"[[1,11],[2,10]]"\n'
OPEN_QUOTE = '"' + "A" * 140_000 + "\n"
ARCHIVE_EVAL = ["evaluate", "structure", "--model", "{structure_model}", "--folders", "--data-dir", "{t}/data"]
CASES += [
    Case(
        "evaluate/archiveii-field-over-the-csv-limit",
        [*ARCHIVE_EVAL, "--dataset", "archiveii"],
        1,
        ["ArchiveII.csv line 3: a field of more than 131,072 characters"],
        _archiveii(GOOD_ARCHIVE + "b," + OPEN_QUOTE),
    ),
    Case(
        "evaluate/famfold-split-field-over-the-csv-limit",
        [*ARCHIVE_EVAL, "--dataset", "archiveii-famfold", "--model", "{t}/m_{{fold}}.pt", "--folds", "f1"],
        1,
        ["split_famfold.csv line 3: a field of more than 131,072 characters"],
        _archiveii(GOOD_ARCHIVE, "fold_name,partition,id\nf1,test,a\nf1," + OPEN_QUOTE),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


def test_no_such_says_a_link_to_nothing_and_else_the_readers_words(tmp_path):
    from resm.utils.paths import no_such

    (tmp_path / "d").symlink_to("gone")
    assert no_such(tmp_path / "none", "probe file") == "no such probe file"
    assert no_such(tmp_path / "d", "probe file") == "is a link to gone, which is not there"
