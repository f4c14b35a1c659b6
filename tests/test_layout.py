"""The package's shape: no import cycle between resm's modules (imports inside functions
count too) and no source file over 800 lines."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

from tests.conftest import REPO

PACKAGE = REPO / "resm"
MAX_LINES = 800


def module_names() -> Dict[str, Path]:
    """``resm.x.y`` -> file; a package is named by its ``__init__.py``."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(name: str, path: Path, modules: Dict[str, Path]) -> Set[str]:
    """The resm modules that ``name`` imports anywhere in its file (module level, inside
    functions and classes); ``from package import submodule`` counts as the submodule, an
    import of a package as its ``__init__``."""
    package = name if _is_package(path) else name.rpartition(".")[0]
    found: Set[str] = set()

    def add(target: str) -> None:
        while target and target not in modules:  # `import resm.x.y.attr`-like names: the module
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "resm" or alias.name.startswith("resm."):
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                full = ".".join(base + ([node.module] if node.module else []))
            else:
                full = node.module or ""
            if not (full == "resm" or full.startswith("resm.")):
                continue
            for alias in node.names:
                sub = f"{full}.{alias.name}"
                add(sub if sub in modules else full)
    return found


def import_graph() -> Dict[str, Set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_reader_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert "resm.cli" in graph and "resm.train" in graph
    assert "resm.config" in graph["resm.train"]  # ConfigError and from_dict live in config
    assert {"resm.backbone.esm2"} <= graph["resm.backbone.attention"]
    # cli imports its commands' modules inside the command functions
    assert any(m.startswith("resm.structure.") for m in graph["resm.cli"])
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_source_file_is_over_800_lines():
    long = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines: {long}"
