"""``resm compare``: backbones compared on the same structure, RRI and MRL tasks
(:func:`resm.compare.harness.run_compare`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import Command
from .training import config_help


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--config", required=True, type=Path, help=config_help("compare"))
    sp.add_argument(
        "--strict",
        action="store_true",
        help="a backend whose weights or package are missing is an error, and nothing is written (default: a "
        "SKIPPED line and row)",
    )
    sp.add_argument("overrides", nargs="*", metavar="key=value", help="override config entries, e.g. train.steps=50")


def run(a: argparse.Namespace) -> None:
    from ..compare.backends import BackendUnavailable
    from ..compare.config import parse_config
    from ..compare.harness import run_compare
    from ..compare.report import backends_run, format_markdown
    from ..config import ConfigError, check_inputs_outside, find_config, load_config
    from ..utils.io import check_output

    path = find_config(a.config, "compare")
    raw = load_config(path, a.overrides)
    try:
        cfg = parse_config(raw, path.stem)  # checked before any work
    except ConfigError as e:  # the key, in the file that holds it
        raise ConfigError(f"{path}: {e}") from None
    cfg.strict = cfg.strict or a.strict
    check_output(cfg.output_dir(), "dir")
    # a backend whose weights are missing is a skipped row (an error with --strict), even named
    # through {data_dir}: only with --strict is it refused here, with where the data folder came from
    optional = () if cfg.strict else ("backends",)
    check_inputs_outside(raw, cfg.output_dir(), "out_dir", {"--config": path}, optional)
    try:
        result = run_compare(cfg)
    except BackendUnavailable as e:
        raise ValueError(str(e)) from None
    print(format_markdown(cfg, result))
    ran, skipped = backends_run(result)
    print(
        f"compared {len(ran)} backends ({', '.join(ran)}); wrote {len(result['files'])} files to {result['out_dir']}/"
    )
    if skipped:
        print(
            f"SKIPPED {len(skipped)} backends: {', '.join(skipped)} (reasons in their rows; --strict makes a skip an "
            "error)",
            file=sys.stderr,
        )


COMPARE = Command(
    "compare",
    "compare backbones (mapped ESM-2, nucleotide models, RNA-FM, one-hot, ViennaRNA) on the same structure, RRI "
    "and MRL tasks",
    add_arguments,
    run,
)
