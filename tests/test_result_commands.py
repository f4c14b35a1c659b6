"""Every command a committed result table or recipe under experiments/ shows (and README.md's)
runs on the checkout as written: ``resm CMD`` is a command and each option one of its own;
``python experiments/SCRIPT.py`` (also ``python -m resm``, ``torchrun ... -m resm``, ``bash
experiments/...``, after ``VAR=value``, in ``$ ``-prompted, continued or looped lines, with the
shell variables the block sets put in) names a script there whose argparse parser (read from
its source with ast, never run) has each option shown; an option's value is one of its
choices where it lists them; a ``--config`` names a config that exists (a shipped one by name
too) and each ``key.sub=value`` override sets a section the config's task reads (and a key of
it, where one dataclass holds them). A command the current code no longer runs passes only
beside the note ``(written by an earlier version: <commit>; <what changed>)`` and only if it
ran at that commit. Every repository path the files name exists, but for what a command writes
(the value of an output option, ``train.out_dir``) and runs/, /tmp, /work; every relative link
resolves."""

from __future__ import annotations

import ast
import functools
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from resm.config import ConfigError, find_config
from tests.conftest import REPO
from tests.markdown import FENCE, broken_links, code_lines, repository_paths, subparsers


def documents() -> list[Path]:
    """The result tables and recipes under experiments/, and the markdown files README.md
    links to there."""
    docs = set((REPO / "experiments").rglob("*.md"))
    for target in re.findall(r"\]\(([^)\s#]+)", (REPO / "README.md").read_text()):
        if target.startswith("experiments/") and target.endswith(".md"):
            docs.add(REPO / target)
    return sorted(docs)


def command_lines(text: str) -> list[str]:
    """The lines of code that may hold a command: inline spans, fenced blocks (continuations
    joined), and lines of an indented (4-space) code block."""
    indented = re.findall(r"(?:^|\n\n)((?: {4,}\S.*\n?)+)", FENCE.sub("", text))
    lines = [ln for b in indented for ln in b.replace("\\\n", " ").splitlines()]
    return code_lines(text) + lines


# --------------------------------------------------------------------------- commands
@dataclass
class Command:
    program: str  # "resm" or a repository path (experiments/x.py, experiments/x.sh)
    args: list[str] = field(default_factory=list)


SEPARATORS = {";", "&&", "||", "|", "(", ")", "&", ">", ">>", "<", "2>", "$("}
LEADING = {"$", "do", "then", "else", "time", "/usr/bin/time", "nohup", "exec", "env"}


def words(line: str) -> list[str]:
    """A line's shell words (``;``, ``&&``, ``|``, ``(`` ... words of their own; comments
    dropped)."""
    try:
        lex = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
        lex.whitespace_split = True
        lex.commenters = "#"
        return list(lex)
    except ValueError:  # an unclosed quote: a span the prose cut
        return re.sub(r"\s#.*", "", line).replace("'", "").replace('"', "").split()


def segments(tokens: list[str]) -> list[list[str]]:
    """The words of each simple command of a line."""
    out, cur = [], []
    for t in tokens:
        if t in SEPARATORS or set(t) <= set(";&|()<>"):
            out.append(cur)
            cur = []
        else:
            cur.append(t)
    return [*out, cur]


