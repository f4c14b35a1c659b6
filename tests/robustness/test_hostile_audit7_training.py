"""The seventh hostile-input audit, training side: each case trained to its last step before it
failed (an entry of the run folder of the wrong kind), or failed in words that named neither
the file nor the key (a DeepSpeed JSON that DeepSpeed refuses). Every case keeps the rule of
:func:`tests.robustness.cases.check_one_line` (one line naming the thing, the exit code, nothing
written: no checkpoint of a run that could not finish)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.robustness.cases import Case, check_one_line, mkdir, then, write

RUN = ["train.out_dir={t}/run"]
RRI = ["finetune", "--config", "{rri_cfg}", *RUN]
MRL = ["finetune", "--config", "{mrl_cfg}", *RUN]
STRUCTURE = ["finetune", "--config", "{structure_cfg}", *RUN]
PRETRAIN = ["pretrain", "--config", "{pretrain_cfg}", *RUN]
FOLDER = "is a file; a folder is to be written here"
FILE = "is a folder; a file is to be written here"
FOREIGN = "is a folder that holds other files; not replacing it (give a new path)"


def _deepspeed(args: list[str]) -> list[str]:
    return [*args, "train.engine=deepspeed", "train.deepspeed_config={t}/ds.json"]


def _mrl_run(p: dict) -> None:
    """A copy of the workspace's finished mrl run (two steps, a checkpoint), its bundle removed."""
    shutil.copytree(Path(p["mrl_model"]).parent, Path(p["t"]) / "run")
    shutil.rmtree(Path(p["t"]) / "run" / "model")


# ---------------------------------------------------------------- run folder entries of the wrong kind
# The final model (a bundle folder, model.pt, structure_model.pt) and the checkpoints folder were
# checked only when written: a run trained every step, wrote a checkpoint, then failed.
RUN_FOLDER = [
    Case("finetune/rri-bundle-path-is-a-file", RRI, 1, ["{t}/run/model: " + FOLDER], write("run/model", "mine\n")),
    Case("finetune/mrl-bundle-path-holds-other-files", MRL, 1, ["{t}/run/model: " + FOREIGN], mkdir("run/model", True)),
    Case(
        "finetune/structure-model-path-is-a-folder",
        STRUCTURE,
        1,
        ["{t}/run/structure_model.pt: " + FILE],
        mkdir("run/structure_model.pt", True),
    ),
    Case("pretrain/model-pt-is-a-folder", PRETRAIN, 1, ["{t}/run/model.pt: " + FILE], mkdir("run/model.pt", True)),
    Case(
        "finetune/checkpoints-is-a-file",
        RRI,
        1,
        ["{t}/run/checkpoints: " + FOLDER],
        write("run/checkpoints", "mine\n"),
    ),
    Case(
        "finetune/log-is-a-folder",
        [*RRI, "train.log_every=1"],
        1,
        ["{t}/run/log.jsonl: " + FILE],
        mkdir("run/log.jsonl", True),
    ),
    Case(
        "finetune/resumed-run-with-its-bundle-path-a-file",
        [*MRL, "train.max_steps=3", "train.resume_changed=true"],
        1,
        ["{t}/run/model: " + FOLDER],
        then(_mrl_run, write("run/model", "mine\n")),
    ),
]

# ---------------------------------------------------------------- DeepSpeed JSON that DeepSpeed refuses
# zero_optimization a list was "AttributeError: 'list' object has no attribute 'get' (unexpected)";
# a stage or offload device DeepSpeed does not know was its pydantic message, naming no file.
DEEPSPEED = [
    Case(
        "finetune/deepspeed-zero-stage-4",
        _deepspeed(RRI),
        1,
        ["train.deepspeed_config {t}/ds.json: zero_optimization.stage: ", "(got 4)"],
        write("ds.json", '{"zero_optimization": {"stage": 4}}'),
    ),
    Case(
        "finetune/deepspeed-zero-stage-a-word",
        _deepspeed(RRI),
        1,
        ["train.deepspeed_config {t}/ds.json: zero_optimization.stage: ", '(got "two")'],
        write("ds.json", '{"zero_optimization": {"stage": "two"}}'),
    ),
    Case(
        "finetune/deepspeed-zero-section-a-list",
        _deepspeed(RRI),
        1,
        ["train.deepspeed_config {t}/ds.json: zero_optimization must be a JSON object, got [2]"],
        write("ds.json", '{"zero_optimization": [2]}'),
    ),
    Case(
        "pretrain/deepspeed-offload-to-disk",
        _deepspeed(PRETRAIN),
        1,
        ["train.deepspeed_config {t}/ds.json: zero_optimization.offload_optimizer.device: ", '(got "disk")'],
        write("ds.json", '{"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "disk"}}}'),
    ),
]


