"""``resm schemes``: the mapping schemes (nucleotide -> protein letter)."""

from __future__ import annotations

import argparse

from .common import Command


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--show", default=None, metavar="SCHEME", help="print one scheme's whole table (default: list them only)"
    )


def run(a: argparse.Namespace) -> None:
    from ..mapping import get_scheme, list_schemes

    if a.show:  # the one scheme asked for, alone (an unknown name is an error, nothing printed)
        print(get_scheme(a.show).describe())
        return
    # the hash: the first 12 hex digits of the scheme's table hash (an embeddings file's scheme_hash)
    print(f"{'scheme':8s} {'kind':8s} {'table hash':12s}  description")
    for name in list_schemes():
        s = get_scheme(name)
        print(f"{name:8s} {s.kind:8s} {s.table_hash[:12]}  {s.description}")


SCHEMES = Command("schemes", "list the mapping schemes (--show S: one scheme's whole table)", add_arguments, run)