def commands(line: str) -> list[Command]:
    """The commands in one line of code: each shell segment whose program (after ``VAR=value``
    prefixes, a prompt, ``do``, ``time``) is resm, python or torchrun with a resm module or a
    script of experiments/, or bash with a script there."""
    found = []
    for seg in segments(words(line)):
        while seg and (seg[0] in LEADING or re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", seg[0])):
            seg = seg[1:]
        if not seg:
            continue
        prog, rest = seg[0], seg[1:]
        if prog == "torchrun":
            while rest and rest[0] != "-m" and not rest[0].endswith(".py"):
                rest = rest[1:]
            prog, rest = "python", rest
        if re.fullmatch(r"(?:\S*/)?python[\d.]*", prog):
            if rest[:2] == ["-m", "resm"] and rest[2:] and re.fullmatch(r"[a-z][a-z-]*", rest[2]):
                found.append(Command("resm", rest[2:]))
            elif rest and rest[0].startswith("experiments/") and rest[0].endswith(".py"):
                found.append(Command(rest[0], rest[1:]))
        elif prog == "bash" and rest and rest[0].startswith("experiments/"):
            found.append(Command(rest[0], rest[1:]))
        elif re.fullmatch(r"(?:\S*/)?resm", prog) and rest and re.fullmatch(r"[a-z][a-z-]*", rest[0]):
            found.append(Command("resm", rest))
    return found


# --------------------------------------------------------------------------- what a parser takes
@dataclass
class Parser:
    """The options of one (sub)parser: option string -> how many values it takes (0, 1, "?",
    "*", "+" or a number), its subcommands by name, and the values of the options that list
    their choices."""

    options: dict[str, object]
    subcommands: dict[str, Parser] = field(default_factory=dict)
    choices: dict[str, set[str]] = field(default_factory=dict)  # option -> the values it allows


def arity(nargs, action) -> object:
    """How many values an ``add_argument`` call's option takes."""
    if action in ("store_true", "store_false", "count", "help", "version", "store_const", "append_const"):
        return 0
    return 1 if nargs is None else nargs


def _argparse_parser(p) -> Parser:
    """A parser's options and subcommands (a first positional with choices, such as
    ``resm evaluate structure``, counts as one)."""
    import argparse

    opts, sub, choices = {}, {}, {}
    positionals = [a for a in p._actions if not a.option_strings]
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            sub = {n: _argparse_parser(sp) for n, sp in a.choices.items()}
        elif positionals and a is positionals[0] and a.choices:
            sub = {str(c): Parser({}) for c in a.choices}
        for o in a.option_strings:
            opts[o] = 0 if a.nargs == 0 else (1 if a.nargs is None else a.nargs)
            if a.choices:
                choices[o] = {str(c) for c in a.choices}
    return Parser(opts, sub, choices)


@functools.cache
def resm_parsers() -> dict[str, Parser]:
    return {name: _argparse_parser(p) for name, p in subparsers().items()}


def _constant(node):
    return node.value if isinstance(node, ast.Constant) else None


def _add_arguments(node: ast.AST, owner: dict[str, str | None], top: Parser, subs: dict[str, Parser]) -> None:
    """Every ``X.add_argument("--opt", ...)`` under ``node`` (with its ``nargs`` / ``action``),
    into the parser of the subcommand ``X`` names (``owner``), else into ``top``."""
    for call in ast.walk(node):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
            continue
        if call.func.attr != "add_argument":
            continue
        receiver = call.func.value.id if isinstance(call.func.value, ast.Name) else None
        target = subs[owner[receiver]] if owner.get(receiver) else top
        kw = {k.arg: _constant(k.value) for k in call.keywords}
        listed = next((k.value for k in call.keywords if k.arg == "choices"), None)
        try:  # choices written out in the call; a name (choices=ARMS) is not followed
            allowed = {str(c) for c in ast.literal_eval(listed)} if listed is not None else None
        except ValueError:
            allowed = None
        for a in call.args:
            o = _constant(a)
            if isinstance(o, str) and o.startswith("-"):
                target.options[o] = arity(kw.get("nargs"), kw.get("action"))
                if allowed:
                    target.choices[o] = allowed


@functools.cache
def source(path: str, commit: str | None = None) -> str | None:
    """A repository file's text, in the checkout or at ``commit`` (None: not there)."""
    if commit is None:
        return (REPO / path).read_text() if (REPO / path).is_file() else None
    p = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=REPO, capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else None


def _imported_functions(tree: ast.Module, script: str, commit: str | None) -> list[ast.FunctionDef]:
    """The functions a script imports from a sibling script or from experiments/ (where a
    shared parser may be built)."""
    found = []
    for node in tree.body:
        if not (isinstance(node, ast.ImportFrom) and node.module):
            continue
        sibling = str(Path(script).parent / f"{node.module}.py")
        for path in (sibling, f"{node.module.replace('.', '/')}.py"):
            text = source(path, commit) if path.startswith("experiments/") else None
            if text is not None:
                names = {a.name for a in node.names}
                found += [d for d in ast.parse(text).body if isinstance(d, ast.FunctionDef) and d.name in names]
                break
    return found


@functools.cache
def script_parser(path: str, commit: str | None = None) -> Parser:
    """A script's argparse options, read from its source (never run): every
    ``X.add_argument("--opt", ...)``, under the subcommand ``X = Y.add_parser("name")`` names,
    and those of the functions it imports from a sibling script or experiments/; the script
    as it is, or as it was at ``commit``."""
    tree = ast.parse(source(path, commit))
    owner: dict[str, str | None] = {}  # variable -> subcommand (None: the top parser)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            f = node.value.func
            if isinstance(f, ast.Attribute) and f.attr == "add_parser" and node.value.args:
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        owner[t.id] = _constant(node.value.args[0])
    top = Parser({}, {name: Parser({}) for name in owner.values() if name})
    _add_arguments(tree, owner, top, top.subcommands)
    for f in _imported_functions(tree, path, commit):
        _add_arguments(f, {}, top, {})
    return top


# --------------------------------------------------------------------------- the checks of one command
# options whose value is a file or folder the command writes (or a cache it fills)
OUTPUT_OPTIONS = {"--out", "--report", "--raw", "--scores", "--runs", "--cache", "--bpp-cache", "--log", "--save"}
OVERRIDE = re.compile(r"([A-Za-z_]\w*)(?:\.[\w-]+|\[\d+\])*=")
CONFIG_COMMANDS = ("pretrain", "finetune", "compare")  # resm commands whose --config is of their kind
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_]*\b|^\[|\]$|\.\.\.")  # NAME, N, [--x ...]: a usage line's words


