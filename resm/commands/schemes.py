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

    shown = get_scheme(a.show) if a.show else None  # an unknown name fails before anything is printed
    for name in list_schemes():
        s = get_scheme(name)
        print(f"{name:8s} {s.kind:8s} {s.table_hash[:12]}  {s.description}")
    if shown is not None:
        print("\n" + shown.describe())


SCHEMES = Command("schemes", "list the mapping schemes (--show S: one scheme's whole table)", add_arguments, run)
