"""The eighth hostile-input audit: each case was a hand-edited or damaged file resm reads taken
silently or said misleadingly: a ``checkpoints/step_*`` entry that is no complete checkpoint (a
file, an empty folder) taken as the newest one; a probe's ``heads`` of 4.5 read as 4; a bundle's
head config with a key that is no setting, or a value out of its range. Command-line cases keep
the rule of :func:`tests.robustness.cases.check_one_line` (one line naming the thing, the exit
code, nothing written)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.robustness.cases import PRETRAIN_COPY, PROBE_FOLD, RUN, Case, check_one_line, mkdir, then, write


# ---------------------------------------------------------------- an incomplete newest checkpoint
# A file or an empty folder named step_00000005 was taken as the newest checkpoint: a resume said
# 'no state for rank 0 (was it written with another world size?)'. Checkpoints appear whole
# (written as step_N.tmp, then renamed), so it is refused as damaged, naming it.
def _later_checkpoint_without(name: str):
    def setup(p: dict) -> None:
        ckpts = Path(p["t"]) / "run" / "checkpoints"
        shutil.copytree(ckpts / "step_00000002", ckpts / "step_00000005", ignore=lambda d, names: [name])

    return setup


STRAY = "{t}/run/checkpoints/step_00000005: not a complete checkpoint"
BEFORE = "remove it to use the one before, step_00000002"
PRETRAIN = ["pretrain", "--config", "{t}/cfg.yaml", "train.max_steps=4"]
EXPORT = ["export", "{t}/run", "--out", "{t}/esm2_x.pt"]
CASES = [
    Case(
        "pretrain/checkpoint-a-file",
        PRETRAIN,
        1,
        [f"{STRAY} (a file, not a checkpoint folder); {BEFORE}"],
        then(PRETRAIN_COPY, write("run/checkpoints/step_00000005", "x\n")),
    ),
    Case(
        "pretrain/checkpoint-empty",
        PRETRAIN,
        1,
        [f"{STRAY} (no trainer_rank0.json); {BEFORE}"],
        then(PRETRAIN_COPY, mkdir("run/checkpoints/step_00000005")),
    ),
    Case(
        "pretrain/checkpoint-no-config",
        PRETRAIN,
        1,
        [f"{STRAY} (no config.json); {BEFORE}"],
        then(PRETRAIN_COPY, _later_checkpoint_without("config.json")),
    ),
    Case(
        "export/checkpoint-empty",
        EXPORT,
        1,
        [f"{STRAY} (no trainer_rank0.json); {BEFORE}"],
        then(RUN, mkdir("run/checkpoints/step_00000005")),
    ),
]


# ---------------------------------------------------------------- a probe's counts
# A probe whose heads (or num_layers) was 4.5 was read as 4 and folded with.
def _probe_with(key: str, value):
    def setup(p: dict) -> None:
        t = Path(p["t"])
        data = torch.load(p["probe"], weights_only=True)
        data[key] = value(data[key].item()) if callable(value) else value
        torch.save(data, t / "p.pt")
        record = json.loads(Path(p["probe"] + ".json").read_text())
        record["probe_sha256"] = hashlib.sha256((t / "p.pt").read_bytes()).hexdigest()
        (t / "p.pt.json").write_text(json.dumps(record))

    return setup


CASES += [
    Case(
        f"fold/probe-{key}-{name}",
        PROBE_FOLD,
        1,
        [f"{{t}}/p.pt: {key} must be an integer >= 1, got {shown.format(n=n)}"],
        _probe_with(key, value),
    )
    for key, n in (("heads", 4), ("num_layers", 2))  # the tiny backbone's
    for name, value, shown in (
        ("half", lambda n: torch.tensor(n + 0.5), "{n}.5"),
        ("float-int", lambda n: float(n), "{n}.0"),
        ("bool", True, "True"),
        ("zero", 0, "0"),
    )
]


@pytest.mark.parametrize(
    "make", [int, torch.tensor, lambda n: torch.tensor(n, dtype=torch.int32)], ids=["int", "int64", "int32"]
)
def test_a_probe_with_integer_counts_of_any_kind_loads(make, ws, tmp_path):
    """save_probe writes 0-d int64 tensors; a plain integer or another integer dtype is the same count."""
    from resm.backbone.load import load_backbone
    from resm.structure.probe import load_probe

    data = torch.load(ws["probe"], weights_only=True)
    data.update(num_layers=make(2), heads=make(4))
    torch.save(data, tmp_path / "p.pt")
    model = load_backbone(ws["tiny"]).model
    load_probe(model, tmp_path / "p.pt")
    torch.testing.assert_close(model.contact_head.regression.weight.detach(), data["weight"])


# ---------------------------------------------------------------- a bundle's head config
# A head config with a key that is no setting was passed over, and a max_length of 10**9 taken
# (the rri scan's window then never split a partner): now held to the rules of a training
# config's head section.
def _head_config(model: str, **changes):
    def setup(p: dict) -> None:
        dst = Path(p["t"]) / "m"
        shutil.copytree(p[model], dst)
        manifest = json.loads((dst / "manifest.json").read_text())
        for entry in manifest["heads"].values():
            entry["config"].update(changes)
        (dst / "manifest.json").write_text(json.dumps(manifest))

    return setup


INTERACT = ["interact", "{pairs}", "--model", "{t}/m", "--backbone", "{tiny}", "-o", "{t}/s.tsv", "--threads", "1"]
PREDICT = ["predict", "--task", "mrl", "{utrs}", "--model", "{t}/m", "--backbone", "{tiny}", "-o", "{t}/p.tsv"]
UNUSABLE = "{t}/m/manifest.json: not a usable model bundle (head '%s') (config"
CASES += [
    Case(
        "interact/bundle-head-config-unknown-key",
        INTERACT,
        1,
        [UNUSABLE % "rri" + ": unknown key 'windw'; known: proj_dim,"],
        _head_config("rri_model", windw=8),
    ),
    Case(
        "interact/bundle-head-config-max-length-huge",
        INTERACT,
        1,
        [UNUSABLE % "rri" + ": max_length must be <= 4000 (the longest partner scanned), got 1000000000)"],
        _head_config("rri_model", max_length=10**9),
    ),
    Case(
        "interact/bundle-head-config-negative-width",
        INTERACT,
        1,
        [UNUSABLE % "rri" + ": proj_dim, channels and max_length must be >= 1"],
        _head_config("rri_model", channels=-8),
    ),
    Case(
        "interact/bundle-head-config-embed-dim",
        INTERACT,
        1,
        [UNUSABLE % "rri" + ".embed_dim cannot be set here (taken from the encoder))"],
        _head_config("rri_model", embed_dim="x"),
    ),
    Case(
        "predict/bundle-head-config-unknown-key",
        PREDICT,
        1,
        [UNUSABLE % "mrl" + ": unknown key 'hiden'; known: hidden,"],
        _head_config("mrl_model", hiden=8),
    ),
    Case(
        "predict/bundle-head-config-max-length-huge",
        PREDICT,
        1,
        [UNUSABLE % "mrl" + ": max_length must be <= 4000 (the longest UTR predicted for), got 1000000000)"],
        _head_config("mrl_model", max_length=10**9),
    ),
]


def test_a_training_config_holds_max_length_to_the_same_bound(ws, tmp_path):
    """The bound a bundle is read with is the one its training config is checked against."""
    import yaml

    from resm.config import ConfigError
    from resm.tasks.rri import RRITask

    cfg = yaml.safe_load(Path(ws["rri_cfg"]).read_text())
    cfg["head"] = dict(cfg.get("head") or {}, max_length=4001)
    bound = r"^head: max_length must be <= 4000 \(the longest partner scanned\), got 4001$"
    with pytest.raises(ConfigError, match=bound):
        RRITask(cfg)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)