def config_task(config: Path, kind: str) -> str | None:
    """The task a training config names (a pretraining config: mlm)."""
    cfg = yaml.safe_load(config.read_text()) or {}
    return cfg.get("task", "mlm" if kind == "pretrain" else None) if kind != "compare" else None


@functools.cache
def known_sections(config: Path, kind: str) -> frozenset[str]:
    """The top-level keys a config of ``kind`` may set: its task's sections (a training
    config), or the comparison harness's keys and the shipped comparison's sections."""
    if kind == "compare":
        from resm.compare.config import COMMON_KEYS

        shipped = {k for f in (REPO / "configs/compare").glob("*.yaml") for k in yaml.safe_load(f.read_text())}
        return frozenset(set(COMMON_KEYS) | shipped | {"name"})
    from resm.tasks import TASKS

    task = config_task(config, kind)
    sections = TASKS[task].cls.sections if task in TASKS else yaml.safe_load(config.read_text())
    return frozenset(set(sections) | {"task", "optim", "train", "data_dir"})


@functools.cache
def section_keys(task: str | None, section: str) -> frozenset[str] | None:
    """The keys of a training config's section where one dataclass holds them (None: not
    checked here, e.g. a head's, which depend on its kind)."""
    import dataclasses

    from resm.data.labelled_structures import StructureDataConfig
    from resm.data.masking import MaskingConfig
    from resm.data.pretrain import PretrainDataConfig
    from resm.tasks import TASKS
    from resm.tasks.mlm import ValidationConfig
    from resm.tasks.mrl import MRLDataConfig
    from resm.tasks.rri import RRIDataConfig
    from resm.tasks.structure_task import StructureLossConfig, StructureStartConfig
    from resm.train_config import OptimConfig, TrainConfig

    if section == "model" and task in TASKS:
        return frozenset(TASKS[task].model_keys)
    classes = {
        "train": TrainConfig,
        "optim": OptimConfig,
        **{
            "structure": {"data": StructureDataConfig, "loss": StructureLossConfig, "start": StructureStartConfig},
            "mlm": {"data": PretrainDataConfig, "masking": MaskingConfig, "validation": ValidationConfig},
            "rri": {"data": RRIDataConfig},
            "mrl": {"data": MRLDataConfig},
        }.get(task, {}),
    }
    cls = classes.get(section)
    return frozenset(f.name for f in dataclasses.fields(cls) if f.init) if cls else None


@dataclass
class Reading:
    problems: list[str] = field(default_factory=list)
    exempt: set[str] = field(default_factory=set)  # paths written, or kept from a commit


