"""The README says only what is true of the checkout: its relative links and anchors resolve,
every ``resm COMMAND --option`` it shows is an option of that command's parser, every
``resm.name`` it names imports (with the keywords it passes), every repository path it names
exists, its layout sketch names the package's modules, its command table names each positional
as --help does, and each ``$ resm ...`` block prints what the block shows. Its code examples run
in tests/test_api.py (Python) and tests/test_cli.py (the demo)."""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import shlex
import shutil
import textwrap

import pytest

from resm.cli import build_parser
from tests.conftest import REPO
from tests.markdown import (
    broken_links,
    code_lines,
    repository_paths,
    subparsers,
    unknown_options,
)

# paths the README names as not existing yet (each sentence says so); if one appears, say so there
NOT_IN_REPOSITORY = {"experiments/results/gpu.md"}


def readme() -> str:
    return (REPO / "README.md").read_text()


def section(text: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert m, f"README has no section {title!r}"
    return m.group(1)


def resolve(name: str):
    """``resm.a.b.c`` -> the object: the longest importable module prefix, then attributes."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)  # AttributeError: the README names what does not exist
        return obj
    raise ImportError(name)


FILE_SUFFIXES = {"json", "pt", "yaml", "yml", "safetensors", "npz", "tsv", "csv", "md", "txt"}


def bad_names(text: str) -> list[str]:
    bad = []
    for name in sorted(set(re.findall(r"\bresm(?:\.[A-Za-z_]\w*)+", text))):
        if name.rsplit(".", 1)[-1] in FILE_SUFFIXES:  # a file's name (a model folder's resm.json)
            continue
        try:
            resolve(name)
        except (ImportError, AttributeError):
            bad.append(name)
    return bad


def bad_keywords(lines: list[str]) -> list[str]:
    """``resm.f(..., key=value)`` in code: f must accept each keyword shown."""
    bad = []
    for line in lines:
        for m in re.finditer(r"\b(resm(?:\.\w+)+)\(([^()]*)\)", line):
            try:
                params = inspect.signature(resolve(m.group(1))).parameters
            except (ImportError, AttributeError):
                continue  # bad_names reports it
            if any(p.kind is p.VAR_KEYWORD for p in params.values()):
                continue
            bad += [f"{m.group(1)}({k}=)" for k in re.findall(r"(\w+)=", m.group(2)) if k not in params]
    return bad


def missing_paths(text: str) -> list[str]:
    """Repository paths named in code spans and blocks (placeholders such as NAME left out)."""
    found = repository_paths(code_lines(text))
    return sorted(p for p in found if not (REPO / p).exists() and p not in NOT_IN_REPOSITORY)


def layout_sketch(text: str) -> str:
    arch = section(text, "Architecture")
    m = re.search(r"^```\nresm/\n(.*?)^```", arch, flags=re.S | re.M)
    assert m, "the Architecture section's layout sketch"
    return m.group(1)


# --------------------------------------------------------------------------- the checks
def test_relative_links_and_anchors_resolve():
    assert not broken_links(readme())


def test_every_command_and_option_shown_exists():
    assert not unknown_options(code_lines(readme()))


TORCHRUN_OPTIONS = {"--standalone", "--nproc_per_node", "--nnodes", "--rdzv-endpoint"}


def test_every_long_option_in_code_is_one_of_resm_or_torchrun():
    """An option shown alone (`--threads -3`, `--bpp-cache`) is still one that some command takes."""
    parsers = [build_parser(), *subparsers().values()]
    known = {o for sp in parsers for a in sp._actions for o in a.option_strings} | TORCHRUN_OPTIONS
    shown = {o for line in code_lines(readme()) for o in re.findall(r"(?<![\w-])(--[A-Za-z][\w-]*)", line)}
    assert not shown - known


def test_the_command_table_lists_every_command():
    table = section(readme(), "Command line")
    listed = set(re.findall(r"^\| `resm ([a-z-]+)", table, flags=re.M))
    assert listed == set(subparsers())


def positional_names(parser: argparse.ArgumentParser) -> list[str]:
    """What ``--help``'s usage line shows for each positional argument: its metavar, else each
    of its choices, else its dest (argparse's own fallback)."""
    out = []
    for a in parser._actions:
        if a.option_strings or a.help == argparse.SUPPRESS or isinstance(a, argparse._SubParsersAction):
            continue
        out += [a.metavar] if a.metavar else list(a.choices) if a.choices else [a.dest]
    return out


def table_usages(text: str) -> dict[str, str]:
    """The command table's first column: command -> its usage lines (a command may have several rows)."""
    rows: dict[str, str] = {}
    for cmd, row in re.findall(r"^\| `resm ([a-z-]+)([^`]*)`", section(text, "Command line"), flags=re.M):
        rows[cmd] = rows.get(cmd, "") + " " + row
    return rows


def misnamed_positionals(text: str) -> list[str]:
    """A positional argument the command table writes (``MODEL INPUT OUT``) under another name
    than ``resm CMD --help`` prints, compared up to an example suffix (``TRAIN.dbn`` is
    ``TRAIN``); a positional printed in lower case (argparse's dest) where the table writes a
    placeholder is a mismatch too."""
    rows = table_usages(text)
    bad = []
    for cmd, sp in subparsers().items():
        shown = {w.split(".")[0] for w in re.findall(r"[\w=.]+", rows.get(cmd, ""))}
        bad += [f"resm {cmd} {name}" for name in positional_names(sp) if name.split(".")[0] not in shown]
    return bad


def test_the_command_table_names_each_positional_as_help_does():
    assert not misnamed_positionals(readme())


def shown_runs(text: str) -> list[tuple[list[str], list[str]]]:
    """The blocks that show a ``$ resm ...`` command and what it printed (indented in a list item
    or not): ``(arguments after resm, the printed lines)``."""
    runs = []
    for _, block in re.findall(r"^( *)```[\w-]*\n(.*?)^\1```", text, flags=re.S | re.M):
        lines = textwrap.dedent(block).splitlines()
        if lines and lines[0].startswith("$ resm "):
            runs.append((shlex.split(lines[0])[2:], lines[1:]))
    return runs


def test_every_shown_run_prints_what_the_readme_shows(tmp_path, monkeypatch):
    """Each ``$ resm ...`` block, run in a folder holding ``examples/`` (an input the repository
    lacks is written from the records the block prints), prints the block's lines: on stdout
    field by field (the README aligns tab-separated columns with spaces), and a line the README
    cuts short with ``...`` as the start of a line on stderr."""
    from tests.conftest import resm_main

    runs = shown_runs(readme())
    assert len(runs) >= 2
    monkeypatch.chdir(tmp_path)
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    for args, shown in runs:
        where = tmp_path / str(len(list(tmp_path.iterdir())))
        where.mkdir()
        monkeypatch.chdir(where)
        for arg in args:  # an input named but not in the repository: the records the block prints
            if arg.endswith(".fa") and not (tmp_path / arg).exists():
                records = [f"{ln}\n{shown[k + 1]}\n" for k, ln in enumerate(shown) if ln.startswith(">")]
                (where / arg).write_text("".join(records))
        args = [str(tmp_path / a) if a.startswith("examples/") else a for a in args]
        p = resm_main(*args)
        cut = [ln.removesuffix("...").rstrip() for ln in shown if ln.endswith("...")]
        assert [ln.split() for ln in p.stdout.splitlines()] == [ln.split() for ln in shown if not ln.endswith("...")]
        assert all(any(e.strip().startswith(c) for e in p.stderr.splitlines()) for c in cut), (cut, p.stderr[-500:])


def shown_trainings(text: str) -> list[tuple[str, str, list[str]]]:
    """``(command, --config, overrides)`` of each ``resm pretrain|finetune --config X key=value``
    the README shows with a real config (placeholders such as ``NAME``, ``...`` or ``{a,b}`` left out)."""
    found = []
    for line in code_lines(text):
        m = re.search(r"\bresm (pretrain|finetune) (--config .*)", line)
        if not m:
            continue
        words = shlex.split(m.group(2), comments=True)
        config = words[1] if len(words) > 1 else ""
        if re.search(r"NAME|\.\.\.|[{}\[\]]", config):
            continue
        found.append((m.group(1), config, [w for w in words[2:] if "=" in w and not w.startswith("[")]))
    return found


def config_problem(command: str, config: str, overrides: list[str]) -> str | None:
    """What ``resm COMMAND --config CONFIG OVERRIDES`` says of its config before reading data,
    or None: the file, the overrides, and the model, optim and train sections."""
    from resm.config import ConfigError, find_config, from_dict, load_config
    from resm.tasks.base import ModelConfig
    from resm.train_config import OptimConfig, TrainConfig

    try:
        cfg = load_config(find_config(config, command), overrides)
        ModelConfig.for_task(cfg.get("model"), cfg.get("task", "mlm"))
        from_dict(OptimConfig, cfg.get("optim"), "optim")
        from_dict(TrainConfig, cfg.get("train"), "train")
    except ConfigError as e:
        return f"resm {command} --config {config} {' '.join(overrides)}: {e}"
    return None


def test_every_training_command_shown_reads_its_config():
    """A pretraining command copied from the README gets past its config: continuing ESM-2
    weights from ``cpu_demo`` (a random architecture) needs ``model.arch=null`` shown beside
    ``model.init``."""
    shown = shown_trainings(readme())
    assert any("model.init=esm2_t12_35M_UR50D.pt" in o for _, _, o in shown)
    assert not [p for c, f, o in shown if (p := config_problem(c, f, o))]


def test_the_config_check_finds_init_beside_a_random_architecture():
    text = "```bash\nresm pretrain --config configs/pretrain/cpu_demo.yaml model.init=x.pt   # a GPU\n```\n"
    [(command, config, overrides)] = shown_trainings(text)
    assert "add model.arch=null" in config_problem(command, config, overrides)


def test_every_python_name_imports_with_the_keywords_shown():
    text = readme()
    assert not bad_names(text)
    assert not bad_keywords(code_lines(text))


def test_every_repository_path_named_exists():
    assert not missing_paths(readme())
    for path in NOT_IN_REPOSITORY:  # the README says these are not there yet
        assert not (REPO / path).exists(), f"{path} exists now: update the README's sentence about it"


def sketch_entries(sketch: str) -> dict[str, str]:
    """The sketch's entries: each name before the description (``a.py, b.py`` two names) -> the
    text of its lines."""
    out = {}
    for block in re.split(r"^(?=[├└])", sketch, flags=re.M):
        m = re.match(r"[├└]── (.+?)\s{2,}(.*)", block, flags=re.S)
        if m:
            for name in m.group(1).split(","):
                out[name.strip().removesuffix(".py")] = m.group(2)
    return out


def test_the_layout_sketch_matches_the_package():
    """The Architecture sketch names every top-level module and subpackage of resm/ and nothing
    else, and each subpackage's lines name each of its modules and no module it lacks."""
    entries = sketch_entries(layout_sketch(readme()))
    package = REPO / "resm"
    modules = {p.stem for p in package.glob("*.py") if not p.name.startswith("_")}
    folders = {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    names = {n.removesuffix("/") for n in entries}
    assert names == modules | folders | {"models"}, (
        f"resm/ has {sorted((modules | folders) - names)} the sketch lacks; "
        f"the sketch names {sorted(names - modules - folders - {'models'})} resm/ lacks"
    )
    for name, text in entries.items():
        if not name.endswith("/") or name in ("commands/", "models/"):  # commands: one module per command
            continue
        have = {p.stem for p in (package / name).glob("*.py") if p.stem != "__init__"}
        words = set(re.findall(r"\b\w+\b", text))
        assert have <= words, f"the sketch's resm/{name} line leaves out {sorted(have - words)}"
        snake = set(re.findall(r"(?<![\w.])([a-z][a-z0-9]*_[a-z0-9_]+)(?![\w.(])", text))
        assert snake <= have, f"the sketch's resm/{name} line names {sorted(snake - have)}, not modules there"


# --------------------------------------------------------------------------- the checks can fail
BAD = """# T

## Command line

| `resm fold --no-such-option` | x |

See [a table](experiments/results/no_such_table.md), [below](#no-such-heading) and
[there](experiments/structure_cpu/README.md#no-such-heading), `resm.no_such`,
`resm.load_predictor(no_such_kw=1)`, `resm/structure/no_such.py`.

```bash
resm nosuchcommand x
resm fold x.fa --bpp y | grep --count z   # grep's option is grep's
```
"""


@pytest.mark.parametrize(
    "check, expected",
    [
        (
            lambda t: broken_links(t),
            [
                "experiments/results/no_such_table.md",
                "#no-such-heading",
                "experiments/structure_cpu/README.md#no-such-heading",
            ],
        ),
        (
            lambda t: [b.split(":")[0] for b in unknown_options(code_lines(t))],
            ["resm fold --no-such-option", "resm nosuchcommand (no such command)"],
        ),
        (lambda t: bad_names(t), ["resm.no_such"]),
        (lambda t: bad_keywords(code_lines(t)), ["resm.load_predictor(no_such_kw=)"]),
        (lambda t: missing_paths(t), ["resm/structure/no_such.py"]),
    ],
)
def test_each_check_finds_what_is_wrong(check, expected):
    assert sorted(check(BAD)) == sorted(expected)


def test_the_positional_check_finds_a_misnamed_one():
    table = "## Command line\n\n| `resm embed model INPUT OUT.npz [--include mean]` | x |\n"
    assert [b for b in misnamed_positionals(table) if b.startswith("resm embed")] == ["resm embed MODEL"]
