"""The wheel must contain every subpackage and the scheme tables."""

import pytest

from tests.conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "resm").rglob("__init__.py")
    }
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages"
    assert "resm._schemes" in listed


def test_scheme_tables_are_package_data():
    from importlib import resources

    names = {p.name for p in resources.files("resm._schemes").iterdir()}
    assert {"kdny.yaml", "kerd.yaml", "codon3.yaml", "protein.yaml"} <= names


def test_default_structure_model_ships_and_is_small():
    from resm.structure.model import load_structure_model
    from resm.structure.pipeline import default_model_path

    path = default_model_path()
    assert path.exists(), "the default structure model must ship inside the package"
    assert path.stat().st_size <= 20 * 2**20  # the bound: at most 20 MB in all
    model, meta = load_structure_model(path)
    assert meta["scheme"] == "kdny" and 0 < meta["threshold"] < 1
