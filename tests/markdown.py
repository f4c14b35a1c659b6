"""Reading the commands, paths and links a markdown document shows, for the tests that hold
the docs to the checkout (tests/test_readme.py: README.md; tests/test_result_commands.py: the
result tables and recipes under experiments/)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from resm.cli import build_parser
from tests.conftest import REPO

FENCE = re.compile(r"^( *)```[\w-]*\n(.*?)^\1```", flags=re.S | re.M)


def code_blocks(text: str) -> list[str]:
    """The fenced blocks, those indented in a list item too (dedented)."""
    return [re.sub(rf"^{indent}", "", block, flags=re.M) for indent, block in FENCE.findall(text)]


def code_spans(text: str) -> list[str]:
    """Inline code spans outside the fenced blocks; a span may run on over a line break (not a
    blank line), and is returned on one line."""
    prose = FENCE.sub("", text)
    return [" ".join(s.split("\n")) for s in re.findall(r"`([^`\n]+(?:\n[^`\n]+)*)`", prose)]


def code_lines(text: str) -> list[str]:
    """Every inline span, and every line of every block (continued lines joined)."""
    lines = [ln for b in code_blocks(text) for ln in b.replace("\\\n", " ").splitlines()]
    return code_spans(text) + lines


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(text: str) -> set[str]:
    return {anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def broken_links(text: str, base: Path = REPO) -> list[str]:
    """Relative links (from the folder ``base``) whose file, or whose heading (``#anchor``,
    here or in a linked .md), is missing."""
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, frag = target.partition("#")
        if path and not (base / path).exists():
            bad.append(target)
            continue
        if frag and frag not in headings((base / path).read_text() if path else text):
            bad.append(target)
    return bad


def subparsers() -> dict[str, argparse.ArgumentParser]:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("resm has no subcommands")


COMMAND_LINE = re.compile(r"(?:^|[\s$(/])resm ([a-z][a-z-]*)([^|#;]*)")
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def unknown_options(lines: list[str]) -> list[str]:
    """``resm CMD ... --opt`` in code: CMD must be a command and each option one of its own
    (an option after ``|``, ``#`` or ``;`` belongs to something else; a shell comment is
    prose)."""
    parsers = subparsers()
    bad = []
    for line in lines:
        for m in COMMAND_LINE.finditer(re.sub(r"(?:^|\s)#.*", "", line)):
            cmd, rest = m.group(1), m.group(2)
            if cmd not in parsers:
                bad.append(f"resm {cmd} (no such command): {line.strip()[:80]}")
                continue
            known = {o for a in parsers[cmd]._actions for o in a.option_strings}
            bad += [f"resm {cmd} {o}" for o in OPTION.findall(rest.replace("\\|", " ")) if o not in known]
    return bad


PATH = re.compile(r"(?<![\w/.~-])((?:resm|tests|experiments|configs|examples|mapping)/[\w./-]*\w/?)")


def repository_paths(lines: list[str]) -> set[str]:
    """The repository paths named in these lines (placeholders such as NAME left out)."""
    return {p for line in lines for p in PATH.findall(line) if "NAME" not in p}
