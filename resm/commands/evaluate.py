"""``resm evaluate structure``: a structure model against known structures, with the classical
folders in the same run (:func:`resm.structure.benchmark.evaluate_sets`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import TURNER_HELP, Command, device_args, memory_check_arg, set_threads, threads_arg


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("what", choices=["structure"], help="what to evaluate")
    sp.add_argument(
        "--model",
        required=True,
        type=Path,
        help="structure_model.pt written by resm finetune, or 'default' (the shipped model); for archiveii-famfold "
        "a path with {fold} (one model per fold); required",
    )
    sp.add_argument(
        "--dataset",
        nargs="+",
        required=True,
        choices=["ts0", "bprna-new", "archiveii", "archiveii-long", "archiveii-famfold", "vl1", "tr1"],
        help="benchmark sets (required; vl1/tr1: PDB-derived, scored over canonical pairs and over all pairs, "
        "and with --non-canonical over non-canonical pairs too)",
    )
    sp.add_argument("--folds", nargs="+", default=None, help="archiveii-famfold: only these folds (default: all 9)")
    sp.add_argument(
        "--limit",
        type=int,
        default=None,
        help="a seeded random subset of this many sequences per set (default: all)",
    )
    sp.add_argument("--seed", type=int, default=0, help="seed of the --limit subset")
    sp.add_argument(
        "--tile",
        type=int,
        default=512,
        help="2-D head models: the pair map is computed in tiles of this many nt a side, >= 16, which bounds "
        "memory; the pair head ignores it (default: 512)",
    )
    sp.add_argument(
        "--folders",
        nargs="*",
        default=None,
        metavar="FOLDER",
        help="classical folders run on the same records (default: those of rnafold, rnafold-mea, eternafold, "
        "linearpartition-v, linearfold-v that are installed, each missing one named in a 'skipped folder' line; "
        "a folder named here must be installed; --folders alone: the model only)",
    )
    sp.add_argument(
        "--non-canonical",
        "--noncanonical",
        dest="non_canonical",
        action="store_true",
        help="the model adds the pairs of its file's non-canonical scorer (as resm fold --non-canonical), and "
        "vl1/tr1 are scored over their non-canonical pairs alone too (default: off)",
    )
    sp.add_argument("--turner-scale", type=float, default=None, metavar="S", help=TURNER_HELP)
    sp.add_argument(
        "--data-dir", default=None, metavar="DIR", help="data folder (default: $RESM_DATA or ../shared/data)"
    )
    device_args(sp, threads=False)
    threads_arg(sp, ", and the processes computing pair priors")
    sp.add_argument(
        "--bpp-cache",
        default=None,
        metavar="DIR",
        help="reuse the pair priors stored here by training (data.bpp_cache), and store new ones; "
        "the model's time then leaves out the priors found there (default: compute them)",
    )
    memory_check_arg(sp, "evaluate")
    sp.add_argument("-o", "--out", type=Path, default=None, help="markdown table to write (default: print only)")


def run(a: argparse.Namespace) -> None:
    import shlex

    from ..config import options
    from ..structure.benchmark import EvaluateOptions, evaluate_sets, format_table, write_table

    set_threads(a)
    given = {**vars(a), "decoding": {"turner_scale": a.turner_scale}}
    opts = options(EvaluateOptions, given, {"workers": "threads"})
    results, label = evaluate_sets(a.model, a.dataset, a.data_dir, a.folds, opts)
    command = "resm " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    text = format_table(results, command, label, cached_prior=bool(a.bpp_cache))
    print(text)
    if a.out:
        write_table(a.out, text)


def _dataset_files(a: argparse.Namespace) -> dict:
    from ..structure.datasets import dataset_files

    return dataset_files(a.dataset, a.data_dir)


EVALUATE = Command(
    "evaluate",
    "score a structure model against known structures, with every classical folder in the same run",
    add_arguments,
    run,
    outputs=(("out", "file"), ("bpp_cache", "dir")),
    inputs=(("model", "--model"), _dataset_files),
)
