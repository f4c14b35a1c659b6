"""Training commands check what they can before any work (resm pretrain / finetune / compare).

A data file named as given in a config or an override (not through ``{data_dir}``, which
tests/test_data_dir_missing.py covers) that does not exist was found only once reading
started, after the progress bars were drawn ('data.train=[/nope.fa]'): it is now refused in
one line naming the key and the path, exit 1, no run folder."""

from __future__ import annotations

from tests.conftest import resm_main


def _refused(p, run) -> str:
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "%|" not in p.stderr, p.stderr  # one line, before the progress bars
    assert not run.exists()  # no run folder
    return lines[0]


def test_pretrain_refuses_a_missing_training_file_up_front(tmp_path):
    nope, run = tmp_path / "nope.fa", tmp_path / "run"
    p = resm_main("pretrain", "--config", "cpu_demo", f"data.train=[{nope}]", "model.arch=tiny",
                  f"train.out_dir={run}", check=False)  # fmt: skip
    assert _refused(p, run) == f"resm pretrain: error: data.train[0]: {nope}: no such file"


def test_finetune_refuses_a_missing_validation_file_up_front(tmp_path):
    train, nope, run = tmp_path / "train.dbn", tmp_path / "gone" / "val.dbn", tmp_path / "run"
    train.write_text(">a\nGGGAAACCC\n(((...)))\n")
    p = resm_main("finetune", "--config", "structure", f"data.train={train}", f"data.val={nope}",
                  "data.families=null", "data.family_holdout=0", "data.select_on=val", "model.init=default",
                  f"train.out_dir={run}", check=False)  # fmt: skip
    assert _refused(p, run) == f"resm finetune: error: data.val: {nope}: no such file"


def test_a_link_to_nothing_is_said_as_such(tmp_path):
    link, run = tmp_path / "corpus.fa", tmp_path / "run"
    link.symlink_to(tmp_path / "moved.fa")
    p = resm_main("pretrain", "--config", "cpu_demo", f"data.train=[{link}]", "model.arch=tiny",
                  f"train.out_dir={run}", check=False)  # fmt: skip
    line = _refused(p, run)
    assert line.startswith(f"resm pretrain: error: data.train[0]: {link}: ") and "link" in line, line
