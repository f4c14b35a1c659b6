"""``resm interact`` and ``resm predict``: inference with trained rri and mrl models (and the
zero-shot RNA-RNA score), through :mod:`resm.predict`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..utils.io import announce
from .common import (
    CLI_NAMES,
    Command,
    device_args,
    models_read,
    print_metrics,
    probes_read,
    refuse_stdin,
    report_stream,
    set_threads,
    trust_arg,
)


def scan_args(sp: argparse.ArgumentParser, task: str = "") -> None:
    """Long partners scanned in windows, and the sites file; ``task``: the help's prefix where
    the command serves other tasks too (``"rri: "``: ``resm predict --task mrl`` refuses them)."""
    sp.add_argument(
        "--sites",
        type=Path,
        default=None,
        metavar="SITES.tsv",
        help=f"{task}also write each pair's sites: the window pair's coordinates in the partners (1-based, inclusive), "
        "its probability, ViennaRNA's duplex of the two windows and the head's strongest pair chain (default: none)",
    )
    sp.add_argument(
        "--window",
        type=int,
        default=0,
        help=f"{task}partners longer than this (nt) are scanned in windows of this length, from 8 nt (the shortest "
        "duplex scored) to the head's trained max_length (default 0: that max_length)",
    )
    sp.add_argument(
        "--stride",
        type=int,
        default=0,
        help=f"{task}step between windows in nt, at most the window: no nucleotide is left between windows "
        "(default 0: half the window)",
    )
    sp.add_argument("--max-sites", type=int, default=10, help=f"{task}sites kept per pair in --sites, strongest first")


def infer_args(sp: argparse.ArgumentParser, batch_of: str) -> None:
    """The backbone, adapter, output, batch (of ``batch_of``) and device of a trained model's inference."""
    sp.add_argument(
        "--backbone",
        default=None,
        metavar="CKPT",
        help="backbone checkpoint (default: the one recorded in the model's manifest; its checksum must match)",
    )
    sp.add_argument(
        "--adapter",
        type=Path,
        default=None,
        metavar="PEFT_DIR",
        help="a PEFT LoRA folder (adapter_config.json + adapter_model.safetensors, made on the Hugging Face export "
        "of the same backbone) in place of the model's adapter (default: the model's own)",
    )
    sp.add_argument("-o", "--out", type=Path, default=None, help="TSV to write (default: stdout)")
    sp.add_argument("--batch-size", type=int, default=64, help=f"{batch_of} per batch")
    device_args(sp)
    trust_arg(sp)


def interact_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "pairs",
        type=Path,
        metavar="PAIRS",
        help="pairs table (TSV or CSV): a_name, a_seq, b_name, b_seq[, label] per line, a header line optional",
    )
    sp.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="DIR",
        help="rri model folder (out_dir/model of `resm finetune`; default: none, for --zero-shot)",
    )
    sp.add_argument(
        "--maps",
        type=Path,
        default=None,
        metavar="MAPS.npz",
        help="also write each pair's intermolecular pair-probability map (default: none)",
    )
    sp.add_argument(
        "--zero-shot",
        action="store_true",
        help="score from the backbone's contact head (no trained head): needs --backbone",
    )
    sp.add_argument(
        "--probe",
        type=Path,
        default=None,
        metavar="PROBE.pt",
        help="with --zero-shot: a zero-shot probe from `resm probe` (as resm fold --probe), whose fitted contact "
        "regression scores the pairs (default: the backbone's own contact head)",
    )
    sp.add_argument(
        "--linker", default="", help="with --zero-shot: nucleotides put between the two sequences (default: none)"
    )
    sp.add_argument(
        "--scheme", default=None, help="with --zero-shot: mapping scheme (default: the checkpoint's, else kdny)"
    )
    scan_args(sp)
    infer_args(sp, "pairs")


def run_interact(a: argparse.Namespace) -> None:
    from ..predict import interact, interact_options

    refuse_stdin(a.pairs, "PAIRS", "the pairs table")
    set_threads(a)
    r = interact(a.pairs, a.model, interact_options(a, {**CLI_NAMES, "scheme_name": "scheme"}))
    summary = report_stream(_scores_on_stdout(a))
    if a.out is None:
        sys.stdout.write(r["text"])
    else:
        extra = (f", pair maps in {a.maps}" if a.maps else "") + (f", sites in {a.sites}" if a.sites else "")
        announce(f"wrote {a.out}: {len(r['scores'])} pairs" + extra, summary)
    if "metrics" in r:
        print_metrics("labels in the file", r["metrics"], summary)