@pytest.mark.parametrize("case", RUN_FOLDER + DEEPSPEED, ids=lambda c: c.id)
def test_hostile_input_is_one_line_and_writes_nothing(case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


def test_shipped_deepspeed_configs_pass_the_early_check():
    """Every shipped DeepSpeed JSON passes the check made before any model is built."""
    from resm.engines import read_deepspeed_config
    from resm.train_config import TrainConfig

    shipped = sorted((Path(__file__).resolve().parents[2] / "configs" / "deepspeed").glob("*.json"))
    assert shipped
    for path in shipped:
        assert isinstance(read_deepspeed_config(TrainConfig(engine="deepspeed", deepspeed_config=str(path))), dict)


# ---------------------------------------------------------------- a validation file of training pairs
def _finetune(cfg: dict, folder: Path, capfd) -> list[str]:
    import yaml

    from resm.cli import main as cli_main
    from tests.robustness.conftest import said

    folder.mkdir()
    cfg["train"].update(out_dir=str(folder / "run"), max_steps=1, val_every=0, ckpt_every=0)
    (folder / "c.yaml").write_text(yaml.safe_dump(cfg))
    capfd.readouterr()
    assert cli_main(["finetune", "--config", str(folder / "c.yaml"), "optim.warmup_steps=0"]) == 0
    return said(capfd.readouterr().err)


def test_an_rri_validation_file_of_training_pairs_is_said(ws, tmp_path, capfd):
    """An rri run whose data.val held only its training pairs reported (and wrote into the
    bundle) validation metrics of training fit without a word; the structure task said so, in a
    check of its own that is now the one every task shares."""
    import yaml

    cfg = yaml.safe_load(Path(ws["rri_cfg"]).read_text())
    train = cfg["data"]["train"]
    cfg["data"]["val"] = train
    del cfg["data"]["val_fraction"]  # with data.val, a val_fraction is refused
    assert _finetune(cfg, tmp_path / "same", capfd) == [
        f"resm: warning: data.val ({train}): all 600 validation record(s) are training records, so the "
        "validation metrics measure training fit"
    ]
    # a joint run says it of its rri part
    joint = {
        "task": "joint",
        "model": cfg["model"],
        "tasks": {"rri": {"head": cfg["head"], "data": {**cfg["data"], "max_val": 5}}},
        "optim": cfg["optim"],
        "train": cfg["train"],
    }
    assert _finetune(joint, tmp_path / "joint", capfd) == [
        f"resm: warning: data.val ({train}): all 5 validation record(s) are training records, so the "
        "validation metrics measure training fit"
    ]
    # pairs held out of training: nothing said
    lines = Path(train).read_text().splitlines()
    (tmp_path / "train.tsv").write_text("\n".join(lines[:300]) + "\n")
    (tmp_path / "val.tsv").write_text("\n".join([lines[0], *lines[300:]]) + "\n")
    cfg["data"].update(train=str(tmp_path / "train.tsv"), val=str(tmp_path / "val.tsv"))
    assert _finetune(cfg, tmp_path / "other", capfd) == []


def test_an_empty_validation_split_of_rri_or_mrl_is_said(ws, tmp_path, capfd):
    """An rri file of one pair, or mrl data.fractions leaving no validation UTR, trained and wrote
    a bundle without validation metrics, saying only 'finished at step 1'; pretraining said it."""
    import yaml

    rri = yaml.safe_load(Path(ws["rri_cfg"]).read_text())
    one = tmp_path / "one.tsv"
    one.write_text("\n".join(Path(rri["data"]["train"]).read_text().splitlines()[:2]) + "\n")
    rri["data"]["train"] = str(one)
    assert _finetune(rri, tmp_path / "rri", capfd) == [
        f"resm: warning: the validation split is empty (data.val_fraction 0.2 of the 1 pair(s) of {one}): "
        "no validation metrics are measured",
        f"resm: warning: data.train ({one}): all 1 training pair(s) have the label 0, so the head learns only "
        "to answer that constant: val_auroc measures nothing (nan with one label in validation too)",
    ]
    mrl = yaml.safe_load(Path(ws["mrl_cfg"]).read_text())
    mrl["data"]["fractions"] = [1.0, 0.0, 0.0]
    assert _finetune(mrl, tmp_path / "mrl", capfd) == [
        f"resm: warning: the validation split is empty (data.fractions [1.0, 0.0, 0.0] of the 1500 UTR(s) of "
        f"{mrl['data']['train']}): no validation metrics are measured"
    ]
    mrl["data"]["fractions"] = [0.8, 0.2, 0.0]  # a validation part: nothing said
    assert _finetune(mrl, tmp_path / "mrl2", capfd) == []


# ---------------------------------------------------------------- two runs into one folder at once
def test_a_run_folder_another_run_is_writing_into_is_refused(ws, tmp_path, capfd, monkeypatch):
    """A second run into the folder of a running one resumed from its live checkpoints, wrote
    into its log, and failed (or made the first fail) on a checkpoint both wrote: 'Directory not
    empty'. The running one holds a lock on the folder (here, this test does)."""
    import fcntl
    import os

    from resm.cli import main as cli_main

    held: list[int] = []

    def hold(p: dict) -> None:
        (Path(p["t"]) / "run").mkdir()
        fd = os.open(Path(p["t"]) / "run", os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(fd)

    case = Case(
        "finetune/run-folder-in-use",
        RRI,
        1,
        ["train.out_dir {t}/run: another run is writing into it (wait for it to end, or give another train.out_dir)"],
        hold,
    )
    try:
        check_one_line(case, ws, tmp_path, capfd, monkeypatch)
    finally:
        for fd in held:
            os.close(fd)
    # once the other run has ended, the same command runs (and its lock ends with it)
    argv = [a.replace("{rri_cfg}", str(ws["rri_cfg"])).replace("{t}", str(tmp_path)) for a in RRI]
    assert cli_main(argv) == 0
    assert cli_main([*argv, "train.max_steps=3", "train.resume_changed=true"]) == 0