def read_arguments(cmd: Command, parser: Parser, kind: str | None, reading: Reading) -> None:
    """Walk the arguments as argparse would: each option must be the parser's (a value one of
    its choices, where it lists them), its values taken; ``--config`` must name a config, and
    the positional ``key=value`` overrides what it has."""
    args = [a for a in cmd.args if a != "..."]
    name = "resm " + cmd.args[0] if cmd.program == "resm" else cmd.program
    if cmd.program == "resm":
        args = args[1:]
    first = next((a for a in args if not a.startswith("-")), None)
    if parser.subcommands and first is None:  # a mention (`resm evaluate`), no run: any of its options
        options = parser.options | {o: n for p in parser.subcommands.values() for o, n in p.options.items()}
        choices = parser.choices | {o: c for p in parser.subcommands.values() for o, c in p.choices.items()}
    elif parser.subcommands:
        if first not in parser.subcommands:
            reading.problems.append(f"{name} {first} (no such subcommand; {sorted(parser.subcommands)})")
            return
        options = parser.options | parser.subcommands[first].options
        choices = parser.choices | parser.subcommands[first].choices
        name += f" {first}"
    else:
        options, choices = parser.options, parser.choices
    config, overrides, i, rest_positional = None, [], 0, False
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--" and not rest_positional:
            rest_positional = True
            continue
        if re.fullmatch(r"--?[A-Za-z][\w-]*(=.*)?", a) and not rest_positional:
            opt = a.split("=", 1)[0]
            if opt not in options:
                reading.problems.append(f"{name} {opt} (no such option)")
                continue
            values, i = ([a.split("=", 1)[1]], i) if "=" in a else taken(args, i, options[opt])
            for v in values:
                if opt in choices and v not in choices[opt] and not re.search(r"[${]", v) and not PLACEHOLDER.search(v):
                    reading.problems.append(f"{name} {opt} {v} (not one of {sorted(choices[opt])})")
            if opt == "--config" and values:
                config = values[0]
            if opt in OUTPUT_OPTIONS:
                reading.exempt.update(v.rstrip("/") for v in values)
            continue
        if OVERRIDE.match(a):
            overrides.append(a)
    if config is not None and not re.search(r"[${]", config) and not PLACEHOLDER.search(config):
        check_config(name, config, kind or "finetune", overrides, reading)


def taken(args: list[str], i: int, n) -> tuple[list[str], int]:
    """The values an option taking ``n`` of them has from ``args[i]`` on, and where the next
    argument starts."""
    if n in ("*", "+", "?"):
        j = i
        while j < len(args) and not args[j].startswith("-") and (n != "?" or j == i):
            j += 1
        return args[i:j], j
    if isinstance(n, int):
        return args[i : i + n], i + n
    return args[i:], len(args)  # argparse.REMAINDER and the like: the rest is the option's


def check_config(name: str, config: str, kind: str, overrides: list[str], reading: Reading) -> None:
    """``--config``'s file (or shipped config) exists, and each override sets a section (and a
    key, where one dataclass holds the section's keys) a config of its task has."""
    try:
        path = find_config(config, kind)
    except ConfigError as e:
        reading.problems.append(f"{name} --config {config} ({e})")
        return
    sections, task = known_sections(path, kind), config_task(path, kind)
    for o in overrides:
        key = OVERRIDE.match(o).group(1)
        sub = re.match(r"\w+\.([\w-]+)", o)
        keys = section_keys(task, key) if sub and kind != "compare" else None
        if key not in sections:
            reading.problems.append(f"{name} {o.split('=')[0]} (no section {key!r} in a {kind} config)")
        elif keys is not None and sub.group(1) not in keys:
            reading.problems.append(f"{name} {o.split('=')[0]} (no key {sub.group(1)!r} in {key})")
        if re.match(r"(?:\w+\.)*out_dir=", o):
            reading.exempt.add(o.split("=", 1)[1].rstrip("/"))


@functools.cache
def have_history() -> bool:
    """Whether the checkout has its whole git history (an earlier version's command is checked
    against it): a git repository, not a shallow clone."""
    p = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=REPO, capture_output=True, text=True)
    return p.returncode == 0 and p.stdout.strip() == "false"


@functools.cache
def known_commit(commit: str) -> bool:
    p = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=REPO, capture_output=True)
    return p.returncode == 0


def check_command(cmd: Command, reading: Reading, commit: str | None = None) -> None:
    """The checks of one command against the checkout, or against the code at ``commit``
    (a resm command there: the commit must exist; a script: its parser as it was)."""
    if commit is not None:
        if not known_commit(commit):
            reading.problems.append(f"{commit} (no such commit in this repository)")
        elif cmd.program != "resm" and source(cmd.program, commit) is None:
            reading.problems.append(f"{cmd.program} (not there at {commit})")
        elif cmd.program.endswith(".py"):
            read_arguments(cmd, script_parser(cmd.program, commit), None, reading)
        reading.exempt.add(cmd.program)
        return
    if cmd.program == "resm":
        parsers = resm_parsers()
        sub = cmd.args[0]
        if sub not in parsers:
            reading.problems.append(f"resm {sub} (no such command)")
            return
        read_arguments(cmd, parsers[sub], sub if sub in CONFIG_COMMANDS else None, reading)
        return
    if source(cmd.program) is None:
        reading.problems.append(f"{cmd.program} (no such script)")
        return
    if cmd.program.endswith(".py"):
        read_arguments(cmd, script_parser(cmd.program), None, reading)


