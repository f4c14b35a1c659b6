"""A config's data file written with ``{data_dir}`` that is not there (the data folder unset or
wrong: ``RESM_DATA=/nonexistent resm pretrain --config cpu_demo``) is refused before any work,
in one line naming the key, the file, where the data folder came from ($RESM_DATA, the
config's ``data_dir``, ``data_dir=`` on the command line, the default) and how to set it.
``resm pretrain`` drew its progress bars and started training before it said
'.../rfam14.2_seed_sequences.fasta.gz: cannot read (No such file or directory)', with no word
of where the folder came from; ``resm finetune`` and ``resm compare`` failed as late."""

from __future__ import annotations

import copy
import json

import pytest

from resm.config import ConfigError, check_inputs_outside, data_dir_origin, find_config, load_config
from tests.conftest import refused_before_work, resm_main


def test_pretrain_names_resm_data(tmp_path, monkeypatch):
    gone, run = tmp_path / "nonexistent", tmp_path / "run"
    monkeypatch.setenv("RESM_DATA", str(gone))
    p = resm_main("pretrain", "--config", "cpu_demo", "model.arch=tiny", f"train.out_dir={run}", check=False)
    assert refused_before_work(p, run) == (
        f"resm pretrain: error: data.train[0]: {gone}/pretrain/rfam14.2_seed_sequences.fasta.gz: no such file "
        f"(the data folder {gone} is $RESM_DATA and does not exist; set RESM_DATA or give data_dir=DIR)"
    )


def test_finetune_names_the_config_or_the_command_line(tmp_path, monkeypatch):
    gone, run = tmp_path / "nonexistent", tmp_path / "run"
    monkeypatch.setenv("RESM_DATA", str(tmp_path))  # a config's data_dir comes before $RESM_DATA
    p = resm_main("finetune", "--config", "structure", f"data_dir={gone}", f"train.out_dir={run}", check=False)
    line = refused_before_work(p, run)
    assert line.startswith(f"resm finetune: error: data.train: {gone}/ss/bprna/TR0.dbn: no such file "), line
    assert line.endswith(
        f"(the data folder {gone} is data_dir= on the command line and does not exist; give data_dir=DIR)"
    )
    cfg = tmp_path / "structure.yaml"
    cfg.write_text(f"data_dir: {tmp_path}\n" + find_config("structure", "finetune").read_text(encoding="utf-8"))
    p = resm_main("finetune", "--config", cfg, f"train.out_dir={run}", check=False)
    assert refused_before_work(p, run).endswith(
        f"TR0.dbn: no such file (the data folder {tmp_path} is the config's data_dir; give data_dir=DIR)"
    )


def test_compare_names_the_default(tmp_path, monkeypatch):
    run = tmp_path / "out"
    monkeypatch.delenv("RESM_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # the default, ../shared/data, is not there
    p = resm_main("compare", "--config", "cpu_small", f"out_dir={run}", check=False)
    assert refused_before_work(p, run) == (
        "resm compare: error: data.train: ../shared/data/ss/bprna/TR0.dbn: no such file (the data folder "
        "../shared/data is the default (RESM_DATA is unset) and does not exist; set RESM_DATA or give data_dir=DIR)"
    )


def test_only_strings_written_with_data_dir(tmp_path, monkeypatch):
    """Only a file named through ``{data_dir}`` is said with the data folder's origin: one named
    outside it is refused without it (tests/robustness/test_preflight.py), and a config whose
    data files are there passes."""
    monkeypatch.setenv("RESM_DATA", str(tmp_path))
    path = find_config("cpu_demo", "pretrain")
    cfg = load_config(path, [f"data.train=[{tmp_path / 'mine.fasta'}]"])
    assert data_dir_origin(cfg) == ("$RESM_DATA", frozenset())
    with pytest.raises(ConfigError, match=r"^data\.train\[0\]: .*mine\.fasta: no such file$"):
        check_inputs_outside(cfg, tmp_path / "run", "train.out_dir")
    (tmp_path / "mine.fasta").write_bytes(b"")
    check_inputs_outside(cfg, tmp_path / "run", "train.out_dir")
    cfg = load_config(path)
    assert data_dir_origin(cfg) == ("$RESM_DATA", {"data.train[0]"})
    with pytest.raises(ConfigError, match=r"^data\.train\[0\]: .*: no such file \(the data folder"):
        check_inputs_outside(cfg, tmp_path / "run", "train.out_dir")
    (tmp_path / "pretrain").mkdir()
    (tmp_path / "pretrain" / "rfam14.2_seed_sequences.fasta.gz").write_bytes(b"")
    check_inputs_outside(cfg, tmp_path / "run", "train.out_dir")


COPIES = {
    "dict": dict,
    "deepcopy": copy.deepcopy,
    "json": lambda c: json.loads(json.dumps(c)),
}


@pytest.mark.parametrize("how", sorted(COPIES))
def test_the_hint_survives_a_copy_of_the_config(tmp_path, how):
    """Where the data folder came from is an entry of the config, not an attribute of the
    object load_config returns: a copy (``dict(cfg)``, ``copy.deepcopy``, a JSON round trip)
    still says it, and still passes the checks of the training commands (run_task, through
    resm.tasks.run) and resm compare (parse_config). A copy lost it, and the error became
    '...: no such file' with no word of the data folder."""
    from resm.compare.config import parse_config
    from resm.tasks import FINETUNE_TASKS, run

    gone, out = tmp_path / "nonexistent", tmp_path / "run"
    hint = f"(the data folder {gone} is data_dir= on the command line and does not exist; give data_dir=DIR)"
    cfg = COPIES[how](load_config(find_config("structure", "finetune"), [f"data_dir={gone}", f"train.out_dir={out}"]))
    with pytest.raises(ConfigError, match=r"^data\.train: .*TR0\.dbn: no such file ") as e:
        run(cfg, known=FINETUNE_TASKS)
    assert str(e.value).endswith(hint) and not out.exists()
    cfg = COPIES[how](load_config(find_config("cpu_small", "compare"), [f"data_dir={gone}", f"out_dir={out}"]))
    parse_config(cfg, "cpu_small")
    with pytest.raises(ConfigError, match=r"^data\.train: .*TR0\.dbn: no such file ") as e:
        check_inputs_outside(cfg, out, "out_dir")
    assert str(e.value).endswith(hint)
