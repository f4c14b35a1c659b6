"""``resm probe``: fit the zero-shot structure probe and choose its threshold."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..utils.io import announce
from .common import CLI_NAMES, Command, model_args, model_inputs, set_threads


def add_arguments(sp: argparse.ArgumentParser) -> None:
    model_args(sp)
    sp.add_argument(
        "train", type=Path, metavar="TRAIN", help="labelled structures to fit on (dbn, bpseq, ct or pairs; .gz ok)"
    )
    sp.add_argument(
        "-o",
        "--out",
        required=True,
        type=Path,
        help="probe .pt to write (required; PROBE.pt.json is written beside it)",
    )
    sp.add_argument(
        "--val",
        type=Path,
        default=None,
        metavar="FILE",
        help="structures to choose the threshold on (default: the training ones)",
    )
    sp.add_argument("--max-train", type=int, default=100, help="use at most this many training structures")
    sp.add_argument("--max-val", type=int, default=100, help="use at most this many validation structures")
    sp.add_argument("--max-length", type=int, default=1000, help="skip structures longer than this (nt)")
    sp.add_argument(
        "--method",
        choices=["greedy", "matching"],
        default="greedy",
        help="the decoding the threshold is chosen for, as resm fold --method: greedy (most probable pairs first) "
        "or matching (maximum-weight matching)",
    )
    sp.add_argument("--seed", type=int, default=0, help="seed of the non-pair sampling")


def run(a: argparse.Namespace) -> None:
    from ..config import options
    from ..structure.probe import ProbeOptions, fit_probe_file, sidecar_path

    set_threads(a)
    probe, skipped, val = fit_probe_file(a.model, a.train, a.out, options(ProbeOptions, a, CLI_NAMES))
    s = probe.stats
    skip = f", {skipped} longer than {a.max_length} skipped" if skipped else ""
    print(
        f"fitted on {probe.n_train} structures{skip}: n_pos {s['n_pos']}, n_neg {s['n_neg']}, "
        f"train AUROC {s['train_auroc']:.3f}"
    )
    on = (
        f"{s['n_val']} validation structures"
        if val
        else f"the {s['n_val']} training structures (no --val given, so this F1 is optimistic)"
    )
    print(
        f"threshold {probe.threshold:g} ({probe.method}) chosen on {on}: "
        f"F1 {s['f1_mean']:.3f} strict, {s['f1_shift_mean']:.3f} with +-1 shift (mean)"
    )
    announce(f"wrote {a.out} and {sidecar_path(a.out).name}")


PROBE = Command(
    "probe",
    "fit the zero-shot structure probe (logistic regression on attention maps) and choose its threshold",
    add_arguments,
    run,
    outputs=(("out", "file"),),
    inputs=model_inputs(("train", "the training structures"), ("val", "--val")),
    examples=(
        ("resm probe esm2.pt train.dbn --val val.dbn -o probe.pt", "fit on train.dbn, the threshold chosen on val.dbn"),
        ("resm fold rnas.fasta --model esm2.pt --probe probe.pt", "then fold with it"),
    ),
)
