"""A compare that compares: the shipped config always holds two language-model backbones that
need nothing downloaded; a skipped backend is a loud line; --strict and an all-skipped run fail
in one line and write nothing."""

import yaml

from resm.cli import main as cli_main
from resm.compare.backends import make_backend
from resm.compare.config import parse_config
from resm.config import load_config
from resm.structure.io import write_structures
from tests.compare.test_structure import hairpins
from tests.conftest import REPO


def test_shipped_cpu_small_config_has_two_backbones_that_always_load():
    path = REPO / "configs" / "compare" / "cpu_small.yaml"  # what find_config("cpu_small") finds once installed
    cfg = parse_config(load_config(path, []), path.stem)
    first = cfg.backends[:2]
    assert [(b.name, b.checkpoint, b.scheme) for b in first] == [
        ("default", "default", None),
        ("nt-random", "random:small", "nt"),
    ]
    loaded = [make_backend(b, "cpu").load() for b in first]
    assert loaded[0].scheme.name == "kdny" and loaded[1].scheme.name == "nt"
    assert loaded[0].num_layers == loaded[1].num_layers and loaded[0].embed_dim == loaded[1].embed_dim
    a, b = (m.embed("GGGAAACCCUUCG") for m in loaded)
    assert a.shape == b.shape == (13, loaded[0].embed_dim) and not (a - b).abs().max() < 1e-3


def _cfg(tmp_path, backends, **extra):
    write_structures(hairpins(6, 0), tmp_path / "tr.dbn")
    write_structures(hairpins(4, 1), tmp_path / "va.dbn")
    data = {"train": str(tmp_path / "tr.dbn"), "val": str(tmp_path / "va.dbn"), "test": str(tmp_path / "va.dbn")}
    cfg = {
        "data": {**data, "max_length": 60, "seed": 0},
        "backends": backends,
        "probe": {"max_pairs_per_seq": 50},
        "head": {"proj_dim": 8, "channels": 8, "blocks": 1, "dilations": [1], "dropout": 0.0},
        "train": {"steps": 2, "crop": 24, "batch": 2},
        "out_dir": str(tmp_path / "out"),
        "progress": False,
        **extra,
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


MISSING = {"name": "missing", "kind": "resm", "checkpoint": "absent.pt"}


def test_a_skip_is_loud_and_strict_fails_on_it(tmp_path, capsys):
    path = _cfg(tmp_path, [MISSING, {"name": "v", "kind": "viennarna"}])
    assert cli_main(["compare", "--config", str(path), "--strict"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "resm compare: error: backend missing cannot be loaded: checkpoint absent.pt not found "
        "(--strict; nothing written)"
    ]
    assert not (tmp_path / "out").exists()
    assert cli_main(["compare", "--config", str(path)]) == 0
    cap = capsys.readouterr()
    assert "SKIPPED backend missing: checkpoint absent.pt not found" in cap.out
    assert "compared 1 backends (v)" in cap.out and "SKIPPED 1 backends: missing" in cap.err


def test_nothing_compared_is_an_error_not_wrote_n_files(tmp_path, capsys):
    path = _cfg(tmp_path, [MISSING, dict(MISSING, name="also-missing")])
    assert cli_main(["compare", "--config", str(path)]) == 1
    cap = capsys.readouterr()
    assert (
        cap.err
        == "resm compare: error: nothing compared: every backend was skipped (see the SKIPPED lines); nothing written\n"
    )
    assert "wrote" not in cap.out
    assert not (tmp_path / "out").exists()


def test_a_missing_checkpoint_under_data_dir_is_a_skip_as_any_other(tmp_path, capsys):
    """A backend's checkpoint written as {data_dir}/... that is not there is skipped, its row
    naming the file, as any backend whose weights are missing (the compare config's rule);
    --strict refuses it before any work, saying where the data folder came from. It was a
    one-line error even without --strict."""
    path = _cfg(tmp_path, [{"name": "gone", "kind": "resm", "checkpoint": "{data_dir}/models/gone.pt"},
                           {"name": "v", "kind": "viennarna"}])  # fmt: skip
    gone = tmp_path / "models" / "gone.pt"
    assert cli_main(["compare", "--config", str(path), f"data_dir={tmp_path}", "--strict"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"resm compare: error: backends[0].checkpoint: {gone}: no such file "
        f"(the data folder {tmp_path} is data_dir= on the command line; give data_dir=DIR)"
    ]
    assert not (tmp_path / "out").exists()
    assert cli_main(["compare", "--config", str(path), f"data_dir={tmp_path}"]) == 0
    cap = capsys.readouterr()
    assert f"SKIPPED backend gone: checkpoint {gone} not found" in cap.out
    assert "compared 1 backends (v)" in cap.out and "SKIPPED 1 backends: gone" in cap.err
    assert f"skipped: checkpoint {gone} not found" in (tmp_path / "out" / "results.csv").read_text()
