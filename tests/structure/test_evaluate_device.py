"""`resm evaluate structure --device`: the spelling, help and resolution of the other commands'
--device (resm.commands.common.device_args), the model run on the device asked for."""

from __future__ import annotations

import pytest

from tests.conftest import resm_main
from tests.structure.test_evaluate_memory import LONG, SHORT, pair_table


def evaluate(data, out, *extra):
    argv = ["evaluate", "structure", "--model", "default", "--dataset", "vl1", "--data-dir", data, "--folders"]
    return resm_main(*argv, "--threads", "1", "--out", out, *extra, check=False)


def rows(text: str) -> list[str]:
    """The table's rows without their last column, the seconds (which differ between runs)."""
    return [r.rsplit("|", 2)[0] for r in text.splitlines() if r.startswith("| vl1")]


def test_evaluate_takes_device_as_the_other_commands(tmp_path):
    """--device cpu (and --nogpu) give the table the command gave without it; --device cuda
    without CUDA (or a device torch does not know) is one line naming --device, exit 2, nothing
    written."""
    import torch

    pair_table(tmp_path / "data" / "ss" / "pdb" / "VL1.tsv", "long", LONG)  # an F1 short of 1
    data = tmp_path / "data"
    tables = []
    for extra in ((), ("--device", "cpu"), ("--nogpu",)):
        out = tmp_path / f"t{len(tables)}.md"
        p = evaluate(data, out, *extra)
        assert p.returncode == 0, p.stderr
        tables.append(rows(out.read_text()))
    assert tables[0][0].startswith("| vl1, canonical pairs | 1 | **resm** | 0."), tables[0]
    if not torch.cuda.is_available():  # the default (auto) is the CPU here
        assert tables[1] == tables[0]
    assert tables[2] == tables[1]
    bad = [("bogus", "unknown device 'bogus'")]
    if not torch.cuda.is_available():
        bad.append(("cuda", "'cuda' asked for, but CUDA is not available here"))
    for device, said in bad:
        out = tmp_path / "no.md"
        p = evaluate(data, out, "--device", device)
        err = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(err) == 1 and f"argument --device: {said}" in err[0], p.stderr
        assert p.stdout == "" and not out.exists() and not list(tmp_path.glob("*.tmp*"))


def test_evaluate_runs_the_model_on_the_device(tmp_path, monkeypatch):
    """The model reaches its predictor on --device (here torch's meta device, which every machine
    has, let through the device check that refuses it to users): evaluate ran it on the CPU
    whatever the other commands were told."""
    import resm.config
    import resm.structure.predictor_loading as loading
    from resm.cli import main

    monkeypatch.setattr(resm.config, "check_device", lambda name, key: name)
    pair_table(tmp_path / "data" / "ss" / "pdb" / "VL1.tsv", "short", SHORT)
    seen = []

    def spy(model, meta, **kw):
        seen.append(str(next(model.parameters()).device))
        raise KeyError("stopped here")

    monkeypatch.setattr(loading, "model_predictor", spy)
    argv = ["evaluate", "structure", "--model", "default", "--dataset", "vl1", "--folders", "--threads", "1"]
    assert main([*argv, "--data-dir", str(tmp_path / "data"), "--device", "meta"]) == 1
    assert seen == ["meta"]
    with pytest.raises(KeyError):
        main([*argv, "--data-dir", str(tmp_path / "data"), "--device", "cpu", "--debug"])
    assert seen == ["meta", "cpu"]
