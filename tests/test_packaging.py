"""The wheel must contain every subpackage and the package data (scheme tables, the shipped model)."""

import shutil
import subprocess
import sys
import zipfile

import pytest
from setuptools import find_packages

from tests.conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


def listed_packages() -> set:
    return set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])


def test_every_subpackage_is_listed_in_pyproject():
    listed = listed_packages()
    found = set(find_packages(where=str(REPO), include=["resm", "resm.*"]))
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages"
    by_init = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "resm").rglob("__init__.py")}
    assert by_init == found
    assert {"resm._schemes", "resm.models", "resm._configs"} <= listed
    # each folder of configs/ is a (data) package of its own, with its files as package data:
    # setuptools warns at length, at every install, about a data folder that is not listed
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for folder in (p for p in (REPO / "configs").iterdir() if p.is_dir() and p.name != "__pycache__"):
        name = f"resm._configs.{folder.name}"
        assert name in listed and name in data, f"add {name} to [tool.setuptools] packages and package-data"


def test_the_wheel_holds_every_module_and_the_package_data(tmp_path):
    """``pip install .`` installs what a wheel built from the tree holds: build one (offline,
    from a copy of the tree) and compare it with the package's files."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "resm", src / "resm", ignore=ignore)
    shutil.copytree(REPO / "mapping", src / "mapping", ignore=ignore)
    shutil.copytree(REPO / "configs", src / "configs", ignore=ignore)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-v",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    said = built.stdout + built.stderr
    assert "Warning" not in said and "is absent from the `packages` configuration" not in said, said[-3000:]
    (wheel,) = (tmp_path / "dist").glob("resm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(REPO)) for p in (REPO / "resm").rglob("*.py")}
    assert modules <= names, f"missing from the wheel: {sorted(modules - names)}"
    assert {"resm/_schemes/kdny.yaml", "resm/models/structure_default.pt"} <= names
    shipped = {f"resm/_configs/{p.relative_to(REPO / 'configs')}" for p in (REPO / "configs").glob("*/*")}
    assert {"resm/_configs/deepspeed/zero2.json", "resm/_configs/finetune/structure.yaml"} <= shipped <= names


def test_scheme_tables_are_package_data():
    from importlib import resources

    names = {p.name for p in resources.files("resm._schemes").iterdir()}
    assert {"kdny.yaml", "kerd.yaml", "codon3.yaml", "protein.yaml"} <= names


def test_default_structure_model_ships_and_is_small():
    from resm.structure.model import load_structure_model, shipped_model_path

    path = shipped_model_path()
    assert path.exists(), "the default structure model must ship inside the package"
    assert path.stat().st_size <= 20 * 2**20  # the bound: at most 20 MB in all
    model, meta = load_structure_model(path)
    assert meta["scheme"] == "kdny" and 0 < meta["threshold"] < 1
