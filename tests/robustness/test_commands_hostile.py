"""Hostile inputs the other robustness tables missed, one case per defect found and fixed
(every command but ``fold`` and ``evaluate structure``, which test_structure_hostile.py
covers). Each case runs ``resm`` in process against the shared workspace
(:mod:`tests.robustness.conftest`) and checks the rule of every bad input
(:func:`tests.robustness.test_cli_cases.check_one_line`): the exit code, one line on stderr
naming the file, line, record or key, no traceback, and nothing written anywhere in the
workspace or the case's folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from resm.backbone.load import safe_load
from tests.robustness.test_cli_cases import Case, _copy, _then, check_one_line


def _sidecar(p: dict) -> None:
    """A copy of the tiny checkpoint as m.pt with its contact regression beside it, as
    fair-esm ships them (m-contact-regression.pt)."""
    t = Path(p["t"])
    shutil.copy2(p["tiny"], t / "m.pt")
    d = safe_load(Path(p["tiny"]))
    torch.save({"model": {k: v for k, v in d["model"].items() if "regression" in k}}, t / "m-contact-regression.pt")


CASES = [
    # an output over a file the command reads without an option naming it
    Case(
        "interact/out-is-the-bundles-backbone",
        ["interact", "{pairs}", "--model", "{rri_model}", "-o", "{tiny}"],
        1,
        ["--out {tiny}", "the backbone of --model"],
    ),
    Case(
        "predict/out-is-the-bundles-backbone",
        ["predict", "--task", "mrl", "--model", "{mrl_model}", "-o", "{tiny}", "{utrs}"],
        1,
        ["--out {tiny}", "the backbone of --model"],
    ),
    Case(
        "predict/sites-is-the-bundles-backbone",
        ["predict", "--task", "rri", "--model", "{rri_model}", "--sites", "{tiny}", "{pairs}"],
        1,
        ["--sites {tiny}", "the backbone of --model"],
    ),
    Case(
        "interact/out-is-the-adapter",
        ["interact", "{pairs}", "--model", "{rri_model}", "--adapter", "{t}/peft", "-o", "{t}/peft/config.json"],
        1,
        ["--out {t}/peft/config.json", "--adapter"],
        setup=_then(_copy("hf", "peft")),
    ),
    Case(
        "probe/out-is-the-models-contact-regression",
        ["probe", "{t}/m.pt", "{dbn}", "--out", "{t}/m-contact-regression.pt"],
        1,
        ["--out {t}/m-contact-regression.pt", "the contact regression of the model"],
        setup=_sidecar,
    ),
    Case(
        "interact/zero-shot-out-is-the-backbones-contact-regression",
        ["interact", "{pairs}", "--zero-shot", "--backbone", "{t}/m.pt", "-o", "{t}/m-contact-regression.pt"],
        1,
        ["the contact regression of --backbone"],
        setup=_sidecar,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)
