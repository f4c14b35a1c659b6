"""The package's shape: no import cycle between resm's modules (imports inside functions
count too) and no Python file over 800 lines: the package's, the tests' and the experiments'."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "resm"
MAX_LINES = 800


def module_names() -> dict[str, Path]:
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


def _imported_from(node: ast.ImportFrom, package: str) -> str:
    """The absolute module name of ``from ... import`` in a module of ``package`` (relative
    levels resolved)."""
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The resm modules that ``name`` imports anywhere in its file (module level, inside
    functions and classes); ``from package import submodule`` counts as the submodule, an
    import of a package as its ``__init__``."""
    package = name if _is_package(path) else name.rpartition(".")[0]
    found: set[str] = set()

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
            full = _imported_from(node, package)
            if not (full == "resm" or full.startswith("resm.")):
                continue
            for alias in node.names:
                sub = f"{full}.{alias.name}"
                add(sub if sub in modules else full)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
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
    # the command modules import the library inside their handlers
    assert any(m.startswith("resm.structure.") for m in graph["resm.commands.fold"])
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_source_file_is_over_800_lines():
    files = [p for top in (PACKAGE, REPO / "tests", REPO / "experiments") for p in top.rglob("*.py")]
    long = {str(p.relative_to(REPO)): n for p in files if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines: {long}"


# ----------------------------------------------------------------------------- function width
MAX_PARAMETERS = 12
# Entry points still wider than MAX_PARAMETERS, each with its width today. They are being turned
# into keyword-only options dataclasses (issue 25, "options as data"); this list may only shrink:
# an entry that grows fails, and one that no longer exceeds the limit must be removed.
WIDE_ALLOWED: dict[str, int] = {}  # fold_fasta, embed_file and fit_probe_file take options dataclasses now


def parameter_counts() -> dict[str, int]:
    """``file::function`` -> its positional and keyword-only parameters (not ``self``/``cls``,
    not ``*args``/``**kwargs``), for every function and method in resm/."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(REPO))
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
                if names and names[0] in ("self", "cls"):
                    names = names[1:]
                key = f"{rel}::{node.name}"
                out[key] = max(out.get(key, 0), len(names))
    return out


def test_no_function_takes_more_than_12_parameters():
    counts = parameter_counts()
    wide = {k: n for k, n in counts.items() if n > MAX_PARAMETERS and k not in WIDE_ALLOWED}
    assert not wide, f"functions with more than {MAX_PARAMETERS} parameters (pass an options dataclass): {wide}"
    grown = {k: (counts[k], n) for k, n in WIDE_ALLOWED.items() if k in counts and counts[k] > n}
    assert not grown, f"allow-listed functions that grew (now, allowed): {grown}"
    done = [k for k, n in WIDE_ALLOWED.items() if counts.get(k, 0) <= MAX_PARAMETERS]
    assert not done, f"no longer wider than {MAX_PARAMETERS} parameters (or gone): remove from WIDE_ALLOWED: {done}"


def test_parameter_counter_counts_keyword_only_and_skips_self():
    tree = ast.parse("class C:\n    def f(self, a, /, b, *args, c, d=1, **kw): pass\n")
    a = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)).args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    assert names[1:] == ["a", "b", "c", "d"]


# ----------------------------------------------------------------------------- one home for the RNA alphabet
NUCLEOTIDE_HOME = "resm/nucleotides.py"
NUCLEOTIDE_NAMES = {"UNKNOWN_BASE", "CANONICAL_PAIRS", "PAIR_TYPE", "NUCLEOTIDES", "IUPAC_AMBIGUOUS"}
CODE_ORDERS = {"ACGU", "ACGUN", "ACGUT"}  # the spellings a code table is built from


def nucleotide_tables(rel: str, source: str) -> list[str]:
    """What in ``source`` builds a nucleotide table of its own: a module-level or class-level
    definition of one of the alphabet's names, a string in code order (``"ACGU"``, ``b"ACGUN"``,
    either case) or a dict keyed by A, C, G and U."""
    found = []
    for node in ast.walk(ast.parse(source, rel)):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        for t in targets:
            if isinstance(t, ast.Name) and t.id.lstrip("_") in NUCLEOTIDE_NAMES:
                found.append(f"{rel}:{node.lineno} defines {t.id}")
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            if text.upper() in CODE_ORDERS:
                found.append(f"{rel}:{node.lineno} spells {node.value!r}")
        if isinstance(node, ast.Dict):
            keys = {k.value.upper() for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
            if {"A", "C", "G", "U"} <= keys:
                found.append(f"{rel}:{node.lineno} maps A, C, G, U")
    return found


def test_the_nucleotide_tables_have_one_home():
    found = [
        f
        for p in sorted(PACKAGE.rglob("*.py"))
        if str(p.relative_to(REPO)) != NUCLEOTIDE_HOME
        for f in nucleotide_tables(str(p.relative_to(REPO)), p.read_text())
    ]
    assert not found, "nucleotide tables outside resm/nucleotides.py: " + "; ".join(found)
    home = nucleotide_tables(NUCLEOTIDE_HOME, (REPO / NUCLEOTIDE_HOME).read_text())
    assert any("UNKNOWN_BASE" in f for f in home) and any("CANONICAL_PAIRS" in f for f in home)


def test_the_nucleotide_check_sees_copies():
    copy = 'UNKNOWN_BASE = 4\n_LUT = {"A": 0, "C": 1, "G": 2, "U": 3}\nfor c in "ACGU": pass\nX = b"ACGUN"\n'
    assert len(nucleotide_tables("x.py", copy)) == 4
    assert nucleotide_tables("x.py", 'order = "UCAG"  # codon order\n"""Docstring about ACGU."""\n') == []


# ----------------------------------------------------------------------------- private names stay home
def private_imports(name: str, path: Path, modules: dict[str, Path]) -> list[str]:
    """``from resm... import _x`` and ``module._x`` (``module`` an imported resm module) in
    ``name``'s file, where ``_x`` is a private (single-underscore) name of another module."""
    package = name if _is_package(path) else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    found, aliases = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            full = _imported_from(node, package)
            if not (full == "resm" or full.startswith("resm.")):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{rel}:{node.lineno} imports {full}.{alias.name}")
                elif f"{full}.{alias.name}" in modules:
                    aliases.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "resm" or alias.name.startswith("resm."):
                    aliases.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in aliases:
                found.append(f"{rel}:{node.lineno} uses {ast.unparse(node)}")
    return found


