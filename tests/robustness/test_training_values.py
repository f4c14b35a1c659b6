"""Training values that make silent nonsense are said: an empty validation split, a warm-up that
never ends before ``train.max_steps``, and every file unpickled in full because it is trusted."""

from __future__ import annotations

import fractions
from pathlib import Path

import pytest
import torch
import yaml

from resm.backbone.load import CheckpointError
from resm.cli import main as cli_main
from tests.robustness.conftest import said


def _pretrain_copy(ws, tmp_path, **changes) -> Path:
    cfg = yaml.safe_load(Path(ws["pretrain_cfg"]).read_text())
    cfg["train"].update(out_dir=str(tmp_path / "run"), ckpt_every=0)
    for key, value in changes.items():
        section, name = key.split("__")
        cfg[section][name] = value
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "c.yaml"


def test_an_empty_validation_split_is_said(ws, tmp_path, capfd):
    cfg = _pretrain_copy(
        ws, tmp_path, data__val_fraction=0.0, train__max_steps=1, train__val_every=1, optim__warmup_steps=0
    )
    capfd.readouterr()
    assert cli_main(["pretrain", "--config", str(cfg)]) == 0
    out, err = capfd.readouterr()
    assert "resm: warning: the validation split is empty (data.val_fraction 0.0" in err
    assert "finished at step 1: no validation loss (the validation split is empty)" in out
    assert "nan" not in out and "0.0000" not in out


def test_a_warm_up_that_never_ends_is_said(ws, tmp_path, capfd):
    cfg = _pretrain_copy(ws, tmp_path, optim__warmup_steps=5, train__max_steps=2)
    capfd.readouterr()
    assert cli_main(["pretrain", "--config", str(cfg)]) == 0
    err = capfd.readouterr().err
    assert "resm: warning: optim.warmup_steps 5 >= train.max_steps 2: the warm-up never ended" in err
    (tmp_path / "b").mkdir()
    cfg = _pretrain_copy(ws, tmp_path / "b", optim__warmup_steps=1, train__max_steps=2)
    assert cli_main(["pretrain", "--config", str(cfg)]) == 0
    assert "warm-up" not in capfd.readouterr().err  # one that ends: nothing said


def _trusted_checkpoint(ws, path: Path) -> Path:
    """The tiny checkpoint with one object the safe loader refuses (a harmless Fraction)."""
    data = torch.load(ws["tiny"], weights_only=False)
    data["note"] = fractions.Fraction(1, 3)
    torch.save(data, path)
    return path


def test_unpickling_a_trusted_checkpoint_is_said(ws, tmp_path, capfd):
    ckpt = _trusted_checkpoint(ws, tmp_path / "t.pt")
    capfd.readouterr()
    assert cli_main(["embed", str(ckpt), str(ws["fa"]), str(tmp_path / "e.npz")]) == 1
    assert "refusing to unpickle it: it names fractions.Fraction" in capfd.readouterr().err
    assert cli_main(["embed", str(ckpt), str(ws["fa"]), str(tmp_path / "e.npz"), "--trust-checkpoint"]) == 0
    err = said(capfd.readouterr().err)
    assert err == [
        f"resm: warning: {ckpt}: unpickled in full because it is trusted (--trust-checkpoint, a config's "
        "trust_checkpoint, the Python API's trust=True); it names fractions.Fraction, and unpickling runs "
        "whatever code the file holds"
    ]
    # a checkpoint the safe loader reads is not unpickled in full, and nothing is said
    assert cli_main(["embed", str(ws["tiny"]), str(ws["fa"]), str(tmp_path / "f.npz"), "--trust-checkpoint"]) == 0
    assert "warning" not in capfd.readouterr().err


def test_a_trusted_training_resume_says_what_it_unpickles(tmp_path, capfd):
    from resm.train_state import guarded_torch_load

    plain, odd = tmp_path / "plain.pt", tmp_path / "odd.pt"
    torch.save({"x": torch.zeros(2)}, plain)
    torch.save({"x": fractions.Fraction(2, 3)}, odd)
    capfd.readouterr()
    with guarded_torch_load(trust=True):
        assert torch.equal(torch.load(plain)["x"], torch.zeros(2))
        assert capfd.readouterr().err == ""
        assert torch.load(odd)["x"] == fractions.Fraction(2, 3)
        with open(odd, "rb") as fh:  # an open file is read again from its start
            assert torch.load(fh)["x"] == fractions.Fraction(2, 3)
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 2 and all(
        "unpickled in full because it is trusted" in ln and "fractions.Fraction" in ln for ln in err
    )
    with guarded_torch_load(trust=False), pytest.raises(CheckpointError) as e:
        torch.load(odd)
    # one line naming the file and what it would run, and how to trust it
    assert str(e.value).startswith(f"{odd}: refusing to unpickle it: it names fractions.Fraction, which is not allowed")
    assert "trust_checkpoint" in str(e.value) and "\n" not in str(e.value)