def _scores_on_stdout(a: argparse.Namespace) -> bool:
    """Whether standard output holds the table (no -o, ``-o -``, ``-o /dev/stdout``): the
    summary and the metrics then go to stderr, so that the table stays a table."""
    from ..utils.paths import is_stream

    return a.out is None or is_stream(a.out)


def _predict_task(name: str) -> str:
    """``--task``'s check, as argparse's ``choices`` (exit code 2), with the choices read from the
    task registry only when the option is given (``resm --help`` does not import every task)."""
    from ..tasks import tasks_with

    known = tasks_with("predict")
    if name not in known:
        raise argparse.ArgumentTypeError(f"invalid choice: {name!r} (choose from {', '.join(map(repr, known))})")
    return name


def predict_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--task",
        required=True,
        metavar="{rri,mrl}",
        type=_predict_task,
        help="the task of --model's head: rri (a pairs table in, interaction probabilities out) or mrl (UTRs in, "
        "mean ribosome load out) (required)",
    )
    sp.add_argument(
        "input",
        type=Path,
        metavar="INPUT",
        help="pairs table (rri), or (mrl) a CSV/TSV with a utr column (an rl or hrl column, the measured "
        "MRL, adds R^2 and Spearman) or a FASTA of UTRs (.fa, .fasta, .fna)",
    )
    sp.add_argument(
        "--model",
        required=True,
        type=Path,
        metavar="DIR",
        help="model folder (out_dir/model of `resm finetune`; required)",
    )
    sp.add_argument(
        "--maps", type=Path, default=None, metavar="MAPS.npz", help="rri: also write the pair maps (default: none)"
    )
    sp.add_argument(
        "--variants",
        action="store_true",
        help="mrl: the input is the human wild-type/variant file; report the variant-effect correlation",
    )
    scan_args(sp, "rri: ")
    infer_args(sp, "pairs (rri) or UTRs (mrl)")


def run_predict(a: argparse.Namespace) -> None:
    """``resm predict --task NAME``: the predict function of the task's descriptor
    (:data:`resm.tasks.TASKS`)."""
    from ..config import options
    from ..predict import PredictOptions
    from ..tasks import TASKS
    from ..tasks.base import resolve

    refuse_stdin(a.input, "INPUT", "the pairs table" if a.task == "rri" else "the UTRs")
    set_threads(a)
    r = resolve(TASKS[a.task].predict)(options(PredictOptions, a, CLI_NAMES))
    summary = report_stream(_scores_on_stdout(a))
    if a.out is None:
        sys.stdout.write(r["text"])
    else:
        announce(f"wrote {a.out}: {r['n']} {r['what']}", summary)
    for label, m in r.get("metrics", {}).items():
        print_metrics(label, m, summary)


INTERACT = Command(
    "interact",
    "score RNA-RNA pairs (a_name, a_seq, b_name, b_seq[, label] table) with an rri model or zero-shot; "
    "partners up to 4,000 nt",
    interact_arguments,
    run_interact,
    outputs=(("out", "file"), ("maps", "file"), ("sites", "file")),
    inputs=(
        ("pairs", "the input"),
        ("model", "--model"),
        ("backbone", "--backbone"),
        ("probe", "--probe"),
        ("adapter", "--adapter"),
        models_read(("model", "--model"), ("backbone", "--backbone")),
        probes_read(("probe", "--probe")),
    ),
    examples=(
        (
            "resm interact pairs.tsv --model runs/rri/model -o scores.tsv",
            "pairs.tsv columns: a_name a_seq b_name b_seq [label]; header optional",
        ),
        ("resm interact pairs.tsv --zero-shot --backbone esm2.pt", "no trained head: the backbone's contact head"),
    ),
)
PREDICT = Command(
    "predict",
    "predict with a trained rri or mrl model (pairs table / UTR CSV or FASTA)",
    predict_arguments,
    run_predict,
    outputs=(("out", "file"), ("maps", "file"), ("sites", "file")),
    inputs=(
        ("input", "the input"),
        ("model", "--model"),
        ("backbone", "--backbone"),
        ("adapter", "--adapter"),
        models_read(("model", "--model"), ("backbone", "--backbone")),
    ),
    examples=(
        ("resm predict --task mrl utrs.csv --model runs/mrl/model -o mrl.tsv", "a CSV with a utr column, or a FASTA"),
        ("resm predict --task rri pairs.tsv --model runs/rri/model", "the pairs table of resm interact"),
    ),
)
