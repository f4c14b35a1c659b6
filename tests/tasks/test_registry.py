"""Adding a task touches three files: its head (a module of resm.heads), its task (a module of
resm.tasks declaring its descriptor, ``TASK``) and its config. A toy task written as exactly
those three files, outside the package, is found by the registries and offered by every list
that reads the descriptor: ``resm finetune`` trains it from its config, ``task: joint`` offers
it as a sub-task, ``resm predict --task toy`` runs its predict function, ``resm compare`` runs
it for every backend (its config section, runner, columns and report section all named by its
descriptor) and the ``model`` keys it declares are the ones its config may set."""

from __future__ import annotations

import csv
import importlib
import json
import shutil
import sys
import textwrap

import pytest
import yaml

import resm.heads
import resm.tasks
from resm.cli import main as cli_main
from resm.tasks import tasks_with
from tests.conftest import logged

HEAD = """
import torch.nn as nn


def build_toy_head(config, embed_dim):
    return nn.Linear(embed_dim, 1), lambda head, h, mask, batch: head(h)


HEADS = {"toy": build_toy_head}
"""

TASK = """
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from resm.heads import HEADS
from resm.tasks.base import CompareSpec, ModelConfig, TaskSpec


class Stream:
    def __init__(self):
        self.step = 0

    def __iter__(self):
        while True:
            self.step += 1
            g = torch.Generator().manual_seed(self.step)
            x = torch.randn(16, 4, generator=g)
            yield x, x.sum(1, keepdim=True) * 2.0

    def state_dict(self):
        return {"step": self.step}

    def load_state_dict(self, d):
        self.step = d["step"]


class ToyTask:
    name = "toy"
    sections = ("model", "head")
    output = "toy.json"

    def __init__(self, cfg, encoder=None):
        self.model_cfg = ModelConfig.for_task(cfg.get("model"), "toy")
        torch.manual_seed(0)
        self.model, _ = HEADS["toy"](cfg.get("head") or {}, 4)
        self.first = None

    def train_stream(self, rank, world_size):
        return Stream()

    def loss(self, model, batch, generator, device):
        x, y = batch
        return torch.nn.functional.mse_loss(model(x.to(device)), y.to(device)), {"tokens": len(x)}

    def validate(self, model, device):
        x = torch.randn(64, 4, generator=torch.Generator().manual_seed(99))
        with torch.no_grad():
            return {"val_loss": float(torch.nn.functional.mse_loss(model(x), x.sum(1, keepdim=True) * 2.0))}

    def fingerprint(self):
        return {"task": "toy"}

    def save_final(self, model, out_dir, state):
        x = torch.randn(64, 4, generator=torch.Generator().manual_seed(99))
        with torch.no_grad():
            loss = float(torch.nn.functional.mse_loss(model(x), x.sum(1, keepdim=True) * 2.0))
        (Path(out_dir) / "toy.json").write_text(json.dumps({"val_loss": loss}))
        self.final = {"val_loss": loss}

    def summary(self):
        return {"final": self.final}


def predict_toy(o):
    return {"text": f"toy {o.input.name}\\n", "n": 1, "what": "toy rows", "metrics": {"toy": {"n": 1}}}


@dataclass
class ToySection:
    seqs: list = field(default_factory=lambda: ["ACGUACGU", "GGGAAACCC"])
    scale: float = 1.0

    def __post_init__(self):
        if self.scale <= 0:
            raise ValueError(f"toy.scale must be > 0, got {self.scale!r}")


TOY_COLUMNS = (("backend", "backend"), ("kind", "kind"), ("status", "status"), ("dim", "toy dim"),
               ("norm", "toy mean norm"))


def load_toy(cfg, log):
    log(f"toy: {len(cfg.toy.seqs)} sequences")
    return list(cfg.toy.seqs)


def compare_toy(backend, cfg, seqs, log):
    row = {"backend": backend.name, "kind": backend.spec.kind, "status": "ok"}
    if not backend.has_embeddings:
        return {**row, "status": "n/a: no embeddings"}, {}
    embs = [backend.embed(s) for s in seqs]
    norm = float(torch.stack([e.float().norm(dim=-1).mean() for e in embs]).mean()) * cfg.toy.scale
    return {**row, "dim": int(embs[0].shape[-1]), "norm": norm}, {"n": len(seqs)}


def report_toy(cfg, result, rows):
    from resm.compare.report import table

    return ["## Toy", "", f"{len(result['task_data']['toy'])} sequences.", "", *table(rows, TOY_COLUMNS)]


TASK = TaskSpec("toy", ToyTask, ("arch", "init", "init_seed"), head="toy", config="toy", joint=True,
                predict="toy_task_for_test:predict_toy", order=99,
                compare=CompareSpec(run="toy_task_for_test:compare_toy", load="toy_task_for_test:load_toy",
                                    sections=(("toy", "toy_task_for_test:ToySection", False),),
                                    columns=TOY_COLUMNS, csv="results_toy.csv", report="toy_task_for_test:report_toy"))
"""


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy task's three files, made visible to the registries (their packages' search
    paths extended; the registries rebuilt as importing the package builds them)."""
    heads, tasks = tmp_path / "heads", tmp_path / "tasks"
    heads.mkdir()
    tasks.mkdir()
    (heads / "toy_head_for_test.py").write_text(textwrap.dedent(HEAD))
    (tasks / "toy_task_for_test.py").write_text(textwrap.dedent(TASK))
    config = tmp_path / "toy.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "toy",
                "model": {"arch": "tiny"},
                "head": {},
                "optim": {"lr": 0.06, "warmup_steps": 1},
                "train": {
                    "out_dir": str(tmp_path / "run"),
                    "max_steps": 60,
                    "log_every": 1,
                    "val_every": 0,
                    "ckpt_every": 0,
                    "progress": False,
                    "device": "cpu",
                },
            }
        )
    )
    monkeypatch.setattr(resm.heads, "__path__", [*resm.heads.__path__, str(heads)])
    monkeypatch.setattr(resm.tasks, "__path__", [*resm.tasks.__path__, str(tasks)])
    monkeypatch.syspath_prepend(str(tasks))  # the descriptor's "module:function" reference
    monkeypatch.setattr(resm.heads, "HEADS", resm.heads._discover())
    monkeypatch.setattr(resm.tasks, "TASKS", resm.tasks._discover())
    yield config
    for name in list(sys.modules):
        if "toy_" in name and "_for_test" in name:
            del sys.modules[name]
    importlib.invalidate_caches()


def test_a_toy_task_in_three_files_is_offered_everywhere(toy, tmp_path, capsys):
    from resm.tasks import tasks_with
    from resm.tasks.base import ModelConfig
    from resm.tasks.joint import sub_tasks

    assert "toy" in resm.heads.HEADS and resm.tasks.TASKS["toy"].head == "toy"
    assert "toy" in tasks_with("finetune") and "toy" in tasks_with("predict")
    assert "toy" in sub_tasks() and "toy" in tasks_with("compare")
    with pytest.raises(ValueError, match="model.mode cannot be set here"):
        ModelConfig.for_task({"arch": "tiny", "mode": "full"}, "toy")  # only its declared keys

    assert cli_main(["finetune", "--config", str(toy)]) == 0  # trained through the one loop
    out = capsys.readouterr().out
    assert "finished at step 60" in out
    assert "validation loss" in out and "val_loss" not in out  # the final line says "validation loss"
    train = logged(tmp_path / "run")
    losses = [train[s] for s in sorted(train)]
    assert len(losses) == 60 and sum(losses[-5:]) < 0.1 * sum(losses[:5])  # it learns
    assert json.loads((tmp_path / "run" / "toy.json").read_text())["val_loss"] < 0.1 * losses[0]

    (tmp_path / "in.txt").write_text("x\n")
    assert cli_main(["predict", "--task", "toy", str(tmp_path / "in.txt"), "--model", str(tmp_path)]) == 0
    said = capsys.readouterr()  # the predictions on stdout; the metrics beside them on stderr
    assert said.out == "toy in.txt\n" and "toy: n 1\n" in said.err


def test_the_toy_task_runs_through_resm_compare(toy, tmp_path, capsys):
    """The toy task's compare spec is all ``resm compare`` needs: its section is checked, its
    data loaded once, its runner called for every backend, its table written as its CSV and
    as its section of results.md."""
    from resm.compare.config import parse_config

    base = {
        "tasks": ["toy"],
        "backends": [{"name": "r", "kind": "resm", "checkpoint": "random:tiny"}, {"name": "v", "kind": "viennarna"}],
        "device": "cpu",
        "progress": False,
    }
    with pytest.raises(ValueError, match="toy.scale must be > 0"):
        parse_config({**base, "toy": {"scale": 0}})
    with pytest.raises(ValueError, match="toy: unknown key 'sqs'"):
        parse_config({**base, "toy": {"sqs": []}})
    with pytest.raises(ValueError, match=r"tasks: unknown task 'toys'; known: structure, rri, mrl, toy"):
        parse_config({**base, "tasks": ["toys"]})
    out = tmp_path / "cmp"
    config = tmp_path / "cmp.yaml"

    def run(scale: float) -> dict[str, str]:
        cfg = {**base, "toy": {"seqs": ["ACGUACGUAC", "GGGGAAACCCC", "ACGU"], "scale": scale}, "out_dir": str(out)}
        config.write_text(yaml.safe_dump(cfg))
        assert cli_main(["compare", "--config", str(config)]) == 0
        printed = capsys.readouterr().out
        assert "toy: 3 sequences" in printed and "compared 2 backends (r, v)" in printed
        rows = {r["backend"]: r for r in csv.DictReader((out / "results_toy.csv").read_text().splitlines())}
        md = (out / "results.md").read_text()
        assert "## Toy\n\n3 sequences." in md and "| backend | kind | status | toy dim | toy mean norm |" in md
        assert json.loads((out / "config.json").read_text())["toy"]["scale"] == scale
        return rows

    rows = run(1.0)
    assert rows["v"]["status"] == "n/a: no embeddings" and rows["v"]["norm"] == ""
    assert rows["r"]["status"] == "ok" and int(rows["r"]["dim"]) > 0 and float(rows["r"]["norm"]) > 0
    shutil.rmtree(out)
    twice = run(2.0)  # the runner reads its own section: the number follows it
    assert float(twice["r"]["norm"]) == pytest.approx(2 * float(rows["r"]["norm"]), rel=1e-6)


def test_predict_refuses_a_task_without_a_predict_command(tmp_path, capsys):
    """A usage error, as argparse's own choices are (exit code 2), the choices read from the registry."""
    (tmp_path / "x").write_text("")
    with pytest.raises(SystemExit) as e:
        cli_main(["predict", "--task", "structure", str(tmp_path / "x"), "--model", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    known = ", ".join(repr(t) for t in tasks_with("predict"))
    assert known == "'rri', 'mrl'"
    assert err == (
        f"resm predict: error: argument --task: invalid choice: 'structure' (choose from {known}) "
        "(see resm predict --help)"
    )
