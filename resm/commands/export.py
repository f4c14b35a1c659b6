"""``resm export``: a training checkpoint consolidated into a fair-esm ``.pt`` (and a Hugging
Face folder)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..utils.io import announce
from .common import Command


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "checkpoint",
        type=Path,
        metavar="RUN_OR_CHECKPOINT",
        help="checkpoint folder, or run folder (its newest checkpoint)",
    )
    sp.add_argument(
        "-o",
        "--out",
        required=True,
        type=Path,
        help="fair-esm .pt to write, its name starting with esm2 as fair-esm requires (required); "
        "<stem>-contact-regression.pt is written beside it",
    )
    sp.add_argument(
        "--any-name",
        action="store_true",
        help="allow an --out name that does not start with esm2 (resm reads it; fair-esm does not; default: refuse)",
    )
    sp.add_argument(
        "--hf",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write a Hugging Face folder here, tokenizer included (default: none)",
    )
    sp.add_argument(
        "--dtype",
        choices=["fp32", "fp16", "bf16"],
        default="fp32",
        help="weights of the .pt: fp16 halves the file, read back as fp32 (default: fp32; the HF folder stays fp32)",
    )
    sp.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow unpickling arbitrary objects from the checkpoint's DeepSpeed files (only for run folders you "
        "trust; default: refuse)",
    )


def run(a: argparse.Namespace) -> None:
    from ..backbone.load import fair_esm_name_problem, regression_path
    from ..export import export_checkpoint

    _, meta = export_checkpoint(a.checkpoint, a.out, a.hf, a.trust_checkpoint, dtype=a.dtype, any_name=a.any_name)
    files = [str(a.out)]
    if not fair_esm_name_problem(a.out):  # the contact regression, written where fair-esm reads the pair
        files.append(str(regression_path(a.out)))
    if a.hf is not None:
        files.append(str(a.hf))
    written = files[0] if len(files) == 1 else f"{', '.join(files[:-1])} and {files[-1]}"
    announce(f"exported step {meta['step']} ({meta['exported_from']}); wrote {written}")


EXPORT = Command(
    "export",
    "consolidate a training checkpoint (torch or ZeRO-sharded) into a fair-esm .pt / HF folder",
    add_arguments,
    run,
    outputs=(("out", "file"), ("hf", "dir")),
    inputs=(("checkpoint", "the checkpoint"),),
    examples=(
        (
            "resm export runs/cpu_demo -o esm2_rna.pt --hf esm2_rna_hf",
            "the run's newest checkpoint as a fair-esm .pt and a Hugging Face folder",
        ),
    ),
)