def test_no_private_name_is_imported_across_modules():
    modules = module_names()
    found = [f for name, path in modules.items() for f in private_imports(name, path, modules)]
    assert not found, "private names used outside their module: " + "; ".join(found)


def test_the_private_name_check_sees_both_forms(tmp_path):
    src = tmp_path / "priors.py"
    src.write_text(
        "from .folders import _optional, fold_with\nfrom . import io\nfrom .io import read\n"
        "io._stem(p)\nio.read(p)\nself._x\n"
    )
    modules = {"resm.structure.priors": src, "resm.structure.io": src, "resm.structure.folders": src}
    found = private_imports("resm.structure.priors", src, modules)
    assert [f.split(" ", 1)[1] for f in found] == ["imports resm.structure.folders._optional", "uses io._stem"]


# ----------------------------------------------------------------------------- a thin command line
CLI_MAX_LINES = 250


def test_cli_is_a_thin_dispatcher_over_one_module_per_command():
    """cli.py holds the top-level parser, the shared checks and the error handling; each command
    lives in resm/commands/ (its arguments and a handler that calls the library)."""
    from resm.commands import COMMANDS

    n = len((PACKAGE / "cli.py").read_text().splitlines())
    assert n <= CLI_MAX_LINES, f"resm/cli.py has {n} lines (at most {CLI_MAX_LINES}): move command code out"
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    assert not [f.name for f in tree.body if isinstance(f, ast.FunctionDef) and f.name.startswith("cmd_")]
    names = [c.name for c in COMMANDS]
    assert len(names) == len(set(names)) and {"fold", "embed", "finetune", "evaluate", "compare"} <= set(names)
    for c in COMMANDS:  # every handler and argument definition lives in a command module
        for fn in (c.run, c.add_arguments):
            assert fn.__module__.startswith("resm.commands."), (c.name, fn.__module__)


def test_the_command_line_imports_no_torch_until_a_command_runs():
    """``import resm.cli`` (every command module with it) loads neither torch nor numpy, so that
    the parser's import stays fast; the handlers import the library when they run."""
    import subprocess
    import sys

    code = "import sys, resm.cli; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


STRUCTURE_KINDS = {"pairs", "conv"}
KIND_FREE = (
    "resm/tasks/structure_task.py",
    "resm/structure/model.py",
    "resm/structure/predictor.py",
    "resm/structure/predictor_loading.py",
)


def kind_branches(path: Path) -> list[str]:
    """Lines of ``path`` that branch on a structure head's kind: a comparison with ``"pairs"`` or
    ``"conv"``, or an ``isinstance`` test against a structure head class."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Compare):
            consts = [n for n in [node.left, *node.comparators] if isinstance(n, ast.Constant)]
            if any(c.value in STRUCTURE_KINDS for c in consts):
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "isinstance"
            and any(name in ast.unparse(node) for name in ("PairHead", "StructureHead"))
        ):
            found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return found


def test_the_structure_task_model_and_predictor_do_not_branch_on_the_head_kind():
    """Each head kind implements one interface (resm.tasks.structure_heads.HeadKind, the head's
    ``run``, its predictor's ``for_model``); the code that calls it names no kind."""
    found = [f for rel in KIND_FREE for f in kind_branches(REPO / rel)]
    assert not found, "branches on the structure head kind: " + "; ".join(found)


def test_the_kind_branch_check_sees_both_forms(tmp_path):
    src = tmp_path / "x.py"
    src.write_text('if self.kind == "pairs":\n    pass\nok = isinstance(h, PairHead)\nk = "conv"\n')
    assert [f.split(" ", 1)[0] for f in kind_branches(src)] == ["x.py:1", "x.py:3"]