EXEMPT = ("runs/", "/tmp", "/work")
ASSIGNMENT = re.compile(r"\s*([A-Za-z_]\w*)=(\(.*\)|\S.*)")


def expanded(lines: list[str]) -> list[str]:
    """The lines with the shell variables a line before set (``A="--x 1"``, ``COMMON=(a=1
    b=2)``) put in place of ``$A``, ``"$A"`` and ``"${COMMON[@]}"``, as the shell would."""
    values: dict[str, list[str]] = {}
    out = []
    for line in lines:
        for name, words_ in values.items():
            line = line.replace(f'"${{{name}[@]}}"', shlex.join(words_))
            line = line.replace(f'"${name}"', shlex.quote(" ".join(words_)))
            line = re.sub(rf"\${name}\b", lambda _, w=words_: " ".join(w), line)
        m = ASSIGNMENT.fullmatch(line)
        if m and not commands(line):
            value = m.group(2)
            values[m.group(1)] = words(value[1:-1]) if value.startswith("(") else [" ".join(words(value))]
        out.append(line)
    return out


# a command the current code no longer runs, kept as the record of what made a table, says so
# beside it (same paragraph, or the paragraph before or after its block)
EARLIER = re.compile(r"\(written\s+by\s+an\s+earlier\s+version:\s+([0-9a-f]{7,40});")


def paragraphs(text: str) -> list[str]:
    """The document in paragraphs: split at blank lines, a fenced block kept whole."""
    out, cur, fence = [], [], None
    for line in text.splitlines():
        m = re.match(r"( *)```", line)
        if fence is None and m:
            fence = m.group(1)
        elif fence is not None and line.startswith(fence + "```"):
            fence = None
        if fence is None and not line.strip():
            out.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    return [p for p in [*out, "\n".join(cur)] if p.strip()]


def problems(text: str, base: Path = REPO) -> tuple[list[str], int, int]:
    """What is wrong with the commands, paths and links of one document (links relative to the
    folder ``base``), how many commands it shows and how many of them are kept from an earlier
    version (each checked against the code of the commit its note names)."""
    reading = Reading()
    paras = paragraphs(text)
    lines, n, earlier = [], 0, 0
    for k, para in enumerate(paras):
        own = command_lines(para)
        lines += own
        fenced = para.lstrip().startswith("```")
        near = (
            [para]
            + ([paras[k - 1]] if fenced and k else [])
            + ([paras[k + 1]] if fenced and k + 1 < len(paras) else [])
        )
        commits = [c for p in near for c in EARLIER.findall(p)]
        for c in [c for line in expanded(own) for c in commands(line)]:
            n += 1
            now = Reading()
            check_command(c, now)
            then = []  # what is wrong at each commit named, if something is now
            for commit in commits if now.problems else []:
                then.append(Reading())
                check_command(c, then[-1], commit)
                if not then[-1].problems:
                    now, then, earlier = then[-1], [], earlier + 1
                    break
            reading.problems += now.problems + [p for t in then for p in t.problems if p not in now.problems]
            reading.exempt |= now.exempt
    for p in sorted(repository_paths(lines)):
        if not (REPO / p).exists() and p.rstrip("/") not in reading.exempt and not p.startswith(EXEMPT):
            reading.problems.append(f"{p} (no such file or folder)")
    reading.problems += [f"{t} (broken link)" for t in broken_links(text, base)]
    return reading.problems, n, earlier


# --------------------------------------------------------------------------- the checks
@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_command_path_and_link_shown_is_runnable(doc):
    if EARLIER.search(doc.read_text()) and not have_history():
        pytest.skip("no git history here to run its earlier versions' commands against")
    found, _, _ = problems(doc.read_text(), doc.parent)
    assert not found, "\n".join(found)


def test_the_readmes_commands_run_too():
    """README.md's own commands, by the same checks (its paths and links: tests/test_readme.py)."""
    reading = Reading()
    for c in [c for line in expanded(command_lines((REPO / "README.md").read_text())) for c in commands(line)]:
        check_command(c, reading)
    assert not reading.problems, "\n".join(reading.problems)


# --------------------------------------------------------------------------- the checks can fail
BAD = """# T

Command: `resm evaluate structure --model default --dataset vl1 --no-such-option --out
experiments/results/written_by_it.md` and `resm nosuchcommand x`, `resm evaluate structures --model default`,
`resm evaluate structure --dataset ts0 pdb-ts1`, `python experiments/structure_cpu/decoding_density.py
m.pt --config structure --grid tiny`.

```bash
COMMON=(data.workers=1 modle.init=default train.no_such_key=1)
OMP_NUM_THREADS=1 resm finetune --config configs/finetune/structure.yaml "${COMMON[@]}" \\
    train.out_dir=experiments/written_too
for f in a b; do python experiments/structure_cpu/two_priors.py prior --kind x; done
python experiments/structure_cpu/two_priors.py table --control a --variant b --kind x
$ resm compare --config no_such_config
```

    torchrun --standalone --nproc_per_node 2 -m resm pretrain --config cpu_demo head.x=1

`python
experiments/noncanonical/tertiary_breakdown.py --model x --no-such-flag` (the options come from
bprna_check.py), `bash experiments/no_such.sh`, `python experiments/no_such.py`,
`configs/finetune/no_such.yaml`, [a link](no_such_table.md).

`python experiments/transfer_cpu/shared_adapter.py --steps 80` (written by an earlier version:
a706479; it took --steps then)

`python experiments/transfer_cpu/shared_adapter.py --no-such-option` (written by an earlier
version: a706479; no version took this)

`python experiments/bench_fold_long.py --lengths 1000` (written by an earlier version: 0000000;
no such commit)
"""


def test_each_check_finds_what_is_wrong():
    if not have_history():
        pytest.skip("no git history here to run an earlier version's command against")
    found, n, earlier = problems(BAD)
    assert sorted(found) == sorted(
        [
            "resm evaluate structure --no-such-option (no such option)",
            "resm nosuchcommand (no such command)",
            "resm evaluate structures (no such subcommand; ['structure'])",
            "resm evaluate structure --dataset pdb-ts1 (not one of ['archiveii', 'archiveii-famfold', "
            "'archiveii-long', 'bprna-new', 'tr1', 'ts0', 'vl1'])",
            "experiments/structure_cpu/decoding_density.py --grid tiny (not one of ['full', 'small'])",
            "resm finetune modle.init (no section 'modle' in a finetune config)",
            "resm finetune train.no_such_key (no key 'no_such_key' in train)",
            "experiments/structure_cpu/two_priors.py prior (no such subcommand; "
            "['coverage', 'folders', 'priors', 'table'])",
            "experiments/structure_cpu/two_priors.py table --kind (no such option)",
            "resm compare --config no_such_config (no_such_config: no such config file, nor a shipped "
            "compare config of that name (shipped: cpu_small))",
            "resm pretrain head.x (no section 'head' in a pretrain config)",
            "experiments/noncanonical/tertiary_breakdown.py --no-such-flag (no such option)",
            "experiments/no_such.sh (no such script)",
            "experiments/no_such.py (no such script)",
            "experiments/transfer_cpu/shared_adapter.py --no-such-option (no such option)",
            "experiments/bench_fold_long.py (no such script)",
            "0000000 (no such commit in this repository)",
            "experiments/no_such.sh (no such file or folder)",
            "experiments/no_such.py (no such file or folder)",
            "configs/finetune/no_such.yaml (no such file or folder)",
            "experiments/bench_fold_long.py (no such file or folder)",
            "no_such_table.md (broken link)",
        ]
    )
    assert (n, earlier) == (16, 1)  # the --steps command of a706479 passes as the record it is


def test_a_stale_command_planted_in_a_committed_table_is_found(tmp_path):
    """The committed tables pass, and the same table with an option renamed back does not."""
    doc = REPO / "experiments/results/structure_vl1_cpu.md"
    assert not problems(doc.read_text(), doc.parent)[0]
    stale = doc.read_text().replace("--threads 1", "--workers 1", 1)
    assert problems(stale, doc.parent)[0] == ["resm evaluate structure --workers (no such option)"]
